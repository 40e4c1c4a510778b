//! The runner boundary: how a suite is collected and how one worker process is started.
//!
//! herd's core knows nothing about test frameworks. A [`Runner`] gives it the reference
//! collection and the command of a worker process that speaks protocol v1; everything else
//! (grouping, supervision, reporting) is shared by every runner.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use herd_actors::WorkerCommand;
use herd_core::grouping::Dist;
use herd_core::TestId;

/// Why a runner could not collect or start workers.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Collection failed (exit code 2, like pytest's collection errors).
    #[error("collection failed: {0}")]
    Collection(String),
    /// The runner was configured wrongly (exit code 4).
    #[error("{0}")]
    Usage(String),
}

/// A kind of test suite herd can run.
pub trait Runner: Send {
    /// A short name for output (`exec`, `pytest`).
    fn name(&self) -> &str;
    /// The reference collection, in the order tests should be dealt out; `None` when the first
    /// worker's collection should serve as the reference (collection is then paid only by the
    /// workers, in parallel).
    fn collect(&self) -> Result<Option<Vec<TestId>>, RunnerError>;
    /// The command that starts one worker process.
    fn worker_command(&self) -> Result<WorkerCommand, RunnerError>;
    /// Whether progress is shown as one character per test by default (pytest's style) rather
    /// than a line per test.
    fn prefers_dots(&self) -> bool {
        false
    }
    /// Whether the tests' own output is shown live on the terminal, a line at a time prefixed
    /// with the worker id (pytest's `-s`); otherwise it reaches only the worker logs and the
    /// reports.
    fn live_output(&self) -> bool {
        false
    }
    /// How tests are dealt out unless `--dist` says otherwise: `load` (tests share no state).
    fn default_dist(&self) -> Dist {
        Dist::Load
    }
    /// Whether the runner's workers honour the `collect` scope of `welcome` (collect a shard,
    /// then further files as their tests are dealt; see `herd_core::collection`).
    fn shards_collection(&self) -> bool {
        false
    }
    /// The failures after which the session stops, as the runner's own arguments ask (pytest's
    /// `--maxfail N` or `-x`, taken out of the workers' arguments and counted over every worker);
    /// the smaller of this and herd's own `--maxfail` applies. `None` or 0: no limit.
    fn maxfail(&self) -> Option<usize> {
        None
    }
    /// The exit code by which a worker process that ends before its hello says the command
    /// line is wrong (pytest's usage error, 4: an unknown option, a conftest that cannot be
    /// imported). Such a death ends the session at once as a usage error with the process's
    /// output, instead of a respawn. `None` (the default): every early death is a crash.
    fn usage_exit_code(&self) -> Option<i32> {
        None
    }
    /// The command of the runner's controller: one process configured like the workers that
    /// takes every report and writes the runner's own report (pytest's summary, `--junitxml`,
    /// the cache); `None` when the runner has none (herd's summary is the report).
    fn controller_command(&self) -> Option<WorkerCommand> {
        None
    }
    /// An option of the runner's own arguments whose file only the controller writes (pytest's
    /// `--junitxml`, `--report-log`, `--html`: workers leave them to it), as given; without the
    /// controller such a file would silently stay unwritten, so the session refuses it.
    fn file_for_controller(&self) -> Option<String> {
        None
    }
    /// Whether the runner's workers take the worker side of pytest-xdist's contract: herd sets
    /// `PYTEST_XDIST_WORKER`, `PYTEST_XDIST_WORKER_COUNT` and `PYTEST_XDIST_TESTRUNUID` in their
    /// environment (see [`herd_actors::worker::XdistContract`]).
    fn xdist_contract(&self) -> bool {
        false
    }
    /// Whether the runner's workers can be forked from a fork server: one worker process that
    /// loads the suite's conftest files and plugins once (see `herd_actors::zygote`).
    fn fork_server(&self) -> bool {
        false
    }
    /// What follows `herd worker --connect ...` to start this runner's worker on another host
    /// (`--launcher external`). By default: `-- PROGRAM ARGS` of [`Runner::worker_command`],
    /// which `herd worker` runs with the `HERD_*` variables of the slot it joins.
    fn remote_worker_args(&self) -> Result<Vec<String>, RunnerError> {
        let command = self.worker_command()?;
        let mut args = vec!["--".to_string(), command.program.display().to_string()];
        args.extend(
            command
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        Ok(args)
    }
}

/// The built-in runner for any language: a list command prints one test id per line, and each
/// test runs as its own process (`{}` in the command is replaced by the id, or the id is
/// appended). Exit code 0 passes, 77 skips, anything else fails.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    /// Shell command that prints the test ids.
    pub list: String,
    /// The command (and arguments) that runs one test.
    pub command: Vec<String>,
    /// The herd binary that serves as the worker (`herd worker`).
    pub worker_program: PathBuf,
}

impl ExecRunner {
    /// An exec runner whose workers are this very program (the `herd` binary).
    pub fn new(list: impl Into<String>, command: Vec<String>) -> Result<ExecRunner, RunnerError> {
        let worker_program = std::env::current_exe()
            .map_err(|e| RunnerError::Usage(format!("cannot find the herd binary: {e}")))?;
        Ok(ExecRunner {
            list: list.into(),
            command,
            worker_program,
        })
    }
}

/// Finds the `herd` binary for an embedding program's exec workers: `$HERD_BIN`, else `herd`
/// beside the running executable or one directory up (cargo's `target/<profile>/herd` for
/// examples and tests).
pub fn find_herd_binary() -> Result<PathBuf, RunnerError> {
    if let Some(path) = std::env::var_os("HERD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()
        .map_err(|e| RunnerError::Usage(format!("cannot find herd: {e}")))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("herd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            RunnerError::Usage(format!(
                "no herd binary near {} (build it with `cargo build`, or set HERD_BIN)",
                exe.display()
            ))
        })
}

/// Runs a shell command and returns its stdout lines, trimmed and non-empty.
pub fn list_tests(list: &str) -> Result<Vec<TestId>, RunnerError> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(list)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RunnerError::Collection(format!("cannot run `{list}`: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(RunnerError::Collection(format!(
            "`{list}` failed with {}{}",
            herd_actors::process::describe_status(&out.status),
            if tail.is_empty() {
                String::new()
            } else {
                format!(":\n{}", tail.join("\n"))
            }
        )));
    }
    test_ids(list, &out.stdout)
}

/// The test ids in a list command's output: its lines, trimmed and non-empty. A line that is not
/// UTF-8 or holds a NUL byte is refused (ids travel as text and become arguments): rewriting it
/// would run the test with a different argument.
fn test_ids(list: &str, stdout: &[u8]) -> Result<Vec<TestId>, RunnerError> {
    let mut ids = Vec::new();
    for (n, line) in stdout.split(|b| *b == b'\n').enumerate() {
        let bad = |what: &str| {
            RunnerError::Collection(format!(
                "`{list}` printed a test id that {what} on line {}: \"{}\"; herd passes ids \
                 unchanged as UTF-8 text, so rename the test or make the list command print \
                 UTF-8 names",
                n + 1,
                line.escape_ascii()
            ))
        };
        let line = std::str::from_utf8(line).map_err(|_| bad("is not valid UTF-8"))?;
        if line.contains('\0') {
            return Err(bad("holds a NUL byte"));
        }
        let id = line.trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

impl Runner for ExecRunner {
    fn name(&self) -> &str {
        "exec"
    }

    fn collect(&self) -> Result<Option<Vec<TestId>>, RunnerError> {
        list_tests(&self.list).map(Some)
    }

    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        if self.command.is_empty() {
            return Err(RunnerError::Usage(
                "the exec runner needs a command after `--`".into(),
            ));
        }
        let mut args: Vec<OsString> = vec![
            "worker".into(),
            "--list".into(),
            self.list.clone().into(),
            "--".into(),
        ];
        args.extend(self.command.iter().map(OsString::from));
        Ok(WorkerCommand {
            program: self.worker_program.clone(),
            args,
            env: Vec::new(),
            cwd: None,
        })
    }

    fn remote_worker_args(&self) -> Result<Vec<String>, RunnerError> {
        let mut args = vec!["--list".to_string(), self.list.clone(), "--".to_string()];
        args.extend(self.command.iter().cloned());
        Ok(args)
    }
}
