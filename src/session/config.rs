//! What a session can be told (`SessionConfig`), its defaults and its checks.

use super::*;

/// Everything a session can be told, with the CLI's defaults.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Worker slots (`-n`); `None` means one per CPU (or one per appliance).
    pub workers: Option<usize>,
    /// `--min-workers`: dealing starts once this many workers have joined (or after the start
    /// timeout).
    pub min_workers: usize,
    /// `--max-workers`: with `--launcher external`, replicas joining without naming a slot may
    /// make new slots up to this many live ones (`None`: the slots of `-n`).
    pub max_workers: Option<usize>,
    /// `--appliance`: one worker per value, which it owns exclusively.
    pub appliances: Vec<String>,
    /// `--providers`: names matched in parametrize ids.
    pub providers: Vec<String>,
    /// `--cleanse CMD`: run before a worker switches provider.
    pub cleanse: Option<String>,
    /// `--appliance-check CMD`: run before each respawn; failing retires the slot.
    pub appliance_check: Option<String>,
    /// `--max-respawns`: default three per worker.
    pub max_respawns: Option<u32>,
    /// `--respawn-window`: count respawns only within this period (OTP's intensity).
    pub respawn_window: Option<Duration>,
    /// `--retire-after`: retire a slot after this many consecutive crashes (0: never).
    pub retire_after: u32,
    /// `--crash-retries`: re-run a test that crashed its worker up to this many times.
    pub crash_retries: u32,
    /// `--maxfail` / `-x`.
    pub maxfail: Option<usize>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--grace`: time a worker has to exit after `shutdown`.
    pub grace: Duration,
    /// `--worker-start-timeout`: time a new worker has to report its collection.
    pub start_timeout: Duration,
    /// Time a cleanse or appliance-check hook may take.
    pub hook_timeout: Duration,
    /// Endpoint to bind; a private `ipc://` socket when `None`.
    pub endpoint: Option<String>,
    /// `--events FILE`.
    pub events: Option<PathBuf>,
    /// Where per-worker logs go (`None`: no logs).
    pub log_dir: Option<PathBuf>,
    /// Output detail: negative quieter, 1 `-v`, 2 `-vv`.
    pub verbosity: i8,
    /// Whether the session handles SIGINT, SIGTERM and SIGQUIT.
    pub handle_signals: bool,
    /// Progress characters instead of a line per test at verbosity 0 (`None`: the runner's
    /// preference, pytest's dots for pytest).
    pub dots: Option<bool>,
    /// `--junit-xml PATH`: write the results as JUnit XML.
    pub junit_xml: Option<PathBuf>,
    /// `--durations N`: list the N slowest tests (0: all).
    pub durations: Option<usize>,
    /// `--color`: color the outcome words.
    pub color: ColorChoice,
    /// A live progress bar; `None`: when the output is a terminal.
    pub progress: Option<bool>,
    /// `--launcher`: `local` (the default), `external` (herd prints the command each worker must
    /// run, anywhere, and waits for it to join), or a command template (`ssh {host} {cmd}`).
    pub launcher: Option<String>,
    /// `--hosts`: hosts for `{host}` in a launcher template, dealt to the slots in turn.
    pub hosts: Vec<String>,
    /// `--token-file`: the session token, shared with workers on other hosts (a fresh random
    /// token when `None`). Required to listen on a non-loopback address.
    pub token_file: Option<PathBuf>,
    /// `--fingerprint CMD`: its output (and herd's version) must be the same for every worker.
    pub fingerprint: Option<String>,
    /// `--chaos`: faults to inject into the workers.
    pub faults: Option<FaultPlan>,
    /// `--hang-timeout`: how long a worker may stay stopped before it is killed.
    pub hang_timeout: Duration,
    /// `--heartbeat-timeout`: how long a worker that promised heartbeats may stay silent.
    pub heartbeat_timeout: Duration,
    /// `--history PATH`: where test durations are kept between runs (`None`: no history).
    pub history: Option<PathBuf>,
    /// `--dist`: how tests are dealt out (`None`: the runner's default, `load` for exec,
    /// `modscope` for pytest).
    pub dist: Option<Dist>,
    /// `--collect-all`: every worker collects the whole suite, even when the runner can share
    /// collection out file by file.
    pub collect_all: bool,
    /// Whether the runner's controller (pytest's: its own summary, `--junitxml`, cache) is
    /// started; `--no-controller` turns it off.
    pub controller: bool,
    /// Whether local workers are forked from a fork server when the runner can (pytest);
    /// `--no-fork` turns it off.
    pub fork: bool,
}

/// When to color the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            workers: None,
            min_workers: 1,
            max_workers: None,
            appliances: Vec::new(),
            providers: Vec::new(),
            cleanse: None,
            appliance_check: None,
            max_respawns: None,
            respawn_window: None,
            retire_after: RetirePolicy::default().after_consecutive_crashes,
            crash_retries: 0,
            maxfail: None,
            timeout: None,
            grace: Duration::from_secs(10),
            start_timeout: Duration::from_secs(120),
            hook_timeout: Duration::from_secs(300),
            endpoint: None,
            events: None,
            log_dir: Some(PathBuf::from(".herd/logs")),
            verbosity: 0,
            handle_signals: true,
            dots: None,
            junit_xml: None,
            durations: None,
            color: ColorChoice::Auto,
            progress: None,
            launcher: None,
            hosts: Vec::new(),
            token_file: None,
            fingerprint: None,
            faults: None,
            hang_timeout: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(5),
            history: Some(PathBuf::from(".herd/durations.json")),
            dist: None,
            collect_all: false,
            controller: true,
            fork: true,
        }
    }
}

impl SessionConfig {
    /// Checks every value against the range its flag has (see [`crate::values`]): a value out
    /// of range, or an empty name or command, is a usage error instead of a panic later.
    pub fn check(&self) -> Result<(), SessionError> {
        self.check_values()
            .map_err(|e| SessionError::Usage(e.to_string()))
    }

    fn check_values(&self) -> Result<(), values::BadValue> {
        if let Some(n) = self.workers {
            values::WORKERS.check_flag(n)?;
        }
        values::MIN_WORKERS_FLAG.check_flag(self.min_workers)?;
        if let Some(n) = self.max_workers {
            values::MAX_WORKERS_FLAG.check_flag(n)?;
        }
        if let Some(n) = self.max_respawns {
            values::MAX_RESPAWNS.check_flag(n)?;
        }
        values::RETIRE_AFTER.check_flag(self.retire_after)?;
        values::CRASH_RETRIES.check_flag(self.crash_retries)?;
        self.maxfail
            .map(|n| values::MAXFAIL.check_flag(n))
            .transpose()?;
        self.durations
            .map(|n| values::DURATIONS.check_flag(n))
            .transpose()?;
        let durations = [
            (values::TIMEOUT, self.timeout),
            (values::RESPAWN_WINDOW, self.respawn_window),
            (values::GRACE, Some(self.grace)),
            (values::WORKER_START_TIMEOUT, Some(self.start_timeout)),
            (values::HOOK_TIMEOUT, Some(self.hook_timeout)),
            (values::HANG_TIMEOUT, Some(self.hang_timeout)),
            (values::HEARTBEAT_TIMEOUT, Some(self.heartbeat_timeout)),
        ];
        for (spec, value) in durations {
            value.map(|d| spec.check(d)).transpose()?;
        }
        let lists = [
            (values::APPLIANCE, &self.appliances),
            (values::PROVIDERS, &self.providers),
            (values::HOSTS, &self.hosts),
        ];
        for (spec, list) in lists {
            list.iter().try_for_each(|v| spec.check_flag(v))?;
        }
        let texts = [
            (values::CLEANSE, &self.cleanse),
            (values::APPLIANCE_CHECK, &self.appliance_check),
            (values::LAUNCHER, &self.launcher),
            (values::FINGERPRINT, &self.fingerprint),
            (values::ENDPOINT, &self.endpoint),
        ];
        for (spec, text) in texts {
            text.as_deref().map(|t| spec.check_flag(t)).transpose()?;
        }
        Ok(())
    }
}
