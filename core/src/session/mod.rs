//! The session's brain: when a session drains, when it ends and how, and whether a worker slot
//! may respawn. A plain value fed [`Input`]s by the Supervisor actor; [`Session::handle`]
//! answers with [`Effect`]s for the actor to carry out. No actors, no clock but the `now`
//! passed in.
//!
//! ```text
//!               SIGINT/SIGTERM (1st), --maxfail,
//!               a worker's session exit            SIGINT/SIGTERM (2nd)
//!   Running ------------------------------> Draining -------------------+
//!      |                                       |                        |
//!      | SIGQUIT, respawn budget spent,        | every slot done,       |
//!      | collection unusable, no worker,       | SIGQUIT, ...           |
//!      | every slot retired, every slot done   v                        v
//!      +---------------------------------> Finishing(end) <-------------+
//! ```
//!
//! * drain ([`Effect::Drain`]): the Scheduler halts, workers finish their running test;
//! * finish ([`Effect::Finish`]): every worker's process group is killed, the Reporter settles
//!   every test and prints the summary. It happens once; after it, inputs change nothing.
//!
//! How a session ends is a [`SessionEnd`], an ordered value: a more severe reason replaces a
//! milder one (a second SIGINT beats `--maxfail`; a spent budget beats both), never the reverse.
//! While running, counted respawns take from the [`RespawnBudget`]; uncounted ones are always
//! granted; none is granted once draining.

mod phase;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Instant;

pub use phase::{Interrupts, Phase, Signal};

use crate::outcome::SessionEnd;
use crate::restart::RespawnBudget;

/// What happened, as the Supervisor tells the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Every worker slot was started (a session without slots aborts).
    Started,
    /// A signal arrived.
    Signal(Signal),
    /// `--maxfail` failures were reached.
    MaxfailReached,
    /// A worker's own test session asked to end (`pytest.exit()`, Ctrl-C in the worker).
    SessionExitRequested {
        /// The worker slot.
        worker: String,
        /// Why, as the worker said.
        reason: String,
    },
    /// A worker slot asks to start its process again.
    RespawnRequested {
        /// The worker slot.
        worker: String,
        /// Whether it counts against the budget (a kill for a timeout does not).
        counted: bool,
    },
    /// A worker slot has nothing more to do.
    WorkerDone {
        /// The worker slot.
        worker: String,
        /// Whether it was retired (never to run again).
        retired: bool,
    },
    /// The Scheduler's answer to [`Effect::CountRemaining`]: tests still queued.
    Remaining(usize),
    /// The first collection reported errors (ends the session as pytest does, exit 2).
    CollectionErrors(usize),
    /// The first collection cannot be used (duplicate ids); the reason is printable.
    CollectionUnusable(String),
    /// The reference holds no tests: nothing to run.
    NoTests,
    /// A slot's worker left early (its host asked it to go) and the slot is done: unlike
    /// [`Input::WorkerDone`], this says nothing about the work left, so slots still awaiting a
    /// worker keep waiting.
    WorkerLeft(String),
    /// A slot was made during the session (for a replica that joined without naming one).
    SlotAdded(String),
}

/// What the Supervisor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Show a notice (through the Reporter).
    Notice(String),
    /// Halt the Scheduler and drain every worker.
    Drain,
    /// Kill every worker, then have the Reporter settle and summarize the session as `end`.
    Finish(SessionEnd),
    /// The answer to [`Input::RespawnRequested`].
    Grant(bool),
    /// The slot left the live set: whatever it owned of the reference (a shard) is released.
    SlotGone(String),
    /// Slots still waiting for an external worker to join stop waiting: work ran out.
    NoMoreWork,
    /// Ask the Scheduler how many tests remain; answer with [`Input::Remaining`].
    CountRemaining,
    /// Start this finished slot again for the tests left in the queue.
    Revive(String),
}

/// The session's state: its phase, its respawn budget and which slots are live or retired.
#[derive(Debug, Clone)]
pub struct Session {
    phase: Phase,
    budget: RespawnBudget,
    /// Every slot, in the order given (the first one not retired is revived).
    slots: Vec<String>,
    live: BTreeSet<String>,
    retired: BTreeSet<String>,
}

impl Session {
    /// A running session over `slots`, all live, with `budget`.
    pub fn new(slots: Vec<String>, budget: RespawnBudget) -> Session {
        Session {
            phase: Phase::Running,
            budget,
            live: slots.iter().cloned().collect(),
            slots,
            retired: BTreeSet::new(),
        }
    }

    /// The phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether tests are still dealt out (neither draining nor finishing).
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Whether the session is over.
    pub fn is_finishing(&self) -> bool {
        matches!(self.phase, Phase::Finishing(_))
    }

    /// The slots that are not done.
    pub fn live(&self) -> &BTreeSet<String> {
        &self.live
    }

    /// Takes in one input at `now`; what to do about it.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Started if self.slots.is_empty() => {
                self.finish(aborted("no workers to run the tests"), &mut out)
            }
            Input::Started => {}
            Input::Signal(signal) => self.signal(signal, &mut out),
            Input::MaxfailReached => {
                out.push(notice(
                    "--maxfail reached: no more tests are dealt out; running tests finish",
                ));
                self.drain(SessionEnd::MaxfailReached, &mut out);
            }
            Input::SessionExitRequested { worker, reason } => {
                out.push(notice(format!("{worker} ended its test session: {reason}")));
                self.drain(SessionEnd::Interrupted(reason), &mut out);
            }
            Input::RespawnRequested { worker, counted } => {
                let granted = self.respawn(&worker, counted, now, &mut out);
                out.push(Effect::Grant(granted));
            }
            Input::WorkerDone { worker, retired } => {
                self.worker_done(worker, retired, !retired, &mut out)
            }
            Input::WorkerLeft(worker) => self.worker_done(worker, false, false, &mut out),
            Input::Remaining(tests) => self.remaining(tests, &mut out),
            Input::CollectionErrors(n) => {
                let noun = if n == 1 { "error" } else { "errors" };
                let why = format!("{n} {noun} during collection");
                self.finish(SessionEnd::Interrupted(why), &mut out);
            }
            Input::CollectionUnusable(why) => self.finish(SessionEnd::Interrupted(why), &mut out),
            Input::NoTests => self.finish(SessionEnd::Completed, &mut out),
            Input::SlotAdded(worker) => {
                if !self.is_finishing() && !self.slots.contains(&worker) {
                    self.slots.push(worker.clone());
                    self.live.insert(worker);
                }
            }
        }
        out
    }

    /// First SIGINT/SIGTERM drains, a second finishes; SIGQUIT finishes at once. Once finishing,
    /// signals do nothing.
    fn signal(&mut self, signal: Signal, out: &mut Vec<Effect>) {
        let Some(interrupts) = self.phase.interrupts() else {
            return;
        };
        let name = signal.name();
        match (signal, interrupts) {
            (Signal::Quit, _) => {
                out.push(notice("SIGQUIT: ending the session now"));
                self.finish(SessionEnd::Interrupted(name.into()), out);
            }
            (_, Interrupts::None) => {
                out.push(notice(format!(
                    "{name}: stopping after the running tests; send it again to kill them"
                )));
                self.drain(SessionEnd::Interrupted(name.into()), out);
                if let Phase::Draining { interrupts, .. } = &mut self.phase {
                    *interrupts = Interrupts::Once;
                }
            }
            (_, Interrupts::Once) => {
                out.push(notice(format!("{name} again: killing every worker")));
                self.finish(SessionEnd::Interrupted(format!("{name} twice")), out);
            }
        }
    }

    /// Stops dealing out tests, once; a later reason only escalates the drain's.
    fn drain(&mut self, reason: SessionEnd, out: &mut Vec<Effect>) {
        match &mut self.phase {
            Phase::Running => {
                self.phase = Phase::Draining {
                    reason,
                    interrupts: Interrupts::None,
                };
                out.push(Effect::Drain);
            }
            Phase::Draining {
                reason: current, ..
            } => {
                if reason > *current {
                    *current = reason;
                }
            }
            Phase::Finishing(_) => {}
        }
    }

    /// Ends the session, once, as the more severe of `end` and the drain's reason.
    fn finish(&mut self, end: SessionEnd, out: &mut Vec<Effect>) {
        if self.is_finishing() {
            return;
        }
        let end = self.phase.end_so_far().max(end);
        self.phase = Phase::Finishing(end.clone());
        out.push(Effect::Finish(end));
    }

    /// Whether a slot may respawn; a counted respawn past the budget ends the session.
    fn respawn(
        &mut self,
        worker: &str,
        counted: bool,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> bool {
        if !self.is_running() {
            return false;
        }
        if !counted || self.budget.try_take(now) {
            return true;
        }
        let limit = self.budget.limit();
        out.push(notice(format!(
            "too many worker respawns ({limit} allowed); {worker} would need another"
        )));
        let why = format!("too many worker respawns (budget of {limit} spent)");
        self.finish(aborted(why), out);
        false
    }

    /// A slot is done (`out_of_work`: for want of work). When it was the last one, the session
    /// ends, or (while running) asks first whether tests are left for a revived slot.
    fn worker_done(
        &mut self,
        worker: String,
        retired: bool,
        out_of_work: bool,
        out: &mut Vec<Effect>,
    ) {
        if !self.live.remove(&worker) {
            return;
        }
        out.push(Effect::SlotGone(worker.clone()));
        if retired {
            self.retired.insert(worker);
        } else if out_of_work && self.is_running() && !self.live.is_empty() {
            // A slot finished for want of work: slots still waiting for a worker to join stop.
            out.push(Effect::NoMoreWork);
        }
        if !self.live.is_empty() {
            return;
        }
        if self.is_running() {
            out.push(Effect::CountRemaining);
        } else {
            self.finish(SessionEnd::Completed, out);
        }
    }

    /// Every slot is done and `tests` are still queued (returned by a slot that then retired,
    /// after the others had finished): a slot not retired is revived for them. Otherwise the
    /// session is over; with every slot retired, it is aborted.
    fn remaining(&mut self, tests: usize, out: &mut Vec<Effect>) {
        if self.is_finishing() || !self.live.is_empty() {
            return;
        }
        let revivable = self.slots.iter().find(|s| !self.retired.contains(*s));
        match revivable.cloned() {
            None => self.finish(aborted("every worker slot was retired"), out),
            Some(slot) if tests > 0 && self.is_running() => {
                out.push(notice(format!(
                    "{tests} tests are left and every worker has stopped; reviving {slot}"
                )));
                self.live.insert(slot.clone());
                out.push(Effect::Revive(slot));
            }
            Some(_) => self.finish(SessionEnd::Completed, out),
        }
    }
}

fn notice(text: impl Into<String>) -> Effect {
    Effect::Notice(text.into())
}

fn aborted(why: impl Into<String>) -> SessionEnd {
    SessionEnd::Aborted(why.into())
}
