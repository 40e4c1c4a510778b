//! How an incarnation's process starts: forked from the session's fork server when there is
//! one ([`crate::zygote`]), else spawned; and how herd watches it until it exits, whichever
//! way it started (its pid and group, its output, its exit status).

use std::future::Future;

use tokio::sync::oneshot;

use super::output::forward_output;
use super::*;
use crate::zygote::Forked;

impl Worker {
    /// The fork server to fork this incarnation from, if the session has a live one and the
    /// worker starts on this machine.
    pub(super) fn zygote(&self) -> Option<Arc<Zygote>> {
        let local = self.settings.launcher.local();
        self.settings.zygote.clone().filter(|z| local && z.alive())
    }

    /// Asks `zygote` (on a thread: it may still be loading the suite) to fork this incarnation
    /// with `env`; if it cannot, `command` is started the plain way.
    pub(super) fn fork_from(
        &mut self,
        ctx: &mut Context<Self>,
        zygote: Arc<Zygote>,
        env: Vec<(String, String)>,
        command: WorkerCommand,
    ) {
        let incarnation = self.incarnation();
        let (tx, rx) = oneshot::channel();
        let forking = zygote.clone();
        let asked = std::thread::Builder::new()
            .name("herd-fork".into())
            .spawn(move || {
                let _ = tx.send(forking.fork(&env));
            });
        if asked.is_err() {
            return self.spawn_plain(ctx, command);
        }
        let forked = async move { rx.await.ok().flatten() };
        ctx.spawn(forked.into_actor(self).map(move |forked, act, ctx| {
            // Its hello may come before its pid (the worker connects at once): only a slot
            // that moved on (aborted, done) does not want this process.
            if !act.brain.wants_process(incarnation) {
                if let Some(forked) = forked {
                    signal_group(forked.pid, Signal::SIGKILL);
                    drop(zygote.wait(forked.pid));
                }
                return;
            }
            match forked {
                Some(forked) => act.watch_forked(ctx, &zygote, forked),
                None => act.spawn_plain(ctx, command),
            }
        }));
    }

    fn watch_forked(&mut self, ctx: &mut Context<Self>, zygote: &Zygote, forked: Forked) {
        let Forked {
            pid,
            stdout,
            stderr,
        } = forked;
        let exit = zygote.wait(pid);
        let exit = async move {
            exit.await
                .unwrap_or_else(|_| Err(std::io::Error::other("its waiter is gone")))
        };
        let stdout = tokio::process::ChildStdout::from_std(stdout.into());
        let stderr = tokio::process::ChildStderr::from_std(stderr.into());
        self.watch_process(ctx, pid, stdout.ok(), stderr.ok(), exit);
    }

    /// Starts `command` as a new process group (the plain way).
    pub(super) fn spawn_plain(&mut self, ctx: &mut Context<Self>, command: WorkerCommand) {
        let mut child = match spawn_in_group(&command) {
            Ok(child) => child,
            Err(e) => return self.not_started(ctx, e),
        };
        let pid = child.id().unwrap_or(0);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        self.watch_process(ctx, pid, stdout, stderr, async move { child.wait().await });
    }

    /// The process could not be started: a death before it lived.
    fn not_started(&mut self, ctx: &mut Context<Self>, e: std::io::Error) {
        let program = self.settings.command.program.display().to_string();
        let error = e.to_string();
        self.input(ctx, Input::NotStarted { program, error });
    }

    /// Owns process `pid` of the current incarnation: its group, its log and output, its exit;
    /// the brain is told it runs.
    fn watch_process(
        &mut self,
        ctx: &mut Context<Self>,
        pid: u32,
        stdout: Option<impl AsyncRead + Unpin + 'static>,
        stderr: Option<impl AsyncRead + Unpin + 'static>,
        exit: impl Future<Output = std::io::Result<ExitStatus>> + 'static,
    ) {
        let incarnation = self.incarnation();
        self.group = Some(GroupGuard(pid));
        self.open_log(pid);
        let addr = ctx.address();
        if let Some(out) = stdout {
            actix::spawn(forward_output(out, addr.clone(), incarnation));
        }
        if let Some(err) = stderr {
            actix::spawn(forward_output(err, addr, incarnation));
        }
        ctx.spawn(
            exit.into_actor(self)
                .map(move |status, act, ctx| act.process_gone(ctx, incarnation, status)),
        );
        self.input(ctx, Input::Started(pid));
    }
}
