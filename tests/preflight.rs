//! The up-front checks of `herd run` (src/preflight.rs) with real commands and real virtualenvs:
//! a worker command that cannot start, a suite's Python without pyzmq, a `pytest` whose
//! interpreter does not exist and an installed plugin of another protocol are each one usage
//! error (exit 4) naming what to do, with no worker started; an installed plugin of this herd's
//! version is what the workers load.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The shared `.venv` (made by `scripts/python-env`): real pytest and pyzmq.
fn shared_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "{}/bin/python is missing: run scripts/python-env (scripts/test does)",
        venv.display()
    );
    venv
}

/// A fresh virtualenv (no pip) in `dir` whose site-packages links every package of the shared
/// `.venv` for which `keep(name)` holds, and whose `bin/pytest` is the script pip would write.
struct Venv {
    root: PathBuf,
    site: PathBuf,
}

impl Venv {
    fn new(dir: &Path, keep: impl Fn(&str) -> bool) -> Venv {
        let shared = shared_venv();
        let root = dir.join("venv");
        let made = Command::new(shared.join("bin/python"))
            .args(["-m", "venv", "--without-pip"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(made.success(), "python -m venv failed");
        let site = site_packages(&root.join("bin/python"));
        let shared_site = site_packages(&shared.join("bin/python"));
        for entry in std::fs::read_dir(&shared_site).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep(&name) && !name.ends_with(".pth") && !site.join(&name).exists() {
                std::os::unix::fs::symlink(entry.path(), site.join(&name)).unwrap();
            }
        }
        let python = root.join("bin/python");
        let script = format!(
            "#!{}\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n",
            python.display()
        );
        write_executable(&root.join("bin/pytest"), &script);
        Venv { root, site }
    }

    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
}

fn site_packages(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory with a two-test pytest suite, where herd runs.
fn suite() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_s.py"),
        "import herd_pytest\n\ndef test_a():\n    pass\n\n\
         def test_plugin_file():\n    print('PLUGIN', herd_pytest.__file__)\n",
    )
    .unwrap();
    dir
}

/// `herd run --events ... --log-dir ... ARGS` in `dir` with `bin` first on PATH.
fn herd(dir: &Path, bin: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
    let events = dir.join("events.jsonl");
    cmd.current_dir(dir)
        .arg("run")
        .arg("--events")
        .arg(&events)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .args(args)
        .env_remove("PYTHONPATH")
        .env_remove("RUST_LOG");
    if let Some(bin) = bin {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).unwrap());
    }
    let out = cmd.output().expect("herd runs");
    Run::from_output(out, &events)
}

/// Exit 4, the message on stderr, and no worker spawned, logged or heard from.
fn assert_refused_up_front(dir: &Path, run: &Run, message: &str) {
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr.contains(message),
        "want {message:?}\n{}",
        run.dump()
    );
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one message, no traceback: {}",
        run.dump()
    );
    assert!(
        run.events
            .iter()
            .all(|e| !e["event"].as_str().unwrap_or("").starts_with("worker")),
        "a worker was started: {}",
        run.dump()
    );
    let logs = std::fs::read_dir(dir.join("logs")).map_or(0, |d| d.count());
    assert_eq!(logs, 0, "worker logs were written");
}

#[test]
fn an_exec_command_that_cannot_start_is_one_error_before_any_worker() {
    let dir = tempfile::tempdir().unwrap();
    let run = herd(
        dir.path(),
        None,
        &[
            "-n",
            "2",
            "--list",
            "echo a; echo b",
            "--",
            "/no/such/binary",
            "{}",
        ],
    );
    assert_refused_up_front(
        dir.path(),
        &run,
        "herd: error: the test command `/no/such/binary {}` cannot start: /no/such/binary does not exist",
    );
    let run = herd(
        dir.path(),
        None,
        &["--list", "echo a", "--", "no-such-program-herd", "{}"],
    );
    assert_refused_up_front(
        dir.path(),
        &run,
        "cannot start: there is no `no-such-program-herd` on PATH",
    );
    // The same suite with a command that starts runs both tests: the check refuses only what fails.
    let run = herd(
        dir.path(),
        None,
        &["-n", "2", "--list", "echo a; echo b", "--", "true", "{}"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 2, "{}", run.dump());
}

#[test]
fn a_pytest_that_does_not_exist_is_one_error_before_any_worker() {
    let dir = suite();
    let run = herd(dir.path(), None, &["--", "/no/such/pytest"]);
    assert_refused_up_front(
        dir.path(),
        &run,
        "the test command `/no/such/pytest` cannot start: /no/such/pytest does not exist",
    );
}

#[test]
fn a_pytest_whose_interpreter_is_gone_is_named() {
    let dir = suite();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_executable(
        &bin.join("pytest"),
        "#!/no/such/venv/bin/python\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n",
    );
    let run = herd(dir.path(), Some(&bin), &["-n", "2", "--", "pytest", "-q"]);
    assert_refused_up_front(
        dir.path(),
        &run,
        &format!(
            "herd: error: `pytest` ({}) runs /no/such/venv/bin/python (its #! line), which does not exist",
            bin.join("pytest").display()
        ),
    );
}

#[test]
fn a_python_without_pyzmq_is_told_what_to_install() {
    let dir = suite();
    let venv = Venv::new(dir.path(), |name| {
        !name.starts_with("zmq") && !name.starts_with("pyzmq")
    });
    let python = venv.bin().join("python");
    // Real pytest runs in this venv; only pyzmq is missing.
    let plain = Command::new(&python)
        .args(["-c", "import pytest; import zmq"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&plain.stderr).contains("No module named 'zmq'"));
    let want = format!(
        "herd: error: {py} cannot import zmq (pyzmq): install it with {py} -m pip install pyzmq",
        py = python.display()
    );
    let run = herd(dir.path(), Some(&venv.bin()), &["-n", "2", "--", "pytest"]);
    assert_refused_up_front(dir.path(), &run, &want);
    let run = herd(
        dir.path(),
        None,
        &["-n", "2", "--", python.to_str().unwrap(), "-m", "pytest"],
    );
    assert_refused_up_front(dir.path(), &run, &want);
}

#[test]
fn a_pyzmq_that_is_there_but_does_not_import_is_one_error_with_its_reason() {
    // The preflight finds pyzmq without importing it; the first worker to import it says why
    // it cannot, once, as a usage error: no respawn, no test.
    let dir = suite();
    let venv = Venv::new(dir.path(), |name| {
        !name.starts_with("zmq") && !name.starts_with("pyzmq")
    });
    let python = venv.bin().join("python");
    let broken = site_packages(&python).join("zmq");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("__init__.py"),
        "raise ImportError('libzmq.so.5: cannot open shared object file')\n",
    )
    .unwrap();
    let run = herd(dir.path(), Some(&venv.bin()), &["-n", "2", "--", "pytest"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    let want = format!(
        "herd: error: {py} cannot import zmq (pyzmq) (ImportError: libzmq.so.5: cannot open \
         shared object file): install it with {py} -m pip install pyzmq",
        py = python.display()
    );
    assert_eq!(run.stderr.matches(&want).count(), 1, "{}", run.dump());
    assert!(!run.stderr.contains("respawned"), "{}", run.dump());
    assert!(run.of("test_started").is_empty(), "{}", run.dump());
}

#[test]
fn an_installed_plugin_of_another_protocol_is_refused_with_both_versions() {
    let dir = suite();
    let venv = Venv::new(dir.path(), |_| true);
    let plugin = venv.site.join("herd_pytest");
    std::fs::create_dir(&plugin).unwrap();
    std::fs::write(
        plugin.join("__init__.py"),
        "__version__ = \"99.0.0\"\nPROTOCOL_VERSION = 99\n",
    )
    .unwrap();
    let run = herd(dir.path(), Some(&venv.bin()), &["-n", "2", "--", "pytest"]);
    assert_refused_up_front(
        dir.path(),
        &run,
        &format!(
            "has herd_pytest 99.0.0 installed ({}), which speaks protocol 99; this herd {} speaks \
             protocol {}",
            plugin.join("__init__.py").display(),
            env!("CARGO_PKG_VERSION"),
            herd::core::protocol::PROTOCOL_VERSION
        ),
    );
}

#[test]
fn an_installed_plugin_of_this_herd_is_what_the_workers_load() {
    let dir = suite();
    let venv = Venv::new(dir.path(), |_| true);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/herd_pytest");
    std::os::unix::fs::symlink(&source, venv.site.join("herd_pytest")).unwrap();
    let run = herd(
        dir.path(),
        Some(&venv.bin()),
        &["-n", "2", "-v", "--", "pytest", "-s"],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 2, "{}", run.dump());
    // The workers imported the installed package, not a temporary copy of the embedded one.
    let logs: String = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    let all = format!("{}{logs}", run.stdout);
    let want = format!(
        "PLUGIN {}",
        venv.site.join("herd_pytest/__init__.py").display()
    );
    assert!(
        all.contains(&want),
        "want {want:?} in\n{all}\n{}",
        run.dump()
    );
    assert!(!all.contains("herd-pytest-"), "{all}");
}

#[test]
fn version_names_herd_the_protocol_and_the_plugin_the_pytest_on_path_loads() {
    let dir = suite();
    let venv = Venv::new(dir.path(), |_| true);
    let version = |bin: &Path| {
        let path = std::env::join_paths([bin, Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_herd"))
            .arg("--version")
            .env("PATH", path)
            .env_remove("PYTHONPATH")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let herd = env!("CARGO_PKG_VERSION");
    let protocol = herd::core::protocol::PROTOCOL_VERSION;
    let head = format!(
        "herd {herd}\nprotocol version {protocol}\npytest plugin herd_pytest {herd} (embedded)\n"
    );
    let python = venv.bin().join("python");
    let text = version(&venv.bin());
    assert_eq!(
        text,
        format!(
            "{head}pytest on PATH: {} loads the embedded copy\n",
            python.display()
        )
    );
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("python/herd_pytest"),
        venv.site.join("herd_pytest"),
    )
    .unwrap();
    let text = version(&venv.bin());
    assert!(
        text.starts_with(&head)
            && text.contains(&format!(
                "pytest on PATH: {} loads the installed herd_pytest {herd}",
                python.display()
            )),
        "{text}"
    );
}
