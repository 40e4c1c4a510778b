//! A session from start to end: collect the reference, check it, open a private endpoint, run the
//! actor tree, return the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herd_actors::output::LineFile;
use herd_actors::worker::XdistContract;
use herd_actors::{
    run_session, EventSubscriber, ExternalLauncher, Launcher, LocalLauncher, ReportFile,
    ReporterOptions, SessionPlan, SessionReport, TemplateLauncher, WorkerSettings, WorkerSlot,
};
use herd_core::diff::duplicates_error;
use herd_core::events::Stamped;
use herd_core::faults::FaultPlan;
use herd_core::grouping::{Dist, GroupingPolicy};
use herd_core::history::History;
use herd_core::outcome::exit_code;
use herd_core::protocol::{self, Token};
use herd_core::providers::Providers;
use herd_core::restart::{RespawnBudget, RetirePolicy};

use crate::runner::{Runner, RunnerError};
use crate::values;

/// Everything a session can be told, with the CLI's defaults.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Worker slots (`-n`); `None` means one per CPU (or one per appliance).
    pub workers: Option<usize>,
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

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The options do not make sense.
    #[error("{0}")]
    Usage(String),
    /// The reference collection could not be obtained or is unusable.
    #[error("{0}")]
    Collection(String),
    /// The suite has no tests.
    #[error("no tests collected")]
    NoTests,
    /// herd itself failed (endpoint, files).
    #[error("{0}")]
    Internal(String),
}

impl SessionError {
    /// The process exit code for this error (pytest's conventions).
    pub fn exit_code(&self) -> i32 {
        match self {
            SessionError::Usage(_) => exit_code::USAGE_ERROR,
            SessionError::Collection(_) => exit_code::INTERRUPTED,
            SessionError::NoTests => exit_code::NO_TESTS,
            SessionError::Internal(_) => exit_code::INTERNAL_ERROR,
        }
    }
}

impl From<RunnerError> for SessionError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::Collection(_) => SessionError::Collection(e.to_string()),
            RunnerError::Usage(msg) => SessionError::Usage(msg),
        }
    }
}

/// One run of a suite.
pub struct Session {
    config: SessionConfig,
    runner: Box<dyn Runner>,
    out: Box<dyn Write + Send>,
    out_is_stdout: bool,
    subscribers: Vec<EventSubscriber>,
    launcher: Option<Arc<dyn Launcher>>,
    grouping: Option<Arc<dyn GroupingPolicy>>,
}

impl Session {
    /// A session that runs `runner`'s suite with `config`, printing to stdout.
    pub fn new(config: SessionConfig, runner: Box<dyn Runner>) -> Session {
        Session {
            config,
            runner,
            out: Box::new(std::io::stdout()),
            out_is_stdout: true,
            subscribers: Vec::new(),
            launcher: None,
            grouping: None,
        }
    }

    /// Sends the user-facing output somewhere else than stdout.
    pub fn with_output(mut self, out: Box<dyn Write + Send>) -> Session {
        self.out = out;
        self.out_is_stdout = false;
        self
    }

    /// Starts workers with `launcher` instead of on this machine (overrides `config.launcher`).
    pub fn with_launcher(mut self, launcher: Arc<dyn Launcher>) -> Session {
        self.launcher = Some(launcher);
        self
    }

    /// Cuts the collection into groups with `grouping` (overrides `config.dist`). With a duration
    /// history (`config.history`) the groups are still dealt longest first.
    pub fn with_grouping(mut self, grouping: Arc<dyn GroupingPolicy>) -> Session {
        self.grouping = Some(grouping);
        self
    }

    /// Calls `subscriber` with every event of the session as it happens (the same typed events
    /// `--events` writes), on the session's thread.
    pub fn on_event(mut self, subscriber: impl FnMut(&Stamped) + Send + 'static) -> Session {
        self.subscribers.push(Box::new(subscriber));
        self
    }

    /// The worker slots the config asks for.
    pub fn slots(config: &SessionConfig) -> Result<Vec<WorkerSlot>, SessionError> {
        if !config.appliances.is_empty() {
            values::WORKERS
                .check(
                    || format!("{} --appliance values", config.appliances.len()),
                    config.appliances.len() as u64,
                )
                .map_err(|e| SessionError::Usage(e.to_string()))?;
            if let Some(n) = config.workers.filter(|n| *n != config.appliances.len()) {
                return Err(SessionError::Usage(format!(
                    "-n {n} conflicts with {} --appliance values (one worker per appliance)",
                    config.appliances.len()
                )));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = config.appliances.iter().find(|a| !seen.insert(a.as_str())) {
                return Err(SessionError::Usage(format!(
                    "--appliance {dup} is given twice"
                )));
            }
            return Ok(config
                .appliances
                .iter()
                .enumerate()
                .map(|(i, a)| WorkerSlot {
                    id: format!("w{}", i + 1),
                    appliance: Some(a.clone()),
                })
                .collect());
        }
        let n = config.workers.unwrap_or_else(|| {
            if config.hosts.is_empty() {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                config.hosts.len()
            }
        });
        values::WORKERS
            .check_flag(n)
            .map_err(|e| SessionError::Usage(e.to_string()))?;
        Ok((1..=n)
            .map(|i| WorkerSlot {
                id: format!("w{i}"),
                appliance: None,
            })
            .collect())
    }

    /// Runs the session in a new actix system and returns its report.
    pub fn run(self) -> Result<SessionReport, SessionError> {
        let system = actix::System::new();
        let result = system.block_on(self.run_in_system());
        drop(system);
        result
    }

    /// Runs the session inside an actix system that is already running.
    pub async fn run_in_system(self) -> Result<SessionReport, SessionError> {
        let Session {
            config,
            runner,
            out,
            out_is_stdout,
            subscribers,
            launcher,
            grouping,
        } = self;
        config.check()?;
        let grouping =
            grouping.unwrap_or_else(|| config.dist.unwrap_or(runner.default_dist()).policy());
        let token = check_remote_options(&config)?;
        let slots = Session::slots(&config)?;
        let launcher: Arc<dyn Launcher> = match (launcher, config.launcher.as_deref()) {
            (Some(launcher), _) => launcher,
            (None, None | Some("local")) => Arc::new(LocalLauncher),
            (None, Some("external")) => {
                let herd = std::env::current_exe()
                    .map_or_else(|_| "herd".to_string(), |p| p.display().to_string());
                let token_file = config.token_file.as_ref().map_or_else(String::new, |p| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                });
                Arc::new(ExternalLauncher::new(
                    herd,
                    token_file,
                    runner.remote_worker_args()?,
                ))
            }
            (None, Some(template)) => {
                let hosts = slots
                    .iter()
                    .zip(config.hosts.iter().cycle())
                    .map(|(slot, host)| (slot.id.clone(), host.clone()))
                    .collect();
                Arc::new(
                    TemplateLauncher::new(template)
                        .map_err(SessionError::Usage)?
                        .with_hosts(hosts),
                )
            }
        };
        let terminal = out_is_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let color = match config.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        let progress_bar =
            out_is_stdout && config.progress.unwrap_or(terminal && config.verbosity >= 0);
        let mut command = runner.worker_command()?;
        let fingerprint = match &config.fingerprint {
            Some(cmd) => {
                let output =
                    crate::client::run_fingerprint_cmd(cmd).map_err(SessionError::Usage)?;
                command
                    .env
                    .push((protocol::ENV_FINGERPRINT_CMD.into(), cmd.clone().into()));
                protocol::fingerprint(env!("CARGO_PKG_VERSION"), Some(&output))
            }
            None => protocol::fingerprint(env!("CARGO_PKG_VERSION"), None),
        };
        if !config.controller {
            if let Some(option) = runner.file_for_controller() {
                return Err(SessionError::Usage(format!(
                    "{option} is written by pytest's controller, which --no-controller turns off \
                     (the workers leave it to the controller, as pytest-xdist's workers do): drop \
                     --no-controller, or use herd's own --junit-xml or --events"
                )));
            }
        }
        let controller = runner.controller_command().filter(|_| config.controller);
        if controller.is_some() {
            command
                .env
                .push((crate::pytest::ENV_REPORTS.into(), "1".into()));
        }
        let reference = runner.collect()?;
        let reference_known = reference.is_some();
        if let Some(reference) = &reference {
            check_reference(reference)?;
        }
        // Every output path is checked before any worker starts: a wrong one is a usage error.
        let events = match &config.events {
            Some(path) => Some(LineFile::new(
                "--events",
                path.clone(),
                open_output("--events", path)?,
            )),
            None => None,
        };
        let mut report_files = Vec::new();
        if let Some(path) = &config.junit_xml {
            report_files.push(junit_file(path.clone(), open_output("--junit-xml", path)?));
        }
        if let Some(dir) = &config.log_dir {
            check_output_dir("--log-dir", dir)?;
        }
        report_files.extend(config.history.clone().map(history_file));
        // The session's private directory: the ipc socket and the workers' status files.
        let private = private_dir()?;
        let endpoint = match &config.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("ipc://{}/herd.sock", private.path().display()),
        };
        let budget = RespawnBudget::new(
            config
                .max_respawns
                .unwrap_or_else(|| RespawnBudget::default_for(slots.len())),
            config.respawn_window,
        );
        // A worker that finds the command line wrong leaves its output here (see
        // WorkerSettings::usage_error).
        let usage_error = Arc::new(std::sync::OnceLock::new());
        let xdist = runner
            .xdist_contract()
            .then(|| XdistContract::new(slots.len()));
        let plan = SessionPlan {
            runner: runner.name().to_string(),
            slots,
            reference,
            shard_collection: runner.shards_collection() && !config.collect_all,
            worker: WorkerSettings {
                command,
                launcher,
                endpoint,
                token,
                timeout: config.timeout,
                start_timeout: config.start_timeout,
                grace: config.grace,
                cleanse: config.cleanse.clone(),
                appliance_check: config.appliance_check.clone(),
                hook_timeout: config.hook_timeout,
                retire: RetirePolicy {
                    after_consecutive_crashes: config.retire_after,
                },
                log_dir: config.log_dir.clone(),
                status_dir: Some(private.path().to_path_buf()),
                faults: config.faults.clone(),
                reference_known,
                hang_timeout: config.hang_timeout,
                heartbeat_timeout: config.heartbeat_timeout,
                fingerprint,
                fingerprint_required: config.fingerprint.is_some(),
                live_output: runner.live_output(),
                usage_exit: runner.usage_exit_code(),
                usage_error: usage_error.clone(),
                xdist,
            },
            grouping,
            history: config
                .history
                .as_deref()
                .map(load_history)
                .unwrap_or_default(),
            providers: Providers::new(config.providers.iter().cloned()),
            crash_retries: config.crash_retries,
            budget,
            handle_signals: config.handle_signals,
        };
        let output = ReporterOptions {
            out,
            events,
            report_files,
            verbosity: config.verbosity,
            maxfail: smaller_limit(config.maxfail, runner.maxfail()),
            dots: config.dots.unwrap_or(runner.prefers_dots()),
            durations: config.durations,
            subscribers,
            progress_bar,
            color,
            controller,
        };
        let report = run_session(plan, output)
            .await
            .map_err(|e| SessionError::Internal(e.to_string()))?;
        match usage_error.get() {
            Some(output) => Err(SessionError::Usage(format!(
                "{} refused the command line (exit code {}):\n{output}",
                runner.name(),
                runner.usage_exit_code().unwrap_or_default()
            ))),
            None => Ok(report),
        }
    }
}

/// The smaller of two failure limits, where `None` and 0 mean no limit (herd's `--maxfail` and
/// the runner's own, pytest's `--maxfail`/`-x` after `--`).
fn smaller_limit(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    let limit = |n: Option<usize>| n.filter(|n| *n > 0);
    match (limit(a), limit(b)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `--junit-xml`, written from the finished report into `file`; a file that could not be
/// written whole is removed, so CI never reads half a report.
fn junit_file(path: PathBuf, file: std::fs::File) -> ReportFile {
    let at = path.clone();
    ReportFile {
        what: "--junit-xml".into(),
        path,
        fails_session: true,
        consequence: "the partial file was removed; the summary above has every outcome".into(),
        write: Box::new(move |report| {
            crate::junit::write_junit(report, file).inspect_err(|_| {
                let _ = std::fs::remove_file(&at);
            })
        }),
    }
}

/// The duration history, saved from the finished report. Not a result: a failed save is a
/// warning (the old history stays whole, as saves are atomic), not a failed session.
fn history_file(path: PathBuf) -> ReportFile {
    let at = path.clone();
    ReportFile {
        what: "the duration history".into(),
        path,
        fails_session: false,
        consequence: "the previous history is kept; the next run orders tests without this \
                      run's durations"
            .into(),
        write: Box::new(move |report| save_history(&at, report)),
    }
}

/// The duration history at `path`; a missing file is an empty history, a corrupt one is
/// rebuilt (with a warning).
fn load_history(path: &std::path::Path) -> History {
    match std::fs::read_to_string(path) {
        Err(_) => History::default(),
        Ok(text) => History::parse(&text).unwrap_or_else(|e| {
            tracing::warn!(
                "the duration history {} is corrupt ({e}); rebuilding it",
                path.display()
            );
            History::default()
        }),
    }
}

/// Adds this run's durations to the history at `path`. Safe against concurrent runs: the file is
/// re-read just before writing, and replaced atomically (a temporary file, then a rename), so a
/// reader never sees half a file.
fn save_history(path: &std::path::Path, report: &SessionReport) -> std::io::Result<()> {
    use herd_core::outcome::Outcome;
    let mut history = load_history(path);
    let ran = report.results.iter().filter(|r| {
        r.worker.is_some()
            && !matches!(
                r.verdict.outcome,
                Outcome::Crashed | Outcome::TimedOut | Outcome::NotRun
            )
    });
    history.record(ran.map(|r| (r.test.clone(), r.verdict.duration)));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(history.to_json().as_bytes())?;
        file.sync_all()
    });
    let saved = written.and_then(|()| std::fs::rename(&tmp, path));
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    saved
}

/// Checks the options for workers on other hosts and returns the session token: the token file's
/// (trimmed), else a fresh random one. Listening beyond this machine without a token file, or
/// awaiting external workers without one, is refused: they could not authenticate.
fn check_remote_options(config: &SessionConfig) -> Result<Token, SessionError> {
    let external = config.launcher.as_deref() == Some("external");
    if config.token_file.is_none() {
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !endpoint_is_local(e)) {
            return Err(SessionError::Usage(format!(
                "listening on {endpoint} (reachable from other machines) needs --token-file FILE: \
                 workers must present its secret (traffic is not encrypted; see the README)"
            )));
        }
        if external {
            return Err(SessionError::Usage(
                "--launcher external needs --token-file FILE (each worker reads the session token \
                 from its own copy)"
                    .into(),
            ));
        }
    }
    if !config.hosts.is_empty()
        && config
            .launcher
            .as_deref()
            .is_none_or(|l| !l.contains("{host}"))
    {
        return Err(SessionError::Usage(
            "--hosts needs a --launcher template with {host} (like 'ssh {host} {cmd}')".into(),
        ));
    }
    match &config.token_file {
        None => Ok(Token::generate()),
        Some(path) => {
            warn_if_readable_by_others(path);
            crate::client::read_token_file(path)
                .map(Token::from_secret)
                .map_err(SessionError::Usage)
        }
    }
}

/// Whether only this machine can reach `endpoint`: an `ipc://` or `inproc://` socket, or TCP on a
/// loopback address.
pub fn endpoint_is_local(endpoint: &str) -> bool {
    if endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://") {
        return true;
    }
    let Some(rest) = endpoint.strip_prefix("tcp://") else {
        return false;
    };
    // `tcp://HOST:PORT`; a `SOURCE;` prefix names a local interface to connect from.
    let rest = rest.rsplit(';').next().unwrap_or(rest);
    let Some((host, _port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "lo"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the token file {} is readable by other users (chmod 600 it)",
                path.display()
            );
        }
    }
}

/// A reference collection must name at least one test, each once.
fn check_reference(reference: &[herd_core::TestId]) -> Result<(), SessionError> {
    if reference.is_empty() {
        return Err(SessionError::NoTests);
    }
    match duplicates_error(reference) {
        Some(why) => Err(SessionError::Collection(why)),
        None => Ok(()),
    }
}

/// Creates (truncates) the output file `path` of `flag`, and its parent directories, or says
/// what is wrong with the path (a usage error).
fn open_output(flag: &str, path: &Path) -> Result<std::fs::File, SessionError> {
    let usage = |what: String| {
        SessionError::Usage(format!(
            "cannot write {flag} {}: {what}; give a file path herd can write",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(usage("it is a directory".into()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dir(parent).map_err(usage)?;
    }
    std::fs::File::create(path).map_err(|e| usage(e.to_string()))
}

/// Creates the output directory `dir` of `flag` (if need be) and checks that files can be
/// created in it (a usage error if not).
fn check_output_dir(flag: &str, dir: &Path) -> Result<(), SessionError> {
    let usage = |what: String| {
        SessionError::Usage(format!(
            "cannot write in {flag} {}: {what}; give a directory herd can write",
            dir.display()
        ))
    };
    make_dir(dir).map_err(usage)?;
    tempfile::Builder::new()
        .prefix(".herd-probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| usage(e.to_string()))
}

/// Creates `dir` and its parents; the error names an ancestor that is a file (where the OS
/// would only say "File exists" or "Not a directory").
fn make_dir(dir: &Path) -> Result<(), String> {
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is a file, not a directory", ancestor.display())),
            Err(_) => continue,
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}

/// A fresh directory only this user can enter, removed when dropped.
fn private_dir() -> Result<tempfile::TempDir, SessionError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("herd-")
        .tempdir()
        .map_err(|e| SessionError::Internal(format!("cannot create a private directory: {e}")))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(|e| {
        SessionError::Internal(format!("cannot make {} private: {e}", dir.path().display()))
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_appliances_or_n() {
        let config = SessionConfig {
            workers: Some(3),
            ..SessionConfig::default()
        };
        let ids: Vec<String> = Session::slots(&config)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["w1", "w2", "w3"]);
        let config = SessionConfig {
            appliances: vec!["db1".into(), "db2".into()],
            ..SessionConfig::default()
        };
        let slots = Session::slots(&config).unwrap();
        assert_eq!(
            slots[1],
            WorkerSlot {
                id: "w2".into(),
                appliance: Some("db2".into())
            }
        );
        let config = SessionConfig {
            workers: Some(3),
            appliances: vec!["a".into()],
            ..SessionConfig::default()
        };
        assert!(matches!(
            Session::slots(&config),
            Err(SessionError::Usage(_))
        ));
        let config = SessionConfig {
            appliances: vec!["a".into(), "a".into()],
            ..SessionConfig::default()
        };
        assert!(Session::slots(&config)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let config = SessionConfig {
            workers: Some(0),
            ..SessionConfig::default()
        };
        assert_eq!(Session::slots(&config).unwrap_err().exit_code(), 4);
    }

    #[test]
    fn values_an_embedder_gives_are_checked_not_panicked_on() {
        let usage = |config: SessionConfig| match config.check() {
            Err(SessionError::Usage(msg)) => msg,
            other => panic!("a usage error expected, got {other:?}"),
        };
        let msg = usage(SessionConfig {
            timeout: Some(Duration::MAX),
            ..SessionConfig::default()
        });
        assert!(
            msg.starts_with("--timeout 1.8446744073709552e19 is out of range"),
            "{msg}"
        );
        let msg = usage(SessionConfig {
            workers: Some(99_999_999_999),
            ..SessionConfig::default()
        });
        assert!(
            msg.contains("give a number of workers from 1 to 1024"),
            "{msg}"
        );
        let msg = usage(SessionConfig {
            appliances: vec!["db1".into(), " ".into()],
            ..SessionConfig::default()
        });
        assert!(msg.starts_with("--appliance ' ' is empty"), "{msg}");
        let msg = usage(SessionConfig {
            heartbeat_timeout: Duration::ZERO,
            ..SessionConfig::default()
        });
        assert!(
            msg.contains("--heartbeat-timeout 0 is out of range"),
            "{msg}"
        );
        assert!(SessionConfig::default().check().is_ok());
        let many = SessionConfig {
            appliances: (0..2000).map(|i| format!("a{i}")).collect(),
            ..SessionConfig::default()
        };
        assert!(Session::slots(&many)
            .unwrap_err()
            .to_string()
            .contains("2000 --appliance values is out of range"));
    }

    #[test]
    fn only_loopback_and_ipc_endpoints_are_local() {
        for local in [
            "ipc:///tmp/herd.sock",
            "tcp://127.0.0.1:0",
            "tcp://127.1.2.3:5555",
            "tcp://localhost:5555",
            "tcp://[::1]:5555",
        ] {
            assert!(endpoint_is_local(local), "{local}");
        }
        for open in [
            "tcp://0.0.0.0:5555",
            "tcp://*:5555",
            "tcp://10.0.0.1:5555",
            "tcp://eth0:5555",
            "tcp://[::]:5555",
            "ws://127.0.0.1:5555",
        ] {
            assert!(!endpoint_is_local(open), "{open}");
        }
    }

    #[test]
    fn open_endpoints_and_external_workers_need_a_token_file() {
        let config = SessionConfig {
            endpoint: Some("tcp://0.0.0.0:5555".into()),
            ..SessionConfig::default()
        };
        let err = check_remote_options(&config).unwrap_err();
        assert!(err.to_string().contains("--token-file"), "{err}");
        assert_eq!(err.exit_code(), 4);
        let config = SessionConfig {
            launcher: Some("external".into()),
            ..SessionConfig::default()
        };
        assert!(check_remote_options(&config).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        let config = SessionConfig {
            endpoint: Some("tcp://0.0.0.0:5555".into()),
            token_file: Some(file.clone()),
            ..SessionConfig::default()
        };
        assert_eq!(check_remote_options(&config).unwrap().as_str(), "s3cret");
        std::fs::write(&file, "\n").unwrap();
        assert!(check_remote_options(&config)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let config = SessionConfig {
            hosts: vec!["a".into()],
            launcher: Some("ssh x {cmd}".into()),
            ..SessionConfig::default()
        };
        assert!(check_remote_options(&config)
            .unwrap_err()
            .to_string()
            .contains("{host}"));
    }

    #[test]
    fn an_output_path_says_what_is_wrong_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("afile");
        std::fs::write(&file, "").unwrap();
        let err = open_output("--junit-xml", &file.join("x.xml")).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} is a file, not a directory", file.display())),
            "{text}"
        );
        let err = check_output_dir("--log-dir", &file)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot write in --log-dir"), "{err}");
        assert!(err.contains("is a file, not a directory"), "{err}");
        let err = open_output("--events", dir.path()).unwrap_err().to_string();
        assert!(err.contains("it is a directory"), "{err}");
        let nested = dir.path().join("a/b/e.jsonl");
        assert!(open_output("--events", &nested).is_ok());
        assert!(check_output_dir("--log-dir", &dir.path().join("logs")).is_ok());
        // The writability probe leaves nothing behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_smaller_failure_limit_wins_and_zero_is_none() {
        assert_eq!(smaller_limit(Some(5), Some(2)), Some(2));
        assert_eq!(smaller_limit(Some(1), Some(3)), Some(1));
        assert_eq!(smaller_limit(None, Some(3)), Some(3));
        assert_eq!(smaller_limit(Some(4), Some(0)), Some(4));
        assert_eq!(smaller_limit(None, None), None);
    }

    #[test]
    fn private_dir_is_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
