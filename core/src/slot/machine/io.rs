//! What goes into the slot's machine and what comes out: its [`Input`]s (each with the data
//! it needs, never a handle to the world) and its [`Effect`]s (what the shell is to do), and
//! the [`Timer`]s it arms as effects.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::collection::{CollectScope, Part, Reference};
use crate::events::Event;
use crate::faults::FaultKind;
use crate::protocol::{CoordinatorMessage, WorkerMessage};
use crate::stealing::StealPolicy;
use crate::TestId;

/// The Supervisor's answer to a collection check.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectionVerdict {
    /// The collection is the reference or matches it.
    Accepted(Arc<Reference>),
    /// A shard of the reference: [`Input::ReferenceReady`] follows once every shard is in.
    Pending,
    /// The collection came as a digest that differs: ask the worker for the ids.
    IdsNeeded,
    /// It differs: the unified diff (and any collection errors).
    Mismatch(String),
    /// The session is ending; the worker will be stopped.
    Refused,
}

/// What a `/proc` read says of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcState {
    /// Stopped (SIGSTOP, a debugger).
    pub stopped: bool,
    /// The CPU time it has used, in clock ticks, when known.
    pub cpu_ticks: Option<u64>,
}

/// A timer the slot armed; it comes back as [`Input::Timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// The incarnation it was armed for (its generation): a later one ignores it.
    pub incarnation: u32,
    /// What it times.
    pub kind: TimerKind,
}

/// What a [`Timer`] times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// The hello and collection of a new process (or the join of an external one).
    Start,
    /// The exit of a process that said `shutdown`.
    Grace,
    /// `--timeout` of the test started as number `seq`.
    Test {
        /// The start's number.
        seq: u64,
    },
    /// A `--chaos` signal fault.
    Strike(FaultKind),
    /// The answer to a `release`.
    Release,
    /// A steal deferred until the process confirms it read its tests.
    Deferral,
    /// The last messages of an exited process.
    Settle,
}

/// A test that crashed its worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Crashed {
    /// Test id.
    pub test: TestId,
    /// Seconds it ran.
    pub duration: f64,
    /// The crash report.
    pub details: String,
}

/// What the slot is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// The slot starts: its first incarnation is spawned.
    Start,
    /// An external incarnation is awaited: `command` joins it.
    Awaiting(String),
    /// The process of the current incarnation runs as `pid`.
    Started(u32),
    /// The process could not be started.
    NotStarted {
        /// The program.
        program: String,
        /// Why not.
        error: String,
    },
    /// The process of `incarnation` exited.
    Exited {
        /// Its incarnation.
        incarnation: u32,
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// Its status as text.
        status: String,
    },
    /// The last messages of `incarnation` are in.
    BarrierReached {
        /// Its incarnation.
        incarnation: u32,
        /// The test its status file says it last started.
        last_started: Option<TestId>,
    },
    /// Output of the process of `incarnation`.
    Output {
        /// Its incarnation.
        incarnation: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A frame from `identity`.
    FromProcess {
        /// Its identity.
        identity: Vec<u8>,
        /// The message.
        message: WorkerMessage,
        /// For a hello: what to collect.
        collect: Option<CollectScope>,
    },
    /// A frame from `identity` that does not decode.
    Garbage {
        /// Its identity.
        identity: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// The Supervisor checked the collection of `incarnation`.
    Verdict {
        /// Its incarnation.
        incarnation: u32,
        /// The verdict.
        verdict: CollectionVerdict,
    },
    /// The reference assembled from shards is complete.
    ReferenceReady(Arc<Reference>),
    /// The Scheduler's answer to a request of `incarnation`.
    Assignment {
        /// Its incarnation.
        incarnation: u32,
        /// The tests (none: no more work).
        tests: Vec<TestId>,
        /// `(from, to)`: a provider switch first.
        switch: Option<(String, String)>,
    },
    /// The cleanse before a provider switch ran.
    Cleansed {
        /// The incarnation the tests are for.
        incarnation: u32,
        /// The tests.
        tests: Vec<TestId>,
        /// `(from, to)`.
        switch: (String, String),
        /// Why it failed, if it did.
        failed: Option<String>,
    },
    /// The Scheduler would take some of its unstarted tests.
    Steal {
        /// What may be taken.
        policy: Arc<StealPolicy>,
        /// The thief's expected seconds of work.
        thief_load: f64,
    },
    /// A timer fired.
    Timer(Timer),
    /// The periodic liveness check, with what `/proc` says of the process.
    Tick(Option<ProcState>),
    /// The appliance check before a respawn ran: its failure, if it failed.
    ApplianceChecked(Option<String>),
    /// The Supervisor's answer to a respawn request.
    RespawnGranted(bool),
    /// The session drains.
    Drain,
    /// The session ended: kill now.
    KillNow,
    /// Restart to collect a shard another worker left.
    Recollect,
    /// No work is left.
    NoMoreWork,
    /// The session needs the slot again.
    Revive,
}

/// What the shell is to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a frame to `identity`.
    Send {
        /// The receiver.
        identity: Vec<u8>,
        /// The frame.
        message: CoordinatorMessage,
    },
    /// Publish an event.
    Publish(Event),
    /// Arm `timer` to fire after `after`.
    Arm {
        /// The timer.
        timer: Timer,
        /// Its delay.
        after: Duration,
    },
    /// Kill process group `pid`.
    KillGroup(u32),
    /// Signal process `pid` with a `--chaos` signal fault.
    Strike {
        /// The process.
        pid: u32,
        /// The fault.
        kind: FaultKind,
    },
    /// Let go of the process group (the session ended).
    DropGroup,
    /// A barrier through the transport for `incarnation`'s last messages.
    Barrier(u32),
    /// Start incarnation number `.0` (begun: its phase is `Starting`).
    Spawn(u32),
    /// Ask the Scheduler for work.
    RequestWork {
        /// The incarnation that asks.
        incarnation: u32,
        /// The files it collected, when only some.
        collected: Option<Arc<HashSet<String>>>,
        /// The unstarted tests it holds.
        holding: Vec<TestId>,
    },
    /// Give tests back to the Scheduler.
    ReturnTests {
        /// The tests.
        tests: Vec<TestId>,
        /// The test that crashed the worker.
        crashed: Option<Crashed>,
        /// The answer to a steal.
        stolen: bool,
    },
    /// `count` tests are settled.
    Settled(usize),
    /// The slot takes no more work.
    WorkerGone,
    /// Have the Supervisor check a collection.
    CheckCollection {
        /// The incarnation.
        incarnation: u32,
        /// Its identity (`w1.2`).
        identity: String,
        /// What it collected.
        part: Part,
    },
    /// Tell the Supervisor an external incarnation is awaited.
    Awaiting(u32),
    /// Run the appliance check before a respawn.
    ApplianceCheck,
    /// Ask the Supervisor for a respawn.
    RequestRespawn {
        /// Whether it counts against the budget.
        counted: bool,
    },
    /// Run the cleanse before a provider switch.
    Cleanse {
        /// The incarnation the tests are for.
        incarnation: u32,
        /// The tests.
        tests: Vec<TestId>,
        /// `(from, to)`.
        switch: (String, String),
    },
    /// The slot is done.
    WorkerDone {
        /// Retired.
        retired: bool,
        /// It left (its host asked it to go).
        left: bool,
    },
    /// The process asks the session to end.
    SessionExit(String),
    /// The process found the command line wrong: its output.
    UsageError(String),
}
