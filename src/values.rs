//! The ranges of herd's option values, checked in one place: by clap for the flags, by
//! [`RunOptions::check`] (through [`ProfileValue`]) for the same keys in `herd.toml`, and by
//! [`SessionConfig::check`] for values an embedder gives. A value out of range is a usage error
//! that says what is wrong and what to give instead (`--timeout 1e300 is out of range: give
//! seconds from 0.001 to 604800`), never a panic.
//!
//! [`SessionConfig::check`]: crate::session::SessionConfig::check
//! [`RunOptions::check`]: crate::options::RunOptions::check

use std::fmt;
use std::time::Duration;

/// The most worker slots a session may have (`-n`, `--appliance` values, `--hosts`).
pub const MAX_WORKERS: u64 = 1024;
/// The longest time any option may give: one week, in seconds.
pub const MAX_SECONDS: f64 = 604_800.0;
/// The shortest time any option may give, in seconds.
pub const MIN_SECONDS: f64 = 0.001;

/// A value that is not in its option's range: what was given, what is wrong, what to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// The option and value as given: `-n -1` or `workers = -1`.
    pub given: String,
    /// What is wrong: `is out of range`, `is not a number`, `is empty`.
    pub problem: &'static str,
    /// What to give instead: `give a number of workers from 1 to 1024`.
    pub hint: String,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.given, self.problem, self.hint)
    }
}

impl std::error::Error for BadValue {}

/// A whole-number option and its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The flag, as `--help` shows it (`-n`).
    pub flag: &'static str,
    /// The key in a `herd.toml` profile (`workers`).
    pub key: &'static str,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
    /// What the number counts, for the hint: `a number of workers`.
    pub what: &'static str,
}

/// `-n` / `--workers`.
pub const WORKERS: Count = Count {
    flag: "-n",
    key: "workers",
    min: 1,
    max: MAX_WORKERS,
    what: "a number of workers",
};
/// `--min-workers`.
pub const MIN_WORKERS_FLAG: Count = Count {
    flag: "--min-workers",
    key: "min-workers",
    min: 1,
    max: MAX_WORKERS,
    what: "a number of workers",
};
/// `--max-workers`.
pub const MAX_WORKERS_FLAG: Count = Count {
    flag: "--max-workers",
    key: "max-workers",
    min: 1,
    max: MAX_WORKERS,
    what: "a number of workers",
};
/// `--max-respawns`.
pub const MAX_RESPAWNS: Count = Count {
    flag: "--max-respawns",
    key: "max-respawns",
    min: 0,
    max: 100_000,
    what: "a number of respawns",
};
/// `--retire-after` (0: never).
pub const RETIRE_AFTER: Count = Count {
    flag: "--retire-after",
    key: "retire-after",
    min: 0,
    max: 10_000,
    what: "a number of crashes in a row (0: never retire)",
};
/// `--crash-retries`.
pub const CRASH_RETRIES: Count = Count {
    flag: "--crash-retries",
    key: "crash-retries",
    min: 0,
    max: 100,
    what: "a number of re-runs",
};
/// `--maxfail` (0: no limit).
pub const MAXFAIL: Count = Count {
    flag: "--maxfail",
    key: "maxfail",
    min: 0,
    max: 10_000_000,
    what: "a number of failures (0: no limit)",
};
/// `--durations` (0: all).
pub const DURATIONS: Count = Count {
    flag: "--durations",
    key: "durations",
    min: 0,
    max: 10_000_000,
    what: "a number of tests (0: all)",
};
/// `herd worker --incarnation`.
pub const INCARNATION: Count = Count {
    flag: "--incarnation",
    key: "incarnation",
    min: 1,
    max: 1_000_000,
    what: "a spawn number",
};

impl Count {
    fn bad(&self, given: String, problem: &'static str) -> BadValue {
        BadValue {
            given,
            problem,
            hint: format!("give {} from {} to {}", self.what, self.min, self.max),
        }
    }

    /// Checks `value`; `given` names the option and value in the error.
    pub fn check(&self, given: impl FnOnce() -> String, value: u64) -> Result<u64, BadValue> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.bad(given(), "is out of range"))
        }
    }

    /// Checks a value of another integer type (a negative or huge one is out of range).
    pub fn check_int<T: TryInto<u64> + fmt::Display + Copy>(
        &self,
        given: impl FnOnce() -> String,
        value: T,
    ) -> Result<(), BadValue> {
        match value.try_into() {
            Ok(v) => self.check(given, v).map(drop),
            Err(_) => Err(self.bad(given(), "is out of range")),
        }
    }

    /// Checks the flag's value `value` as given on the command line.
    pub fn check_flag<T: TryInto<u64> + fmt::Display + Copy>(
        &self,
        value: T,
    ) -> Result<(), BadValue> {
        self.check_int(|| format!("{} {value}", self.flag), value)
    }

    /// Checks the profile key's value `value`.
    pub fn check_key<T: TryInto<u64> + fmt::Display + Copy>(
        &self,
        value: T,
    ) -> Result<(), BadValue> {
        self.check_int(|| format!("{} = {value}", self.key), value)
    }

    /// Parses the flag's text: a whole number in range.
    pub fn parse(&self, text: &str) -> Result<u64, BadValue> {
        let given = || format!("{} {}", self.flag, shown(text));
        let digits = text.trim().trim_start_matches(['-', '+']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(given(), "is not a whole number"));
        }
        match text.trim().parse::<u64>() {
            Ok(value) => self.check(given, value),
            Err(_) => Err(self.bad(given(), "is out of range")),
        }
    }

    /// A clap value parser for the flag, giving a `T` (`usize`, `u32`).
    pub fn parser<T>(self) -> impl Fn(&str) -> Result<T, BadValue> + Clone + Send + Sync + 'static
    where
        T: TryFrom<u64> + Clone + Send + Sync + 'static,
    {
        move |text| {
            let value = self.parse(text)?;
            T::try_from(value)
                .map_err(|_| self.bad(format!("{} {text}", self.flag), "is out of range"))
        }
    }
}

/// An option given in seconds, and its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds {
    /// The flag (`--timeout`).
    pub flag: &'static str,
    /// The key in a `herd.toml` profile (`timeout`).
    pub key: &'static str,
}

/// `--timeout`.
pub const TIMEOUT: Seconds = Seconds::new("--timeout", "timeout");
/// `--grace`.
pub const GRACE: Seconds = Seconds::new("--grace", "grace");
/// `--worker-start-timeout`.
pub const WORKER_START_TIMEOUT: Seconds =
    Seconds::new("--worker-start-timeout", "worker-start-timeout");
/// `--respawn-window`.
pub const RESPAWN_WINDOW: Seconds = Seconds::new("--respawn-window", "respawn-window");
/// `--hang-timeout`.
pub const HANG_TIMEOUT: Seconds = Seconds::new("--hang-timeout", "hang-timeout");
/// `--heartbeat-timeout`.
pub const HEARTBEAT_TIMEOUT: Seconds = Seconds::new("--heartbeat-timeout", "heartbeat-timeout");
/// The time a cleanse or appliance-check hook may take (no flag: [`SessionConfig`] only).
///
/// [`SessionConfig`]: crate::session::SessionConfig
pub const HOOK_TIMEOUT: Seconds = Seconds::new("hook_timeout", "hook-timeout");

/// Every option given in seconds that has a flag.
pub const ALL_SECONDS: [Seconds; 6] = [
    TIMEOUT,
    GRACE,
    WORKER_START_TIMEOUT,
    RESPAWN_WINDOW,
    HANG_TIMEOUT,
    HEARTBEAT_TIMEOUT,
];
/// Every whole-number option.
pub const ALL_COUNTS: [Count; 7] = [
    WORKERS,
    MAX_RESPAWNS,
    RETIRE_AFTER,
    CRASH_RETRIES,
    MAXFAIL,
    DURATIONS,
    INCARNATION,
];

/// The error for a value clap took for an unknown flag because it starts with `-` (`--grace
/// -inf`, `-n -x1`): the numeric flag before it, checked with its parser.
pub fn hyphen_value_error(args: &[std::ffi::OsString]) -> Option<BadValue> {
    let args: Vec<&str> = args
        .iter()
        .map_while(|a| a.to_str())
        .take_while(|a| *a != "--")
        .collect();
    args.windows(2).find_map(|pair| {
        let [flag, value] = [pair[0], pair[1]];
        if !value.starts_with('-') || value.starts_with("--") {
            return None;
        }
        let long = |f: &str| flag == f || (flag == "--workers" && f == "-n");
        if let Some(spec) = ALL_SECONDS.iter().find(|s| long(s.flag)) {
            return spec.parse(value).err();
        }
        ALL_COUNTS.iter().find(|c| long(c.flag))?.parse(value).err()
    })
}

impl Seconds {
    /// An option of seconds from [`MIN_SECONDS`] to [`MAX_SECONDS`].
    pub const fn new(flag: &'static str, key: &'static str) -> Seconds {
        Seconds { flag, key }
    }

    fn bad(&self, given: String, problem: &'static str) -> BadValue {
        BadValue {
            given,
            problem,
            hint: format!("give seconds from {MIN_SECONDS} to {MAX_SECONDS}"),
        }
    }

    /// Checks `value` and makes it a duration; `given` names the option and value in the error.
    pub fn duration(
        &self,
        given: impl FnOnce() -> String,
        value: f64,
    ) -> Result<Duration, BadValue> {
        if value.is_nan() {
            Err(self.bad(given(), "is not a number"))
        } else if (MIN_SECONDS..=MAX_SECONDS).contains(&value) {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(self.bad(given(), "is out of range"))
        }
    }

    /// The flag's value as a duration (the value given on the command line).
    pub fn flag_duration(&self, value: f64) -> Result<Duration, BadValue> {
        self.duration(|| format!("{} {}", self.flag, number(value)), value)
    }

    /// The profile key's value as a duration.
    pub fn key_duration(&self, value: f64) -> Result<Duration, BadValue> {
        self.duration(|| format!("{} = {}", self.key, number(value)), value)
    }

    /// Checks a duration an embedder gave.
    pub fn check(&self, value: Duration) -> Result<(), BadValue> {
        self.duration(
            || format!("{} {}", self.flag, number(value.as_secs_f64())),
            value.as_secs_f64(),
        )
        .map(drop)
    }

    /// Parses the flag's text: seconds in range.
    pub fn parse(&self, text: &str) -> Result<f64, BadValue> {
        let given = || format!("{} {}", self.flag, shown(text));
        match text.trim().parse::<f64>() {
            Ok(value) => self.duration(given, value).map(|_| value),
            Err(_) => Err(self.bad(given(), "is not a number")),
        }
    }

    /// A clap value parser for the flag.
    pub fn parser(self) -> impl Fn(&str) -> Result<f64, BadValue> + Clone + Send + Sync + 'static {
        move |text| self.parse(text)
    }
}

/// A text option that must not be empty (or blank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The flag (`--appliance`).
    pub flag: &'static str,
    /// The key in a `herd.toml` profile (`appliances`).
    pub key: &'static str,
    /// What to give, for the hint: `an appliance: a URL, host or name`.
    pub what: &'static str,
}

/// `--appliance` (each value).
pub const APPLIANCE: Text = Text {
    flag: "--appliance",
    key: "appliances",
    what: "an appliance: a URL, host or name, like --appliance db1",
};
/// `--providers` (each name).
pub const PROVIDERS: Text = Text {
    flag: "--providers",
    key: "providers",
    what: "provider names separated by commas, like --providers pg,mysql",
};
/// `--hosts` (each host).
pub const HOSTS: Text = Text {
    flag: "--hosts",
    key: "hosts",
    what: "host names separated by commas, like --hosts node1,node2",
};
/// `--list`.
pub const LIST: Text = Text {
    flag: "--list",
    key: "list",
    what: "a shell command that prints one test id per line, like --list 'ls tests/*.sh'",
};
/// `--cleanse`.
pub const CLEANSE: Text = Text {
    flag: "--cleanse",
    key: "cleanse",
    what: "a shell command, like --cleanse ./cleanup.sh",
};
/// `--appliance-check`.
pub const APPLIANCE_CHECK: Text = Text {
    flag: "--appliance-check",
    key: "appliance-check",
    what: "a shell command, like --appliance-check 'pg_isready -h \"$HERD_APPLIANCE\"'",
};
/// `--launcher`.
pub const LAUNCHER: Text = Text {
    flag: "--launcher",
    key: "launcher",
    what: "local, external or a template, like --launcher 'ssh {host} {cmd}'",
};
/// `--fingerprint`.
pub const FINGERPRINT: Text = Text {
    flag: "--fingerprint",
    key: "fingerprint",
    what: "a shell command, like --fingerprint 'git rev-parse HEAD'",
};
/// `--chaos`.
pub const CHAOS: Text = Text {
    flag: "--chaos",
    key: "chaos",
    what: "a fault plan, like --chaos 'seed=7,kill=0.05'",
};
/// `--endpoint` / `--listen`, and `herd worker --connect`.
pub const ENDPOINT: Text = Text {
    flag: "--listen",
    key: "endpoint",
    what: "a ZeroMQ endpoint, like tcp://0.0.0.0:5555",
};
/// `--profile`.
pub const PROFILE: Text = Text {
    flag: "--profile",
    key: "profile",
    what: "the name of a profile of herd.toml, like --profile ci",
};
/// `herd worker --worker`.
pub const WORKER_ID: Text = Text {
    flag: "--worker",
    key: "worker",
    what: "the worker slot herd printed, like --worker w3",
};

impl Text {
    fn bad(&self, given: String, problem: &'static str) -> BadValue {
        BadValue {
            given,
            problem,
            hint: format!("give {}", self.what),
        }
    }

    /// Checks the flag's value (one entry of a comma-separated list for `--providers`, `--hosts`).
    pub fn check_flag(&self, value: &str) -> Result<(), BadValue> {
        if !value.trim().is_empty() {
            Ok(())
        } else if self.flag.ends_with('s') {
            Err(self.bad(self.flag.to_string(), "has an empty entry"))
        } else {
            Err(self.bad(format!("{} {}", self.flag, shown(value)), "is empty"))
        }
    }

    /// Checks the profile key's value (one entry of a list for `appliances`, `providers`,
    /// `hosts`).
    pub fn check_key(&self, value: &str) -> Result<(), BadValue> {
        if !value.trim().is_empty() {
            Ok(())
        } else if self.key.ends_with('s') {
            Err(self.bad(self.key.to_string(), "has an empty entry"))
        } else {
            Err(self.bad(format!("{} = {value:?}", self.key), "is empty"))
        }
    }

    /// A clap value parser for the flag.
    pub fn parser(
        self,
    ) -> impl Fn(&str) -> Result<String, BadValue> + Clone + Send + Sync + 'static {
        move |text| self.check_flag(text).map(|()| text.to_string())
    }
}

/// A value of a `herd.toml` profile key, checked against its option's range by the option's
/// spec; the error names the key (`workers = 0 is out of range: ...`).
pub trait ProfileValue<T: ?Sized> {
    /// Checks `value`, given for this spec's key.
    fn check_profile_value(&self, value: &T) -> Result<(), BadValue>;
}

impl ProfileValue<usize> for Count {
    fn check_profile_value(&self, value: &usize) -> Result<(), BadValue> {
        self.check_key(*value)
    }
}

impl ProfileValue<u32> for Count {
    fn check_profile_value(&self, value: &u32) -> Result<(), BadValue> {
        self.check_key(*value)
    }
}

impl ProfileValue<f64> for Seconds {
    fn check_profile_value(&self, value: &f64) -> Result<(), BadValue> {
        self.key_duration(*value).map(drop)
    }
}

impl ProfileValue<String> for Text {
    fn check_profile_value(&self, value: &String) -> Result<(), BadValue> {
        self.check_key(value)
    }
}

impl ProfileValue<Vec<String>> for Text {
    fn check_profile_value(&self, list: &Vec<String>) -> Result<(), BadValue> {
        list.iter().try_for_each(|value| self.check_key(value))
    }
}

/// `text` as the user would type it: quoted when blank, control characters escaped.
fn shown(text: &str) -> String {
    if text.trim().is_empty() {
        format!("'{}'", text.escape_debug())
    } else {
        text.escape_debug().to_string()
    }
}

/// A number short enough to read: 1e300, not three hundred zeros.
fn number(value: f64) -> String {
    if value != 0.0 && value.is_finite() && !(1e-4..1e15).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_say_what_is_wrong_and_what_to_give() {
        assert_eq!(WORKERS.parse("4"), Ok(4));
        assert_eq!(WORKERS.parse(" 1024 "), Ok(1024));
        let msg = |r: Result<u64, BadValue>| r.unwrap_err().to_string();
        assert_eq!(
            msg(WORKERS.parse("-1")),
            "-n -1 is out of range: give a number of workers from 1 to 1024"
        );
        assert_eq!(
            msg(WORKERS.parse("99999999999")),
            "-n 99999999999 is out of range: give a number of workers from 1 to 1024"
        );
        assert!(msg(WORKERS.parse("0")).contains("-n 0 is out of range"));
        assert!(msg(WORKERS.parse("999999999999999999999999")).contains("is out of range"));
        assert!(msg(WORKERS.parse("many")).contains("-n many is not a whole number"));
        assert!(msg(WORKERS.parse("1.5")).contains("is not a whole number"));
        assert!(msg(WORKERS.parse("")).contains("-n '' is not a whole number"));
        assert!(msg(WORKERS.parse("--")).contains("is not a whole number"));
        assert_eq!(MAXFAIL.parse("0"), Ok(0));
        assert!(WORKERS.parser::<u8>()("1000").is_err(), "u8 cannot hold it");
        assert_eq!(
            WORKERS.check_key(-3i64).unwrap_err().to_string(),
            "workers = -3 is out of range: give a number of workers from 1 to 1024"
        );
    }

    #[test]
    fn seconds_are_finite_positive_and_at_most_a_week() {
        assert_eq!(TIMEOUT.parse("2.5"), Ok(2.5));
        assert_eq!(TIMEOUT.parse("604800"), Ok(604800.0));
        let msg = |text: &str| TIMEOUT.parse(text).unwrap_err().to_string();
        assert_eq!(
            msg("1e300"),
            "--timeout 1e300 is out of range: give seconds from 0.001 to 604800"
        );
        for bad in ["-5", "0", "inf", "-inf", "1e-9", "604800.5"] {
            assert!(msg(bad).contains("is out of range"), "{bad}: {}", msg(bad));
        }
        for bad in ["NaN", "nan", "", "five", "1,5"] {
            assert!(msg(bad).contains("is not a number"), "{bad}: {}", msg(bad));
        }
        assert_eq!(
            GRACE.key_duration(1e300).unwrap_err().to_string(),
            "grace = 1e300 is out of range: give seconds from 0.001 to 604800"
        );
        assert!(HANG_TIMEOUT.check(Duration::MAX).is_err());
        assert!(HANG_TIMEOUT.check(Duration::ZERO).is_err());
        assert!(HANG_TIMEOUT.check(Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn values_clap_takes_for_flags_are_explained() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            hyphen_value_error(&args(&["herd", "run", "--grace", "-inf"]))
                .unwrap()
                .to_string(),
            "--grace -inf is out of range: give seconds from 0.001 to 604800"
        );
        assert!(hyphen_value_error(&args(&["run", "--workers", "-x1"]))
            .unwrap()
            .to_string()
            .starts_with("-n -x1 is not a whole number"));
        assert_eq!(hyphen_value_error(&args(&["run", "-q", "-z"])), None);
        assert_eq!(hyphen_value_error(&args(&["run", "--", "-n", "-z"])), None);
    }

    #[test]
    fn empty_text_is_refused() {
        assert_eq!(
            APPLIANCE.check_flag("").unwrap_err().to_string(),
            "--appliance '' is empty: give an appliance: a URL, host or name, like --appliance db1"
        );
        assert!(LIST
            .check_flag("  ")
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        assert!(HOSTS
            .check_key("")
            .unwrap_err()
            .to_string()
            .starts_with("hosts has an empty entry: give host names"));
        assert!(PROVIDERS
            .check_flag("")
            .unwrap_err()
            .to_string()
            .starts_with("--providers has an empty entry"));
        assert_eq!(LIST.parser()("ls"), Ok("ls".to_string()));
    }
}
