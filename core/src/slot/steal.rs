//! The steal handshake of one worker process, as a small machine.
//!
//! When an idle worker would take tests from this one, the Scheduler sends a steal request.
//! The coordinator then asks the process (`release`) to give back the end of its unstarted
//! queue, and the process answers with what it removed (`released`). Every request is answered
//! exactly once (with tests, or with nothing), and a race is decided here:
//!
//! ```text
//!   tests just sent, none started yet   -> defer: the process may not have read them; ask once
//!                                          it starts one, or when patience runs out
//!   asked, no answer within patience    -> answer "nothing" (a late `released` still counts)
//!   `released` never asked for          -> a protocol violation
//!   the process is gone                 -> a pending or deferred request is answered "nothing"
//! ```
//!
//! `R` is the request (the actor's steal message); what to ask for is the stealing policy's
//! business ([`crate::stealing`]).

/// The handshake's state for one process.
#[derive(Debug)]
pub struct Handshake<R> {
    /// Tests were sent and the process has not started one since.
    unconfirmed: bool,
    /// A request waiting for the process to confirm it has read its tests.
    deferred: Option<R>,
    /// A `release` was sent and its `released` has not come back.
    asked: bool,
}

impl<R> Default for Handshake<R> {
    fn default() -> Self {
        Handshake {
            unconfirmed: false,
            deferred: None,
            asked: false,
        }
    }
}

/// What to do with a steal request now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<R> {
    /// Work out what may go and ask the process for it (or answer "nothing" if nothing may).
    Ask(R),
    /// Held until the process starts a test; start the patience timer.
    Deferred,
}

impl<R> Handshake<R> {
    /// Tests were sent to the process.
    pub fn tests_sent(&mut self) {
        self.unconfirmed = true;
    }

    /// A steal request arrived; `working` says whether the process could give tests at all
    /// (working and not draining).
    pub fn requested(&mut self, request: R, working: bool) -> Step<R> {
        if self.unconfirmed && working {
            self.deferred = Some(request);
            Step::Deferred
        } else {
            Step::Ask(request)
        }
    }

    /// The process started a test: a deferred request is asked now.
    pub fn test_started(&mut self) -> Option<R> {
        self.unconfirmed = false;
        self.deferred.take()
    }

    /// The deferral's patience ran out: a request still deferred is asked now.
    pub fn deferral_expired(&mut self) -> Option<R> {
        let request = self.deferred.take()?;
        self.unconfirmed = false;
        Some(request)
    }

    /// Whether a `release` may be sent now (none is waiting for its answer); if so, it counts
    /// as sent.
    pub fn ask(&mut self) -> bool {
        !std::mem::replace(&mut self.asked, true)
    }

    /// Whether a `release` is unanswered. When its patience runs out and it still is, the
    /// requester hears "nothing" (a late answer still counts when it comes); while it is, no
    /// other may be sent.
    pub fn asking(&self) -> bool {
        self.asked
    }

    /// The process answered `released`; `false` if it was never asked (a violation).
    pub fn released(&mut self) -> bool {
        std::mem::take(&mut self.asked)
    }

    /// The process is gone: whether a request (asked or deferred) must be answered "nothing".
    pub fn forget(&mut self) -> bool {
        self.unconfirmed = false;
        std::mem::take(&mut self.asked) | self.deferred.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_right_after_tests_were_sent_waits_for_the_first_start() {
        let mut h = Handshake::default();
        h.tests_sent();
        assert_eq!(h.requested("r1", true), Step::Deferred);
        assert_eq!(h.test_started(), Some("r1"));
        // Confirmed now: the next request is asked at once.
        assert_eq!(h.requested("r2", true), Step::Ask("r2"));
    }

    #[test]
    fn a_deferred_request_is_asked_when_patience_runs_out() {
        let mut h = Handshake::default();
        h.tests_sent();
        assert_eq!(h.requested("r", true), Step::Deferred);
        assert_eq!(h.deferral_expired(), Some("r"));
        // Its timer firing again (or after a start took it) finds nothing.
        assert_eq!(h.deferral_expired(), None);
        assert_eq!(h.test_started(), None);
    }

    #[test]
    fn a_process_that_cannot_give_is_asked_at_once_and_answers_nothing() {
        let mut h: Handshake<&str> = Handshake::default();
        h.tests_sent();
        assert_eq!(h.requested("r", false), Step::Ask("r"));
    }

    #[test]
    fn one_release_at_a_time_and_a_late_answer_still_counts() {
        let mut h: Handshake<()> = Handshake::default();
        assert!(h.ask());
        assert!(!h.ask(), "a second release while one is unanswered");
        assert!(h.asking(), "the requester hears nothing after patience");
        assert!(h.released(), "a late answer is still the answer to the ask");
        assert!(!h.asking());
        assert!(!h.released(), "a second released was never asked for");
    }

    #[test]
    fn a_gone_process_answers_every_pending_request_once() {
        let mut h = Handshake::default();
        assert!(h.ask());
        assert!(h.forget());
        assert!(!h.forget(), "answered once");
        h.tests_sent();
        assert_eq!(h.requested("r", true), Step::Deferred);
        assert!(h.forget());
        assert_eq!(h.test_started(), None, "forgotten with the process");
        let mut idle: Handshake<()> = Handshake::default();
        assert!(!idle.forget(), "nothing pending, nothing to answer");
    }
}
