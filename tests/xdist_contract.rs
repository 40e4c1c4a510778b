//! The worker side of pytest-xdist's contract, with real herd, real pytest and real plugins
//! (from `.venv`, made by `scripts/python-env`), each compared with pytest-xdist (`pytest -n 2`)
//! as the reference: the `worker_id` and `testrun_uid` fixtures, `config.workerinput` and the
//! `PYTEST_XDIST_*` variables, a `--basetemp` per worker under one session root (and the FileLock
//! recipe that relies on it), pytest-django's database per worker and pytest-randomly's one seed.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pysuite::*;
use common::*;
use serde_json::Value;

/// Waits until both tests of a suite run at once, so they are on two workers (not under plain
/// pytest, which has one process).
const CONFTEST: &str = r#"
import os, time, pytest

@pytest.fixture
def alongside(request):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    root = str(request.config.rootpath)
    open(os.path.join(root, f"arrived-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 60
    while len([n for n in os.listdir(root) if n.startswith("arrived-")]) < 2:
        assert time.monotonic() < deadline, "the other test never ran alongside this one"
        time.sleep(0.02)
"#;

/// A suite of `conftest.py` and the same test in `test_one.py` and `test_two.py`.
fn two_workers_suite(test: &str, more: &[(&str, &str)]) -> PySuite {
    let mut files = vec![
        ("conftest.py", CONFTEST),
        ("test_one.py", test),
        ("test_two.py", test),
    ];
    files.extend_from_slice(more);
    PySuite::new(&files)
}

/// A directory of `.venv/optional-plugins/` (plugins that would change every other suite's run
/// if they were in the venv itself, put on `PYTHONPATH` only here).
fn optional_plugin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/optional-plugins")
        .join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/python-env",
        dir.display()
    );
    dir
}

fn herd(suite: &PySuite, pytest_args: &[&str], pythonpath: Option<&Path>) -> Run {
    let mut cmd = suite.herd_command(&["-n", "2"], pytest_args);
    if let Some(path) = pythonpath {
        cmd.env("PYTHONPATH", path);
    }
    let run = Run::from_output(cmd.output().unwrap(), &suite.events());
    assert!(
        !run.respawned(),
        "no worker may be respawned\n{}",
        run.dump()
    );
    run
}

/// pytest itself on the suite: `args` decide plain or xdist (`-n 2`).
fn pytest(suite: &PySuite, args: &[&str], pythonpath: Option<&Path>) -> Output {
    let mut cmd = Command::new(venv_pytest());
    cmd.current_dir(suite.path())
        .args(["-p", "no:cacheprovider"])
        .args(args)
        .env_remove("PYTEST_ADDOPTS");
    if let Some(path) = pythonpath {
        cmd.env("PYTHONPATH", path);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The contents of the suite's files whose names start with `prefix`, sorted by name.
fn records(suite: &PySuite, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(suite.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| std::fs::read_to_string(suite.path().join(n)).unwrap())
        .collect()
}

fn json_records(suite: &PySuite, prefix: &str) -> Vec<Value> {
    records(suite, prefix)
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

const SEES: &str = r#"
import json, os

def test_sees(worker_id, testrun_uid, request, alongside):
    config = request.config
    seen = {
        "worker_id": worker_id,
        "testrun_uid": testrun_uid,
        "env": {k: v for k, v in os.environ.items() if k.startswith("PYTEST_XDIST_")},
        "workerinput": getattr(config, "workerinput", None),
        "workeroutput": getattr(config, "workeroutput", None),
    }
    with open(f"seen-{worker_id}-{request.node.path.stem}.json", "w") as f:
        json.dump(seen, f, default=str)
"#;

/// What the two workers of one run saw: (worker ids, the one run id).
fn check_seen(seen: &[Value], count: &str) -> (BTreeSet<String>, String) {
    assert_eq!(seen.len(), 2, "{seen:?}");
    let uid = seen[0]["testrun_uid"].as_str().unwrap().to_string();
    let mut ids = BTreeSet::new();
    for s in seen {
        let id = s["worker_id"].as_str().unwrap();
        ids.insert(id.to_string());
        assert_eq!(
            s["testrun_uid"], uid,
            "one run id on every worker: {seen:?}"
        );
        let input = &s["workerinput"];
        assert_eq!(input["workerid"], id, "{s}");
        assert_eq!(input["testrunuid"], uid, "{s}");
        assert_eq!(input["workercount"], 2, "{s}");
        assert_eq!(s["env"]["PYTEST_XDIST_WORKER"], id, "{s}");
        assert_eq!(s["env"]["PYTEST_XDIST_WORKER_COUNT"], count, "{s}");
        assert_eq!(s["env"]["PYTEST_XDIST_TESTRUNUID"], uid, "{s}");
        // An object for the controller (pytest-metadata, when installed, has put its own in).
        assert!(s["workeroutput"].is_object(), "{s}");
    }
    assert_eq!(uid.len(), 32, "{uid}");
    assert!(uid.chars().all(|c| c.is_ascii_hexdigit()), "{uid}");
    (ids, uid)
}

#[test]
fn workers_see_worker_id_testrun_uid_workerinput_and_the_environment_as_xdist_workers_do() {
    let suite = two_workers_suite(SEES, &[]);
    let xdist = pytest(&suite, &["-n", "2"], None);
    assert!(xdist.status.success(), "{}", text(&xdist));
    let (ids, _) = check_seen(&json_records(&suite, "seen-"), "2");
    assert_eq!(ids, BTreeSet::from(["gw0".into(), "gw1".into()]));

    let mut uids = BTreeSet::new();
    for _ in 0..2 {
        let suite = two_workers_suite(SEES, &[]);
        let run = herd(&suite, &["-q"], None);
        assert_eq!(run.code, 0, "{}", run.dump());
        let seen = json_records(&suite, "seen-");
        let (ids, uid) = check_seen(&seen, "2");
        assert_eq!(ids, BTreeSet::from(["w1".into(), "w2".into()]));
        uids.insert(uid);
        // The user's pytest command line, without what herd adds to it.
        let pytest = venv_pytest().display().to_string();
        for s in &seen {
            assert_eq!(
                s["workerinput"]["mainargv"],
                serde_json::json!([pytest, "-p", "no:cacheprovider", "-q"]),
                "{s}"
            );
        }
    }
    assert_eq!(uids.len(), 2, "a new run id per session: {uids:?}");

    // Plain pytest (one process, herd's plugin loaded, xdist not): "master", as xdist says.
    let suite = two_workers_suite(SEES, &[]);
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let plain = pytest(
        &suite,
        &["-p", "herd_pytest.plugin", "-p", "no:xdist"],
        Some(&plugin),
    );
    assert!(plain.status.success(), "{}", text(&plain));
    let seen = json_records(&suite, "seen-");
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s["worker_id"] == "master"), "{seen:?}");
    assert!(seen.iter().all(|s| s["workerinput"].is_null()), "{seen:?}");
}

const BASETEMP: &str = r#"
import os

def test_basetemp(tmp_path_factory, tmp_path, alongside):
    base = tmp_path_factory.getbasetemp()
    assert tmp_path.is_relative_to(base)
    with open(f"base-{os.getpid()}", "w") as f:
        f.write(str(base))
"#;

/// The basetemps of a run's two workers: (their parent, their names).
fn basetemps(suite: &PySuite) -> (PathBuf, BTreeSet<String>) {
    let bases: Vec<PathBuf> = records(suite, "base-").iter().map(PathBuf::from).collect();
    assert_eq!(bases.len(), 2, "{bases:?}");
    assert_ne!(bases[0], bases[1], "one basetemp per worker");
    let parent = bases[0].parent().unwrap().to_path_buf();
    assert_eq!(bases[1].parent().unwrap(), parent, "{bases:?}");
    let names = bases
        .iter()
        .map(|b| b.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    (parent, names)
}

#[test]
fn each_worker_has_its_own_basetemp_under_one_root_per_session() {
    let suite = two_workers_suite(BASETEMP, &[]);
    let xdist = pytest(&suite, &["-n", "2"], None);
    assert!(xdist.status.success(), "{}", text(&xdist));
    let (xdist_root, _) = basetemps(&suite);

    let mut roots = BTreeSet::new();
    for _ in 0..2 {
        let suite = two_workers_suite(BASETEMP, &[]);
        let run = herd(&suite, &[], None);
        assert_eq!(run.code, 0, "{}", run.dump());
        let (root, names) = basetemps(&suite);
        assert_eq!(names, BTreeSet::from(["w1".into(), "w2".into()]));
        // Where pytest (and xdist's controller) makes its own: pytest-of-USER/pytest-N.
        assert_eq!(
            root.parent(),
            xdist_root.parent(),
            "{root:?} {xdist_root:?}"
        );
        let root_name = root.file_name().unwrap().to_string_lossy().into_owned();
        assert!(root_name.starts_with("pytest-"), "{root:?}");
        roots.insert(root);
    }
    assert_eq!(roots.len(), 2, "one root per session: {roots:?}");

    // A --basetemp the user gives is the session's root, as under xdist.
    let suite = two_workers_suite(BASETEMP, &[]);
    let given = suite.path().join("given");
    let arg = format!("--basetemp={}", given.display());
    let run = herd(&suite, &[&arg], None);
    assert_eq!(run.code, 0, "{}", run.dump());
    let (root, names) = basetemps(&suite);
    assert_eq!(root, given);
    assert_eq!(names, BTreeSet::from(["w1".into(), "w2".into()]));
}

/// pytest-xdist's documented recipe for a session fixture computed once across workers.
const FILELOCK_RECIPE: &str = r#"
import json, os, uuid
import pytest
from filelock import FileLock

def produce():
    with open(os.path.join(os.environ["SUITE_DIR"], "computed.txt"), "a") as f:
        f.write("computed\n")
    return {"token": uuid.uuid4().hex}

@pytest.fixture(scope="session")
def session_data(tmp_path_factory, worker_id):
    if worker_id == "master":
        return produce()
    root_tmp_dir = tmp_path_factory.getbasetemp().parent
    fn = root_tmp_dir / "data.json"
    with FileLock(str(fn) + ".lock"):
        if fn.is_file():
            data = json.loads(fn.read_text())
        else:
            data = produce()
            fn.write_text(json.dumps(data))
    return data

def test_uses(session_data, alongside):
    with open(f"token-{os.getpid()}", "w") as f:
        f.write(session_data["token"])
"#;

#[test]
fn the_filelock_recipe_computes_a_session_fixture_once_across_workers() {
    for under_herd in [false, true] {
        let suite = two_workers_suite(FILELOCK_RECIPE, &[]);
        let out = if under_herd {
            let mut cmd = suite.herd_command(&["-n", "2"], &[]);
            cmd.env("SUITE_DIR", suite.path());
            let run = Run::from_output(cmd.output().unwrap(), &suite.events());
            assert_eq!(run.code, 0, "{}", run.dump());
            run.dump()
        } else {
            let out = Command::new(venv_pytest())
                .current_dir(suite.path())
                .args(["-p", "no:cacheprovider", "-n", "2"])
                .env("SUITE_DIR", suite.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            text(&out)
        };
        let who = if under_herd { "herd" } else { "xdist" };
        assert_eq!(
            records(&suite, "computed.txt"),
            ["computed\n"],
            "{who}: computed once\n{out}"
        );
        let tokens = records(&suite, "token-");
        assert_eq!(tokens.len(), 2, "{who}\n{out}");
        assert_eq!(tokens[0], tokens[1], "{who}: one value on every worker");
    }
}

const DJANGO_SETTINGS: &str = r#"
from pathlib import Path
BASE = Path(__file__).resolve().parent
SECRET_KEY = "not-a-secret"
INSTALLED_APPS = []
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE / "db.sqlite3"),
        "TEST": {"NAME": str(BASE / "test_db.sqlite3")},
    }
}
"#;

const DJANGO_INI: &str = "[pytest]\nDJANGO_SETTINGS_MODULE = proj_settings\npythonpath = .\n";

const DJANGO_TEST: &str = r#"
import os, pytest
from django.db import connection

@pytest.mark.django_db(transaction=True)
def test_own_table(alongside):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE marker (id integer)")
    with open(f"db-{os.getpid()}", "w") as f:
        f.write(os.path.basename(connection.settings_dict["NAME"]))
"#;

#[test]
fn pytest_django_gives_each_worker_its_own_test_database() {
    let django = optional_plugin("django");
    let files = [
        ("proj_settings.py", DJANGO_SETTINGS),
        ("pytest.ini", DJANGO_INI),
    ];
    let names = |suite: &PySuite| records(suite, "db-").into_iter().collect::<BTreeSet<_>>();

    let suite = two_workers_suite(DJANGO_TEST, &files);
    let xdist = pytest(&suite, &["-n", "2"], Some(&django));
    assert!(xdist.status.success(), "{}", text(&xdist));
    let expected = |a: &str, b: &str| {
        BTreeSet::from([
            format!("test_db.sqlite3_{a}"),
            format!("test_db.sqlite3_{b}"),
        ])
    };
    assert_eq!(names(&suite), expected("gw0", "gw1"));

    let suite = two_workers_suite(DJANGO_TEST, &files);
    let run = herd(&suite, &[], Some(&django));
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(!run.dump().contains("already exists"), "{}", run.dump());
    assert_eq!(run.count("passed"), 2, "{}", run.dump());
    assert_eq!(names(&suite), expected("w1", "w2"), "{}", run.dump());
}

/// Each test writes the random number pytest-randomly's reseeding gives it (from the session's
/// seed and the test's id, so the same on any worker in any order).
const RANDOM_TEST: &str = r#"
import os, random, pytest

@pytest.mark.parametrize("i", range(5))
def test_draw(i, request):
    with open(f"draw-{os.getpid()}-{i}-{request.node.path.stem}", "w") as f:
        f.write(f"{request.node.nodeid} {random.random()}\n")
"#;

fn random_suite() -> PySuite {
    PySuite::new(&[
        ("test_a.py", RANDOM_TEST),
        ("test_b.py", RANDOM_TEST),
        ("test_c.py", RANDOM_TEST),
    ])
}

fn draws(suite: &PySuite) -> BTreeSet<String> {
    records(suite, "draw-").into_iter().collect()
}

/// The seeds a run's output says it used.
fn seeds_said(output: &str) -> Vec<String> {
    output
        .match_indices("Using --randomly-seed=")
        .map(|(at, said)| {
            output[at + said.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect()
        })
        .collect()
}

#[test]
fn pytest_randomly_shuffles_with_one_seed_on_every_worker_and_says_it_once() {
    let randomly = optional_plugin("randomly");
    // Seed chosen by herd: said once, and every worker drew what plain pytest draws with it.
    let suite = random_suite();
    let run = herd(&suite, &[], Some(&randomly));
    assert_eq!(run.code, 0, "{}", run.dump());
    let seeds = seeds_said(&run.stdout);
    assert_eq!(seeds.len(), 1, "the seed is said once\n{}", run.dump());
    let under_herd = draws(&suite);
    assert_eq!(under_herd.len(), 15, "{under_herd:?}");
    let seed = format!("--randomly-seed={}", seeds[0]);
    let plain_suite = random_suite();
    let plain = pytest(&plain_suite, &["-p", "no:xdist", &seed], Some(&randomly));
    assert!(plain.status.success(), "{}", text(&plain));
    assert_eq!(under_herd, draws(&plain_suite), "{}", run.dump());

    // The user's seed, given after `--`: the same draws as xdist's workers make with it.
    let suite = random_suite();
    let run = herd(&suite, &["--randomly-seed=1234"], Some(&randomly));
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(seeds_said(&run.stdout), ["1234"], "{}", run.dump());
    let xdist_suite = random_suite();
    let xdist = pytest(
        &xdist_suite,
        &["-n", "2", "--randomly-seed=1234"],
        Some(&randomly),
    );
    assert!(xdist.status.success(), "{}", text(&xdist));
    assert_eq!(draws(&suite), draws(&xdist_suite), "{}", run.dump());
}
