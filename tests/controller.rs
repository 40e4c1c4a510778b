//! The pytest controller: pytest's own report (its summary, `--junitxml`, `--report-log`, the
//! cache, the exit status) from one pytest process that gets every worker's reports, compared
//! with plain pytest on suites the tests write.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::pysuite::{summary_counts, venv_pytest, PySuite};
use common::Run;

const SUITE: &[(&str, &str)] = &[
    (
        "test_a.py",
        "import pytest, warnings\n\n\
         def test_ok():\n    pass\n\n\
         def test_fail():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n\n\
         @pytest.mark.skip(reason='not today')\ndef test_skip():\n    pass\n\n\
         def test_warn():\n    warnings.warn('careful', UserWarning)\n\n\
         @pytest.fixture\ndef bad():\n    raise RuntimeError('setup boom')\n\n\
         def test_err(bad):\n    pass\n\n\
         @pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert False\n\n\
         @pytest.mark.parametrize('n', range(3))\ndef test_p(n):\n    assert n != 1\n",
    ),
    (
        "test_b.py",
        "def test_b1():\n    pass\n\ndef test_b2():\n    assert False\n",
    ),
];

/// `herd run -n 2 ... -- pytest ARGS` in the suite's directory, with the cache on (unlike
/// `PySuite::herd`).
fn herd(suite: &PySuite, herd_args: &[&str], pytest_args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(suite.path())
        .arg("run")
        .args(if herd_args.contains(&"-n") {
            &[][..]
        } else {
            &["-n", "2"][..]
        })
        .args(herd_args)
        .arg("--events")
        .arg(suite.events())
        .arg("--")
        .arg(venv_pytest())
        .args(pytest_args)
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Run::from_output(out, &suite.events())
}

/// Plain pytest in the suite's directory: (exit code, stdout).
fn plain(suite: &PySuite, args: &[&str]) -> (i32, String) {
    let (code, stdout, _) = suite.pytest(args);
    (code, stdout)
}

/// The `(classname, name)` of every `<testcase>` of a JUnit file, with how often it appears.
fn test_cases(path: &Path) -> Vec<(String, String)> {
    let xml = std::fs::read_to_string(path).unwrap();
    let mut cases: Vec<(String, String)> = xml
        .split("<testcase ")
        .skip(1)
        .map(|case| {
            let attr = |name: &str| {
                let start = case.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                case[start..start + case[start..].find('"').unwrap()].to_string()
            };
            (attr("classname"), attr("name"))
        })
        .collect();
    cases.sort();
    cases
}

/// The short test summary's lines (`-rA`), sorted: the order of tests differs, the lines not.
fn short_summary(stdout: &str) -> Vec<String> {
    let mut lines: Vec<String> = stdout
        .lines()
        .skip_while(|l| !l.contains("short test summary info"))
        .skip(1)
        .take_while(|l| !l.starts_with("==="))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn junitxml_has_every_test_case_once_as_plain_pytest_writes_them() {
    let suite = PySuite::new(SUITE);
    let plain_xml = suite.path().join("plain.xml");
    let (plain_code, _) = plain(
        &suite,
        &[
            "-p",
            "no:cacheprovider",
            &format!("--junitxml={}", plain_xml.display()),
        ],
    );
    let run = herd(
        &suite,
        &[],
        &["-p", "no:cacheprovider", "--junitxml=herd.xml"],
    );
    assert_eq!(run.code, plain_code, "{}", run.dump());
    let cases = test_cases(&suite.path().join("herd.xml"));
    assert_eq!(cases.len(), 11, "{cases:?}");
    assert_eq!(cases, test_cases(&plain_xml), "{}", run.dump());
}

#[test]
fn the_short_summary_and_the_counts_are_plain_pytests() {
    let suite = PySuite::new(SUITE);
    let args = ["-p", "no:cacheprovider", "-rA"];
    let (plain_code, plain_out) = plain(&suite, &args);
    let run = herd(&suite, &[], &args);
    assert_eq!(run.code, plain_code, "{}", run.dump());
    assert_eq!(
        short_summary(&run.stdout),
        short_summary(&plain_out),
        "{plain_out}\n{}",
        run.dump()
    );
    assert_eq!(
        summary_counts(&run.stdout),
        summary_counts(&plain_out),
        "{}",
        run.dump()
    );
    // pytest's summary is the final one: herd's own sections are not printed again.
    assert_eq!(run.stdout.matches(" short test summary info ").count(), 1);
    // Without the controller, herd's own summary has the same counts.
    let run = herd(&suite, &["--no-controller"], &args);
    assert_eq!(run.code, plain_code, "{}", run.dump());
    assert!(
        run.stdout.contains("short test summary info"),
        "{}",
        run.dump()
    );
}

#[test]
fn deselected_tests_are_counted_once_as_plain_pytest_counts_them() {
    let suite = PySuite::new(SUITE);
    // Tests left out in both files: each file is collected by another worker (shared
    // collection), so the count is the union of what each worker's pytest left out.
    let args = ["-p", "no:cacheprovider", "-k", "not b1 and not test_p"];
    let (plain_code, plain_out) = plain(&suite, &args);
    assert_eq!(summary_counts(&plain_out)["deselected"], 4, "{plain_out}");
    for herd_args in [&[][..], &["--no-controller"], &["--collect-all"]] {
        let run = herd(&suite, herd_args, &args);
        assert_eq!(run.code, plain_code, "{herd_args:?}: {}", run.dump());
        assert_eq!(
            summary_counts(&run.stdout),
            summary_counts(&plain_out),
            "{herd_args:?}: {}",
            run.dump()
        );
        assert_eq!(
            run.outcomes().len(),
            7,
            "only the selected tests ran: {}",
            run.dump()
        );
    }
}

#[test]
fn last_failed_after_a_failing_run_reruns_exactly_the_failures() {
    let suite = PySuite::new(SUITE);
    let first = herd(&suite, &[], &["-q"]);
    assert_eq!(first.code, 1, "{}", first.dump());
    let failed: BTreeSet<String> = first
        .outcomes()
        .into_iter()
        .filter(|(_, o)| o == "failed" || o == "error")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(failed.len(), 4, "{failed:?}");
    let again = herd(&suite, &[], &["-q", "--lf"]);
    let rerun: BTreeSet<String> = again.outcomes().into_keys().collect();
    assert_eq!(rerun, failed, "{}", again.dump());
}

#[test]
fn report_log_is_valid_json_lines_with_one_session_finish() {
    let suite = PySuite::new(SUITE);
    let run = herd(
        &suite,
        &[],
        &["-p", "no:cacheprovider", "--report-log=log.jsonl"],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    plain(
        &suite,
        &["-p", "no:cacheprovider", "--report-log=plain.jsonl"],
    );
    let records = |name: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(suite.path().join(name)).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let (herds, plains) = (records("log.jsonl"), records("plain.jsonl"));
    let kind = |records: &[serde_json::Value], k: &str| {
        records.iter().filter(|r| r["$report_type"] == k).count()
    };
    assert_eq!(kind(&herds, "SessionFinish"), 1, "{herds:?}");
    assert_eq!(kind(&herds, "SessionStart"), 1, "{herds:?}");
    assert_eq!(
        kind(&herds, "TestReport"),
        kind(&plains, "TestReport"),
        "{herds:?}"
    );
    assert_eq!(herds.last().unwrap()["exitstatus"], 1);
}

#[test]
fn a_plugin_following_test_starts_and_ends_hears_each_once() {
    // Recorded where pytest's report is made: plain pytest, or herd's controller (not workers).
    let conftest = "import os\n\n\
        def _record(what, nodeid):\n    \
            if os.environ.get('HERD_WORKER_ID') is None:\n        \
                with open('starts.log', 'a') as f:\n            \
                    f.write(f'{what} {nodeid}\\n')\n\n\
        def pytest_runtest_logstart(nodeid, location):\n    _record('start', nodeid)\n\n\
        def pytest_runtest_logfinish(nodeid, location):\n    _record('finish', nodeid)\n";
    let mut files = SUITE.to_vec();
    files.push(("conftest.py", conftest));
    let suite = PySuite::new(&files);
    let read = || {
        let text = std::fs::read_to_string(suite.path().join("starts.log")).unwrap_or_default();
        std::fs::remove_file(suite.path().join("starts.log")).ok();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    plain(&suite, &["-p", "no:cacheprovider"]);
    let plains = read();
    assert_eq!(plains.len(), 22, "{plains:?}");
    let run = herd(&suite, &[], &["-p", "no:cacheprovider"]);
    assert_eq!(read(), plains, "{}", run.dump());
}

#[test]
fn an_exit_status_a_plugin_sets_at_the_end_is_the_sessions() {
    let conftest = "def pytest_sessionfinish(session, exitstatus):\n    session.exitstatus = 7\n";
    let suite = PySuite::new(&[
        ("conftest.py", conftest),
        ("test_a.py", "def test_a():\n    pass\n"),
    ]);
    let (plain_code, _) = plain(&suite, &["-p", "no:cacheprovider"]);
    assert_eq!(plain_code, 7);
    let run = herd(&suite, &[], &["-p", "no:cacheprovider"]);
    assert_eq!(run.code, 7, "{}", run.dump());
    let run = herd(&suite, &["--no-controller"], &["-p", "no:cacheprovider"]);
    assert_eq!(run.code, 0, "{}", run.dump());
}

#[test]
fn a_controller_killed_mid_session_leaves_herds_own_summary_with_every_outcome() {
    // The first test kills the controller: herd's child whose command loads it.
    let killer = "import os, signal, time\n\n\
        def test_kill_the_controller():\n    herd = os.getppid()\n    \
        for pid in filter(str.isdigit, os.listdir('/proc')):\n        \
        try:\n            stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n            \
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n        except OSError:\n            continue\n        \
        if int(stat[1]) == herd and b'herd_pytest.controller' in cmd:\n            \
        os.kill(int(pid), signal.SIGKILL)\n    time.sleep(0.5)\n";
    let later =
        "def test_1():\n    pass\n\ndef test_2():\n    pass\n\ndef test_3():\n    assert False\n";
    let suite = PySuite::new(&[("test_0.py", killer), ("test_later.py", later)]);
    let run = herd(&suite, &["-n", "1"], &["-p", "no:cacheprovider"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert!(
        run.stdout
            .contains("herd: the pytest controller exited early (signal 9"),
        "{}",
        run.dump()
    );
    let counts = summary_counts(&run.stdout);
    assert_eq!(
        (counts.get("passed"), counts.get("failed")),
        (Some(&3), Some(&1)),
        "{}",
        run.dump()
    );
    assert_eq!(run.outcomes().len(), 4);
}

#[test]
fn a_file_only_the_controller_writes_is_refused_without_it() {
    // The workers leave --junitxml to the controller: without it the file would silently stay
    // unwritten, so herd refuses the combination before any worker starts.
    let suite = PySuite::new(SUITE);
    let run = herd(
        &suite,
        &["--no-controller"],
        &["-p", "no:cacheprovider", "--junitxml=herd.xml"],
    );
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr
            .contains("--junitxml=herd.xml is written by pytest's controller"),
        "{}",
        run.dump()
    );
    assert!(run.of("worker_spawned").is_empty(), "{}", run.dump());
    assert!(!suite.path().join("herd.xml").exists());
}

#[test]
fn harness_hooks_follow_the_session_in_the_controller() {
    // The seed's pytest_parallel_configured and node-shutdown hooks: a conftest records them.
    let conftest = r#"
import json

def pytest_herd_configured(config, workers):
    with open("hooks.log", "a") as f:
        f.write(json.dumps({"configured": workers}) + "\n")

def pytest_herd_worker_down(config, worker, appliance, reason):
    with open("hooks.log", "a") as f:
        f.write(json.dumps({"down": worker, "appliance": appliance, "reason": reason}) + "\n")
"#;
    let tests = "def test_a():\n    pass\n\ndef test_b():\n    pass\n\ndef test_c():\n    pass\n";
    let suite = PySuite::new(&[("conftest.py", conftest), ("test_h.py", tests)]);
    let run = herd(
        &suite,
        &["--appliance", "https://a1", "--appliance", "https://a2"],
        &["-p", "no:cacheprovider"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    let log = std::fs::read_to_string(suite.path().join("hooks.log")).unwrap_or_default();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let configured: Vec<_> = lines
        .iter()
        .filter(|l| l.get("configured").is_some())
        .collect();
    assert_eq!(configured.len(), 1, "{log}");
    assert_eq!(
        configured[0]["configured"],
        serde_json::json!([
            {"id": "w1", "appliance": "https://a1"},
            {"id": "w2", "appliance": "https://a2"}
        ]),
        "{log}"
    );
    assert!(
        lines.iter().position(|l| l.get("configured").is_some()) == Some(0),
        "configured comes first: {log}"
    );
    let mut down: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l.get("down").is_some())
        .map(|l| {
            (
                l["down"].as_str().unwrap().to_string(),
                l["appliance"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    down.sort();
    assert_eq!(
        down,
        [
            ("w1".to_string(), "https://a1".to_string()),
            ("w2".to_string(), "https://a2".to_string())
        ],
        "{log}"
    );
}
