//! The Worker: one per slot. It owns its child process (in its own process group, output captured
//! to a per-worker log with the last lines kept for crash reports), the tests the process holds,
//! and its restart policy: when the process dies it reports the running test, returns the rest,
//! and either retires the slot or asks the Supervisor for a respawn.
//!
//! The actor is split by concern: `lifecycle` (spawn, kill, exit, the death plan, respawn),
//! `inbound` (what the process says: hello, collection, messages), `work` (its tests:
//! requests, delivery, starts, timeouts, steals), `output` (its log, crash-report tail and `-s`
//! live lines) and `liveness` (stopped or silent; chaos
//! strikes). The decisions with rules in them are pure, in `herd_core::slot` and
//! `herd_core::liveness`.
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
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use herd_core::collection::{CollectScope, Part, Reference};
use herd_core::events::Event;
use herd_core::faults::{FaultDice, FaultKind, FaultPlan, SelfFaults};
use herd_core::grouping::module_of;
use herd_core::liveness::{Liveness, Watch};
use herd_core::outcome::{Outcome, Phase, TestRecord, Verdict};
use herd_core::protocol::{
    self, CollectionError, CoordinatorMessage, PhaseReport, Token, WorkerMessage,
};
use herd_core::restart::RetirePolicy;
use herd_core::slot::death::{is_usage_error, plan_death, Death, DeathPlan, KillReason, Next};
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
use crate::zygote::Zygote;

mod fork;
mod inbound;
mod lifecycle;
mod liveness;
mod output;
mod work;

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
    /// Show the process's output live, a line at a time as a worker message (pytest's `-s`).
    pub live_output: bool,
    /// The exit code by which a process that ends before its hello says the command line is
    /// wrong (the runner's usage error, pytest's 4); `None`: every early death is a crash.
    pub usage_exit: Option<i32>,
    /// The output of the first process that said so: the session then ends as a usage error
    /// (whoever ran it reads this to say why), with no respawn.
    pub usage_error: Arc<OnceLock<String>>,
    /// The worker side of pytest-xdist's contract (`PYTEST_XDIST_*` in every worker's
    /// environment), for runners whose plugins expect it; `None` for the others.
    pub xdist: Option<XdistContract>,
    /// Whether the session forks its local workers from a fork server (started by
    /// [`crate::run_session`]; see [`herd_core::fork`]).
    pub fork_server: bool,
    /// The session's fork server, while it lives: each local incarnation is forked from it.
    pub zygote: Option<Arc<Zygote>>,
}

/// What every worker of a session is told so that it looks like a pytest-xdist worker to
/// plugins written for xdist: its id, the number of slots and one id for the whole run, set in
/// its environment before it starts (so before any conftest file loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdistContract {
    /// `PYTEST_XDIST_TESTRUNUID`: one random id per session, the same on every worker.
    pub test_run_uid: String,
    /// `PYTEST_XDIST_WORKER_COUNT`: how many worker slots the session has.
    pub worker_count: usize,
}

/// `PYTEST_XDIST_WORKER`: the worker's id (`w1`; pytest-django suffixes its test database with it).
pub const ENV_XDIST_WORKER: &str = "PYTEST_XDIST_WORKER";
/// `PYTEST_XDIST_WORKER_COUNT`: see [`XdistContract::worker_count`].
pub const ENV_XDIST_WORKER_COUNT: &str = "PYTEST_XDIST_WORKER_COUNT";
/// `PYTEST_XDIST_TESTRUNUID`: see [`XdistContract::test_run_uid`].
pub const ENV_XDIST_TESTRUNUID: &str = "PYTEST_XDIST_TESTRUNUID";

impl XdistContract {
    /// The contract of a new session with `worker_count` slots and a fresh test-run id (128
    /// random bits as 32 hex digits, the shape of xdist's `uuid4().hex`).
    pub fn new(worker_count: usize) -> XdistContract {
        XdistContract {
            test_run_uid: Token::generate().as_str().to_string(),
            worker_count,
        }
    }

    /// The environment variables of worker `worker_id`.
    pub fn env(&self, worker_id: &str) -> Vec<(String, String)> {
        vec![
            (ENV_XDIST_WORKER.into(), worker_id.into()),
            (ENV_XDIST_WORKER_COUNT.into(), self.worker_count.to_string()),
            (ENV_XDIST_TESTRUNUID.into(), self.test_run_uid.clone()),
        ]
    }
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

/// Where the slot is in its life; each phase carries what only it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its process is starting (or, external, awaited); no hello yet.
    Starting,
    /// Hello accepted; its collection is awaited.
    Collecting {
        /// It already asked for work (served once its collection is accepted).
        early_request: bool,
    },
    /// Its collection is being checked against the reference.
    Checking {
        /// It already asked for work (served once its collection is accepted).
        early_request: bool,
        /// Its part is accepted, but the reference is not complete yet (a shard).
        awaiting_reference: bool,
    },
    /// It runs tests.
    Working {
        /// A request for work is at the Scheduler.
        awaiting_work: bool,
    },
    /// It said `shutdown` and is exiting.
    Stopping,
    /// Its process is gone; a respawn, retirement or the end is being decided.
    Respawning,
    /// The slot is done.
    Done,
}

impl State {
    /// Before its collection was accepted: starting, collecting or checking.
    fn is_early(self) -> bool {
        matches!(
            self,
            State::Starting | State::Collecting { .. } | State::Checking { .. }
        )
    }

    /// Running tests.
    fn is_working(self) -> bool {
        matches!(self, State::Working { .. })
    }
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
    /// Made for a replica that joined without naming a slot: its first join is awaited
    /// without printing a command (the joiner has its slot already).
    for_a_joiner: bool,
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
    /// Work stealing with this process: deferred, asked, answered once.
    steal: Handshake<Steal>,
    /// The files it has collected, when it collected only some.
    collected: Option<Arc<HashSet<String>>>,
    /// The end of its output, for crash reports.
    tail: Vec<u8>,
    /// Live output (`-s`): the start of a line not ended yet.
    partial_line: Vec<u8>,
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
    /// It said `leaving`: its host asked it to go; its exit is not a crash.
    leaving: bool,
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
            for_a_joiner: false,
        }
    }

    /// A slot made for a replica that joined without naming one: its first incarnation is
    /// awaited quietly.
    pub fn made_for_a_joiner(mut self) -> Worker {
        self.for_a_joiner = true;
        self
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn every_worker_of_a_session_is_told_its_id_the_slot_count_and_one_run_id() {
        let contract = XdistContract::new(3);
        assert_eq!(contract.test_run_uid.len(), 32);
        assert!(contract.test_run_uid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(contract.test_run_uid, XdistContract::new(3).test_run_uid);
        let env = |id| contract.env(id).into_iter().collect::<HashMap<_, _>>();
        let (w1, w2) = (env("w1"), env("w2"));
        assert_eq!(w1[ENV_XDIST_WORKER], "w1");
        assert_eq!(w2[ENV_XDIST_WORKER], "w2");
        assert_eq!(w1[ENV_XDIST_WORKER_COUNT], "3");
        assert_eq!(w1[ENV_XDIST_TESTRUNUID], w2[ENV_XDIST_TESTRUNUID]);
    }
}
