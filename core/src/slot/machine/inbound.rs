//! What the process says: its hello, its collection (checked against the reference, whole or
//! file by file), and every later message; anything out of turn is a protocol violation, and
//! nothing a condemned process sends counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::liveness::Watch;
use crate::protocol::CollectionError;
use crate::untrusted;

impl Slot {
    /// A frame from `identity`: a hello of the current incarnation, or a message of its
    /// process once it said hello.
    pub(super) fn frame(
        &mut self,
        identity: Vec<u8>,
        message: WorkerMessage,
        collect: Option<CollectScope>,
        now: Instant,
    ) {
        let known = self.inc.identity.as_ref() == Some(&identity);
        if let WorkerMessage::Hello {
            incarnation,
            heartbeat,
            pid,
            ..
        } = message
        {
            if !known {
                return self.on_hello(identity, incarnation, heartbeat, collect, pid, now);
            }
        }
        if !known {
            let got = untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS);
            let why = format!("{got} has not said hello (or is not current); say hello first");
            return self.refuse(identity, why);
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            return;
        }
        if let Some(watch) = &mut self.inc.liveness {
            watch.heard(now);
        }
        self.on_message(message, now);
    }

    /// A frame from `identity` that does not decode: the current process is killed for it.
    pub(super) fn garbage(&mut self, identity: Vec<u8>, reason: String) {
        if self.inc.identity.as_ref() != Some(&identity) {
            return self.refuse(identity, format!("malformed frame: {reason}"));
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            return;
        }
        if self.inc.armed.garble_after.is_some() {
            let test = self.running_test();
            self.fault(FaultKind::Garble, test);
        }
        self.notice(format!("sent a malformed frame ({reason}); killing it"));
        self.kill(KillReason::Garbage(reason));
    }

    /// Refuses a message: an error reply, an event, and nothing else.
    fn refuse(&mut self, identity: Vec<u8>, reason: String) {
        self.publish(Event::MessageRefused {
            identity: untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS),
            reason: reason.clone(),
        });
        self.send(identity, CoordinatorMessage::Error { message: reason });
    }

    /// The process broke the protocol: it is killed, and its work handled as after a crash.
    pub(super) fn violation(&mut self, why: String) {
        let identity = self.identity();
        self.publish(Event::MessageRefused {
            identity,
            reason: why.clone(),
        });
        self.send_to_process(CoordinatorMessage::Error {
            message: why.clone(),
        });
        self.kill(KillReason::Violation(why));
    }

    fn on_hello(
        &mut self,
        identity: Vec<u8>,
        incarnation: u32,
        heartbeat: Option<f64>,
        collect: Option<CollectScope>,
        pid: Option<u32>,
        now: Instant,
    ) {
        let claimed = protocol::check_identity(&identity, &self.config.worker, incarnation);
        if incarnation != self.incarnation || self.phase != Phase::Starting || claimed.is_err() {
            let got = untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS);
            let why = if let Err(why) = claimed {
                format!("identity {got:?} does not match the hello: {why}")
            } else {
                let (slot, expected) = (&self.config.worker, self.identity());
                format!("{got} is not the current process of {slot} (expected {expected})")
            };
            return self.refuse(identity, why);
        }
        self.inc.identity = Some(identity);
        self.phase = Phase::Collecting {
            early_request: false,
        };
        // A worker that promised heartbeats is hung when silent (and idle) for three of them
        // (and at least --heartbeat-timeout).
        let least = self.config.heartbeat_timeout;
        self.inc.liveness = heartbeat.filter(|s| s.is_finite() && *s > 0.0).map(|s| {
            let limit = least.max(Duration::from_secs_f64((3.0 * s).min(1e6)));
            Watch::new(limit, now)
        });
        let worker = self.id();
        self.send_to_process(CoordinatorMessage::Welcome {
            worker,
            incarnation,
            collect,
        });
        if self.inc.external {
            self.inc.joined = true;
            self.publish(Event::WorkerSpawned {
                worker: self.id(),
                incarnation,
                pid: pid.unwrap_or(0),
                appliance: self.config.appliance.clone(),
            });
        }
    }

    fn on_message(&mut self, message: WorkerMessage, now: Instant) {
        match message {
            WorkerMessage::Hello { .. } => self.violation("a second hello".into()),
            WorkerMessage::Heartbeat => {}
            WorkerMessage::Collection {
                tests,
                errors,
                herd_groups,
                files,
                scope,
                digest,
                deselected,
            } => self.on_collection(Part {
                tests,
                errors,
                herd_groups,
                files,
                scope,
                digest,
                deselected,
            }),
            WorkerMessage::FileCollection {
                file,
                tests,
                errors,
            } => self.on_file_collection(file, tests, errors),
            WorkerMessage::NeedTests => self.on_need_tests(),
            WorkerMessage::Warning { text, test, when } => {
                let outside_tests = test.is_none() && when.as_deref() != Some("runtest");
                let worker = self.id();
                self.publish(Event::Warning {
                    worker,
                    test,
                    text,
                    outside_tests,
                })
            }
            WorkerMessage::SessionExit { reason } => self.out.push(Effect::SessionExit(reason)),
            WorkerMessage::TestStarted { test } => self.on_test_started(test, now),
            WorkerMessage::Report(report) => self.on_report(report),
            WorkerMessage::Released { tests } => self.on_released(tests),
            WorkerMessage::Message { text } => {
                let worker = self.id();
                self.publish(Event::WorkerMessage { worker, text })
            }
            WorkerMessage::InternalError { message } => {
                self.notice(format!("internal error in the worker: {message}"));
                self.kill(KillReason::InternalError(message));
            }
            WorkerMessage::WorkerOutput { output } => {
                let (worker, incarnation) = (self.id(), self.incarnation);
                self.publish(Event::WorkerOutput {
                    worker,
                    incarnation,
                    output,
                })
            }
            WorkerMessage::Shutdown => self.on_shutdown(),
            WorkerMessage::Leaving { tests } => self.on_leaving(tests),
            WorkerMessage::Join { .. } => self.violation("a join after its hello".into()),
        }
    }

    /// Its collection (whole, a shard, or a digest) goes to the Supervisor to be checked.
    fn on_collection(&mut self, part: Part) {
        let Phase::Collecting { early_request } = self.phase else {
            return self.violation("a collection at the wrong time".into());
        };
        self.phase = Phase::Checking {
            early_request,
            awaiting_reference: false,
        };
        self.inc.collected = (!part.is_whole()).then(|| Arc::new(collected_files(&part)));
        self.out.push(Effect::CheckCollection {
            incarnation: self.incarnation,
            identity: self.identity(),
            part,
        });
    }

    /// It leaves early (its host asked it to go): the unstarted tests it gives back run
    /// elsewhere at once; the running one finishes here, then it says `shutdown`.
    fn on_leaving(&mut self, tests: Vec<TestId>) {
        if !self.inc.leaving {
            self.notice("is leaving (asked to by its host): its unstarted tests go back");
        }
        self.inc.leaving = true;
        let given = self.inc.take_unstarted(tests);
        if !given.is_empty() {
            self.out.push(Effect::ReturnTests {
                tests: given,
                crashed: None,
                stolen: false,
            });
        }
    }

    /// It said `shutdown`: it must exit within the grace period.
    fn on_shutdown(&mut self) {
        self.inc.shutdown_said = true;
        self.phase = Phase::Stopping;
        if self.inc.external {
            // It exits now, on its own host: what it sent before is handled first.
            let incarnation = self.incarnation;
            return self.gone(incarnation, 0, Some(0), "left after shutdown".into());
        }
        self.arm(TimerKind::Grace, self.config.grace);
    }

    /// The grace period after `shutdown` ran out: a process still running is killed.
    pub(super) fn grace_expired(&mut self) {
        if self.inc.pid.is_some() {
            let secs = self.config.grace.as_secs();
            self.notice(format!(
                "did not exit within {secs}s of shutdown; killing it"
            ));
            self.kill(KillReason::GraceExpired);
        }
    }

    /// The Supervisor's verdict on the collection of `incarnation`.
    pub(super) fn verdict(&mut self, incarnation: u32, verdict: CollectionVerdict) {
        if incarnation != self.incarnation || !matches!(self.phase, Phase::Checking { .. }) {
            return;
        }
        match verdict {
            CollectionVerdict::Accepted(reference) => {
                self.reference = Some(reference);
                self.start_working();
            }
            CollectionVerdict::Pending if self.reference.is_some() => self.start_working(),
            CollectionVerdict::Pending => {
                if let Phase::Checking {
                    awaiting_reference, ..
                } = &mut self.phase
                {
                    *awaiting_reference = true;
                }
            }
            CollectionVerdict::IdsNeeded => {
                // Its digest differs: the ids show how (and are checked as usual).
                let early_request = self.phase.early_request();
                self.phase = Phase::Collecting { early_request };
                self.send_to_process(CoordinatorMessage::CollectionNeeded);
            }
            CollectionVerdict::Mismatch(diff) => {
                if self.inc.armed.lie {
                    self.fault(FaultKind::Lie, None);
                }
                let worker = self.id();
                self.publish(Event::CollectionMismatch { worker, diff });
                self.kill(KillReason::Mismatch);
            }
            // The session is ending: the Supervisor stops this worker with the others.
            CollectionVerdict::Refused => {}
        }
    }

    /// The reference assembled from shards is complete: a slot waiting for it starts working.
    pub(super) fn reference_ready(&mut self, reference: Arc<Reference>) {
        self.reference = Some(reference);
        if matches!(
            self.phase,
            Phase::Checking {
                awaiting_reference: true,
                ..
            }
        ) {
            self.start_working();
        }
    }

    /// Its collection is accepted: it works, and an early request for work is served now.
    fn start_working(&mut self) {
        let early_request = self.phase.early_request();
        self.phase = Phase::Working {
            awaiting_work: false,
        };
        if early_request {
            self.need_tests();
        }
    }

    /// A file collected late is checked against the reference before any of its tests runs.
    fn on_file_collection(
        &mut self,
        file: String,
        tests: Vec<TestId>,
        errors: Vec<CollectionError>,
    ) {
        let identity = self.identity();
        let (Some(reference), Some(collected)) = (&self.reference, &mut self.inc.collected) else {
            return self.violation(format!("a collection of {file} at the wrong time"));
        };
        let mut diff = reference.check_file(&file, &tests, &identity);
        if !errors.is_empty() {
            let text = diff.take().unwrap_or_default();
            diff = Some(format!("{text}collection errors in: {file}\n"));
        }
        match diff {
            None => {
                Arc::make_mut(collected).insert(file.clone());
                self.send_to_process(CoordinatorMessage::FileAccepted { file });
            }
            Some(diff) => {
                let worker = self.id();
                self.publish(Event::CollectionMismatch { worker, diff });
                self.kill(KillReason::Mismatch);
            }
        }
    }
}

/// The files a partial collection covers: its scope's share of the walk.
pub(super) fn collected_files(part: &Part) -> HashSet<String> {
    let scope = part.scope.clone().unwrap_or(CollectScope::All);
    let files = part.files.as_deref().unwrap_or_default();
    files
        .iter()
        .enumerate()
        .filter(|(i, _)| scope.covers(*i))
        .map(|(_, f)| f.clone())
        .collect()
}
