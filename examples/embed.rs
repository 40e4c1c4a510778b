//! Embedding herd: run a suite from Rust, act on its events live, then read the report.
//!
//! `cargo run --example embed` (run by `scripts/test`, so it cannot rot). The suite is six shell
//! tests written to a temporary directory; one fails. The program prints each outcome as it
//! arrives, then checks the report and exits non-zero if anything is off.

use std::collections::BTreeMap;

use herd::core::events::Event;
use herd::{ExecRunner, Outcome, Session, SessionConfig};

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for i in 0..5 {
        std::fs::write(dir.path().join(format!("t{i}.sh")), "exit 0\n").unwrap();
    }
    std::fs::write(dir.path().join("t5.sh"), "echo 'disk full' >&2\nexit 1\n").unwrap();

    let runner = ExecRunner {
        list: format!("cd {} && ls *.sh", dir.path().display()),
        command: vec!["sh".into(), format!("{}/{{}}", dir.path().display())],
        worker_program: herd::runner::find_herd_binary().expect("build herd first: cargo build"),
    };
    let config = SessionConfig {
        workers: Some(2),
        log_dir: None,
        verbosity: -1,         // the embedding program does its own output
        handle_signals: false, // and owns the process's signals
        ..SessionConfig::default()
    };

    // Live events through a channel: the session runs on its own thread (it owns an actix
    // system there) while this thread acts on each event as it arrives.
    let (events, received) = std::sync::mpsc::channel();
    let session = Session::new(config, Box::new(runner))
        .with_output(Box::new(std::io::sink()))
        .on_event(move |stamped| {
            let _ = events.send(stamped.clone());
        });
    let running = std::thread::spawn(move || session.run());
    let mut live: BTreeMap<Outcome, usize> = BTreeMap::new();
    for stamped in received {
        if let Event::TestFinished {
            test,
            worker,
            verdict,
        } = &stamped.event
        {
            *live.entry(verdict.outcome).or_default() += 1;
            let worker = worker.as_deref().unwrap_or("-");
            println!(
                "{:>7.3}s  {test} on {worker}: {}",
                stamped.t, verdict.outcome
            );
            if verdict.outcome.is_failure() {
                println!("          -> {}", verdict.message.as_deref().unwrap_or("?"));
            }
        }
    }
    let report = running
        .join()
        .expect("the session thread")
        .expect("the session runs");

    println!("{}", report.tally.summary_line(report.duration));
    let ok = report.results.len() == 6
        && report.tally.get(Outcome::Passed) == 5
        && report.tally.get(Outcome::Failed) == 1
        && live.get(&Outcome::Passed) == Some(&5)
        && live.get(&Outcome::Failed) == Some(&1)
        && report.exit_code == 1;
    if !ok {
        eprintln!("unexpected report: {report:#?}\nlive counts: {live:?}");
        std::process::exit(1);
    }
}
