//! Hostile peers on `--listen`, as real ZeroMQ DEALER sockets against a real `herd run`:
//! squatters that connect before the real worker under its name do not lock it out; identities
//! and names carrying newlines, ANSI and OSC escapes or invalid UTF-8 are printed escaped, never
//! raw; a flood of refused peers prints a bounded number of lines, and every refusal is shown or
//! counted. Each session still ends with every test's one truthful outcome.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::*;
use serde_json::Value;

/// A peer herd has never heard of, connected (or connecting) to `endpoint` as `identity`.
fn peer(ctx: &zmq::Context, endpoint: &str, identity: &[u8]) -> zmq::Socket {
    let socket = ctx.socket(zmq::DEALER).unwrap();
    socket.set_identity(identity).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(20_000).unwrap();
    socket.set_reconnect_ivl(10).unwrap();
    socket.connect(endpoint).unwrap();
    socket
}

/// A hello for `worker`'s first spawn with `token`.
fn hello(worker: &str, token: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "hello", "protocol": 1, "worker": worker, "incarnation": 1, "token": token,
    }))
    .unwrap()
}

/// The coordinator's answer to `socket`.
fn reply(socket: &zmq::Socket) -> Value {
    let frame = socket.recv_bytes(0).expect("an answer from herd");
    serde_json::from_slice(&frame).unwrap()
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// herd on loopback TCP with `--launcher external`: it waits for the test to start its worker.
/// Its output goes to files, read by [`finish`], so that however much it prints it never waits
/// for the test to read.
fn external(suite: &Suite, token: &str) -> (Child, String, String) {
    let out = |name: &str| std::fs::File::create(suite.path().join(name)).unwrap();
    let herd = suite
        .command(&[
            "-n",
            "1",
            "--listen",
            "tcp://127.0.0.1:0",
            "--token-file",
            token,
            "--launcher",
            "external",
        ])
        .stdout(out("herd.out"))
        .stderr(out("herd.err"))
        .spawn()
        .unwrap();
    suite.wait_for_events("worker_awaited", 1);
    let events = read_events(&suite.events_path());
    let endpoint = events[0]["endpoint"].as_str().unwrap().to_string();
    let command = events
        .iter()
        .find(|e| e["event"] == "worker_awaited")
        .unwrap()["command"]
        .as_str()
        .unwrap()
        .to_string();
    (herd, endpoint, command)
}

/// Waits for herd started by [`external`] to end.
fn finish(suite: &Suite, mut herd: Child) -> Run {
    let code = herd.wait().unwrap().code().unwrap_or(-1);
    let read = |name: &str| {
        String::from_utf8_lossy(&std::fs::read(suite.path().join(name)).unwrap()).into_owned()
    };
    Run {
        code,
        stdout: read("herd.out"),
        stderr: read("herd.err"),
        events: read_events(&suite.events_path()),
    }
}

/// Runs the printed worker command to its end; its exit code and output.
fn run_worker(suite: &Suite, command: &str) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(suite.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn squatters_on_the_workers_identities_do_not_lock_the_workers_out() {
    // Tests that take a while, so one worker cannot finish them all before the other joins.
    let mut suite = Suite::new();
    for i in 0..6 {
        suite = suite.test(&format!("m::t{i}"), "sleep 0.4\nexit 0\n");
    }
    let suite = suite.test("m::fails", "sleep 0.4\nexit 1\n");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // The squatters are connecting before herd even listens, so they are in before its
    // workers: under the name a worker had before identities got a nonce (`w1.1`), and under
    // a well-formed guess of the identity it will use.
    let ctx = zmq::Context::new();
    let guess = format!("w2.1.{}", "0123456789abcdef".repeat(2));
    let squatters: Vec<zmq::Socket> = [b"w1.1".as_slice(), b"w2.1", guess.as_bytes()]
        .iter()
        .map(|identity| {
            let socket = peer(&ctx, &endpoint, identity);
            let worker = std::str::from_utf8(&identity[..2]).unwrap();
            socket.send(hello(worker, ""), 0).unwrap();
            socket
        })
        .collect();
    // herd's own local workers, started a second after herd listens.
    let herd = suite.spawn(&[
        "-n",
        "2",
        "--listen",
        &endpoint,
        "--launcher",
        "sleep 1; {cmd}",
    ]);
    for squatter in &squatters {
        let r = reply(squatter);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("wrong session token"),
            "{r}"
        );
        // What a refused squatter says afterwards counts for nothing.
        for msg in [
            r#"{"type":"test_started","test":"m::fails"}"#,
            r#"{"type":"report","test":"m::fails","when":"call","outcome":"passed"}"#,
            r#"{"type":"report","test":"m::fails","when":"teardown","outcome":"passed"}"#,
        ] {
            squatter.send(msg.as_bytes(), 0).unwrap();
            assert_eq!(reply(squatter)["type"], "error");
        }
    }
    let run = Run::wait(herd, &suite.events_path());
    drop(squatters);
    assert!(
        run.of("worker_spawned")
            .iter()
            .all(|e| e["incarnation"] == 1),
        "{}",
        run.dump()
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["m::fails"], "failed", "{}", run.dump());
    assert_eq!(run.count("passed"), 6, "{}", run.dump());
    // Both real workers joined and ran tests although their names were taken first.
    let first_start = run
        .events
        .iter()
        .position(|e| e["event"] == "test_started")
        .unwrap();
    let first_refusal = run
        .events
        .iter()
        .position(|e| e["event"] == "message_refused")
        .unwrap();
    assert!(first_refusal < first_start, "{}", run.dump());
    for worker in ["w1", "w2"] {
        // It joined (not locked out, not given up on) and ended as it should.
        assert!(
            run.of("worker_exited")
                .iter()
                .any(|e| e["worker"] == worker && e["clean"] == true),
            "{worker} did not end cleanly\n{}",
            run.dump()
        );
        assert!(
            run.of("test_finished")
                .iter()
                .any(|e| e["worker"] == worker),
            "{worker} ran nothing\n{}",
            run.dump()
        );
    }
}

/// Text a peer may send to forge lines or take over the terminal.
const FORGERY: &str = "x\n9999 passed in 0.01s\n\x1b[2J\x1b]0;evil\x07";

/// Whether herd's output holds anything the forgery could have put there raw.
fn assert_nothing_raw(output: &str) {
    assert!(
        !output.contains('\x1b'),
        "an escape sequence got through:\n{output}"
    );
    assert!(!output.contains('\x07'), "a BEL got through:\n{output}");
    assert!(
        !output.contains('\u{fffd}'),
        "invalid UTF-8 got through:\n{output}"
    );
    assert!(
        !output.lines().any(|l| l.starts_with("9999 passed")),
        "a forged summary line got through:\n{output}"
    );
}

#[test]
fn identities_and_names_from_peers_are_printed_escaped() {
    let suite = Suite::new().passing("m", "t", 3);
    let token = token_file(suite.path(), "token", "s3cret");
    let (herd, endpoint, command) = external(&suite, &token);
    let ctx = zmq::Context::new();

    // An identity that forges lines, asking for work without a hello.
    let forger = peer(&ctx, &endpoint, FORGERY.as_bytes());
    forger.send(&br#"{"type":"need_tests"}"#[..], 0).unwrap();
    assert_eq!(reply(&forger)["type"], "error");
    // A hello whose worker name forges lines, without the token.
    let namer = peer(&ctx, &endpoint, b"w1.1.0123456789abcdef");
    namer.send(hello(FORGERY, "guess"), 0).unwrap();
    let r = reply(&namer);
    assert!(!r["message"].as_str().unwrap().contains('\x1b'), "{r}");
    // With the token but under an unknown name.
    let insider = peer(&ctx, &endpoint, b"w9.1.0123456789abcdef");
    insider.send(hello(FORGERY, "s3cret"), 0).unwrap();
    assert!(reply(&insider)["message"]
        .as_str()
        .unwrap()
        .contains("unknown worker"));
    // An identity that is not UTF-8, sending a frame whose error quotes what it sent.
    let bytes = peer(&ctx, &endpoint, b"\xff\xfe\x1b[31mred");
    let quoted = serde_json::to_vec(&serde_json::json!({ "type": FORGERY })).unwrap();
    bytes.send(quoted, 0).unwrap();
    assert_eq!(reply(&bytes)["type"], "error");

    let (code, out) = run_worker(&suite, &command);
    assert_eq!(code, 0, "{out}");
    let run = finish(&suite, herd);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 3, "{}", run.dump());
    let output = format!("{}{}", run.stdout, run.stderr);
    assert_nothing_raw(&output);
    // The refusals are shown, escaped.
    assert!(
        output.contains(r"x\\n9999 passed in 0.01s\\n\\x1b[2J\\x1b]0;evil\\x07"),
        "{output}"
    );
    assert!(output.contains(r"\\xff\\xfe\\x1b[31mred"), "{output}");
    assert!(output.contains(r#"hello from "x\n9999 passed"#), "{output}");
    let refused = run.of("message_refused");
    assert_eq!(refused.len(), 4, "{}", run.dump());
    for event in refused {
        let text = format!(
            "{}{}",
            event["identity"].as_str().unwrap(),
            event["reason"].as_str().unwrap()
        );
        assert!(!text.chars().any(char::is_control), "{event}");
    }
}

#[test]
fn a_flood_of_refused_peers_prints_a_bounded_number_of_lines() {
    const PEERS: usize = 2000;
    let suite = Suite::new().passing("m", "t", 4);
    let token = token_file(suite.path(), "token", "s3cret");
    let (herd, endpoint, command) = external(&suite, &token);
    let ctx = zmq::Context::new();
    let flood = Instant::now();
    for batch in 0..PEERS / 200 {
        let peers: Vec<zmq::Socket> = (0..200)
            .map(|i| {
                let identity = format!("w1.1.{:016x}", batch * 200 + i);
                let socket = peer(&ctx, &endpoint, identity.as_bytes());
                socket.send(hello("w1", "guess"), 0).unwrap();
                socket
            })
            .collect();
        for socket in &peers {
            assert_eq!(reply(socket)["type"], "error");
        }
    }
    let flood = flood.elapsed();

    let (code, out) = run_worker(&suite, &command);
    assert_eq!(code, 0, "{out}");
    let run = finish(&suite, herd);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 4, "{}", run.dump());
    // At most 10 refusals and one summary per second of flood (and the windows at its ends).
    let output = format!("{}{}", run.stdout, run.stderr);
    let lines = output.lines().filter(|l| l.contains("refused")).count();
    let bound = 11 * (flood.as_secs() as usize + 3);
    assert!(
        lines <= bound,
        "{lines} lines about refusals for a {flood:?} flood (at most {bound})"
    );
    assert!(output.lines().count() < bound + 40, "{}", run.dump());
    // Every refusal is shown or counted in a summary.
    let shown = run.of("message_refused").len();
    let counted: usize = run
        .of("notice")
        .iter()
        .filter_map(|e| e["text"].as_str())
        .filter_map(|t| {
            t.strip_prefix("refused ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(counted > 0, "{}", run.dump());
    assert_eq!(shown + counted, PEERS, "{}", run.dump());
}
