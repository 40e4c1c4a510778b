//! Where the slot is in its life, and what belongs to one incarnation.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::faults::{FaultDice, SelfFaults};
use crate::liveness::Watch;
use crate::outcome::TestRecord;
use crate::slot::death::KillReason;
use crate::slot::steal::Handshake;
use crate::stealing::StealPolicy;
use crate::TestId;

/// Where the slot is in its life; each phase carries what only it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
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

impl Phase {
    /// Before its collection was accepted: starting, collecting or checking.
    pub fn is_early(self) -> bool {
        matches!(
            self,
            Phase::Starting | Phase::Collecting { .. } | Phase::Checking { .. }
        )
    }

    /// Running tests.
    pub fn is_working(self) -> bool {
        matches!(self, Phase::Working { .. })
    }

    /// It asked for work before its collection was accepted.
    pub fn early_request(self) -> bool {
        matches!(
            self,
            Phase::Collecting {
                early_request: true
            } | Phase::Checking {
                early_request: true,
                ..
            }
        )
    }
}

/// The test a process runs.
#[derive(Debug)]
pub(super) struct Running {
    pub test: TestId,
    pub started: Instant,
    pub record: TestRecord,
    pub seq: u64,
}

/// A steal request waiting in the handshake.
#[derive(Debug, Clone)]
pub(super) struct StealRequest {
    pub policy: Arc<StealPolicy>,
    pub thief_load: f64,
}

/// Everything the slot knows of one incarnation. A new one starts from
/// [`Incarnation::default`]: nothing of the last process is carried over by mistake.
#[derive(Debug, Default)]
pub(super) struct Incarnation {
    pub pid: Option<u32>,
    /// Its ZeroMQ identity, once its hello was accepted.
    pub identity: Option<Vec<u8>>,
    pub shutdown_said: bool,
    /// Why herd killed it, if herd did (the first reason stays).
    pub kill: Option<KillReason>,
    /// The tests it holds, in order (the running one first).
    pub queue: VecDeque<TestId>,
    pub running: Option<Running>,
    /// Work stealing with this process: deferred, asked, answered once.
    pub steal: Handshake<StealRequest>,
    /// The files it has collected, when it collected only some.
    pub collected: Option<Arc<HashSet<String>>>,
    /// The end of its output, for crash reports.
    pub tail: Vec<u8>,
    /// Live output (`-s`): the start of a line not ended yet.
    pub partial_line: Vec<u8>,
    /// Its exit: (pid, exit code if it exited normally, status as text).
    pub exit: Option<(u32, Option<i32>, String)>,
    pub dice: Option<FaultDice>,
    pub armed: SelfFaults,
    pub stopped_since: Option<Instant>,
    /// Busy or hung: when it promised heartbeats.
    pub liveness: Option<Watch>,
    /// Not started by herd (`--launcher external`): it joins by itself.
    pub external: bool,
    /// An external worker that said hello.
    pub joined: bool,
    /// An external worker herd gave up on (it cannot be killed); its end is handled next tick.
    pub disowned: bool,
    /// It said `leaving`: its host asked it to go; its exit is not a crash.
    pub leaving: bool,
    pub pending_gone: bool,
}

impl Incarnation {
    /// The tests it holds and has not started, in order.
    pub fn unstarted(&self) -> Vec<TestId> {
        let running = self.running.as_ref().map(|r| &r.test);
        self.queue
            .iter()
            .filter(|t| Some(*t) != running)
            .cloned()
            .collect()
    }

    /// Takes `tests` out of its queue, except the running one: those it held.
    pub fn take_unstarted(&mut self, tests: Vec<TestId>) -> Vec<TestId> {
        let running = self.running.as_ref().map(|r| r.test.clone());
        let mut given = Vec::with_capacity(tests.len());
        for test in tests {
            if Some(&test) == running.as_ref() {
                continue;
            }
            if let Some(pos) = self.queue.iter().position(|t| *t == test) {
                given.extend(self.queue.remove(pos));
            }
        }
        given
    }
}
