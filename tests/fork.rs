//! The fork server, with real processes: every local pytest worker incarnation is forked from
//! one process that loaded and collected the suite once. A respawned worker sets its fixtures up
//! again, a dead fork server makes herd fall back to plain starts (and say so) without losing a
//! test, a suite that is not safe to fork is reported, and pytest-cov measures forked workers.

mod common;

use std::path::Path;

use common::pysuite::*;
use common::Run;

/// Counts the files in `dir` whose name starts with `prefix`.
fn markers(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .count()
}

/// A conftest that leaves `import.PID` each time it is imported, and fixtures that leave
/// `session.PID` / `module.PID` each time they are set up.
const CONFTEST: &str = r#"
import os, pytest
open(f"import.{os.getpid()}", "w").close()

@pytest.fixture(scope="session")
def sess():
    open(f"session.{os.getpid()}", "w").close()

@pytest.fixture(scope="module")
def mod_fixture():
    open(f"module.{os.getpid()}", "w").close()
"#;

/// `test_kill` ends its worker the first time (a marker file remembers).
const TESTS: &str = r#"
import os

def test_kill(sess, mod_fixture):
    if not os.path.exists("killed"):
        open("killed", "w").close()
        os._exit(3)

def test_after(sess, mod_fixture):
    pass

def test_last(sess, mod_fixture):
    pass
"#;

/// One worker that may crash once (so a crash is followed by a respawn), no controller.
const ONE_WORKER_ONE_RETRY: &[&str] = &["-n", "1", "--crash-retries", "1", "--no-controller"];

/// A suite whose first test kills the fork server (the pid that imported the conftest) with
/// SIGKILL, then its own worker, the first time.
fn kills_its_fork_server() -> PySuite {
    let tests = r#"
import os, signal, glob

def test_kill_both(sess):
    if not os.path.exists("killed"):
        open("killed", "w").close()
        zygote = int(glob.glob("import.*")[0].split(".")[1])
        os.kill(zygote, signal.SIGKILL)
        os._exit(3)

def test_more(sess):
    pass
"#;
    PySuite::new(&[
        ("conftest.py", CONFTEST),
        ("test_x.py", tests),
        ("test_y.py", "def test_y():\n    pass\n"),
    ])
}

#[test]
fn a_respawned_forked_worker_sets_its_session_and_module_fixtures_up_again() {
    let suite = PySuite::new(&[("conftest.py", CONFTEST), ("test_x.py", TESTS)]);
    let run = suite.herd(ONE_WORKER_ONE_RETRY, &[]);
    let outcomes = run.outcomes();
    assert!(outcomes.values().all(|o| o == "passed"), "{}", run.dump());
    assert!(run.respawned(), "{}", run.dump());
    // The conftest was imported once (by the fork server); each incarnation set its session
    // and module fixtures up itself.
    assert_eq!(markers(suite.path(), "import."), 1, "{}", run.dump());
    assert_eq!(markers(suite.path(), "session."), 2, "{}", run.dump());
    assert_eq!(markers(suite.path(), "module."), 2, "{}", run.dump());
}

#[test]
fn without_the_fork_server_each_incarnation_imports_the_suite() {
    let suite = PySuite::new(&[("conftest.py", CONFTEST), ("test_x.py", TESTS)]);
    let args = [
        "-n",
        "1",
        "--crash-retries",
        "1",
        "--no-controller",
        "--no-fork",
    ];
    let run = suite.herd(&args, &[]);
    assert!(run.outcomes().values().all(|o| o == "passed"));
    assert_eq!(markers(suite.path(), "import."), 2, "{}", run.dump());
    assert_eq!(markers(suite.path(), "session."), 2, "{}", run.dump());
}

#[test]
fn a_killed_fork_server_falls_back_to_plain_starts_and_every_test_ends_once() {
    // The fork server's pid is the one that imported the conftest; the first test kills it
    // (SIGKILL), then kills its own worker: the respawn must start the plain way.
    let suite = kills_its_fork_server();
    // One worker, so the death of the fork server is followed by a respawn.
    let run = suite.herd(ONE_WORKER_ONE_RETRY, &[]);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.values().all(|o| o == "passed"), "{}", run.dump());
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("the fork server died"), "{said}");
    assert_eq!(said.matches("the fork server died").count(), 1, "{said}");
    // The respawn imported the suite itself: a plain start.
    assert_eq!(markers(suite.path(), "import."), 2, "{}", run.dump());
    let respawn = run.of("worker_spawned")[1]["pid"].as_u64().unwrap();
    assert!(suite.path().join(format!("import.{respawn}")).exists());
}

#[test]
fn a_suite_that_starts_a_thread_at_import_is_reported_and_runs_plain() {
    let conftest = r#"
import threading, time
threading.Thread(target=time.sleep, args=(30,), name="poller", daemon=True).start()
"#;
    let suite = PySuite::new(&[
        ("conftest.py", conftest),
        (
            "test_x.py",
            "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
        ),
    ]);
    let run = suite.herd(&["-n", "2", "--no-controller"], &[]);
    assert!(
        run.outcomes().values().all(|o| o == "passed"),
        "{}",
        run.dump()
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("not safe to fork"), "{said}");
    assert!(
        said.contains("poller") && said.contains("--no-fork"),
        "{said}"
    );
}

#[test]
fn pytest_cov_measures_every_forked_worker() {
    let venv_python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let has_cov = std::process::Command::new(&venv_python)
        .args(["-c", "import pytest_cov"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_cov {
        println!("SKIPPED: pytest-cov not installed");
        return;
    }
    // Module-level lines run at import, in a forked worker; the function bodies only in the
    // forked workers. The test that kills its worker first saves what that worker measured
    // (whatever ran there before it), so complete coverage depends on no dealing order.
    let lib = "def a(x):\n    return x + 1\n\n\ndef b(x):\n    return x * 2\n";
    let kill = "import os, coverage\n\ndef test_kill():\n    if not os.path.exists('killed'):\n        open('killed', 'w').close()\n        cov = coverage.Coverage.current()\n        if cov is not None:\n            cov.stop()\n            cov.save()\n        os._exit(3)\n";
    let suite = PySuite::new(&[
        ("lib.py", lib),
        ("test_0kill.py", kill),
        (
            "test_a.py",
            "import lib\n\ndef test_a():\n    assert lib.a(1) == 2\n",
        ),
        (
            "test_b.py",
            "import lib\n\ndef test_b():\n    assert lib.b(1) == 2\n",
        ),
    ]);
    let dir = suite.path().canonicalize().unwrap();
    // What pytest-cov's controller side would give its workers (herd's controller does not
    // yet).
    let input = serde_json::json!({
        "cov_master_host": nix::unistd::gethostname().unwrap().to_string_lossy(),
        "cov_master_topdir": dir.to_string_lossy(),
        "cov_master_rsync_roots": [],
    });
    let mut cmd = suite.herd_command(
        &["-n", "2", "--crash-retries", "1", "--no-controller"],
        &["--cov=lib", "--cov-report="],
    );
    cmd.env("HERD_WORKERINPUT", input.to_string());
    let run = common::Run::from_output(cmd.output().unwrap(), &suite.events());
    assert!(
        run.outcomes().values().all(|o| o == "passed"),
        "{}",
        run.dump()
    );
    assert!(run.respawned(), "{}", run.dump());
    let files = markers(suite.path(), ".coverage.");
    assert!(files >= 2, "one data file per forked worker: {files}");
    let coverage = |args: &[&str]| {
        std::process::Command::new(&venv_python)
            .current_dir(suite.path())
            .args(["-m", "coverage"])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(coverage(&["combine", "-q"]).status.success());
    let report = coverage(&["report", "-m", "--fail-under=100"]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "coverage is not complete:\n{text}");
}

/// `test_leave` leaves a process behind whose parent ends at once (it is adopted by herd, the
/// subreaper); `test_look`, later on the same worker, looks for zombie children of herd.
const LEAVES_ORPHANS: &str = r#"
import os, subprocess, time

def test_leave():
    subprocess.run(["sh", "-c", "sleep 0.2 &"], check=True)

def test_look():
    time.sleep(3)  # the orphan has ended; herd sweeps every second
    herd = os.getppid()
    zombies = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state == "Z" and int(ppid) == herd:
            zombies.append(pid)
    assert not zombies, f"zombie children of herd: {zombies}"
"#;

#[test]
fn orphans_tests_leave_behind_are_reaped_not_left_as_zombies() {
    let suite = PySuite::new(&[("test_orphans.py", LEAVES_ORPHANS)]);
    let run = suite.herd(&["-n", "1", "--no-controller"], &[]);
    let outcomes = run.outcomes();
    assert_eq!(
        outcomes["test_orphans.py::test_leave"],
        "passed",
        "{}",
        run.dump()
    );
    assert_eq!(
        outcomes["test_orphans.py::test_look"],
        "passed",
        "{}",
        run.dump()
    );
}

/// `herd run ARGS` with the fork server as its workers' parent (`HERD_FORK_SERVER_MODE=parent`,
/// macOS's way: no child subreaper; the zygote reaps its workers and reports their exits).
fn herd_parent_mode(suite: &PySuite, args: &[&str]) -> Run {
    let out = suite
        .herd_command(args, &[])
        .env("HERD_FORK_SERVER_MODE", "parent")
        .output()
        .unwrap();
    Run::from_output(out, &suite.events())
}

#[test]
fn as_its_workers_parent_the_fork_server_reports_each_exit_and_a_respawn_is_fresh() {
    let tests = format!(
        "{TESTS}\n\
         def test_subprocess(sess):\n    \
             import subprocess\n    \
             # SIGCHLD is the worker's own again: its children are its to wait for.\n    \
             assert subprocess.run(['sh', '-c', 'exit 7']).returncode == 7\n"
    );
    let suite = PySuite::new(&[("conftest.py", CONFTEST), ("test_x.py", &tests)]);
    let run = herd_parent_mode(&suite, ONE_WORKER_ONE_RETRY);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 4, "{}", run.dump());
    assert!(outcomes.values().all(|o| o == "passed"), "{}", run.dump());
    // The death's status came from the fork server: the exit code test_kill chose.
    let exits = run.of("worker_exited");
    assert_eq!(exits[0]["status"], "exit code 3", "{}", run.dump());
    assert!(run.respawned(), "{}", run.dump());
    // Forked, not started the plain way: the conftest was imported once.
    assert_eq!(markers(suite.path(), "import."), 1, "{}", run.dump());
    assert_eq!(markers(suite.path(), "session."), 2, "{}", run.dump());
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(!said.contains("fork server"), "no fallback: {said}");
}

#[test]
fn a_worker_that_outlives_its_parent_fork_server_is_still_seen_to_end() {
    // The first test kills the fork server (the workers' parent here), then its own worker:
    // nobody can report that exit; herd sees the worker gone, and the respawn starts plain.
    let suite = kills_its_fork_server();
    let run = herd_parent_mode(&suite, ONE_WORKER_ONE_RETRY);
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 3, "{}", run.dump());
    assert!(outcomes.values().all(|o| o == "passed"), "{}", run.dump());
    let exits = run.of("worker_exited");
    let status = exits[0]["status"].as_str().unwrap_or_default();
    assert!(
        status.contains("its fork server died before it"),
        "{status}"
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(said.matches("the fork server died").count(), 1, "{said}");
    assert_eq!(markers(suite.path(), "import."), 2, "{}", run.dump());
}
