//! Property test of the coordinator: whatever sequence of messages a worker sends (valid or
//! not, in any order, then any way of dying), herd does not panic or hang, and every collected
//! test ends with exactly one outcome. The worker is `examples/random_worker.rs`, a real process
//! speaking over a real socket, driven by the seed proptest picks.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use common::example_binary;
use herd::{Runner, RunnerError, Session, SessionConfig, WorkerCommand};
use proptest::prelude::*;

const TESTS: [&str; 6] = ["a::t1", "a::t2", "b::t1", "b::t2", "c::t1", "c::t2"];

struct RandomWorkers {
    seed: u64,
}

fn random_worker() -> PathBuf {
    example_binary("random_worker")
}

impl Runner for RandomWorkers {
    fn name(&self) -> &str {
        "random"
    }

    fn collect(&self) -> Result<Option<Vec<String>>, RunnerError> {
        Ok(Some(TESTS.iter().map(|t| t.to_string()).collect()))
    }

    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        Ok(WorkerCommand {
            program: random_worker(),
            args: Vec::new(),
            env: vec![("RANDOM_WORKER_SEED".into(), self.seed.to_string().into())],
            cwd: None,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_worker_behaviour_leaves_every_test_with_exactly_one_outcome(seed in any::<u64>()) {
        let config = SessionConfig {
            workers: Some(2),
            max_respawns: Some(40),
            retire_after: 0,
            start_timeout: Duration::from_secs(5),
            log_dir: None,
            verbosity: -1,
            handle_signals: false,
            ..SessionConfig::default()
        };
        let session = Session::new(config, Box::new(RandomWorkers { seed })).with_output(Box::new(std::io::sink()));
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || { let _ = done.send(session.run()); });
        // Liveness, not speed: a session that never ends is a hang.
        let report = result.recv_timeout(Duration::from_secs(120)).expect("the session ended").expect("it ran");
        prop_assert!(report.violations.is_empty(), "{:?}", report.violations);
        let mut ended: Vec<&str> = report.results.iter().map(|r| r.test.as_str()).collect();
        ended.sort_unstable();
        prop_assert_eq!(ended, TESTS.to_vec());
        prop_assert!([0, 1, 2, 3].contains(&report.exit_code), "exit {}", report.exit_code);
    }
}
