//! Soak benchmark (not a test): many sessions with chaos, checking that nothing is ever lost,
//! duplicated or hung.
//!
//! `scripts/soak [SESSIONS]` (builds `herd` in release mode). Each session runs `herd run` as a
//! real process on a 28-test exec suite with 2 workers under a random fault plan (its own seed),
//! with `--events`; a session that does not end within 60 s counts as hung and is killed. When
//! `.venv` has pytest, every fourth session runs a pytest suite instead.
//! Both suites hold failing tests (ids with `fail`) whose output is odd: lone surrogates, NUL,
//! bytes that are not UTF-8, and output near and over the limits (the exec runner's 64 KiB cut,
//! the 16 MiB frame). A failing test must never end passed.
//! Prints: sessions run, faults injected (by kind), tests lost (must be 0), duplicated outcomes
//! (must be 0), false passes (must be 0), hangs (must be 0), and wall time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let sessions: usize = std::env::args()
        .nth(1)
        .map_or(200, |a| a.parse().expect("SESSIONS is a number"));
    let herd = herd::runner::find_herd_binary().expect("build herd first: cargo build --release");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pytest = root.join(".venv/bin/pytest");
    let dir = tempfile::tempdir().unwrap();
    let exec_suite = dir.path().join("exec");
    std::fs::create_dir_all(&exec_suite).unwrap();
    for i in 0..24 {
        let body = if i % 5 == 0 {
            "sleep 0.05\nexit 0\n"
        } else {
            "exit 0\n"
        };
        std::fs::write(exec_suite.join(format!("m{i:02}.sh")), body).unwrap();
    }
    let failing = [
        "printf 'odd \\377\\000 text \\355\\240\\200\\n'\nexit 1\n",
        "head -c 70000 /dev/zero | tr '\\0' x\nexit 1\n",
        "printf '\\033[2J\\033]0;title\\007 9999 passed\\n' >&2\nexit 3\n",
        "head -c 65530 /dev/zero | tr '\\0' y\nprintf '\\303'\nexit 1\n",
    ];
    for (i, body) in failing.iter().enumerate() {
        std::fs::write(exec_suite.join(format!("fail{i}.sh")), body).unwrap();
    }
    let py_suite = dir.path().join("py");
    std::fs::create_dir_all(&py_suite).unwrap();
    for m in 0..4 {
        let tests: String = (0..6)
            .map(|i| format!("def test_{i}():\n    assert {i} < 10\n\n"))
            .collect();
        std::fs::write(py_suite.join(format!("test_m{m}.py")), tests).unwrap();
    }
    std::fs::write(py_suite.join("test_odd.py"), ODD_PYTEST).unwrap();

    let started = Instant::now();
    let (mut lost, mut duplicated, mut hangs, mut pytest_sessions) =
        (0usize, 0usize, 0usize, 0usize);
    let mut false_passes = 0usize;
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..sessions as u64 {
        let plan =
            format!("seed={seed},kill=0.04,stop=0.02,term=0.03,exit0=0.02,garble=0.02,lie=0.05");
        let events = dir.path().join(format!("events-{seed}.jsonl"));
        let use_pytest = pytest.exists() && seed % 4 == 3;
        let mut cmd = Command::new(&herd);
        cmd.args([
            "run",
            "-q",
            "-n",
            "2",
            "--chaos",
            &plan,
            "--max-respawns",
            "1000",
            "--retire-after",
            "0",
        ])
        .args(["--hang-timeout", "0.5", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if use_pytest {
            pytest_sessions += 1;
            cmd.current_dir(&py_suite).arg("--").arg(&pytest).args([
                "-p",
                "no:cacheprovider",
                "-q",
            ]);
        } else {
            cmd.current_dir(&exec_suite)
                .args(["--list", "ls", "--", "sh", "{}"]);
        }
        let mut child = cmd.spawn().expect("herd starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        let hung = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        hangs += usize::from(hung);
        let checked = check(&events, &mut faults);
        lost += checked.lost;
        duplicated += checked.duplicated;
        false_passes += checked.false_passes;
    }
    let injected: usize = faults.values().sum();
    let kinds: Vec<String> = faults.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("herd soak: {sessions} sessions ({pytest_sessions} pytest, the rest exec), 2 workers each, chaos on");
    println!("  faults injected     {injected} ({})", kinds.join(", "));
    println!("  tests lost          {lost}");
    println!("  duplicated outcomes {duplicated}");
    println!("  false passes        {false_passes}");
    println!("  hung sessions       {hangs}");
    println!(
        "  wall time           {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if lost + duplicated + false_passes + hangs > 0 {
        std::process::exit(1);
    }
}

/// Failing pytest tests with odd text and results near and over the frame limit.
const ODD_PYTEST: &str = r#"
import sys

def test_fail_surrogate():
    assert False, "x \udcff y"

def test_fail_nul():
    print("nul \x00 and \udc80")
    assert False, "nul \x00 esc \x1b[2J"

def test_fail_over_the_frame_limit():
    sys.stdout.write("o" * 17_000_000)
    assert False

def test_pass_near_the_frame_limit():
    sys.stdout.write("n" * 16_700_000)
"#;

/// What one session's events say.
struct Checked {
    /// Collected tests without an outcome.
    lost: usize,
    /// Outcomes beyond the first of a test.
    duplicated: usize,
    /// Failing tests (ids with `fail`) that ended passed.
    false_passes: usize,
}

/// Checks one session's events; counts its faults.
fn check(events: &PathBuf, faults: &mut BTreeMap<String, usize>) -> Checked {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    let mut collected: Vec<String> = Vec::new();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut false_passes = 0;
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match event["event"].as_str() {
            Some("collected") => {
                collected = event["tests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect()
            }
            Some("test_finished") => {
                let test = event["test"].as_str().unwrap();
                let passed = matches!(event["outcome"].as_str(), Some("passed" | "xpassed"));
                if passed && test.contains("fail") {
                    eprintln!("FALSE PASS: {test} in {}", events.display());
                    false_passes += 1;
                }
                *outcomes
                    .entry(event["test"].as_str().unwrap().to_string())
                    .or_default() += 1
            }
            Some("fault_injected") => {
                *faults
                    .entry(event["kind"].as_str().unwrap().to_string())
                    .or_default() += 1
            }
            _ => {}
        }
    }
    let lost = collected
        .iter()
        .filter(|t| !outcomes.contains_key(*t))
        .count();
    let duplicated = outcomes.values().map(|n| n.saturating_sub(1)).sum();
    Checked {
        lost,
        duplicated,
        false_passes,
    }
}
