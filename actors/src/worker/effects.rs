//! Carrying out what the brain decided: each [`Effect`] becomes a frame, an event, a message
//! to the Scheduler or the Supervisor, a timer, a killed group, a hook or a spawn. Answers that
//! come later (a verdict, a grant, a hook's result, a timer) are fed back as [`Input`]s.

use super::*;

impl Worker {
    /// Feeds `input` to the brain and carries out its effects, in order.
    pub(super) fn input(&mut self, ctx: &mut Context<Self>, input: Input) {
        for effect in self.brain.handle(input, Instant::now()) {
            self.apply(ctx, effect);
        }
    }

    fn apply(&mut self, ctx: &mut Context<Self>, effect: Effect) {
        let worker = self.id();
        match effect {
            Effect::Send { identity, message } => {
                self.peers.transport.do_send(Outbound { identity, message })
            }
            Effect::Publish(event) => self.peers.reporter.do_send(Publish(event)),
            Effect::Arm { timer, after } => {
                ctx.run_later(after, move |act, ctx| act.input(ctx, Input::Timer(timer)));
            }
            Effect::KillGroup(pid) => signal_group(pid, Signal::SIGKILL),
            Effect::Strike { pid, kind } => strike(pid, kind),
            Effect::DropGroup => drop(self.group.take()),
            Effect::Barrier(incarnation) => self.peers.transport.do_send(Barrier {
                worker,
                incarnation,
            }),
            Effect::Spawn(incarnation) => self.launch(ctx, incarnation),
            Effect::RequestWork {
                incarnation,
                collected,
                holding,
            } => {
                let (reply, steal) = (ctx.address().recipient(), ctx.address().recipient());
                self.peers.scheduler.do_send(RequestWork {
                    worker,
                    incarnation,
                    reply,
                    steal,
                    collected,
                    holding,
                })
            }
            Effect::ReturnTests {
                tests,
                crashed,
                stolen,
            } => self.peers.scheduler.do_send(ReturnTests {
                worker,
                tests,
                crashed: crashed.map(|c| CrashedTest {
                    test: c.test,
                    duration: c.duration,
                    details: c.details,
                }),
                stolen,
            }),
            Effect::Settled(count) => self.peers.scheduler.do_send(Settled { worker, count }),
            Effect::WorkerGone => self.peers.scheduler.do_send(WorkerGone { worker }),
            Effect::CheckCollection {
                incarnation,
                identity,
                part,
            } => self.check_collection(ctx, incarnation, identity, part),
            Effect::Awaiting(incarnation) => self.peers.supervisor.do_send(Awaiting {
                worker,
                incarnation,
            }),
            Effect::ApplianceCheck => self.appliance_check(ctx),
            Effect::RequestRespawn { counted } => self.request_respawn(ctx, counted),
            Effect::Cleanse {
                incarnation,
                tests,
                switch,
            } => self.cleanse(ctx, incarnation, tests, switch),
            Effect::WorkerDone { retired, left } => self.peers.supervisor.do_send(WorkerDone {
                worker,
                retired,
                left,
            }),
            Effect::SessionExit(reason) => self
                .peers
                .supervisor
                .do_send(SessionExitRequested { worker, reason }),
            Effect::UsageError(output) => self.note_usage_error(output),
        }
    }

    /// Has the Supervisor check a collection; its verdict comes back as an input.
    fn check_collection(
        &mut self,
        ctx: &mut Context<Self>,
        incarnation: u32,
        identity: String,
        part: herd_core::collection::Part,
    ) {
        let worker = self.id();
        let check = CheckCollection {
            worker,
            identity,
            part,
        };
        let ask = self.peers.supervisor.send(check);
        ctx.spawn(ask.into_actor(self).map(move |verdict, act, ctx| {
            let verdict = verdict.unwrap_or(CollectionVerdict::Refused);
            act.input(
                ctx,
                Input::Verdict {
                    incarnation,
                    verdict,
                },
            );
        }));
    }

    /// The process said the command line is wrong: the first slot to hear it keeps the
    /// process's output as the session's usage error and ends the session.
    fn note_usage_error(&mut self, output: String) {
        if self.settings.usage_error.set(output).is_ok() {
            let code = self.settings.usage_exit.unwrap_or_default();
            self.peers.supervisor.do_send(SessionExitRequested {
                worker: self.id(),
                reason: format!("usage error: its command line is wrong (exit code {code})"),
            });
        }
    }
}

/// Inflicts a `--chaos` signal fault on process `pid`.
fn strike(pid: u32, kind: FaultKind) {
    let signal = match kind {
        FaultKind::Kill => Signal::SIGKILL,
        FaultKind::Stop => Signal::SIGSTOP,
        _ => Signal::SIGTERM,
    };
    let Ok(raw) = i32::try_from(pid) else { return };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal);
}
