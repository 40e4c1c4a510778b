//! The worker slot's machine: one slot's whole life as a sans-I/O state machine.
//!
//! [`Slot::handle`] takes an [`Input`] (a message of the process, a verdict, a timer, a process
//! event) and the time `now`, and returns the [`Effect`]s to carry out: frames to send, events to
//! publish, messages for the Scheduler and the Supervisor, timers to arm, process groups to kill,
//! a new incarnation to spawn. It owns the slot's [`Phase`], the current incarnation's facts
//! (dropped whole on death) and every decision about them; it does no I/O and reads no clock.
//!
//! ```text
//!  spawn -> Starting --hello--> Collecting --collection--> Checking --ok--> Working --shutdown--> Stopping -> exit
//!              |                    |  (mismatch: kill)          |  (crash, timeout, garbage: kill)
//!              +--------------------+----------------------------+--> exit -> Respawning
//!  Respawning --(retire rule or appliance check fails)--> Retired
//!  Respawning --(Supervisor grants)--> spawn        Respawning --(denied, draining)--> Done
//! ```
//!
//! Timers are effects ([`Effect::Arm`]): each [`Timer`] names the incarnation (and, for a test's
//! timeout, the test's start) it was armed for, so one that fires after a respawn, or after its
//! test ended, is ignored.
//!
//! The modules: `io` (inputs, effects, timers), `phase` (the phase and the incarnation's facts),
//! `inbound` (hello, collection, every later message), `work` (requests, delivery, starts,
//! reports, timeouts, steals), `life` (spawn, kill, exit, the death plan carried out, respawn,
//! retirement, what the session says) and `watch` (liveness, chaos strikes, output).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::collection::{CollectScope, Part, Reference};
use crate::events::Event;
use crate::faults::{FaultDice, FaultKind, FaultPlan};
use crate::protocol::{self, CoordinatorMessage, WorkerMessage};
use crate::restart::RetirePolicy;
use crate::slot::death::KillReason;
use crate::stealing::StealPolicy;
use crate::TestId;

mod inbound;
mod io;
mod life;
mod phase;
#[cfg(test)]
mod tests;
mod watch;
mod work;

pub use io::{CollectionVerdict, Crashed, Effect, Input, ProcState, Timer, TimerKind};
pub use phase::Phase;
use phase::{Incarnation, Running};

/// How long an exited process's last messages get to arrive before its exit is handled.
pub const EXIT_SETTLE: Duration = Duration::from_millis(100);
/// How long a steal waits for the answer to a `release` (or for a deferral) before the
/// Scheduler hears "nothing".
pub const RELEASE_PATIENCE: Duration = Duration::from_millis(500);
/// The bytes of output kept (about) for crash reports.
const TAIL_BYTES: usize = 32 * 1024;
/// The lines of output a crash report shows.
const TAIL_LINES: usize = 20;

/// What a slot is configured with (the session's settings, as far as the slot decides).
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker id (`w1`).
    pub worker: String,
    /// The appliance the slot owns, if any (shown when it spawns).
    pub appliance: Option<String>,
    /// `--timeout`: longest a test may run.
    pub timeout: Option<Duration>,
    /// Longest a new process may take to say hello and report its collection.
    pub start_timeout: Duration,
    /// How long a process that said `shutdown` may take to exit.
    pub grace: Duration,
    /// How long a process may stay stopped before it is killed.
    pub hang_timeout: Duration,
    /// The least silence of a process that promised heartbeats that counts as hung.
    pub heartbeat_timeout: Duration,
    /// When the slot is retired.
    pub retire: RetirePolicy,
    /// The runner's usage-error exit code, if it has one.
    pub usage_exit: Option<i32>,
    /// Show the process's output live, a line at a time (pytest's `-s`).
    pub live_output: bool,
    /// Its processes run on another host (silence means lost, not hung).
    pub remote: bool,
    /// Where its log goes (named in crash reports).
    pub log_path: Option<PathBuf>,
    /// An appliance check runs before each respawn.
    pub appliance_check: bool,
    /// A cleanse runs before a provider switch.
    pub cleanse: bool,
    /// The runner gave the reference collection (else a first spawn must not be made to lie).
    pub reference_known: bool,
    /// Faults to inject (`--chaos`), rolled per incarnation.
    pub faults: Option<FaultPlan>,
}

/// One worker slot's brain.
#[derive(Debug)]
pub struct Slot {
    config: Config,
    phase: Phase,
    /// The current (or last) incarnation's number: 1 for the first spawn.
    incarnation: u32,
    /// What belongs to the current (or last) incarnation: replaced whole by the next.
    inc: Incarnation,
    /// Numbers each test start, so a timer can tell its test from a later one.
    seq: u64,
    draining: bool,
    aborted: bool,
    /// The reference collection, once complete.
    reference: Option<Arc<Reference>>,
    /// Deaths in a row without a finished test.
    crash_streak: u32,
    /// Its first incarnation is awaited for a replica that joined without naming a slot.
    for_a_joiner: bool,
    /// Whether the respawn being decided counts against the budget.
    respawn_counted: bool,
    /// The effects of the input being handled.
    out: Vec<Effect>,
}

impl Slot {
    /// A slot, before its first incarnation.
    pub fn new(config: Config) -> Slot {
        Slot {
            config,
            phase: Phase::Starting,
            incarnation: 0,
            inc: Incarnation::default(),
            seq: 0,
            draining: false,
            aborted: false,
            reference: None,
            crash_streak: 0,
            for_a_joiner: false,
            respawn_counted: false,
            out: Vec::new(),
        }
    }

    /// Its first incarnation is awaited quietly (a replica that joined has its slot already).
    pub fn made_for_a_joiner(mut self) -> Slot {
        self.for_a_joiner = true;
        self
    }

    /// Handles `input` at `now`: the effects to carry out, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        match input {
            Input::Start => self.begin(),
            Input::Awaiting(command) => self.awaiting(command),
            Input::Started(pid) => self.started(pid),
            Input::NotStarted { program, error } => self.not_started(program, error),
            Input::Exited {
                incarnation,
                code,
                status,
            } => self.process_gone(incarnation, code, status),
            Input::BarrierReached {
                incarnation,
                last_started,
            } => self.exited(incarnation, last_started, now),
            Input::Output { incarnation, bytes } => self.output(incarnation, &bytes),
            Input::FromProcess {
                identity,
                message,
                collect,
            } => self.frame(identity, message, collect, now),
            Input::Garbage { identity, reason } => self.garbage(identity, reason),
            Input::Verdict {
                incarnation,
                verdict,
            } => self.verdict(incarnation, verdict),
            Input::ReferenceReady(reference) => self.reference_ready(reference),
            Input::Assignment {
                incarnation,
                tests,
                switch,
            } => self.assignment(incarnation, tests, switch),
            Input::Cleansed {
                incarnation,
                tests,
                switch,
                failed,
            } => self.cleansed(incarnation, tests, switch, failed),
            Input::Steal { policy, thief_load } => self.steal_requested(policy, thief_load),
            Input::Timer(timer) => self.timer(timer, now),
            Input::Tick(state) => self.tick(state, now),
            Input::ApplianceChecked(failed) => self.appliance_checked(failed),
            Input::RespawnGranted(granted) => self.respawn_granted(granted),
            Input::Drain => self.drain(),
            Input::KillNow => self.kill_now(),
            Input::Recollect => self.recollect(),
            Input::NoMoreWork => self.no_more_work(),
            Input::Revive => self.revive(),
        }
        std::mem::take(&mut self.out)
    }

    /// The current (or last) incarnation's number.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Where the slot is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.inc.pid
    }

    /// The fault the current incarnation is armed with, as its environment says it.
    pub fn fault_env(&self) -> Option<String> {
        let identity = protocol::identity(&self.config.worker, self.incarnation);
        self.inc.armed.env_value(&identity)
    }

    /// Whether a process forked for `incarnation` is still wanted (else it is killed).
    pub fn wants_process(&self, incarnation: u32) -> bool {
        incarnation == self.incarnation && self.phase != Phase::Done && !self.aborted
    }

    /// A timer effect for the current incarnation.
    fn arm(&mut self, kind: TimerKind, after: Duration) {
        let timer = Timer {
            incarnation: self.incarnation,
            kind,
        };
        self.out.push(Effect::Arm { timer, after });
    }

    fn timer(&mut self, timer: Timer, now: Instant) {
        if timer.incarnation != self.incarnation {
            return;
        }
        match timer.kind {
            TimerKind::Start => self.start_expired(),
            TimerKind::Grace => self.grace_expired(),
            TimerKind::Test { seq } => self.timed_out(seq, now),
            TimerKind::Strike(kind) => self.strike(kind),
            TimerKind::Release => self.release_expired(),
            TimerKind::Deferral => self.deferral_expired(),
            TimerKind::Settle => self.out.push(Effect::Barrier(timer.incarnation)),
        }
    }

    fn id(&self) -> String {
        self.config.worker.clone()
    }

    fn identity(&self) -> String {
        protocol::identity(&self.config.worker, self.incarnation)
    }

    fn publish(&mut self, event: Event) {
        self.out.push(Effect::Publish(event));
    }

    fn notice(&mut self, text: impl Into<String>) {
        let worker = Some(self.id());
        self.publish(Event::Notice {
            worker,
            text: text.into(),
        });
    }

    fn send(&mut self, identity: Vec<u8>, message: CoordinatorMessage) {
        self.out.push(Effect::Send { identity, message });
    }

    fn send_to_process(&mut self, message: CoordinatorMessage) {
        if let Some(identity) = self.inc.identity.clone() {
            self.send(identity, message);
        }
    }

    fn fault(&mut self, kind: FaultKind, test: Option<TestId>) {
        let (worker, incarnation) = (self.id(), self.incarnation);
        self.publish(Event::FaultInjected {
            worker,
            incarnation,
            kind,
            test,
        });
    }

    fn running_test(&self) -> Option<TestId> {
        self.inc.running.as_ref().map(|r| r.test.clone())
    }
}
