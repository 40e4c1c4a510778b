//! The pytest runner: `herd run -n 4 -- pytest tests/ -k smoke` runs a real pytest suite, with
//! herd's worker plugin (the `herd_pytest` package in `python/`) loaded in every worker. When the
//! suite's Python has this herd's `herd_pytest` installed (the `herd` wheel), the workers load it
//! from there; otherwise (a bare binary) herd writes the copy embedded in the binary to a private
//! directory and puts it on the workers' `PYTHONPATH`, so a worker needs only pytest and pyzmq.
//!
//! The reference collection is the first worker's own collection (pytest collects once per
//! worker, in parallel); every other worker's collection is checked against it.
//!
//! Some pytest arguments are herd's business (see [`args`]): options after which pytest ends
//! without running a test are run once as plain pytest ([`run_plain`]), pytest-xdist's flags are
//! a usage error, and `--maxfail`/`-x` become the session's maxfail.

pub mod args;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herd_actors::WorkerCommand;
use herd_core::grouping::Dist;
use herd_core::TestId;

use crate::runner::{Runner, RunnerError};

pub use self::args::{PytestArgs, XdistFlag};

/// `(file name, text)` of one file of `python/herd_pytest/`, embedded in the binary.
macro_rules! plugin_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../python/herd_pytest/", $name)),
        )
    };
}

/// The plugin package, as shipped in `python/herd_pytest/`: every module (a unit test checks
/// that none is missing).
const PLUGIN_FILES: &[(&str, &str)] = &[
    plugin_file!("__init__.py"),
    plugin_file!("channel.py"),
    plugin_file!("chaos.py"),
    plugin_file!("collection.py"),
    plugin_file!("controller.py"),
    plugin_file!("handshake.py"),
    plugin_file!("hooks.py"),
    plugin_file!("loop.py"),
    plugin_file!("nodes.py"),
    plugin_file!("plugin.py"),
    plugin_file!("process.py"),
    plugin_file!("quiet.py"),
    plugin_file!("reports.py"),
    plugin_file!("settings.py"),
    plugin_file!("wire.py"),
    plugin_file!("xdist_contract.py"),
    plugin_file!("xdist_hooks.py"),
    plugin_file!("zygote.py"),
];

/// The version of the embedded plugin: herd's own (`__version__` in `herd_pytest/__init__.py`
/// says the same; a test checks).
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a pytest command line across herd's workers.
pub struct PytestRunner {
    command: Vec<String>,
    /// What herd read in the pytest arguments (the workers' arguments, the session's maxfail).
    args: PytestArgs,
    /// The private directory holding the embedded plugin; `None` when the installed one is used.
    plugin_root: Option<tempfile::TempDir>,
}

impl PytestRunner {
    /// A runner for `command` (`pytest ARGS...` or `python -m pytest ARGS...`); writes the
    /// embedded plugin to a private directory that lives as long as the runner.
    pub fn new(command: Vec<String>) -> Result<PytestRunner, RunnerError> {
        let args = read_args(&command)?;
        let cannot = |e: std::io::Error| {
            RunnerError::Usage(format!(
                "cannot write herd's pytest plugin to a temporary directory: {e} \
                 (set TMPDIR to a writable directory)"
            ))
        };
        let plugin_root = tempfile::Builder::new()
            .prefix("herd-pytest-")
            .tempdir()
            .map_err(cannot)?;
        write_plugin(&plugin_root.path().join("herd_pytest")).map_err(cannot)?;
        Ok(PytestRunner {
            command,
            args,
            plugin_root: Some(plugin_root),
        })
    }

    /// A runner whose workers load the `herd_pytest` installed in the suite's Python (checked by
    /// [`crate::preflight`] to be this herd's version): no copy is written, `PYTHONPATH` is left
    /// as it is.
    pub fn with_installed_plugin(command: Vec<String>) -> Result<PytestRunner, RunnerError> {
        let args = read_args(&command)?;
        Ok(PytestRunner {
            command,
            args,
            plugin_root: None,
        })
    }

    /// Whether `command` runs pytest.
    pub fn is_pytest_command(command: &[String]) -> bool {
        plugin_flags_at(command).is_some()
    }

    /// The directory put on the workers' `PYTHONPATH` (holding the embedded plugin); `None` when
    /// the workers load the installed plugin.
    pub fn plugin_root(&self) -> Option<&Path> {
        self.plugin_root.as_ref().map(|root| root.path())
    }

    /// `self.command` with herd's `-p` flags after `pytest` (`-p herd_pytest.<module>`, no
    /// xdist), and the environment that finds the plugin.
    fn command_with(&self, module: &str, pytest_args: &[String]) -> WorkerCommand {
        let at = plugin_flags_at(&self.command).expect("checked in new()");
        let mut args: Vec<OsString> = self.command[1..at].iter().map(OsString::from).collect();
        args.extend(["-p", module, "-p", "no:xdist"].map(OsString::from));
        args.extend(pytest_args.iter().map(OsString::from));
        let mut env = vec![(
            herd_core::protocol::ENV_VERSION.into(),
            env!("CARGO_PKG_VERSION").into(),
        )];
        if let Some(root) = self.plugin_root() {
            // First on the path, so it wins over any other herd_pytest the suite's Python has.
            let mut path = root.as_os_str().to_owned();
            if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
                path.push(":");
                path.push(existing);
            }
            env.insert(0, ("PYTHONPATH".into(), path));
        }
        WorkerCommand {
            program: PathBuf::from(&self.command[0]),
            args,
            env,
            cwd: None,
        }
    }
}

/// Set in the controller's environment: `herd_pytest.controller` is active only there.
pub const ENV_CONTROLLER: &str = "HERD_PYTEST_CONTROLLER";

/// Set in the workers' environment when the controller is on: each report then carries pytest's
/// serialized form, and the workers leave the session's files (`--junitxml`, the cache, ...) to
/// the controller.
pub const ENV_REPORTS: &str = "HERD_PYTEST_REPORTS";

/// Reads the pytest arguments of `command`; refuses a command that is not pytest, pytest-xdist's
/// flags (herd runs the workers) and options after which pytest runs no test (see
/// [`run_plain`]).
fn read_args(command: &[String]) -> Result<PytestArgs, RunnerError> {
    let Some(at) = plugin_flags_at(command) else {
        return Err(RunnerError::Usage(format!(
            "`{}` is not a pytest command (expected `pytest ...` or `python -m pytest ...`)",
            command.join(" ")
        )));
    };
    let args = PytestArgs::read(&command[at..]);
    if let Some(flag) = &args.xdist {
        return Err(RunnerError::Usage(flag.usage_error(command)));
    }
    if let Some(option) = &args.ends_early {
        return Err(RunnerError::Usage(format!(
            "with {option} pytest runs no test: run `{}` as plain pytest (`herd run` does)",
            command.join(" ")
        )));
    }
    Ok(args)
}

/// The option of `command` (a pytest command) after which pytest ends without running a test
/// (`--collect-only`, `--fixtures`, `--markers`, `--help`, `--version`...), if any.
pub fn ends_early(command: &[String]) -> Option<String> {
    let at = plugin_flags_at(command)?;
    PytestArgs::read(&command[at..]).ends_early
}

/// Runs `command` once as plain pytest (without herd's plugin), its output going straight to
/// herd's stdout and stderr; returns its exit code. For the options that end pytest before any
/// test runs: pytest's own output and exit code are the truth, and no worker is needed.
pub fn run_plain(command: &[String]) -> Result<i32, String> {
    let (program, args) = command.split_first().ok_or("no pytest command")?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", command.join(" ")))?;
    Ok(status
        .code()
        .unwrap_or(herd_core::outcome::exit_code::INTERRUPTED))
}

/// Why a session of `command` collected no test, when pytest calls it a usage error: pytest
/// reports a missing path (`ERROR: file or directory not found`) only after its (empty)
/// collection, so herd, whose workers then sent that empty collection, asks plain pytest once,
/// with `--collect-only -q`. pytest's message, or `None` when pytest too finds nothing to
/// run (exit 5).
pub fn why_nothing_collected(command: &[String]) -> Option<String> {
    let (program, args) = command.split_first()?;
    let out = Command::new(program)
        .args(args)
        .args(["--collect-only", "-q"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let usage = herd_core::outcome::exit_code::USAGE_ERROR;
    // pytest's own message, as plain pytest prints it (`ERROR: file or directory not found`).
    (out.status.code() == Some(usage))
        .then(|| String::from_utf8_lossy(&out.stderr).trim_end().to_string())
}

fn write_plugin(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for &(name, text) in PLUGIN_FILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Where herd's `-p` flags go in a pytest command line: right after `pytest` (or after
/// `python -m pytest`); `None` when the command is not pytest.
fn plugin_flags_at(command: &[String]) -> Option<usize> {
    let name = |s: &str| {
        Path::new(s)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let first = name(command.first()?);
    if first == "pytest" || first == "py.test" {
        return Some(1);
    }
    if first.starts_with("python") {
        let m = command.iter().position(|a| a == "-m")?;
        return (command.get(m + 1).map(String::as_str) == Some("pytest")).then_some(m + 2);
    }
    None
}

/// Whether pytest arguments turn capturing off (`-s`, `--capture=no`, `--capture no`), the
/// last of them winning as in pytest.
fn captures_nothing(args: &[String]) -> bool {
    let mut off = false;
    let mut it = args.iter().take_while(|a| *a != "--");
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-s" => off = true,
            "--capture" => off = it.next().map(String::as_str) == Some("no"),
            a if a.starts_with("--capture=") => off = a == "--capture=no",
            // Short flags run together: `-xs`, `-sv` (but not an option's value, like `-kfoo`).
            a if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 => {
                let flags = &a[1..];
                if flags.chars().all(|c| "svxqlr".contains(c)) && flags.contains('s') {
                    off = true;
                }
            }
            _ => {}
        }
    }
    off
}

impl Runner for PytestRunner {
    fn name(&self) -> &str {
        "pytest"
    }

    fn collect(&self) -> Result<Option<Vec<TestId>>, RunnerError> {
        Ok(None)
    }

    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        Ok(self.command_with("herd_pytest.plugin", &self.args.for_workers))
    }

    fn file_for_controller(&self) -> Option<String> {
        const FILES: [&str; 4] = ["--junitxml", "--junit-xml", "--report-log", "--html"];
        let at = plugin_flags_at(&self.command).expect("checked in new()");
        self.command[at..]
            .iter()
            .take_while(|a| *a != "--")
            .find(|a| {
                FILES
                    .iter()
                    .any(|f| a.as_str() == *f || a.starts_with(&format!("{f}=")))
            })
            .cloned()
    }

    fn controller_command(&self) -> Option<WorkerCommand> {
        // The user's arguments as given: the controller counts `--maxfail`/`-x` as pytest does.
        let at = plugin_flags_at(&self.command).expect("checked in new()");
        let mut command = self.command_with("herd_pytest.controller", &self.command[at..]);
        command.env.push((ENV_CONTROLLER.into(), "1".into()));
        Some(command)
    }

    fn remote_worker_args(&self) -> Result<Vec<String>, RunnerError> {
        // `herd worker` on the other host adds the plugin (embedded in it) itself.
        let at = plugin_flags_at(&self.command).expect("checked in new()");
        let mut args = vec!["--".to_string()];
        args.extend(self.command[..at].iter().cloned());
        args.extend(self.args.for_workers.iter().cloned());
        Ok(args)
    }

    fn maxfail(&self) -> Option<usize> {
        self.args.maxfail
    }

    fn usage_exit_code(&self) -> Option<i32> {
        Some(herd_core::outcome::exit_code::USAGE_ERROR)
    }

    fn prefers_dots(&self) -> bool {
        true
    }

    fn live_output(&self) -> bool {
        let at = plugin_flags_at(&self.command).expect("checked in new()");
        captures_nothing(&self.command[at..])
    }

    fn default_dist(&self) -> Dist {
        // Module fixtures and providers: the seed's grouping.
        Dist::Modscope
    }

    fn shards_collection(&self) -> bool {
        true
    }

    fn xdist_contract(&self) -> bool {
        true
    }

    fn fork_server(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capturing_off_is_read_as_pytest_reads_it() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(captures_nothing(&args(&["-s", "tests/"])));
        assert!(captures_nothing(&args(&["-xsv"])));
        assert!(captures_nothing(&args(&["--capture=no"])));
        assert!(captures_nothing(&args(&["--capture", "no"])));
        assert!(!captures_nothing(&args(&["-s", "--capture=fd"])));
        assert!(!captures_nothing(&args(&["-k", "s"])));
        assert!(!captures_nothing(&args(&["-ks"])));
        assert!(!captures_nothing(&args(&["tests/", "--", "-s"])));
    }

    fn cmd(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn pytest_commands_are_recognised() {
        assert_eq!(plugin_flags_at(&cmd("pytest tests -k smoke")), Some(1));
        assert_eq!(plugin_flags_at(&cmd(".venv/bin/pytest")), Some(1));
        assert_eq!(plugin_flags_at(&cmd("python3 -m pytest -x")), Some(3));
        assert_eq!(
            plugin_flags_at(&cmd("/usr/bin/python3.11 -X dev -m pytest")),
            Some(5)
        );
        assert_eq!(plugin_flags_at(&cmd("python3 -m unittest")), None);
        assert_eq!(plugin_flags_at(&cmd("sh run.sh")), None);
        assert!(PytestRunner::new(cmd("cargo test")).is_err());
    }

    /// A command's arguments as text.
    fn args_of(command: &WorkerCommand) -> Vec<String> {
        command
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn workers_load_the_embedded_plugin_and_keep_the_users_arguments() {
        let runner = PytestRunner::new(cmd("python3 -m pytest tests -k smoke")).unwrap();
        let command = runner.worker_command().unwrap();
        assert_eq!(command.program, PathBuf::from("python3"));
        let args = args_of(&command);
        assert_eq!(
            args,
            cmd("-m pytest -p herd_pytest.plugin -p no:xdist tests -k smoke")
        );
        let (key, path) = &command.env[0];
        assert_eq!(key, "PYTHONPATH");
        let root = runner.plugin_root().unwrap();
        assert!(path.to_string_lossy().starts_with(root.to_str().unwrap()));
        let plugin = std::fs::read_to_string(root.join("herd_pytest/loop.py")).unwrap();
        assert!(plugin.contains("need_tests"));
    }

    #[test]
    fn workers_load_an_installed_plugin_from_where_it_is() {
        let runner = PytestRunner::with_installed_plugin(cmd("pytest -l")).unwrap();
        assert!(runner.plugin_root().is_none());
        let command = runner.worker_command().unwrap();
        assert!(command.env.iter().all(|(key, _)| key != "PYTHONPATH"));
        let args = args_of(&command);
        assert_eq!(args, cmd("-p herd_pytest.plugin -p no:xdist -l"));
        assert!(PytestRunner::with_installed_plugin(cmd("sh x")).is_err());
    }

    #[test]
    fn the_controller_is_the_users_command_with_the_controller_plugin() {
        let runner = PytestRunner::new(cmd("python3 -m pytest tests --junitxml=x.xml")).unwrap();
        let command = runner.controller_command().unwrap();
        let args = args_of(&command);
        assert_eq!(
            args,
            cmd("-m pytest -p herd_pytest.controller -p no:xdist tests --junitxml=x.xml")
        );
        assert!(command
            .env
            .iter()
            .any(|(k, v)| k == ENV_CONTROLLER && v == "1"));
        assert_eq!(command.env[0].0, "PYTHONPATH");
    }

    fn embedded(name: &str) -> &'static str {
        PLUGIN_FILES
            .iter()
            .find(|(file, _)| *file == name)
            .unwrap_or_else(|| panic!("{name} is not embedded"))
            .1
    }

    #[test]
    fn maxfail_is_the_sessions_and_options_herd_cannot_run_are_refused() {
        let runner = PytestRunner::new(cmd("python3 -m pytest -vx tests --maxfail 2")).unwrap();
        assert_eq!(runner.maxfail(), Some(2));
        let args: Vec<String> = (runner.worker_command().unwrap().args.iter())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            cmd("-m pytest -p herd_pytest.plugin -p no:xdist -v tests")
        );
        let remote = runner.remote_worker_args().unwrap();
        assert_eq!(remote, cmd("-- python3 -m pytest -v tests"));
        assert_eq!(runner.usage_exit_code(), Some(4));
        let xdist = PytestRunner::new(cmd("pytest -n 2 tests")).err().unwrap();
        assert!(
            xdist.to_string().contains("herd run -n 2 -- pytest tests"),
            "{xdist}"
        );
        assert!(PytestRunner::new(cmd("pytest --co")).is_err());
        assert_eq!(
            ends_early(&cmd("python -m pytest --fixtures")).as_deref(),
            Some("--fixtures")
        );
        assert_eq!(ends_early(&cmd("pytest tests -q")), None);
    }

    #[test]
    fn the_embedded_plugin_says_herds_version_and_protocol() {
        let init = embedded("__init__.py");
        let protocol = format!(
            "PROTOCOL_VERSION = {}\n",
            herd_core::protocol::PROTOCOL_VERSION
        );
        assert!(init.contains(&format!("__version__ = \"{PLUGIN_VERSION}\"\n")));
        assert!(init.contains(&protocol), "__init__.py: {protocol}");
        // Said once: every module takes it from the package.
        for (name, text) in PLUGIN_FILES {
            if *name != "__init__.py" {
                assert!(
                    !text.contains("PROTOCOL_VERSION = "),
                    "{name} says it again"
                );
            }
        }
    }

    #[test]
    fn every_module_of_the_package_is_embedded_as_it_is() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/herd_pytest");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".py"))
            .collect();
        on_disk.sort();
        let mut embedded_names: Vec<String> = PLUGIN_FILES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        embedded_names.sort();
        assert_eq!(
            embedded_names, on_disk,
            "PLUGIN_FILES in src/pytest.rs must list every module of python/herd_pytest/"
        );
        for name in &on_disk {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert_eq!(
                embedded(name),
                text,
                "{name} differs from the embedded copy"
            );
        }
    }

    #[test]
    fn the_written_plugin_is_the_whole_package() {
        let runner = PytestRunner::new(cmd("pytest")).unwrap();
        let dir = runner.plugin_root().unwrap().join("herd_pytest");
        for (name, text) in PLUGIN_FILES {
            assert_eq!(&std::fs::read_to_string(dir.join(name)).unwrap(), text);
        }
    }
}
