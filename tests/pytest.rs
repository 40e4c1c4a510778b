//! The pytest runner with real pytest (from `.venv`, made by `scripts/python-env`) on suites the
//! tests write: every outcome kind with the same counts as plain pytest, crashes, timeouts,
//! module fixtures, collection mismatches and errors, pytest.exit(), appliances and herd_group.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::pysuite::*;
use common::*;

const EVERY_OUTCOME: &str = r#"
import pytest, unittest

def test_pass():
    pass

def test_fail():
    print("output of the failing test")
    assert 1 + 1 == 3, "arithmetic is broken"

def test_skip():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="fixed now")
def test_xpass():
    pass

@pytest.mark.xfail(strict=True)
def test_strict_xpass():
    pass

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup boom")

def test_setup_error(broken_setup):
    pass

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_teardown_error(broken_teardown):
    pass

def test_props(record_property):
    record_property("answer", 42)
    print("captured output")

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n != 2

def test_subtests(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i != 1

class TestUnit(unittest.TestCase):
    def test_ok(self):
        self.assertTrue(True)

    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 2)

    @unittest.skip("unittest skip")
    def test_skipped(self):
        pass
"#;

#[test]
fn every_outcome_kind_is_counted_as_plain_pytest_counts_it() {
    let suite = PySuite::new(&[
        ("test_all.py", EVERY_OUTCOME),
        ("test_more.py", "def test_a():\n    pass\n"),
    ]);
    // The same pytest arguments for both: pytest's verbosity decides whether passing subtests
    // are counted.
    for args in [&["-q"][..], &[][..]] {
        let (plain_code, plain_counts, plain_out) = suite.plain(args);
        let run = suite.herd(&["-n", "2"], args);
        let herd_counts = summary_counts(&run.stdout);
        assert_eq!(
            herd_counts,
            plain_counts,
            "herd vs plain pytest {args:?}\n{plain_out}\n{}",
            run.dump()
        );
        assert_eq!(run.code, plain_code, "{}", run.dump());
    }
    let run = suite.herd(&["-n", "2"], &[]);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 17, "{outcomes:?}");
    assert_eq!(outcomes["test_all.py::test_fail"], "failed");
    assert_eq!(outcomes["test_all.py::test_xfail"], "xfailed");
    assert_eq!(outcomes["test_all.py::test_xpass"], "xpassed");
    assert_eq!(outcomes["test_all.py::test_setup_error"], "error");
    assert_eq!(outcomes["test_all.py::test_teardown_error"], "error");
    assert_eq!(outcomes["test_all.py::test_subtests"], "failed");
    let props = &run.finished("test_all.py::test_props")["properties"];
    assert_eq!(
        props,
        &serde_json::json!([["answer", 42]]),
        "{}",
        run.dump()
    );
    let fail = run.finished("test_all.py::test_fail");
    assert!(
        fail["details"]
            .as_str()
            .unwrap()
            .contains("arithmetic is broken"),
        "{fail}"
    );
    assert!(
        run.stdout
            .contains("FAILED test_all.py::test_fail - AssertionError: arithmetic is broken"),
        "{}",
        run.dump()
    );
    assert!(run.stdout.contains(" FAILURES "), "{}", run.dump());
}

#[test]
fn a_test_that_kills_its_worker_is_reported_crashed_and_nothing_is_lost() {
    let crash = "import os\n\ndef test_before():\n    pass\n\ndef test_exit():\n    os._exit(1)\n\ndef test_after():\n    pass\n";
    let others: String = (0..10)
        .map(|i| format!("def test_{i}():\n    pass\n\n"))
        .collect();
    let suite = PySuite::new(&[("test_crash.py", crash), ("test_others.py", &others)]);
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.outcomes()["test_crash.py::test_exit"], "crashed");
    assert_eq!(run.count("passed"), 12, "{}", run.dump());
    assert!(run.finished("test_crash.py::test_exit")["details"]
        .as_str()
        .unwrap()
        .contains("exit code 1"));
    assert!(run.respawned(), "{}", run.dump());
}

#[test]
fn a_worker_that_dies_with_passes_not_yet_sent_loses_none_and_blames_the_test_it_ran() {
    // Passing reports travel in batches: when test_150 kills its worker, the passes just
    // before it may not have left yet. The status file names test_150; the tests whose
    // reports were not sent run again; every test ends with exactly one outcome.
    let mut body = String::from("import os\n\n");
    for i in 0..200 {
        let line = if i == 150 {
            "    os._exit(1)"
        } else {
            "    pass"
        };
        body.push_str(&format!("def test_{i}():\n{line}\n\n"));
    }
    let suite = PySuite::new(&[("test_batch.py", &body)]);
    let run = suite.herd(&["-n", "1"], &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let finished: Vec<String> = run
        .of("test_finished")
        .iter()
        .map(|e| e["test"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = finished.iter().collect();
    assert_eq!(finished.len(), 200, "one outcome per test\n{}", run.dump());
    assert_eq!(unique.len(), 200, "{}", run.dump());
    assert_eq!(run.outcomes()["test_batch.py::test_150"], "crashed");
    assert_eq!(run.count("passed"), 199, "{}", run.dump());
    let details = run.finished("test_batch.py::test_150")["details"].to_string();
    assert!(details.contains("while running this test"), "{details}");
}

#[test]
fn a_hanging_test_is_killed_by_the_timeout() {
    let hang = "import time\n\ndef test_hang():\n    print('hanging now', flush=True)\n    time.sleep(60)\n\ndef test_fine():\n    pass\n";
    let suite = PySuite::new(&[
        ("test_hang.py", hang),
        ("test_b.py", "def test_b():\n    pass\n"),
    ]);
    let run = suite.herd(&["-n", "1", "--timeout", "3"], &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.outcomes()["test_hang.py::test_hang"], "timed_out");
    assert_eq!(run.count("passed"), 2, "{}", run.dump());
}

/// Which workers ran tests of each module, from the run's events.
fn workers_per_module(run: &Run) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut map: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in run.of("test_finished") {
        let module = e["test"].as_str().unwrap().split("::").next().unwrap();
        let worker = e["worker"].as_str().unwrap_or("?").to_string();
        map.entry(module.to_string()).or_default().insert(worker);
    }
    map
}

/// How many times each module's fixture was set up (lines of `setups.log`).
fn setups(suite: &PySuite) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for line in std::fs::read_to_string(suite.path().join("setups.log"))
        .unwrap()
        .lines()
    {
        *count.entry(format!("test_{line}.py")).or_default() += 1;
    }
    count
}

fn module_with_fixture(m: &str, tests: usize, first_sleeps: f64) -> String {
    let tests: String = (0..tests)
        .map(|i| {
            let pause = if i == 0 { first_sleeps } else { 0.0 };
            format!("def test_{i}(conn):\n    time.sleep({pause})\n    assert conn == '{m}'\n\n")
        })
        .collect();
    format!(
        "import time, pytest\n\n@pytest.fixture(scope='module')\ndef conn():\n    with open('setups.log', 'a') as f:\n        f.write('{m}\\n')\n    yield '{m}'\n\n{tests}"
    )
}

#[test]
fn a_module_scoped_fixture_is_set_up_once_per_worker_that_runs_the_module() {
    let files: Vec<(String, String)> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| (format!("test_{m}.py"), module_with_fixture(m, 5, 0.0)))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let suite = PySuite::new(&files);
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 15);
    let expected: BTreeMap<String, usize> = workers_per_module(&run)
        .into_iter()
        .map(|(m, w)| (m, w.len()))
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(setups(&suite), expected, "{}", run.dump());
}

#[test]
fn an_idle_worker_steals_from_a_worker_busy_with_a_long_test() {
    // One module, so one group: the other worker takes part of it while test_0 still runs.
    let module = module_with_fixture("m", 21, 3.0);
    let suite = PySuite::new(&[("test_m.py", module.as_str())]);
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 21);
    let stolen = run.of("work_stolen");
    assert!(!stolen.is_empty(), "{}", run.dump());
    let slow_done = run.finished("test_m.py::test_0")["t"].as_f64().unwrap();
    let first_steal = stolen[0]["t"].as_f64().unwrap();
    assert!(
        first_steal < slow_done,
        "tests were given back while test_0 ran ({first_steal} < {slow_done})\n{}",
        run.dump()
    );
    let workers = &workers_per_module(&run)["test_m.py"];
    assert_eq!(workers.len(), 2, "{}", run.dump());
    // The module fixture is set up once on each worker, and torn down cleanly (exit 0).
    assert_eq!(setups(&suite)["test_m.py"], 2);
}

#[test]
fn a_collection_that_differs_per_worker_shows_a_diff() {
    // Every worker collects the whole suite: the whole collections are compared.
    let random = "import random, pytest\n\n@pytest.mark.parametrize('x', [random.randint(0, 10**12)])\ndef test_random(x):\n    pass\n\ndef test_stable():\n    pass\n";
    let suite = PySuite::new(&[("test_random.py", random)]);
    // Plain starts: a fork server collects once, for every worker alike.
    let run = suite.herd(
        &[
            "-n",
            "2",
            "--max-respawns",
            "2",
            "--collect-all",
            "--no-fork",
        ],
        &[],
    );
    let mismatches = run.of("collection_mismatch");
    assert!(!mismatches.is_empty(), "{}", run.dump());
    let diff = mismatches[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("--- reference") && diff.contains("-test_random.py::test_random["),
        "{diff}"
    );
    assert!(
        run.stdout.contains("collection differs from the reference"),
        "{}",
        run.dump()
    );
    run.outcomes();
}

#[test]
fn a_file_collected_late_is_checked_against_the_reference_before_it_runs() {
    // One file, two workers: one collects it as its shard (the reference), the other only when
    // its tests reach it (dealt or stolen), and w2 collects one test more.
    let varying = "import os, time, pytest\n\nEXTRA = [99] if os.environ.get('HERD_WORKER_ID') == 'w2' else []\n\n@pytest.mark.parametrize('x', list(range(20)) + EXTRA)\ndef test_x(x):\n    time.sleep(0.1)\n";
    let suite = PySuite::new(&[("test_varying.py", varying)]);
    // Sharded collection is for plain starts (a fork server collects the whole suite once).
    let run = suite.herd(&["-n", "2", "--max-respawns", "1", "--no-fork"], &[]);
    let mismatches = run.of("collection_mismatch");
    assert!(!mismatches.is_empty(), "{}", run.dump());
    let diff = mismatches[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("test_varying.py") && diff.contains("test_varying.py::test_x[99]"),
        "{diff}"
    );
    // No test of the file ran on the worker whose collection differs.
    let w2_ran: Vec<&str> = run
        .of("test_finished")
        .iter()
        .filter(|e| e["worker"] == "w2" && e["outcome"] != "not_run")
        .filter_map(|e| e["test"].as_str())
        .collect();
    let w2_was_reference = run.of("collected")[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "test_varying.py::test_x[99]");
    if !w2_was_reference {
        assert!(w2_ran.is_empty(), "{w2_ran:?}\n{}", run.dump());
    }
    run.outcomes();
}

#[test]
fn collection_errors_are_reported_as_pytest_reports_them() {
    let suite = PySuite::new(&[
        ("test_ok.py", "def test_ok():\n    pass\n"),
        (
            "test_broken.py",
            "import no_such_module_here\n\ndef test_x():\n    pass\n",
        ),
    ]);
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(
        run.stdout.contains("ERROR collecting test_broken.py"),
        "{}",
        run.dump()
    );
    assert!(run.stdout.contains("no_such_module_here"), "{}", run.dump());
    assert!(
        run.stdout.contains("1 error during collection"),
        "{}",
        run.dump()
    );
}

#[test]
fn keyboard_interrupt_in_a_worker_ends_the_session_cleanly() {
    let tests = "def test_first():\n    pass\n\ndef test_ctrl_c():\n    raise KeyboardInterrupt\n\ndef test_never():\n    pass\n";
    let suite = PySuite::new(&[("test_kbd.py", tests)]);
    let run = suite.herd(&["-n", "1"], &[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["test_kbd.py::test_first"], "passed");
    assert_eq!(outcomes["test_kbd.py::test_never"], "not_run");
    // pytest's summary says it ("Interrupted: KeyboardInterrupt"); herd's with --no-controller.
    assert!(
        run.stdout.contains("Interrupted: KeyboardInterrupt"),
        "{}",
        run.dump()
    );
}

#[test]
fn pytest_exit_in_a_test_ends_the_session_cleanly() {
    let tests = "import pytest\n\ndef test_first():\n    pass\n\ndef test_stop():\n    pytest.exit('enough')\n\ndef test_never():\n    pass\n";
    let suite = PySuite::new(&[("test_exit.py", tests)]);
    let run = suite.herd(&["-n", "1"], &[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(run.stdout.contains("enough"), "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["test_exit.py::test_first"], "passed");
    assert_eq!(outcomes["test_exit.py::test_never"], "not_run");
}

#[test]
fn appliances_reach_tests_and_herd_groups_stay_together_in_order() {
    let tests = r#"
import os, pytest

@pytest.mark.parametrize("i", range(4))
def test_where(i, herd_appliance):
    with open(f"where-{i}.txt", "w") as f:
        f.write(f"{os.environ['HERD_WORKER_ID']} {herd_appliance}")

@pytest.mark.herd_group("db")
def test_g1():
    open("group.log", "a").write("g1 " + os.environ["HERD_WORKER_ID"] + "\n")

def test_between():
    pass

@pytest.mark.herd_group("db")
def test_g2():
    open("group.log", "a").write("g2 " + os.environ["HERD_WORKER_ID"] + "\n")
"#;
    let other = "import os, pytest\n\n@pytest.mark.herd_group('db')\ndef test_g3():\n    open('group.log', 'a').write('g3 ' + os.environ['HERD_WORKER_ID'] + '\\n')\n";
    let suite = PySuite::new(&[("test_app.py", tests), ("test_other.py", other)]);
    let run = suite.herd(&["--appliance", "db-a", "--appliance", "db-b"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    for i in 0..4 {
        let text = std::fs::read_to_string(suite.path().join(format!("where-{i}.txt"))).unwrap();
        assert!(text == "w1 db-a" || text == "w2 db-b", "{text}");
    }
    let log = std::fs::read_to_string(suite.path().join("group.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    let worker = lines[0].split(' ').nth(1).unwrap();
    assert_eq!(
        lines,
        [
            format!("g1 {worker}"),
            format!("g2 {worker}"),
            format!("g3 {worker}")
        ]
    );
}

#[test]
fn arguments_after_the_double_dash_go_to_pytest() {
    let tests = "def test_smoke_a():\n    pass\n\ndef test_smoke_b():\n    pass\n\ndef test_slow():\n    assert False\n";
    let suite = PySuite::new(&[("test_k.py", tests)]);
    let run = suite.herd(&["-n", "2", "-v"], &["-k", "smoke"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.outcomes().len(), 2);
    assert!(
        run.stdout.contains("PASSED test_k.py::test_smoke_a"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_third_party_suite_gives_the_same_counts_as_plain_pytest() {
    // more-itertools 10.7.0's own tests (its sdist ships them), fetched by scripts/python-env.
    let project =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/third-party/more_itertools-10.7.0");
    assert!(
        project.join("tests").is_dir(),
        "{} is missing: run scripts/python-env",
        project.display()
    );
    let plain = Command::new(venv_pytest())
        .current_dir(&project)
        .args(["-p", "no:cacheprovider", "-q", "tests"])
        .output()
        .unwrap();
    let plain_out = String::from_utf8_lossy(&plain.stdout).into_owned();
    let events = tempfile::tempdir().unwrap();
    let herd = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(&project)
        .args(["run", "-n", "2", "--log-dir"])
        .arg(events.path().join("logs"))
        .arg("--events")
        .arg(events.path().join("events.jsonl"))
        .arg("--")
        .arg(venv_pytest())
        .args(["-p", "no:cacheprovider", "-q", "tests"])
        .output()
        .unwrap();
    let run = Run::from_output(herd, &events.path().join("events.jsonl"));
    assert_eq!(
        summary_counts(&run.stdout),
        summary_counts(&plain_out),
        "{plain_out}\n{}",
        run.dump()
    );
    assert_eq!(Some(run.code), plain.status.code(), "{}", run.dump());
    assert!(run.outcomes().len() > 600);
}

#[test]
fn chaos_strikes_pytest_workers_and_nothing_is_lost() {
    let files: Vec<(String, String)> = (0..4)
        .map(|m| {
            (
                format!("test_m{m}.py"),
                (0..5)
                    .map(|i| format!("def test_{i}():\n    pass\n\n"))
                    .collect(),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let suite = PySuite::new(&files);
    for kind in ["kill", "exit0", "garble"] {
        let chaos = format!("seed=5,{kind}=0.3");
        let run = suite.herd(
            &[
                "-n",
                "1",
                "--chaos",
                &chaos,
                "--max-respawns",
                "100",
                "--retire-after",
                "0",
            ],
            &[],
        );
        assert!(matches!(run.code, 0 | 1), "{kind}\n{}", run.dump());
        assert_eq!(run.outcomes().len(), 20, "{kind}");
        let struck = run
            .of("fault_injected")
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .count();
        assert!(struck > 0, "{kind}: nothing injected\n{}", run.dump());
    }
}

#[test]
fn a_shard_left_by_a_retired_worker_is_collected_by_another() {
    // w2 dies while pytest starts (before it collects its shard) and is retired: w1 is
    // restarted to collect the shard nobody else would, and every test still runs.
    let suite = PySuite::new(&[
        (
            "conftest.py",
            "import os\nif os.environ.get('HERD_WORKER_ID') == 'w2':\n    os._exit(3)\n",
        ),
        (
            "test_a.py",
            "def test_a1():\n    pass\n\ndef test_a2():\n    pass\n",
        ),
        ("test_b.py", "def test_b1():\n    pass\n"),
    ]);
    // Shards are for plain starts (a fork server collects the whole suite once).
    let run = suite.herd(&["-n", "2", "--retire-after", "1", "--no-fork"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 3, "{}", run.dump());
    assert_eq!(run.of("worker_retired").len(), 1, "{}", run.dump());
    assert!(
        run.stdout.contains("restarted to collect a shard"),
        "{}",
        run.dump()
    );
}

#[test]
fn exit_handlers_of_a_worker_still_run() {
    // Workers skip the interpreter's slow teardown, not atexit handlers (coverage data, logs).
    let conftest = "import atexit, os\n\ndef _bye():\n    with open(f\"bye-{os.environ['HERD_WORKER_ID']}\", 'w') as f:\n        f.write('ok')\n\natexit.register(_bye)\n";
    let suite = PySuite::new(&[
        ("conftest.py", conftest),
        ("test_a.py", "def test_a():\n    pass\n"),
    ]);
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    for worker in ["w1", "w2"] {
        let path = suite.path().join(format!("bye-{worker}"));
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("ok"),
            "{}",
            run.dump()
        );
    }
}

#[test]
fn capturing_off_shows_the_tests_output_live_with_the_worker_id() {
    let text = "def test_a():\n    print('hello from a')\n\ndef test_b():\n    print('hello from b', end='')\n";
    let suite = PySuite::new(&[("test_out.py", text)]);
    let run = suite.herd(&["-n", "2"], &["-s"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    for line in ["hello from a", "hello from b"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("[w") && l.ends_with(&format!("] {line}"))),
            "{line:?} not shown live:\n{}",
            run.dump()
        );
    }
    // Only the tests' own output: not each worker's pytest header or summary.
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.starts_with("[w") && (l.contains(" passed") || l.contains("session starts"))),
        "{}",
        run.dump()
    );
    // Without -s the output stays out of the terminal.
    let run = suite.herd(&["-n", "2"], &[]);
    assert!(!run.stdout.contains("hello from a"), "{}", run.dump());
}
