//! Checks made once, before any worker starts, so a worker command that cannot work is one clear
//! usage error (exit 4) instead of a crash per test or a respawn per worker.
//!
//! * Both runners: the program of the worker command is resolved as the shell would (a name with
//!   a `/` is a path, any other name is looked up on `PATH`) and must be an executable file.
//! * The pytest runner: the Python that runs the suite is found (the `python` of
//!   `python -m pytest`, or the interpreter on the `#!` line of the `pytest` script) and asked,
//!   once, whether it can import pytest and pyzmq, and which `herd_pytest` it has installed. An
//!   installed plugin of this herd's version is loaded from there; otherwise the workers get the
//!   copy embedded in the binary. An installed plugin of another protocol version is refused.
//!
//! The checks only apply to workers started on this machine (`--launcher local`): a launcher
//! template or an external worker runs the command elsewhere.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herd_core::protocol::PROTOCOL_VERSION;
use serde::Deserialize;

use crate::pytest::{PytestRunner, PLUGIN_VERSION};
use crate::runner::{ExecRunner, Runner, RunnerError};

/// The runner for `herd run`: the exec runner when a list command is given, else the pytest
/// runner; with `local` (workers start on this machine) the worker command is checked first.
pub fn runner_for(
    list: Option<&str>,
    command: Vec<String>,
    local: bool,
) -> Result<Box<dyn Runner>, RunnerError> {
    if let Some(list) = list {
        if local {
            check_exec_command(&command).map_err(RunnerError::Usage)?;
        }
        return Ok(Box::new(ExecRunner::new(list, command)?));
    }
    if !PytestRunner::is_pytest_command(&command) {
        return Err(RunnerError::Usage(format!(
            "`{}` is not a pytest command; for any other command give --list CMD (exec runner)",
            command.join(" ")
        )));
    }
    if !local {
        return Ok(Box::new(PytestRunner::new(command)?));
    }
    let plugin = check_pytest_command(&command).map_err(RunnerError::Usage)?;
    Ok(Box::new(match plugin {
        Plugin::Installed { .. } => PytestRunner::with_installed_plugin(command)?,
        Plugin::Embedded => PytestRunner::new(command)?,
    }))
}

/// Which copy of the worker plugin the pytest workers load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plugin {
    /// The copy embedded in this binary, put on the workers' `PYTHONPATH`.
    Embedded,
    /// The `herd_pytest` installed in the suite's interpreter (same version as this herd).
    Installed {
        /// Its `__init__.py`.
        file: PathBuf,
    },
}

/// Checks the exec runner's test command: its program must start (a program that is the test
/// id itself, `-- {}`, is only known per test and is not checked).
pub fn check_exec_command(command: &[String]) -> Result<(), String> {
    match command.first() {
        None => Err("the exec runner needs a command after `--`".into()),
        Some(program) if program.contains("{}") => Ok(()),
        Some(program) => resolve_program(program)
            .map(drop)
            .map_err(|why| cannot_start(command, &why)),
    }
}

/// Checks a pytest command: the suite's Python can import pytest and pyzmq; returns which
/// plugin copy the workers should load.
pub fn check_pytest_command(command: &[String]) -> Result<Plugin, String> {
    let Some(python) = suite_python(command)? else {
        return Ok(Plugin::Embedded);
    };
    let probe = probe(&python)?;
    let plugin = choose_plugin(&python, &probe)?;
    tracing::info!(python = %python.display(), ?plugin, "the suite's Python can run herd's workers");
    Ok(plugin)
}

fn cannot_start(command: &[String], why: &str) -> String {
    format!(
        "the test command `{}` cannot start: {why}",
        command.join(" ")
    )
}

/// Resolves `program` as the shell would: a name with a `/` is a path (relative to the current
/// directory), any other name is the first executable file of that name on `PATH`.
pub fn resolve_program(program: &str) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    resolve_in(program, std::env::var_os("PATH").as_deref(), &cwd)
}

fn resolve_in(program: &str, path: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program is an empty string".into());
    }
    if program.contains('/') {
        let candidate = cwd.join(program);
        return match std::fs::metadata(&candidate) {
            Err(_) => Err(format!(
                "{program} does not exist; give the path of an executable, or a program on PATH"
            )),
            Ok(meta) if meta.is_dir() => Err(format!("{program} is a directory, not a program")),
            Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Err(format!(
                "{program} is not executable; make it so (chmod +x {program}) or run it through \
                 its interpreter (`-- sh {program} ...`)"
            )),
            Ok(_) => Ok(candidate),
        };
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| cwd.join(dir).join(program))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| {
            format!(
                "there is no `{program}` on PATH; install it, activate the environment that has \
                 it, or give its path"
            )
        })
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python that runs a pytest command: the `python` of `python -m pytest`, or the interpreter
/// on the `#!` line of the `pytest` script. `None` when the script's interpreter is not a Python
/// (a wrapper such as a pyenv shim), which cannot be checked.
pub fn suite_python(command: &[String]) -> Result<Option<PathBuf>, String> {
    let first = command.first().map(String::as_str).unwrap_or_default();
    let program = resolve_program(first).map_err(|why| cannot_start(command, &why))?;
    if is_python_name(&program) {
        return Ok(Some(program));
    }
    let Some(interpreter) = script_interpreter(&program)? else {
        return Ok(None);
    };
    if !is_executable_file(&interpreter) {
        return Err(format!(
            "`{first}` ({}) runs {} (its #! line), which does not exist or is not executable: \
             recreate its virtualenv, or give the Python to use (`-- /path/to/python -m pytest`)",
            program.display(),
            interpreter.display()
        ));
    }
    Ok(is_python_name(&interpreter).then_some(interpreter))
}

fn is_python_name(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with("python") || name.starts_with("pypy")
}

/// The interpreter a script names on its `#!` line (`#!/usr/bin/env NAME` resolved on `PATH`;
/// pip's `#!/bin/sh` + `'''exec' PYTHON` form for long paths too); `None` for a binary.
fn script_interpreter(script: &Path) -> Result<Option<PathBuf>, String> {
    let mut head = Vec::new();
    std::fs::File::open(script)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let Some(line) = lines.next().and_then(|l| l.strip_prefix("#!")) else {
        return Ok(None);
    };
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    if Path::new(first).file_name() == Some(OsStr::new("env")) {
        let Some(name) = words.find(|w| !w.starts_with('-')) else {
            return Ok(None);
        };
        return Ok(resolve_program(name)
            .ok()
            .or_else(|| Some(PathBuf::from(name))));
    }
    if first.ends_with("/sh") {
        let exec = lines.next().and_then(|l| l.strip_prefix("'''exec' "));
        return Ok(exec.and_then(first_quoted).map(PathBuf::from));
    }
    Ok(Some(PathBuf::from(first)))
}

/// The first word of `text`, without the quotes around it.
fn first_quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next()?;
    if quote == '"' || quote == '\'' {
        text[1..].split(quote).next()
    } else {
        text.split_whitespace().next()
    }
}

/// What the suite's Python said about itself.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Probe {
    /// Why `import pytest` failed (`None`: it worked).
    pub pytest: Option<String>,
    /// Why `import zmq` failed (`None`: it worked).
    pub zmq: Option<String>,
    /// The installed `herd_pytest`, if it can be imported.
    pub herd_pytest: Option<InstalledPlugin>,
}

/// A `herd_pytest` package importable in the suite's Python.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InstalledPlugin {
    /// Its `__version__`.
    pub version: String,
    /// Its `PROTOCOL_VERSION` (`None`: it has none).
    pub protocol: Option<u32>,
    /// Its `__init__.py`.
    pub file: PathBuf,
}

/// Run by the suite's Python: finds pytest and zmq, imports herd_pytest and prints what it found
/// as one JSON line after a marker (so output of the imports cannot be taken for it). The current
/// directory that `-c` puts first on `sys.path` is dropped: a `pytest` script does not have it.
/// pytest and zmq are found, not imported (importing them costs about 0.12 s before anything
/// starts): one that is there but fails as it imports stops the fork server or the first workers
/// with its own traceback.
const PROBE_SCRIPT: &str = r#"
import importlib.util, json, sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
found = {}
for name in ("pytest", "zmq"):
    try:
        spec = importlib.util.find_spec(name)
        found[name] = None if spec is not None else "ModuleNotFoundError: No module named %r" % name
    except Exception as e:
        found[name] = "%s: %s" % (type(e).__name__, e)
try:
    import herd_pytest as h
    found["herd_pytest"] = {"version": str(getattr(h, "__version__", "unknown")),
                            "protocol": getattr(h, "PROTOCOL_VERSION", None), "file": h.__file__}
except Exception:
    found["herd_pytest"] = None
sys.stdout.write("\nherd-probe " + json.dumps(found) + "\n")
"#;

/// Asks `python` (once) what it can import.
pub fn probe(python: &Path) -> Result<Probe, String> {
    let out = Command::new(python)
        .args(["-c", PROBE_SCRIPT])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("herd-probe "));
    match line.map(serde_json::from_str::<Probe>) {
        Some(Ok(probe)) if out.status.success() => Ok(probe),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            Err(format!(
                "{} does not run as the suite's Python ({}): {}",
                python.display(),
                herd_actors::process::describe_status(&out.status),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }
}

/// What the probe means: an error naming the interpreter and what to install, or the plugin copy
/// to load.
pub fn choose_plugin(python: &Path, probe: &Probe) -> Result<Plugin, String> {
    let py = python.display();
    let missing: Vec<(&str, &str, &String)> = [
        ("pytest", "pytest", &probe.pytest),
        ("zmq (pyzmq)", "pyzmq", &probe.zmq),
    ]
    .into_iter()
    .filter_map(|(module, package, error)| error.as_ref().map(|e| (module, package, e)))
    .collect();
    if !missing.is_empty() {
        let modules: Vec<&str> = missing.iter().map(|m| m.0).collect();
        let packages: Vec<&str> = missing.iter().map(|m| m.1).collect();
        // "No module named ..." says nothing more; another error (a broken install) does.
        let errors: Vec<&str> = missing
            .iter()
            .map(|m| m.2.as_str())
            .filter(|e| !e.starts_with("ModuleNotFoundError"))
            .collect();
        let errors = match errors.is_empty() {
            true => String::new(),
            false => format!(" ({})", errors.join("; ")),
        };
        return Err(format!(
            "{py} cannot import {}{errors}: install {} with {py} -m pip install {}",
            modules.join(" or "),
            if packages.len() == 1 { "it" } else { "them" },
            packages.join(" ")
        ));
    }
    let Some(installed) = &probe.herd_pytest else {
        return Ok(Plugin::Embedded);
    };
    if installed.protocol != Some(PROTOCOL_VERSION) {
        return Err(format!(
            "{py} has herd_pytest {} installed ({}), which speaks protocol {}; this herd {} \
             speaks protocol {PROTOCOL_VERSION}: install this herd's plugin with \
             {py} -m pip install herd=={}, or uninstall it with {py} -m pip uninstall herd",
            installed.version,
            installed.file.display(),
            installed
                .protocol
                .map_or_else(|| "unknown".to_string(), |p| p.to_string()),
            PLUGIN_VERSION,
            PLUGIN_VERSION
        ));
    }
    if installed.version != PLUGIN_VERSION {
        tracing::info!(
            installed = %installed.version,
            "{py} has another herd_pytest: the workers load the one embedded in herd {PLUGIN_VERSION}"
        );
        return Ok(Plugin::Embedded);
    }
    Ok(Plugin::Installed {
        file: installed.file.clone(),
    })
}

/// The text of `herd --version`: herd's version, the protocol version, the embedded plugin's
/// version and, when `pytest` is on `PATH`, the plugin its Python would load.
pub fn version_text() -> String {
    let mut text = format!(
        "herd {PLUGIN_VERSION}\nprotocol version {PROTOCOL_VERSION}\n\
         pytest plugin herd_pytest {PLUGIN_VERSION} (embedded)\n"
    );
    let pytest = ["pytest".to_string()];
    if let Ok(Some(python)) = suite_python(&pytest) {
        let py = python.display();
        let line = match probe(&python).map(|p| (choose_plugin(&python, &p), p.herd_pytest)) {
            Ok((Ok(Plugin::Installed { file }), _)) => {
                format!(
                    "pytest on PATH: {py} loads the installed herd_pytest {PLUGIN_VERSION} ({})",
                    file.display()
                )
            }
            Ok((Ok(Plugin::Embedded), Some(other))) => format!(
                "pytest on PATH: {py} has herd_pytest {}; herd's workers load the embedded copy",
                other.version
            ),
            Ok((Ok(Plugin::Embedded), None)) => {
                format!("pytest on PATH: {py} loads the embedded copy")
            }
            Ok((Err(why), _)) | Err(why) => format!("pytest on PATH: {why}"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_of(pytest: Option<&str>, zmq: Option<&str>) -> Probe {
        Probe {
            pytest: pytest.map(str::to_string),
            zmq: zmq.map(str::to_string),
            herd_pytest: None,
        }
    }

    fn installed(version: &str, protocol: Option<u32>) -> Probe {
        Probe {
            herd_pytest: Some(InstalledPlugin {
                version: version.into(),
                protocol,
                file: "/v/lib/site-packages/herd_pytest/__init__.py".into(),
            }),
            ..Probe::default()
        }
    }

    #[test]
    fn a_missing_module_is_named_with_its_install_command() {
        let py = Path::new("/proj/.venv/bin/python");
        let why = choose_plugin(py, &probe_of(None, Some("ModuleNotFoundError: no zmq")));
        assert_eq!(
            why.unwrap_err(),
            "/proj/.venv/bin/python cannot import zmq (pyzmq): \
             install it with /proj/.venv/bin/python -m pip install pyzmq"
        );
        let both = choose_plugin(py, &probe_of(Some("ImportError: E1"), Some("E2"))).unwrap_err();
        assert!(
            both.contains("cannot import pytest or zmq (pyzmq) (ImportError: E1; E2)"),
            "{both}"
        );
        assert!(
            both.ends_with("install them with /proj/.venv/bin/python -m pip install pytest pyzmq")
        );
    }

    #[test]
    fn the_installed_plugin_is_used_only_when_it_is_this_herds() {
        let py = Path::new("/v/bin/python");
        assert_eq!(choose_plugin(py, &Probe::default()), Ok(Plugin::Embedded));
        assert_eq!(
            choose_plugin(py, &installed(PLUGIN_VERSION, Some(PROTOCOL_VERSION))),
            Ok(Plugin::Installed {
                file: "/v/lib/site-packages/herd_pytest/__init__.py".into()
            })
        );
        assert_eq!(
            choose_plugin(py, &installed("0.0.1", Some(PROTOCOL_VERSION))),
            Ok(Plugin::Embedded)
        );
        let refused = choose_plugin(py, &installed("9.0.0", Some(PROTOCOL_VERSION + 1)));
        let refused = refused.unwrap_err();
        assert!(
            refused.contains("herd_pytest 9.0.0 installed")
                && refused.contains(&format!("speaks protocol {}", PROTOCOL_VERSION + 1))
                && refused.contains(&format!("speaks protocol {PROTOCOL_VERSION}")),
            "{refused}"
        );
    }

    #[test]
    fn programs_resolve_as_the_shell_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("plain"), "").unwrap();
        let path = std::env::join_paths([Path::new("/no/such/dir"), &bin]).unwrap();
        let found = resolve_in("tool", Some(&path), dir.path()).unwrap();
        assert_eq!(found, tool);
        assert!(resolve_in("plain", Some(&path), dir.path())
            .unwrap_err()
            .contains("no `plain` on PATH"));
        assert_eq!(resolve_in("bin/tool", None, dir.path()).unwrap(), tool);
        assert!(resolve_in("bin/plain", None, dir.path())
            .unwrap_err()
            .contains("not executable"));
        assert!(resolve_in("/no/such/binary", None, dir.path())
            .unwrap_err()
            .contains("/no/such/binary does not exist"));
    }

    #[test]
    fn a_scripts_interpreter_is_read_from_its_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let direct = script("a", "#!/v/bin/python3.11\nimport sys\n");
        assert_eq!(
            script_interpreter(&direct).unwrap(),
            Some(PathBuf::from("/v/bin/python3.11"))
        );
        let long = script(
            "b",
            "#!/bin/sh\n'''exec' '/a very/long/bin/python' \"$0\" \"$@\"\n' '''\n",
        );
        assert_eq!(
            script_interpreter(&long).unwrap(),
            Some(PathBuf::from("/a very/long/bin/python"))
        );
        let env = script("c", "#!/usr/bin/env -S no-such-python-herd\n");
        assert_eq!(
            script_interpreter(&env).unwrap(),
            Some(PathBuf::from("no-such-python-herd"))
        );
        assert_eq!(script_interpreter(&script("d", "\x7fELF")).unwrap(), None);
    }

    #[test]
    fn an_exec_command_that_cannot_start_is_named() {
        let cmd = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let why = check_exec_command(&cmd("/no/such/binary {}")).unwrap_err();
        assert!(
            why.starts_with("the test command `/no/such/binary {}` cannot start: /no/such/binary does not exist"),
            "{why}"
        );
        assert!(check_exec_command(&cmd("sh {}")).is_ok());
        assert!(check_exec_command(&cmd("{} --flag")).is_ok());
    }
}
