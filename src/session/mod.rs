//! A session from start to end: collect the reference, check it, open a private endpoint, run the
//! actor tree, return the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herd_actors::output::LineFile;
use herd_actors::worker::XdistContract;
use herd_actors::{
    run_session, EventSubscriber, ExternalLauncher, Joins, Launcher, LocalLauncher, ReportFile,
    ReporterOptions, SessionPlan, SessionReport, TemplateLauncher, WorkerCommand, WorkerSettings,
    WorkerSlot,
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

mod config;
mod files;
mod limits;
mod remote;

pub use config::{ColorChoice, SessionConfig};
use files::*;
pub use remote::endpoint_is_local;
use remote::*;

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The options do not make sense.
    #[error("{0}")]
    Usage(String),
    /// The runner refused the command line (pytest's usage error): its own message.
    #[error("{0}")]
    Refused(String),
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
            SessionError::Usage(_) | SessionError::Refused(_) => exit_code::USAGE_ERROR,
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
        let launcher = make_launcher(launcher, &config, runner.as_ref(), &slots)?;
        let joins = joins(&config, runner.as_ref(), &slots)?;
        limits::raise_file_limit(joins.as_ref().map_or(slots.len(), |j| j.max_workers))?;
        let (color, progress_bar) = terminal_settings(&config, out_is_stdout);
        let (command, fingerprint, controller) = commands(&config, runner.as_ref())?;
        let reference = runner.collect()?;
        let reference_known = reference.is_some();
        if let Some(reference) = &reference {
            check_reference(reference)?;
        }
        // Every output path is checked before any worker starts: a wrong one is a usage error.
        let (events, report_files) = outputs(&config)?;
        // The session's private directory: the ipc socket and the workers' status files.
        let private = private_dir()?;
        let endpoint = match &config.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("ipc://{}/herd.sock", private.path().display()),
        };
        let budget = respawn_budget(&config, slots.len());
        // A worker that finds the command line wrong leaves its output here (see
        // WorkerSettings::usage_error).
        let usage_error = Arc::new(std::sync::OnceLock::new());
        let xdist = runner
            .xdist_contract()
            .then(|| XdistContract::new(slots.len()));
        let (mut command, mut controller) = (command, controller);
        if let (Some(controller), Some(xdist)) = (controller.as_mut(), &xdist) {
            share_nodes(private.path(), &slots, xdist, &mut command, controller);
        }
        let fork_server = fork_server(&config, runner.as_ref(), launcher.as_ref());
        let plan = SessionPlan {
            runner: runner.name().to_string(),
            slots,
            reference,
            // Forked workers collect as plain ones do: a shard each, then file by file.
            shard_collection: runner.shards_collection() && !config.collect_all,
            worker: worker_settings(
                &config,
                runner.as_ref(),
                Wiring {
                    command,
                    launcher,
                    endpoint,
                    token,
                    status_dir: private.path().to_path_buf(),
                    reference_known,
                    fingerprint,
                    usage_error: usage_error.clone(),
                    xdist,
                    fork_server,
                },
            ),
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
            joins,
            min_workers: config.min_workers,
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
            usage_error: Some(usage_error.clone()),
            name_workers: config.launcher.as_deref() == Some("external"),
        };
        Session::run_plan(plan, output, &usage_error).await
    }

    /// Runs the planned session; the runner's own usage message, when a worker found the
    /// command line wrong, instead of the report.
    async fn run_plan(
        plan: SessionPlan,
        output: ReporterOptions,
        usage_error: &std::sync::OnceLock<String>,
    ) -> Result<SessionReport, SessionError> {
        let report = run_session(plan, output)
            .await
            .map_err(|e| SessionError::Internal(e.to_string()))?;
        match usage_error.get() {
            // The runner's own message, as the runner alone prints it.
            Some(output) => Err(SessionError::Refused(output.clone())),
            None => Ok(report),
        }
    }
}

/// The environment that ties the controller's xdist nodes to the workers (see
/// `herd_pytest.nodes`): the nodes file, which the controller writes once it has called
/// `pytest_configure_node` for every slot and each worker merges into its `workerinput`
/// (first, the only one the workers get), the slots' ids and the test-run id.
fn controller_nodes(
    private: &std::path::Path,
    ids: &[&str],
    xdist: &XdistContract,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    vec![
        (
            "HERD_PYTEST_NODES".into(),
            private.join("controller-nodes.json").into_os_string(),
        ),
        ("HERD_PYTEST_WORKERS".into(), ids.join(",").into()),
        (
            "HERD_PYTEST_TESTRUNUID".into(),
            xdist.test_run_uid.clone().into(),
        ),
    ]
}

/// What the session itself works out for its workers, beside what the config and the runner say.
struct Wiring {
    command: WorkerCommand,
    launcher: Arc<dyn Launcher>,
    endpoint: String,
    token: Token,
    status_dir: PathBuf,
    reference_known: bool,
    fingerprint: String,
    usage_error: Arc<std::sync::OnceLock<String>>,
    xdist: Option<XdistContract>,
    /// Whether the workers are forked from a fork server.
    fork_server: bool,
}

/// Whether the session forks its workers from a fork server ([`herd_core::fork::decide`]).
/// `--max-respawns` (default: 3 x workers) within `--respawn-window`.
fn respawn_budget(config: &SessionConfig, slots: usize) -> RespawnBudget {
    RespawnBudget::new(
        config
            .max_respawns
            .unwrap_or_else(|| RespawnBudget::default_for(slots)),
        config.respawn_window,
    )
}

/// Where the controller's plugins' `workerinput` for each slot is written (the nodes file), for
/// the controller and the workers alike.
fn share_nodes(
    private: &Path,
    slots: &[WorkerSlot],
    xdist: &XdistContract,
    command: &mut WorkerCommand,
    controller: &mut WorkerCommand,
) {
    let ids: Vec<&str> = slots.iter().map(|s| s.id.as_str()).collect();
    let nodes = controller_nodes(private, &ids, xdist);
    command.env.push(nodes[0].clone());
    controller.env.extend(nodes);
}

fn fork_server(config: &SessionConfig, runner: &dyn Runner, launcher: &dyn Launcher) -> bool {
    let decision = herd_core::fork::decide(herd_core::fork::ForkWish {
        wanted: config.fork,
        runner_can: runner.fork_server(),
        local: launcher.local(),
        platform_can: herd_actors::zygote::supported(),
    });
    if let herd_core::fork::ForkDecision::Plain(why) = decision {
        tracing::debug!("no fork server: {why}");
    }
    decision == herd_core::fork::ForkDecision::Fork
}

/// The settings every worker shares: the session's `wiring`, the config's limits and hooks,
/// and what the runner asks for.
fn worker_settings(config: &SessionConfig, runner: &dyn Runner, wiring: Wiring) -> WorkerSettings {
    WorkerSettings {
        command: wiring.command,
        launcher: wiring.launcher,
        endpoint: wiring.endpoint,
        token: wiring.token,
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
        status_dir: Some(wiring.status_dir),
        faults: config.faults.clone(),
        reference_known: wiring.reference_known,
        hang_timeout: config.hang_timeout,
        heartbeat_timeout: config.heartbeat_timeout,
        fingerprint: wiring.fingerprint,
        fingerprint_required: config.fingerprint.is_some(),
        live_output: runner.live_output(),
        usage_exit: runner.usage_exit_code(),
        usage_error: wiring.usage_error,
        xdist: wiring.xdist,
        fork_server: wiring.fork_server,
        zygote: None,
    }
}

/// What starts the workers: the embedder's launcher, or the one `--launcher` names.
fn make_launcher(
    launcher: Option<Arc<dyn Launcher>>,
    config: &SessionConfig,
    runner: &dyn Runner,
    slots: &[WorkerSlot],
) -> Result<Arc<dyn Launcher>, SessionError> {
    Ok(match (launcher, config.launcher.as_deref()) {
        (Some(launcher), _) => launcher,
        (None, None | Some("local")) => Arc::new(LocalLauncher),
        (None, Some("external")) => Arc::new(ExternalLauncher::new(
            herd_program(),
            token_file_path(config),
            runner.remote_worker_args()?,
        )),
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
    })
}

/// Whether replicas may join without naming a slot (`--launcher external`), what they are told
/// to run, and how many slots there may be; `--max-workers` and `--min-workers` checked.
fn joins(
    config: &SessionConfig,
    runner: &dyn Runner,
    slots: &[WorkerSlot],
) -> Result<Option<Joins>, SessionError> {
    let external = config.launcher.as_deref() == Some("external");
    let max = config.max_workers.unwrap_or(slots.len());
    if !external && config.max_workers.is_some_and(|n| n != slots.len()) {
        return Err(SessionError::Usage(
            "--max-workers needs --launcher external (replicas started by someone else join              the session; herd starts -n workers itself otherwise)"
                .into(),
        ));
    }
    if max < slots.len() {
        return Err(SessionError::Usage(format!(
            "--max-workers {max} is less than the {} worker slots of -n",
            slots.len()
        )));
    }
    if config.min_workers > max {
        return Err(SessionError::Usage(format!(
            "--min-workers {} is more than the session's {max} workers at most (--max-workers)",
            config.min_workers
        )));
    }
    if !external {
        return Ok(None);
    }
    Ok(Some(Joins {
        runner: runner.remote_worker_args()?,
        fingerprint: config.fingerprint.clone(),
        max_workers: max,
        herd: herd_program(),
        token_file: token_file_path(config),
    }))
}

/// The herd program, as a remote worker's command line names it.
fn herd_program() -> String {
    std::env::current_exe().map_or_else(|_| "herd".to_string(), |p| p.display().to_string())
}

/// `--token-file`, made absolute, as a remote worker's command line names it.
fn token_file_path(config: &SessionConfig) -> String {
    config.token_file.as_ref().map_or_else(String::new, |p| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    })
}

/// `(color, progress bar)`: on a terminal unless told otherwise (`--color`, `NO_COLOR`, `-q`).
fn terminal_settings(config: &SessionConfig, out_is_stdout: bool) -> (bool, bool) {
    let terminal = out_is_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let color = match config.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let progress_bar =
        out_is_stdout && config.progress.unwrap_or(terminal && config.verbosity >= 0);
    (color, progress_bar)
}

/// The worker command (with the fingerprint command in its environment), the fingerprint the
/// workers must present, and the runner's controller command when it is on.
fn commands(
    config: &SessionConfig,
    runner: &dyn Runner,
) -> Result<(WorkerCommand, String, Option<WorkerCommand>), SessionError> {
    let mut command = runner.worker_command()?;
    let fingerprint = match &config.fingerprint {
        Some(cmd) => {
            let output = crate::client::run_fingerprint_cmd(cmd).map_err(SessionError::Usage)?;
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
    Ok((command, fingerprint, controller))
}

/// `--events` and the files written from the finished report (`--junit-xml`, the history),
/// each path checked (and `--log-dir` too) before any worker starts.
fn outputs(config: &SessionConfig) -> Result<(Option<LineFile>, Vec<ReportFile>), SessionError> {
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
    Ok((events, report_files))
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

#[cfg(test)]
mod tests;
