//! What a session returns.

use herd_core::events::Event;
use herd_core::outcome::{Outcome, SessionEnd, Tally};
use herd_core::TestId;
use serde::{Deserialize, Serialize};

/// One test's final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Test id.
    pub test: TestId,
    /// Its one outcome.
    pub outcome: Outcome,
    /// The worker that ran it, if one did.
    pub worker: Option<String>,
    /// Seconds.
    pub duration: f64,
    /// Failure text, crash report or skip reason.
    pub details: Option<String>,
    /// The one-line reason.
    pub message: Option<String>,
    /// Properties the test recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, serde_json::Value)>,
}

impl TestResult {
    /// The `TestFinished` event for this result.
    pub fn event(&self, categories: Vec<String>) -> Event {
        Event::TestFinished {
            test: self.test.clone(),
            worker: self.worker.clone(),
            outcome: self.outcome,
            duration: self.duration,
            details: self.details.clone(),
            message: self.message.clone(),
            categories,
            properties: self.properties.clone(),
        }
    }
}

/// The result of a session: every collected test with exactly one outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    /// How the session ended.
    pub end: SessionEnd,
    /// Tests per outcome.
    pub tally: Tally,
    /// Every collected test, in collection order.
    pub results: Vec<TestResult>,
    /// The process exit code (pytest's conventions).
    pub exit_code: i32,
    /// Wall time in seconds.
    pub duration: f64,
    /// Internal errors found by the exactly-once check (empty in a healthy session).
    pub violations: Vec<String>,
}
