//! The periodic liveness check: the process's state is read from `/proc` (Linux) and given
//! to the brain, which decides whether it is stopped, silent and idle, or busy
//! ([`herd_core::liveness`]).

use super::*;

impl Worker {
    /// One read of the process's state a tick serves both checks (elsewhere than Linux, none).
    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        let stat = self.brain.pid().and_then(ProcStat::read);
        let state = stat.map(|stat| ProcState {
            stopped: stat.state == 'T',
            cpu_ticks: stat.cpu_ticks,
        });
        self.input(ctx, Input::Tick(state));
    }
}
