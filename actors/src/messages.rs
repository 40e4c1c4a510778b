//! Every message that crosses between actors, in one place (who sends it, who handles it).

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use herd_core::collection::{CollectScope, Part, Reference};
use herd_core::events::Event;
use herd_core::outcome::SessionEnd;
use herd_core::protocol::{CoordinatorMessage, DecodeError, WorkerMessage};
use herd_core::stealing::StealPolicy;
use herd_core::TestId;

use crate::report::SessionReport;

/// Transport thread -> Supervisor: the frames that arrived together, decoded, in order (one
/// message per burst keeps cross-thread wake-ups low).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InboundBatch(pub Vec<Inbound>);

/// One frame from a peer, decoded.
pub struct Inbound {
    /// The peer's ZeroMQ identity.
    pub identity: Vec<u8>,
    /// The decoded message, or why it could not be decoded.
    pub message: Result<WorkerMessage, DecodeError>,
}

/// Any actor -> Transport: a message for a peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outbound {
    /// The peer's ZeroMQ identity.
    pub identity: Vec<u8>,
    /// The message.
    pub message: CoordinatorMessage,
}

/// Worker -> Transport: deliver every frame already received, then report [`BarrierReached`].
/// A worker whose process exited uses it so that the process's last messages (its final report,
/// its `shutdown`) are handled before its exit is.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier {
    /// Worker id.
    pub worker: String,
    /// The incarnation that exited.
    pub incarnation: u32,
}

/// Transport thread -> Supervisor -> Worker: every frame received before the [`Barrier`] has
/// been delivered.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct BarrierReached {
    /// Worker id.
    pub worker: String,
    /// The incarnation that exited.
    pub incarnation: u32,
}

/// Supervisor -> Worker: a message from an identity that claims to be this worker.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromProcess {
    /// The sender's identity.
    pub identity: Vec<u8>,
    /// The message (a `hello` has passed the token and version check).
    pub message: WorkerMessage,
    /// For a `hello`: what the worker is to collect (sent in its `welcome`).
    pub collect: Option<CollectScope>,
}

/// Supervisor -> Worker: this worker's identity sent a frame that does not decode.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Garbage {
    /// The sender's identity.
    pub identity: Vec<u8>,
    /// Why it did not decode.
    pub reason: String,
}

/// Supervisor -> Worker: graceful stop: finish the running test, start no other.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Supervisor -> Worker: kill the process group now; the session is ending.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KillNow;

/// Worker -> Supervisor: a process's collection, to check against the reference (or, when the
/// runner gave none, to become it, or a shard of it).
#[derive(Message)]
#[rtype(result = "CollectionVerdict")]
pub struct CheckCollection {
    /// Worker id.
    pub worker: String,
    /// The spawn's identity (`w1.2`), for the diff header.
    pub identity: String,
    /// What it collected.
    pub part: Part,
}

/// The Supervisor's answer to [`CheckCollection`] (the slot's brain decides what it means).
pub use herd_core::slot::machine::CollectionVerdict;

/// Supervisor -> every Worker: the reference assembled from shards is complete.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct ReferenceReady(pub Arc<Reference>);

/// Supervisor -> Worker: a shard of the reference has no owner left; restart the process so
/// that it collects it (not counted against the respawn budget).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recollect;

/// Worker -> Supervisor: the worker's test session asked to end (pytest.exit(), Ctrl-C).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionExitRequested {
    /// Worker id.
    pub worker: String,
    /// Why.
    pub reason: String,
}

/// Supervisor -> Scheduler: the reference collection is known; build the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetReference(pub Arc<Reference>);

/// Worker -> Supervisor: may this slot start its process again?
#[derive(Message)]
#[rtype(result = "bool")]
pub struct RequestRespawn {
    /// Worker id.
    pub worker: String,
    /// Whether the respawn counts against the budget (a kill for a timeout does not).
    pub counted: bool,
}

/// Worker -> Supervisor: this slot has nothing more to do (finished, retired or killed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDone {
    /// Worker id.
    pub worker: String,
    /// Whether the slot was retired.
    pub retired: bool,
    /// Whether its worker left early (said `leaving`): the work left says nothing then.
    pub left: bool,
}

/// Worker -> Supervisor: the slot waits for a worker to join as `incarnation` (herd starts
/// nothing for it): a replica that joins without naming a slot may take it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Awaiting {
    /// Worker id.
    pub worker: String,
    /// The incarnation awaited.
    pub incarnation: u32,
}

/// Supervisor -> Scheduler: deal now, however few workers have joined (`--min-workers` was not
/// reached within the start timeout).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OpenDealing;

/// Worker -> Scheduler: the worker process asked for its next group.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestWork {
    /// Worker id.
    pub worker: String,
    /// The incarnation that asked; an answer for an older one is returned unused.
    pub incarnation: u32,
    /// Where the answer goes.
    pub reply: Recipient<Assignment>,
    /// Where a request to give back unstarted tests goes (work stealing).
    pub steal: Recipient<Steal>,
    /// The files the worker's process has collected, when it collected only some: groups of
    /// these files are preferred (no collection to pay).
    pub collected: Option<Arc<HashSet<String>>>,
    /// The tests the worker holds and has not started (its next test, for pytest).
    pub holding: Vec<TestId>,
}

/// Scheduler -> Worker: another worker is idle; give back the end of your unstarted queue, as
/// far as `policy` allows. Answered with [`ReturnTests`] (`stolen: true`, possibly empty).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Steal {
    /// What may be taken.
    pub policy: Arc<StealPolicy>,
    /// The expected seconds of work the idle (or nearly idle) worker holds.
    pub thief_load: f64,
}

/// Scheduler -> Worker: the answer to [`RequestWork`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Assignment {
    /// The incarnation that asked.
    pub incarnation: u32,
    /// Tests to run, in order; empty when there is no more work.
    pub tests: Vec<TestId>,
    /// `(from, to)` when the worker must switch provider (and cleanse) before running them.
    pub switch: Option<(String, String)>,
}

/// A test that was running when its worker died.
#[derive(Debug, Clone)]
pub struct CrashedTest {
    /// Test id.
    pub test: TestId,
    /// Seconds it ran.
    pub duration: f64,
    /// The crash report (exit status, last output lines).
    pub details: String,
}

/// Worker -> Scheduler: unfinished tests of a dead worker, and the test it was running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReturnTests {
    /// Worker id.
    pub worker: String,
    /// Tests that had not started, in order.
    pub tests: Vec<TestId>,
    /// The test that was running, if any: re-run if `--crash-retries` allows, else crashed.
    pub crashed: Option<CrashedTest>,
    /// Whether this answers a [`Steal`] (the worker lives on).
    pub stolen: bool,
}

/// Worker -> Scheduler: tests that reached their final outcome.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settled {
    /// Worker id.
    pub worker: String,
    /// How many.
    pub count: usize,
}

/// Worker -> Scheduler: the slot is gone; forget its provider and pending request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerGone {
    /// Worker id.
    pub worker: String,
}

/// Supervisor -> Scheduler: answered once everything sent to the Scheduler before it has been
/// handled (so the outcomes it publishes reach the Reporter before [`Finish`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Supervisor -> Scheduler: how many tests are still queued?
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Remaining;

/// Supervisor -> Worker: a worker finished for want of work; a slot still waiting for an external
/// worker to join stops waiting (it can be revived if work comes back).
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoMoreWork;

/// Supervisor -> Worker: start a process again in a finished slot (work came back after it
/// finished). Not a respawn: it does not count against the budget.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revive;

/// Supervisor -> Scheduler: stop dispatching.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt;

/// Any actor -> Reporter: something happened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

/// Supervisor -> Reporter: the session is over; settle every test and print the summary.
#[derive(Message)]
#[rtype(result = "SessionReport")]
pub struct Finish {
    /// How the session ended.
    pub end: SessionEnd,
}

/// Reporter -> Supervisor: `--maxfail` failures were reached.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MaxfailReached;

/// Signal thread -> Supervisor: a signal arrived.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SignalReceived(pub i32);
