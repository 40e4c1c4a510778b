//! herd as a library: a session inside an existing actix system, from a tokio runtime, with live
//! events, worker lifetimes in the report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use herd::core::events::Event;
use herd::{ExecRunner, Outcome, Session, SessionConfig};

fn suite() -> (tempfile::TempDir, ExecRunner) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("t{i}.sh")), "exit 0\n").unwrap();
    }
    let runner = ExecRunner {
        list: format!("cd {} && ls", dir.path().display()),
        command: vec!["sh".into(), format!("{}/{{}}", dir.path().display())],
        worker_program: PathBuf::from(env!("CARGO_BIN_EXE_herd")),
    };
    (dir, runner)
}

fn config() -> SessionConfig {
    SessionConfig {
        workers: Some(2),
        log_dir: None,
        // No duration history: the order of the groups is the policy's own.
        history: None,
        handle_signals: false,
        ..SessionConfig::default()
    }
}

#[test]
fn a_session_runs_inside_an_existing_actix_system_with_live_events() {
    let (_dir, runner) = suite();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let seen = finished.clone();
    let system = actix::System::new();
    let report = system
        .block_on(
            Session::new(config(), Box::new(runner))
                .with_output(Box::new(std::io::sink()))
                .on_event(move |stamped| {
                    if let Event::TestFinished { test, .. } = &stamped.event {
                        seen.lock().unwrap().push(test.clone());
                    }
                })
                .run_in_system(),
        )
        .unwrap();
    assert_eq!(report.tally.get(Outcome::Passed), 4);
    let mut live = finished.lock().unwrap().clone();
    live.sort();
    assert_eq!(live, ["t0.sh", "t1.sh", "t2.sh", "t3.sh"]);
    assert_eq!(report.workers.len(), 2, "{:?}", report.workers);
    assert!(
        report.workers.iter().all(|w| w.ended.is_some() && w.clean),
        "{:?}",
        report.workers
    );
}

#[test]
fn a_session_runs_from_a_tokio_runtime_on_a_blocking_thread() {
    let (_dir, runner) = suite();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let session = Session::new(config(), Box::new(runner)).with_output(Box::new(std::io::sink()));
    let report = runtime
        .block_on(async { tokio::task::spawn_blocking(move || session.run()).await })
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.tally.get(Outcome::Passed), report.exit_code),
        (4, 0)
    );
}

/// A custom grouping policy: one test per group, last collected first.
#[derive(Debug)]
struct Reversed;

impl herd::core::grouping::GroupingPolicy for Reversed {
    fn groups(
        &self,
        collection: &[String],
        _: &herd::core::providers::Providers,
        _: &std::collections::BTreeMap<String, String>,
    ) -> Vec<herd::core::grouping::Group> {
        let one = |t: &String| herd::core::grouping::Group {
            tests: vec![t.clone()],
            provider: None,
        };
        collection.iter().rev().map(one).collect()
    }
}

#[test]
fn the_grouping_policy_is_pluggable() {
    let (_dir, runner) = suite();
    let started = Arc::new(Mutex::new(Vec::new()));
    let seen = started.clone();
    let config = SessionConfig {
        workers: Some(1),
        ..config()
    };
    let report = Session::new(config, Box::new(runner))
        .with_output(Box::new(std::io::sink()))
        .with_grouping(Arc::new(Reversed))
        .on_event(move |stamped| {
            if let Event::TestStarted { test, .. } = &stamped.event {
                seen.lock().unwrap().push(test.clone());
            }
        })
        .run()
        .unwrap();
    assert_eq!(report.exit_code, 0);
    assert_eq!(
        *started.lock().unwrap(),
        ["t3.sh", "t2.sh", "t1.sh", "t0.sh"]
    );
}
