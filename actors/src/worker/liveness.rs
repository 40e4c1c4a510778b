//! The periodic liveness check: the process's state is read from `/proc` (Linux) and given
//! to the brain, which decides whether it is stopped, silent and idle, or busy
//! ([`herd_core::liveness`]).

use super::*;

impl Worker {
    /// One read of the process's state a tick serves both checks (elsewhere than Linux, none).
    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        let stat = self.brain.pid().and_then(ProcStat::read);
        let state = stat.map(|stat| ProcState {
            stopped: stat.stopped,
            cpu_ticks: stat.cpu_ticks,
        });
        self.input(ctx, Input::Tick(state));
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
