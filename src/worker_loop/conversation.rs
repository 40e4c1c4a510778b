//! The worker's side of protocol v1 as a plain value: what it holds, what it answers, what it
//! does next. No socket, no thread, no clock: [`super::WorkerLoop`] feeds it the coordinator's
//! messages and carries out what it returns.
//!
//! ```text
//!   open ──> [collection] [need_tests]
//!   next_step ──> Start(test, frame) ──(test runs; messages still taken)──> finished(reports)
//!             ──> Wait(frame)        ──(until a message arrives)
//!             ──> Finish(frame)      ── the frame ends with `shutdown`
//! ```
//!
//! A test's reports leave with the next frame (the next start, or the shutdown), so a worker
//! sends one frame per test. The next group is asked for as the last test held starts, so it is
//! there when that test ends.

use std::collections::{HashSet, VecDeque};

use herd_core::collection::digest;
use herd_core::protocol::{CollectScope, CoordinatorMessage, PhaseReport, WorkerMessage};
use herd_core::TestId;

/// What the worker holds (tests dealt and not started) and where the conversation stands.
#[derive(Debug, Default)]
pub struct Conversation {
    queue: VecDeque<TestId>,
    /// A `need_tests` is out and unanswered.
    requested: bool,
    /// The coordinator has no more tests.
    no_more: bool,
    /// The coordinator said stop (or the worker is leaving).
    stop: bool,
    /// The worker leaves early (its host asked it to go): tests dealt from now on go back.
    leaving: bool,
    /// Messages that leave with the next frame.
    outbox: Vec<WorkerMessage>,
    /// The collection, kept to send again as ids if the coordinator asks.
    collection: Vec<TestId>,
}

/// What to do between tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send `frame` (it ends with the test's `test_started`), then run `test`.
    Start {
        /// The test to run now.
        test: TestId,
        /// The frame to send first.
        frame: Vec<WorkerMessage>,
    },
    /// Nothing to run yet: send `frame` (possibly empty) and wait for a message.
    Wait {
        /// The frame to send first.
        frame: Vec<WorkerMessage>,
    },
    /// The work is over: send `frame` (it ends with `shutdown`) and exit.
    Finish {
        /// The last frame.
        frame: Vec<WorkerMessage>,
    },
}

/// How a coordinator's message is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Nothing to send now.
    Nothing,
    /// Send this frame now (a `released`, a collection asked for again).
    Send(Vec<WorkerMessage>),
    /// The coordinator sent an `error`: exit.
    Refused(String),
}

impl Conversation {
    /// A conversation about `collection`; returns it with its opening messages, each its own
    /// frame: the collection (as a digest when the `welcome` asked for one), then `need_tests`.
    pub fn open(
        collection: Vec<TestId>,
        scope: Option<&CollectScope>,
    ) -> (Conversation, [WorkerMessage; 2]) {
        let report = if scope == Some(&CollectScope::Digest) {
            // The coordinator has the reference: a digest is enough (the ids if it asks).
            WorkerMessage::Collection {
                tests: Vec::new(),
                errors: Vec::new(),
                herd_groups: Default::default(),
                files: None,
                scope: Some(CollectScope::Digest),
                digest: Some(digest(&collection)),
                deselected: Vec::new(),
            }
        } else {
            WorkerMessage::collection(collection.clone())
        };
        let conversation = Conversation {
            requested: true,
            collection,
            ..Conversation::default()
        };
        (conversation, [report, WorkerMessage::NeedTests])
    }

    /// Takes one message from the coordinator (between tests or while one runs).
    pub fn take(&mut self, message: CoordinatorMessage) -> Answer {
        match message {
            CoordinatorMessage::Tests { tests } if self.leaving => {
                // Dealt before the coordinator heard this worker is leaving: given back.
                self.requested = false;
                if !tests.is_empty() {
                    return Answer::Send(vec![WorkerMessage::Leaving { tests }]);
                }
            }
            CoordinatorMessage::Tests { tests } => {
                self.requested = false;
                self.no_more |= tests.is_empty();
                self.queue.extend(tests);
            }
            CoordinatorMessage::Release { tests } => return Answer::Send(self.release(&tests)),
            CoordinatorMessage::CollectionNeeded => {
                let tests = std::mem::take(&mut self.collection);
                return Answer::Send(vec![WorkerMessage::collection(tests)]);
            }
            CoordinatorMessage::Stop => self.stop = true,
            CoordinatorMessage::Error { message } => return Answer::Refused(message),
            CoordinatorMessage::Welcome { .. }
            | CoordinatorMessage::FileAccepted { .. }
            | CoordinatorMessage::Assigned { .. }
            | CoordinatorMessage::Full { .. } => {}
        }
        Answer::Nothing
    }

    /// The worker's host asked it to go (SIGTERM): its unstarted tests are given back at once
    /// (`leaving`), the running test (if any) finishes, then `shutdown` goes. Returns the frame
    /// to send now (with whatever waited in the outbox). Once is enough; later calls send
    /// nothing.
    pub fn leave(&mut self) -> Vec<WorkerMessage> {
        if self.leaving {
            return Vec::new();
        }
        self.leaving = true;
        self.stop = true;
        let tests = self.queue.drain(..).collect();
        self.outbox.push(WorkerMessage::Leaving { tests });
        self.take_outbox()
    }

    /// Work stealing: gives back those of `wanted` that have not started (the running test is
    /// no longer in the queue), asks for more if that empties the queue, and returns the frame
    /// to send at once (with whatever was waiting in the outbox).
    fn release(&mut self, wanted: &[TestId]) -> Vec<WorkerMessage> {
        let wanted: HashSet<&TestId> = wanted.iter().collect();
        let (given, kept): (Vec<TestId>, Vec<TestId>) =
            self.queue.drain(..).partition(|t| wanted.contains(t));
        self.queue = kept.into();
        self.outbox.push(WorkerMessage::Released { tests: given });
        self.ask_if_empty();
        self.take_outbox()
    }

    /// What to do now that no test runs.
    pub fn next_step(&mut self) -> Step {
        if self.stop || (self.queue.is_empty() && self.no_more) {
            self.outbox.push(WorkerMessage::Shutdown);
            return Step::Finish {
                frame: self.take_outbox(),
            };
        }
        let Some(test) = self.queue.pop_front() else {
            return Step::Wait {
                frame: self.take_outbox(),
            };
        };
        self.ask_if_empty();
        self.outbox
            .push(WorkerMessage::TestStarted { test: test.clone() });
        Step::Start {
            test,
            frame: self.take_outbox(),
        }
    }

    /// The running test ended with `reports`: they leave with the next frame.
    pub fn finished(&mut self, reports: Vec<PhaseReport>) {
        self.outbox
            .extend(reports.into_iter().map(WorkerMessage::Report));
    }

    /// Whatever waits to be sent, now (before the worker misbehaves on purpose, for instance).
    pub fn take_outbox(&mut self) -> Vec<WorkerMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// The tests held and not started, in order.
    pub fn queued(&self) -> impl Iterator<Item = &TestId> {
        self.queue.iter()
    }

    /// Asks for the next group when nothing is left to start (before the running test ends).
    fn ask_if_empty(&mut self) {
        if self.stop {
            return;
        }
        if self.queue.is_empty() && !self.no_more && !self.requested {
            self.outbox.push(WorkerMessage::NeedTests);
            self.requested = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::outcome::{Phase, PhaseOutcome};

    fn ids(names: &[&str]) -> Vec<TestId> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn tests(names: &[&str]) -> CoordinatorMessage {
        CoordinatorMessage::Tests { tests: ids(names) }
    }

    fn started(test: &str) -> WorkerMessage {
        WorkerMessage::TestStarted { test: test.into() }
    }

    fn released(names: &[&str]) -> WorkerMessage {
        WorkerMessage::Released { tests: ids(names) }
    }

    fn report(test: &str) -> PhaseReport {
        PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0)
    }

    /// A conversation past its opening, holding `held` (its request answered).
    fn holding(held: &[&str]) -> Conversation {
        let (mut c, _) = Conversation::open(ids(&["a", "b", "c", "d"]), None);
        assert_eq!(c.take(tests(held)), Answer::Nothing);
        c
    }

    fn start(c: &mut Conversation) -> (TestId, Vec<WorkerMessage>) {
        match c.next_step() {
            Step::Start { test, frame } => (test, frame),
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn leaving_gives_back_the_unstarted_tests_and_whatever_comes_later() {
        let mut c = holding(&["a", "b", "c"]);
        assert_eq!(start(&mut c).0, "a");
        let leaving = |names: &[&str]| WorkerMessage::Leaving { tests: ids(names) };
        assert_eq!(c.leave(), vec![leaving(&["b", "c"])]);
        assert_eq!(c.leave(), vec![]);
        // Tests dealt before the coordinator heard go straight back.
        assert_eq!(c.take(tests(&["d"])), Answer::Send(vec![leaving(&["d"])]));
        c.finished(vec![report("a")]);
        assert_eq!(
            c.next_step(),
            Step::Finish {
                frame: vec![WorkerMessage::Report(report("a")), WorkerMessage::Shutdown]
            }
        );
    }

    #[test]
    fn the_opening_is_the_collection_then_a_request() {
        let (_, opening) = Conversation::open(ids(&["a", "b"]), None);
        assert_eq!(
            opening,
            [
                WorkerMessage::collection(ids(&["a", "b"])),
                WorkerMessage::NeedTests
            ]
        );
        let (mut c, opening) = Conversation::open(ids(&["a", "b"]), Some(&CollectScope::Digest));
        let WorkerMessage::Collection { tests, digest, .. } = &opening[0] else {
            panic!("{opening:?}");
        };
        assert!(tests.is_empty());
        assert_eq!(
            digest.as_deref(),
            Some(super::digest(&ids(&["a", "b"])).as_str())
        );
        // Asked for the ids after all: they go at once, whatever the outbox holds.
        assert_eq!(
            c.take(CoordinatorMessage::CollectionNeeded),
            Answer::Send(vec![WorkerMessage::collection(ids(&["a", "b"]))])
        );
    }

    #[test]
    fn the_next_group_is_asked_for_as_the_last_held_test_starts() {
        let mut c = holding(&["a", "b"]);
        assert_eq!(start(&mut c), ("a".into(), vec![started("a")]));
        c.finished(vec![report("a")]);
        // `b` is the last: the request goes with its start, after the reports of `a`.
        let (test, frame) = start(&mut c);
        assert_eq!(test, "b");
        assert_eq!(
            frame,
            vec![
                WorkerMessage::Report(report("a")),
                WorkerMessage::NeedTests,
                started("b")
            ]
        );
        // Unanswered: no second request, the reports wait for the next frame.
        c.finished(vec![report("b")]);
        assert_eq!(
            c.next_step(),
            Step::Wait {
                frame: vec![WorkerMessage::Report(report("b"))]
            }
        );
        assert_eq!(c.next_step(), Step::Wait { frame: vec![] });
    }

    #[test]
    fn no_request_goes_out_while_one_is_unanswered_or_after_the_last_group() {
        let (mut c, _) = Conversation::open(ids(&["a"]), None);
        assert_eq!(c.next_step(), Step::Wait { frame: vec![] });
        c.take(tests(&["a"]));
        assert_eq!(
            start(&mut c).1,
            vec![WorkerMessage::NeedTests, started("a")]
        );
        c.take(tests(&[]));
        c.finished(vec![report("a")]);
        assert_eq!(
            c.next_step(),
            Step::Finish {
                frame: vec![WorkerMessage::Report(report("a")), WorkerMessage::Shutdown]
            }
        );
    }

    /// How a `release` is answered, given the test running and the queue behind it.
    #[test]
    fn a_release_gives_back_only_unstarted_tests() {
        struct Case {
            held: &'static [&'static str],
            starts: usize,
            wanted: &'static [&'static str],
            given: &'static [&'static str],
            kept: &'static [&'static str],
            asks: bool,
        }
        let cases = [
            // `a` runs: `b` and `c` are given back; the queue is empty, so it asks for more.
            Case {
                held: &["a", "b", "c"],
                starts: 1,
                wanted: &["b", "c"],
                given: &["b", "c"],
                kept: &[],
                asks: true,
            },
            // The running test is never given back.
            Case {
                held: &["a", "b", "c"],
                starts: 1,
                wanted: &["a", "c"],
                given: &["c"],
                kept: &["b"],
                asks: false,
            },
            // Started meanwhile: nothing to give (an empty answer still goes).
            Case {
                held: &["a", "b"],
                starts: 2,
                wanted: &["b"],
                given: &[],
                kept: &[],
                asks: false,
            },
            // Between tests, nothing running: the queue's end goes back.
            Case {
                held: &["a", "b", "c"],
                starts: 0,
                wanted: &["b", "c"],
                given: &["b", "c"],
                kept: &["a"],
                asks: false,
            },
            // Everything back before any started: ask again.
            Case {
                held: &["a", "b"],
                starts: 0,
                wanted: &["a", "b"],
                given: &["a", "b"],
                kept: &[],
                asks: true,
            },
            // Ids it does not hold are ignored.
            Case {
                held: &["a", "b"],
                starts: 1,
                wanted: &["z", "b"],
                given: &["b"],
                kept: &[],
                asks: true,
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let mut c = holding(case.held);
            let mut ask_sent = false;
            for _ in 0..case.starts {
                ask_sent |= start(&mut c).1.contains(&WorkerMessage::NeedTests);
            }
            let mut want = vec![released(case.given)];
            if case.asks {
                want.push(WorkerMessage::NeedTests);
            }
            let release = CoordinatorMessage::Release {
                tests: ids(case.wanted),
            };
            // A request already out (sent with the last start) is not sent twice.
            let answer = c.take(release);
            if ask_sent {
                want.retain(|m| *m != WorkerMessage::NeedTests);
            }
            assert_eq!(answer, Answer::Send(want), "case {i}");
            assert_eq!(
                c.queued().collect::<Vec<_>>(),
                case.kept.iter().collect::<Vec<_>>(),
                "case {i}"
            );
        }
    }

    #[test]
    fn a_release_takes_the_waiting_reports_along() {
        let mut c = holding(&["a", "b", "c"]);
        start(&mut c);
        c.finished(vec![report("a")]);
        let answer = c.take(CoordinatorMessage::Release { tests: ids(&["c"]) });
        assert_eq!(
            answer,
            Answer::Send(vec![WorkerMessage::Report(report("a")), released(&["c"])])
        );
        assert_eq!(
            start(&mut c),
            ("b".into(), vec![WorkerMessage::NeedTests, started("b")])
        );
    }

    #[test]
    fn stop_lets_the_running_test_finish_and_starts_no_other() {
        let mut c = holding(&["a", "b"]);
        start(&mut c);
        assert_eq!(c.take(CoordinatorMessage::Stop), Answer::Nothing);
        c.finished(vec![report("a")]);
        assert_eq!(
            c.next_step(),
            Step::Finish {
                frame: vec![WorkerMessage::Report(report("a")), WorkerMessage::Shutdown]
            }
        );
        // Stopped while waiting for work: shut down at once.
        let (mut idle, _) = Conversation::open(ids(&["a"]), None);
        idle.take(CoordinatorMessage::Stop);
        assert_eq!(
            idle.next_step(),
            Step::Finish {
                frame: vec![WorkerMessage::Shutdown]
            }
        );
    }

    #[test]
    fn an_error_means_exit_and_other_messages_change_nothing() {
        let mut c = holding(&["a"]);
        assert_eq!(
            c.take(CoordinatorMessage::Error {
                message: "bad token".into()
            }),
            Answer::Refused("bad token".into())
        );
        let welcome = CoordinatorMessage::Welcome {
            worker: "w1".into(),
            incarnation: 1,
            collect: None,
        };
        assert_eq!(c.take(welcome), Answer::Nothing);
        let accepted = CoordinatorMessage::FileAccepted { file: "f".into() };
        assert_eq!(c.take(accepted), Answer::Nothing);
        assert_eq!(c.queued().collect::<Vec<_>>(), ["a"]);
    }
}
