//! What a session returns.

use herd_core::faults::FaultKind;
use herd_core::outcome::{SessionEnd, Tally};
use herd_core::TestId;
use serde::{Deserialize, Serialize};

use crate::output::OutputFailure;

/// One test's final result (kept by the ledger).
pub use herd_core::ledger::TestResult;

/// One worker process's life: from spawn to exit (seconds since the session started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLife {
    /// Worker id.
    pub worker: String,
    /// Spawn number.
    pub incarnation: u32,
    /// Process id.
    pub pid: u32,
    /// The appliance it owned.
    pub appliance: Option<String>,
    /// When it was spawned.
    pub started: f64,
    /// When it exited (or was killed as the session ended).
    pub ended: Option<f64>,
    /// How it ended (`exit code 0`, `signal 9 (SIGKILL)`, ...).
    pub status: Option<String>,
    /// Whether it said `shutdown` before exiting.
    pub clean: bool,
}

/// A fault herd injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectedFault {
    /// Seconds since the session started.
    pub t: f64,
    /// Worker id.
    pub worker: String,
    /// The spawn it struck.
    pub incarnation: u32,
    /// What was done.
    pub kind: FaultKind,
    /// The test that was running, if any.
    pub test: Option<TestId>,
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
    /// Every worker process the session started, in order.
    pub workers: Vec<WorkerLife>,
    /// Every fault injected (`--chaos`), in order.
    pub faults: Vec<InjectedFault>,
    /// Output files that could not be written completely (`--events`, `--junit-xml`, logs,
    /// history); one that is a result makes the exit code 3.
    pub output_failures: Vec<OutputFailure>,
}
