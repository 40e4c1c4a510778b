//! What herd tells a runner's controller (the pytest controller: one pytest process that collects
//! nothing and runs no test, but hands every report to pytest's own reporting hooks), and what
//! its answer means for the session's exit code. Pure: the Reporter's controller sink carries
//! the lines out.
//!
//! ```text
//!   Event (in the Reporter's order) --ControllerFeed::lines--> JSON lines on the controller's stdin
//!     collected       {"type":"collected", "count"}
//!     test_finished   {"type":"test", "test", "worker", "reports":[pytest's serialized reports]}
//!                     or, for what herd decided (crashed, timed out): "herd":{outcome, message, details}
//!     collection_errors  {"type":"collect_error", "nodeid", "longrepr"}   (once per collector)
//!     warning         {"type":"warning", "text", "test", "when"}  (outside tests: once per text)
//!     worker_spawned  {"type":"node_up", "worker", "incarnation"}   (a respawn: incarnation > 1)
//!                     (xdist's pytest_configure_node for the replacement node; the first
//!                     incarnations are configured as the controller's session starts)
//!     worker_exited   {"type":"node_down", "worker", "incarnation", "workeroutput"?, "error"}
//!                     (xdist's pytest_testnodedown: every process that ran a test, sent output or
//!                     was configured by a node_up; a clean one with the output it sent, a dead one
//!                     with how it died)
//!     + worker_down   {"type":"worker_down", "worker", "appliance", "reason"} (harness hook)
//!   the end           {"type":"finish", "end", "reason", "exitstatus", "collected"}
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{json, Value};

use crate::events::Event;
use crate::outcome::{Outcome, SessionEnd, Tally};
use crate::protocol::RunnerForm;

/// One line of the controller's input: a JSON object, as text. A test's line carries its
/// reports' serialized forms as the workers wrote them.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    kind: Cow<'static, str>,
    text: String,
}

impl Line {
    /// Its JSON text (without the newline).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its `type` (`test`, `collect_error`, `warning`, ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Its JSON, parsed (for tests).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl From<Value> for Line {
    fn from(value: Value) -> Line {
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        Line {
            kind: Cow::Owned(kind),
            text: value.to_string(),
        }
    }
}

/// A finished test's line.
#[derive(Serialize)]
struct TestLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    test: &'a str,
    worker: &'a Option<String>,
    reports: &'a [RunnerForm],
    #[serde(skip_serializing_if = "Option::is_none")]
    herd: Option<Value>,
}

/// Turns the session's events into the controller's input lines; remembers what it already said
/// once (warnings outside tests and collection errors come from every worker alike).
#[derive(Debug, Default)]
pub struct ControllerFeed {
    said_once: HashSet<String>,
    collected: usize,
    /// The worker slots seen so far, in order, with their appliances (for `configured`).
    workers: Vec<(String, Option<String>)>,
    configured: bool,
    /// Each process's `workeroutput`, until it exits.
    outputs: HashMap<(String, u32), Value>,
    /// The processes that started a test or were configured by a `node_up` (whose end is a
    /// node going down), until they exit.
    nodes: HashSet<(String, u32)>,
    /// Each slot's latest spawn.
    incarnations: HashMap<String, u32>,
}

impl ControllerFeed {
    /// The lines `event` gives the controller (none for most events).
    pub fn lines(&mut self, event: &Event) -> Vec<Line> {
        if let Event::TestFinished {
            verdict,
            test,
            worker,
        } = event
        {
            if verdict.outcome == Outcome::NotRun {
                // pytest never ran it: its summary does not count it (herd's line does).
                return Vec::new();
            }
            let herd = verdict.runner_reports.is_empty().then(|| {
                json!({
                    "outcome": verdict.outcome,
                    "word": verdict.outcome.word(),
                    "message": verdict.message,
                    "details": verdict.details,
                })
            });
            let line = TestLine {
                kind: "test",
                test,
                worker,
                reports: &verdict.runner_reports,
                herd,
            };
            // Plain data serializes.
            return vec![Line {
                kind: Cow::Borrowed("test"),
                text: serde_json::to_string(&line).expect("a test line serializes"),
            }];
        }
        self.values(event).into_iter().map(Line::from).collect()
    }

    /// The lines of every event but a finished test's.
    fn values(&mut self, event: &Event) -> Vec<Value> {
        match event {
            Event::SessionStarted { slots, .. } => {
                for slot in slots {
                    if !self.workers.iter().any(|(w, _)| *w == slot.id) {
                        self.workers.push((slot.id.clone(), slot.appliance.clone()));
                    }
                }
                Vec::new()
            }
            Event::WorkerSpawned {
                worker,
                appliance,
                incarnation,
                ..
            } => {
                self.incarnations.insert(worker.clone(), *incarnation);
                if !self.workers.iter().any(|(w, _)| w == worker) {
                    self.workers.push((worker.clone(), appliance.clone()));
                }
                if *incarnation <= 1 {
                    return Vec::new();
                }
                // A replacement process is a node of its own, configured as it starts (it
                // waits for what the controller's plugins add to its workerinput).
                self.nodes.insert((worker.clone(), *incarnation));
                vec![json!({"type": "node_up", "worker": worker, "incarnation": incarnation})]
            }
            Event::Collected { tests, deselected } => {
                self.collected = tests.len();
                let mut lines = Vec::new();
                if !std::mem::replace(&mut self.configured, true) {
                    let workers: Vec<Value> = self
                        .workers
                        .iter()
                        .map(|(id, appliance)| json!({"id": id, "appliance": appliance}))
                        .collect();
                    lines.push(json!({"type": "configured", "workers": workers}));
                }
                let mut collected = json!({"type": "collected", "count": tests.len()});
                if !deselected.is_empty() {
                    collected["deselected"] = json!(deselected);
                }
                lines.push(collected);
                lines
            }
            Event::TestStarted { worker, .. } => {
                if let Some(incarnation) = self.incarnations.get(worker) {
                    self.nodes.insert((worker.clone(), *incarnation));
                }
                Vec::new()
            }
            Event::WorkerOutput {
                worker,
                incarnation,
                output,
            } => {
                self.outputs
                    .insert((worker.clone(), *incarnation), output.clone());
                Vec::new()
            }
            Event::WorkerExited {
                worker,
                incarnation,
                status,
                clean,
            } => self.exited(worker, *incarnation, status, *clean),
            Event::WorkerRetired { worker, reason } => {
                vec![self.worker_down(worker, &format!("retired: {reason}"))]
            }
            Event::CollectionErrors { errors, .. } => errors
                .iter()
                .filter(|e| self.said_once.insert(format!("collect\0{}", e.nodeid)))
                .map(|e| json!({"type": "collect_error", "nodeid": e.nodeid, "longrepr": e.longrepr}))
                .collect(),
            Event::Warning {
                test,
                text,
                outside_tests,
                ..
            } => {
                if *outside_tests && !self.said_once.insert(format!("warning\0{text}")) {
                    return Vec::new();
                }
                let when = if test.is_some() { "runtest" } else { "config" };
                vec![json!({"type": "warning", "text": text, "test": test, "when": when})]
            }
            _ => Vec::new(),
        }
    }

    /// A process ended: xdist's node down (if it was a node), then, for a shutdown, the
    /// harness hook's worker down.
    fn exited(&mut self, worker: &str, incarnation: u32, status: &str, clean: bool) -> Vec<Value> {
        let key = (worker.to_string(), incarnation);
        let output = self.outputs.remove(&key);
        let mut lines = Vec::new();
        if self.nodes.remove(&key) || output.is_some() {
            let mut line = json!({"type": "node_down", "worker": worker,
                "incarnation": incarnation, "error": (!clean).then_some(status)});
            if let Some(output) = output.filter(|_| clean) {
                line["workeroutput"] = output;
            }
            lines.push(line);
        }
        if clean {
            lines.push(self.worker_down(worker, "shut down: its work is done"));
        }
        lines
    }

    fn worker_down(&self, worker: &str, reason: &str) -> Value {
        let appliance = self
            .workers
            .iter()
            .find(|(w, _)| w == worker)
            .and_then(|(_, a)| a.clone());
        json!({"type": "worker_down", "worker": worker, "appliance": appliance, "reason": reason})
    }

    /// The last line: how the session ended and the exit code herd would give.
    pub fn finish(&self, end: &SessionEnd, exit_code: i32) -> Value {
        let (name, reason) = match end {
            SessionEnd::Completed => ("completed", None),
            SessionEnd::MaxfailReached => ("maxfail", None),
            SessionEnd::Interrupted(why) => ("interrupted", Some(why.as_str())),
            SessionEnd::Aborted(why) => ("aborted", Some(why.as_str())),
        };
        json!({"type": "finish", "end": name, "reason": reason, "exitstatus": exit_code,
            "collected": self.collected})
    }
}

/// Whether herd itself decided part of the session (a crash, a timeout, tests not run, an end
/// that pytest did not choose): then herd's exit code stands, whatever the controller says.
pub fn herd_decided(end: &SessionEnd, tally: &Tally) -> bool {
    matches!(end, SessionEnd::Aborted(_) | SessionEnd::Interrupted(_))
        || [Outcome::Crashed, Outcome::TimedOut, Outcome::NotRun]
            .iter()
            .any(|o| tally.get(*o) > 0)
}

/// The session's exit code: the controller's (pytest's own, a plugin's `session.exitstatus`
/// included) unless herd decided part of the session, or the controller gave none.
pub fn session_exit_code(
    herd: i32,
    end: &SessionEnd,
    tally: &Tally,
    controller: Option<i32>,
) -> i32 {
    match controller {
        Some(code) if !herd_decided(end, tally) => code,
        _ => herd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Verdict;
    use crate::protocol::CollectionError;

    fn finished(test: &str, verdict: Verdict) -> Event {
        Event::TestFinished {
            test: test.into(),
            worker: Some("w1".into()),
            verdict,
        }
    }

    #[test]
    fn a_test_goes_with_its_reports_and_a_crash_with_herds_words() {
        let mut feed = ControllerFeed::default();
        let mut passed = Verdict::decided(Outcome::Passed, 0.1, None, None);
        let form = r#"{"when":"call","keywords":{"a":1}}"#;
        passed.runner_reports = vec![serde_json::from_str(form).unwrap()];
        let lines = feed.lines(&finished("t::a", passed));
        assert!(
            lines[0].text().contains(form),
            "the form as the worker wrote it"
        );
        assert_eq!(lines[0].value()["reports"][0]["when"], "call");
        assert!(lines[0].value().get("herd").is_none());
        let crashed = Verdict::decided(Outcome::Crashed, 0.0, Some("boom".into()), None);
        let lines = feed.lines(&finished("t::b", crashed));
        assert_eq!(lines[0].value()["herd"]["outcome"], "crashed");
        assert_eq!(lines[0].value()["herd"]["message"], "boom");
        let not_run = Verdict::decided(Outcome::NotRun, 0.0, None, None);
        assert!(feed.lines(&finished("t::c", not_run)).is_empty());
    }

    #[test]
    fn what_every_worker_says_alike_is_said_once() {
        let mut feed = ControllerFeed::default();
        let warning = |test: Option<&str>| Event::Warning {
            worker: "w1".into(),
            test: test.map(Into::into),
            text: "x.py:1: UserWarning: hm".into(),
            outside_tests: test.is_none(),
        };
        assert_eq!(feed.lines(&warning(None)).len(), 1);
        assert!(feed.lines(&warning(None)).is_empty());
        assert_eq!(
            feed.lines(&warning(Some("t::a")))[0].value()["when"],
            "runtest"
        );
        assert_eq!(feed.lines(&warning(Some("t::a"))).len(), 1);
        let errors = Event::CollectionErrors {
            worker: "w2".into(),
            errors: vec![CollectionError {
                nodeid: "t.py".into(),
                longrepr: "ImportError".into(),
            }],
        };
        assert_eq!(feed.lines(&errors).len(), 1);
        assert!(feed.lines(&errors).is_empty());
    }

    #[test]
    fn harness_hooks_get_the_workers_once_and_each_shutdown_or_retirement() {
        let mut feed = ControllerFeed::default();
        let spawned = |worker: &str, incarnation, appliance: Option<&str>| Event::WorkerSpawned {
            worker: worker.into(),
            incarnation,
            pid: 1,
            appliance: appliance.map(str::to_string),
        };
        assert!(feed.lines(&spawned("w1", 1, Some("a1"))).is_empty());
        assert!(feed.lines(&spawned("w2", 1, None)).is_empty());
        // A respawn is the same slot (a node of its own: its node_up).
        assert_eq!(feed.lines(&spawned("w1", 2, Some("a1"))).len(), 1);
        let collected = Event::Collected {
            tests: vec!["t".into()],
            deselected: Vec::new(),
        };
        let lines = feed.lines(&collected);
        assert_eq!(
            lines[0].value(),
            json!({"type": "configured", "workers": [
                {"id": "w1", "appliance": "a1"}, {"id": "w2", "appliance": null}]})
        );
        assert_eq!(feed.lines(&collected).len(), 1, "configured once");
        let exited = |clean| Event::WorkerExited {
            worker: "w1".into(),
            incarnation: 2,
            status: "exit code 0".into(),
            clean,
        };
        let crashed = feed.lines(&exited(false));
        assert!(
            crashed.iter().all(|l| l.kind() == "node_down"),
            "a crash is not a shutdown"
        );
        let down = feed.lines(&exited(true));
        assert_eq!(
            (
                down[0].value()["worker"].clone(),
                down[0].value()["appliance"].clone()
            ),
            (json!("w1"), json!("a1"))
        );
        let retired = feed.lines(&Event::WorkerRetired {
            worker: "w2".into(),
            reason: "the appliance check failed".into(),
        });
        assert_eq!(
            retired[0].value()["reason"],
            "retired: the appliance check failed"
        );
    }

    #[test]
    fn a_process_that_ran_goes_down_with_its_workeroutput_or_how_it_died() {
        let mut feed = ControllerFeed::default();
        let spawned = |incarnation| Event::WorkerSpawned {
            worker: "w1".into(),
            incarnation,
            pid: 1,
            appliance: None,
        };
        let started = Event::TestStarted {
            test: "t::a".into(),
            worker: "w1".into(),
        };
        let exited = |incarnation, clean| Event::WorkerExited {
            worker: "w1".into(),
            incarnation,
            status: "signal 9 (SIGKILL)".into(),
            clean,
        };
        assert!(
            feed.lines(&spawned(1)).is_empty(),
            "configured at the start"
        );
        feed.lines(&started);
        let down: Vec<Value> = feed
            .lines(&exited(1, false))
            .iter()
            .map(Line::value)
            .collect();
        assert_eq!(down.len(), 1, "a crash is no harness shutdown: {down:?}");
        assert_eq!(down[0]["type"], "node_down");
        assert_eq!(down[0]["error"], "signal 9 (SIGKILL)");
        assert!(down[0].get("workeroutput").is_none());
        let up: Vec<Value> = feed.lines(&spawned(2)).iter().map(Line::value).collect();
        assert_eq!(
            up,
            vec![json!({"type": "node_up", "worker": "w1", "incarnation": 2})]
        );
        let output = Event::WorkerOutput {
            worker: "w1".into(),
            incarnation: 2,
            output: json!({"cov_worker_node_id": "w1"}),
        };
        assert!(feed.lines(&output).is_empty());
        let down: Vec<Value> = feed
            .lines(&exited(2, true))
            .iter()
            .map(Line::value)
            .collect();
        assert_eq!(down[0]["incarnation"], 2);
        assert_eq!(down[0]["error"], Value::Null);
        assert_eq!(down[0]["workeroutput"]["cov_worker_node_id"], "w1");
        assert_eq!(down[1]["type"], "worker_down");
        // A replacement that died before any test still was a node (configured by node_up).
        feed.lines(&spawned(3));
        let down: Vec<Value> = feed
            .lines(&exited(3, false))
            .iter()
            .map(Line::value)
            .collect();
        assert_eq!((down.len(), &down[0]["type"]), (1, &json!("node_down")));
        // A first incarnation that never ran a test nor sent output was no node.
        let other = Event::WorkerSpawned {
            worker: "w2".into(),
            incarnation: 1,
            pid: 2,
            appliance: None,
        };
        feed.lines(&other);
        let gone = Event::WorkerExited {
            worker: "w2".into(),
            incarnation: 1,
            status: "exit code 1".into(),
            clean: false,
        };
        assert!(feed.lines(&gone).is_empty());
    }

    #[test]
    fn the_configured_hook_names_every_slot_even_before_it_spawned() {
        use crate::events::SlotInfo;
        let mut feed = ControllerFeed::default();
        let slot = |id: &str, appliance: Option<&str>| SlotInfo {
            id: id.into(),
            appliance: appliance.map(str::to_string),
        };
        feed.lines(&Event::SessionStarted {
            runner: "pytest".into(),
            workers: 2,
            endpoint: "ipc://x".into(),
            slots: vec![slot("w1", Some("a1")), slot("w2", Some("a2"))],
        });
        // The reference can come before the second worker started (a fork server collects).
        let lines = feed.lines(&Event::Collected {
            tests: vec!["t".into()],
            deselected: Vec::new(),
        });
        assert_eq!(
            lines[0].value()["workers"],
            json!([{"id": "w1", "appliance": "a1"}, {"id": "w2", "appliance": "a2"}])
        );
    }

    #[test]
    fn the_finish_line_says_the_end_and_the_collection() {
        let mut feed = ControllerFeed::default();
        let collected = feed.lines(&Event::Collected {
            tests: vec!["a".into(), "b".into()],
            deselected: vec!["c".into()],
        });
        assert_eq!(collected[0].value()["type"], "configured");
        assert_eq!(collected[1].value()["count"], 2);
        assert_eq!(collected[1].value()["deselected"], json!(["c"]));
        let line = feed.finish(&SessionEnd::Interrupted("enough".into()), 2);
        assert_eq!(line["end"], "interrupted");
        assert_eq!(line["reason"], "enough");
        assert_eq!(
            (line["exitstatus"].clone(), line["collected"].clone()),
            (json!(2), json!(2))
        );
    }

    #[test]
    fn pytests_exit_code_counts_unless_herd_decided() {
        let clean = Tally::default();
        let done = SessionEnd::Completed;
        assert_eq!(session_exit_code(0, &done, &clean, Some(7)), 7);
        assert_eq!(session_exit_code(1, &done, &clean, None), 1);
        let interrupted = SessionEnd::Interrupted("SIGINT".into());
        assert_eq!(session_exit_code(2, &interrupted, &clean, Some(0)), 2);
        let mut crashed = Tally::default();
        crashed.add(Outcome::Crashed);
        assert_eq!(session_exit_code(1, &done, &crashed, Some(0)), 1);
    }
}
