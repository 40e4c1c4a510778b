//! How a worker process is started: on this machine (the default), or through a command
//! template such as `ssh {appliance} {cmd}` or `docker run --rm img {cmd}`. Whatever starts it,
//! the process herd spawns is the one it supervises: its death is the worker's death, and the
//! respawn budget and retirement rules apply alike.

use std::ffi::OsString;
use std::fmt::Debug;
use std::path::PathBuf;

use crate::process::WorkerCommand;
use crate::worker::WorkerSlot;

/// Turns a worker's command and `HERD_*` environment into what herd runs locally.
pub trait Launcher: Debug + Send + Sync {
    /// The local command (with its environment) that starts `command` for `slot`.
    fn launch(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> WorkerCommand;
}

/// Runs the worker command directly, with the `HERD_*` variables in its environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLauncher;

impl Launcher for LocalLauncher {
    fn launch(
        &self,
        command: &WorkerCommand,
        _: &WorkerSlot,
        env: &[(String, String)],
    ) -> WorkerCommand {
        let mut command = command.clone();
        command.env.extend(
            env.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        command
    }
}

/// Runs `sh -c TEMPLATE` with `{cmd}` replaced by the worker command, shell-quoted and prefixed
/// with `env HERD_...=...` (a remote shell does not inherit herd's environment), `{worker}` by
/// the worker id and `{appliance}` by its appliance.
#[derive(Debug, Clone)]
pub struct TemplateLauncher {
    template: String,
}

impl TemplateLauncher {
    /// A launcher for `template`, which must contain `{cmd}`.
    pub fn new(template: impl Into<String>) -> Result<TemplateLauncher, String> {
        let template = template.into();
        if !template.contains("{cmd}") {
            return Err(format!("the launcher template {template:?} has no {{cmd}}"));
        }
        Ok(TemplateLauncher { template })
    }

    /// The shell command line for `command` in `slot`.
    pub fn render(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> String {
        let quote = |s: &str| {
            shlex::try_quote(s)
                .map(|q| q.into_owned())
                .unwrap_or_else(|_| s.replace('\0', ""))
        };
        let mut words: Vec<String> = vec!["env".into()];
        let pairs = command.env.iter().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        });
        words.extend(
            pairs
                .chain(env.iter().cloned())
                .map(|(k, v)| quote(&format!("{k}={v}"))),
        );
        words.push(quote(&command.program.to_string_lossy()));
        words.extend(command.args.iter().map(|a| quote(&a.to_string_lossy())));
        let mut cmd = words.join(" ");
        if let Some(cwd) = &command.cwd {
            cmd = format!("cd {} && {cmd}", quote(&cwd.to_string_lossy()));
        }
        self.template
            .replace("{worker}", &slot.id)
            .replace("{appliance}", slot.appliance.as_deref().unwrap_or(""))
            .replace("{cmd}", &cmd)
    }
}

impl Launcher for TemplateLauncher {
    fn launch(
        &self,
        command: &WorkerCommand,
        slot: &WorkerSlot,
        env: &[(String, String)],
    ) -> WorkerCommand {
        WorkerCommand {
            program: PathBuf::from("sh"),
            args: vec!["-c".into(), self.render(command, slot, env).into()],
            env: Vec::new(),
            cwd: None,
        }
    }
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
        assert_eq!(launched.program, PathBuf::from("/usr/bin/herd"));
        assert_eq!(launched.env.len(), 2);
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
        let launched = launcher.launch(&command(), &slot(), &[]);
        assert_eq!(
            (launched.program.to_str(), launched.args[0].to_str()),
            (Some("sh"), Some("-c"))
        );
    }
}
