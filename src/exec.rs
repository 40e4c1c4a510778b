//! `herd worker`: the exec runner's worker process. It speaks protocol v1 through
//! [`WorkerClient`], collects with the list command, and runs each test as its own process
//! (`--noop`: reports each test passed without running anything, to measure herd itself).
//!
//! With `--connect ENDPOINT --token-file F --worker ID` it joins a coordinator from any host
//! instead of reading the `HERD_*` variables; without `--list` it runs the given worker command
//! with those variables (a pytest command gets herd's plugin, embedded in this binary).
//!
//! Fault hooks for tests of herd itself (and, later, chaos runs): `HERD_WORKER_FAULT` holds
//! `;`-separated `IDENTITY:ACTION=N` items; an item applies only to the spawn whose identity
//! (`w1.1`) matches, so a respawned worker behaves. Actions: `exit0-after=N` (exit 0 without
//! shutdown while starting the test after the Nth), `garbage-after=N` (send a malformed frame after N tests),
//! `extra-test=ID` (report a collection with one more test), `wedge-after=N` (hang silently, no
//! heartbeats, after N tests).

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::collection::digest;
use herd_core::outcome::{Phase, PhaseOutcome};
use herd_core::protocol::{CollectScope, CoordinatorMessage, PhaseReport, WorkerMessage};
use herd_core::TestId;

use crate::cli::WorkerArgs;
use crate::client::{ClientError, WorkerClient, WorkerEnv};
use crate::runner::{list_tests, Runner};

/// How often herd's exec worker sends a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Exit code that marks a test as skipped (as automake's).
pub const SKIP_EXIT_CODE: i32 = 77;
/// The most output kept per test for its report (its head and tail, with a note saying what was
/// cut between them).
const MAX_OUTPUT: usize = 64 * 1024;

/// Fault hooks that apply to this spawn.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Exit 0 without `shutdown`, as the test after this many has started.
    pub exit0_after: Option<usize>,
    /// Send a malformed frame after this many tests.
    pub garbage_after: Option<usize>,
    /// Add this id to the reported collection.
    pub extra_test: Option<String>,
    /// Hang silently (no heartbeats) after this many tests.
    pub wedge_after: Option<usize>,
}

impl Faults {
    /// Parses `HERD_WORKER_FAULT` for the spawn named `identity`.
    pub fn parse(spec: &str, identity: &str) -> Faults {
        let mut faults = Faults::default();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((who, action)) = item.split_once(':') else {
                continue;
            };
            if who != identity {
                continue;
            }
            let (name, value) = action.split_once('=').unwrap_or((action, ""));
            match name {
                "exit0-after" => faults.exit0_after = value.parse().ok(),
                "garbage-after" => faults.garbage_after = value.parse().ok(),
                "extra-test" => faults.extra_test = Some(value.to_string()),
                "wedge-after" => faults.wedge_after = value.parse().ok(),
                other => eprintln!("herd worker: unknown fault {other:?} ignored"),
            }
        }
        faults
    }
}

/// `herd worker`: serves as the exec worker (`--list`), or runs the worker command after `--`;
/// returns the process exit code.
pub fn worker_main(args: &WorkerArgs) -> i32 {
    let usage = |msg: String| {
        eprintln!("herd worker: {msg}");
        herd_core::outcome::exit_code::USAGE_ERROR
    };
    let env = match worker_env(args) {
        Ok(env) => env,
        Err(e) => return usage(e.to_string()),
    };
    match &args.list {
        Some(list) => run_worker(env, list, &args.command, args.noop),
        None if args.command.is_empty() => usage(
            "give --list CMD -- CMD {} (exec runner), or the worker command after `--`".into(),
        ),
        None => run_command(&env, &args.command),
    }
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
/// command gets herd's plugin (written to a private directory that lives as long as it runs).
fn run_command(env: &WorkerEnv, command: &[String]) -> i32 {
    let (worker, _plugin) = if crate::PytestRunner::is_pytest_command(command) {
        let runner = match crate::PytestRunner::new(command.to_vec()) {
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
    match cmd.status() {
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

/// Runs the exec worker until the coordinator has no more work; returns the process exit code.
pub fn run_worker(env: WorkerEnv, list: &str, command: &[String], noop: bool) -> i32 {
    if let Err(e) = take_group_down_on_sigterm() {
        eprintln!("herd worker: cannot watch SIGTERM: {e}");
    }
    match serve(env, list, command, noop) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("herd worker: {e}");
            1
        }
    }
}

/// On SIGTERM (which herd's death sends too), kill this worker's whole process group: the
/// worker, its running test and anything the test started.
fn take_group_down_on_sigterm() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])?;
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::getpgrp(),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        })?;
    Ok(())
}

fn serve(env: WorkerEnv, list: &str, command: &[String], noop: bool) -> Result<(), ClientError> {
    let faults = Faults::parse(
        &std::env::var("HERD_WORKER_FAULT").unwrap_or_default(),
        &env.identity(),
    );
    let client = Arc::new(WorkerClient::connect_with_heartbeat(
        env,
        connect_timeout(),
        Some(HEARTBEAT),
    )?);
    let mut heartbeat = Some(client.start_heartbeat(HEARTBEAT));
    let mut tests = match list_tests(list) {
        Ok(tests) => tests,
        Err(e) => {
            client.send(&WorkerMessage::InternalError {
                message: e.to_string(),
            })?;
            return Err(ClientError::Unexpected(e.to_string()));
        }
    };
    tests.extend(faults.extra_test.clone());
    if client.collect_scope() == Some(&CollectScope::Digest) {
        // The coordinator has the reference: a digest is enough (the ids if it asks for them).
        client.send(&WorkerMessage::Collection {
            tests: Vec::new(),
            errors: Vec::new(),
            herd_groups: Default::default(),
            files: None,
            scope: Some(CollectScope::Digest),
            digest: Some(digest(&tests)),
        })?;
    } else {
        client.send(&WorkerMessage::collection(tests.clone()))?;
    }
    client.send(&WorkerMessage::NeedTests)?;

    let status = StatusFile::from_env();
    let mut state = Dealt {
        requested: true,
        collection: tests,
        ..Dealt::default()
    };
    let mut done = 0usize;
    loop {
        // Take everything that has arrived; wait only when there is nothing to run.
        loop {
            let idle = state.queue.is_empty() && !state.no_more && !state.stop;
            if idle {
                client.send_batch(&std::mem::take(&mut state.outbox))?;
            }
            let wait = if idle {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            };
            match client.recv(Some(wait))? {
                Some(message) => state.take(message, &client)?,
                None if idle => continue,
                None => break,
            }
        }
        if state.stop || (state.queue.is_empty() && state.no_more) {
            state.outbox.push(WorkerMessage::Shutdown);
            client.send_batch(&state.outbox)?;
            return Ok(());
        }
        let Some(test) = state.queue.pop_front() else {
            continue;
        };
        state.ask_if_empty();
        status.starting(&test);
        state
            .outbox
            .push(WorkerMessage::TestStarted { test: test.clone() });
        client.send_batch(&std::mem::take(&mut state.outbox))?;
        if faults.exit0_after == Some(done) {
            // Close the socket first (its linger delivers what was sent), then vanish mid-test.
            heartbeat.take();
            drop(client);
            std::process::exit(0);
        }
        let (call, teardown) = if noop {
            noop_test(&test)
        } else {
            run_test_answering(&test, command, &mut state, &client)?
        };
        state.outbox.push(WorkerMessage::Report(call));
        state.outbox.push(WorkerMessage::Report(teardown));
        done += 1;
        if faults.wedge_after == Some(done) {
            // Hang for good, silently: no heartbeat, no progress (a deadlocked worker).
            client.send_batch(&std::mem::take(&mut state.outbox))?;
            heartbeat.take();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if faults.garbage_after == Some(done) {
            client.send_batch(&std::mem::take(&mut state.outbox))?;
            client.send_raw(b"{this is not json")?;
        }
    }
}

/// What the exec worker holds: the tests dealt to it and not started, and where the
/// conversation stands.
#[derive(Default)]
struct Dealt {
    queue: VecDeque<TestId>,
    /// A `need_tests` is out and unanswered.
    requested: bool,
    /// The coordinator has no more tests.
    no_more: bool,
    /// The coordinator said stop.
    stop: bool,
    /// Messages that leave with the next frame (a test's reports go with the next start).
    outbox: Vec<WorkerMessage>,
    /// The collection, sent again as ids if the coordinator asks.
    collection: Vec<TestId>,
}

impl Dealt {
    /// Takes one message from the coordinator (between tests or while one runs).
    fn take(
        &mut self,
        message: CoordinatorMessage,
        client: &WorkerClient,
    ) -> Result<(), ClientError> {
        match message {
            CoordinatorMessage::Tests { tests } => {
                self.requested = false;
                self.no_more |= tests.is_empty();
                self.queue.extend(tests);
            }
            CoordinatorMessage::Release { tests } => {
                // Work stealing: give back what has not started.
                let wanted: HashSet<&TestId> = tests.iter().collect();
                let (given, kept): (Vec<TestId>, Vec<TestId>) =
                    self.queue.drain(..).partition(|t| wanted.contains(t));
                self.queue = kept.into();
                self.outbox.push(WorkerMessage::Released { tests: given });
                self.ask_if_empty();
                client.send_batch(&std::mem::take(&mut self.outbox))?;
            }
            CoordinatorMessage::CollectionNeeded => {
                let tests = std::mem::take(&mut self.collection);
                client.send(&WorkerMessage::collection(tests))?;
            }
            CoordinatorMessage::Stop => self.stop = true,
            CoordinatorMessage::Error { message } => return Err(ClientError::Refused(message)),
            CoordinatorMessage::Welcome { .. } | CoordinatorMessage::FileAccepted { .. } => {}
        }
        Ok(())
    }

    /// Asks for the next group when nothing is left to start (before the running test ends).
    fn ask_if_empty(&mut self) {
        if self.queue.is_empty() && !self.no_more && !self.requested {
            self.outbox.push(WorkerMessage::NeedTests);
            self.requested = true;
        }
    }
}

/// How often a worker running a test looks for messages (a `release` is answered this fast).
const ANSWER_TICK: Duration = Duration::from_millis(5);

/// Runs one test on a thread of its own while taking the coordinator's messages, so a
/// `release` is answered during a long test.
fn run_test_answering(
    test: &str,
    command: &[String],
    state: &mut Dealt,
    client: &WorkerClient,
) -> Result<(PhaseReport, PhaseReport), ClientError> {
    let (done, result) = std::sync::mpsc::channel();
    let (id, command) = (test.to_string(), command.to_vec());
    std::thread::spawn(move || {
        let _ = done.send(run_test(&id, &command));
    });
    loop {
        match result.recv_timeout(ANSWER_TICK) {
            Ok(reports) => return Ok(reports),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                while let Some(message) = client.recv(Some(Duration::ZERO))? {
                    state.take(message, client)?;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ClientError::Unexpected(format!(
                    "the runner of {test} panicked"
                )));
            }
        }
    }
}

/// The file named by `HERD_STATUS_FILE`, holding the id of the test being started.
struct StatusFile(Option<std::fs::File>);

impl StatusFile {
    fn from_env() -> StatusFile {
        let path = std::env::var_os(herd_core::protocol::ENV_STATUS_FILE);
        StatusFile(path.and_then(|p| std::fs::File::create(p).ok()))
    }

    /// Records `test` before any of its code runs (a plain write survives a sudden death).
    fn starting(&self, test: &str) {
        use std::os::unix::fs::FileExt;
        if let Some(file) = &self.0 {
            let _ = file.write_all_at(format!("{test}\n").as_bytes(), 0);
        }
    }
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
fn noop_test(test: &str) -> (PhaseReport, PhaseReport) {
    (
        PhaseReport::new(test, Phase::Call, PhaseOutcome::Passed, 0.0),
        PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0),
    )
}

/// Runs one test; returns its call and teardown reports.
fn run_test(test: &str, command: &[String]) -> (PhaseReport, PhaseReport) {
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
    (
        call,
        PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0),
    )
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
    fn faults_apply_to_one_spawn() {
        let spec =
            "w1.1:exit0-after=2; w2.1:garbage-after=1;w1.1:extra-test=bogus;w1.2:exit0-after=9";
        assert_eq!(
            Faults::parse(spec, "w1.1"),
            Faults {
                exit0_after: Some(2),
                garbage_after: None,
                extra_test: Some("bogus".into()),
                wedge_after: None,
            }
        );
        assert_eq!(Faults::parse(spec, "w2.1").garbage_after, Some(1));
        assert_eq!(Faults::parse(spec, "w3.1"), Faults::default());
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
        let (call, teardown) = run_test("t", &sh("echo hello"));
        assert_eq!(
            (call.outcome, teardown.when),
            (PhaseOutcome::Passed, Phase::Teardown)
        );
        let (call, _) = run_test("t", &sh("echo boom >&2; exit 3"));
        assert_eq!(call.outcome, PhaseOutcome::Failed);
        assert_eq!(call.longrepr.as_deref(), Some("boom\nexit code 3"));
        let (call, _) = run_test("t", &sh("echo no database; exit 77"));
        assert_eq!(
            (call.outcome, call.message.as_deref()),
            (PhaseOutcome::Skipped, Some("no database"))
        );
        let (call, _) = run_test("t", &["/nonexistent/program".to_string()]);
        assert!(call.message.unwrap().contains("cannot run"));
    }
}
