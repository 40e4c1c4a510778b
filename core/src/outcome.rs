//! A test's phases, its single final outcome, the session tally and exit codes.
//!
//! A test reports up to three phases (setup, call, teardown). Its outcome is decided once, when
//! the teardown report arrives, so a failing teardown is never shown as a pass. Tests that never
//! report (their worker crashed, timed out, or the session ended first) get an outcome from the
//! coordinator instead: crashed, timed out or not run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::PhaseReport;

/// A phase of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fixtures and other preparation.
    Setup,
    /// The test body.
    Call,
    /// Cleanup; its report ends the test.
    Teardown,
}

impl Phase {
    /// The phase's name as it appears on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Call => "call",
            Phase::Teardown => "teardown",
        }
    }
}

/// The longest duration a phase may report, in seconds.
const YEAR_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// How one phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseOutcome {
    /// The phase succeeded.
    Passed,
    /// The phase failed.
    Failed,
    /// The phase was skipped (or, with `wasxfail`, failed as expected).
    Skipped,
    /// The phase failed and the test is run again (pytest-rerunfailures): not a final outcome.
    Rerun,
    /// An outcome word a runner's plugin added that herd does not know: never a pass.
    #[serde(other)]
    Other,
}

/// The one final outcome of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The test failed.
    Failed,
    /// The test passed.
    Passed,
    /// The test was skipped.
    Skipped,
    /// The test failed, as it was expected to.
    Xfailed,
    /// The test passed although it was expected to fail.
    Xpassed,
    /// Setup or teardown failed.
    Error,
    /// The worker process died while the test ran.
    Crashed,
    /// The test ran longer than `--timeout`.
    TimedOut,
    /// The session ended before the test ran.
    NotRun,
}

impl Outcome {
    /// Every outcome, in the order the summary line lists them (pytest's order first).
    pub const ALL: [Outcome; 9] = [
        Outcome::Failed,
        Outcome::Passed,
        Outcome::Skipped,
        Outcome::Xfailed,
        Outcome::Xpassed,
        Outcome::Error,
        Outcome::Crashed,
        Outcome::TimedOut,
        Outcome::NotRun,
    ];

    /// Whether this outcome makes the session fail (exit code 1).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Error | Outcome::Crashed | Outcome::TimedOut
        )
    }

    /// The word shown on a test's line, like pytest's verbose output.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Failed => "FAILED",
            Outcome::Passed => "PASSED",
            Outcome::Skipped => "SKIPPED",
            Outcome::Xfailed => "XFAIL",
            Outcome::Xpassed => "XPASS",
            Outcome::Error => "ERROR",
            Outcome::Crashed => "CRASHED",
            Outcome::TimedOut => "TIMEOUT",
            Outcome::NotRun => "NOT RUN",
        }
    }

    /// The progress character, like pytest's (`.` passed, `F` failed, `E` error, ...).
    pub fn letter(self) -> char {
        match self {
            Outcome::Failed => 'F',
            Outcome::Passed => '.',
            Outcome::Skipped => 's',
            Outcome::Xfailed => 'x',
            Outcome::Xpassed => 'X',
            Outcome::Error => 'E',
            Outcome::Crashed => 'C',
            Outcome::TimedOut => 'T',
            Outcome::NotRun => '-',
        }
    }

    /// The noun used in the summary line for `count` tests with this outcome.
    pub fn noun(self, count: usize) -> &'static str {
        match (self, count == 1) {
            (Outcome::Failed, _) => "failed",
            (Outcome::Passed, _) => "passed",
            (Outcome::Skipped, _) => "skipped",
            (Outcome::Xfailed, _) => "xfailed",
            (Outcome::Xpassed, _) => "xpassed",
            (Outcome::Error, true) => "error",
            (Outcome::Error, false) => "errors",
            (Outcome::Crashed, _) => "crashed",
            (Outcome::TimedOut, _) => "timed out",
            (Outcome::NotRun, _) => "not run",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The phases reported so far for one running test.
#[derive(Debug, Clone, Default)]
pub struct TestRecord {
    phases: Vec<PhaseReport>,
}

/// A finished test as the coordinator reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The final outcome.
    pub outcome: Outcome,
    /// Seconds spent in all phases.
    pub duration: f64,
    /// The failure text of every failing phase, or the skip reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The one-line reason (the crash message of the first failing phase, or the skip reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The runner's summary categories of the test's reports (pytest counts reports, not
    /// tests: a test whose teardown fails counts as passed and as an error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Properties the test recorded, from all its phases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, serde_json::Value)>,
}

impl Verdict {
    /// An outcome herd decides itself (crashed, timed out, not run): no runner categories.
    pub fn decided(
        outcome: Outcome,
        duration: f64,
        message: Option<String>,
        details: Option<String>,
    ) -> Verdict {
        Verdict {
            outcome,
            duration,
            details,
            message,
            categories: Vec::new(),
            properties: Vec::new(),
        }
    }
}

impl TestRecord {
    /// Adds one phase report. A duration no clock could give (negative, NaN, infinite, more than
    /// a year) counts as zero: a worker's figure cannot break the summary, history or JUnit.
    pub fn add(&mut self, mut report: PhaseReport) {
        if !(0.0..=YEAR_SECONDS).contains(&report.duration) {
            report.duration = 0.0;
        }
        self.phases.push(report);
    }

    /// Seconds spent so far.
    pub fn duration(&self) -> f64 {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The final outcome from the phases reported (called after teardown).
    ///
    /// Setup failing is an error; a skip anywhere before the call is a skip; the call decides
    /// passed, failed, skipped, xfailed or xpassed; a failing teardown turns a pass into an error.
    pub fn verdict(&self) -> Verdict {
        // Only the last round counts: a test run again (pytest-rerunfailures) ends each earlier
        // round with a `rerun` report (or an intermediate teardown after one).
        let round_start = self
            .phases
            .iter()
            .rposition(|p| p.intermediate || p.outcome == PhaseOutcome::Rerun)
            .map_or(0, |i| i + 1);
        let round = &self.phases[round_start..];
        let phase = |when: Phase| {
            let main = |p: &&PhaseReport| p.when == when && p.subtest.is_none();
            round.iter().rev().find(main)
        };
        let mut outcome = Outcome::Passed;
        let mut unproven = None;
        if let Some(setup) = phase(Phase::Setup) {
            outcome = match setup.outcome {
                PhaseOutcome::Failed | PhaseOutcome::Rerun | PhaseOutcome::Other => Outcome::Error,
                PhaseOutcome::Skipped if setup.wasxfail.is_some() => Outcome::Xfailed,
                PhaseOutcome::Skipped => Outcome::Skipped,
                PhaseOutcome::Passed => Outcome::Passed,
            };
        }
        if outcome == Outcome::Passed {
            match phase(Phase::Call) {
                Some(call) => {
                    outcome = match (call.outcome, call.wasxfail.is_some()) {
                        (PhaseOutcome::Passed, false) => Outcome::Passed,
                        (PhaseOutcome::Passed, true) => Outcome::Xpassed,
                        (PhaseOutcome::Failed, _) => Outcome::Failed,
                        (PhaseOutcome::Skipped, true) => Outcome::Xfailed,
                        (PhaseOutcome::Skipped, false) => Outcome::Skipped,
                        (PhaseOutcome::Rerun | PhaseOutcome::Other, _) => {
                            unproven = Some("its last call report has no final outcome");
                            Outcome::Error
                        }
                    }
                }
                // A pass needs a report that says so: a setup and a teardown are not enough.
                None => {
                    unproven = Some("no report of its call phase arrived");
                    outcome = Outcome::Error;
                }
            }
        }
        let subtest_failed = round
            .iter()
            .any(|p| p.subtest.is_some() && p.outcome == PhaseOutcome::Failed);
        if subtest_failed && outcome == Outcome::Passed {
            outcome = Outcome::Failed;
        }
        let teardown_failed =
            phase(Phase::Teardown).is_some_and(|t| t.outcome == PhaseOutcome::Failed);
        if teardown_failed && !matches!(outcome, Outcome::Failed | Outcome::Error) {
            outcome = Outcome::Error;
        }
        let message = unproven
            .map(|why| format!("herd: not counted as passed: {why}"))
            .or_else(|| {
                round
                    .iter()
                    .filter(|p| p.outcome != PhaseOutcome::Passed)
                    .find_map(|p| p.message.clone())
            })
            .or_else(|| {
                let first = self.details(outcome)?;
                first
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_string())
            });
        Verdict {
            outcome,
            duration: self.duration(),
            details: self.details(outcome),
            message,
            categories: self
                .phases
                .iter()
                .filter_map(|p| p.category.clone())
                .filter(|c| !c.is_empty())
                .collect(),
            properties: {
                // pytest repeats a test's properties on each later phase: keep each pair once.
                let mut all: Vec<(String, serde_json::Value)> = Vec::new();
                for pair in self.phases.iter().flat_map(|p| &p.user_properties) {
                    if !all.contains(pair) {
                        all.push(pair.clone());
                    }
                }
                all
            },
        }
    }

    fn details(&self, outcome: Outcome) -> Option<String> {
        let texts: Vec<String> = self
            .phases
            .iter()
            .filter(|p| p.outcome != PhaseOutcome::Passed || outcome == Outcome::Xpassed)
            .filter_map(|p| {
                let text = p.longrepr.as_deref().or(p.message.as_deref())?;
                let mut text = match p.when {
                    Phase::Call => text.to_string(),
                    other => format!("[{} phase]\n{text}", other.name()),
                };
                // Captured output, as pytest shows it under a failure.
                for (title, body) in p.sections.iter().filter(|(_, b)| !b.trim().is_empty()) {
                    text.push_str(&format!(
                        "\n{:-^78}\n{}",
                        format!(" {title} "),
                        body.trim_end()
                    ));
                }
                Some(text)
            })
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n"))
    }
}

/// How many tests ended with each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    counts: BTreeMap<Outcome, usize>,
    /// Reports by the runner's own summary category (pytest's), in first-seen order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reported: Vec<(String, usize)>,
}

impl Tally {
    /// Counts one more test with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        *self.counts.entry(outcome).or_default() += 1;
    }

    /// Counts one report in the runner's summary `category`.
    pub fn add_reported(&mut self, category: &str) {
        match self.reported.iter_mut().find(|(c, _)| c == category) {
            Some((_, n)) => *n += 1,
            None => self.reported.push((category.to_string(), 1)),
        }
    }

    /// Reports counted in the runner's summary `category`.
    pub fn reported(&self, category: &str) -> usize {
        self.reported
            .iter()
            .find(|(c, _)| c == category)
            .map_or(0, |(_, n)| *n)
    }

    /// Tests counted with `outcome`.
    pub fn get(&self, outcome: Outcome) -> usize {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }

    /// All tests counted.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Tests whose outcome fails the session.
    pub fn failures(&self) -> usize {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_failure())
            .map(|o| self.get(*o))
            .sum()
    }

    /// The summary line: `283 passed, 17 failed in 2.41s`, listing only outcomes that occurred.
    ///
    /// When the runner reported its own categories (pytest), they are counted as pytest counts
    /// them, in pytest's order, followed by herd's own outcomes (crashed, timed out, not run).
    pub fn summary_line(&self, seconds: f64) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.reported.is_empty() {
            for o in Outcome::ALL.iter().filter(|o| self.get(**o) > 0) {
                parts.push(format!("{} {}", self.get(*o), o.noun(self.get(*o))));
            }
        } else {
            const KNOWN: [&str; 7] = [
                "failed", "passed", "skipped", "xfailed", "xpassed", "warnings", "error",
            ];
            let others = self
                .reported
                .iter()
                .map(|(c, _)| c.as_str())
                .filter(|c| !KNOWN.contains(c));
            for category in KNOWN.into_iter().chain(others) {
                let n = self.reported(category);
                if n > 0 {
                    let noun = if category == "error" && n != 1 {
                        "errors"
                    } else {
                        category
                    };
                    parts.push(format!("{n} {noun}"));
                }
            }
            for o in [Outcome::Crashed, Outcome::TimedOut, Outcome::NotRun] {
                if self.get(o) > 0 {
                    parts.push(format!("{} {}", self.get(o), o.noun(self.get(o))));
                }
            }
        }
        let counts = if parts.is_empty() {
            "no tests ran".to_string()
        } else {
            parts.join(", ")
        };
        format!("{counts} in {seconds:.2}s")
    }
}

/// How a session ended, in order of severity: a later variant beats an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum SessionEnd {
    /// Every test was dealt out and every worker finished.
    Completed,
    /// `--maxfail` was reached; dispatching stopped.
    MaxfailReached,
    /// A signal interrupted the session.
    Interrupted(String),
    /// herd could not go on (respawn budget spent, no worker left, internal error).
    Aborted(String),
}

/// Process exit codes, as pytest's.
pub mod exit_code {
    /// All tests passed.
    pub const OK: i32 = 0;
    /// Some tests failed.
    pub const TESTS_FAILED: i32 = 1;
    /// The session was interrupted (or collection failed).
    pub const INTERRUPTED: i32 = 2;
    /// An internal error, including a spent respawn budget.
    pub const INTERNAL_ERROR: i32 = 3;
    /// The command line was wrong.
    pub const USAGE_ERROR: i32 = 4;
    /// No tests were collected.
    pub const NO_TESTS: i32 = 5;
}

/// The exit code for a session that ended as `end` with `tally`.
pub fn exit_code(end: &SessionEnd, tally: &Tally) -> i32 {
    match end {
        SessionEnd::Aborted(_) => exit_code::INTERNAL_ERROR,
        SessionEnd::Interrupted(_) => exit_code::INTERRUPTED,
        _ if tally.total() == 0 => exit_code::NO_TESTS,
        _ if tally.failures() > 0 => exit_code::TESTS_FAILED,
        _ if tally.get(Outcome::NotRun) > 0 => exit_code::INTERRUPTED,
        _ => exit_code::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(when: Phase, outcome: PhaseOutcome) -> PhaseReport {
        PhaseReport {
            longrepr: (outcome == PhaseOutcome::Failed).then(|| format!("{when:?} broke")),
            ..PhaseReport::new("t", when, outcome, 0.25)
        }
    }

    fn verdict(phases: &[(Phase, PhaseOutcome)]) -> Verdict {
        let mut record = TestRecord::default();
        for (w, o) in phases {
            record.add(phase(*w, *o));
        }
        record.verdict()
    }

    use Phase::*;
    use PhaseOutcome as P;

    #[test]
    fn a_pass_needs_a_call_report_that_says_so() {
        // The call's report was lost (a rejected frame): setup and teardown passing is no pass.
        let v = verdict(&[(Setup, P::Passed), (Teardown, P::Passed)]);
        assert_eq!(v.outcome, Outcome::Error);
        assert!(v.message.unwrap().contains("no report of its call phase"));
        // An outcome word herd does not know, or a rerun that was never followed, is no pass.
        for word in [P::Other, P::Rerun] {
            let v = verdict(&[(Setup, P::Passed), (Call, word), (Teardown, P::Passed)]);
            assert_eq!(v.outcome, Outcome::Error, "{word:?}");
        }
        // A test skipped in setup has no call, and is still a skip.
        assert_eq!(
            verdict(&[(Setup, P::Skipped), (Teardown, P::Passed)]).outcome,
            Outcome::Skipped
        );
    }

    #[test]
    fn only_the_last_round_of_a_rerun_test_decides() {
        let round = |call: PhaseOutcome, last: bool| {
            vec![
                phase(Setup, P::Passed),
                phase(Call, call),
                PhaseReport {
                    intermediate: !last,
                    ..phase(Teardown, P::Passed)
                },
            ]
        };
        let record = |rounds: Vec<Vec<PhaseReport>>| {
            let mut r = TestRecord::default();
            rounds.into_iter().flatten().for_each(|p| r.add(p));
            r.verdict().outcome
        };
        assert_eq!(
            record(vec![round(P::Rerun, false), round(P::Failed, true)]),
            Outcome::Failed
        );
        // pytest-rerunfailures logs no teardown for a round it reruns.
        let rerun_round = vec![phase(Setup, P::Passed), phase(Call, P::Rerun)];
        assert_eq!(
            record(vec![
                rerun_round.clone(),
                rerun_round,
                round(P::Failed, true)
            ]),
            Outcome::Failed
        );
        let setup_rerun = vec![phase(Setup, P::Rerun)];
        assert_eq!(
            record(vec![setup_rerun, round(P::Passed, true)]),
            Outcome::Passed
        );
        assert_eq!(
            record(vec![round(P::Rerun, false), round(P::Passed, true)]),
            Outcome::Passed
        );
        // A failing round is never outvoted by an earlier passing one.
        assert_eq!(
            record(vec![round(P::Passed, false), round(P::Failed, true)]),
            Outcome::Failed
        );
    }

    #[test]
    fn outcome_follows_the_phases() {
        assert_eq!(
            verdict(&[(Setup, P::Passed), (Call, P::Passed), (Teardown, P::Passed)]).outcome,
            Outcome::Passed
        );
        assert_eq!(
            verdict(&[(Setup, P::Passed), (Call, P::Failed), (Teardown, P::Passed)]).outcome,
            Outcome::Failed
        );
        assert_eq!(
            verdict(&[(Setup, P::Failed), (Teardown, P::Passed)]).outcome,
            Outcome::Error
        );
        assert_eq!(
            verdict(&[(Setup, P::Skipped), (Teardown, P::Passed)]).outcome,
            Outcome::Skipped
        );
        assert_eq!(
            verdict(&[(Call, P::Skipped), (Teardown, P::Passed)]).outcome,
            Outcome::Skipped
        );
        assert_eq!(
            verdict(&[(Call, P::Passed), (Teardown, P::Passed)]).duration,
            0.5
        );
    }

    #[test]
    fn a_failing_teardown_is_never_a_pass() {
        let v = verdict(&[(Setup, P::Passed), (Call, P::Passed), (Teardown, P::Failed)]);
        assert_eq!(v.outcome, Outcome::Error);
        assert!(v
            .details
            .unwrap()
            .contains("[teardown phase]\nTeardown broke"));
        let v = verdict(&[(Call, P::Failed), (Teardown, P::Failed)]);
        assert_eq!(v.outcome, Outcome::Failed);
        assert_eq!(
            v.details.unwrap(),
            "Call broke\n[teardown phase]\nTeardown broke"
        );
    }

    #[test]
    fn failure_details_carry_the_captured_output() {
        let mut r = TestRecord::default();
        let mut call = phase(Call, P::Failed);
        call.sections = vec![
            ("Captured stdout call".into(), "hello\n".into()),
            ("Captured log call".into(), " ".into()),
        ];
        r.add(call);
        r.add(phase(Teardown, P::Passed));
        let details = r.verdict().details.unwrap();
        assert!(details.starts_with("Call broke\n---"), "{details}");
        assert!(
            details.contains(" Captured stdout call ") && details.ends_with("\nhello"),
            "{details}"
        );
        assert!(!details.contains("Captured log call"), "{details}");
    }

    #[test]
    fn xfail_and_xpass() {
        let mut r = TestRecord::default();
        let mut call = phase(Call, P::Skipped);
        call.wasxfail = Some("bug 1".into());
        r.add(call.clone());
        r.add(phase(Teardown, P::Passed));
        assert_eq!(r.verdict().outcome, Outcome::Xfailed);
        let mut r = TestRecord::default();
        call.outcome = P::Passed;
        r.add(call);
        r.add(phase(Teardown, P::Passed));
        assert_eq!(r.verdict().outcome, Outcome::Xpassed);
    }

    #[test]
    fn tally_line_lists_what_occurred_in_pytest_order() {
        let mut t = Tally::default();
        assert_eq!(t.summary_line(0.0), "no tests ran in 0.00s");
        for _ in 0..283 {
            t.add(Outcome::Passed);
        }
        for _ in 0..17 {
            t.add(Outcome::Failed);
        }
        assert_eq!(t.summary_line(2.414), "17 failed, 283 passed in 2.41s");
        t.add(Outcome::Crashed);
        t.add(Outcome::NotRun);
        t.add(Outcome::NotRun);
        t.add(Outcome::Error);
        assert_eq!(
            t.summary_line(1.0),
            "17 failed, 283 passed, 1 error, 1 crashed, 2 not run in 1.00s"
        );
        assert_eq!(t.total(), 304);
        assert_eq!(t.failures(), 19);
    }

    #[test]
    fn pytest_categories_are_counted_as_pytest_counts_them() {
        let mut t = Tally::default();
        for (outcome, cats) in [
            (Outcome::Error, vec!["passed", "error"]),
            (Outcome::Failed, vec!["subtests passed", "failed", "passed"]),
            (Outcome::Passed, vec!["passed"]),
            (Outcome::Crashed, vec![]),
        ] {
            t.add(outcome);
            for c in cats {
                t.add_reported(c);
            }
        }
        assert_eq!(
            t.summary_line(0.5),
            "1 failed, 3 passed, 1 error, 1 subtests passed, 1 crashed in 0.50s"
        );
        assert_eq!(t.total(), 4);
    }

    #[test]
    fn a_failed_subtest_fails_the_test() {
        let mut r = TestRecord::default();
        r.add(phase(Setup, P::Passed));
        let mut sub = phase(Call, P::Failed);
        sub.subtest = Some("i=1".into());
        sub.message = Some("assert 1 != 1".into());
        r.add(sub);
        r.add(phase(Call, P::Passed));
        r.add(phase(Teardown, P::Passed));
        let v = r.verdict();
        assert_eq!(
            (v.outcome, v.message.as_deref()),
            (Outcome::Failed, Some("assert 1 != 1"))
        );
    }

    #[test]
    fn exit_codes_match_pytest() {
        let mut t = Tally::default();
        assert_eq!(exit_code(&SessionEnd::Completed, &t), exit_code::NO_TESTS);
        t.add(Outcome::Passed);
        t.add(Outcome::Skipped);
        assert_eq!(exit_code(&SessionEnd::Completed, &t), exit_code::OK);
        assert_eq!(
            exit_code(&SessionEnd::Interrupted("SIGINT".into()), &t),
            exit_code::INTERRUPTED
        );
        t.add(Outcome::Crashed);
        assert_eq!(
            exit_code(&SessionEnd::Completed, &t),
            exit_code::TESTS_FAILED
        );
        assert_eq!(
            exit_code(&SessionEnd::MaxfailReached, &t),
            exit_code::TESTS_FAILED
        );
        assert_eq!(
            exit_code(&SessionEnd::Aborted("budget".into()), &t),
            exit_code::INTERNAL_ERROR
        );
    }

    #[test]
    fn severity_orders_session_ends() {
        assert!(SessionEnd::Aborted(String::new()) > SessionEnd::Interrupted(String::new()));
        assert!(SessionEnd::Interrupted(String::new()) > SessionEnd::MaxfailReached);
        assert!(SessionEnd::MaxfailReached > SessionEnd::Completed);
    }
}
