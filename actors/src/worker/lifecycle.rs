//! How a worker process lives and dies: spawning it (or awaiting an external one), its log and
//! output tail, killing it, handling its exit through the death plan
//! ([`herd_core::slot::death`]), and respawning, retiring or finishing the slot.

use super::*;

impl Worker {
    /// Starts a new incarnation of the worker process.
    pub(super) fn spawn(&mut self, ctx: &mut Context<Self>) {
        // A steal the last process was asked for is answered "nothing"; then nothing of it is
        // carried over (its output tail, its kill reason, its queue...).
        self.forget_steal();
        self.inc = Incarnation::default();
        self.incarnation += 1;
        self.state = State::Starting;
        let env = self.spawn_env();
        let launched = match self
            .settings
            .launcher
            .launch(&self.settings.command, &self.slot, &env)
        {
            Launch::Spawn(command) => command,
            Launch::Await(command) => return self.await_join(ctx, command),
        };
        match self.zygote() {
            Some(zygote) => self.fork_from(ctx, zygote, env, launched),
            None => self.spawn_plain(ctx, launched),
        }
    }

    /// The environment of a new incarnation: who it is, where to connect, its token, its
    /// status file, the faults a `--chaos` plan arms it with (rolled here, per spawn) and, for
    /// pytest, the `PYTEST_XDIST_*` variables of xdist's worker contract.
    fn spawn_env(&mut self) -> Vec<(String, String)> {
        let incarnation = self.incarnation;
        let mut env = self.hook_env();
        env.push((
            protocol::ENV_ENDPOINT.into(),
            self.settings.endpoint.clone(),
        ));
        env.push((
            protocol::ENV_TOKEN.into(),
            self.settings.token.as_str().to_string(),
        ));
        env.push((protocol::ENV_INCARNATION.into(), incarnation.to_string()));
        self.inc.dice = self
            .settings
            .faults
            .as_ref()
            .map(|plan| plan.dice(&self.slot.id, incarnation));
        self.inc.armed = self
            .inc
            .dice
            .as_mut()
            .map(|d| d.self_faults(100_000))
            .unwrap_or_default();
        self.inc.armed.lie &= self.settings.reference_known || incarnation > 1;
        if let Some(value) = self
            .inc
            .armed
            .env_value(&protocol::identity(&self.slot.id, incarnation))
        {
            env.push(("HERD_WORKER_FAULT".into(), value));
        }
        if let Some(path) = self.status_path() {
            let _ = std::fs::remove_file(&path);
            env.push((protocol::ENV_STATUS_FILE.into(), path.display().to_string()));
        }
        if let Some(xdist) = &self.settings.xdist {
            env.extend(xdist.env(&self.slot.id));
        }
        env
    }

    /// Kills the current incarnation if it has not reported its collection within the start
    /// timeout (an external slot nobody joined is retired).
    pub(super) fn start_timer(&self, ctx: &mut Context<Self>) {
        let incarnation = self.incarnation;
        ctx.run_later(self.settings.start_timeout, move |act, _| {
            if act.incarnation != incarnation || !act.state.is_early() {
                return;
            }
            let secs = act.settings.start_timeout.as_secs_f64();
            if act.inc.external && !act.inc.joined {
                act.notice(format!(
                    "nobody joined as {} within {secs}s",
                    protocol::identity(&act.slot.id, incarnation)
                ));
                act.kill(KillReason::JoinTimeout);
            } else {
                act.notice(format!(
                    "no collection within {secs}s of starting; killing the worker"
                ));
                act.kill(KillReason::StartTimeout);
            }
        });
    }

    /// Waits for a worker herd does not start (`--launcher external`): `command` (printed)
    /// joins it, on any host.
    pub(super) fn await_join(&mut self, ctx: &mut Context<Self>, command: String) {
        self.inc.external = true;
        self.inc.pid = None;
        self.start_timer(ctx);
        self.peers.supervisor.do_send(Awaiting {
            worker: self.id(),
            incarnation: self.incarnation,
        });
        if std::mem::take(&mut self.for_a_joiner) {
            return tracing::debug!(worker = %self.slot.id, "awaiting the replica it was made for");
        }
        self.publish(Event::WorkerAwaited {
            worker: self.id(),
            incarnation: self.incarnation,
            command,
        });
    }

    pub(super) fn open_log(&mut self, pid: u32) {
        let Some(dir) = &self.settings.log_dir else {
            return;
        };
        if self.inc.log.is_none() {
            let path = dir.join(format!("{}.log", self.slot.id));
            let file = std::fs::create_dir_all(dir).and_then(|_| File::create(&path));
            let reporter = self.peers.reporter.clone().recipient();
            self.inc.log = Some(WorkerLog::new(path, file, reporter));
        }
        if let Some(log) = &mut self.inc.log {
            let _ = writeln!(
                log,
                "=== {} incarnation {} (pid {pid}) ===",
                self.slot.id, self.incarnation
            );
        }
    }

    pub(super) fn status_path(&self) -> Option<PathBuf> {
        let dir = self.settings.status_dir.as_ref()?;
        Some(dir.join(format!(
            "{}.status",
            protocol::identity(&self.slot.id, self.incarnation)
        )))
    }

    /// The test the process last said (in its status file) it was starting.
    pub(super) fn last_started(&self) -> Option<TestId> {
        // The first line: a worker may overwrite a longer id without truncating the file.
        let text = std::fs::read_to_string(self.status_path()?).ok()?;
        let test = text.lines().next()?;
        (!test.is_empty()).then(|| test.to_string())
    }

    pub(super) fn log_path(&self) -> Option<PathBuf> {
        self.settings
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{}.log", self.slot.id)))
    }

    pub(super) fn tail_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.inc.tail);
        let tail = indent_tail(&text, TAIL_LINES);
        let mut out = if tail.is_empty() {
            format!("(no output from {})", self.slot.id)
        } else {
            format!("last output of {}:{tail}", self.slot.id)
        };
        if let Some(path) = self.log_path() {
            out.push_str(&format!("\n(full log: {})", path.display()));
        }
        out
    }

    pub(super) fn kill(&mut self, reason: KillReason) {
        if self.inc.kill.is_none() {
            self.inc.kill = Some(reason);
        }
        if let Some(pid) = self.inc.pid {
            signal_group(pid, Signal::SIGKILL);
        } else if self.inc.external && !self.inc.disowned {
            // A worker herd did not start cannot be killed: it is disowned. It is told to exit,
            // nothing it sends counts any more, and its end is handled as a death.
            self.inc.disowned = true;
            self.inc.pending_gone = true;
            if let Some(identity) = self.inc.identity.take() {
                let why = self.inc.kill.as_ref().map(KillReason::describe);
                self.send(
                    identity,
                    CoordinatorMessage::Error {
                        message: format!("herd disowned this worker: {}", why.unwrap_or_default()),
                    },
                );
            }
        }
    }

    /// The process of `incarnation` exited: kill what it left in its group, then let its last
    /// messages arrive (a short settle time, then a barrier through the transport) before the
    /// exit is handled.
    pub(super) fn process_gone(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        status: std::io::Result<ExitStatus>,
    ) {
        if incarnation != self.incarnation {
            return;
        }
        self.inc.group.take();
        let pid = self.inc.pid.take().unwrap_or(0);
        let (code, status) = match status {
            Ok(status) => (status.code(), describe_status(&status)),
            Err(e) => (None, format!("unknown status ({e})")),
        };
        self.gone(ctx, incarnation, pid, code, status);
    }

    /// The worker of `incarnation` is gone (its process exited, or an external worker left or
    /// was disowned): its last messages get to arrive before its end is handled.
    pub(super) fn gone(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        pid: u32,
        code: Option<i32>,
        status: String,
    ) {
        self.inc.exit = Some((pid, code, status));
        ctx.run_later(EXIT_SETTLE, move |act, _| {
            act.peers.transport.do_send(Barrier {
                worker: act.id(),
                incarnation,
            });
        });
    }

    /// Handles the exit of the process of `incarnation`, once its last messages are in: the
    /// death is planned by [`plan_death`] and the plan carried out here.
    pub(super) fn exited(&mut self, ctx: &mut Context<Self>, incarnation: u32) {
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
            self.state = State::Done;
            return;
        }
        if self.inc.kill == Some(KillReason::JoinTimeout) {
            let why = format!(
                "no worker joined as {} within {}s",
                protocol::identity(&self.slot.id, incarnation),
                self.settings.start_timeout.as_secs_f64()
            );
            self.state = State::Respawning;
            return self.retire(why);
        }
        if self.inc.kill == Some(KillReason::Unneeded) {
            self.state = State::Respawning;
            return self.done(false);
        }
        if self.inc.armed.exit0_after.is_some() && code == Some(0) && !self.inc.shutdown_said {
            self.fault(
                FaultKind::Exit0,
                self.inc.running.as_ref().map(|r| r.test.clone()),
            );
        }
        let early = self.state.is_early();
        let before_hello = self.state == State::Starting && !self.inc.external;
        let running = self.inc.running.take();
        let death = Death {
            usage_error: is_usage_error(code, before_hello, self.settings.usage_exit),
            kill: self.inc.kill.clone(),
            shutdown_said: self.inc.shutdown_said,
            draining: self.draining,
            early,
            running: running.map(|r| (r.test, r.started.elapsed().as_secs_f64())),
            queue: self.inc.queue.drain(..).collect(),
            last_started: self.last_started(),
            status: status.clone(),
            streak: self.crash_streak,
            leaving: self.inc.leaving,
        };
        let plan = plan_death(death, self.settings.retire);
        self.carry_out(ctx, incarnation, pid, status, early, plan);
    }

    /// Carries out the plan of a death: the exit event, the crash report, the returned tests,
    /// then respawn, retirement or the end of the slot.
    fn carry_out(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        pid: u32,
        status: String,
        early: bool,
        plan: DeathPlan,
    ) {
        if plan.next == Next::UsageError {
            // Before its exit is published: the Reporter is muted from here on.
            self.note_usage_error();
        }
        if !self.inc.external || self.inc.joined {
            self.publish(Event::WorkerExited {
                worker: self.id(),
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
            self.notice(format!(
                "died before it was ready: {}\n{}",
                plan.why,
                self.tail_text()
            ));
        }
        let crashed = plan.blamed.map(|blamed| {
            let when = if blamed.confirmed {
                "while running this test"
            } else {
                "before confirming this test started (it was next in its queue)"
            };
            CrashedTest {
                test: blamed.test,
                duration: blamed.duration,
                details: format!(
                    "worker {} (pid {pid}) crashed {when}: {}\n{}",
                    self.slot.id,
                    plan.why,
                    self.tail_text()
                ),
            }
        });
        if crashed.is_some() || !plan.requeue.is_empty() {
            self.peers.scheduler.do_send(ReturnTests {
                worker: self.id(),
                tests: plan.requeue,
                crashed,
                stolen: false,
            });
        }
        self.crash_streak = plan.streak;
        self.state = State::Respawning;
        match plan.next {
            Next::Done => self.done(false),
            Next::Retire(reason) => self.retire(reason),
            Next::Respawn { counted } => self.respawn_after_check(ctx, counted),
            Next::UsageError => self.end_for_usage_error(),
        }
    }

    /// The process said the command line is wrong: the first slot to hear it keeps the
    /// process's output as the session's usage error and ends the session; the slot is done,
    /// never respawned (every respawn would say the same).
    fn note_usage_error(&mut self) {
        let output = String::from_utf8_lossy(&self.inc.tail)
            .trim_end()
            .to_string();
        if self.settings.usage_error.set(output).is_ok() {
            let code = self.settings.usage_exit.unwrap_or_default();
            self.peers.supervisor.do_send(SessionExitRequested {
                worker: self.id(),
                reason: format!("usage error: its command line is wrong (exit code {code})"),
            });
        }
    }

    /// The slot of a process that found the command line wrong is done (see
    /// [`Self::note_usage_error`], called first).
    fn end_for_usage_error(&mut self) {
        self.done(false);
    }

    /// Respawns the slot, after the appliance check if there is one (a failed check retires
    /// it).
    pub(super) fn respawn_after_check(&mut self, ctx: &mut Context<Self>, counted: bool) {
        let Some(check) = self.settings.appliance_check.clone() else {
            self.request_respawn(ctx, counted);
            return;
        };
        let hook = run_hook(check, self.hook_env(), self.settings.hook_timeout);
        ctx.spawn(hook.into_actor(self).map(move |result, act, ctx| {
            if act.state != State::Respawning {
                return;
            }
            if result.ok {
                act.request_respawn(ctx, counted);
            } else {
                act.retire(format!("the appliance check failed: {}", result.summary));
            }
        }));
    }

    pub(super) fn request_respawn(&mut self, ctx: &mut Context<Self>, counted: bool) {
        let ask = self.peers.supervisor.send(RequestRespawn {
            worker: self.id(),
            counted,
        });
        ctx.spawn(ask.into_actor(self).map(|granted, act, ctx| {
            if act.state != State::Respawning {
                return;
            }
            if granted.unwrap_or(false) && !act.draining && !act.aborted {
                act.spawn(ctx);
            } else {
                act.done(false);
            }
        }));
    }

    pub(super) fn retire(&mut self, reason: String) {
        self.publish(Event::WorkerRetired {
            worker: self.id(),
            reason,
        });
        self.done(true);
    }

    pub(super) fn done(&mut self, retired: bool) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.peers
            .scheduler
            .do_send(WorkerGone { worker: self.id() });
        self.peers.supervisor.do_send(WorkerDone {
            worker: self.id(),
            retired,
            left: self.inc.leaving && !retired,
        });
    }
}

impl Handler<BarrierReached> for Worker {
    type Result = ();

    fn handle(&mut self, msg: BarrierReached, ctx: &mut Self::Context) {
        self.exited(ctx, msg.incarnation);
    }
}

impl Handler<Revive> for Worker {
    type Result = ();

    fn handle(&mut self, _: Revive, ctx: &mut Self::Context) {
        if self.state == State::Done && !self.aborted && !self.draining {
            self.state = State::Respawning;
            self.spawn(ctx);
        } else {
            // Nothing to revive: tell the Supervisor the slot is done again.
            self.peers.supervisor.do_send(WorkerDone {
                worker: self.id(),
                retired: false,
                left: false,
            });
        }
    }
}

impl Handler<NoMoreWork> for Worker {
    type Result = ();

    fn handle(&mut self, _: NoMoreWork, _: &mut Self::Context) {
        if self.inc.external && !self.inc.joined && self.state == State::Starting {
            self.notice(format!(
                "stops waiting for {} to join: no work is left",
                protocol::identity(&self.slot.id, self.incarnation)
            ));
            self.kill(KillReason::Unneeded);
        }
    }
}

impl Handler<KillNow> for Worker {
    type Result = ();

    fn handle(&mut self, _: KillNow, _: &mut Self::Context) {
        self.aborted = true;
        self.kill(KillReason::Abort);
        self.inc.group.take();
        self.state = State::Done;
    }
}

impl Handler<Recollect> for Worker {
    type Result = ();

    fn handle(&mut self, _: Recollect, _: &mut Self::Context) {
        if self.inc.pid.is_some() && self.inc.kill.is_none() {
            self.kill(KillReason::Recollect);
        }
    }
}

impl Handler<Drain> for Worker {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.draining = true;
        match self.state {
            State::Starting | State::Collecting { .. } | State::Checking { .. } => {
                self.kill(KillReason::Drain)
            }
            State::Working { .. } => self.send_to_process(CoordinatorMessage::Stop),
            State::Respawning => self.done(false),
            State::Stopping | State::Done => {}
        }
    }
}
