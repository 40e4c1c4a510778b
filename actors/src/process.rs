//! Unix process details: spawning a worker in its own process group, killing the whole group,
//! describing exit statuses, and running shell hooks (cleanse, appliance check).

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How to start one worker process (the runner decides; the Worker actor adds the `HERD_*`
/// environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory (herd's own when `None`).
    pub cwd: Option<PathBuf>,
}

/// Starts `command` as the leader of a new process group, with stdout and stderr piped and
/// stdin closed. The child gets SIGTERM if herd dies (Linux parent-death signal).
pub fn spawn_in_group(command: &WorkerCommand) -> io::Result<Child> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    die_with_parent(cmd.as_std_mut(), Signal::SIGTERM);
    cmd.spawn()
}

/// Makes the child receive `signal` when the thread that spawned it (herd, or a worker) dies, so
/// a killed parent never leaves its child running (Linux; a no-op elsewhere).
///
/// herd gives its workers SIGTERM, which a worker answers by killing its own process group (its
/// tests and their children); herd's exec worker gives each test SIGKILL.
pub fn die_with_parent(cmd: &mut std::process::Command, signal: Signal) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_int) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}

/// Sends `signal` to every process in the group led by `pgid`. A group that is already gone is
/// not an error.
pub fn signal_group(pgid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, %signal, "could not signal process group: {e}"),
    }
}

/// A process group that is SIGKILLed when this guard is dropped, so no test process outlives
/// its worker.
#[derive(Debug)]
pub struct GroupGuard(pub u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

/// A human description of an exit status: `exit code 1`, `signal 9 (SIGKILL)`.
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(name) => format!("signal {sig} ({name})"),
            Err(_) => format!("signal {sig}"),
        },
        None => "unknown status".to_string(),
    }
}

/// The result of a shell hook.
#[derive(Debug, Clone)]
pub struct HookResult {
    /// Whether it exited 0 within its time limit.
    pub ok: bool,
    /// Its status and the end of its output, for messages.
    pub summary: String,
}

/// Runs `sh -c script` in its own process group with `env`, killing it after `limit`.
pub async fn run_hook(script: String, env: Vec<(String, String)>, limit: Duration) -> HookResult {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&script)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return HookResult {
                ok: false,
                summary: format!("could not start `{script}`: {e}"),
            }
        }
    };
    let _group = child.id().map(GroupGuard);
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => HookResult {
            ok: false,
            summary: format!(
                "`{script}` did not finish within {}s; killed",
                limit.as_secs()
            ),
        },
        Ok(Err(e)) => HookResult {
            ok: false,
            summary: format!("`{script}` failed: {e}"),
        },
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            HookResult {
                ok: out.status.success(),
                summary: format!(
                    "`{script}` ended with {}{}",
                    describe_status(&out.status),
                    indent_tail(&text, 10)
                ),
            }
        }
    }
}

pub use herd_core::text::indent_tail;

/// What `/proc/PID/stat` says of a process (Linux): the fields herd reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its state letter: `R`, `S`, `T` (stopped: SIGSTOP, a debugger), `Z` (exited, not yet
    /// waited for)...
    pub state: char,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its process group.
    pub group: u32,
    /// The CPU time (user + system, in clock ticks) it has used.
    pub cpu_ticks: Option<u64>,
}

impl ProcStat {
    /// The state of process `pid`; `None` where it cannot be read (gone, or not Linux).
    pub fn read(pid: u32) -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// The fields of `/proc/PID/stat` text. They follow the command name, which is in
    /// parentheses and may hold anything (spaces, parentheses): the state is the 1st after the
    /// last `)`, then ppid, pgrp, ...; utime is the 12th and stime the 13th.
    pub fn parse(stat: &str) -> Option<ProcStat> {
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let group = fields.next()?.parse().ok()?;
        let mut times = fields.skip(8).map(|f| f.parse::<u64>().ok());
        let cpu_ticks = match (times.next().flatten(), times.next().flatten()) {
            (Some(utime), Some(stime)) => Some(utime + stime),
            _ => None,
        };
        Some(ProcStat {
            state,
            ppid,
            group,
            cpu_ticks,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_stat_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat =
            ProcStat::parse("42 (a (b) c) T 7 40 40 0 -1 4194304 1 2 3 4 15 27 0 0").unwrap();
        assert_eq!((stat.state, stat.ppid, stat.group), ('T', 7, 40));
        assert_eq!(stat.cpu_ticks, Some(42));
        assert_eq!(ProcStat::parse("garbage"), None);
        let me = ProcStat::read(std::process::id()).expect("/proc is readable");
        assert_ne!(me.state, 'T');
        assert!(me.cpu_ticks.is_some());
        assert!(ProcStat::read(u32::MAX).is_none());
    }

    use super::*;

    #[test]
    fn statuses_are_described() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_status(&ExitStatus::from_raw(1 << 8)),
            "exit code 1"
        );
        assert_eq!(
            describe_status(&ExitStatus::from_raw(9)),
            "signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn tails_are_indented() {
        assert_eq!(indent_tail("a\nb\nc\n", 2), "\n    b\n    c");
        assert_eq!(indent_tail("  \n", 2), "");
    }

    #[actix_rt::test]
    async fn hooks_report_status_and_output() {
        let ok = run_hook("echo hi; exit 0".into(), vec![], Duration::from_secs(5)).await;
        assert!(ok.ok, "{}", ok.summary);
        let env = vec![("HERD_APPLIANCE".to_string(), "db1".to_string())];
        let bad = run_hook(
            "echo $HERD_APPLIANCE >&2; exit 3".into(),
            env,
            Duration::from_secs(5),
        )
        .await;
        assert!(!bad.ok);
        assert!(
            bad.summary.contains("exit code 3") && bad.summary.contains("db1"),
            "{}",
            bad.summary
        );
        let slow = run_hook("sleep 5".into(), vec![], Duration::from_millis(200)).await;
        assert!(
            !slow.ok && slow.summary.contains("did not finish"),
            "{}",
            slow.summary
        );
    }
}
