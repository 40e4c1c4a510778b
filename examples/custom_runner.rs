//! A custom runner: herd drives workers written with its Rust worker client.
//!
//! `cargo run --example custom_runner` (run by `scripts/test`). The same binary plays both parts:
//! started normally it is the coordinator (a `Runner` that collects `nN::is_prime` tests and starts
//! workers); started by herd (with `HERD_ENDPOINT` set) it is a worker that speaks protocol v1
//! through `herd::client::WorkerClient` and "runs" a test by checking that N is prime.

use std::time::{Duration, Instant};

use herd::client::{WorkerClient, WorkerEnv};
use herd::core::outcome::{Phase, PhaseOutcome};
use herd::core::protocol::{CoordinatorMessage, PhaseReport, WorkerMessage, ENV_ENDPOINT};
use herd::core::TestId;
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

/// The worker side: collect, then run groups until told there is no more work.
fn work() -> Result<(), Box<dyn std::error::Error>> {
    let client = WorkerClient::connect(WorkerEnv::from_env()?, Duration::from_secs(10))?;
    let tests = NUMBERS.iter().map(|n| format!("n{n}::is_prime")).collect();
    let collection = WorkerMessage::collection(tests);
    client.send(&collection)?;
    loop {
        client.send(&WorkerMessage::NeedTests)?;
        let tests = match client.recv(None)? {
            Some(CoordinatorMessage::Tests { tests }) if !tests.is_empty() => tests,
            _ => break,
        };
        for test in tests {
            client.send(&WorkerMessage::TestStarted { test: test.clone() })?;
            let started = Instant::now();
            let n: u64 = test
                .trim_start_matches('n')
                .split("::")
                .next()
                .unwrap_or("0")
                .parse()?;
            let prime = is_prime(n);
            let report = |when, outcome, message: Option<String>| PhaseReport {
                longrepr: message.clone(),
                message,
                ..PhaseReport::new(test.clone(), when, outcome, started.elapsed().as_secs_f64())
            };
            let call = if prime {
                report(Phase::Call, PhaseOutcome::Passed, None)
            } else {
                report(
                    Phase::Call,
                    PhaseOutcome::Failed,
                    Some(format!("{n} is not prime")),
                )
            };
            client.send_batch(&[
                WorkerMessage::Report(call),
                WorkerMessage::Report(report(Phase::Teardown, PhaseOutcome::Passed, None)),
            ])?;
        }
    }
    client.send(&WorkerMessage::Shutdown)?;
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
