//! The ledger: the session's book of outcomes, and the keeper of the exactly-once invariant:
//! every collected test ends with exactly one outcome.
//!
//! It reads the event stream (`Collected`, `TestFinished`, `Warning`) and decides, with no I/O:
//!
//! ```text
//!   Collected{tests}        -> the tests to expect, in order
//!   TestFinished (first)    -> settled, tallied; the --maxfail-th failure -> MaxfailReached (once)
//!   TestFinished (again, or for a test never collected) -> Violation (the outcome is dropped)
//!   Warning                 -> tallied (one raised outside tests counts once)
//!   session end             -> every test still open settled as "not run"; a violation turns
//!                              the end into Aborted (internal error, exit 3)
//! ```
//!
//! The Reporter (in `herd-actors`) feeds it every event and carries out its effects.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::outcome::{Outcome, SessionEnd, Tally, Verdict};
use crate::TestId;

/// One test's final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Test id.
    pub test: TestId,
    /// The worker that ran it, if one did.
    pub worker: Option<String>,
    /// Its one outcome, duration, failure text, ...
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl TestResult {
    /// The `TestFinished` event for this result.
    pub fn event(&self) -> Event {
        Event::TestFinished {
            test: self.test.clone(),
            worker: self.worker.clone(),
            verdict: self.verdict.clone(),
        }
    }
}

/// A warning as the summary lists it: the test that raised it (if any) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedWarning {
    /// The test that raised it; `None` outside tests.
    pub test: Option<TestId>,
    /// The warning as text.
    pub text: String,
}

/// What the ledger asks its shell to do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `--maxfail` failures were reached: stop dispatching (said once per session).
    MaxfailReached,
    /// An outcome broke the exactly-once invariant; it was dropped and the session will end
    /// as an internal error. The text says what happened.
    Violation(String),
}

/// The book of outcomes of one session.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    collection: Vec<TestId>,
    index: HashMap<TestId, usize>,
    results: Vec<Option<TestResult>>,
    tally: Tally,
    violations: Vec<String>,
    warnings: Vec<RaisedWarning>,
    maxfail: Option<usize>,
    maxfail_reached: bool,
}

impl Ledger {
    /// An empty ledger; `maxfail` is `--maxfail` (0 or `None`: no limit).
    pub fn new(maxfail: Option<usize>) -> Ledger {
        Ledger {
            maxfail: maxfail.filter(|n| *n > 0),
            ..Ledger::default()
        }
    }

    /// Takes in one event of the session; most events mean nothing to the ledger.
    pub fn handle(&mut self, event: &Event) -> Option<Effect> {
        match event {
            Event::Collected { tests, deselected } => {
                self.collected(tests);
                self.tally.set_reported("deselected", deselected.len());
                None
            }
            Event::TestFinished {
                test,
                worker,
                verdict,
            } => self.settle(TestResult {
                test: test.clone(),
                worker: worker.clone(),
                verdict: verdict.clone(),
            }),
            Event::Warning {
                test,
                text,
                outside_tests,
                ..
            } => {
                self.warned(test, text, *outside_tests);
                None
            }
            _ => None,
        }
    }

    fn collected(&mut self, tests: &[TestId]) {
        self.index = tests
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        self.results = vec![None; tests.len()];
        self.collection = tests.to_vec();
    }

    fn warned(&mut self, test: &Option<TestId>, text: &str, outside_tests: bool) {
        // Every worker collects: a warning raised outside tests counts once.
        let seen = outside_tests
            && self
                .warnings
                .iter()
                .any(|w| w.test.is_none() && w.text == text);
        if !seen {
            self.tally.add_reported("warnings");
            self.warnings.push(RaisedWarning {
                test: test.clone(),
                text: text.to_string(),
            });
        }
    }

    fn settle(&mut self, result: TestResult) -> Option<Effect> {
        let Some(&i) = self.index.get(&result.test) else {
            return Some(self.violation(format!(
                "outcome {} for {} which was never collected",
                result.verdict.outcome, result.test
            )));
        };
        if let Some(first) = &self.results[i] {
            let msg = format!(
                "second outcome {} for {} (first: {} on {})",
                result.verdict.outcome,
                result.test,
                first.verdict.outcome,
                first.worker.as_deref().unwrap_or("-")
            );
            return Some(self.violation(msg));
        }
        let failed = result.verdict.outcome.is_failure();
        self.tally.add(result.verdict.outcome);
        for category in &result.verdict.categories {
            self.tally.add_reported(category);
        }
        self.results[i] = Some(result);
        (failed && self.maxfail_now()).then_some(Effect::MaxfailReached)
    }

    /// Whether this failure is the one that reaches `--maxfail` (true at most once).
    fn maxfail_now(&mut self) -> bool {
        let reached = self.maxfail.is_some_and(|max| self.tally.failures() >= max);
        let first = reached && !self.maxfail_reached;
        self.maxfail_reached |= reached;
        first
    }

    fn violation(&mut self, msg: String) -> Effect {
        self.violations.push(msg.clone());
        Effect::Violation(msg)
    }

    /// Settles every collected test still without an outcome as "not run" and returns those
    /// results, in collection order (their events are still to be published).
    pub fn settle_the_rest(&mut self) -> Vec<TestResult> {
        let mut not_run = Vec::new();
        for (i, slot) in self.results.iter_mut().enumerate() {
            if slot.is_none() {
                let result = TestResult {
                    test: self.collection[i].clone(),
                    worker: None,
                    verdict: Verdict::decided(Outcome::NotRun, 0.0, None, None),
                };
                self.tally.add(Outcome::NotRun);
                *slot = Some(result.clone());
                not_run.push(result);
            }
        }
        not_run
    }

    /// How the session really ended: `end`, unless the exactly-once check failed (then
    /// `Aborted`, an internal error). Call it after [`Ledger::settle_the_rest`].
    pub fn checked_end(&mut self, end: SessionEnd) -> SessionEnd {
        if self.tally.total() != self.collection.len() && self.violations.is_empty() {
            self.violations.push(format!(
                "{} outcomes for {} collected tests",
                self.tally.total(),
                self.collection.len()
            ));
        }
        if self.violations.is_empty() {
            return end;
        }
        end.max(SessionEnd::Aborted(format!(
            "internal error: the exactly-once check failed ({})",
            self.violations.join("; ")
        )))
    }

    /// The collected tests, in order (empty before `Collected`).
    pub fn collection(&self) -> &[TestId] {
        &self.collection
    }

    /// Tests per outcome so far, and the runner's reported categories (warnings among them).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Every settled result, in collection order.
    pub fn results(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().flatten()
    }

    /// What broke the exactly-once invariant so far (empty in a healthy session).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Every warning counted, in order (one raised outside tests only once).
    pub fn warnings(&self) -> &[RaisedWarning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(tests: &[&str]) -> Event {
        Event::Collected {
            tests: tests.iter().map(|t| t.to_string()).collect(),
            deselected: Vec::new(),
        }
    }

    fn finished(test: &str, outcome: Outcome) -> Event {
        Event::TestFinished {
            test: test.into(),
            worker: Some("w1".into()),
            verdict: Verdict::decided(outcome, 0.1, None, None),
        }
    }

    fn warning(test: Option<&str>, text: &str, outside_tests: bool) -> Event {
        Event::Warning {
            worker: "w1".into(),
            test: test.map(String::from),
            text: text.into(),
            outside_tests,
        }
    }

    /// Feeds `events` to a fresh ledger and returns it with the effects, one per event.
    fn run(maxfail: Option<usize>, events: &[Event]) -> (Ledger, Vec<Option<Effect>>) {
        let mut ledger = Ledger::new(maxfail);
        let effects = events.iter().map(|e| ledger.handle(e)).collect();
        (ledger, effects)
    }

    fn violation(text: &str) -> Option<Effect> {
        Some(Effect::Violation(text.into()))
    }

    /// A named case: events and the effect of each.
    type Case = (&'static str, Vec<Event>, Vec<Option<Effect>>);

    #[test]
    fn exactly_once_violations_are_said_and_the_outcome_dropped() {
        use Outcome::*;
        // (case, events, the effect of each event)
        let cases: [Case; 4] = [
            (
                "a second outcome",
                vec![
                    collected(&["a"]),
                    finished("a", Passed),
                    finished("a", Failed),
                ],
                vec![
                    None,
                    None,
                    violation("second outcome FAILED for a (first: PASSED on w1)"),
                ],
            ),
            (
                "a test never collected",
                vec![collected(&["a"]), finished("ghost", Passed)],
                vec![
                    None,
                    violation("outcome PASSED for ghost which was never collected"),
                ],
            ),
            (
                "an outcome before collection",
                vec![finished("a", Passed), collected(&["a"])],
                vec![
                    violation("outcome PASSED for a which was never collected"),
                    None,
                ],
            ),
            (
                "one outcome each",
                vec![
                    collected(&["a", "b"]),
                    finished("b", Failed),
                    finished("a", Passed),
                ],
                vec![None, None, None],
            ),
        ];
        for (what, events, expected) in cases {
            let (ledger, effects) = run(None, &events);
            assert_eq!(effects, expected, "{what}");
            let said = expected.iter().flatten().count();
            assert_eq!(ledger.violations().len(), said, "{what}");
            assert_eq!(ledger.results().count(), events.len() - 1 - said, "{what}");
        }
    }

    #[test]
    fn the_first_outcome_stands_and_a_violation_aborts_the_session() {
        let (mut ledger, _) = run(
            None,
            &[
                collected(&["a", "b"]),
                finished("a", Outcome::Passed),
                finished("a", Outcome::Failed),
            ],
        );
        let not_run = ledger.settle_the_rest();
        assert_eq!(not_run.len(), 1);
        let end = ledger.checked_end(SessionEnd::Completed);
        assert!(matches!(end, SessionEnd::Aborted(ref why) if why.contains("exactly-once")));
        let outcomes: Vec<Outcome> = ledger.results().map(|r| r.verdict.outcome).collect();
        assert_eq!(outcomes, [Outcome::Passed, Outcome::NotRun]);
    }

    #[test]
    fn tests_without_an_outcome_are_settled_as_not_run_in_collection_order() {
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&["a", "b", "c"], &["b"], &["a", "c"]),
            (&["a", "b"], &["a", "b"], &[]),
            (&["a"], &[], &["a"]),
            (&[], &[], &[]),
        ];
        for (tests, ran, open) in cases {
            let mut events = vec![collected(tests)];
            events.extend(ran.iter().map(|t| finished(t, Outcome::Passed)));
            let (mut ledger, _) = run(None, &events);
            let not_run = ledger.settle_the_rest();
            let ids: Vec<&str> = not_run.iter().map(|r| r.test.as_str()).collect();
            assert_eq!(ids, open);
            assert!(not_run
                .iter()
                .all(|r| r.worker.is_none() && r.verdict.outcome == Outcome::NotRun));
            assert_eq!(ledger.tally().total(), tests.len());
            assert_eq!(ledger.tally().get(Outcome::NotRun), open.len());
            // Settled once: a second call finds nothing open.
            assert!(ledger.settle_the_rest().is_empty());
            let end = SessionEnd::Interrupted("SIGINT".into());
            assert_eq!(ledger.checked_end(end.clone()), end);
            assert!(ledger.violations().is_empty());
        }
    }

    #[test]
    fn a_collection_that_changes_after_outcomes_fails_the_count_check() {
        let (mut ledger, _) = run(
            None,
            &[
                collected(&["a"]),
                finished("a", Outcome::Passed),
                collected(&["a"]),
            ],
        );
        ledger.settle_the_rest();
        let end = ledger.checked_end(SessionEnd::Completed);
        assert_eq!(ledger.violations(), ["2 outcomes for 1 collected tests"]);
        assert!(matches!(end, SessionEnd::Aborted(_)));
    }

    #[test]
    fn maxfail_counts_failures_and_errors_and_fires_once() {
        use Outcome::*;
        // (--maxfail, outcomes in order, the index of the outcome that reaches it)
        let cases: [(Option<usize>, &[Outcome], Option<usize>); 8] = [
            (None, &[Failed, Failed, Failed], None),
            (Some(0), &[Failed, Failed], None),
            (Some(1), &[Passed, Failed, Failed], Some(1)),
            (Some(2), &[Failed, Passed, Error, Failed], Some(2)),
            (Some(2), &[Crashed, TimedOut], Some(1)),
            (Some(1), &[Passed, Skipped, Xfailed, Xpassed], None),
            (Some(3), &[Failed, Failed], None),
            (Some(1), &[NotRun, Failed], Some(1)),
        ];
        for (maxfail, outcomes, reached) in cases {
            let tests: Vec<String> = (0..outcomes.len()).map(|i| format!("t{i}")).collect();
            let mut events = vec![Event::Collected {
                tests: tests.clone(),
                deselected: Vec::new(),
            }];
            events.extend(outcomes.iter().zip(&tests).map(|(o, t)| finished(t, *o)));
            let (_, effects) = run(maxfail, &events);
            let fired: Vec<usize> = effects[1..]
                .iter()
                .enumerate()
                .filter(|(_, e)| **e == Some(Effect::MaxfailReached))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(fired, Vec::from_iter(reached), "{maxfail:?} {outcomes:?}");
        }
    }

    #[test]
    fn a_duplicate_failure_does_not_count_toward_maxfail() {
        let events = [
            collected(&["a", "b"]),
            finished("a", Outcome::Failed),
            finished("a", Outcome::Failed),
        ];
        let (ledger, effects) = run(Some(2), &events);
        assert!(!effects.contains(&Some(Effect::MaxfailReached)));
        assert_eq!(ledger.tally().failures(), 1);
    }

    #[test]
    fn the_tally_counts_outcomes_reported_categories_and_warnings() {
        let mut verdict = Verdict::decided(Outcome::Passed, 0.1, None, None);
        verdict.categories = vec!["passed".into(), "error".into()];
        let events = [
            collected(&["a", "b"]),
            Event::TestFinished {
                test: "a".into(),
                worker: Some("w1".into()),
                verdict,
            },
            finished("b", Outcome::Skipped),
            warning(Some("a"), "deprecated", false),
            warning(Some("b"), "deprecated", false),
            warning(None, "at import", true),
            warning(None, "at import", true),
            warning(None, "other import", true),
        ];
        let (ledger, _) = run(None, &events);
        let tally = ledger.tally();
        assert_eq!(tally.get(Outcome::Passed), 1);
        assert_eq!(tally.get(Outcome::Skipped), 1);
        assert_eq!(tally.total(), 2);
        assert_eq!(tally.reported("passed"), 1);
        assert_eq!(tally.reported("error"), 1);
        assert_eq!(
            tally.reported("warnings"),
            4,
            "the import warning counts once"
        );
        let texts: Vec<&str> = ledger.warnings().iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            texts,
            ["deprecated", "deprecated", "at import", "other import"]
        );
    }
}
