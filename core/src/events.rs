//! The typed events of a session. The reporter prints them, `--events FILE` writes them as JSON
//! lines (one object per event, with an `event` tag and `t`, seconds since the session started),
//! and an embedding program can consume the same values.

use serde::{Deserialize, Serialize};

use crate::outcome::{SessionEnd, Tally, Verdict};
use crate::TestId;

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The session began.
    SessionStarted {
        /// The runner's name (`exec`, ...).
        runner: String,
        /// Worker slots.
        workers: usize,
        /// The ZeroMQ endpoint workers connect to.
        endpoint: String,
        /// Each slot's id and appliance, in order (for the harness hook that names them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        slots: Vec<SlotInfo>,
    },
    /// The reference collection is known (from the runner, or the first worker's collection).
    Collected {
        /// The reference collection, in order.
        tests: Vec<TestId>,
        /// Collected tests the runner left out (`-k`, `-m`): not run, counted as pytest's
        /// summary counts them (`3 deselected`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deselected: Vec<TestId>,
    },
    /// Collection failed: the session ends as interrupted (exit code 2), as pytest does.
    CollectionErrors {
        /// The worker that reported them.
        worker: String,
        /// Each failed collector.
        errors: Vec<crate::protocol::CollectionError>,
    },
    /// A worker process was started.
    WorkerSpawned {
        /// Worker id.
        worker: String,
        /// Spawn number of this slot.
        incarnation: u32,
        /// Process id.
        pid: u32,
        /// The appliance the worker owns.
        appliance: Option<String>,
    },
    /// herd waits for a worker it does not start itself (`--launcher external`): someone must run
    /// `command` (on any host that reaches the coordinator) for the slot to join.
    WorkerAwaited {
        /// Worker id.
        worker: String,
        /// The spawn number the worker must announce.
        incarnation: u32,
        /// The exact command line that joins this slot.
        command: String,
    },
    /// A worker's collection differs from the reference.
    CollectionMismatch {
        /// Worker id.
        worker: String,
        /// The unified diff, reference to worker.
        diff: String,
    },
    /// A group was sent to a worker.
    GroupSent {
        /// Worker id.
        worker: String,
        /// Tests in the group.
        tests: usize,
        /// Tests sent so far (returned tests are subtracted).
        sent: usize,
        /// Tests collected.
        total: usize,
    },
    /// A worker switched provider (after the cleanse hook, if any).
    ProviderSwitched {
        /// Worker id.
        worker: String,
        /// The provider it held.
        from: String,
        /// The provider it holds now.
        to: String,
    },
    /// A test started on a worker.
    TestStarted {
        /// Test id.
        test: TestId,
        /// Worker id.
        worker: String,
    },
    /// A test ended with its one outcome.
    TestFinished {
        /// Test id.
        test: TestId,
        /// Worker id, when a worker ran it.
        worker: Option<String>,
        /// The outcome, duration, failure text, ... (flattened into this event's JSON).
        #[serde(flatten)]
        verdict: Verdict,
    },
    /// Tests of a dead worker went back to the front of the queue.
    TestsRequeued {
        /// Worker id.
        worker: String,
        /// The returned tests.
        tests: Vec<TestId>,
    },
    /// Work stealing: a busy worker gave back tests it had not started, for an idle one.
    WorkStolen {
        /// The worker that gave them back.
        from: String,
        /// How many.
        tests: usize,
    },
    /// A worker's test run recorded a warning.
    Warning {
        /// Worker id.
        worker: String,
        /// The test that raised it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<TestId>,
        /// The warning as text.
        text: String,
        /// Whether it was raised outside any test (then counted once, whichever worker).
        #[serde(default)]
        outside_tests: bool,
    },
    /// A worker sent a message for the user.
    WorkerMessage {
        /// Worker id.
        worker: String,
        /// The text.
        text: String,
    },
    /// A worker process returned its output for the runner's controller as it finished
    /// (pytest's `config.workeroutput`).
    WorkerOutput {
        /// Worker id.
        worker: String,
        /// Spawn number.
        incarnation: u32,
        /// The output.
        output: serde_json::Value,
    },
    /// A worker process exited.
    WorkerExited {
        /// Worker id.
        worker: String,
        /// Spawn number.
        incarnation: u32,
        /// Exit status as text (`exit code 0`, `signal 9 (SIGKILL)`).
        status: String,
        /// Whether it had said `shutdown` first.
        clean: bool,
    },
    /// A worker slot was retired: it is not respawned again.
    WorkerRetired {
        /// Worker id.
        worker: String,
        /// Why.
        reason: String,
    },
    /// A line from herd itself for the user (a hook failed, a worker is being killed, ...).
    Notice {
        /// The worker it concerns, if any.
        worker: Option<String>,
        /// The text.
        text: String,
    },
    /// herd injected a fault (`--chaos`, a `FaultPlan`).
    FaultInjected {
        /// Worker id.
        worker: String,
        /// The spawn it struck.
        incarnation: u32,
        /// What was done.
        kind: crate::faults::FaultKind,
        /// The test that was running, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<TestId>,
    },
    /// A message was refused (unknown identity, bad token, malformed frame, protocol violation).
    MessageRefused {
        /// The sender's identity, lossily decoded.
        identity: String,
        /// Why.
        reason: String,
    },
    /// The session ended.
    SessionFinished {
        /// How it ended.
        end: SessionEnd,
        /// Tests per outcome.
        counts: Tally,
        /// The process exit code.
        exit_code: i32,
        /// Seconds.
        duration: f64,
    },
}

/// An event with its time, as one line of `--events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Seconds since the session started.
    pub t: f64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// A worker slot as the events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// Its id (`w1`).
    pub id: String,
    /// The appliance it owns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appliance: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    #[test]
    fn events_are_json_lines_with_a_tag() {
        let line = serde_json::to_string(&Stamped {
            t: 1.5,
            event: Event::TestFinished {
                test: "a".into(),
                worker: Some("w1".into()),
                verdict: Verdict::decided(Outcome::TimedOut, 2.0, None, None),
            },
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"t":1.5,"event":"test_finished","test":"a","worker":"w1","outcome":"timed_out","duration":2.0}"#
        );
        let back: Stamped = serde_json::from_str(&line).unwrap();
        match back.event {
            Event::TestFinished { verdict, .. } => assert_eq!(verdict.outcome, Outcome::TimedOut),
            other => panic!("unexpected {other:?}"),
        }
    }
}
