//! A custom runner: herd drives workers written with its Rust worker client.
//!
//! `cargo run --example custom_runner` (run by `scripts/test`). The same binary plays both parts:
//! started normally it is the coordinator (a `Runner` that collects `nN::is_prime` tests and starts
//! workers); started by herd (with `HERD_ENDPOINT` set) it is a worker built on
//! `herd::worker_loop::WorkerLoop`, which speaks protocol v1, and "runs" a test by checking that N
//! is prime.

use std::time::{Duration, Instant};

use herd::client::WorkerEnv;
use herd::core::outcome::{Phase, PhaseOutcome};
use herd::core::protocol::{PhaseReport, ENV_ENDPOINT};
use herd::core::TestId;
use herd::worker_loop::WorkerLoop;
use herd::{Outcome, Runner, RunnerError, Session, SessionConfig, WorkerCommand};

/// Numbers to check; 91 = 7 x 13 is not prime, so one test fails.
const NUMBERS: [u64; 8] = [2, 3, 5, 7, 11, 13, 91, 7919];

struct PrimeRunner;

impl Runner for PrimeRunner {
    fn name(&self) -> &str {
        "primes"
    }

    fn collect(&self) -> Result<Option<Vec<TestId>>, RunnerError> {
        Ok(Some(
            NUMBERS.iter().map(|n| format!("n{n}::is_prime")).collect(),
        ))
    }

    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        let program = std::env::current_exe().map_err(|e| RunnerError::Usage(e.to_string()))?;
        Ok(WorkerCommand {
            program,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        })
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// The numbers a worker collects: `PRIMES` (comma-separated) when set, else [`NUMBERS`].
/// `tests/custom_worker.rs` sets it, with `PRIMES_SLOW`, to watch a steal.
fn numbers() -> Result<Vec<u64>, std::num::ParseIntError> {
    match std::env::var("PRIMES") {
        Ok(list) => list.split(',').map(|n| n.trim().parse()).collect(),
        Err(_) => Ok(NUMBERS.to_vec()),
    }
}

/// The worker side: [`WorkerLoop`] speaks the protocol (asks for work ahead, answers steals
/// while a test runs, honours stop); this code only collects and checks one number. The check
/// of `PRIMES_SLOW`, if set, takes a second longer.
fn work() -> Result<(), Box<dyn std::error::Error>> {
    let worker = WorkerLoop::connect(WorkerEnv::from_env()?, Duration::from_secs(10), None)?;
    let collection = numbers()?
        .iter()
        .map(|n| format!("n{n}::is_prime"))
        .collect();
    let slow: Option<u64> = std::env::var("PRIMES_SLOW")
        .ok()
        .and_then(|n| n.parse().ok());
    worker.run(collection, move |test| {
        let started = Instant::now();
        let n: Option<u64> = test
            .trim_start_matches('n')
            .split("::")
            .next()
            .and_then(|n| n.parse().ok());
        if n.is_some() && n == slow {
            std::thread::sleep(Duration::from_secs(1));
        }
        let report = |when, outcome, message: Option<String>| PhaseReport {
            longrepr: message.clone(),
            message,
            ..PhaseReport::new(test.clone(), when, outcome, started.elapsed().as_secs_f64())
        };
        let call = match n {
            Some(n) if is_prime(n) => report(Phase::Call, PhaseOutcome::Passed, None),
            Some(n) => report(
                Phase::Call,
                PhaseOutcome::Failed,
                Some(format!("{n} is not prime")),
            ),
            None => report(
                Phase::Call,
                PhaseOutcome::Failed,
                Some(format!("{test} names no number")),
            ),
        };
        vec![call, report(Phase::Teardown, PhaseOutcome::Passed, None)]
    })?;
    Ok(())
}

fn main() {
    if std::env::var_os(ENV_ENDPOINT).is_some() {
        if let Err(e) = work() {
            eprintln!("prime worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let config = SessionConfig {
        workers: Some(2),
        log_dir: None,
        handle_signals: false,
        ..SessionConfig::default()
    };
    let report = Session::new(config, Box::new(PrimeRunner))
        .run()
        .expect("the session runs");
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.verdict.outcome == Outcome::Failed)
        .map(|r| r.test.as_str())
        .collect();
    if report.results.len() != NUMBERS.len() || failed != ["n91::is_prime"] || report.exit_code != 1
    {
        eprintln!("unexpected report: {report:#?}");
        std::process::exit(1);
    }
    println!(
        "custom runner: {} tests, only n91::is_prime failed, as expected",
        report.results.len()
    );
}
