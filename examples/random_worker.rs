//! A misbehaving worker for herd's property test of the coordinator (`tests/sequences.rs`).
//!
//! Started by herd (with `HERD_*` set and `RANDOM_WORKER_SEED`), each of its first spawns sends
//! a seeded random sequence of messages, valid and not (wrong ids, reports out of order, a second
//! hello, garbage, early shutdown, sudden exits); from its third spawn on it behaves, so the
//! session can finish. Started by hand it only explains itself.

use std::time::Duration;

use herd::client::{WorkerClient, WorkerEnv};
use herd::core::outcome::{Phase, PhaseOutcome};
use herd::core::protocol::{PhaseReport, WorkerMessage, ENV_ENDPOINT};
use herd::worker_loop::WorkerLoop;
use rand::{Rng, SeedableRng};

/// The suite every spawn collects (and the reference the test gives herd).
pub const TESTS: [&str; 6] = ["a::t1", "a::t2", "b::t1", "b::t2", "c::t1", "c::t2"];

fn report(test: &str, when: Phase, outcome: PhaseOutcome) -> WorkerMessage {
    WorkerMessage::Report(PhaseReport::new(test, when, outcome, 0.0))
}

fn collection(tests: Vec<String>) -> WorkerMessage {
    WorkerMessage::collection(tests)
}

/// Honest work: [`WorkerLoop`] runs every test it is given (each passes) until there is no more.
fn behave(env: WorkerEnv) -> Result<(), Box<dyn std::error::Error>> {
    let worker = WorkerLoop::connect(env, Duration::from_secs(10), None)?;
    let tests = TESTS.iter().map(|t| t.to_string()).collect();
    worker.run(tests, |test| {
        vec![
            PhaseReport::new(test, Phase::Call, PhaseOutcome::Passed, 0.0),
            PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0),
        ]
    })?;
    Ok(())
}

/// Chaos: a random sequence of messages, then a random way out.
fn misbehave(client: &WorkerClient, rng: &mut impl Rng) -> Result<(), Box<dyn std::error::Error>> {
    let pick = |rng: &mut dyn rand::RngCore| -> String {
        if rng.gen_bool(0.8) {
            TESTS[rng.gen_range(0..TESTS.len())].to_string()
        } else {
            "zz::not_collected".to_string()
        }
    };
    let phases = [Phase::Setup, Phase::Call, Phase::Teardown];
    let outcomes = [
        PhaseOutcome::Passed,
        PhaseOutcome::Failed,
        PhaseOutcome::Skipped,
    ];
    for _ in 0..rng.gen_range(1..40) {
        let message = match rng.gen_range(0..12) {
            0 => collection(TESTS.iter().map(|t| t.to_string()).collect()),
            1 => collection(vec![pick(rng)]),
            2 | 3 => WorkerMessage::NeedTests,
            4 | 5 => WorkerMessage::TestStarted { test: pick(rng) },
            6 | 7 => report(
                &pick(rng),
                phases[rng.gen_range(0..3)],
                outcomes[rng.gen_range(0..3)],
            ),
            8 => WorkerMessage::Heartbeat,
            9 => WorkerMessage::Message {
                text: "hello from chaos".into(),
            },
            10 => {
                let garbage: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
                client.send_raw(&garbage)?;
                continue;
            }
            _ => WorkerMessage::Hello {
                protocol: 1,
                worker: "w1".into(),
                incarnation: 1,
                token: "nope".into(),
                pid: None,
                heartbeat: None,
                fingerprint: None,
            },
        };
        client.send(&message)?;
        let _ = client.recv(Some(Duration::from_millis(rng.gen_range(0..5))))?;
    }
    match rng.gen_range(0..4) {
        0 => client.send(&WorkerMessage::Shutdown)?,
        1 => std::process::exit(rng.gen_range(0..3)),
        2 => std::thread::sleep(Duration::from_millis(rng.gen_range(0..200))),
        _ => {}
    }
    Ok(())
}

fn main() {
    if std::env::var_os(ENV_ENDPOINT).is_none() {
        println!("random_worker: a misbehaving herd worker for tests/sequences.rs; herd starts it");
        return;
    }
    let env = WorkerEnv::from_env().expect("HERD_* variables");
    let seed: u64 = std::env::var("RANDOM_WORKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let incarnation = env.incarnation;
    let salt = u64::from(incarnation) * 7919 + env.worker.bytes().map(u64::from).sum::<u64>();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt);
    let result = if incarnation >= 3 {
        behave(env)
    } else {
        let client = WorkerClient::connect(env, Duration::from_secs(10)).expect("welcome");
        misbehave(&client, &mut rng)
    };
    if let Err(e) = result {
        eprintln!("random_worker: {e}");
        std::process::exit(1);
    }
}
