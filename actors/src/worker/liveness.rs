//! Is the process alive: stopped (SIGSTOP) for `--hang-timeout`, or silent and idle
//! ([`herd_core::liveness`]) for `--heartbeat-timeout`; and the signal faults a `--chaos` plan
//! strikes it with.

use super::*;

impl Worker {
    /// Inflicts a signal fault on the process of `incarnation`, if it still runs: during the
    /// test that rolled it, or a little after it (a random point in the worker's life).
    pub(super) fn strike(&mut self, incarnation: u32, kind: FaultKind) {
        let Some(pid) = self.inc.pid.filter(|_| self.incarnation == incarnation) else {
            return;
        };
        let test = self.inc.running.as_ref().map(|r| r.test.clone());
        let signal = match kind {
            FaultKind::Kill => Signal::SIGKILL,
            FaultKind::Stop => Signal::SIGSTOP,
            _ => Signal::SIGTERM,
        };
        let Ok(raw) = i32::try_from(pid) else { return };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal);
        self.fault(kind, test);
    }

    pub(super) fn fault(&self, kind: FaultKind, test: Option<TestId>) {
        let (worker, incarnation) = (self.id(), self.incarnation);
        self.publish(Event::FaultInjected {
            worker,
            incarnation,
            kind,
            test,
        });
    }

    /// Hang detection: a process that stays stopped (SIGSTOP, a debugger) is killed, its running
    /// test reported and its work returned, like any other dead worker.
    pub(super) fn watch_for_stops(&mut self, ctx: &mut Context<Self>) {
        if std::mem::take(&mut self.inc.pending_gone) {
            let incarnation = self.incarnation;
            return self.gone(ctx, incarnation, 0, None, "disowned".into());
        }
        let live = matches!(
            self.state,
            State::Collecting { .. } | State::Checking { .. } | State::Working { .. }
        ) && (self.inc.pid.is_some()
            || self.inc.identity.is_some() && self.inc.external);
        let pid = self.inc.pid;
        if let Some(watch) = self.inc.liveness.as_mut().filter(|_| live) {
            let now = Instant::now();
            // A local process that computes is busy, not hung (a test holding the interpreter
            // lock keeps the heartbeat thread from running); on another host silence decides.
            let cpu = pid
                .filter(|_| watch.wants_cpu(now))
                .and_then(process_cpu_ticks);
            if let (Liveness::Silent(silent), None) = (watch.check(now, cpu), &self.inc.kill) {
                let secs = silent.as_secs_f64();
                if self.settings.launcher.remote() {
                    self.notice(format!(
                        "sent nothing for {secs:.1}s although it promised heartbeats; giving it up for lost and re-queuing its tests"
                    ));
                    return self.kill(KillReason::Lost(silent));
                }
                self.notice(format!(
                    "sent nothing for {secs:.1}s although it promised heartbeats; taking it for hung and killing it (its process used no CPU either)"
                ));
                return self.kill(KillReason::Hung);
            }
        }
        let Some(pid) = self.inc.pid else { return };
        if !process_is_stopped(pid) {
            self.inc.stopped_since = None;
            return;
        }
        let since = *self.inc.stopped_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.hang_timeout {
            self.notice(format!(
                "has been stopped for {:.1}s; killing it",
                since.elapsed().as_secs_f64()
            ));
            self.kill(KillReason::Hung);
        }
    }
}

/// Whether the process is stopped (state `T` in `/proc/PID/stat`; Linux).
pub(super) fn process_is_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("T")
}

/// The CPU time (user + system, in clock ticks) the process has used, from `/proc/PID/stat`
/// (Linux); `None` where it cannot be read.
pub(super) fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is the 1st, utime the 12th, stime the 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
