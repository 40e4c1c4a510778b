//! The Worker: one per slot. It owns its child process (in its own process group, output captured
//! to a per-worker log with the last lines kept for crash reports), the tests the process holds,
//! and its restart policy: when the process dies it reports the running test, returns the rest,
//! and either retires the slot or asks the Supervisor for a respawn.
//!
//! ```text
//!  spawn -> Starting --hello--> Collecting --collection--> Checking --ok--> Working --shutdown--> Stopping -> exit
//!              |                    |  (mismatch: kill)          |  (crash, timeout, garbage: kill)
//!              +--------------------+----------------------------+--> exit -> Respawning
//!  Respawning --(retire rule or appliance check fails)--> Retired
//!  Respawning --(Supervisor grants)--> spawn        Respawning --(denied, draining)--> Done
//! ```

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use herd_core::collection::{CollectScope, Part, Reference};
use herd_core::events::Event;
use herd_core::faults::{FaultDice, FaultKind, FaultPlan, SelfFaults};
use herd_core::grouping::module_of;
use herd_core::liveness::{Liveness, Watch};
use herd_core::outcome::{Outcome, Phase, TestRecord, Verdict};
use herd_core::protocol::{self, CollectionError, CoordinatorMessage, Token, WorkerMessage};
use herd_core::restart::RetirePolicy;
use herd_core::slot::death::{plan_death, Death, KillReason, Next};
use herd_core::slot::steal::{Handshake, Step};
use herd_core::untrusted;
use herd_core::TestId;
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::launcher::{Launch, Launcher};
use crate::messages::*;
use crate::output::WorkerLog;
use crate::process::{
    describe_status, indent_tail, run_hook, signal_group, spawn_in_group, GroupGuard, WorkerCommand,
};
use crate::reporter::Reporter;
use crate::scheduler::Scheduler;
use crate::supervisor::Supervisor;
use crate::transport::Transport;

/// A worker slot: its id and the appliance it owns exclusively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSlot {
    /// Worker id (`w1`, `w2`, ...).
    pub id: String,
    /// The appliance (a server URL, a database, a device), if any.
    pub appliance: Option<String>,
}

/// Settings shared by every worker of a session.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How to start a worker process.
    pub command: WorkerCommand,
    /// What starts it (on this machine by default).
    pub launcher: Arc<dyn Launcher>,
    /// The endpoint workers connect to.
    pub endpoint: String,
    /// The session token.
    pub token: Token,
    /// `--timeout`: longest a test may run.
    pub timeout: Option<Duration>,
    /// Longest a new process may take to say hello and report its collection.
    pub start_timeout: Duration,
    /// How long a process that said `shutdown` may take to exit before it is killed.
    pub grace: Duration,
    /// `--cleanse CMD`, run before a worker switches provider.
    pub cleanse: Option<String>,
    /// `--appliance-check CMD`, run before each respawn; failing retires the slot.
    pub appliance_check: Option<String>,
    /// Longest a hook may run.
    pub hook_timeout: Duration,
    /// When a slot is retired.
    pub retire: RetirePolicy,
    /// Where per-worker logs go.
    pub log_dir: Option<PathBuf>,
    /// A private directory for the workers' status files (see [`protocol::ENV_STATUS_FILE`]).
    pub status_dir: Option<PathBuf>,
    /// Faults to inject (`--chaos`).
    pub faults: Option<FaultPlan>,
    /// Whether the runner gave the reference collection (else the first worker's is the
    /// reference, and a first spawn must not be asked to lie: nothing could tell).
    pub reference_known: bool,
    /// How long a worker process may stay stopped (SIGSTOP, a debugger) before it is killed.
    pub hang_timeout: Duration,
    /// How long a worker that promised heartbeats may stay silent before it is taken for hung
    /// (or, on another host, for lost).
    pub heartbeat_timeout: Duration,
    /// The coordinator's fingerprint (see [`protocol::fingerprint`]): a worker that says another
    /// is refused.
    pub fingerprint: String,
    /// Whether a worker must say a fingerprint (a `--fingerprint` command was given).
    pub fingerprint_required: bool,
}

/// The actors a worker talks to.
#[derive(Clone)]
pub struct Peers {
    /// The root.
    pub supervisor: Addr<Supervisor>,
    /// The pool.
    pub scheduler: Addr<Scheduler>,
    /// Output.
    pub reporter: Addr<Reporter>,
    /// The socket.
    pub transport: Addr<Transport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Collecting,
    Checking,
    Working,
    Stopping,
    Respawning,
    Done,
}

struct Running {
    test: TestId,
    started: Instant,
    record: TestRecord,
    seq: u64,
}

const TAIL_BYTES: usize = 32 * 1024;
/// How long an exited process's last messages get to arrive before its exit is handled.
const EXIT_SETTLE: Duration = Duration::from_millis(100);
const TAIL_LINES: usize = 20;
/// How long the Scheduler waits for the answer to a `release` before it deals on without it.
const RELEASE_PATIENCE: Duration = Duration::from_millis(500);

/// The actor for one worker slot.
pub struct Worker {
    slot: WorkerSlot,
    settings: Arc<WorkerSettings>,
    peers: Peers,
    state: State,
    /// The current (or last) incarnation's number: 1 for the first spawn.
    incarnation: u32,
    /// What belongs to the current (or last) process: replaced whole by the next spawn.
    inc: Incarnation,
    /// Numbers each test start, so a timer can tell its test from a later one.
    seq: u64,
    draining: bool,
    aborted: bool,
    /// The reference collection, once complete.
    reference: Option<Arc<Reference>>,
    /// Deaths in a row without a finished test.
    crash_streak: u32,
}

/// Everything that belongs to one worker process (one incarnation). A new spawn starts from
/// [`Incarnation::default`]: nothing of the last process is carried over by mistake.
#[derive(Default)]
struct Incarnation {
    pid: Option<u32>,
    group: Option<GroupGuard>,
    /// Its ZeroMQ identity, once its hello was accepted.
    identity: Option<Vec<u8>>,
    shutdown_said: bool,
    /// Why herd killed it, if herd did (the first reason stays).
    kill: Option<KillReason>,
    /// The tests it holds, in order (the running one first).
    queue: VecDeque<TestId>,
    running: Option<Running>,
    /// A request for work is at the Scheduler.
    awaiting_work: bool,
    /// It asked for work before its collection was accepted.
    need_tests_pending: bool,
    /// Work stealing with this process: deferred, asked, answered once.
    steal: Handshake<Steal>,
    /// Its collection waits for the reference to be complete (a shard).
    awaiting_reference: bool,
    /// The files it has collected, when it collected only some.
    collected: Option<Arc<HashSet<String>>>,
    /// The end of its output, for crash reports.
    tail: Vec<u8>,
    log: Option<WorkerLog>,
    /// Its exit: (pid, exit code if it exited normally, status as text).
    exit: Option<(u32, Option<i32>, String)>,
    dice: Option<FaultDice>,
    armed: SelfFaults,
    stopped_since: Option<Instant>,
    /// Busy or hung: when it promised heartbeats.
    liveness: Option<Watch>,
    /// Not started by herd (`--launcher external`): it joins by itself.
    external: bool,
    /// An external worker that said hello.
    joined: bool,
    /// An external worker herd gave up on (it cannot be killed); its end is handled next tick.
    disowned: bool,
    pending_gone: bool,
}

impl Worker {
    /// A worker for `slot`; it starts its first process when the actor starts.
    pub fn new(slot: WorkerSlot, settings: Arc<WorkerSettings>, peers: Peers) -> Worker {
        Worker {
            slot,
            settings,
            peers,
            state: State::Starting,
            incarnation: 0,
            inc: Incarnation::default(),
            seq: 0,
            draining: false,
            aborted: false,
            reference: None,
            crash_streak: 0,
        }
    }

    fn id(&self) -> String {
        self.slot.id.clone()
    }

    fn publish(&self, event: Event) {
        self.peers.reporter.do_send(Publish(event));
    }

    fn notice(&self, text: impl Into<String>) {
        self.publish(Event::Notice {
            worker: Some(self.id()),
            text: text.into(),
        });
    }

    fn send(&self, identity: Vec<u8>, message: CoordinatorMessage) {
        self.peers.transport.do_send(Outbound { identity, message });
    }

    fn send_to_process(&self, message: CoordinatorMessage) {
        if let Some(identity) = &self.inc.identity {
            self.send(identity.clone(), message);
        }
    }

    fn hook_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(protocol::ENV_WORKER_ID.to_string(), self.id())];
        if let Some(appliance) = &self.slot.appliance {
            env.push((protocol::ENV_APPLIANCE.to_string(), appliance.clone()));
        }
        env
    }

    /// Starts a new incarnation of the worker process.
    fn spawn(&mut self, ctx: &mut Context<Self>) {
        // A steal the last process was asked for is answered "nothing"; then nothing of it is
        // carried over (its output tail, its kill reason, its queue...).
        self.forget_steal();
        self.inc = Incarnation::default();
        self.incarnation += 1;
        self.state = State::Starting;
        let incarnation = self.incarnation;
        let mut env = self.hook_env();
        env.push((
            protocol::ENV_ENDPOINT.into(),
            self.settings.endpoint.clone(),
        ));
        env.push((
            protocol::ENV_TOKEN.into(),
            self.settings.token.as_str().to_string(),
        ));
        env.push((protocol::ENV_INCARNATION.into(), incarnation.to_string()));
        self.inc.dice = self
            .settings
            .faults
            .as_ref()
            .map(|plan| plan.dice(&self.slot.id, incarnation));
        self.inc.armed = self
            .inc
            .dice
            .as_mut()
            .map(|d| d.self_faults(100_000))
            .unwrap_or_default();
        self.inc.armed.lie &= self.settings.reference_known || incarnation > 1;
        if let Some(value) = self
            .inc
            .armed
            .env_value(&protocol::identity(&self.slot.id, incarnation))
        {
            env.push(("HERD_WORKER_FAULT".into(), value));
        }
        if let Some(path) = self.status_path() {
            let _ = std::fs::remove_file(&path);
            env.push((protocol::ENV_STATUS_FILE.into(), path.display().to_string()));
        }
        let launched = match self
            .settings
            .launcher
            .launch(&self.settings.command, &self.slot, &env)
        {
            Launch::Spawn(command) => command,
            Launch::Await(command) => return self.await_join(ctx, command),
        };
        let mut child = match spawn_in_group(&launched) {
            Ok(child) => child,
            Err(e) => {
                let program = self.settings.command.program.display().to_string();
                self.notice(format!(
                    "could not start the worker process `{program}`: {e}"
                ));
                let why = format!("could not start `{program}`: {e}");
                self.state = State::Respawning;
                if self.draining || self.aborted {
                    return self.done(false);
                }
                self.crash_streak += 1;
                if self.settings.retire.should_retire(self.crash_streak) {
                    let streak = self.crash_streak;
                    return self.retire(format!(
                        "its process died {streak} times in a row (last: {why})"
                    ));
                }
                self.respawn_after_check(ctx, true);
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        self.inc.pid = Some(pid);
        self.inc.group = Some(GroupGuard(pid));
        self.open_log(pid);
        let addr = ctx.address();
        if let Some(out) = child.stdout.take() {
            actix::spawn(forward_output(out, addr.clone(), incarnation));
        }
        if let Some(err) = child.stderr.take() {
            actix::spawn(forward_output(err, addr, incarnation));
        }
        ctx.spawn(
            async move { child.wait().await }
                .into_actor(self)
                .map(move |status, act, ctx| act.process_gone(ctx, incarnation, status)),
        );
        self.start_timer(ctx);
        self.publish(Event::WorkerSpawned {
            worker: self.id(),
            incarnation,
            pid,
            appliance: self.slot.appliance.clone(),
        });
    }

    /// Kills the current incarnation if it has not reported its collection within the start
    /// timeout (an external slot nobody joined is retired).
    fn start_timer(&self, ctx: &mut Context<Self>) {
        let incarnation = self.incarnation;
        ctx.run_later(self.settings.start_timeout, move |act, _| {
            if act.incarnation != incarnation
                || !matches!(
                    act.state,
                    State::Starting | State::Collecting | State::Checking
                )
            {
                return;
            }
            let secs = act.settings.start_timeout.as_secs_f64();
            if act.inc.external && !act.inc.joined {
                act.notice(format!(
                    "nobody joined as {} within {secs}s",
                    protocol::identity(&act.slot.id, incarnation)
                ));
                act.kill(KillReason::JoinTimeout);
            } else {
                act.notice(format!(
                    "no collection within {secs}s of starting; killing the worker"
                ));
                act.kill(KillReason::StartTimeout);
            }
        });
    }

    /// Waits for a worker herd does not start (`--launcher external`): `command` (printed)
    /// joins it, on any host.
    fn await_join(&mut self, ctx: &mut Context<Self>, command: String) {
        self.inc.external = true;
        self.inc.pid = None;
        self.start_timer(ctx);
        self.publish(Event::WorkerAwaited {
            worker: self.id(),
            incarnation: self.incarnation,
            command,
        });
    }

    fn open_log(&mut self, pid: u32) {
        let Some(dir) = &self.settings.log_dir else {
            return;
        };
        if self.inc.log.is_none() {
            let path = dir.join(format!("{}.log", self.slot.id));
            let file = std::fs::create_dir_all(dir).and_then(|_| File::create(&path));
            let reporter = self.peers.reporter.clone().recipient();
            self.inc.log = Some(WorkerLog::new(path, file, reporter));
        }
        if let Some(log) = &mut self.inc.log {
            let _ = writeln!(
                log,
                "=== {} incarnation {} (pid {pid}) ===",
                self.slot.id, self.incarnation
            );
        }
    }

    fn status_path(&self) -> Option<PathBuf> {
        let dir = self.settings.status_dir.as_ref()?;
        Some(dir.join(format!(
            "{}.status",
            protocol::identity(&self.slot.id, self.incarnation)
        )))
    }

    /// The test the process last said (in its status file) it was starting.
    fn last_started(&self) -> Option<TestId> {
        // The first line: a worker may overwrite a longer id without truncating the file.
        let text = std::fs::read_to_string(self.status_path()?).ok()?;
        let test = text.lines().next()?;
        (!test.is_empty()).then(|| test.to_string())
    }

    fn log_path(&self) -> Option<PathBuf> {
        self.settings
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{}.log", self.slot.id)))
    }

    fn tail_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.inc.tail);
        let tail = indent_tail(&text, TAIL_LINES);
        let mut out = if tail.is_empty() {
            format!("(no output from {})", self.slot.id)
        } else {
            format!("last output of {}:{tail}", self.slot.id)
        };
        if let Some(path) = self.log_path() {
            out.push_str(&format!("\n(full log: {})", path.display()));
        }
        out
    }

    fn kill(&mut self, reason: KillReason) {
        if self.inc.kill.is_none() {
            self.inc.kill = Some(reason);
        }
        if let Some(pid) = self.inc.pid {
            signal_group(pid, Signal::SIGKILL);
        } else if self.inc.external && !self.inc.disowned {
            // A worker herd did not start cannot be killed: it is disowned. It is told to exit,
            // nothing it sends counts any more, and its end is handled as a death.
            self.inc.disowned = true;
            self.inc.pending_gone = true;
            if let Some(identity) = self.inc.identity.take() {
                let why = self.inc.kill.as_ref().map(KillReason::describe);
                self.send(
                    identity,
                    CoordinatorMessage::Error {
                        message: format!("herd disowned this worker: {}", why.unwrap_or_default()),
                    },
                );
            }
        }
    }

    /// The process of `incarnation` exited: kill what it left in its group, then let its last
    /// messages arrive (a short settle time, then a barrier through the transport) before the
    /// exit is handled.
    fn process_gone(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        status: std::io::Result<ExitStatus>,
    ) {
        if incarnation != self.incarnation {
            return;
        }
        self.inc.group.take();
        let pid = self.inc.pid.take().unwrap_or(0);
        let (code, status) = match status {
            Ok(status) => (status.code(), describe_status(&status)),
            Err(e) => (None, format!("unknown status ({e})")),
        };
        self.gone(ctx, incarnation, pid, code, status);
    }

    /// The worker of `incarnation` is gone (its process exited, or an external worker left or
    /// was disowned): its last messages get to arrive before its end is handled.
    fn gone(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        pid: u32,
        code: Option<i32>,
        status: String,
    ) {
        self.inc.exit = Some((pid, code, status));
        ctx.run_later(EXIT_SETTLE, move |act, _| {
            act.peers.transport.do_send(Barrier {
                worker: act.id(),
                incarnation,
            });
        });
    }

    /// Handles the exit of the process of `incarnation`, once its last messages are in: the
    /// death is planned by [`plan_death`] and the plan carried out here.
    fn exited(&mut self, ctx: &mut Context<Self>, incarnation: u32) {
        if incarnation != self.incarnation {
            return;
        }
        let Some((pid, code, status)) = self.inc.exit.take() else {
            return;
        };
        self.inc.identity = None;
        self.inc.awaiting_work = false;
        self.forget_steal();
        if self.aborted {
            self.state = State::Done;
            return;
        }
        if self.inc.kill == Some(KillReason::JoinTimeout) {
            let why = format!(
                "no worker joined as {} within {}s",
                protocol::identity(&self.slot.id, incarnation),
                self.settings.start_timeout.as_secs_f64()
            );
            self.state = State::Respawning;
            return self.retire(why);
        }
        if self.inc.kill == Some(KillReason::Unneeded) {
            self.state = State::Respawning;
            return self.done(false);
        }
        if self.inc.armed.exit0_after.is_some() && code == Some(0) && !self.inc.shutdown_said {
            self.fault(
                FaultKind::Exit0,
                self.inc.running.as_ref().map(|r| r.test.clone()),
            );
        }
        let early = matches!(
            self.state,
            State::Starting | State::Collecting | State::Checking
        );
        let running = self.inc.running.take();
        let death = Death {
            kill: self.inc.kill.clone(),
            shutdown_said: self.inc.shutdown_said,
            draining: self.draining,
            early,
            running: running.map(|r| (r.test, r.started.elapsed().as_secs_f64())),
            queue: self.inc.queue.drain(..).collect(),
            last_started: self.last_started(),
            status: status.clone(),
            streak: self.crash_streak,
        };
        let plan = plan_death(death, self.settings.retire);
        if !self.inc.external || self.inc.joined {
            self.publish(Event::WorkerExited {
                worker: self.id(),
                incarnation,
                status,
                clean: plan.clean,
            });
        }
        if plan.next == Next::Done && plan.blamed.is_none() && plan.requeue.is_empty() {
            return self.done(false);
        }
        if self.inc.kill == Some(KillReason::Recollect) {
            self.notice(KillReason::Recollect.describe());
        } else if early && !self.draining {
            self.notice(format!(
                "died before it was ready: {}\n{}",
                plan.why,
                self.tail_text()
            ));
        }
        let crashed = plan.blamed.map(|blamed| {
            let when = if blamed.confirmed {
                "while running this test"
            } else {
                "before confirming this test started (it was next in its queue)"
            };
            CrashedTest {
                test: blamed.test,
                duration: blamed.duration,
                details: format!(
                    "worker {} (pid {pid}) crashed {when}: {}\n{}",
                    self.slot.id,
                    plan.why,
                    self.tail_text()
                ),
            }
        });
        if crashed.is_some() || !plan.requeue.is_empty() {
            self.peers.scheduler.do_send(ReturnTests {
                worker: self.id(),
                tests: plan.requeue,
                crashed,
                stolen: false,
            });
        }
        self.crash_streak = plan.streak;
        self.state = State::Respawning;
        match plan.next {
            Next::Done => self.done(false),
            Next::Retire(reason) => self.retire(reason),
            Next::Respawn { counted } => self.respawn_after_check(ctx, counted),
        }
    }

    /// Respawns the slot, after the appliance check if there is one (a failed check retires
    /// it).
    fn respawn_after_check(&mut self, ctx: &mut Context<Self>, counted: bool) {
        let Some(check) = self.settings.appliance_check.clone() else {
            self.request_respawn(ctx, counted);
            return;
        };
        let hook = run_hook(check, self.hook_env(), self.settings.hook_timeout);
        ctx.spawn(hook.into_actor(self).map(move |result, act, ctx| {
            if act.state != State::Respawning {
                return;
            }
            if result.ok {
                act.request_respawn(ctx, counted);
            } else {
                act.retire(format!("the appliance check failed: {}", result.summary));
            }
        }));
    }

    fn request_respawn(&mut self, ctx: &mut Context<Self>, counted: bool) {
        let ask = self.peers.supervisor.send(RequestRespawn {
            worker: self.id(),
            counted,
        });
        ctx.spawn(ask.into_actor(self).map(|granted, act, ctx| {
            if act.state != State::Respawning {
                return;
            }
            if granted.unwrap_or(false) && !act.draining && !act.aborted {
                act.spawn(ctx);
            } else {
                act.done(false);
            }
        }));
    }

    fn retire(&mut self, reason: String) {
        self.publish(Event::WorkerRetired {
            worker: self.id(),
            reason,
        });
        self.done(true);
    }

    fn done(&mut self, retired: bool) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.peers
            .scheduler
            .do_send(WorkerGone { worker: self.id() });
        self.peers.supervisor.do_send(WorkerDone {
            worker: self.id(),
            retired,
        });
    }

    /// Refuses a message: an error reply, an event, and nothing else.
    fn refuse(&self, identity: Vec<u8>, reason: String) {
        self.publish(Event::MessageRefused {
            identity: untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS),
            reason: reason.clone(),
        });
        self.send(identity, CoordinatorMessage::Error { message: reason });
    }

    /// The process broke the protocol: it is killed, and its work handled as after a crash.
    fn violation(&mut self, why: String) {
        self.publish(Event::MessageRefused {
            identity: protocol::identity(&self.slot.id, self.incarnation),
            reason: why.clone(),
        });
        self.send_to_process(CoordinatorMessage::Error {
            message: why.clone(),
        });
        self.kill(KillReason::Violation(why));
    }

    fn on_hello(
        &mut self,
        identity: Vec<u8>,
        incarnation: u32,
        heartbeat: Option<f64>,
        collect: Option<CollectScope>,
        pid: Option<u32>,
    ) {
        let expected = protocol::identity(&self.slot.id, self.incarnation);
        let claimed = protocol::check_identity(&identity, &self.slot.id, incarnation);
        if incarnation != self.incarnation || self.state != State::Starting || claimed.is_err() {
            let got = untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS);
            let why = if let Err(why) = claimed {
                format!("identity {got:?} does not match the hello: {why}")
            } else {
                format!(
                    "{got} is not the current process of {} (expected {expected})",
                    self.slot.id
                )
            };
            self.refuse(identity, why);
            return;
        }
        self.inc.identity = Some(identity);
        self.state = State::Collecting;
        // A worker that promised heartbeats is hung when silent (and idle) for three of them
        // (and at least --heartbeat-timeout).
        self.inc.liveness = heartbeat.filter(|s| s.is_finite() && *s > 0.0).map(|s| {
            let limit = self
                .settings
                .heartbeat_timeout
                .max(Duration::from_secs_f64((3.0 * s).min(1e6)));
            Watch::new(limit, Instant::now())
        });
        self.send_to_process(CoordinatorMessage::Welcome {
            worker: self.id(),
            incarnation,
            collect,
        });
        if self.inc.external {
            self.inc.joined = true;
            self.publish(Event::WorkerSpawned {
                worker: self.id(),
                incarnation,
                pid: pid.unwrap_or(0),
                appliance: self.slot.appliance.clone(),
            });
        }
    }

    fn on_message(&mut self, ctx: &mut Context<Self>, message: WorkerMessage) {
        match message {
            WorkerMessage::Hello { .. } => self.violation("a second hello".into()),
            WorkerMessage::Heartbeat => {}
            WorkerMessage::Collection {
                tests,
                errors,
                herd_groups,
                files,
                scope,
                digest,
            } => {
                if self.state != State::Collecting {
                    return self.violation("a collection at the wrong time".into());
                }
                self.state = State::Checking;
                let part = Part {
                    tests,
                    errors,
                    herd_groups,
                    files,
                    scope,
                    digest,
                };
                self.inc.collected = (!part.is_whole()).then(|| Arc::new(collected_files(&part)));
                let check = CheckCollection {
                    worker: self.id(),
                    identity: protocol::identity(&self.slot.id, self.incarnation),
                    part,
                };
                let incarnation = self.incarnation;
                let ask = self.peers.supervisor.send(check);
                ctx.spawn(ask.into_actor(self).map(move |verdict, act, ctx| {
                    if act.incarnation == incarnation && act.state == State::Checking {
                        act.collection_checked(ctx, verdict.unwrap_or(CollectionVerdict::Refused));
                    }
                }));
            }
            WorkerMessage::FileCollection {
                file,
                tests,
                errors,
            } => self.on_file_collection(file, tests, errors),
            WorkerMessage::NeedTests
                if matches!(self.state, State::Checking | State::Collecting) =>
            {
                self.inc.need_tests_pending = true
            }
            WorkerMessage::NeedTests => self.need_tests(ctx),
            WorkerMessage::Warning { text, test, when } => {
                let outside_tests = test.is_none() && when.as_deref() != Some("runtest");
                self.publish(Event::Warning {
                    worker: self.id(),
                    test,
                    text,
                    outside_tests,
                })
            }
            WorkerMessage::SessionExit { reason } => {
                self.peers.supervisor.do_send(SessionExitRequested {
                    worker: self.id(),
                    reason,
                })
            }
            WorkerMessage::TestStarted { test } => self.on_test_started(ctx, test),
            WorkerMessage::Report(report) => {
                let Some(running) = self.inc.running.as_mut().filter(|r| r.test == report.test)
                else {
                    return self.violation(format!(
                        "a report for {}, which is not running",
                        report.test
                    ));
                };
                let teardown = report.when == Phase::Teardown && !report.intermediate;
                running.record.add(report);
                if teardown {
                    self.finish_running();
                }
            }
            WorkerMessage::Released { tests } => self.on_released(tests),
            WorkerMessage::Message { text } => self.publish(Event::WorkerMessage {
                worker: self.id(),
                text,
            }),
            WorkerMessage::InternalError { message } => {
                self.notice(format!("internal error in the worker: {message}"));
                self.kill(KillReason::InternalError(message));
            }
            WorkerMessage::Shutdown => {
                self.inc.shutdown_said = true;
                self.state = State::Stopping;
                let incarnation = self.incarnation;
                if self.inc.external {
                    // It exits now, on its own host: what it sent before is handled first.
                    return self.gone(ctx, incarnation, 0, Some(0), "left after shutdown".into());
                }
                ctx.run_later(self.settings.grace, move |act, _| {
                    if act.incarnation == incarnation && act.inc.pid.is_some() {
                        act.notice(format!(
                            "did not exit within {}s of shutdown; killing it",
                            act.settings.grace.as_secs()
                        ));
                        act.kill(KillReason::GraceExpired);
                    }
                });
            }
        }
    }

    fn collection_checked(&mut self, ctx: &mut Context<Self>, verdict: CollectionVerdict) {
        match verdict {
            CollectionVerdict::Accepted(reference) => {
                self.reference = Some(reference);
                self.start_working(ctx);
            }
            CollectionVerdict::Pending if self.reference.is_some() => self.start_working(ctx),
            CollectionVerdict::Pending => self.inc.awaiting_reference = true,
            CollectionVerdict::IdsNeeded => {
                // Its digest differs: the ids show how (and are checked as usual).
                self.state = State::Collecting;
                self.send_to_process(CoordinatorMessage::CollectionNeeded);
            }
            CollectionVerdict::Mismatch(diff) => {
                if self.inc.armed.lie {
                    self.fault(FaultKind::Lie, None);
                }
                self.publish(Event::CollectionMismatch {
                    worker: self.id(),
                    diff,
                });
                self.kill(KillReason::Mismatch);
            }
            // The session is ending: the Supervisor stops this worker with the others.
            CollectionVerdict::Refused => {}
        }
    }

    fn start_working(&mut self, ctx: &mut Context<Self>) {
        self.state = State::Working;
        self.inc.awaiting_reference = false;
        if std::mem::take(&mut self.inc.need_tests_pending) {
            self.need_tests(ctx);
        }
    }

    /// A file collected late is checked against the reference before any of its tests runs.
    fn on_file_collection(
        &mut self,
        file: String,
        tests: Vec<TestId>,
        errors: Vec<CollectionError>,
    ) {
        let (Some(reference), Some(collected)) = (&self.reference, &mut self.inc.collected) else {
            return self.violation(format!("a collection of {file} at the wrong time"));
        };
        let identity = protocol::identity(&self.slot.id, self.incarnation);
        let mut diff = reference.check_file(&file, &tests, &identity);
        if !errors.is_empty() {
            let text = diff.take().unwrap_or_default();
            diff = Some(format!("{text}collection errors in: {file}\n"));
        }
        match diff {
            None => {
                Arc::make_mut(collected).insert(file.clone());
                self.send_to_process(CoordinatorMessage::FileAccepted { file });
            }
            Some(diff) => {
                self.publish(Event::CollectionMismatch {
                    worker: self.id(),
                    diff,
                });
                self.kill(KillReason::Mismatch);
            }
        }
    }

    fn need_tests(&mut self, ctx: &mut Context<Self>) {
        if self.state != State::Working {
            return self.violation("need_tests before its collection was accepted".into());
        }
        if self.draining {
            self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
        } else if !self.inc.awaiting_work {
            self.inc.awaiting_work = true;
            let (reply, steal) = (ctx.address().recipient(), ctx.address().recipient());
            let (worker, incarnation) = (self.id(), self.incarnation);
            self.peers.scheduler.do_send(RequestWork {
                worker,
                incarnation,
                reply,
                steal,
                collected: self.inc.collected.clone(),
                holding: self.unstarted(),
            });
        }
    }

    fn on_test_started(&mut self, ctx: &mut Context<Self>, test: TestId) {
        if self.state != State::Working {
            return self.violation(format!("test_started for {test} at the wrong time"));
        }
        if let Some(running) = &self.inc.running {
            return self.violation(format!(
                "started {test} while {} was still running",
                running.test
            ));
        }
        if !self.inc.queue.contains(&test) {
            return self.violation(format!("started {test}, which it was not given"));
        }
        if let Some(collected) = &self.inc.collected {
            if !collected.contains(module_of(&test)) {
                return self.violation(format!(
                    "started {test} without reporting the collection of its file"
                ));
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.inc.running = Some(Running {
            test: test.clone(),
            started: Instant::now(),
            record: TestRecord::default(),
            seq,
        });
        if let Some(limit) = self.settings.timeout {
            ctx.run_later(limit, move |act, _| act.timed_out(seq, limit));
        }
        if let Some((kind, delay)) = self.inc.dice.as_mut().and_then(FaultDice::at_test_start) {
            let incarnation = self.incarnation;
            ctx.run_later(Duration::from_millis(delay), move |act, _| {
                act.strike(incarnation, kind)
            });
        }
        self.publish(Event::TestStarted {
            test,
            worker: self.id(),
        });
        if let Some(steal) = self.inc.steal.test_started() {
            self.steal(steal, ctx);
        }
    }

    /// Inflicts a signal fault on the process of `incarnation`, if it still runs: during the
    /// test that rolled it, or a little after it (a random point in the worker's life).
    fn strike(&mut self, incarnation: u32, kind: FaultKind) {
        let Some(pid) = self.inc.pid.filter(|_| self.incarnation == incarnation) else {
            return;
        };
        let test = self.inc.running.as_ref().map(|r| r.test.clone());
        let signal = match kind {
            FaultKind::Kill => Signal::SIGKILL,
            FaultKind::Stop => Signal::SIGSTOP,
            _ => Signal::SIGTERM,
        };
        let Ok(raw) = i32::try_from(pid) else { return };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal);
        self.fault(kind, test);
    }

    fn fault(&self, kind: FaultKind, test: Option<TestId>) {
        let (worker, incarnation) = (self.id(), self.incarnation);
        self.publish(Event::FaultInjected {
            worker,
            incarnation,
            kind,
            test,
        });
    }

    /// Hang detection: a process that stays stopped (SIGSTOP, a debugger) is killed, its running
    /// test reported and its work returned, like any other dead worker.
    fn watch_for_stops(&mut self, ctx: &mut Context<Self>) {
        if std::mem::take(&mut self.inc.pending_gone) {
            let incarnation = self.incarnation;
            return self.gone(ctx, incarnation, 0, None, "disowned".into());
        }
        let live = matches!(
            self.state,
            State::Collecting | State::Checking | State::Working
        ) && (self.inc.pid.is_some()
            || self.inc.identity.is_some() && self.inc.external);
        let pid = self.inc.pid;
        if let Some(watch) = self.inc.liveness.as_mut().filter(|_| live) {
            let now = Instant::now();
            // A local process that computes is busy, not hung (a test holding the interpreter
            // lock keeps the heartbeat thread from running); on another host silence decides.
            let cpu = pid
                .filter(|_| watch.wants_cpu(now))
                .and_then(process_cpu_ticks);
            if let (Liveness::Silent(silent), None) = (watch.check(now, cpu), &self.inc.kill) {
                let secs = silent.as_secs_f64();
                if self.settings.launcher.remote() {
                    self.notice(format!(
                        "sent nothing for {secs:.1}s although it promised heartbeats; giving it up for lost and re-queuing its tests"
                    ));
                    return self.kill(KillReason::Lost(silent));
                }
                self.notice(format!(
                    "sent nothing for {secs:.1}s although it promised heartbeats; taking it for hung and killing it (its process used no CPU either)"
                ));
                return self.kill(KillReason::Hung);
            }
        }
        let Some(pid) = self.inc.pid else { return };
        if !process_is_stopped(pid) {
            self.inc.stopped_since = None;
            return;
        }
        let since = *self.inc.stopped_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.hang_timeout {
            self.notice(format!(
                "has been stopped for {:.1}s; killing it",
                since.elapsed().as_secs_f64()
            ));
            self.kill(KillReason::Hung);
        }
    }

    fn timed_out(&mut self, seq: u64, limit: Duration) {
        let Some(running) = self.inc.running.take_if(|r| r.seq == seq) else {
            return;
        };
        self.inc.queue.retain(|t| t != &running.test);
        let details = format!(
            "timed out after {}s on worker {}; the worker was killed\n{}",
            limit.as_secs_f64(),
            self.slot.id,
            self.tail_text()
        );
        let message = format!("timed out after {}s", limit.as_secs_f64());
        let duration = running.started.elapsed().as_secs_f64();
        self.publish(Event::TestFinished {
            test: running.test,
            worker: Some(self.id()),
            verdict: Verdict::decided(Outcome::TimedOut, duration, Some(message), Some(details)),
        });
        self.peers.scheduler.do_send(Settled {
            worker: self.id(),
            count: 1,
        });
        self.kill(KillReason::Timeout);
    }

    fn finish_running(&mut self) {
        let Some(running) = self.inc.running.take() else {
            return;
        };
        if let Some(pos) = self.inc.queue.iter().position(|t| t == &running.test) {
            self.inc.queue.remove(pos);
        }
        let verdict = running.record.verdict();
        self.crash_streak = 0;
        self.publish(Event::TestFinished {
            test: running.test,
            worker: Some(self.id()),
            verdict,
        });
        self.peers.scheduler.do_send(Settled {
            worker: self.id(),
            count: 1,
        });
    }

    /// The process gave back `tests` (work stealing). Only tests it holds and has not started
    /// count; starting one of them later is a protocol violation.
    fn on_released(&mut self, tests: Vec<TestId>) {
        if !self.inc.steal.released() {
            return self.violation("released tests it was not asked for".into());
        }
        let running = self.inc.running.as_ref().map(|r| &r.test);
        let mut given = Vec::with_capacity(tests.len());
        for test in tests {
            if Some(&test) == running {
                continue;
            }
            if let Some(pos) = self.inc.queue.iter().position(|t| t == &test) {
                given.push(self.inc.queue.remove(pos).expect("position is valid"));
            }
        }
        self.return_stolen(given);
    }

    /// Answers a [`Steal`]: asks the process for the end of its queue, or says "nothing". Every
    /// Steal is answered once.
    fn steal(&mut self, msg: Steal, ctx: &mut Context<Self>) {
        let tail: Vec<TestId> =
            if self.state == State::Working && !self.draining && !self.inc.steal.asking() {
                let running = self.inc.running.as_ref().map(|r| &r.test);
                let unstarted = self.unstarted();
                msg.policy
                    .tail(running, &unstarted, msg.thief_load)
                    .to_vec()
            } else {
                Vec::new()
            };
        if tail.is_empty() {
            return self.return_stolen(tail);
        }
        self.inc.steal.ask();
        self.send_to_process(CoordinatorMessage::Release { tests: tail });
        // A worker busy in a long test (or one that ignores `release`) must not keep the
        // Scheduler waiting: it hears "nothing" after a while; a late answer still counts.
        let incarnation = self.incarnation;
        ctx.run_later(RELEASE_PATIENCE, move |act, _| {
            if act.incarnation == incarnation && act.inc.steal.asking() {
                act.return_stolen(Vec::new());
            }
        });
    }

    /// The process is gone: a steal it was asked for (or was to be asked for) is answered
    /// "nothing" for it; its tests come back with the rest of its queue.
    fn forget_steal(&mut self) {
        if self.inc.steal.forget() {
            self.return_stolen(Vec::new());
        }
    }

    /// The tests the process holds and has not started, in order.
    fn unstarted(&self) -> Vec<TestId> {
        let running = self.inc.running.as_ref().map(|r| &r.test);
        self.inc
            .queue
            .iter()
            .filter(|t| Some(*t) != running)
            .cloned()
            .collect()
    }

    fn return_stolen(&self, tests: Vec<TestId>) {
        self.peers.scheduler.do_send(ReturnTests {
            worker: self.id(),
            tests,
            crashed: None,
            stolen: true,
        });
    }

    fn deliver(&mut self, incarnation: u32, tests: Vec<TestId>) {
        if incarnation != self.incarnation || self.state != State::Working || self.draining {
            self.peers.scheduler.do_send(ReturnTests {
                worker: self.id(),
                tests,
                crashed: None,
                stolen: false,
            });
            return;
        }
        self.inc.queue.extend(tests.iter().cloned());
        self.inc.steal.tests_sent();
        self.send_to_process(CoordinatorMessage::Tests { tests });
    }
}

/// The files a partial collection covers: its scope's share of the walk.
fn collected_files(part: &Part) -> HashSet<String> {
    let scope = part.scope.clone().unwrap_or(CollectScope::All);
    let files = part.files.as_deref().unwrap_or_default();
    files
        .iter()
        .enumerate()
        .filter(|(i, _)| scope.covers(*i))
        .map(|(_, f)| f.clone())
        .collect()
}

/// Whether the process is stopped (state `T` in `/proc/PID/stat`; Linux).
fn process_is_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("T")
}

/// The CPU time (user + system, in clock ticks) the process has used, from `/proc/PID/stat`
/// (Linux); `None` where it cannot be read.
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is the 1st, utime the 12th, stime the 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Copies a child's output stream to its Worker actor until EOF.
async fn forward_output(mut stream: impl AsyncRead + Unpin, to: Addr<Worker>, incarnation: u32) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        to.do_send(Output {
            incarnation,
            bytes: buf[..n].to_vec(),
        });
    }
}

/// Output of a worker process (stdout or stderr).
#[derive(Message)]
#[rtype(result = "()")]
struct Output {
    incarnation: u32,
    bytes: Vec<u8>,
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            act.watch_for_stops(ctx)
        });
        self.spawn(ctx);
    }
}

impl Handler<Output> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Output, _: &mut Self::Context) {
        if let Some(log) = &mut self.inc.log {
            let _ = log.write_all(&msg.bytes);
        }
        if msg.incarnation == self.incarnation {
            self.inc.tail.extend_from_slice(&msg.bytes);
            if self.inc.tail.len() > 2 * TAIL_BYTES {
                self.inc.tail.drain(..self.inc.tail.len() - TAIL_BYTES);
            }
        }
    }
}

impl Handler<FromProcess> for Worker {
    type Result = ();

    fn handle(&mut self, msg: FromProcess, ctx: &mut Self::Context) {
        if let WorkerMessage::Hello {
            incarnation,
            heartbeat,
            pid,
            ..
        } = msg.message
        {
            if self.inc.identity.as_ref() != Some(&msg.identity) {
                return self.on_hello(msg.identity, incarnation, heartbeat, msg.collect, pid);
            }
        }
        if self.inc.identity.as_ref() != Some(&msg.identity) {
            let got = untrusted::escape(&msg.identity, untrusted::MAX_SHOWN_CHARS);
            let why = format!("{got} has not said hello (or is not current); say hello first");
            return self.refuse(msg.identity, why);
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            tracing::debug!(worker = %self.slot.id, "ignoring a message of a condemned process");
            return;
        }
        if let Some(watch) = &mut self.inc.liveness {
            watch.heard(Instant::now());
        }
        self.on_message(ctx, msg.message);
    }
}

impl Handler<Garbage> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Garbage, _: &mut Self::Context) {
        if self.inc.identity.as_ref() != Some(&msg.identity) {
            let reason = format!("malformed frame: {}", msg.reason);
            return self.refuse(msg.identity, reason);
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            return;
        }
        if self.inc.armed.garble_after.is_some() {
            self.fault(
                FaultKind::Garble,
                self.inc.running.as_ref().map(|r| r.test.clone()),
            );
        }
        self.notice(format!(
            "sent a malformed frame ({}); killing it",
            msg.reason
        ));
        self.kill(KillReason::Garbage(msg.reason));
    }
}

impl Handler<Assignment> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Assignment, ctx: &mut Self::Context) {
        if msg.incarnation == self.incarnation {
            self.inc.awaiting_work = false;
        }
        if msg.tests.is_empty() {
            if msg.incarnation == self.incarnation && self.state == State::Working {
                self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
            }
            return;
        }
        let Some((from, to)) = msg.switch else {
            return self.deliver(msg.incarnation, msg.tests);
        };
        let switched = Event::ProviderSwitched {
            worker: self.id(),
            from: from.clone(),
            to: to.clone(),
        };
        let Some(cleanse) = self.settings.cleanse.clone() else {
            self.publish(switched);
            return self.deliver(msg.incarnation, msg.tests);
        };
        let mut env = self.hook_env();
        env.push(("HERD_PROVIDER_FROM".into(), from));
        env.push(("HERD_PROVIDER_TO".into(), to));
        let hook = run_hook(cleanse, env, self.settings.hook_timeout);
        let (incarnation, tests) = (msg.incarnation, msg.tests);
        ctx.spawn(hook.into_actor(self).map(move |result, act, _| {
            if !result.ok {
                act.notice(format!("cleanse failed; going on: {}", result.summary));
            }
            act.publish(switched);
            act.deliver(incarnation, tests);
        }));
    }
}

impl Handler<ReferenceReady> for Worker {
    type Result = ();

    fn handle(&mut self, ReferenceReady(reference): ReferenceReady, ctx: &mut Self::Context) {
        self.reference = Some(reference);
        if self.state == State::Checking && self.inc.awaiting_reference {
            self.start_working(ctx);
        }
    }
}

impl Handler<Recollect> for Worker {
    type Result = ();

    fn handle(&mut self, _: Recollect, _: &mut Self::Context) {
        if self.inc.pid.is_some() && self.inc.kill.is_none() {
            self.kill(KillReason::Recollect);
        }
    }
}

impl Handler<Steal> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Steal, ctx: &mut Self::Context) {
        let working = self.state == State::Working && !self.draining;
        match self.inc.steal.requested(msg, working) {
            Step::Ask(msg) => self.steal(msg, ctx),
            Step::Deferred => {
                // Tests were just sent: the process may not have read them yet, and could not
                // give them back. Ask once it starts one (or after a while).
                let incarnation = self.incarnation;
                ctx.run_later(RELEASE_PATIENCE, move |act, ctx| {
                    if act.incarnation == incarnation {
                        if let Some(steal) = act.inc.steal.deferral_expired() {
                            act.steal(steal, ctx);
                        }
                    }
                });
            }
        }
    }
}

impl Handler<BarrierReached> for Worker {
    type Result = ();

    fn handle(&mut self, msg: BarrierReached, ctx: &mut Self::Context) {
        self.exited(ctx, msg.incarnation);
    }
}

impl Handler<Drain> for Worker {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.draining = true;
        match self.state {
            State::Starting | State::Collecting | State::Checking => self.kill(KillReason::Drain),
            State::Working => self.send_to_process(CoordinatorMessage::Stop),
            State::Respawning => self.done(false),
            State::Stopping | State::Done => {}
        }
    }
}

impl Handler<Revive> for Worker {
    type Result = ();

    fn handle(&mut self, _: Revive, ctx: &mut Self::Context) {
        if self.state == State::Done && !self.aborted && !self.draining {
            self.state = State::Respawning;
            self.spawn(ctx);
        } else {
            // Nothing to revive: tell the Supervisor the slot is done again.
            self.peers.supervisor.do_send(WorkerDone {
                worker: self.id(),
                retired: false,
            });
        }
    }
}

impl Handler<NoMoreWork> for Worker {
    type Result = ();

    fn handle(&mut self, _: NoMoreWork, _: &mut Self::Context) {
        if self.inc.external && !self.inc.joined && self.state == State::Starting {
            self.notice(format!(
                "stops waiting for {} to join: no work is left",
                protocol::identity(&self.slot.id, self.incarnation)
            ));
            self.kill(KillReason::Unneeded);
        }
    }
}

impl Handler<KillNow> for Worker {
    type Result = ();

    fn handle(&mut self, _: KillNow, _: &mut Self::Context) {
        self.aborted = true;
        self.kill(KillReason::Abort);
        self.inc.group.take();
        self.state = State::Done;
    }
}
