//! The controller side of pytest-xdist's contract, with the real plugins: xdist's controller
//! hooks (`pytest_xdist_setupnodes`, `pytest_configure_node`, `pytest_testnodedown`) with
//! `workerinput`/`workeroutput`, compared with pytest-xdist itself; pytest-cov's distributed
//! mode, pytest-html and pytest-reportlog, compared with plain pytest.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::pysuite::PySuite;
use serde_json::Value;

/// A conftest that records, in `$RECORDS/`, each xdist controller hook call (in the controller)
/// and each worker's `workerinput` key set by the controller; each worker returns its id in
/// `workeroutput`.
const HOOKS_CONFTEST: &str = r#"
import json, os

def _record(name, value):
    with open(os.path.join(os.environ["RECORDS"], name), "a") as f:
        f.write(json.dumps(value) + "\n")

def pytest_xdist_setupnodes(config, specs):
    _record("setupnodes", [str(s.id) for s in specs])

def pytest_configure_node(node):
    _record("configurenode", node.gateway.id)
    node.workerinput["from_controller"] = "hello " + node.gateway.id

def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", None)
    _record("nodedown", {
        "node": node.gateway.id, "error": error is not None,
        "mine": None if output is None else output.get("mine"),
        "has_exitstatus": output is not None and "exitstatus" in output,
        "said": node.workerinput.get("from_controller"),
    })

def pytest_configure(config):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        _record("configured", [workerinput["workerid"], workerinput.get("from_controller")])

def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["mine"] = session.config.workerinput["workerid"]
"#;

fn hooks_suite(crash: bool) -> PySuite {
    let mut tests = String::from(
        "import os, pytest\n\n\
         @pytest.mark.parametrize('n', range(6))\ndef test_n(n):\n    pass\n",
    );
    if crash {
        tests.push_str(
            "\ndef test_dies():\n    if not os.path.exists('died'):\n        \
             open('died', 'w').close()\n        os._exit(1)\n",
        );
    }
    let suite = PySuite::new(&[("conftest.py", HOOKS_CONFTEST), ("test_h.py", &tests)]);
    std::fs::create_dir(suite.path().join("records")).unwrap();
    suite
}

fn records(suite: &PySuite, name: &str) -> Vec<Value> {
    let path = suite.path().join("records").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `cmd` with `RECORDS` set: its exit code and output.
fn run_recorded(suite: &PySuite, mut cmd: std::process::Command) -> (i32, String) {
    let out = cmd
        .env("RECORDS", suite.path().join("records"))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn xdist_controller_hooks_get_nodes_with_workerinput_and_workeroutput_as_under_xdist() {
    // The reference: pytest-xdist with two workers.
    let xdist = hooks_suite(false);
    let mut cmd = std::process::Command::new(common::pysuite::venv_pytest());
    cmd.current_dir(xdist.path())
        .args(["-p", "no:cacheprovider", "-n", "2"])
        .env_remove("PYTEST_ADDOPTS");
    let (code, out) = run_recorded(&xdist, cmd);
    assert_eq!(code, 0, "{out}");
    let herd = hooks_suite(false);
    let (herd_code, herd_out) = run_recorded(&herd, herd.herd_command(&["-n", "2"], &[]));
    assert_eq!(herd_code, 0, "{herd_out}");
    for suite in [&xdist, &herd] {
        // setupnodes once, with a spec per worker.
        let setup = records(suite, "setupnodes");
        assert_eq!(setup.len(), 1, "{setup:?}");
        let ids: Vec<String> = serde_json::from_value(setup[0].clone()).unwrap();
        assert_eq!(ids.len(), 2, "{ids:?}");
        // Every worker configured with the key the controller added for it.
        let mut configured: Vec<(String, String)> = records(suite, "configured")
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
        configured.sort();
        assert_eq!(configured.len(), 2, "{configured:?} {herd_out}");
        for (worker, said) in &configured {
            assert_eq!(said, &format!("hello {worker}"), "{configured:?}");
        }
        // testnodedown once per worker, with the workeroutput that worker set.
        let mut down = records(suite, "nodedown");
        down.sort_by_key(|v| v["node"].as_str().unwrap().to_string());
        assert_eq!(down.len(), 2, "{down:?}");
        for (record, (worker, _)) in down.iter().zip(&configured) {
            assert_eq!(record["node"], worker.as_str(), "{down:?}");
            assert_eq!(record["mine"], worker.as_str(), "{down:?}");
            assert_eq!(record["error"], false, "{down:?}");
            assert_eq!(record["has_exitstatus"], true, "{down:?}");
        }
    }
}

#[test]
fn a_respawned_workers_incarnations_each_go_down_its_own_way() {
    let suite = hooks_suite(true);
    let (code, out) = run_recorded(&suite, suite.herd_command(&["-n", "2"], &[]));
    assert_eq!(code, 1, "the crash is a failure: {out}");
    let down = records(&suite, "nodedown");
    assert_eq!(
        down.len(),
        3,
        "two workers and the respawn: {down:?}\n{out}"
    );
    let crashed: Vec<&Value> = down.iter().filter(|d| d["error"] == true).collect();
    assert_eq!(crashed.len(), 1, "{down:?}");
    assert_eq!(crashed[0]["mine"], Value::Null, "{down:?}");
    let respawn = format!("{}-2", crashed[0]["node"].as_str().unwrap());
    let clean: Vec<&str> = down
        .iter()
        .filter(|d| d["error"] == false)
        .map(|d| d["node"].as_str().unwrap())
        .collect();
    assert!(clean.contains(&respawn.as_str()), "{down:?}");
    // The respawn's workeroutput is its own (it runs as the same slot).
    let record = down.iter().find(|d| d["node"] == respawn.as_str()).unwrap();
    assert_eq!(record["mine"], crashed[0]["node"], "{down:?}");
    // As xdist configures the node replacing a crashed one: pytest_configure_node for the
    // respawn too, whose process gets what the plugins added for it, and goes down as that
    // same node.
    let mut configured_nodes: Vec<String> = records(&suite, "configurenode")
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    configured_nodes.sort();
    assert_eq!(
        configured_nodes,
        {
            let mut expected = vec!["w1".to_string(), "w2".to_string(), respawn.clone()];
            expected.sort();
            expected
        },
        "{out}"
    );
    let configured: Vec<Value> = records(&suite, "configured");
    let hello = format!("hello {respawn}");
    assert!(
        configured
            .iter()
            .any(|c| c[0] == crashed[0]["node"] && c[1] == hello.as_str()),
        "the respawn got its own workerinput: {configured:?}"
    );
    assert_eq!(record["said"], hello.as_str(), "{down:?}");
}

const COV_PKG: &str = "def add(a, b):\n    return a + b\n\n\n\
    def sub(a, b):\n    if a > b:\n        return a - b\n    return -(b - a)\n\n\n\
    def unused(x):\n    y = x * 2\n    return y\n";
const COV_OTHER: &str = "def mul(a, b):\n    return a * b\n\n\n\
    def div(a, b):\n    if b == 0:\n        raise ZeroDivisionError\n    return a / b\n";

fn cov_suite() -> PySuite {
    let mut files: Vec<(String, String)> = vec![
        ("pkg/__init__.py".into(), COV_PKG.into()),
        ("pkg/other.py".into(), COV_OTHER.into()),
    ];
    for i in 0..4 {
        files.push((
            format!("test_c{i}.py"),
            format!(
                "import pkg\nfrom pkg import other\n\n\
                 def test_add():\n    assert pkg.add({i}, 1) == {i} + 1\n\n\
                 def test_sub():\n    assert pkg.sub({i}, 5) == {i} - 5\n\n\
                 def test_mul():\n    assert other.mul({i}, 2) == {i} * 2\n"
            ),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    PySuite { dir }
}

/// The coverage table (from its `Name` header to its `TOTAL` line), and how many tables.
fn coverage_table(output: &str) -> (Vec<String>, usize) {
    let lines: Vec<&str> = output.lines().collect();
    let tables = lines.iter().filter(|l| l.starts_with("TOTAL")).count();
    let table = lines
        .iter()
        .skip_while(|l| !l.starts_with("Name "))
        .take_while(|l| !l.starts_with("TOTAL"))
        .chain(lines.iter().find(|l| l.starts_with("TOTAL")))
        .map(|l| l.to_string())
        .collect();
    (table, tables)
}

#[test]
fn pytest_cov_gives_plain_pytests_coverage_table_once() {
    let suite = cov_suite();
    let args = ["--cov=pkg", "--cov-report=term-missing"];
    let (plain_code, plain_out, _) = suite.plain_output(&args);
    assert_eq!(plain_code, 0, "{plain_out}");
    let (plain_table, _) = coverage_table(&plain_out);
    assert!(plain_table.len() >= 5, "{plain_out}");
    let run = suite.herd(&["-n", "2"], &args);
    assert_eq!(run.code, 0, "{}", run.dump());
    let (table, tables) = coverage_table(&run.stdout);
    assert_eq!(tables, 1, "printed once: {}", run.dump());
    assert_eq!(table, plain_table, "{}", run.dump());
    assert!(!run.stdout.contains("failed workers"), "{}", run.dump());
}

#[test]
fn cov_fail_under_fails_the_session_as_plain_pytest() {
    let suite = cov_suite();
    let args = ["--cov=pkg", "--cov-report=term", "--cov-fail-under=100"];
    let (plain_code, plain_out, _) = suite.plain_output(&args);
    assert_eq!(plain_code, 1, "{plain_out}");
    let run = suite.herd(&["-n", "2"], &args);
    assert_eq!(run.code, plain_code, "{}", run.dump());
    let said = "FAIL Required test coverage of 100% not reached";
    assert_eq!(run.stdout.matches(said).count(), 1, "{}", run.dump());
    assert_eq!(run.count("passed"), 12, "{}", run.dump());
}

const REPORT_SUITE: &[(&str, &str)] = &[
    (
        "test_r.py",
        "import pytest\n\n\
         def test_ok():\n    pass\n\n\
         def test_fail():\n    assert False\n\n\
         @pytest.mark.skip(reason='no')\ndef test_skip():\n    pass\n\n\
         @pytest.mark.parametrize('n', range(5))\ndef test_p(n):\n    assert n != 3\n",
    ),
    (
        "test_s.py",
        "def test_s1():\n    pass\n\ndef test_s2():\n    pass\n",
    ),
];

/// The tests of a pytest-html report with their results (its JSON blob, HTML-escaped).
fn html_results(path: &Path) -> BTreeMap<String, Vec<String>> {
    let html = std::fs::read_to_string(path).unwrap();
    let start = html.find("data-jsonblob=\"").expect("pytest-html's blob") + 15;
    let blob = &html[start..start + html[start..].find('"').unwrap()];
    let text = blob
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let data: Value = serde_json::from_str(&text).unwrap();
    data["tests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, results)| {
            let results = results.as_array().unwrap();
            let words = results.iter().map(|r| r["result"].to_string()).collect();
            (id.clone(), words)
        })
        .collect()
}

#[test]
fn pytest_html_reports_every_test_once_as_plain_pytest() {
    let suite = PySuite::new(REPORT_SUITE);
    let plain = suite.path().join("plain.html");
    let (code, out, _) = suite.plain_output(&[&format!("--html={}", plain.display())]);
    assert_eq!(code, 1, "{out}");
    let run = suite.herd(&["-n", "2"], &["--html=herd.html"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let expected = html_results(&plain);
    assert_eq!(expected.len(), 10, "{expected:?}");
    assert_eq!(html_results(&suite.path().join("herd.html")), expected);
}

/// The report log's lines, each parsed (a line that is not JSON fails the test).
fn report_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `(nodeid, when, outcome)` of every test report of a report log, sorted.
fn test_reports(log: &[Value]) -> Vec<(String, String, String)> {
    let mut reports: Vec<(String, String, String)> = log
        .iter()
        .filter(|l| l["$report_type"] == "TestReport")
        .map(|l| {
            let field = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (field("nodeid"), field("when"), field("outcome"))
        })
        .collect();
    reports.sort();
    reports
}

#[test]
fn report_log_is_complete_json_lines_with_one_session_finish() {
    let suite = PySuite::new(REPORT_SUITE);
    let plain = suite.path().join("plain.jsonl");
    let (code, out, _) = suite.plain_output(&[&format!("--report-log={}", plain.display())]);
    assert_eq!(code, 1, "{out}");
    let run = suite.herd(&["-n", "2"], &["--report-log=herd.jsonl"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let log = report_log(&suite.path().join("herd.jsonl"));
    let finishes: Vec<&Value> = log
        .iter()
        .filter(|l| l["$report_type"] == "SessionFinish")
        .collect();
    assert_eq!(finishes.len(), 1, "{log:?}");
    assert_eq!(finishes[0]["exitstatus"], 1);
    let expected = test_reports(&report_log(&plain));
    assert_eq!(
        expected.len(),
        10 * 3 - 1,
        "a skip has no call: {expected:?}"
    );
    assert_eq!(test_reports(&log), expected);
}

#[test]
fn a_collection_error_is_shown_once_as_pytest_shows_it() {
    let suite = PySuite::new(&[
        (
            "test_bad.py",
            "import no_such_module_herd\n\ndef test_a():\n    pass\n",
        ),
        ("test_ok.py", "def test_ok():\n    pass\n"),
    ]);
    let title = "ERROR collecting test_bad.py";
    let (code, out, _) = suite.plain_output(&[]);
    assert_eq!((code, out.matches(title).count()), (2, 1), "{out}");
    let run = suite.herd(&["-n", "2"], &[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert_eq!(run.stdout.matches(title).count(), 1, "{}", run.dump());
    assert_eq!(
        run.stdout
            .matches("No module named 'no_such_module_herd'")
            .count(),
        1,
        "{}",
        run.dump()
    );
}
