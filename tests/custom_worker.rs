//! Workers built on `herd::worker_loop::WorkerLoop` with real processes and sockets: the
//! custom-runner example (`examples/custom_runner.rs`) gives back unstarted tests while its slow
//! test runs, so an idle worker takes them; and `herd worker --connect -- pytest` checks the
//! suite's Python up front, as `herd run` does.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use common::{example_binary, read_events};
use herd::{Outcome, Runner, RunnerError, Session, SessionConfig, WorkerCommand};

/// The numbers the workers check: 40 tests, so the first chunk dealt holds several.
const NUMBERS: std::ops::RangeInclusive<u64> = 2..=41;
/// The first test dealt, which takes a second.
const SLOW: &str = "n2::is_prime";

fn custom_runner() -> PathBuf {
    example_binary("custom_runner")
}

fn ids() -> Vec<String> {
    NUMBERS.map(|n| format!("n{n}::is_prime")).collect()
}

/// The example's workers, told to collect [`NUMBERS`] and to be slow on 2.
struct Primes;

impl Runner for Primes {
    fn name(&self) -> &str {
        "primes"
    }

    fn collect(&self) -> Result<Option<Vec<String>>, RunnerError> {
        Ok(Some(ids()))
    }

    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        let list: Vec<String> = NUMBERS.map(|n| n.to_string()).collect();
        Ok(WorkerCommand {
            program: custom_runner(),
            args: Vec::new(),
            env: vec![
                ("PRIMES".into(), list.join(",").into()),
                ("PRIMES_SLOW".into(), "2".into()),
            ],
            cwd: None,
        })
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

#[test]
fn the_custom_runner_gives_back_unstarted_tests_while_its_slow_test_runs() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = SessionConfig {
        workers: Some(2),
        events: Some(events.clone()),
        log_dir: None,
        verbosity: -1,
        handle_signals: false,
        ..SessionConfig::default()
    };
    let report = Session::new(config, Box::new(Primes))
        .with_output(Box::new(std::io::sink()))
        .run()
        .expect("the session runs");
    let events = read_events(&events);
    let dump = || format!("{report:#?}\n{events:#?}");
    assert!(report.violations.is_empty(), "{}", dump());
    let mut ended: Vec<String> = report.results.iter().map(|r| r.test.clone()).collect();
    ended.sort();
    let mut want = ids();
    want.sort();
    assert_eq!(ended, want);
    for result in &report.results {
        let n: u64 = result.test[1..]
            .split("::")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let expected = if is_prime(n) {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        assert_eq!(result.verdict.outcome, expected, "{}", result.test);
    }

    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == kind).collect()
    };
    let finished = |test: &str| {
        of("test_finished")
            .into_iter()
            .find(|e| e["test"] == test)
            .unwrap()
    };
    // Only an answer with tests in it is a steal (no answer within 500 ms counts as none).
    let stolen = of("work_stolen");
    assert!(!stolen.is_empty(), "no steal\n{}", dump());
    let slow = finished(SLOW);
    assert_eq!(stolen[0]["from"], slow["worker"], "{}", dump());
    assert!(
        stolen[0]["t"].as_f64().unwrap() < slow["t"].as_f64().unwrap(),
        "given back while the slow test still ran\n{}",
        dump()
    );
    let workers: HashSet<&str> = of("test_finished")
        .iter()
        .filter_map(|e| e["worker"].as_str())
        .collect();
    assert_eq!(workers.len(), 2, "both workers ran tests\n{}", dump());
}

#[test]
fn a_remote_pytest_worker_checks_its_python_before_it_connects() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pytest = dir.path().join("pytest");
    std::fs::write(
        &pytest,
        "#!/no/such/venv/bin/python\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n",
    )
    .unwrap();
    std::fs::set_permissions(&pytest, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("token"), "s3cret").unwrap();
    // Nobody listens there: the check comes first, so no connection is tried.
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(dir.path())
        .args(["worker", "--connect", "tcp://127.0.0.1:9"])
        .args(["--token-file", "token", "--worker", "w1", "--"])
        .arg(&pytest)
        .env("HERD_CONNECT_TIMEOUT", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let want = format!(
        "herd worker: `{py}` ({py}) runs /no/such/venv/bin/python (its #! line), which does not exist",
        py = pytest.display()
    );
    assert!(stderr.starts_with(&want), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one message\n{stderr}");
}
