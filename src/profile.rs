//! `herd.toml`: every `herd run` option, in named profiles, like nextest's.
//!
//! ```toml
//! [profile.default]          # used when no --profile is given; every profile inherits it
//! workers = 4
//! timeout = 300
//! providers = ["pg", "mysql"]
//! command = ["pytest", "tests/"]
//!
//! [profile.ci]
//! workers = 8
//! maxfail = 5
//! junit-xml = "reports/herd.xml"
//! ```
//!
//! The file is `--config PATH`, or `herd.toml` in the current directory or the nearest parent
//! that has one. Keys are the long option names; an unknown key or profile is an error that names
//! it. Command-line flags override the profile; the profile overrides herd's defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use herd_core::faults::FaultPlan;

use crate::session::{ColorChoice, SessionConfig};
use crate::values::{self, BadValue, Seconds};

/// The name of the config file looked for in the project.
pub const CONFIG_FILE: &str = "herd.toml";

/// Options of one profile (or of the command line): `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// `-n`.
    pub workers: Option<usize>,
    /// `--appliance` (one worker each).
    pub appliances: Option<Vec<String>>,
    /// `--providers`.
    pub providers: Option<Vec<String>>,
    /// `--cleanse`.
    pub cleanse: Option<String>,
    /// `--appliance-check`.
    pub appliance_check: Option<String>,
    /// `--max-respawns`.
    pub max_respawns: Option<u32>,
    /// `--respawn-window` (seconds).
    pub respawn_window: Option<f64>,
    /// `--retire-after`.
    pub retire_after: Option<u32>,
    /// `--crash-retries`.
    pub crash_retries: Option<u32>,
    /// `--maxfail`.
    pub maxfail: Option<usize>,
    /// `-x`.
    pub exitfirst: Option<bool>,
    /// `--timeout` (seconds).
    pub timeout: Option<f64>,
    /// `--grace` (seconds).
    pub grace: Option<f64>,
    /// `--worker-start-timeout` (seconds).
    pub worker_start_timeout: Option<f64>,
    /// `--junit-xml`.
    pub junit_xml: Option<PathBuf>,
    /// `--durations`.
    pub durations: Option<usize>,
    /// `--events`.
    pub events: Option<PathBuf>,
    /// `--log-dir`.
    pub log_dir: Option<PathBuf>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--list` (exec runner).
    pub list: Option<String>,
    /// The command after `--`.
    pub command: Option<Vec<String>>,
    /// `--color`.
    pub color: Option<ColorChoice>,
    /// `--launcher`.
    pub launcher: Option<String>,
    /// `--hosts`.
    pub hosts: Option<Vec<String>>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--fingerprint`.
    pub fingerprint: Option<String>,
    /// `--chaos`.
    pub chaos: Option<String>,
    /// `--hang-timeout` (seconds).
    pub hang_timeout: Option<f64>,
    /// `--heartbeat-timeout` (seconds).
    pub heartbeat_timeout: Option<f64>,
    /// `--dist`.
    pub dist: Option<String>,
    /// `--history`.
    pub history: Option<PathBuf>,
    /// `--collect-all`.
    pub collect_all: Option<bool>,
}

/// A parsed `herd.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profiles by name.
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
}

macro_rules! merge_fields {
    ($base:ident, $over:ident, $($field:ident),*) => {
        Profile { $($field: $over.$field.or($base.$field)),* }
    };
}

impl Profile {
    /// `self` with every option `over` gives replaced by `over`'s.
    pub fn merge(self, over: Profile) -> Profile {
        let base = self;
        merge_fields!(
            base,
            over,
            workers,
            appliances,
            providers,
            cleanse,
            appliance_check,
            max_respawns,
            respawn_window,
            retire_after,
            crash_retries,
            maxfail,
            exitfirst,
            timeout,
            grace,
            worker_start_timeout,
            junit_xml,
            durations,
            events,
            log_dir,
            endpoint,
            list,
            command,
            color,
            launcher,
            hosts,
            token_file,
            fingerprint,
            chaos,
            hang_timeout,
            heartbeat_timeout,
            dist,
            history,
            collect_all
        )
    }

    /// Checks every value against its option's range (the same ranges as the flags'); the error
    /// names the key (`timeout = 1e300 is out of range: give seconds from 0.001 to 604800`).
    pub fn check(&self) -> Result<(), BadValue> {
        let counts = [
            (values::WORKERS, self.workers.map(|n| n as u64)),
            (values::MAX_RESPAWNS, self.max_respawns.map(u64::from)),
            (values::RETIRE_AFTER, self.retire_after.map(u64::from)),
            (values::CRASH_RETRIES, self.crash_retries.map(u64::from)),
            (values::MAXFAIL, self.maxfail.map(|n| n as u64)),
            (values::DURATIONS, self.durations.map(|n| n as u64)),
        ];
        for (spec, value) in counts {
            value.map(|v| spec.check_key(v)).transpose()?;
        }
        for (spec, value) in self.seconds() {
            value.map(|v| spec.key_duration(v)).transpose()?;
        }
        let lists = [
            (values::APPLIANCE, &self.appliances),
            (values::PROVIDERS, &self.providers),
            (values::HOSTS, &self.hosts),
        ];
        for (spec, list) in lists {
            list.iter().flatten().try_for_each(|v| spec.check_key(v))?;
        }
        let texts = [
            (values::LIST, &self.list),
            (values::CLEANSE, &self.cleanse),
            (values::APPLIANCE_CHECK, &self.appliance_check),
            (values::LAUNCHER, &self.launcher),
            (values::FINGERPRINT, &self.fingerprint),
            (values::CHAOS, &self.chaos),
            (values::ENDPOINT, &self.endpoint),
        ];
        for (spec, text) in texts {
            text.as_deref().map(|t| spec.check_key(t)).transpose()?;
        }
        Ok(())
    }

    /// The options given in seconds, with their specs.
    fn seconds(&self) -> [(Seconds, Option<f64>); 6] {
        [
            (values::RESPAWN_WINDOW, self.respawn_window),
            (values::TIMEOUT, self.timeout),
            (values::GRACE, self.grace),
            (values::WORKER_START_TIMEOUT, self.worker_start_timeout),
            (values::HANG_TIMEOUT, self.hang_timeout),
            (values::HEARTBEAT_TIMEOUT, self.heartbeat_timeout),
        ]
    }

    /// The session configuration, with herd's defaults for what is not given.
    pub fn session_config(&self, verbosity: i8) -> Result<SessionConfig, String> {
        let defaults = SessionConfig::default();
        let secs = |spec: Seconds, value: Option<f64>| {
            value
                .map(|v| spec.flag_duration(v).map_err(|e| e.to_string()))
                .transpose()
        };
        if self.exitfirst == Some(true) && self.maxfail.is_some() {
            return Err("-x (exitfirst) and --maxfail exclude each other".into());
        }
        Ok(SessionConfig {
            workers: self.workers,
            appliances: self.appliances.clone().unwrap_or_default(),
            providers: self
                .providers
                .iter()
                .flatten()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            cleanse: self.cleanse.clone(),
            appliance_check: self.appliance_check.clone(),
            max_respawns: self.max_respawns,
            respawn_window: secs(values::RESPAWN_WINDOW, self.respawn_window)?,
            retire_after: self.retire_after.unwrap_or(defaults.retire_after),
            crash_retries: self.crash_retries.unwrap_or(defaults.crash_retries),
            maxfail: if self.exitfirst == Some(true) {
                Some(1)
            } else {
                self.maxfail.filter(|n| *n > 0)
            },
            timeout: secs(values::TIMEOUT, self.timeout)?,
            grace: secs(values::GRACE, self.grace)?.unwrap_or(defaults.grace),
            start_timeout: secs(values::WORKER_START_TIMEOUT, self.worker_start_timeout)?
                .unwrap_or(defaults.start_timeout),
            hook_timeout: defaults.hook_timeout,
            endpoint: self.endpoint.clone(),
            events: self.events.clone(),
            log_dir: Some(
                self.log_dir
                    .clone()
                    .unwrap_or_else(|| defaults.log_dir.clone().unwrap_or_default()),
            ),
            verbosity,
            handle_signals: true,
            dots: None,
            junit_xml: self.junit_xml.clone(),
            durations: self.durations,
            color: self.color.unwrap_or_default(),
            progress: None,
            launcher: self.launcher.clone(),
            hosts: self
                .hosts
                .iter()
                .flatten()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            token_file: self.token_file.clone(),
            fingerprint: self.fingerprint.clone(),
            faults: self.chaos.as_deref().map(FaultPlan::parse).transpose()?,
            hang_timeout: secs(values::HANG_TIMEOUT, self.hang_timeout)?
                .unwrap_or(defaults.hang_timeout),
            heartbeat_timeout: secs(values::HEARTBEAT_TIMEOUT, self.heartbeat_timeout)?
                .unwrap_or(defaults.heartbeat_timeout),
            dist: self.dist.as_deref().map(str::parse).transpose()?,
            history: Some(
                self.history
                    .clone()
                    .unwrap_or_else(|| defaults.history.clone().unwrap_or_default()),
            ),
            collect_all: self.collect_all.unwrap_or(false),
        })
    }
}

impl ConfigFile {
    /// Parses a config file's text; `origin` names it in errors.
    /// Every value is checked against its option's range; an error names the file, the profile
    /// and the key.
    pub fn parse(text: &str, origin: &Path) -> Result<ConfigFile, String> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|e| format!("{}: {}", origin.display(), e.to_string().trim_end()))?;
        for (name, profile) in &file.profile {
            profile
                .check()
                .map_err(|e| format!("{} [profile.{name}]: {e}", origin.display()))?;
        }
        Ok(file)
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ConfigFile::parse(&text, path)
    }

    /// The options of profile `name`: the `default` profile, overridden by `name`'s.
    pub fn profile(&self, name: &str) -> Result<Profile, String> {
        let base = self.profile.get("default").cloned().unwrap_or_default();
        if name == "default" {
            return Ok(base);
        }
        match self.profile.get(name) {
            Some(profile) => Ok(base.merge(profile.clone())),
            None => {
                let known: Vec<&str> = self.profile.keys().map(String::as_str).collect();
                Err(format!(
                    "no profile {name:?} in the config file (it has: {})",
                    known.join(", ")
                ))
            }
        }
    }
}

/// `herd.toml` in `dir` or its nearest parent that has one.
pub fn find_config(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(CONFIG_FILE))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FILE: &str = r#"
[profile.default]
workers = 4
timeout = 300
providers = ["pg", "mysql"]
command = ["pytest", "tests/"]

[profile.ci]
workers = 8
maxfail = 5
junit-xml = "reports/herd.xml"
"#;

    #[test]
    fn profiles_inherit_the_default_and_flags_override_them() {
        let file = ConfigFile::parse(FILE, Path::new("herd.toml")).unwrap();
        let ci = file.profile("ci").unwrap();
        assert_eq!(
            (ci.workers, ci.maxfail, ci.timeout),
            (Some(8), Some(5), Some(300.0))
        );
        assert_eq!(
            ci.command,
            Some(vec!["pytest".to_string(), "tests/".to_string()])
        );
        let cli = Profile {
            workers: Some(2),
            ..Profile::default()
        };
        let merged = ci.merge(cli);
        assert_eq!((merged.workers, merged.maxfail), (Some(2), Some(5)));
        let config = merged.session_config(0).unwrap();
        assert_eq!(config.timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.junit_xml, Some(PathBuf::from("reports/herd.xml")));
        assert_eq!(config.providers, ["pg", "mysql"]);
        assert_eq!(config.grace, SessionConfig::default().grace);
        assert_eq!(file.profile("default").unwrap().workers, Some(4));
    }

    #[test]
    fn unknown_keys_and_profiles_are_clear_errors() {
        let err = ConfigFile::parse("[profile.default]\nworkerz = 3\n", Path::new("herd.toml"))
            .unwrap_err();
        assert!(
            err.starts_with("herd.toml:") && err.contains("unknown field `workerz`"),
            "{err}"
        );
        let err = ConfigFile::parse("[profiles.default]\n", Path::new("x.toml")).unwrap_err();
        assert!(err.contains("unknown field `profiles`"), "{err}");
        let err = ConfigFile::parse(
            "[profile.default]\nworkers = \"four\"\n",
            Path::new("h.toml"),
        )
        .unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let file = ConfigFile::parse(FILE, Path::new("herd.toml")).unwrap();
        assert!(file
            .profile("nightly")
            .unwrap_err()
            .contains("no profile \"nightly\" in the config file (it has: ci, default)"));
        let bad = Profile {
            timeout: Some(-1.0),
            ..Profile::default()
        };
        assert!(bad
            .session_config(0)
            .unwrap_err()
            .contains("--timeout -1 is out of range: give seconds from 0.001 to 604800"));
    }

    #[test]
    fn values_out_of_range_name_the_file_profile_and_key() {
        let err = |text: &str| ConfigFile::parse(text, Path::new("herd.toml")).unwrap_err();
        assert_eq!(
            err("[profile.ci]\ntimeout = 1e300\n"),
            "herd.toml [profile.ci]: timeout = 1e300 is out of range: give seconds from 0.001 \
             to 604800"
        );
        assert_eq!(
            err("[profile.default]\nworkers = 99999999999\n"),
            "herd.toml [profile.default]: workers = 99999999999 is out of range: give a number \
             of workers from 1 to 1024"
        );
        assert!(err("[profile.x]\ngrace = nan\n").contains("grace = NaN is not a number"));
        assert!(err("[profile.x]\nappliances = [\"a\", \"\"]\n")
            .contains("[profile.x]: appliances has an empty entry"));
        assert!(err("[profile.x]\nlist = \"\"\n").contains("list = \"\" is empty"));
        // A negative count is refused by its type, naming the key and the line.
        assert!(err("[profile.x]\nworkers = -1\n").contains("workers"));
    }

    #[test]
    fn the_nearest_herd_toml_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(find_config(&nested), None);
        std::fs::write(dir.path().join("a/herd.toml"), "").unwrap();
        assert_eq!(find_config(&nested), Some(dir.path().join("a/herd.toml")));
    }
}
