//! The session's fork server (zygote): one worker process that loads the suite and collects it
//! once, then forks every worker incarnation on request (see `python/herd_pytest/zygote.py`).
//!
//! ```text
//!  herd --fork {env} + 2 fds (stdout, stderr)--> zygote --fork--> A --fork--> B (setsid)
//!  herd <--{"pid": B}---------------------------- zygote <-- B's pid (A exits at once)
//!  B is re-parented to herd (a child subreaper): herd waits on it, kills its group, as for
//!  any worker it spawned itself. The zygote only forks.
//! ```
//!
//! Where herd cannot be a child subreaper (macOS; `HERD_FORK_SERVER_MODE=parent` on Linux, for
//! the tests), the zygote is its workers' parent ([`ForkMode::Parent`]): it forks each worker
//! once, reaps it on SIGCHLD and writes `{"pid", "status"}` (the raw wait status) to an *exits
//! pipe* herd gave it; herd still owns the worker's process group (it kills it, reads its
//! output), only the exit status comes through the zygote. If the zygote dies first, its
//! orphaned workers are watched until they are gone, with an unknown status.
//!
//! The socket speaks JSON lines: the zygote says `{"ready": true}` once it has collected (or
//! `{"unsafe": "why"}` and exits); herd sends `{"fork": {"env": {...}}}` with the write ends of
//! two pipes (SCM_RIGHTS) and gets `{"pid": N}` or `{"error": "why"}`. If the zygote dies,
//! fails a fork or is found unsafe, herd says so once and starts workers the plain way.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Recipient;
use herd_core::events::Event;
use herd_core::fork::{fallback_notice, Fallback};
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::messages::Publish;
use crate::process::{describe_status, die_with_parent, indent_tail, signal_group, WorkerCommand};

/// The zygote's environment variable naming the unix socket it connects to.
pub const ENV_ZYGOTE_SOCKET: &str = "HERD_ZYGOTE_SOCKET";
/// The zygote's environment variable naming the file descriptor of its exits pipe
/// ([`ForkMode::Parent`]).
pub const ENV_ZYGOTE_EXITS: &str = "HERD_ZYGOTE_EXITS";
/// How often a worker that outlived its parent zygote is looked for.
const ORPHAN_POLL: Duration = Duration::from_millis(50);

/// How long one fork may take to be answered.
const FORK_PATIENCE: Duration = Duration::from_secs(30);
/// How much of the zygote's output is kept for messages.
const TAIL_BYTES: usize = 16 * 1024;

/// Whether this platform can fork workers from a zygote (a unix: Linux with a child subreaper,
/// elsewhere with the zygote as its workers' parent).
pub fn supported() -> bool {
    cfg!(unix)
}

/// Where a forked worker's exit status comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkMode {
    /// herd is a child subreaper: the worker, double-forked, becomes herd's child (Linux).
    Subreaper,
    /// The zygote is the worker's parent and tells herd its exit status (macOS).
    Parent,
}

/// The environment variable that chooses [`ForkMode::Parent`] on Linux (`parent`), so the way
/// macOS forks is tested here too.
pub const ENV_FORK_MODE: &str = "HERD_FORK_SERVER_MODE";

impl ForkMode {
    /// This platform's mode (on Linux, `HERD_FORK_SERVER_MODE=parent` chooses the parent mode).
    pub fn here() -> ForkMode {
        let parent = std::env::var(ENV_FORK_MODE).is_ok_and(|v| v == "parent");
        if cfg!(target_os = "linux") && !parent {
            ForkMode::Subreaper
        } else {
            ForkMode::Parent
        }
    }
}

/// A worker process forked from the zygote: its pid (the leader of its own process group) and
/// the read ends of its stdout and stderr.
#[derive(Debug)]
pub struct Forked {
    /// Its pid: a child of herd ([`ForkMode::Subreaper`]) or of the zygote
    /// ([`ForkMode::Parent`]).
    pub pid: u32,
    /// Its stdout.
    pub stdout: OwnedFd,
    /// Its stderr.
    pub stderr: OwnedFd,
}

enum Phase {
    Starting,
    Ready {
        stream: UnixStream,
        reader: BufReader<UnixStream>,
    },
    Off,
}

struct Shared {
    phase: Phase,
    /// The fallback was said (or the session ended): nothing more is said.
    said: bool,
}

/// The fork server of a session, shared by its workers.
pub struct Zygote {
    shared: Mutex<Shared>,
    changed: Condvar,
    /// No more forks (read without the lock, which a fork in flight holds).
    off: AtomicBool,
    pid: u32,
    start_timeout: Duration,
    usage_exit: Option<i32>,
    notices: Recipient<Publish>,
    tail: Arc<Mutex<Vec<u8>>>,
    /// In [`ForkMode::Parent`]: the exit statuses the zygote reports.
    exits: Option<Arc<Exits>>,
}

impl fmt::Debug for Zygote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zygote").field("pid", &self.pid).finish()
    }
}

/// How to start a zygote.
#[derive(Debug, Clone)]
pub struct ZygoteSpec {
    /// The worker command (the zygote is a worker that forks instead of working).
    pub command: WorkerCommand,
    /// The environment every worker shares (`HERD_ENDPOINT`, `HERD_TOKEN`, ...).
    pub env: Vec<(String, String)>,
    /// A private directory for its socket.
    pub dir: PathBuf,
    /// Where its output goes (else only its end is kept, for messages).
    pub log: Option<PathBuf>,
    /// Longest it may take to load and collect the suite.
    pub start_timeout: Duration,
    /// The exit code by which it says the command line is wrong: then herd falls back without
    /// a word (the first plain worker reports the usage error, as without a fork server).
    pub usage_exit: Option<i32>,
}

impl Zygote {
    /// Starts a zygote; `None` (said through `notices`) when it cannot be started.
    pub fn start(spec: ZygoteSpec, notices: Recipient<Publish>) -> Option<Arc<Zygote>> {
        match Zygote::launch(&spec, ForkMode::here()) {
            Ok((listener, child, output, exits)) => {
                let zygote = Arc::new(Zygote {
                    shared: Mutex::new(Shared {
                        phase: Phase::Starting,
                        said: false,
                    }),
                    changed: Condvar::new(),
                    off: AtomicBool::new(false),
                    pid: child.id(),
                    start_timeout: spec.start_timeout,
                    usage_exit: spec.usage_exit,
                    notices,
                    tail: Arc::new(Mutex::new(Vec::new())),
                    exits,
                });
                keep_output(output, spec.log.clone(), zygote.tail.clone());
                let watched = zygote.clone();
                let started = std::thread::Builder::new()
                    .name("herd-zygote".into())
                    .spawn(move || watched.watch(listener, child));
                if let Err(e) = started {
                    zygote.fall_back(Fallback::NotStarted(e.to_string()));
                }
                tracing::info!(pid = zygote.pid, "fork server started");
                Some(zygote)
            }
            Err(e) => {
                let text = fallback_notice(&Fallback::NotStarted(e.to_string()));
                notices.do_send(Publish(Event::Notice { worker: None, text }));
                None
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn launch(
        spec: &ZygoteSpec,
        mode: ForkMode,
    ) -> io::Result<(UnixListener, Child, std::fs::File, Option<Arc<Exits>>)> {
        if mode == ForkMode::Subreaper {
            become_subreaper()?;
        }
        let path = spec.dir.join("zygote.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        let (reader, writer) = pipe()?;
        let mut cmd = Command::new(&spec.command.program);
        cmd.args(&spec.command.args)
            .envs(spec.command.env.iter().map(|(k, v)| (k, v)))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(ENV_ZYGOTE_SOCKET, &path)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        if let Some(cwd) = &spec.command.cwd {
            cmd.current_dir(cwd);
        }
        die_with_parent(&mut cmd, Signal::SIGTERM);
        let exits_pipe = match mode {
            ForkMode::Subreaper => None,
            ForkMode::Parent => Some(pipe()?),
        };
        if let Some((_, write_end)) = &exits_pipe {
            let fd = write_end.as_raw_fd();
            cmd.env(ENV_ZYGOTE_EXITS, fd.to_string());
            // SAFETY: between fork and exec only fcntl runs (async-signal-safe): the zygote
            // alone inherits the write end (it is closed on exec everywhere else).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn()?;
        drop(cmd);
        let exits = exits_pipe.map(|(read_end, write_end)| {
            drop(write_end); // the zygote holds it: its death closes the pipe
            Exits::watch(read_end)
        });
        Ok((listener, child, reader.into(), exits))
    }

    /// Waits for forked worker `pid`'s exit status: as its parent (herd is a subreaper), or
    /// through the zygote (it is the worker's parent).
    pub fn wait(&self, pid: u32) -> oneshot::Receiver<io::Result<ExitStatus>> {
        match &self.exits {
            Some(exits) => exits.wait(pid),
            None => wait_forked(pid),
        }
    }

    /// Whether forks may still be asked for (starting or ready).
    pub fn alive(&self) -> bool {
        !self.off.load(Ordering::SeqCst)
    }

    /// Forks a worker with the `HERD_*` environment `env`, waiting for the zygote to be ready;
    /// `None` when the session starts its workers the plain way (said once).
    pub fn fork(&self, env: &[(String, String)]) -> Option<Forked> {
        let deadline = Instant::now() + self.start_timeout;
        let mut shared = self.lock();
        while matches!(shared.phase, Phase::Starting) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let secs = self.start_timeout.as_secs_f64();
                self.off(
                    &mut shared,
                    Fallback::NotReady(format!("not ready within {secs}s")),
                );
                return None;
            }
            shared = self
                .changed
                .wait_timeout(shared, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let Phase::Ready { stream, reader } = &mut shared.phase else {
            return None;
        };
        match request_fork(stream, reader, env) {
            Ok(forked) => Some(forked),
            Err(e) => {
                self.off(&mut shared, Fallback::Died(format!("a fork failed: {e}")));
                None
            }
        }
    }

    /// Ends the zygote quietly (the session is over).
    pub fn stop(&self) {
        let mut shared = self.lock();
        shared.said = true;
        shared.phase = Phase::Off;
        self.off.store(true, Ordering::SeqCst);
        signal_group(self.pid, Signal::SIGKILL);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fall_back(&self, why: Fallback) {
        let mut shared = self.lock();
        self.off(&mut shared, why);
    }

    /// No more forks: the zygote is killed and, the first time, herd says why.
    fn off(&self, shared: &mut Shared, why: Fallback) {
        shared.phase = Phase::Off;
        self.off.store(true, Ordering::SeqCst);
        signal_group(self.pid, Signal::SIGKILL);
        self.changed.notify_all();
        if !std::mem::replace(&mut shared.said, true) {
            let text = fallback_notice(&why);
            tracing::info!("{text}");
            self.notices
                .do_send(Publish(Event::Notice { worker: None, text }));
        }
    }

    /// The zygote's life: its connection, its first word (ready or unsafe), then its exit.
    fn watch(self: Arc<Self>, listener: UnixListener, mut child: Child) {
        match self.connect(&listener, &mut child) {
            Ok(Some((stream, reader))) => {
                let mut shared = self.lock();
                if matches!(shared.phase, Phase::Starting) {
                    shared.phase = Phase::Ready { stream, reader };
                    self.changed.notify_all();
                }
            }
            Ok(None) => {}
            Err(why) => self.fall_back(why),
        }
        drop(listener);
        let status = child.wait();
        let status = status.map_or_else(|e| e.to_string(), |s| describe_status(&s));
        self.fall_back(Fallback::Died(status));
    }

    /// Waits for the zygote to connect and say it is ready (`Ok(None)`: it said it is unsafe).
    fn connect(
        &self,
        listener: &UnixListener,
        child: &mut Child,
    ) -> Result<Option<(UnixStream, BufReader<UnixStream>)>, Fallback> {
        let deadline = Instant::now() + self.start_timeout;
        let not_ready = |e: String| Fallback::NotReady(format!("{e}{}", self.output_tail()));
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(not_ready(e.to_string())),
            }
            if let Ok(Some(status)) = child.try_wait() {
                if status.code().is_some() && status.code() == self.usage_exit {
                    tracing::info!("the fork server says the command line is wrong");
                    self.lock().said = true;
                    return Err(Fallback::NotReady(describe_status(&status)));
                }
                std::thread::sleep(Duration::from_millis(50)); // its last output
                return Err(not_ready(describe_status(&status)));
            }
            if !self.alive() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                let secs = self.start_timeout.as_secs_f64();
                return Err(not_ready(format!("not ready within {secs}s")));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let io_error = |e: io::Error| not_ready(e.to_string());
        stream.set_nonblocking(false).map_err(io_error)?;
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(io_error)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(io_error)?);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(io_error)?;
        let said: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(why) = said.get("unsafe").and_then(|v| v.as_str()) {
            return Err(Fallback::Unsafe(why.to_string()));
        }
        if said.get("ready").and_then(|v| v.as_bool()) != Some(true) {
            let what = if line.is_empty() {
                "nothing"
            } else {
                line.trim()
            };
            return Err(not_ready(format!("it said {what:?}")));
        }
        stream
            .set_read_timeout(Some(FORK_PATIENCE))
            .map_err(io_error)?;
        tracing::info!(pid = self.pid, "fork server ready");
        Ok(Some((stream, reader)))
    }

    fn output_tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        indent_tail(&String::from_utf8_lossy(&tail), 10)
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        signal_group(self.pid, Signal::SIGKILL);
    }
}

/// Sends one fork request with the write ends of two new pipes and reads the zygote's answer.
fn request_fork(
    stream: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    env: &[(String, String)],
) -> Result<Forked, String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let (out_r, out_w) = pipe().map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe().map_err(|e| e.to_string())?;
    let env: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut line = serde_json::to_vec(&serde_json::json!({ "fork": { "env": env } }))
        .map_err(|e| e.to_string())?;
    line.push(b'\n');
    let fds = [out_w.as_raw_fd(), err_w.as_raw_fd()];
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(&line)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("cannot send the request: {e}"))?;
    stream
        .write_all(&line[sent..])
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // Only the worker holds the write ends now: its death closes its output.
    drop((out_w, err_w));
    let mut reply = String::new();
    match reader.read_line(&mut reply) {
        Ok(0) => return Err("the fork server closed its socket".into()),
        Ok(_) => {}
        Err(e) => return Err(format!("no answer: {e}")),
    }
    let reply: serde_json::Value =
        serde_json::from_str(&reply).map_err(|e| format!("a garbled answer: {e}"))?;
    let pid = reply.get("pid").and_then(|p| p.as_u64()).map(u32::try_from);
    match (pid, reply.get("error").and_then(|e| e.as_str())) {
        (Some(Ok(pid)), _) if pid > 1 => Ok(Forked {
            pid,
            stdout: out_r,
            stderr: err_r,
        }),
        (_, Some(error)) => Err(error.to_string()),
        _ => Err(format!("an answer without a pid: {reply}")),
    }
}

/// Copies the zygote's output to its log (if any) and keeps its end for messages.
fn keep_output(mut output: std::fs::File, log: Option<PathBuf>, tail: Arc<Mutex<Vec<u8>>>) {
    let mut file = log.and_then(|path| open_log(&path));
    let _ = std::thread::Builder::new()
        .name("herd-zygote-output".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                if let Some(file) = &mut file {
                    let _ = file.write_all(&buf[..n]);
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(TAIL_BYTES);
                tail.drain(..excess);
            }
        });
}

fn open_log(path: &Path) -> Option<std::fs::File> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::File::create(path).ok()
}

type StatusSender = oneshot::Sender<io::Result<ExitStatus>>;

/// The exit statuses a parent zygote reports ([`ForkMode::Parent`]), for the workers waiting.
pub struct Exits {
    state: Mutex<ExitsState>,
}

#[derive(Default)]
struct ExitsState {
    /// Who waits for which pid.
    waiting: HashMap<u32, StatusSender>,
    /// Statuses that came before anyone waited (raw wait statuses).
    early: HashMap<u32, i32>,
    /// The zygote is gone: nothing more will be reported.
    closed: bool,
}

impl Exits {
    /// Reads the exits pipe on a thread of its own.
    fn watch(read_end: OwnedFd) -> Arc<Exits> {
        let exits = Arc::new(Exits {
            state: Mutex::new(ExitsState::default()),
        });
        let reading = exits.clone();
        let started = std::thread::Builder::new()
            .name("herd-zygote-exits".into())
            .spawn(move || reading.read(std::fs::File::from(read_end)));
        if let Err(e) = started {
            tracing::error!("cannot read the fork server's exits: {e}");
            exits.close();
        }
        exits
    }

    fn lock(&self) -> MutexGuard<'_, ExitsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each `{"pid", "status"}` line to its waiter, until the zygote closes the pipe.
    fn read(&self, pipe: std::fs::File) {
        use std::os::unix::process::ExitStatusExt;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let said: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let pid = said["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
            let status = said["status"].as_i64().and_then(|s| i32::try_from(s).ok());
            let (Some(pid), Some(status)) = (pid, status) else {
                tracing::warn!(line, "the fork server reported an exit herd cannot read");
                continue;
            };
            let mut state = self.lock();
            match state.waiting.remove(&pid) {
                Some(tx) => drop(tx.send(Ok(ExitStatus::from_raw(status)))),
                None => drop(state.early.insert(pid, status)),
            }
        }
        self.close();
    }

    /// The zygote is gone: whoever waits now watches for the worker's end itself.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (pid, tx) in state.waiting.drain() {
            watch_orphan(pid, tx);
        }
    }

    /// The exit status of worker `pid`, when the zygote reports it.
    fn wait(&self, pid: u32) -> oneshot::Receiver<io::Result<ExitStatus>> {
        use std::os::unix::process::ExitStatusExt;
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        if let Some(status) = state.early.remove(&pid) {
            let _ = tx.send(Ok(ExitStatus::from_raw(status)));
        } else if state.closed {
            watch_orphan(pid, tx);
        } else {
            state.waiting.insert(pid, tx);
        }
        rx
    }
}

/// Watches (on a thread of its own) for the end of worker `pid`, whose parent zygote died:
/// nobody can give its exit status any more.
fn watch_orphan(pid: u32, tx: StatusSender) {
    let watch = move || {
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            let _ = tx.send(Err(io::Error::other("pid out of range")));
            return;
        };
        // SAFETY: kill with signal 0 only checks that the process exists. An exited one
        // that its new parent does not reap (a zombie) is gone too.
        let exited = || crate::process::ProcStat::read(pid).is_some_and(|p| p.state == 'Z');
        while unsafe { libc::kill(raw, 0) } == 0 && !exited() {
            std::thread::sleep(ORPHAN_POLL);
        }
        let _ = tx.send(Err(io::Error::other(
            "its exit status is unknown: its fork server died before it",
        )));
    };
    if let Err(e) = std::thread::Builder::new()
        .name("herd-orphan-watch".into())
        .spawn(watch)
    {
        tracing::error!(pid, "cannot watch a forked worker: {e}");
    }
}

/// Waits (on a thread of its own) for forked worker `pid`, a child of herd once the zygote's
/// intermediate process is gone, and gives its exit status.
pub fn wait_forked(pid: u32) -> oneshot::Receiver<io::Result<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let (tx, rx) = oneshot::channel();
    let waiter = move || {
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            let _ = tx.send(Err(io::Error::other("pid out of range")));
            return;
        };
        let mut status = 0;
        let result = loop {
            // SAFETY: waitpid writes only `status`.
            let r = unsafe { libc::waitpid(raw, &mut status, 0) };
            if r == raw {
                break Ok(ExitStatus::from_raw(status));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                break Err(e);
            }
        };
        let _ = tx.send(result);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("herd-wait".into())
        .spawn(waiter)
    {
        tracing::error!(pid, "cannot wait for a forked worker: {e}");
    }
    rx
}

/// A new pipe (read end, write end), both closed on exec: only the process they are given to
/// holds them.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pipe2 writes two new file descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: pipe writes two new file descriptors into `fds`; each is then marked
        // close-on-exec (no pipe2 here).
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes herd the reaper of its orphaned descendants, so a worker forked by the zygote's
/// intermediate process becomes herd's child (Linux).
fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // What tests leave behind is now ours to reap.
        crate::orphans::start_reaping();
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no child subreaper on this platform",
    ))
}

/// Starts the fork server of a session whose workers share `settings`: the worker command with
/// the environment every worker shares; `None` (said through `notices`) when it cannot start.
pub fn start_for(
    settings: &crate::worker::WorkerSettings,
    notices: Recipient<Publish>,
) -> Option<Arc<Zygote>> {
    use herd_core::protocol;
    let Some(dir) = settings.status_dir.clone() else {
        let text = fallback_notice(&Fallback::NotStarted("no private directory".into()));
        notices.do_send(Publish(Event::Notice { worker: None, text }));
        return None;
    };
    let mut env = vec![
        (
            protocol::ENV_ENDPOINT.to_string(),
            settings.endpoint.clone(),
        ),
        (
            protocol::ENV_TOKEN.to_string(),
            settings.token.as_str().to_string(),
        ),
    ];
    if let Some(xdist) = &settings.xdist {
        // The variables every worker shares, so a conftest file sees them as it loads.
        env.extend(
            xdist
                .env("")
                .into_iter()
                .filter(|(k, _)| k != crate::worker::ENV_XDIST_WORKER),
        );
    }
    let spec = ZygoteSpec {
        command: settings.command.clone(),
        env,
        dir,
        log: settings.log_dir.as_ref().map(|d| d.join("zygote.log")),
        start_timeout: settings.start_timeout,
        usage_exit: settings.usage_exit,
    };
    Zygote::start(spec, notices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;

    /// Keeps every notice it is sent.
    struct Notices(Arc<Mutex<Vec<String>>>);

    impl Actor for Notices {
        type Context = Context<Self>;
    }

    impl Handler<Publish> for Notices {
        type Result = ();

        fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
            if let Event::Notice { text, .. } = msg.0 {
                self.0.lock().unwrap().push(text);
            }
        }
    }

    fn spec(script: &str, dir: &Path, usage_exit: Option<i32>) -> ZygoteSpec {
        ZygoteSpec {
            command: WorkerCommand {
                program: "sh".into(),
                args: vec!["-c".into(), script.into()],
                env: Vec::new(),
                cwd: None,
            },
            env: Vec::new(),
            dir: dir.to_path_buf(),
            log: None,
            start_timeout: Duration::from_secs(10),
            usage_exit,
        }
    }

    /// Asks `zygote` for a fork off the actix thread (a fork waits for the zygote).
    async fn fork(zygote: Arc<Zygote>) -> Option<Forked> {
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || tx.send(zygote.fork(&[])));
        rx.await.unwrap()
    }

    #[actix_rt::test]
    async fn a_zygote_that_ends_before_it_is_ready_is_a_fallback_said_once() {
        if !supported() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let said = Arc::new(Mutex::new(Vec::new()));
        let notices = Notices(said.clone()).start().recipient();
        let zygote = Zygote::start(spec("echo boom; exit 3", dir.path(), None), notices).unwrap();
        assert!(fork(zygote.clone()).await.is_none());
        assert!(fork(zygote.clone()).await.is_none());
        assert!(!zygote.alive());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let said = said.lock().unwrap().clone();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("ended before it was ready")
                && said[0].contains("exit code 3")
                && said[0].contains("boom"),
            "{said:?}"
        );
    }

    #[actix_rt::test]
    async fn a_zygote_that_says_the_command_line_is_wrong_falls_back_quietly() {
        if !supported() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let said = Arc::new(Mutex::new(Vec::new()));
        let notices = Notices(said.clone()).start().recipient();
        let zygote = Zygote::start(spec("exit 4", dir.path(), Some(4)), notices).unwrap();
        assert!(fork(zygote).await.is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(said.lock().unwrap().is_empty());
    }

    #[actix_rt::test]
    async fn a_forked_pid_is_waited_on_for_its_exit_status() {
        // The waiter reaps it, as it reaps a forked worker.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
        let status = wait_forked(child.id()).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(5));
    }
}
