//! Workers started by someone else, over TCP on this machine: `--listen` refuses open addresses
//! without a token file; `--launcher external` prints the command each worker must run, refuses
//! wrong tokens and fingerprints, gives up a silent worker (its tests re-queued), refuses it when
//! it comes back, and accepts its next incarnation; `{host}` templates; a pytest worker joining
//! with `herd worker --connect`.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use nix::sys::signal::Signal;

/// The `worker_awaited` events so far: (worker, incarnation, command).
fn awaited(events: &Path) -> Vec<(String, u64, String)> {
    read_events(events)
        .iter()
        .filter(|e| e["event"] == "worker_awaited")
        .map(|e| {
            (
                e["worker"].as_str().unwrap().to_string(),
                e["incarnation"].as_u64().unwrap(),
                e["command"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The command herd printed for `worker`'s `incarnation`, once it has.
fn command_for(events: &Path, worker: &str, incarnation: u64) -> String {
    wait_for(
        &format!("the command for {worker}.{incarnation}"),
        PATIENCE,
        || {
            awaited(events)
                .into_iter()
                .find(|(w, i, _)| w == worker && *i == incarnation)
                .map(|(_, _, command)| command)
        },
    )
}

/// Runs a printed command line in `dir`, in its own process group, output kept.
fn start(dir: &Path, command: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn signal_group(child: &Child, signal: Signal) {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

#[test]
fn open_addresses_and_external_workers_need_a_token_file() {
    let suite = Suite::new().passing("m", "t", 2);
    let run = suite.run(&["-n", "1", "--listen", "tcp://0.0.0.0:0"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr.contains("--token-file") && run.stderr.contains("not encrypted"),
        "{}",
        run.dump()
    );
    let run = suite.run(&["-n", "1", "--launcher", "external"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(run.stderr.contains("--token-file"), "{}", run.dump());
    // Loopback needs none: the workers herd starts get a fresh token.
    let run = suite.run(&["-n", "1", "--listen", "tcp://127.0.0.1:0"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(run.of("session_started")[0]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("tcp://127.0.0.1:"));
}

#[test]
fn external_workers_join_with_the_printed_command_and_impostors_are_refused() {
    let suite = Suite::new().passing("m", "t", 8);
    let token = token_file(suite.path(), "token", "s3cret");
    let herd = suite.spawn(&[
        "-n",
        "2",
        "--listen",
        "tcp://127.0.0.1:0",
        "--token-file",
        &token,
        "--launcher",
        "external",
        "--fingerprint",
        "echo rev1",
    ]);
    let events = suite.events_path();
    let w1 = command_for(&events, "w1", 1);
    let w2 = command_for(&events, "w2", 1);
    assert!(
        w1.contains("--connect tcp://127.0.0.1:")
            && w1.contains("--worker w1 --incarnation 1")
            && w1.contains("--fingerprint 'echo rev1'"),
        "{w1}"
    );

    let wrong = token_file(suite.path(), "wrong", "guess");
    let (code, out) = finish(start(suite.path(), &w2.replace(&token, &wrong)));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong session token"), "{out}");
    let (code, out) = finish(start(suite.path(), &w2.replace("echo rev1", "echo rev2")));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("fingerprint mismatch") && out.contains("rev1") && out.contains("rev2"),
        "{out}"
    );

    let (code, out) = finish(start(suite.path(), &w1));
    assert_eq!(code, 0, "{out}");
    let run = Run::wait(herd, &events);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 8);
    assert!(run.of("test_finished").iter().all(|e| e["worker"] == "w1"));
    let refused = run.of("message_refused");
    assert!(refused.len() >= 2, "{}", run.dump());
    assert!(
        run.stdout.contains("stops waiting for w2.1 to join"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_silent_external_worker_is_given_up_and_refused_when_it_comes_back() {
    let suite = Suite::new()
        .passing("m", "t", 12)
        .test("m::slow", "sleep 1\n");
    let mut suite = suite;
    for i in 0..12 {
        suite = suite.test(&format!("n::s{i}"), "sleep 0.2\n");
    }
    let token = token_file(suite.path(), "token", "s3cret");
    let herd = suite.spawn(&[
        "-n",
        "2",
        "--listen",
        "tcp://127.0.0.1:0",
        "--token-file",
        &token,
        "--launcher",
        "external",
        "--heartbeat-timeout",
        "1",
    ]);
    let events = suite.events_path();
    let first: Vec<Child> = ["w1", "w2"]
        .iter()
        .map(|w| start(suite.path(), &command_for(&events, w, 1)))
        .collect();
    suite.wait_for_events("test_finished", 3);
    // Both hosts "vanish": stopped, they send nothing, not even heartbeats.
    for child in &first {
        signal_group(child, Signal::SIGSTOP);
    }
    let second: Vec<String> = ["w1", "w2"]
        .iter()
        .map(|w| command_for(&events, w, 2))
        .collect();
    // They come back: whatever they send is refused, and they exit.
    for child in &first {
        signal_group(child, Signal::SIGCONT);
    }
    for child in first {
        let (code, out) = finish(child);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("refused"), "{out}");
    }
    let replacements: Vec<Child> = second.iter().map(|c| start(suite.path(), c)).collect();
    for child in replacements {
        let (code, out) = finish(child);
        assert_eq!(code, 0, "{out}");
    }
    let run = Run::wait(herd, &events);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 25, "{}", run.dump());
    assert!(!run.of("tests_requeued").is_empty(), "{}", run.dump());
    assert!(
        run.stdout.contains("giving it up for lost"),
        "{}",
        run.dump()
    );
}

#[test]
fn template_hosts_are_dealt_to_the_workers() {
    let suite = Suite::new().passing("m", "t", 4);
    let run = suite.run(&[
        "--launcher",
        "echo {host} {worker} >> hosts.log; {cmd}",
        "--hosts",
        "alpha,beta",
    ]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 4);
    let log = std::fs::read_to_string(suite.path().join("hosts.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(lines, ["alpha w1", "beta w2"]);
}

#[test]
fn a_pytest_worker_joins_with_herd_worker_connect() {
    let pytest = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pytest");
    assert!(pytest.exists(), "run scripts/python-env first");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_x.py"),
        "def test_a():\n    pass\n\ndef test_b():\n    assert False\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), "s3cret").unwrap();
    let events = dir.path().join("events.jsonl");
    let herd = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(dir.path())
        .args(["run", "-n", "1", "--launcher", "external", "--token-file"])
        .arg("token")
        .arg("--events")
        .arg(&events)
        .arg("--")
        .arg(&pytest)
        .args(["-p", "no:cacheprovider"])
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let command = command_for(&events, "w1", 1);
    assert!(command.contains("no:cacheprovider"), "{command}");
    let (code, out) = finish(start(dir.path(), &command));
    assert_eq!(code, 1, "pytest's own exit code: a test failed\n{out}");
    let run = Run::wait(herd, &events);
    assert_eq!(run.code, 1, "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["test_x.py::test_a"], "passed");
    assert_eq!(outcomes["test_x.py::test_b"], "failed");
}

#[test]
fn a_worker_whose_coordinator_is_gone_gives_up() {
    let mut suite = Suite::new();
    for i in 0..4 {
        suite = suite.test(&format!("m::t{i}"), "sleep 0.5\n");
    }
    let token = token_file(suite.path(), "token", "s3cret");
    let mut herd = suite.spawn(&[
        "-n",
        "1",
        "--listen",
        "tcp://127.0.0.1:0",
        "--token-file",
        &token,
        "--launcher",
        "external",
    ]);
    let command = command_for(&suite.events_path(), "w1", 1);
    let worker = start(
        suite.path(),
        &format!("env HERD_CONNECT_TIMEOUT=1 {command}"),
    );
    suite.wait_for_events("test_started", 1);
    herd.kill().unwrap();
    herd.wait().unwrap();
    // Its queue runs out, then it notices nobody answers any more and exits.
    let (code, out) = finish(worker);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no answer from the coordinator"), "{out}");
}
