//! Elastic sessions, with real processes and sockets: identical `herd worker --connect URL
//! --token-file F` replicas (no slot, no test command) take the free slots and finish a suite
//! with exactly one outcome per test; a replica joining mid-session gets work; a replica leaving
//! cleanly (SIGTERM) gives its tests back and they run elsewhere, once; a replica joining a full
//! session is told so and exits 0; a real one-node Slurm cluster runs herd workers through
//! `srun` and through a job array (or the test says SKIPPED); the Kubernetes example is
//! well-formed.

mod common;

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// `herd run` for an elastic session over `suite`, started: TCP on loopback, external
/// launcher, the token file; `args` added.
fn coordinator(suite: &Suite, args: &[&str]) -> Child {
    let token = token_file(suite.path(), "token", "elastic-s3cret");
    let mut all = vec![
        "--listen",
        "tcp://127.0.0.1:0",
        "--launcher",
        "external",
        "--token-file",
        &token,
    ];
    all.extend_from_slice(args);
    suite.spawn(&all)
}

/// The endpoint the coordinator listens on, once it says.
fn endpoint(suite: &Suite) -> String {
    wait_for("the session to start", PATIENCE, || {
        read_events(&suite.events_path())
            .iter()
            .find(|e| e["event"] == "session_started")
            .map(|e| e["endpoint"].as_str().unwrap().to_string())
    })
}

/// A replica: `herd worker --connect ENDPOINT --token-file token`, nothing else, in the
/// suite's directory, in its own process group.
fn replica(suite: &Suite, endpoint: &str) -> Child {
    replica_in(suite.path(), endpoint, &suite.path().join("token"))
}

/// A replica in `dir` with the token in `token`.
fn replica_in(dir: &Path, endpoint: &str, token: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["worker", "--connect", endpoint, "--token-file"])
        .arg(token)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// SIGTERM to `child`'s own process (not its group).
fn sigterm(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

/// How many tests each worker finished.
fn per_worker(run: &Run) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in run.of("test_finished") {
        let worker = e["worker"].as_str().unwrap_or("-").to_string();
        *counts.entry(worker).or_default() += 1;
    }
    counts
}

/// Tests that each sleep a little: `n` of them, `module::s{i}`.
fn sleepy(n: usize, secs: &str) -> Suite {
    let mut suite = Suite::new();
    for i in 0..n {
        suite = suite.test(&format!("m::s{i}"), &format!("sleep {secs}\n"));
    }
    suite
}

fn finished_by(events: &Path, worker: &str) -> usize {
    read_events(events)
        .iter()
        .filter(|e| e["event"] == "test_finished" && e["worker"] == worker)
        .count()
}

#[test]
fn identical_replicas_finish_a_suite_with_one_outcome_per_test() {
    let suite = sleepy(30, "0.05");
    let herd = coordinator(&suite, &["-n", "3", "--min-workers", "3"]);
    let endpoint = endpoint(&suite);
    let replicas: Vec<Child> = (0..3).map(|_| replica(&suite, &endpoint)).collect();
    let run = Run::wait(herd, &suite.events_path());
    for replica in replicas {
        let (code, out) = finish(replica);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("joined the session at"), "{out}");
    }
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.outcomes().len(), 30);
    assert_eq!(run.count("passed"), 30);
    // --min-workers 3: nothing was dealt before the three had joined, so all three worked.
    let counts = per_worker(&run);
    assert_eq!(counts.len(), 3, "{counts:?}\n{}", run.dump());
    assert!(
        run.stdout.contains("herd: 3 workers took part: w1 ("),
        "{}",
        run.dump()
    );
    // The one line every replica may run is printed, besides the per-slot commands.
    let line = format!("worker --connect {endpoint} --token-file ");
    assert!(
        run.stdout
            .contains("identical replicas may join from any host (up to 3 workers at once)")
            && run.stdout.contains(&line),
        "{}",
        run.dump()
    );
}

#[test]
fn a_replica_joining_mid_session_gets_work_and_one_past_the_maximum_is_told_the_session_is_full() {
    let suite = sleepy(40, "0.1");
    let herd = coordinator(&suite, &["-n", "1", "--max-workers", "2", "--dist", "load"]);
    let endpoint = endpoint(&suite);
    let first = replica(&suite, &endpoint);
    let events = suite.events_path();
    wait_for("the first replica's tests", PATIENCE, || {
        (finished_by(&events, "w1") >= 3).then_some(())
    });
    // A new slot is made for the second replica: it takes tests from the first.
    let second = replica(&suite, &endpoint);
    wait_for("the second replica's tests", PATIENCE, || {
        (finished_by(&events, "w2") >= 1).then_some(())
    });
    let (code, out) = finish(replica(&suite, &endpoint));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("needs no more workers: every worker slot is taken (2 of at most 2); exiting"),
        "{out}"
    );
    // A replica with a wrong token gets nothing but a refusal.
    std::fs::write(suite.path().join("token"), "guess\n").unwrap();
    let (code, out) = finish(replica(&suite, &endpoint));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong session token"), "{out}");
    let run = Run::wait(herd, &events);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 40);
    for child in [first, second] {
        let (code, out) = finish(child);
        assert_eq!(code, 0, "{out}");
    }
    let counts = per_worker(&run);
    assert!(counts["w1"] >= 3 && counts["w2"] >= 1, "{counts:?}");
    assert!(
        run.stdout.contains("herd: 2 workers took part:"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_replica_leaving_cleanly_gives_back_its_tests_and_they_run_elsewhere_once() {
    let suite = sleepy(30, "0.2");
    let herd = coordinator(&suite, &["-n", "2", "--min-workers", "2"]);
    let endpoint = endpoint(&suite);
    let events = suite.events_path();
    let leaver = replica(&suite, &endpoint);
    wait_for("the first replica to join", PATIENCE, || {
        read_events(&events)
            .iter()
            .any(|e| e["event"] == "worker_spawned" && e["worker"] == "w1")
            .then_some(())
    });
    let stayer = replica(&suite, &endpoint);
    wait_for("tests on w1", PATIENCE, || {
        (finished_by(&events, "w1") >= 2).then_some(())
    });
    // SIGTERM to the replica's own process, as Kubernetes or Slurm would send it.
    sigterm(&leaver);
    let (code, out) = finish(leaver);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("SIGTERM: leaving after the running test"),
        "{out}"
    );
    let left_after = finished_by(&events, "w1");
    let run = Run::wait(herd, &events);
    let (code, out) = finish(stayer);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.code, 0, "{}", run.dump());
    // Every test once, all passed: nothing the leaver held was lost or run twice.
    assert_eq!(run.count("passed"), 30, "{}", run.dump());
    let counts = per_worker(&run);
    assert_eq!(counts["w1"], left_after, "{counts:?}");
    assert_eq!(counts["w1"] + counts["w2"], 30, "{counts:?}");
    let requeued: Vec<&Value> = run
        .of("tests_requeued")
        .into_iter()
        .filter(|e| e["worker"] == "w1")
        .collect();
    assert!(!requeued.is_empty(), "{}", run.dump());
    assert!(run.stdout.contains("is leaving"), "{}", run.dump());
    assert!(!run.stdout.contains("crashed"), "{}", run.dump());
}

#[test]
fn a_pytest_replica_leaving_on_sigterm_gives_back_its_tests() {
    let pytest = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pytest");
    assert!(pytest.exists(), "run scripts/python-env first");
    let dir = tempfile::tempdir().unwrap();
    let test = "import time, pytest\n\n@pytest.mark.parametrize('i', range(30))\n\
                def test_x(i):\n    time.sleep(0.15)\n";
    std::fs::write(dir.path().join("test_x.py"), test).unwrap();
    let token = token_file(dir.path(), "token", "elastic-s3cret");
    let events = dir.path().join("events.jsonl");
    let herd = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(dir.path())
        .args([
            "run",
            "-n",
            "2",
            "--min-workers",
            "2",
            "--launcher",
            "external",
        ])
        .args(["--listen", "tcp://127.0.0.1:0", "--token-file"])
        .arg(&token)
        .arg("--events")
        .arg(&events)
        .arg("--")
        .arg(&pytest)
        .args(["-q", "-p", "no:cacheprovider", "test_x.py"])
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let endpoint = wait_for("the session to start", PATIENCE, || {
        read_events(&events)
            .iter()
            .find(|e| e["event"] == "session_started")
            .map(|e| e["endpoint"].as_str().unwrap().to_string())
    });
    let join = || replica_in(dir.path(), &endpoint, Path::new(&token));
    let leaver = join();
    wait_for("the first replica to join", PATIENCE, || {
        read_events(&events)
            .iter()
            .any(|e| e["event"] == "worker_spawned" && e["worker"] == "w1")
            .then_some(())
    });
    let stayer = join();
    wait_for("tests on w1", PATIENCE, || {
        (finished_by(&events, "w1") >= 3).then_some(())
    });
    sigterm(&leaver);
    let (code, out) = finish(leaver);
    assert_eq!(code, 0, "{out}");
    let run = Run::wait(herd, &events);
    let (code, out) = finish(stayer);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 30, "{}", run.dump());
    assert!(run.stdout.contains("[w1] is leaving"), "{}", run.dump());
    let counts = per_worker(&run);
    assert_eq!(counts["w1"] + counts["w2"], 30, "{counts:?}");
    assert!(counts["w1"] < 30 && counts["w2"] > 0, "{counts:?}");
}

#[test]
fn elastic_options_and_an_unreachable_coordinator_are_refused_clearly() {
    let suite = sleepy(2, "0");
    let run = suite.run(&["-n", "2", "--max-workers", "4"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr
            .contains("--max-workers needs --launcher external"),
        "{}",
        run.dump()
    );
    let token = token_file(suite.path(), "token", "elastic-s3cret");
    let token = token.as_str();
    let external = ["--launcher", "external", "--token-file", token];
    let run = suite.run(&[&["-n", "3", "--max-workers", "2"][..], &external].concat());
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr.contains("less than the 3 worker slots"),
        "{}",
        run.dump()
    );
    let run = suite.run(&[&["-n", "1", "--min-workers", "2"][..], &external].concat());
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr.contains("--min-workers 2 is more than"),
        "{}",
        run.dump()
    );
    // Too low an open-file limit for the workers asked for: what to do is said.
    let herd = env!("CARGO_BIN_EXE_herd");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec {herd} run -n 100 --list 'cat ids.txt' -- sh {{}}"
        ))
        .current_dir(suite.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("100 workers need about 664 open files") && text.contains("ulimit -n 664"),
        "{text}"
    );
    // A replica with nowhere to go says why.
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .args([
            "worker",
            "--connect",
            "tcp://127.0.0.1:9",
            "--token-file",
            token,
        ])
        .env("HERD_CONNECT_TIMEOUT", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no answer from the coordinator at tcp://127.0.0.1:9"),
        "{text}"
    );
}

#[test]
fn a_replica_is_refused_by_a_session_that_starts_its_own_workers() {
    let suite = sleepy(6, "0.3");
    let token = token_file(suite.path(), "token", "elastic-s3cret");
    let herd = suite.spawn(&[
        "-n",
        "1",
        "--listen",
        "tcp://127.0.0.1:0",
        "--token-file",
        &token,
    ]);
    let endpoint = endpoint(&suite);
    let (code, out) = finish(replica(&suite, &endpoint));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("this session takes no worker that does not name its slot"),
        "{out}"
    );
    let run = Run::wait(herd, &suite.events_path());
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 6);
}

#[path = "elastic/slurm.rs"]
mod slurm;

#[path = "elastic/k8s.rs"]
mod k8s;
