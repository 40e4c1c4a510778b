//! `herd worker`: the exec runner's worker process. It speaks protocol v1 through
//! [`crate::worker_loop::WorkerLoop`], collects with the list command, and runs each test as its own process
//! (`--noop`: reports each test passed without running anything, to measure herd itself).
//!
//! With `--connect ENDPOINT --token-file F --worker ID` it joins a coordinator from any host
//! instead of reading the `HERD_*` variables; without `--list` it runs the given worker command
//! with those variables (a pytest command gets herd's plugin, embedded in this binary).
//!
//! The protocol itself (asking for work, answering `release`, `stop` and `error`, the status
//! file, heartbeats) is [`WorkerLoop`]'s; so are the fault hooks of `HERD_WORKER_FAULT`
//! ([`Faults`]), which this worker carries out.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::outcome::{Phase, PhaseOutcome};
use herd_core::protocol::{PhaseReport, WorkerMessage};

use crate::cli::WorkerArgs;
use crate::client::{ClientError, Joined, WorkerEnv};
use crate::preflight::Plugin;
use crate::runner::{list_tests, Runner};
pub use crate::worker_loop::Faults;
use crate::worker_loop::WorkerLoop;

/// How often herd's exec worker sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Exit code that marks a test as skipped (as automake's).
pub const SKIP_EXIT_CODE: i32 = 77;
/// The most output kept per test for its report (its head and tail, with a note saying what was
/// cut between them).
const MAX_OUTPUT: usize = 64 * 1024;

/// `herd worker`: serves as the exec worker (`--list`), or runs the worker command after `--`;
/// returns the process exit code.
pub fn worker_main(args: &WorkerArgs) -> i32 {
    let usage = |msg: String| {
        eprintln!("herd worker: {msg}");
        herd_core::outcome::exit_code::USAGE_ERROR
    };
    let joined;
    let args = match (&args.connect, &args.worker) {
        (Some(endpoint), None) => match join_session(endpoint, args) {
            Ok(Some(assigned)) => {
                joined = assigned;
                &joined
            }
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("herd worker: {e}");
                return 1;
            }
        },
        _ => args,
    };
    let env = match worker_env(args) {
        Ok(env) => env,
        Err(e) => return usage(e.to_string()),
    };
    let remote = args.connect.is_some();
    match &args.list {
        Some(list) => run_worker(env, list, &args.command, args.noop, remote),
        None if args.noop => usage("--noop needs --list CMD (the exec runner)".into()),
        None if args.command.is_empty() => usage(
            "give --list CMD -- CMD {} (exec runner), or the worker command after `--`".into(),
        ),
        None => run_command(&env, &args.command, remote),
    }
}

/// A replica without `--worker` asks the session for a slot: the arguments it runs with once
/// it has one (the slot, and the session's test command unless it gave its own), or `None`
/// when the session is full (said on stderr: nothing to do, exit 0).
fn join_session(endpoint: &str, args: &WorkerArgs) -> Result<Option<WorkerArgs>, ClientError> {
    let token_file = args
        .token_file
        .as_deref()
        .ok_or(ClientError::Environment(herd_core::protocol::ENV_TOKEN))?;
    let token = crate::client::read_token_file(token_file).map_err(ClientError::Setup)?;
    let fingerprint = match &args.fingerprint {
        Some(cmd) => {
            let output = crate::client::run_fingerprint_cmd(cmd).map_err(ClientError::Setup)?;
            let version = env!("CARGO_PKG_VERSION");
            Some(herd_core::protocol::fingerprint(version, Some(&output)))
        }
        None => None,
    };
    let joined = crate::client::join(endpoint, &token, fingerprint, connect_timeout())?;
    let (worker, incarnation, runner, fingerprint, appliance) = match joined {
        Joined::Full(message) => {
            eprintln!(
                "herd worker: the session at {endpoint} needs no more workers: {message}; exiting"
            );
            return Ok(None);
        }
        Joined::Assigned {
            worker,
            incarnation,
            runner,
            fingerprint,
            appliance,
        } => (worker, incarnation, runner, fingerprint, appliance),
    };
    eprintln!("herd worker: joined the session at {endpoint} as {worker}.{incarnation}");
    let mut assigned = args.clone();
    assigned.worker = Some(worker);
    assigned.incarnation = incarnation;
    assigned.appliance = args.appliance.clone().or(appliance);
    assigned.fingerprint = args.fingerprint.clone().or(fingerprint);
    if args.list.is_none() && args.command.is_empty() {
        (assigned.list, assigned.command) = split_runner(&runner);
    }
    Ok(Some(assigned))
}

/// `--list CMD -- CMD {}` or `-- CMD...` (the `runner` of `assigned`): the list command, if
/// any, and the command.
fn split_runner(runner: &[String]) -> (Option<String>, Vec<String>) {
    let (list, rest) = match runner {
        [flag, list, rest @ ..] if flag == "--list" => (Some(list.clone()), rest),
        rest => (None, rest),
    };
    let command = match rest {
        [dashes, command @ ..] if dashes == "--" => command,
        command => command,
    };
    (list, command.to_vec())
}

/// Who this worker is: from `--connect` and its options, else from the `HERD_*` variables.
fn worker_env(args: &WorkerArgs) -> Result<WorkerEnv, ClientError> {
    let (Some(endpoint), Some(token_file), Some(worker)) =
        (&args.connect, &args.token_file, &args.worker)
    else {
        return WorkerEnv::from_env();
    };
    let mut env = WorkerEnv::remote(endpoint, token_file, worker, args.incarnation)?;
    env.appliance = args.appliance.clone();
    env.fingerprint_cmd = args.fingerprint.clone();
    Ok(env)
}

/// Runs a worker command with `env`'s `HERD_*` variables and returns its exit code. A pytest
/// command is checked first as `herd run` checks a local one (its Python must import pytest
/// and pyzmq, see [`crate::preflight`]) and gets herd's plugin: the one installed in that
/// Python, or the embedded copy written to a private directory that lives as long as it runs.
///
/// For a `remote` worker (`--connect`) pytest's 5 ("no tests collected": its shard of the
/// collection held no file, yet it ran what it was dealt) is 0, so an orchestrator (a
/// Kubernetes Job, Slurm) does not take a worker that did its work for a failed one; pytest's
/// other codes (1: a test it ran failed) are kept.
fn run_command(env: &WorkerEnv, command: &[String], remote: bool) -> i32 {
    let pytest = crate::PytestRunner::is_pytest_command(command);
    let code = run_worker_command(env, command, remote);
    if remote && pytest && code == 5 {
        return 0;
    }
    code
}

/// Runs the worker command with `env` set; its exit code. A `remote` worker's command is told
/// to leave cleanly on SIGTERM (`HERD_LEAVE_ON_SIGTERM=1`, which herd's pytest plugin honours),
/// and the SIGTERMs this process gets (a pod deleted, `scancel`) are passed on to it.
fn run_worker_command(env: &WorkerEnv, command: &[String], remote: bool) -> i32 {
    let (worker, _plugin) = if crate::PytestRunner::is_pytest_command(command) {
        let runner = match pytest_runner(command) {
            Ok(runner) => runner,
            Err(e) => {
                eprintln!("herd worker: {e}");
                return herd_core::outcome::exit_code::USAGE_ERROR;
            }
        };
        let worker = runner.worker_command().expect("a pytest command");
        (worker, Some(runner))
    } else {
        let worker = herd_actors::WorkerCommand {
            program: command[0].clone().into(),
            args: command[1..].iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
        };
        (worker, None)
    };
    let mut cmd = Command::new(&worker.program);
    cmd.args(&worker.args)
        .envs(worker.env.iter().map(|(k, v)| (k, v)))
        .env(herd_core::protocol::ENV_VERSION, env!("CARGO_PKG_VERSION"))
        .envs(env.to_vars());
    herd_actors::process::die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    if remote {
        cmd.env(ENV_LEAVE_ON_SIGTERM, "1");
    }
    let status = cmd.spawn().and_then(|mut child| {
        if remote {
            forward_sigterm(child.id());
        }
        child.wait()
    });
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(e) => {
            eprintln!("herd worker: cannot run `{}`: {e}", command[0]);
            1
        }
    }
}

/// Tells a worker command to leave cleanly on SIGTERM (see [`run_worker_command`]).
const ENV_LEAVE_ON_SIGTERM: &str = "HERD_LEAVE_ON_SIGTERM";

/// Passes every SIGTERM this process gets on to `pid`, from a thread of its own.
fn forward_sigterm(pid: u32) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            for _ in signals.forever() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
        });
}

/// The pytest runner for a pytest worker command, once its Python has passed the up-front check.
fn pytest_runner(command: &[String]) -> Result<crate::PytestRunner, String> {
    let command = command.to_vec();
    let runner = match crate::preflight::check_pytest_command(&command)? {
        Plugin::Installed { .. } => crate::PytestRunner::with_installed_plugin(command),
        Plugin::Embedded => crate::PytestRunner::new(command),
    };
    runner.map_err(|e| e.to_string())
}

/// Runs the exec worker until the coordinator has no more work; returns the process exit code.
/// A `remote` worker (`--connect`) leaves cleanly on SIGTERM; one herd started stops at once.
pub fn run_worker(env: WorkerEnv, list: &str, command: &[String], noop: bool, remote: bool) -> i32 {
    let leave = remote.then(|| Arc::new(AtomicBool::new(false)));
    if let Err(e) = watch_sigterm(leave.clone()) {
        eprintln!("herd worker: cannot watch SIGTERM: {e}");
    }
    match serve(env, list, command, noop, leave) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("herd worker: {e}");
            1
        }
    }
}

/// On SIGTERM (which herd's death sends too), kill this worker's whole process group: the
/// worker, its running test and anything the test started. With `leave` (a worker that joined
/// by itself, whose host may ask it to go), the first SIGTERM sets it instead: the worker
/// leaves cleanly; a second one kills the group.
fn watch_sigterm(leave: Option<Arc<AtomicBool>>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])?;
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(leave) = leave {
                if signals.next().is_none() {
                    return;
                }
                eprintln!(
                    "herd worker: SIGTERM: leaving after the running test (its unstarted tests \
                     go back); send it again to stop at once"
                );
                leave.store(true, Ordering::Relaxed);
            }
            if signals.next().is_some() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::getpgrp(),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        })?;
    Ok(())
}

fn serve(
    env: WorkerEnv,
    list: &str,
    command: &[String],
    noop: bool,
    leave: Option<Arc<AtomicBool>>,
) -> Result<(), ClientError> {
    let faults = Faults::from_env(&env.identity());
    let mut worker = WorkerLoop::connect(env, connect_timeout(), Some(HEARTBEAT))?;
    if let Some(leave) = leave {
        worker = worker.leave_when(leave);
    }
    let tests = match list_tests(list) {
        Ok(tests) => tests,
        Err(e) => {
            worker.client().send(&WorkerMessage::InternalError {
                message: e.to_string(),
            })?;
            return Err(ClientError::Unexpected(e.to_string()));
        }
    };
    let worker = worker.with_faults(faults);
    if noop {
        return worker.inline().run(tests, |test| noop_test(test));
    }
    let command = command.to_vec();
    worker.run(tests, move |test| run_test(test, &command))
}

/// How long to wait for the coordinator's welcome: `HERD_CONNECT_TIMEOUT` seconds, default 30.
fn connect_timeout() -> Duration {
    let secs = std::env::var("HERD_CONNECT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    let in_range = |s: &f64| (crate::values::MIN_SECONDS..=crate::values::MAX_SECONDS).contains(s);
    Duration::from_secs_f64(secs.filter(in_range).unwrap_or(30.0))
}

/// The command line for one test: `{}` replaced by the id, or the id appended.
pub fn test_command(command: &[String], test: &str) -> Vec<String> {
    let mut args: Vec<String> = command.iter().map(|a| a.replace("{}", test)).collect();
    if !command.iter().any(|a| a.contains("{}")) {
        args.push(test.to_string());
    }
    args
}

/// `--noop`: the reports of a test that passed without running anything.
fn noop_test(test: &str) -> Vec<PhaseReport> {
    vec![
        PhaseReport::new(test, Phase::Call, PhaseOutcome::Passed, 0.0),
        PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0),
    ]
}

/// Runs one test; returns its call and teardown reports.
fn run_test(test: &str, command: &[String]) -> Vec<PhaseReport> {
    let args = test_command(command, test);
    let started = Instant::now();
    // `status` says how the process ended; it closes the failure text.
    let (outcome, status, output) = match spawn_test(&args, test) {
        Err(e) => (
            PhaseOutcome::Failed,
            format!("cannot run `{}`: {e}", args[0]),
            String::new(),
        ),
        Ok((Some(0), output)) => (PhaseOutcome::Passed, String::new(), output),
        Ok((Some(SKIP_EXIT_CODE), output)) => (
            PhaseOutcome::Skipped,
            format!("skipped (exit code {SKIP_EXIT_CODE})"),
            output,
        ),
        Ok((Some(code), output)) => (PhaseOutcome::Failed, format!("exit code {code}"), output),
        Ok((None, output)) => (
            PhaseOutcome::Failed,
            "killed by a signal".to_string(),
            output,
        ),
    };
    let last_line = output.lines().rev().map(str::trim).find(|l| !l.is_empty());
    let mut call = PhaseReport::new(test, Phase::Call, outcome, started.elapsed().as_secs_f64());
    if outcome == PhaseOutcome::Passed {
        if !output.is_empty() {
            call.sections.push(("Captured output".to_string(), output));
        }
    } else {
        // The one-liner: the test's last words (a skip's reason), with how it ended on failure.
        call.message = Some(match (outcome, last_line) {
            (PhaseOutcome::Skipped, line) => line.unwrap_or("skipped").to_string(),
            (_, Some(line)) => format!("{line} ({status})"),
            (_, None) => status.clone(),
        });
        call.longrepr = Some(match last_line {
            Some(_) => format!("{}\n{status}", output.trim_end()),
            None => status,
        });
    }
    vec![
        call,
        PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0),
    ]
}

/// Runs the test process; its output is kept for the report and copied to this worker's stderr
/// (so herd's crash and timeout reports show it).
fn spawn_test(args: &[String], test: &str) -> std::io::Result<(Option<i32>, String)> {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .env("HERD_TEST_ID", test)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    herd_actors::process::die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || tee(&mut stdout));
    let mut output = tee(&mut stderr);
    let out = reader.join().unwrap_or_default();
    let status = child.wait()?;
    output.splice(0..0, out);
    let text = String::from_utf8_lossy(&output);
    // Head and tail are kept, and the report says what was cut between them.
    let kept = herd_core::text::cut_middle(&text, MAX_OUTPUT).into_owned();
    Ok((status.code(), kept))
}

fn tee(stream: &mut impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = std::io::stderr().write_all(&buf[..n]);
        kept.extend_from_slice(&buf[..n]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_of_an_assignment_splits_into_list_and_command() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            split_runner(&words("--list ls -- sh {}")),
            (Some("ls".to_string()), words("sh {}"))
        );
        assert_eq!(
            split_runner(&words("-- pytest -q")),
            (None, words("pytest -q"))
        );
    }

    #[test]
    fn test_id_is_substituted_or_appended() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "run {}".to_string()];
        assert_eq!(test_command(&cmd, "t1"), vec!["sh", "-c", "run t1"]);
        assert_eq!(
            test_command(&["./t.sh".to_string()], "t1"),
            vec!["./t.sh", "t1"]
        );
    }

    #[test]
    fn exit_codes_decide_the_outcome() {
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let [call, teardown] = &run_test("t", &sh("echo hello"))[..] else {
            panic!("two reports");
        };
        assert_eq!(
            (call.outcome, teardown.when),
            (PhaseOutcome::Passed, Phase::Teardown)
        );
        let call = run_test("t", &sh("echo boom >&2; exit 3")).remove(0);
        assert_eq!(call.outcome, PhaseOutcome::Failed);
        assert_eq!(call.longrepr.as_deref(), Some("boom\nexit code 3"));
        let call = run_test("t", &sh("echo no database; exit 77")).remove(0);
        assert_eq!(
            (call.outcome, call.message.as_deref()),
            (PhaseOutcome::Skipped, Some("no database"))
        );
        let call = run_test("t", &["/nonexistent/program".to_string()]).remove(0);
        assert!(call.message.unwrap().contains("cannot run"));
    }
}
