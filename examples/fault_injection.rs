//! A harness that tests its own worker under a fault plan.
//!
//! `cargo run --example fault_injection` (run by `scripts/test`). Thirty shell tests run on
//! herd's exec worker while a seeded `FaultPlan` kills, stops and terminates worker processes and
//! makes them exit 0, send garbage or lie about their collection. The harness then checks what
//! herd promises: every collected test has exactly one outcome, only the faults caused
//! failures (each one a crash, never a false pass or a lost test), and the faults are listed.

use std::time::Duration;

use herd::core::faults::FaultPlan;
use herd::{ExecRunner, Outcome, Session, SessionConfig};

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for i in 0..30 {
        std::fs::write(
            dir.path().join(format!("t{i:02}.sh")),
            "sleep 0.02\nexit 0\n",
        )
        .unwrap();
    }
    let plan =
        FaultPlan::parse("seed=7,kill=0.05,stop=0.03,term=0.03,exit0=0.02,garble=0.02,lie=0.05")
            .expect("a valid plan");
    let runner = ExecRunner {
        list: format!("cd {} && ls", dir.path().display()),
        command: vec!["sh".into(), format!("{}/{{}}", dir.path().display())],
        worker_program: herd::runner::find_herd_binary().expect("build herd first: cargo build"),
    };
    let config = SessionConfig {
        workers: Some(2),
        faults: Some(plan),
        hang_timeout: Duration::from_millis(500),
        max_respawns: Some(200),
        retire_after: 0,
        log_dir: None,
        verbosity: -1,
        handle_signals: false,
        ..SessionConfig::default()
    };
    let report = Session::new(config, Box::new(runner))
        .with_output(Box::new(std::io::sink()))
        .run()
        .expect("the session runs");

    println!("{} faults injected:", report.faults.len());
    for fault in &report.faults {
        let test = fault.test.as_deref().unwrap_or("(between tests)");
        println!(
            "  {:>6.3}s  {}.{}  {:<6}  {test}",
            fault.t,
            fault.worker,
            fault.incarnation,
            fault.kind.name()
        );
    }
    println!("{}", report.tally.summary_line(report.duration));

    let mut problems = Vec::new();
    if report.results.len() != 30 || !report.violations.is_empty() {
        problems.push(format!(
            "{} results, violations {:?}",
            report.results.len(),
            report.violations
        ));
    }
    for result in &report.results {
        let outcome = result.verdict.outcome;
        if !matches!(outcome, Outcome::Passed | Outcome::Crashed) {
            problems.push(format!(
                "{} ended {outcome}, which no fault explains",
                result.test
            ));
        }
    }
    if report.faults.is_empty() {
        problems.push("the plan injected no fault".into());
    }
    if !problems.is_empty() {
        eprintln!(
            "fault injection found problems:\n  {}",
            problems.join("\n  ")
        );
        std::process::exit(1);
    }
    println!("every test ended exactly once; only injected faults caused failures");
}
