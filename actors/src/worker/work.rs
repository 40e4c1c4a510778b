//! The tests a process holds: asking for work, delivering it (after a provider switch's
//! cleanse), each test's start, timeout and end, and work stealing through the handshake
//! ([`herd_core::slot::steal`]).

use super::*;

impl Worker {
    pub(super) fn need_tests(&mut self, ctx: &mut Context<Self>) {
        let State::Working { awaiting_work } = &mut self.state else {
            return self.violation("need_tests before its collection was accepted".into());
        };
        if self.draining {
            self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
        } else if !*awaiting_work {
            *awaiting_work = true;
            let (reply, steal) = (ctx.address().recipient(), ctx.address().recipient());
            let (worker, incarnation) = (self.id(), self.incarnation);
            self.peers.scheduler.do_send(RequestWork {
                worker,
                incarnation,
                reply,
                steal,
                collected: self.inc.collected.clone(),
                holding: self.unstarted(),
            });
        }
    }

    pub(super) fn on_test_started(&mut self, ctx: &mut Context<Self>, test: TestId) {
        if !self.state.is_working() {
            return self.violation(format!("test_started for {test} at the wrong time"));
        }
        if let Some(running) = &self.inc.running {
            return self.violation(format!(
                "started {test} while {} was still running",
                running.test
            ));
        }
        if !self.inc.queue.contains(&test) {
            return self.violation(format!("started {test}, which it was not given"));
        }
        if let Some(collected) = &self.inc.collected {
            if !collected.contains(module_of(&test)) {
                return self.violation(format!(
                    "started {test} without reporting the collection of its file"
                ));
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.inc.running = Some(Running {
            test: test.clone(),
            started: Instant::now(),
            record: TestRecord::default(),
            seq,
        });
        if let Some(limit) = self.settings.timeout {
            ctx.run_later(limit, move |act, _| act.timed_out(seq, limit));
        }
        if let Some((kind, delay)) = self.inc.dice.as_mut().and_then(FaultDice::at_test_start) {
            let incarnation = self.incarnation;
            ctx.run_later(Duration::from_millis(delay), move |act, _| {
                act.strike(incarnation, kind)
            });
        }
        self.publish(Event::TestStarted {
            test,
            worker: self.id(),
        });
        if let Some(steal) = self.inc.steal.test_started() {
            self.steal(steal, ctx);
        }
    }

    pub(super) fn timed_out(&mut self, seq: u64, limit: Duration) {
        let Some(running) = self.inc.running.take_if(|r| r.seq == seq) else {
            return;
        };
        self.inc.queue.retain(|t| t != &running.test);
        let details = format!(
            "timed out after {}s on worker {}; the worker was killed\n{}",
            limit.as_secs_f64(),
            self.slot.id,
            self.tail_text()
        );
        let message = format!("timed out after {}s", limit.as_secs_f64());
        let duration = running.started.elapsed().as_secs_f64();
        self.publish(Event::TestFinished {
            test: running.test,
            worker: Some(self.id()),
            verdict: Verdict::decided(Outcome::TimedOut, duration, Some(message), Some(details)),
        });
        self.peers.scheduler.do_send(Settled {
            worker: self.id(),
            count: 1,
        });
        self.kill(KillReason::Timeout);
    }

    pub(super) fn finish_running(&mut self) {
        let Some(running) = self.inc.running.take() else {
            return;
        };
        if let Some(pos) = self.inc.queue.iter().position(|t| t == &running.test) {
            self.inc.queue.remove(pos);
        }
        let verdict = running.record.verdict();
        self.crash_streak = 0;
        self.publish(Event::TestFinished {
            test: running.test,
            worker: Some(self.id()),
            verdict,
        });
        self.peers.scheduler.do_send(Settled {
            worker: self.id(),
            count: 1,
        });
    }

    /// The process gave back `tests` (work stealing). Only tests it holds and has not started
    /// count; starting one of them later is a protocol violation.
    pub(super) fn on_released(&mut self, tests: Vec<TestId>) {
        if !self.inc.steal.released() {
            return self.violation("released tests it was not asked for".into());
        }
        let running = self.inc.running.as_ref().map(|r| &r.test);
        let mut given = Vec::with_capacity(tests.len());
        for test in tests {
            if Some(&test) == running {
                continue;
            }
            if let Some(pos) = self.inc.queue.iter().position(|t| t == &test) {
                given.push(self.inc.queue.remove(pos).expect("position is valid"));
            }
        }
        self.return_stolen(given);
    }

    /// Answers a [`Steal`]: asks the process for the end of its queue, or says "nothing". Every
    /// Steal is answered once.
    pub(super) fn steal(&mut self, msg: Steal, ctx: &mut Context<Self>) {
        let tail: Vec<TestId> =
            if self.state.is_working() && !self.draining && !self.inc.steal.asking() {
                let running = self.inc.running.as_ref().map(|r| &r.test);
                let unstarted = self.unstarted();
                msg.policy
                    .tail(running, &unstarted, msg.thief_load)
                    .to_vec()
            } else {
                Vec::new()
            };
        if tail.is_empty() {
            return self.return_stolen(tail);
        }
        self.inc.steal.ask();
        self.send_to_process(CoordinatorMessage::Release { tests: tail });
        // A worker busy in a long test (or one that ignores `release`) must not keep the
        // Scheduler waiting: it hears "nothing" after a while; a late answer still counts.
        let incarnation = self.incarnation;
        ctx.run_later(RELEASE_PATIENCE, move |act, _| {
            if act.incarnation == incarnation && act.inc.steal.asking() {
                act.return_stolen(Vec::new());
            }
        });
    }

    /// The process is gone: a steal it was asked for (or was to be asked for) is answered
    /// "nothing" for it; its tests come back with the rest of its queue.
    pub(super) fn forget_steal(&mut self) {
        if self.inc.steal.forget() {
            self.return_stolen(Vec::new());
        }
    }

    /// The tests the process holds and has not started, in order.
    pub(super) fn unstarted(&self) -> Vec<TestId> {
        let running = self.inc.running.as_ref().map(|r| &r.test);
        self.inc
            .queue
            .iter()
            .filter(|t| Some(*t) != running)
            .cloned()
            .collect()
    }

    pub(super) fn return_stolen(&self, tests: Vec<TestId>) {
        self.peers.scheduler.do_send(ReturnTests {
            worker: self.id(),
            tests,
            crashed: None,
            stolen: true,
        });
    }

    pub(super) fn deliver(&mut self, incarnation: u32, tests: Vec<TestId>) {
        let leaving = self.inc.leaving;
        if incarnation != self.incarnation || !self.state.is_working() || self.draining || leaving {
            self.peers.scheduler.do_send(ReturnTests {
                worker: self.id(),
                tests,
                crashed: None,
                stolen: false,
            });
            return;
        }
        self.inc.queue.extend(tests.iter().cloned());
        self.inc.steal.tests_sent();
        self.send_to_process(CoordinatorMessage::Tests { tests });
    }
}

impl Handler<Assignment> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Assignment, ctx: &mut Self::Context) {
        if msg.incarnation == self.incarnation {
            if let State::Working { awaiting_work } = &mut self.state {
                *awaiting_work = false;
            }
        }
        if msg.tests.is_empty() {
            if msg.incarnation == self.incarnation && self.state.is_working() {
                self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
            }
            return;
        }
        let Some((from, to)) = msg.switch else {
            return self.deliver(msg.incarnation, msg.tests);
        };
        let switched = Event::ProviderSwitched {
            worker: self.id(),
            from: from.clone(),
            to: to.clone(),
        };
        let Some(cleanse) = self.settings.cleanse.clone() else {
            self.publish(switched);
            return self.deliver(msg.incarnation, msg.tests);
        };
        let mut env = self.hook_env();
        env.push(("HERD_PROVIDER_FROM".into(), from));
        env.push(("HERD_PROVIDER_TO".into(), to));
        let hook = run_hook(cleanse, env, self.settings.hook_timeout);
        let (incarnation, tests) = (msg.incarnation, msg.tests);
        ctx.spawn(hook.into_actor(self).map(move |result, act, _| {
            if !result.ok {
                act.notice(format!("cleanse failed; going on: {}", result.summary));
            }
            act.publish(switched);
            act.deliver(incarnation, tests);
        }));
    }
}

impl Handler<Steal> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Steal, ctx: &mut Self::Context) {
        let working = self.state.is_working() && !self.draining;
        match self.inc.steal.requested(msg, working) {
            Step::Ask(msg) => self.steal(msg, ctx),
            Step::Deferred => {
                // Tests were just sent: the process may not have read them yet, and could not
                // give them back. Ask once it starts one (or after a while).
                let incarnation = self.incarnation;
                ctx.run_later(RELEASE_PATIENCE, move |act, ctx| {
                    if act.incarnation == incarnation {
                        if let Some(steal) = act.inc.steal.deferral_expired() {
                            act.steal(steal, ctx);
                        }
                    }
                });
            }
        }
    }
}
