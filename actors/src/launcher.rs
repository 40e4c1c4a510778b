//! How a worker process is started: on this machine (the default), through a command template
//! such as `ssh {host} {cmd}` or `docker run --rm img {cmd}`, or by someone else (`external`:
//! herd prints the command each worker must run and waits for it to join). Whatever starts it,
//! the respawn budget and retirement rules apply alike: for a spawned process its death is the
//! worker's death; an external worker is dead when it falls silent or is disowned.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Debug;
use std::path::PathBuf;

use herd_core::protocol;

use crate::process::WorkerCommand;
use crate::worker::WorkerSlot;

/// What starts one spawn of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// herd runs this command here; that process is the worker (or its proxy: `ssh`).
    Spawn(WorkerCommand),
    /// herd starts nothing: someone runs this command line, wherever, and the worker joins.
    Await(String),
}

/// Turns a worker's command and `HERD_*` environment into what starts it.
pub trait Launcher: Debug + Send + Sync {
    /// How `command` is started for `slot`, with the `HERD_*` variables `env`.
    fn launch(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> Launch;

    /// Whether workers run on other hosts: then a worker that falls silent is taken for lost
    /// (its host or the network is gone) and all its tests, the running one too, are re-queued.
    fn remote(&self) -> bool {
        false
    }

    /// Whether it runs the worker command as it is, on this machine: then its workers may be
    /// forked from the session's fork server instead ([`crate::zygote`]).
    fn local(&self) -> bool {
        false
    }
}

/// Runs the worker command directly, with the `HERD_*` variables in its environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLauncher;

impl Launcher for LocalLauncher {
    fn launch(&self, command: &WorkerCommand, _: &WorkerSlot, env: &[(String, String)]) -> Launch {
        let mut command = command.clone();
        command.env.extend(
            env.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        Launch::Spawn(command)
    }

    fn local(&self) -> bool {
        true
    }
}

/// Runs `sh -c TEMPLATE` with `{cmd}` replaced by the worker command, shell-quoted and prefixed
/// with `env HERD_...=...` (a remote shell does not inherit herd's environment), `{worker}` by
/// the worker id, `{appliance}` by its appliance and `{host}` by its host (`--hosts`).
#[derive(Debug, Clone)]
pub struct TemplateLauncher {
    template: String,
    hosts: HashMap<String, String>,
}

impl TemplateLauncher {
    /// A launcher for `template`, which must contain `{cmd}`.
    pub fn new(template: impl Into<String>) -> Result<TemplateLauncher, String> {
        let template = template.into();
        if !template.contains("{cmd}") {
            return Err(format!("the launcher template {template:?} has no {{cmd}}"));
        }
        Ok(TemplateLauncher {
            template,
            hosts: HashMap::new(),
        })
    }

    /// Places the slots on hosts: `hosts` maps a worker id to the host that fills `{host}`.
    pub fn with_hosts(mut self, hosts: HashMap<String, String>) -> TemplateLauncher {
        self.hosts = hosts;
        self
    }

    /// The shell command line for `command` in `slot`.
    pub fn render(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> String {
        let mut words: Vec<String> = vec!["env".into()];
        words.extend(
            own_env(command)
                .chain(env.iter().cloned())
                .map(|(k, v)| quote(&format!("{k}={v}"))),
        );
        words.push(quote(&command.program.to_string_lossy()));
        words.extend(command.args.iter().map(|a| quote(&a.to_string_lossy())));
        let mut cmd = words.join(" ");
        if let Some(cwd) = &command.cwd {
            cmd = format!("cd {} && {cmd}", quote(&cwd.to_string_lossy()));
        }
        let host = self.hosts.get(&slot.id).map(String::as_str).unwrap_or("");
        self.template
            .replace("{worker}", &slot.id)
            .replace("{appliance}", slot.appliance.as_deref().unwrap_or(""))
            .replace("{host}", host)
            .replace("{cmd}", &cmd)
    }
}

impl Launcher for TemplateLauncher {
    fn launch(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> Launch {
        Launch::Spawn(WorkerCommand {
            program: PathBuf::from("sh"),
            args: vec!["-c".into(), self.render(command, slot, env).into()],
            env: Vec::new(),
            cwd: None,
        })
    }

    fn remote(&self) -> bool {
        true
    }
}

/// Starts nothing: for each spawn it gives the `herd worker --connect ...` command line that
/// joins the slot, to run on any host (by hand, a CI matrix, a Kubernetes job). A worker that
/// dies or falls silent is not restarted by herd: its tests are re-queued and, if the respawn
/// budget allows, herd prints the command for the next incarnation and waits for it; a slot
/// nobody joins within the start timeout is retired.
#[derive(Debug, Clone)]
pub struct ExternalLauncher {
    herd: String,
    token_file: String,
    runner_args: Vec<String>,
}

impl ExternalLauncher {
    /// `herd`: the program to print (`herd`); `token_file`: the path printed for
    /// `--token-file`; `runner_args`: what follows in the `herd worker` line (`--list CMD --
    /// CMD {}`, or `-- pytest ARGS`).
    pub fn new(
        herd: impl Into<String>,
        token_file: impl Into<String>,
        runner_args: Vec<String>,
    ) -> ExternalLauncher {
        ExternalLauncher {
            herd: herd.into(),
            token_file: token_file.into(),
            runner_args,
        }
    }

    /// The command line that joins `slot`, from the `HERD_*` variables herd would give it (in
    /// `env`, or in the command's own environment).
    pub fn render(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> String {
        let vars: Vec<(String, String)> = env.iter().cloned().chain(own_env(command)).collect();
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut words = vec![
            quote(&self.herd),
            "worker".to_string(),
            "--connect".to_string(),
            quote(var(protocol::ENV_ENDPOINT).unwrap_or("")),
            "--token-file".to_string(),
            quote(&self.token_file),
            "--worker".to_string(),
            quote(&slot.id),
            "--incarnation".to_string(),
            var(protocol::ENV_INCARNATION).unwrap_or("1").to_string(),
        ];
        if let Some(appliance) = &slot.appliance {
            words.extend(["--appliance".to_string(), quote(appliance)]);
        }
        if let Some(cmd) = var(protocol::ENV_FINGERPRINT_CMD) {
            words.extend(["--fingerprint".to_string(), quote(cmd)]);
        }
        words.extend(self.runner_args.iter().map(|a| quote(a)));
        words.join(" ")
    }
}

impl Launcher for ExternalLauncher {
    fn launch(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> Launch {
        Launch::Await(self.render(command, slot, env))
    }

    fn remote(&self) -> bool {
        true
    }
}

/// A word for a POSIX shell, quoted where needed (NUL bytes, which no shell word can hold, are
/// dropped).
pub(crate) fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.replace('\0', ""))
}

/// The command's own environment, as text.
fn own_env(command: &WorkerCommand) -> impl Iterator<Item = (String, String)> + '_ {
    command.env.iter().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> WorkerCommand {
        WorkerCommand {
            program: PathBuf::from("/usr/bin/herd"),
            args: vec!["worker".into(), "--list".into(), "ls 'a b'".into()],
            env: vec![("PYTHONPATH".into(), "/tmp/p".into())],
            cwd: None,
        }
    }

    fn slot() -> WorkerSlot {
        WorkerSlot {
            id: "w2".into(),
            appliance: Some("db-2".into()),
        }
    }

    #[test]
    fn local_launch_adds_the_environment() {
        let launched = LocalLauncher.launch(
            &command(),
            &slot(),
            &[("HERD_WORKER_ID".into(), "w2".into())],
        );
        let Launch::Spawn(launched) = launched else {
            panic!("a local launch spawns")
        };
        assert_eq!(launched.program, PathBuf::from("/usr/bin/herd"));
        assert_eq!(launched.env.len(), 2);
        assert!(!LocalLauncher.remote());
    }

    #[test]
    fn templates_get_a_quoted_command_with_its_environment() {
        assert!(TemplateLauncher::new("ssh host")
            .unwrap_err()
            .contains("{cmd}"));
        let launcher = TemplateLauncher::new("ssh {appliance} -- {cmd} # {worker}").unwrap();
        let line = launcher.render(
            &command(),
            &slot(),
            &[("HERD_TOKEN".into(), "s3cr3t".into())],
        );
        assert_eq!(
            line,
            r#"ssh db-2 -- env 'PYTHONPATH=/tmp/p' 'HERD_TOKEN=s3cr3t' /usr/bin/herd worker --list "ls 'a b'" # w2"#
        );
        // The rendered line is one shell command that a shell splits back into the same words.
        let words = shlex::split(
            line.trim_start_matches("ssh db-2 -- ")
                .trim_end_matches(" # w2"),
        )
        .unwrap();
        assert_eq!(
            words,
            [
                "env",
                "PYTHONPATH=/tmp/p",
                "HERD_TOKEN=s3cr3t",
                "/usr/bin/herd",
                "worker",
                "--list",
                "ls 'a b'"
            ]
        );
        let Launch::Spawn(launched) = launcher.launch(&command(), &slot(), &[]) else {
            panic!("a template launch spawns")
        };
        assert_eq!(
            (launched.program.to_str(), launched.args[0].to_str()),
            (Some("sh"), Some("-c"))
        );
    }

    #[test]
    fn hosts_fill_the_template() {
        let hosts = HashMap::from([("w2".to_string(), "node-b".to_string())]);
        let launcher = TemplateLauncher::new("ssh {host} {cmd}")
            .unwrap()
            .with_hosts(hosts);
        let line = launcher.render(&command(), &slot(), &[]);
        assert!(line.starts_with("ssh node-b env "), "{line}");
        assert!(launcher.remote());
    }

    #[test]
    fn external_workers_get_the_exact_command() {
        let launcher = ExternalLauncher::new(
            "/opt/herd",
            "/etc/herd token",
            vec!["--".into(), "pytest".into(), "tests/".into()],
        );
        let env = [
            (
                protocol::ENV_ENDPOINT.to_string(),
                "tcp://10.0.0.1:5555".to_string(),
            ),
            (protocol::ENV_INCARNATION.to_string(), "2".to_string()),
            (
                protocol::ENV_FINGERPRINT_CMD.to_string(),
                "git rev-parse HEAD".to_string(),
            ),
        ];
        let Launch::Await(line) = launcher.launch(&command(), &slot(), &env) else {
            panic!("an external launch awaits")
        };
        assert_eq!(
            line,
            "/opt/herd worker --connect tcp://10.0.0.1:5555 --token-file '/etc/herd token' \
             --worker w2 --incarnation 2 --appliance db-2 --fingerprint 'git rev-parse HEAD' \
             -- pytest tests/"
        );
    }
}
