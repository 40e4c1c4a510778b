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
        // One read of the process's state a tick serves both checks (Linux; elsewhere none).
        let stat = self.inc.pid.and_then(ProcStat::read);
        if let Some(watch) = self.inc.liveness.as_mut().filter(|_| live) {
            let now = Instant::now();
            // A local process that computes is busy, not hung (a test holding the interpreter
            // lock keeps the heartbeat thread from running); on another host silence decides.
            let cpu = stat
                .filter(|_| watch.wants_cpu(now))
                .and_then(|stat| stat.cpu_ticks);
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
        if !stat.is_some_and(|stat| stat.stopped) {
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

/// What `/proc/PID/stat` says of a process (Linux).
#[derive(Debug, Clone, Copy)]
pub(super) struct ProcStat {
    /// Stopped (state `T`: SIGSTOP, a debugger).
    stopped: bool,
    /// The CPU time (user + system, in clock ticks) it has used.
    cpu_ticks: Option<u64>,
}

impl ProcStat {
    /// The state of process `pid`; `None` where it cannot be read.
    pub(super) fn read(pid: u32) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields follow the command name, which is in parentheses and may contain spaces:
        // the state is the 1st, utime the 12th, stime the 13th.
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let stopped = fields.next() == Some("T");
        let mut times = fields.skip(10).map(|f| f.parse::<u64>().ok());
        let cpu_ticks = match (times.next().flatten(), times.next().flatten()) {
            (Some(utime), Some(stime)) => Some(utime + stime),
            _ => None,
        };
        Some(ProcStat { stopped, cpu_ticks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_read_as_running_with_its_cpu_time() {
        let stat = ProcStat::read(std::process::id()).expect("/proc is readable");
        assert!(!stat.stopped);
        assert!(stat.cpu_ticks.is_some());
        assert!(ProcStat::read(u32::MAX).is_none());
    }
}
