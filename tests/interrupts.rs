//! Signals and strangers: SIGQUIT ends at once, SIGINT/SIGTERM drain, a second one kills; a peer
//! without the token (or speaking garbage) is refused and nothing it sends is acted on. No test
//! process outlives the session.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// A suite of slow tests whose processes carry `marker` in their command line.
fn slow_suite(marker: &str, n: usize) -> Suite {
    let mut suite = Suite::new();
    for i in 0..n {
        suite = suite.test(
            &format!("m{i}::slow{i}"),
            &format!("sleep {marker}\nexit 0\n"),
        );
    }
    suite
}

/// No `sleep MARKER` test process is left (within a few seconds of herd's exit).
fn assert_no_orphans(marker: &str) {
    let leftover = format!("sleep {marker}");
    assert!(
        no_processes_with(&leftover, Duration::from_secs(3)),
        "orphans left: {:?}",
        processes_with(&leftover)
    );
}

#[test]
fn sigquit_ends_the_session_at_once_with_a_partial_report() {
    let marker = "7.3311";
    let suite = slow_suite(marker, 6);
    let child = suite.spawn(&["-n", "2"]);
    suite.wait_for_events("test_started", 2);
    let sent = Instant::now();
    signal(&child, Signal::SIGQUIT);
    let run = Run::wait(child, &suite.events_path());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(run.code, 2, "{}", run.dump());
    assert_eq!(run.count("not_run"), 6, "{}", run.dump());
    assert!(
        run.stdout.contains("interrupted: SIGQUIT") && run.stdout.contains("6 not run"),
        "{}",
        run.dump()
    );
    assert_no_orphans(marker);
}

#[test]
fn a_second_sigint_kills_everything() {
    let marker = "7.4411";
    let suite = slow_suite(marker, 6);
    let child = suite.spawn(&["-n", "2"]);
    suite.wait_for_events("test_started", 2);
    let sent = Instant::now();
    signal(&child, Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, Signal::SIGINT);
    let run = Run::wait(child, &suite.events_path());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(run.code, 2, "{}", run.dump());
    assert_eq!(run.count("not_run"), 6, "{}", run.dump());
    assert!(run.stdout.contains("SIGINT twice"), "{}", run.dump());
    assert_no_orphans(marker);
}

#[test]
fn sigterm_lets_running_tests_finish_and_runs_nothing_else() {
    let marker = "1.5511";
    let suite = slow_suite(marker, 6);
    let child = suite.spawn(&["-n", "2"]);
    suite.wait_for_events("test_started", 2);
    signal(&child, Signal::SIGTERM);
    let run = Run::wait(child, &suite.events_path());
    assert_eq!(run.code, 2, "{}", run.dump());
    assert_eq!(
        run.count("passed"),
        2,
        "the two running tests finish\n{}",
        run.dump()
    );
    assert_eq!(run.count("not_run"), 4, "{}", run.dump());
    assert_eq!(
        run.of("test_started").len(),
        2,
        "nothing else starts\n{}",
        run.dump()
    );
    assert!(
        run.stdout.contains("interrupted: SIGTERM"),
        "{}",
        run.dump()
    );
    assert!(
        run.of("worker_exited").iter().all(|e| e["clean"] == true),
        "{}",
        run.dump()
    );
    assert_no_orphans(marker);
}

#[test]
fn no_test_process_outlives_a_sigkilled_herd() {
    let marker = "8.6611";
    let suite = slow_suite(marker, 4);
    let child = suite.spawn(&["-n", "2"]);
    suite.wait_for_events("test_started", 2);
    assert!(
        !processes_with(&format!("sleep {marker}")).is_empty(),
        "tests are running"
    );
    signal(&child, Signal::SIGKILL);
    let _ = Run::wait(child, &suite.events_path());
    assert_no_orphans(marker);
    // Nothing of this session is left: no worker and no test process in its directory.
    assert!(
        no_processes_in(suite.path(), Duration::from_secs(3)),
        "orphaned workers or tests: {:?}",
        processes_in(suite.path())
    );
}

#[test]
fn a_worker_that_never_reports_its_collection_is_killed_and_its_slot_retired() {
    // Only workers (which have HERD_WORKER_ID) hang while listing; the coordinator does not.
    let suite = Suite::new()
        .passing("a", "t", 2)
        .with_list("[ -n \"$HERD_WORKER_ID\" ] && sleep 6.1234; cat ids.txt");
    let run = suite.run(&[
        "-n",
        "1",
        "--worker-start-timeout",
        "0.5",
        "--retire-after",
        "2",
    ]);
    assert_eq!(run.code, 3, "{}", run.dump());
    assert_eq!(run.count("not_run"), 2);
    assert!(
        run.stdout.contains("no collection within"),
        "{}",
        run.dump()
    );
    assert_eq!(run.of("worker_spawned").len(), 2, "{}", run.dump());
    assert!(run.of("worker_retired")[0]["reason"]
        .as_str()
        .unwrap()
        .contains("2 times in a row"));
    assert!(
        no_processes_with("sleep 6.1234", Duration::from_secs(3)),
        "the hung list command is killed"
    );
}

fn dealer(endpoint: &str, identity: &str) -> zmq::Socket {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::DEALER).unwrap();
    socket.set_identity(identity.as_bytes()).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(5000).unwrap();
    socket.connect(endpoint).unwrap();
    socket
}

fn reply(socket: &zmq::Socket) -> serde_json::Value {
    let frame = socket.recv_bytes(0).expect("a reply within 5s");
    serde_json::from_slice(&frame).unwrap()
}

#[test]
fn strangers_without_the_token_are_refused_and_nothing_they_send_is_acted_on() {
    let mut suite = Suite::new();
    for i in 0..8 {
        suite = suite.test(&format!("m{i}::t{i}"), "sleep 0.2\nexit 0\n");
    }
    let child = suite.spawn(&["-n", "1"]);
    suite.wait_for_events("test_started", 1);
    let events = read_events(&suite.events_path());
    let endpoint = events[0]["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("ipc://"), "{endpoint}");
    let dir = std::path::Path::new(endpoint.trim_start_matches("ipc://"))
        .parent()
        .unwrap()
        .to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Garbage from an unknown identity.
    let stranger = dealer(&endpoint, "stranger");
    stranger.send(&b"\x00\x01 not json"[..], 0).unwrap();
    let r = reply(&stranger);
    assert_eq!(r["type"], "error");
    assert!(r["message"].as_str().unwrap().contains("malformed"), "{r}");
    // Work requests without a hello.
    stranger.send(&br#"{"type":"need_tests"}"#[..], 0).unwrap();
    assert!(reply(&stranger)["message"]
        .as_str()
        .unwrap()
        .contains("say hello first"));
    // A hello with a wrong token, under a worker's name.
    let impostor = dealer(&endpoint, "w1.9");
    let hello = r#"{"type":"hello","protocol":1,"worker":"w1","incarnation":9,"token":"guess"}"#;
    impostor.send(hello.as_bytes(), 0).unwrap();
    assert!(reply(&impostor)["message"]
        .as_str()
        .unwrap()
        .contains("wrong session token"));
    // Reports and test starts from the impostor change nothing.
    for msg in [
        r#"{"type":"test_started","test":"m7::t7"}"#,
        r#"{"type":"report","test":"m7::t7","when":"teardown","outcome":"failed"}"#,
        r#"{"type":"need_tests"}"#,
    ] {
        impostor.send(msg.as_bytes(), 0).unwrap();
        assert_eq!(reply(&impostor)["type"], "error");
    }
    // A wrong protocol version.
    let old = dealer(&endpoint, "w1.10");
    old.send(
        &br#"{"type":"hello","protocol":0,"worker":"w1","incarnation":10,"token":"x"}"#[..],
        0,
    )
    .unwrap();
    assert!(reply(&old)["message"]
        .as_str()
        .unwrap()
        .contains("protocol version 0"));

    let run = Run::wait(child, &suite.events_path());
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 8, "{}", run.dump());
    assert!(run.of("test_finished").iter().all(|e| e["worker"] == "w1"));
    assert!(run.of("message_refused").len() >= 6, "{}", run.dump());
    assert!(
        !dir.exists(),
        "the private endpoint directory is removed at exit"
    );
}

#[test]
fn an_unreachable_endpoint_is_a_clear_worker_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["worker", "--list", "echo a", "--", "true"])
        .env("HERD_ENDPOINT", "ipc:///nonexistent/herd.sock")
        .env("HERD_TOKEN", "t")
        .env("HERD_WORKER_ID", "w1")
        .env("HERD_INCARNATION", "1")
        .env("HERD_CONNECT_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no answer from the coordinator at ipc:///nonexistent/herd.sock"),
        "{stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["worker", "--list", "echo a", "--", "true"])
        .env_remove("HERD_ENDPOINT")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERD_ENDPOINT is not set"));
}
