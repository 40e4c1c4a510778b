//! The Worker: one per slot, the shell of the slot's brain ([`herd_core::slot::machine`]). The
//! brain owns the slot's phase, its current incarnation and every decision; this actor turns
//! actix messages and process events into the brain's inputs, and its effects into frames on
//! the transport, events for the Reporter, messages for the Scheduler and the Supervisor, timers
//! (`run_later`, fed back as `Timer` inputs), killed process groups and spawns.
//!
//! What stays here is what touches the world: `lifecycle` (the spawn environment, launching,
//! the log and the status file, the hooks), `fork` (forked from the fork server or spawned, the
//! process watched until it exits), `output` (its pipes and its log), `liveness` (`/proc` reads
//! on a tick, chaos signals), `inbound` and `work` (the handlers that feed the brain) and
//! `effects` (carrying out what the brain decided).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use herd_core::faults::{FaultKind, FaultPlan};
use herd_core::protocol::{self, Token};
use herd_core::restart::RetirePolicy;
use herd_core::slot::machine::{self as brain, Effect, Input, ProcState, Slot};
use herd_core::TestId;
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::launcher::{Launch, Launcher};
use crate::messages::*;
use crate::output::WorkerLog;
use crate::process::{
    describe_status, run_hook, signal_group, spawn_in_group, GroupGuard, ProcStat, WorkerCommand,
};
use crate::reporter::Reporter;
use crate::scheduler::Scheduler;
use crate::supervisor::Supervisor;
use crate::transport::Transport;
use crate::zygote::Zygote;

mod effects;
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

/// The actor for one worker slot: the shell of its brain.
pub struct Worker {
    slot: WorkerSlot,
    settings: Arc<WorkerSettings>,
    peers: Peers,
    /// The slot's brain: its phase, its incarnation, its decisions.
    brain: Slot,
    /// The current process's group, killed when it is let go.
    group: Option<GroupGuard>,
    /// The current incarnation's log.
    log: Option<WorkerLog>,
}

impl Worker {
    /// A worker for `slot`; it starts its first process when the actor starts.
    pub fn new(slot: WorkerSlot, settings: Arc<WorkerSettings>, peers: Peers) -> Worker {
        let config = brain::Config {
            worker: slot.id.clone(),
            appliance: slot.appliance.clone(),
            timeout: settings.timeout,
            start_timeout: settings.start_timeout,
            grace: settings.grace,
            hang_timeout: settings.hang_timeout,
            heartbeat_timeout: settings.heartbeat_timeout,
            retire: settings.retire,
            usage_exit: settings.usage_exit,
            live_output: settings.live_output,
            remote: settings.launcher.remote(),
            log_path: (settings.log_dir.as_ref()).map(|d| d.join(format!("{}.log", slot.id))),
            appliance_check: settings.appliance_check.is_some(),
            cleanse: settings.cleanse.is_some(),
            reference_known: settings.reference_known,
            faults: settings.faults.clone(),
        };
        Worker {
            slot,
            settings,
            peers,
            brain: Slot::new(config),
            group: None,
            log: None,
        }
    }

    /// A slot made for a replica that joined without naming one: its first incarnation is
    /// awaited quietly.
    pub fn made_for_a_joiner(mut self) -> Worker {
        self.brain = self.brain.made_for_a_joiner();
        self
    }

    fn id(&self) -> String {
        self.slot.id.clone()
    }

    fn incarnation(&self) -> u32 {
        self.brain.incarnation()
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
        ctx.run_interval(Duration::from_millis(250), |act, ctx| act.tick(ctx));
        self.input(ctx, Input::Start);
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
