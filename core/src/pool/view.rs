//! What the pool knows of one worker: one value per worker instead of parallel maps keyed by
//! worker id.

use std::time::Instant;

use super::Request;

/// The pool's view of one worker slot.
///
/// A view outlives the slot's incarnations: its in-flight count is settled by the returns and
/// outcomes of every incarnation, and the share it was last asked at stays known. What belongs
/// to the process that is gone (its provider, its waiting request, the steal it did not answer)
/// is dropped by [`View::forget`].
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The incarnation that last asked for work: where a steal request goes. `None` once the
    /// slot is gone (nothing is asked of it then).
    pub incarnation: Option<u32>,
    /// The provider the worker holds (connected to), if any.
    pub provider: Option<String>,
    /// Tests dealt to the worker that have not yet reached an outcome or come back.
    pub in_flight: usize,
    /// Its request, when it waits for tests that may yet come back.
    pub parked: Option<Parked>,
    /// When it was last asked to give tests back, and at what share.
    pub asked: Option<Asked>,
    /// The incarnation asked to give tests back that has not answered yet.
    pub unanswered: Option<u32>,
}

/// A request that waits: in the order requests were parked.
#[derive(Debug, Clone)]
pub struct Parked {
    /// Parking order (lower waited longer); a request served again keeps its place.
    pub seq: u64,
    /// The request itself.
    pub request: Request,
}

/// The last request to give tests back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    /// The worker's in-flight count when it was asked.
    pub share: usize,
    /// When.
    pub at: Instant,
}

impl View {
    /// Whether this worker may be asked to give tests back for the worker `thief`: it is live,
    /// is not the thief, holds at least one test beyond the one it runs, has not been asked at
    /// its current share, and its current incarnation is not still to answer an earlier ask.
    pub fn askable(&self, id: &str, thief: &str) -> bool {
        let Some(incarnation) = self.incarnation else {
            return false;
        };
        id != thief
            && self.in_flight >= 2
            && self.asked.map(|a| a.share) != Some(self.in_flight)
            && self.unanswered != Some(incarnation)
    }

    /// Whether an answer to a steal request is still to come from the current incarnation.
    pub fn answer_pending(&self) -> bool {
        self.unanswered.is_some() && self.unanswered == self.incarnation
    }

    /// Records that the current incarnation was asked to give tests back at its current share.
    pub fn ask(&mut self, now: Instant) {
        self.unanswered = self.incarnation;
        self.asked = Some(Asked {
            share: self.in_flight,
            at: now,
        });
    }

    /// Counts `count` tests as finished or returned.
    pub fn settle(&mut self, count: usize) {
        self.in_flight = self.in_flight.saturating_sub(count);
    }

    /// The slot is gone: its provider, waiting request, and pending steal are dropped.
    pub fn forget(&mut self) {
        self.incarnation = None;
        self.provider = None;
        self.parked = None;
        self.unanswered = None;
    }
}
