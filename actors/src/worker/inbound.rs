//! What the process says: its hello, its collection (checked against the reference, whole or
//! file by file), and every later message; anything out of turn is a protocol violation, and
//! nothing a condemned process sends counts.

use super::*;

impl Worker {
    /// Refuses a message: an error reply, an event, and nothing else.
    pub(super) fn refuse(&self, identity: Vec<u8>, reason: String) {
        self.publish(Event::MessageRefused {
            identity: untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS),
            reason: reason.clone(),
        });
        self.send(identity, CoordinatorMessage::Error { message: reason });
    }

    /// The process broke the protocol: it is killed, and its work handled as after a crash.
    pub(super) fn violation(&mut self, why: String) {
        self.publish(Event::MessageRefused {
            identity: protocol::identity(&self.slot.id, self.incarnation),
            reason: why.clone(),
        });
        self.send_to_process(CoordinatorMessage::Error {
            message: why.clone(),
        });
        self.kill(KillReason::Violation(why));
    }

    pub(super) fn on_hello(
        &mut self,
        identity: Vec<u8>,
        incarnation: u32,
        heartbeat: Option<f64>,
        collect: Option<CollectScope>,
        pid: Option<u32>,
    ) {
        let expected = protocol::identity(&self.slot.id, self.incarnation);
        let claimed = protocol::check_identity(&identity, &self.slot.id, incarnation);
        if incarnation != self.incarnation || self.state != State::Starting || claimed.is_err() {
            let got = untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS);
            let why = if let Err(why) = claimed {
                format!("identity {got:?} does not match the hello: {why}")
            } else {
                format!(
                    "{got} is not the current process of {} (expected {expected})",
                    self.slot.id
                )
            };
            self.refuse(identity, why);
            return;
        }
        self.inc.identity = Some(identity);
        self.state = State::Collecting {
            early_request: false,
        };
        // A worker that promised heartbeats is hung when silent (and idle) for three of them
        // (and at least --heartbeat-timeout).
        self.inc.liveness = heartbeat.filter(|s| s.is_finite() && *s > 0.0).map(|s| {
            let limit = self
                .settings
                .heartbeat_timeout
                .max(Duration::from_secs_f64((3.0 * s).min(1e6)));
            Watch::new(limit, Instant::now())
        });
        self.send_to_process(CoordinatorMessage::Welcome {
            worker: self.id(),
            incarnation,
            collect,
        });
        if self.inc.external {
            self.inc.joined = true;
            self.publish(Event::WorkerSpawned {
                worker: self.id(),
                incarnation,
                pid: pid.unwrap_or(0),
                appliance: self.slot.appliance.clone(),
            });
        }
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<Self>, message: WorkerMessage) {
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
            } => self.on_collection(
                ctx,
                Part {
                    tests,
                    errors,
                    herd_groups,
                    files,
                    scope,
                    digest,
                    deselected,
                },
            ),
            WorkerMessage::FileCollection {
                file,
                tests,
                errors,
            } => self.on_file_collection(file, tests, errors),
            WorkerMessage::NeedTests if self.state.is_early() && self.state != State::Starting => {
                // Served once its collection is accepted.
                if let State::Collecting { early_request } | State::Checking { early_request, .. } =
                    &mut self.state
                {
                    *early_request = true;
                }
            }
            // A worker that is leaving gets nothing more (it would give it back).
            WorkerMessage::NeedTests if self.inc.leaving => {}
            WorkerMessage::NeedTests => self.need_tests(ctx),
            WorkerMessage::Warning { text, test, when } => {
                let outside_tests = test.is_none() && when.as_deref() != Some("runtest");
                self.publish(Event::Warning {
                    worker: self.id(),
                    test,
                    text,
                    outside_tests,
                })
            }
            WorkerMessage::SessionExit { reason } => {
                self.peers.supervisor.do_send(SessionExitRequested {
                    worker: self.id(),
                    reason,
                })
            }
            WorkerMessage::TestStarted { test } => self.on_test_started(ctx, test),
            WorkerMessage::Report(report) => self.on_report(report),
            WorkerMessage::Released { tests } => self.on_released(tests),
            WorkerMessage::Message { text } => self.publish(Event::WorkerMessage {
                worker: self.id(),
                text,
            }),
            WorkerMessage::InternalError { message } => {
                self.notice(format!("internal error in the worker: {message}"));
                self.kill(KillReason::InternalError(message));
            }
            WorkerMessage::WorkerOutput { output } => self.publish(Event::WorkerOutput {
                worker: self.id(),
                incarnation: self.incarnation,
                output,
            }),
            WorkerMessage::Shutdown => self.on_shutdown(ctx),
            WorkerMessage::Leaving { tests } => self.on_leaving(tests),
            WorkerMessage::Join { .. } => self.violation("a join after its hello".into()),
        }
    }

    /// Its collection (whole, a shard, or a digest) goes to the Supervisor to be checked.
    fn on_collection(&mut self, ctx: &mut Context<Self>, part: Part) {
        let State::Collecting { early_request } = self.state else {
            return self.violation("a collection at the wrong time".into());
        };
        self.state = State::Checking {
            early_request,
            awaiting_reference: false,
        };
        self.inc.collected = (!part.is_whole()).then(|| Arc::new(collected_files(&part)));
        let check = CheckCollection {
            worker: self.id(),
            identity: protocol::identity(&self.slot.id, self.incarnation),
            part,
        };
        let incarnation = self.incarnation;
        let ask = self.peers.supervisor.send(check);
        ctx.spawn(ask.into_actor(self).map(move |verdict, act, ctx| {
            if act.incarnation == incarnation && matches!(act.state, State::Checking { .. }) {
                act.collection_checked(ctx, verdict.unwrap_or(CollectionVerdict::Refused));
            }
        }));
    }

    /// A phase report of the running test; the final teardown ends the test.
    fn on_report(&mut self, report: PhaseReport) {
        let Some(running) = self.inc.running.as_mut().filter(|r| r.test == report.test) else {
            return self.violation(format!(
                "a report for {}, which is not running",
                report.test
            ));
        };
        let teardown = report.when == Phase::Teardown && !report.intermediate;
        running.record.add(report);
        if teardown {
            self.finish_running();
        }
    }

    /// It leaves early (its host asked it to go): the unstarted tests it gives back run
    /// elsewhere at once; the running one finishes here, then it says `shutdown`.
    fn on_leaving(&mut self, tests: Vec<TestId>) {
        if !self.inc.leaving {
            self.notice("is leaving (asked to by its host): its unstarted tests go back");
        }
        self.inc.leaving = true;
        let running = self.inc.running.as_ref().map(|r| r.test.clone());
        let mut given = Vec::with_capacity(tests.len());
        for test in tests {
            if Some(&test) == running.as_ref() {
                continue;
            }
            if let Some(pos) = self.inc.queue.iter().position(|t| *t == test) {
                given.extend(self.inc.queue.remove(pos));
            }
        }
        if !given.is_empty() {
            self.peers.scheduler.do_send(ReturnTests {
                worker: self.id(),
                tests: given,
                crashed: None,
                stolen: false,
            });
        }
    }

    /// It said `shutdown`: it must exit within the grace period.
    fn on_shutdown(&mut self, ctx: &mut Context<Self>) {
        self.inc.shutdown_said = true;
        self.state = State::Stopping;
        let incarnation = self.incarnation;
        if self.inc.external {
            // It exits now, on its own host: what it sent before is handled first.
            return self.gone(ctx, incarnation, 0, Some(0), "left after shutdown".into());
        }
        ctx.run_later(self.settings.grace, move |act, _| {
            if act.incarnation == incarnation && act.inc.pid.is_some() {
                act.notice(format!(
                    "did not exit within {}s of shutdown; killing it",
                    act.settings.grace.as_secs()
                ));
                act.kill(KillReason::GraceExpired);
            }
        });
    }

    pub(super) fn collection_checked(
        &mut self,
        ctx: &mut Context<Self>,
        verdict: CollectionVerdict,
    ) {
        match verdict {
            CollectionVerdict::Accepted(reference) => {
                self.reference = Some(reference);
                self.start_working(ctx);
            }
            CollectionVerdict::Pending if self.reference.is_some() => self.start_working(ctx),
            CollectionVerdict::Pending => {
                if let State::Checking {
                    awaiting_reference, ..
                } = &mut self.state
                {
                    *awaiting_reference = true;
                }
            }
            CollectionVerdict::IdsNeeded => {
                // Its digest differs: the ids show how (and are checked as usual).
                let early_request = matches!(
                    self.state,
                    State::Checking {
                        early_request: true,
                        ..
                    }
                );
                self.state = State::Collecting { early_request };
                self.send_to_process(CoordinatorMessage::CollectionNeeded);
            }
            CollectionVerdict::Mismatch(diff) => {
                if self.inc.armed.lie {
                    self.fault(FaultKind::Lie, None);
                }
                self.publish(Event::CollectionMismatch {
                    worker: self.id(),
                    diff,
                });
                self.kill(KillReason::Mismatch);
            }
            // The session is ending: the Supervisor stops this worker with the others.
            CollectionVerdict::Refused => {}
        }
    }

    pub(super) fn start_working(&mut self, ctx: &mut Context<Self>) {
        let early_request = matches!(
            self.state,
            State::Collecting {
                early_request: true
            } | State::Checking {
                early_request: true,
                ..
            }
        );
        self.state = State::Working {
            awaiting_work: false,
        };
        if early_request {
            self.need_tests(ctx);
        }
    }

    /// A file collected late is checked against the reference before any of its tests runs.
    pub(super) fn on_file_collection(
        &mut self,
        file: String,
        tests: Vec<TestId>,
        errors: Vec<CollectionError>,
    ) {
        let (Some(reference), Some(collected)) = (&self.reference, &mut self.inc.collected) else {
            return self.violation(format!("a collection of {file} at the wrong time"));
        };
        let identity = protocol::identity(&self.slot.id, self.incarnation);
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
                self.publish(Event::CollectionMismatch {
                    worker: self.id(),
                    diff,
                });
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

impl Handler<FromProcess> for Worker {
    type Result = ();

    fn handle(&mut self, msg: FromProcess, ctx: &mut Self::Context) {
        if let WorkerMessage::Hello {
            incarnation,
            heartbeat,
            pid,
            ..
        } = msg.message
        {
            if self.inc.identity.as_ref() != Some(&msg.identity) {
                return self.on_hello(msg.identity, incarnation, heartbeat, msg.collect, pid);
            }
        }
        if self.inc.identity.as_ref() != Some(&msg.identity) {
            let got = untrusted::escape(&msg.identity, untrusted::MAX_SHOWN_CHARS);
            let why = format!("{got} has not said hello (or is not current); say hello first");
            return self.refuse(msg.identity, why);
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            tracing::debug!(worker = %self.slot.id, "ignoring a message of a condemned process");
            return;
        }
        if let Some(watch) = &mut self.inc.liveness {
            watch.heard(Instant::now());
        }
        self.on_message(ctx, msg.message);
    }
}

impl Handler<Garbage> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Garbage, _: &mut Self::Context) {
        if self.inc.identity.as_ref() != Some(&msg.identity) {
            let reason = format!("malformed frame: {}", msg.reason);
            return self.refuse(msg.identity, reason);
        }
        if self.inc.kill.as_ref().is_some_and(KillReason::condemns) {
            return;
        }
        if self.inc.armed.garble_after.is_some() {
            self.fault(
                FaultKind::Garble,
                self.inc.running.as_ref().map(|r| r.test.clone()),
            );
        }
        self.notice(format!(
            "sent a malformed frame ({}); killing it",
            msg.reason
        ));
        self.kill(KillReason::Garbage(msg.reason));
    }
}

impl Handler<ReferenceReady> for Worker {
    type Result = ();

    fn handle(&mut self, ReferenceReady(reference): ReferenceReady, ctx: &mut Self::Context) {
        self.reference = Some(reference);
        if matches!(
            self.state,
            State::Checking {
                awaiting_reference: true,
                ..
            }
        ) {
            self.start_working(ctx);
        }
    }
}
