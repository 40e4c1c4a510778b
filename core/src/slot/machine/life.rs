//! How an incarnation lives and dies: begun, awaited or started, killed (the first reason
//! stays), gone, and its death planned by [`plan_death`] and carried out; then a respawn (after
//! the appliance check and the Supervisor's grant), retirement or the end of the slot. And what
//! the session tells the slot: drain, abort, recollect, no more work, revive.

use std::time::Instant;

use super::*;
use crate::slot::death::{is_usage_error, plan_death, Death, DeathPlan, Next};

impl Slot {
    /// Begins a new incarnation: a steal the last process was asked for is answered "nothing";
    /// then nothing of it is carried over. Its faults are rolled here, per spawn.
    pub(super) fn begin(&mut self) {
        self.forget_steal();
        self.inc = Incarnation::default();
        self.incarnation += 1;
        self.phase = Phase::Starting;
        let incarnation = self.incarnation;
        let worker = &self.config.worker;
        self.inc.dice = self
            .config
            .faults
            .as_ref()
            .map(|p| p.dice(worker, incarnation));
        let dice = self.inc.dice.as_mut();
        self.inc.armed = dice.map(|d| d.self_faults(100_000)).unwrap_or_default();
        self.inc.armed.lie &= self.config.reference_known || incarnation > 1;
        self.out.push(Effect::Spawn(incarnation));
    }

    /// The incarnation is external: awaited until `command` joins it (on any host).
    pub(super) fn awaiting(&mut self, command: String) {
        self.inc.external = true;
        self.inc.pid = None;
        self.arm(TimerKind::Start, self.config.start_timeout);
        self.out.push(Effect::Awaiting(self.incarnation));
        if std::mem::take(&mut self.for_a_joiner) {
            return;
        }
        let (worker, incarnation) = (self.id(), self.incarnation);
        self.publish(Event::WorkerAwaited {
            worker,
            incarnation,
            command,
        });
    }

    /// Its process runs as `pid`; the start timer runs from now.
    pub(super) fn started(&mut self, pid: u32) {
        self.inc.pid = Some(pid);
        if self.inc.kill.is_some() {
            // Killed (drained) while it was being forked.
            self.out.push(Effect::KillGroup(pid));
        }
        self.arm(TimerKind::Start, self.config.start_timeout);
        let (worker, incarnation) = (self.id(), self.incarnation);
        self.publish(Event::WorkerSpawned {
            worker,
            incarnation,
            pid,
            appliance: self.config.appliance.clone(),
        });
    }

    /// The process could not be started: a death before it lived.
    pub(super) fn not_started(&mut self, program: String, error: String) {
        self.notice(format!(
            "could not start the worker process `{program}`: {error}"
        ));
        self.phase = Phase::Respawning;
        if self.draining || self.aborted {
            return self.done(false);
        }
        self.crash_streak += 1;
        if self.config.retire.should_retire(self.crash_streak) {
            let streak = self.crash_streak;
            return self.retire(format!(
                "its process died {streak} times in a row (last: could not start `{program}`: {error})"
            ));
        }
        self.respawn_after_check(true);
    }

    /// No hello and collection within the start timeout: killed (an external slot nobody
    /// joined is retired).
    pub(super) fn start_expired(&mut self) {
        if !self.phase.is_early() {
            return;
        }
        let secs = self.config.start_timeout.as_secs_f64();
        if self.inc.external && !self.inc.joined {
            let identity = self.identity();
            self.notice(format!("nobody joined as {identity} within {secs}s"));
            self.kill(KillReason::JoinTimeout);
        } else {
            self.notice(format!(
                "no collection within {secs}s of starting; killing the worker"
            ));
            self.kill(KillReason::StartTimeout);
        }
    }

    /// Kills the current process for `reason` (the first reason stays). An external worker
    /// cannot be killed: it is disowned, told to exit, and nothing it sends counts any more.
    pub(super) fn kill(&mut self, reason: KillReason) {
        if self.inc.kill.is_none() {
            self.inc.kill = Some(reason);
        }
        if let Some(pid) = self.inc.pid {
            self.out.push(Effect::KillGroup(pid));
        } else if self.inc.external && !self.inc.disowned {
            self.inc.disowned = true;
            self.inc.pending_gone = true;
            if let Some(identity) = self.inc.identity.take() {
                let why = self.inc.kill.as_ref().map(KillReason::describe);
                let message = format!("herd disowned this worker: {}", why.unwrap_or_default());
                self.send(identity, CoordinatorMessage::Error { message });
            }
        }
    }

    /// The process of `incarnation` exited.
    pub(super) fn process_gone(&mut self, incarnation: u32, code: Option<i32>, status: String) {
        if incarnation != self.incarnation {
            return;
        }
        let pid = self.inc.pid.take().unwrap_or(0);
        self.gone(incarnation, pid, code, status);
    }

    /// The worker of `incarnation` is gone (its process exited, or an external worker left or
    /// was disowned): its last messages get to arrive (a settle time, then a barrier through
    /// the transport) before its end is handled.
    pub(super) fn gone(&mut self, incarnation: u32, pid: u32, code: Option<i32>, status: String) {
        self.inc.exit = Some((pid, code, status));
        let timer = Timer {
            incarnation,
            kind: TimerKind::Settle,
        };
        // `shutdown` is a worker's last message: once it is in, nothing more is on the way
        // (the barrier through the transport still comes after whatever was received).
        let after = if self.inc.shutdown_said {
            Duration::ZERO
        } else {
            EXIT_SETTLE
        };
        self.out.push(Effect::Arm { timer, after });
    }

    /// Handles the exit of `incarnation`, once its last messages are in: its death is planned
    /// by [`plan_death`] and the plan carried out.
    pub(super) fn exited(&mut self, incarnation: u32, last_started: Option<TestId>, now: Instant) {
        if incarnation != self.incarnation {
            return;
        }
        let Some((pid, code, status)) = self.inc.exit.take() else {
            return;
        };
        self.flush_live();
        self.inc.identity = None;
        self.forget_steal();
        if self.aborted {
            self.phase = Phase::Done;
            return;
        }
        if self.end_without_death(incarnation) {
            return;
        }
        if self.inc.armed.exit0_after.is_some() && code == Some(0) && !self.inc.shutdown_said {
            let test = self.running_test();
            self.fault(FaultKind::Exit0, test);
        }
        let early = self.phase.is_early();
        let before_hello = self.phase == Phase::Starting && !self.inc.external;
        let running = self.inc.running.take();
        let death = Death {
            usage_error: is_usage_error(code, before_hello, self.config.usage_exit),
            kill: self.inc.kill.clone(),
            shutdown_said: self.inc.shutdown_said,
            draining: self.draining,
            early,
            running: running.map(|r| {
                let ran = now.saturating_duration_since(r.started);
                (r.test, ran.as_secs_f64())
            }),
            queue: self.inc.queue.drain(..).collect(),
            last_started,
            status: status.clone(),
            streak: self.crash_streak,
            leaving: self.inc.leaving,
        };
        let plan = plan_death(death, self.config.retire);
        self.carry_out(incarnation, pid, status, early, plan);
    }

    /// An end that is no death: nobody joined (retired) or nobody was needed (done).
    fn end_without_death(&mut self, incarnation: u32) -> bool {
        match self.inc.kill {
            Some(KillReason::JoinTimeout) => {
                let identity = protocol::identity(&self.config.worker, incarnation);
                let secs = self.config.start_timeout.as_secs_f64();
                self.phase = Phase::Respawning;
                self.retire(format!("no worker joined as {identity} within {secs}s"));
                true
            }
            Some(KillReason::Unneeded) => {
                self.phase = Phase::Respawning;
                self.done(false);
                true
            }
            _ => false,
        }
    }

    /// Carries out the plan of a death: the exit event, the crash report, the returned tests,
    /// then respawn, retirement or the end of the slot.
    fn carry_out(
        &mut self,
        incarnation: u32,
        pid: u32,
        status: String,
        early: bool,
        plan: DeathPlan,
    ) {
        if plan.next == Next::UsageError {
            // Before its exit is published: the Reporter is muted from here on.
            let output = String::from_utf8_lossy(&self.inc.tail)
                .trim_end()
                .to_string();
            self.out.push(Effect::UsageError(output));
        }
        if !self.inc.external || self.inc.joined {
            let worker = self.id();
            self.publish(Event::WorkerExited {
                worker,
                incarnation,
                status,
                clean: plan.clean,
            });
        }
        if plan.next == Next::Done && plan.blamed.is_none() && plan.requeue.is_empty() {
            return self.done(false);
        }
        if self.inc.kill == Some(KillReason::Recollect) {
            self.notice(KillReason::Recollect.describe());
        } else if early && !self.draining && plan.next != Next::UsageError {
            let text = format!(
                "died before it was ready: {}\n{}",
                plan.why,
                self.tail_text()
            );
            self.notice(text);
        }
        let crashed = plan.blamed.map(|blamed| {
            let when = if blamed.confirmed {
                "while running this test"
            } else {
                "before confirming this test started (it was next in its queue)"
            };
            let (worker, why, tail) = (&self.config.worker, &plan.why, self.tail_text());
            Crashed {
                test: blamed.test,
                duration: blamed.duration,
                details: format!("worker {worker} (pid {pid}) crashed {when}: {why}\n{tail}"),
            }
        });
        if crashed.is_some() || !plan.requeue.is_empty() {
            self.out.push(Effect::ReturnTests {
                tests: plan.requeue,
                crashed,
                stolen: false,
            });
        }
        self.crash_streak = plan.streak;
        self.phase = Phase::Respawning;
        match plan.next {
            Next::Done | Next::UsageError => self.done(false),
            Next::Retire(reason) => self.retire(reason),
            Next::Respawn { counted } => self.respawn_after_check(counted),
        }
    }

    /// Respawns the slot, after the appliance check if there is one (a failed check retires
    /// it).
    fn respawn_after_check(&mut self, counted: bool) {
        self.respawn_counted = counted;
        if self.config.appliance_check {
            self.out.push(Effect::ApplianceCheck);
        } else {
            self.out.push(Effect::RequestRespawn { counted });
        }
    }

    /// The appliance check ran: a respawn is asked for, or the slot retired.
    pub(super) fn appliance_checked(&mut self, failed: Option<String>) {
        if self.phase != Phase::Respawning {
            return;
        }
        match failed {
            None => {
                let counted = self.respawn_counted;
                self.out.push(Effect::RequestRespawn { counted });
            }
            Some(summary) => self.retire(format!("the appliance check failed: {summary}")),
        }
    }

    /// The Supervisor answered a respawn request.
    pub(super) fn respawn_granted(&mut self, granted: bool) {
        if self.phase != Phase::Respawning {
            return;
        }
        if granted && !self.draining && !self.aborted {
            self.begin();
        } else {
            self.done(false);
        }
    }

    fn retire(&mut self, reason: String) {
        let worker = self.id();
        self.publish(Event::WorkerRetired { worker, reason });
        self.done(true);
    }

    fn done(&mut self, retired: bool) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.out.push(Effect::WorkerGone);
        let left = self.inc.leaving && !retired;
        self.out.push(Effect::WorkerDone { retired, left });
    }

    /// The session needs the slot again: a done slot respawns (else it says it is done).
    pub(super) fn revive(&mut self) {
        if self.phase == Phase::Done && !self.aborted && !self.draining {
            self.phase = Phase::Respawning;
            self.begin();
        } else {
            let (retired, left) = (false, false);
            self.out.push(Effect::WorkerDone { retired, left });
        }
    }

    /// No work is left: an external incarnation nobody joined is not awaited any more.
    pub(super) fn no_more_work(&mut self) {
        if self.inc.external && !self.inc.joined && self.phase == Phase::Starting {
            let identity = self.identity();
            self.notice(format!(
                "stops waiting for {identity} to join: no work is left"
            ));
            self.kill(KillReason::Unneeded);
        }
    }

    /// The session ended: the process is killed now and the slot is done.
    pub(super) fn kill_now(&mut self) {
        self.aborted = true;
        self.kill(KillReason::Abort);
        self.out.push(Effect::DropGroup);
        self.phase = Phase::Done;
    }

    /// Restart to collect a shard of the reference another worker left.
    pub(super) fn recollect(&mut self) {
        if self.inc.pid.is_some() && self.inc.kill.is_none() {
            self.kill(KillReason::Recollect);
        }
    }

    /// The session drains: a process not working yet is stopped, a working one told to stop.
    pub(super) fn drain(&mut self) {
        self.draining = true;
        match self.phase {
            Phase::Starting | Phase::Collecting { .. } | Phase::Checking { .. } => {
                self.kill(KillReason::Drain)
            }
            Phase::Working { .. } => self.send_to_process(CoordinatorMessage::Stop),
            Phase::Respawning => self.done(false),
            Phase::Stopping | Phase::Done => {}
        }
    }
}
