//! The tests a process holds: asking for work, delivering it (after a provider switch's
//! cleanse), each test's start, timeout and end, and work stealing through the handshake
//! ([`crate::slot::steal`]).

use std::time::Instant;

use super::phase::StealRequest;
use super::*;
use crate::grouping::module_of;
use crate::outcome::{Outcome, Phase as TestPhase, TestRecord, Verdict};
use crate::protocol::PhaseReport;
use crate::slot::steal::Step;

impl Slot {
    /// It asks for work: kept until its collection is accepted, refused while it leaves.
    pub(super) fn on_need_tests(&mut self) {
        match &mut self.phase {
            Phase::Collecting { early_request } | Phase::Checking { early_request, .. } => {
                // Served once its collection is accepted.
                *early_request = true;
            }
            // A worker that is leaving gets nothing more (it would give it back).
            _ if self.inc.leaving => {}
            _ => self.need_tests(),
        }
    }

    /// Asks the Scheduler for work (once at a time); a draining slot hears "none".
    pub(super) fn need_tests(&mut self) {
        let Phase::Working { awaiting_work } = &mut self.phase else {
            return self.violation("need_tests before its collection was accepted".into());
        };
        if self.draining {
            self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
        } else if !*awaiting_work {
            *awaiting_work = true;
            self.out.push(Effect::RequestWork {
                incarnation: self.incarnation,
                collected: self.inc.collected.clone(),
                holding: self.inc.unstarted(),
            });
        }
    }

    /// The Scheduler's answer to a request of `incarnation`.
    pub(super) fn assignment(
        &mut self,
        incarnation: u32,
        tests: Vec<TestId>,
        switch: Option<(String, String)>,
    ) {
        let current = incarnation == self.incarnation;
        if let Phase::Working { awaiting_work } = &mut self.phase {
            *awaiting_work &= !current;
        }
        if tests.is_empty() {
            if current && self.phase.is_working() {
                self.send_to_process(CoordinatorMessage::Tests { tests: Vec::new() });
            }
            return;
        }
        match switch {
            None => self.deliver(incarnation, tests),
            Some(switch) if self.config.cleanse => self.out.push(Effect::Cleanse {
                incarnation,
                tests,
                switch,
            }),
            Some(switch) => self.cleansed(incarnation, tests, switch, None),
        }
    }

    /// The provider switch is done (its cleanse run, if any): the tests are delivered.
    pub(super) fn cleansed(
        &mut self,
        incarnation: u32,
        tests: Vec<TestId>,
        (from, to): (String, String),
        failed: Option<String>,
    ) {
        if let Some(summary) = failed {
            self.notice(format!("cleanse failed; going on: {summary}"));
        }
        let worker = self.id();
        self.publish(Event::ProviderSwitched { worker, from, to });
        self.deliver(incarnation, tests);
    }

    /// Sends `tests` to the process, or back to the Scheduler when it cannot take them.
    fn deliver(&mut self, incarnation: u32, tests: Vec<TestId>) {
        let current = incarnation == self.incarnation && self.phase.is_working();
        if !current || self.draining || self.inc.leaving {
            let back = Effect::ReturnTests {
                tests,
                crashed: None,
                stolen: false,
            };
            return self.out.push(back);
        }
        self.inc.queue.extend(tests.iter().cloned());
        self.inc.steal.tests_sent();
        self.send_to_process(CoordinatorMessage::Tests { tests });
    }

    /// It starts `test`: one it was given, with its file collected, none running.
    pub(super) fn on_test_started(&mut self, test: TestId, now: Instant) {
        if let Some(why) = self.start_refused(&test) {
            return self.violation(why);
        }
        self.seq += 1;
        let seq = self.seq;
        self.inc.running = Some(Running {
            test: test.clone(),
            started: now,
            record: TestRecord::default(),
            seq,
        });
        if let Some(limit) = self.config.timeout {
            self.arm(TimerKind::Test { seq }, limit);
        }
        if let Some((kind, delay)) = self.inc.dice.as_mut().and_then(FaultDice::at_test_start) {
            self.arm(TimerKind::Strike(kind), Duration::from_millis(delay));
        }
        let worker = self.id();
        self.publish(Event::TestStarted { test, worker });
        if let Some(steal) = self.inc.steal.test_started() {
            self.steal(steal);
        }
    }

    /// Why starting `test` now breaks the protocol, if it does.
    fn start_refused(&self, test: &TestId) -> Option<String> {
        if !self.phase.is_working() {
            return Some(format!("test_started for {test} at the wrong time"));
        }
        if let Some(running) = &self.inc.running {
            let other = &running.test;
            return Some(format!("started {test} while {other} was still running"));
        }
        if !self.inc.queue.contains(test) {
            return Some(format!("started {test}, which it was not given"));
        }
        let collected = self.inc.collected.as_ref();
        if collected.is_some_and(|c| !c.contains(module_of(test))) {
            return Some(format!(
                "started {test} without reporting the collection of its file"
            ));
        }
        None
    }

    /// A phase report of the running test; the final teardown ends the test.
    pub(super) fn on_report(&mut self, report: PhaseReport) {
        let Some(running) = self.inc.running.as_mut().filter(|r| r.test == report.test) else {
            let test = &report.test;
            return self.violation(format!("a report for {test}, which is not running"));
        };
        let teardown = report.when == TestPhase::Teardown && !report.intermediate;
        running.record.add(report);
        if teardown {
            self.finish_running();
        }
    }

    /// The test started as number `seq` ran past `--timeout`: it timed out, and the process
    /// is killed.
    pub(super) fn timed_out(&mut self, seq: u64, now: Instant) {
        let Some(running) = self.inc.running.take_if(|r| r.seq == seq) else {
            return;
        };
        let limit = self.config.timeout.unwrap_or_default().as_secs_f64();
        self.inc.queue.retain(|t| t != &running.test);
        let details = format!(
            "timed out after {limit}s on worker {}; the worker was killed\n{}",
            self.config.worker,
            self.tail_text()
        );
        let message = format!("timed out after {limit}s");
        let duration = now.saturating_duration_since(running.started).as_secs_f64();
        let verdict = Verdict::decided(Outcome::TimedOut, duration, Some(message), Some(details));
        self.settle(running.test, verdict);
        self.kill(KillReason::Timeout);
    }

    /// The running test ended: its verdict is published and the crash streak broken.
    fn finish_running(&mut self) {
        let Some(running) = self.inc.running.take() else {
            return;
        };
        if let Some(pos) = self.inc.queue.iter().position(|t| t == &running.test) {
            self.inc.queue.remove(pos);
        }
        let verdict = running.record.verdict();
        self.crash_streak = 0;
        self.settle(running.test, verdict);
    }

    /// `test` ended with `verdict` on this slot: published, and counted as settled.
    fn settle(&mut self, test: TestId, verdict: Verdict) {
        let worker = Some(self.id());
        self.publish(Event::TestFinished {
            test,
            worker,
            verdict,
        });
        self.out.push(Effect::Settled(1));
    }

    /// The process gave back `tests` (work stealing). Only tests it holds and has not started
    /// count; starting one of them later is a protocol violation.
    pub(super) fn on_released(&mut self, tests: Vec<TestId>) {
        if !self.inc.steal.released() {
            return self.violation("released tests it was not asked for".into());
        }
        let given = self.inc.take_unstarted(tests);
        self.return_stolen(given);
    }

    /// The Scheduler would steal: asked now, or deferred until the process confirms it read
    /// the tests just sent.
    pub(super) fn steal_requested(&mut self, policy: Arc<StealPolicy>, thief_load: f64) {
        let working = self.phase.is_working() && !self.draining;
        let request = StealRequest { policy, thief_load };
        match self.inc.steal.requested(request, working) {
            Step::Ask(request) => self.steal(request),
            // Tests were just sent: the process may not have read them yet, and could not
            // give them back. Ask once it starts one (or after a while).
            Step::Deferred => self.arm(TimerKind::Deferral, RELEASE_PATIENCE),
        }
    }

    /// Answers a steal: asks the process for the end of its queue, or says "nothing". Every
    /// steal is answered once.
    fn steal(&mut self, request: StealRequest) {
        let tail: Vec<TestId> =
            if self.phase.is_working() && !self.draining && !self.inc.steal.asking() {
                let running = self.inc.running.as_ref().map(|r| &r.test);
                let unstarted = self.inc.unstarted();
                let policy = &request.policy;
                policy
                    .tail(running, &unstarted, request.thief_load)
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
        self.arm(TimerKind::Release, RELEASE_PATIENCE);
    }

    /// The patience for a `release` ran out: the Scheduler hears "nothing" if it is unanswered.
    pub(super) fn release_expired(&mut self) {
        if self.inc.steal.asking() {
            self.return_stolen(Vec::new());
        }
    }

    /// A deferred steal's patience ran out: it is asked now.
    pub(super) fn deferral_expired(&mut self) {
        if let Some(request) = self.inc.steal.deferral_expired() {
            self.steal(request);
        }
    }

    /// The process is gone: a steal it was asked for (or was to be asked for) is answered
    /// "nothing" for it; its tests come back with the rest of its queue.
    pub(super) fn forget_steal(&mut self) {
        if self.inc.steal.forget() {
            self.return_stolen(Vec::new());
        }
    }

    fn return_stolen(&mut self, tests: Vec<TestId>) {
        self.out.push(Effect::ReturnTests {
            tests,
            crashed: None,
            stolen: true,
        });
    }
}
