//! The options of `herd run`, written once: [`RunOptions`] is at the same time the flags (clap),
//! a profile of `herd.toml` (serde) and, through [`RunOptions::session_config`], the
//! [`SessionConfig`].
//!
//! ```text
//!   flags ───── clap ────┐
//!                        ├─> RunOptions ─ merge ─> RunOptions ─ session_config ─> SessionConfig
//!   herd.toml ── serde ──┘   flags over the profile over `default`
//!                  └─ check: the flags' ranges, naming the key
//! ```
//!
//! Every field is `Option`: `None` means "not given", so [`RunOptions::merge`] is one rule for
//! all of them. Adding an option means adding one field here (its help text, its clap and serde
//! attributes and, after `=>`, the range it is checked against in profiles) and its use in
//! [`RunOptions::session_config`].

use std::path::PathBuf;

use clap::ArgAction;
use herd_core::faults::FaultPlan;

use crate::session::{ColorChoice, SessionConfig};
use crate::values::{self, BadValue, ProfileValue, Seconds};

/// Declares [`RunOptions`] from its list of fields, with what every field needs besides its type
/// and attributes: [`RunOptions::merge`] (the one merge rule) and [`RunOptions::check`] (the
/// range after `=>`, if any).
macro_rules! run_options {
    (
        $(#[$meta:meta])*
        pub struct RunOptions {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $ty:ty $(=> $spec:expr)?,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct RunOptions {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl RunOptions {
            /// `self` with every option `over` gives replaced by `over`'s.
            pub fn merge(self, over: RunOptions) -> RunOptions {
                RunOptions {
                    $($field: over.$field.or(self.$field),)*
                }
            }

            /// Checks every value against its option's range (the same ranges as the flags'); the
            /// error names the key (`timeout = 1e300 is out of range: give seconds from 0.001 to
            /// 604800`).
            pub fn check(&self) -> Result<(), BadValue> {
                $($(
                    if let Some(value) = &self.$field {
                        $spec.check_profile_value(value)?;
                    }
                )?)*
                Ok(())
            }
        }
    };
}

/// A switch on the command line: `Some(true)` when given, `None` when not, so that an absent flag
/// does not override a profile. (Spelled with its full path so that clap takes it as one value.)
type Switch = std::option::Option<bool>;

/// The value parser of a [`Switch`]: clap's `false` for an absent flag becomes `None`.
fn switch() -> impl clap::builder::TypedValueParser<Value = Switch> {
    use clap::builder::TypedValueParser;
    clap::builder::BoolValueParser::new().map(|on| on.then_some(true))
}

run_options! {
    /// Every option of `herd run`, as the command line gives it and as a `[profile.NAME]` of
    /// `herd.toml` does (the keys are the long flag names): `None` means "not given".
    #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    pub struct RunOptions {
        /// Number of workers, 1 to 1024 (default: the number of CPUs). Example: -n 4
        #[arg(short = 'n', long = "workers", value_name = "N", allow_negative_numbers = true,
              value_parser = values::WORKERS.parser::<usize>())]
        pub workers: Option<usize> => values::WORKERS,
        /// Elastic sessions: deal no test until this many workers have joined, 1 to 1024
        /// (default 1); after --worker-start-timeout, deal to those that came.
        /// Example: --launcher external --min-workers 4
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::MIN_WORKERS_FLAG.parser::<usize>())]
        pub min_workers: Option<usize> => values::MIN_WORKERS_FLAG,
        /// Elastic sessions (--launcher external): replicas that join without --worker (`herd
        /// worker --connect URL --token-file F`) fill the awaited slots, then new ones up to this
        /// many, 1 to 1024 (default -n); a replica past it is told the session is full.
        /// Example: --launcher external -n 2 --max-workers 50
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::MAX_WORKERS_FLAG.parser::<usize>())]
        pub max_workers: Option<usize> => values::MAX_WORKERS_FLAG,
        /// A resource one worker owns exclusively (server URL, database, device); one worker per
        /// value, given to it as HERD_APPLIANCE. Example: --appliance db1 --appliance db2
        #[arg(long = "appliance", value_name = "VALUE", value_parser = values::APPLIANCE.parser())]
        pub appliances: Option<Vec<String>> => values::APPLIANCE,
        /// How tests are dealt out: modscope (module, then parametrize id; pytest's default), load
        /// (chunks sized from the remaining work; the exec runner's default), file, group (only
        /// herd_group marks tie tests). Example: --dist load
        #[arg(long, value_name = "MODE", value_parser = ["modscope", "load", "file", "group"])]
        pub dist: Option<String>,
        /// Where test durations are kept between runs, so groups are dealt longest first
        /// (default .herd/durations.json). Example: --history /tmp/herd-durations.json
        #[arg(long, value_name = "PATH")]
        pub history: Option<PathBuf>,
        /// Every worker collects the whole suite before its first test (by default a pytest
        /// suite's test files are shared out: each is collected by one worker, then by another
        /// only when tests of it are dealt there, and checked against the reference).
        /// Example: --collect-all
        #[arg(long, action = ArgAction::SetTrue, value_parser = switch())]
        pub collect_all: Switch,
        /// Provider names matched in parametrize ids; a provider's tests stick to the worker
        /// holding it. Example: --providers rhv,vsphere,ec2
        #[arg(long, value_name = "A,B,C", value_delimiter = ',',
              value_parser = values::PROVIDERS.parser())]
        pub providers: Option<Vec<String>> => values::PROVIDERS,
        /// Shell command run before a worker switches provider (gets HERD_APPLIANCE,
        /// HERD_PROVIDER_FROM, HERD_PROVIDER_TO). Example: --cleanse './cleanup.sh'
        #[arg(long, value_name = "CMD", value_parser = values::CLEANSE.parser())]
        pub cleanse: Option<String> => values::CLEANSE,
        /// Shell command run before each respawn with HERD_APPLIANCE set; if it fails, the slot is
        /// retired instead. Example: --appliance-check 'pg_isready -h "$HERD_APPLIANCE"'
        #[arg(long, value_name = "CMD", value_parser = values::APPLIANCE_CHECK.parser())]
        pub appliance_check: Option<String> => values::APPLIANCE_CHECK,
        /// Respawns allowed before the session stops, 0 to 100000 (default: 3 x workers).
        /// Example: --max-respawns 20
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::MAX_RESPAWNS.parser::<u32>())]
        pub max_respawns: Option<u32> => values::MAX_RESPAWNS,
        /// Count respawns only within this many seconds, 0.001 to 604800 (like OTP's intensity
        /// period). Example: --max-respawns 5 --respawn-window 60
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::RESPAWN_WINDOW.parser())]
        pub respawn_window: Option<f64> => values::RESPAWN_WINDOW,
        /// Retire a worker slot whose process died this many times in a row, 0 to 10000 (0:
        /// never; default 3).
        /// Example: --retire-after 5
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::RETIRE_AFTER.parser::<u32>())]
        pub retire_after: Option<u32> => values::RETIRE_AFTER,
        /// Re-run a test that crashed its worker up to N times (0 to 100) on a fresh worker before
        /// reporting it (default 0). Example: --crash-retries 1
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::CRASH_RETRIES.parser::<u32>())]
        pub crash_retries: Option<u32> => values::CRASH_RETRIES,
        /// Stop dealing out tests after N failures (0: no limit; at most 10000000); running tests
        /// finish. Example: --maxfail 5
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::MAXFAIL.parser::<usize>())]
        pub maxfail: Option<usize> => values::MAXFAIL,
        /// Stop after the first failure (--maxfail 1). Example: herd run -x -- pytest
        #[arg(short = 'x', long, conflicts_with = "maxfail", action = ArgAction::SetTrue,
              value_parser = switch())]
        pub exitfirst: Switch,
        /// Fail a test that runs longer than this many seconds, 0.001 to 604800 (its worker is
        /// killed and respawned). Example: --timeout 300
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::TIMEOUT.parser())]
        pub timeout: Option<f64> => values::TIMEOUT,
        /// Seconds a worker may take to exit after it shut down before it is killed, 0.001 to
        /// 604800 (default 10).
        /// Example: --grace 30
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::GRACE.parser())]
        pub grace: Option<f64> => values::GRACE,
        /// Seconds a new worker may take to report its collection before it is killed, 0.001 to
        /// 604800 (default 120).
        /// Example: --worker-start-timeout 600
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::WORKER_START_TIMEOUT.parser())]
        pub worker_start_timeout: Option<f64> => values::WORKER_START_TIMEOUT,
        /// Write the results as JUnit XML (for CI). Example: --junit-xml reports/herd.xml
        #[arg(long, value_name = "PATH")]
        pub junit_xml: Option<PathBuf>,
        /// List the N slowest tests at the end (0: all; at most 10000000), like pytest.
        /// Example: --durations 10
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = values::DURATIONS.parser::<usize>())]
        pub durations: Option<usize> => values::DURATIONS,
        /// Write every event as a JSON line to FILE. Example: --events events.jsonl
        #[arg(long, value_name = "FILE")]
        pub events: Option<PathBuf>,
        /// Directory for per-worker logs (their stdout and stderr; default .herd/logs).
        /// Example: --log-dir /tmp/herd-logs
        #[arg(long, value_name = "DIR")]
        pub log_dir: Option<PathBuf>,
        /// What starts the workers: local (default); external (herd prints the `herd worker
        /// --connect ...` command each worker must run, anywhere, and waits for it to join; needs
        /// --token-file); or a shell command template: {cmd} is the worker command (with its
        /// HERD_* environment), {host} a host of --hosts, {worker} the worker id, {appliance} its
        /// appliance.
        /// Example: --launcher 'ssh {host} {cmd}' --hosts node1,node2
        #[arg(long, value_name = "TEMPLATE", value_parser = values::LAUNCHER.parser())]
        pub launcher: Option<String> => values::LAUNCHER,
        /// Hosts for {host} in the --launcher template, dealt to the workers in turn (default -n:
        /// one worker per host). Example: --hosts node1,node2,node3
        #[arg(long, value_name = "A,B,C", value_delimiter = ',',
              value_parser = values::HOSTS.parser())]
        pub hosts: Option<Vec<String>> => values::HOSTS,
        /// A file holding the session token (its content, trimmed) that every worker must present;
        /// needed to listen beyond this machine. Example: --token-file ~/.herd-token
        #[arg(long, value_name = "FILE")]
        pub token_file: Option<PathBuf>,
        /// A shell command whose output, with herd's version, must be the same on every worker's
        /// host (workers run it themselves); a worker that differs is refused.
        /// Example: --fingerprint 'git rev-parse HEAD'
        #[arg(long, value_name = "CMD", value_parser = values::FINGERPRINT.parser())]
        pub fingerprint: Option<String> => values::FINGERPRINT,
        /// Inject faults into the workers, replayable from the seed: each rate is the chance per
        /// test started (kill, stop, term: signals; exit0, garble: the worker exits 0 or sends
        /// garbage; lie: per spawn, a wrong collection).
        /// Example: --chaos 'seed=7,kill=0.05,stop=0.02'
        #[arg(long, value_name = "PLAN", value_parser = values::CHAOS.parser())]
        pub chaos: Option<String> => values::CHAOS,
        /// Seconds a worker process may stay stopped (SIGSTOP, a debugger) before it is killed and
        /// its work re-queued, 0.001 to 604800 (default 2). Example: --hang-timeout 10
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::HANG_TIMEOUT.parser())]
        pub hang_timeout: Option<f64> => values::HANG_TIMEOUT,
        /// Seconds a worker that promised heartbeats (herd's own workers do, every second) may
        /// stay silent before it is taken for hung, killed and its work re-queued, 0.001 to 604800
        /// (default 5).
        /// Example: --heartbeat-timeout 30
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
              value_parser = values::HEARTBEAT_TIMEOUT.parser())]
        pub heartbeat_timeout: Option<f64> => values::HEARTBEAT_TIMEOUT,
        /// pytest runner: no pytest controller (by default one pytest process gets every report
        /// and writes pytest's own summary, --junitxml, --report-log and cache, once); herd's
        /// summary is then the report. Example: herd run --no-controller -- pytest
        #[arg(long, action = ArgAction::SetTrue, value_parser = switch())]
        pub no_controller: Switch,
        /// pytest runner: no fork server (by default one pytest process loads the conftest files
        /// and plugins once, and every local worker, first start and respawn, is forked from it
        /// as the collection starts). For suites that start threads or open connections at
        /// import. Example: herd run --no-fork -- pytest
        #[arg(long, action = ArgAction::SetTrue, value_parser = switch())]
        pub no_fork: Switch,
        /// Color the output: auto (on a terminal, unless NO_COLOR is set), always, never.
        /// Example: --color never
        #[arg(long, value_enum, value_name = "WHEN")]
        pub color: Option<ColorChoice>,
        /// The config file (default: herd.toml here or in the nearest parent directory).
        /// Example: --config ci/herd.toml
        #[arg(long, value_name = "PATH")]
        #[serde(skip)]
        pub config: Option<PathBuf>,
        /// The profile of the config file to use; every profile inherits `default`.
        /// Example: --profile ci
        #[arg(long, value_name = "NAME", env = "HERD_PROFILE",
              value_parser = values::PROFILE.parser())]
        #[serde(skip)]
        pub profile: Option<String>,
        /// ZeroMQ endpoint to bind (default: a private ipc socket); TCP lets workers on other hosts
        /// join (port 0: any free port). A non-loopback address needs --token-file.
        /// Example: --listen tcp://0.0.0.0:5555 --token-file token
        #[arg(long, visible_alias = "listen", value_name = "URL",
              value_parser = values::ENDPOINT.parser())]
        pub endpoint: Option<String> => values::ENDPOINT,
        /// Exec runner: shell command that prints one test id per line.
        /// Example: --list 'ls tests/*.sh'
        #[arg(long, value_name = "CMD", value_parser = values::LIST.parser())]
        pub list: Option<String> => values::LIST,
        /// The test command: on the command line, what follows `--` (see
        /// [`RunArgs`](crate::cli::RunArgs)).
        #[arg(skip)]
        pub command: Option<Vec<String>>,
    }
}

impl RunOptions {
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
            min_workers: self.min_workers.unwrap_or(1),
            max_workers: self.max_workers,
            appliances: self.appliances.clone().unwrap_or_default(),
            providers: trimmed(&self.providers),
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
            log_dir: self.log_dir.clone().or(defaults.log_dir),
            verbosity,
            handle_signals: true,
            dots: None,
            junit_xml: self.junit_xml.clone(),
            durations: self.durations,
            color: self.color.unwrap_or_default(),
            progress: None,
            launcher: self.launcher.clone(),
            hosts: trimmed(&self.hosts),
            token_file: self.token_file.clone(),
            fingerprint: self.fingerprint.clone(),
            faults: self.chaos.as_deref().map(FaultPlan::parse).transpose()?,
            hang_timeout: secs(values::HANG_TIMEOUT, self.hang_timeout)?
                .unwrap_or(defaults.hang_timeout),
            heartbeat_timeout: secs(values::HEARTBEAT_TIMEOUT, self.heartbeat_timeout)?
                .unwrap_or(defaults.heartbeat_timeout),
            dist: self.dist.as_deref().map(str::parse).transpose()?,
            history: self.history.clone().or(defaults.history),
            collect_all: self.collect_all.unwrap_or(false),
            controller: self.no_controller != Some(true),
            fork: self.no_fork != Some(true),
        })
    }
}

/// The entries of a list option, trimmed, without empty ones.
fn trimmed(list: &Option<Vec<String>>) -> Vec<String> {
    list.iter()
        .flatten()
        .map(|entry| entry.trim().to_string())
        .filter(|entry| !entry.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `herd run`'s options alone, as clap parses them.
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        options: RunOptions,
    }

    fn flags(args: &[&str]) -> RunOptions {
        Flags::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap()
            .options
    }

    #[test]
    fn options_not_given_are_none_so_they_do_not_override_a_profile() {
        assert_eq!(flags(&[]), RunOptions::default());
        let profile = RunOptions {
            exitfirst: Some(true),
            collect_all: Some(false),
            workers: Some(4),
            ..RunOptions::default()
        };
        assert_eq!(profile.clone().merge(flags(&[])), profile);
        let merged = profile.merge(flags(&["--collect-all", "-n", "2"]));
        assert_eq!(
            (merged.exitfirst, merged.collect_all, merged.workers),
            (Some(true), Some(true), Some(2))
        );
    }

    #[test]
    fn lists_are_given_whole() {
        let given = flags(&["--appliance", "a", "--appliance", "b", "--hosts", "x, y"]);
        assert_eq!(given.appliances, Some(vec!["a".into(), "b".into()]));
        let over = RunOptions {
            hosts: Some(vec!["z".into()]),
            ..RunOptions::default()
        };
        let merged = given.merge(over);
        assert_eq!(merged.session_config(0).unwrap().hosts, ["z"]);
        assert_eq!(merged.session_config(0).unwrap().appliances, ["a", "b"]);
    }

    #[test]
    fn profile_values_are_checked_with_the_flags_ranges() {
        let check = |options: RunOptions| options.check().map_err(|e| e.to_string());
        assert_eq!(check(flags(&["-n", "3", "--grace", "1"])), Ok(()));
        let cases = [
            (
                RunOptions {
                    max_respawns: Some(100_001),
                    ..RunOptions::default()
                },
                "max-respawns = 100001 is out of range",
            ),
            (
                RunOptions {
                    hang_timeout: Some(0.0),
                    ..RunOptions::default()
                },
                "hang-timeout = 0 is out of range",
            ),
            (
                RunOptions {
                    providers: Some(vec!["a".into(), " ".into()]),
                    ..RunOptions::default()
                },
                "providers has an empty entry",
            ),
            (
                RunOptions {
                    endpoint: Some(String::new()),
                    ..RunOptions::default()
                },
                "endpoint = \"\" is empty",
            ),
        ];
        for (options, expected) in cases {
            let msg = check(options).unwrap_err();
            assert!(msg.starts_with(expected), "{msg}");
        }
    }

    #[test]
    fn the_fork_server_is_on_unless_a_flag_or_a_profile_says_no_fork() {
        assert!(RunOptions::default().session_config(0).unwrap().fork);
        assert!(!flags(&["--no-fork"]).session_config(0).unwrap().fork);
        let profile: RunOptions = toml::from_str("no-fork = true").unwrap();
        assert!(!profile.merge(flags(&[])).session_config(0).unwrap().fork);
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let config = RunOptions::default().session_config(-1).unwrap();
        let defaults = SessionConfig::default();
        assert_eq!(config.log_dir, defaults.log_dir);
        assert_eq!(config.history, defaults.history);
        assert_eq!((config.grace, config.verbosity), (defaults.grace, -1));
        assert!(!config.collect_all && config.maxfail.is_none());
        let exitfirst = RunOptions {
            exitfirst: Some(true),
            maxfail: Some(3),
            ..RunOptions::default()
        };
        assert!(exitfirst.session_config(0).unwrap_err().contains("exclude"));
    }
}
