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
    /// The runner's serialized reports of every phase, in order, for the pytest controller
    /// (empty unless it is on); not part of the events.
    #[serde(skip)]
    pub runner_reports: Vec<crate::protocol::RunnerForm>,
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
            runner_reports: Vec::new(),
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
        let round = self.last_round();
        let (outcome, unproven) = round_outcome(round);
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
            properties: self.properties(),
            runner_reports: self
                .phases
                .iter()
                .filter_map(|p| p.pytest.clone())
                .collect(),
        }
    }

    /// The reports of the last round: a test run again (pytest-rerunfailures) ends each
    /// earlier round with a `rerun` report (or an intermediate teardown after one).
    fn last_round(&self) -> &[PhaseReport] {
        let start = self
            .phases
            .iter()
            .rposition(|p| p.intermediate || p.outcome == PhaseOutcome::Rerun)
            .map_or(0, |i| i + 1);
        &self.phases[start..]
    }

    /// The test's properties; pytest repeats them on each later phase: each pair once.
    fn properties(&self) -> Vec<(String, serde_json::Value)> {
        let mut all: Vec<(String, serde_json::Value)> = Vec::new();
        for pair in self.phases.iter().flat_map(|p| &p.user_properties) {
            if !all.contains(pair) {
                all.push(pair.clone());
            }
        }
        all
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

/// The outcome of one round of phase reports, and why it is not a pass when a pass is not
/// proven (no call report, or a call report without a final outcome).
fn round_outcome(round: &[PhaseReport]) -> (Outcome, Option<&'static str>) {
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
    let teardown_failed = phase(Phase::Teardown).is_some_and(|t| t.outcome == PhaseOutcome::Failed);
    if teardown_failed && !matches!(outcome, Outcome::Failed | Outcome::Error) {
        outcome = Outcome::Error;
    }
    (outcome, unproven)
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

    /// Sets the count of the runner's summary `category` (a count known at once, such as the
    /// deselected tests); zero leaves the category out.
    pub fn set_reported(&mut self, category: &str, n: usize) {
        self.reported.retain(|(c, _)| c != category);
        if n > 0 {
            self.reported.push((category.to_string(), n));
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
            const KNOWN: [&str; 8] = [
                "failed",
                "passed",
                "skipped",
                "deselected",
                "xfailed",
                "xpassed",
                "warnings",
                "error",
            ];
            let others = self
                .reported
                .iter()
                .map(|(c, _)| c.as_str())
                .filter(|c| !KNOWN.contains(c));
            for category in KNOWN.into_iter().chain(others) {
                let n = self.reported(category);
                if n > 0 {
                    // pytest's plurals: "2 errors", "1 warning".
                    let noun = match (category, n) {
                        ("error", 2..) => "errors",
                        ("warnings", 1) => "warning",
                        _ => category,
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
mod tests;
