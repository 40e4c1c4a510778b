//! Where a session is in its life, and the signals that move it on.

use crate::outcome::SessionEnd;

/// The session's phase. Each variant carries what the session knows in it, so a drain reason
/// exists only while draining and an end only once finishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Tests are dealt out.
    Running,
    /// No more tests are dealt out; workers finish the one they are running.
    Draining {
        /// Why: the most severe reason heard so far.
        reason: SessionEnd,
        /// How many SIGINT/SIGTERM arrived (a second one ends the session at once).
        interrupts: Interrupts,
    },
    /// The session is over: every worker is killed, the Reporter settles every test. Final.
    Finishing(SessionEnd),
}

/// How many SIGINT/SIGTERM the session has seen while it could still act on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interrupts {
    /// None yet: the next one drains.
    None,
    /// One: the next one kills every worker.
    Once,
}

/// A signal the session acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C): drain, and kill on the second.
    Interrupt,
    /// SIGTERM: as SIGINT.
    Terminate,
    /// SIGQUIT: kill at once.
    Quit,
}

impl Signal {
    /// The signal's usual name, as notices and the session end show it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Quit => "SIGQUIT",
        }
    }
}

impl Phase {
    /// The SIGINT/SIGTERM count; `None` once finishing (signals no longer count).
    pub fn interrupts(&self) -> Option<Interrupts> {
        match self {
            Phase::Running => Some(Interrupts::None),
            Phase::Draining { interrupts, .. } => Some(*interrupts),
            Phase::Finishing(_) => None,
        }
    }

    /// The end the session would have if it finished now.
    pub fn end_so_far(&self) -> SessionEnd {
        match self {
            Phase::Running => SessionEnd::Completed,
            Phase::Draining { reason, .. } => reason.clone(),
            Phase::Finishing(end) => end.clone(),
        }
    }
}
