//! What happens when a worker process dies: whom to blame, what goes back to the queue, whether
//! the death counts, and what the slot does next. One function, [`plan_death`], decides it from
//! plain facts; the worker actor only carries the plan out.
//!
//! The kill-policy table (a kill reason's meaning for the plan):
//!
//! ```text
//!   reason          blames its test   counts (streak, budget)   next
//!   none (crash)    yes               streak; budget unless a test is blamed
//!   Timeout         (already decided) no                        respawn
//!   Garbage,
//!   Violation,
//!   InternalError,
//!   Lost            no: all re-queued yes                       respawn
//!   Mismatch,
//!   StartTimeout,
//!   GraceExpired,
//!   Hung            yes               yes (budget unless blamed) respawn
//!   Drain, Abort    -                 no                        done
//!   Recollect       yes               no                        respawn
//!   JoinTimeout     -                 -                         retire
//!   Unneeded        -                 -                         done
//! ```
//!
//! A worker that said `leaving` (its host asked it to go) and then exits is not a crash,
//! whether or not it finished its running test: what it had not finished is re-queued (the
//! running test too), nothing is blamed or counted, and the slot is done.
//!
//! A process that exits by itself before its hello with the runner's usage-error code (pytest's
//! 4: see [`is_usage_error`]) found the command line wrong; every respawn would too. It is not a
//! crash: nothing is blamed or counted, and the session ends as a usage error
//! ([`Next::UsageError`]).

use std::time::Duration;

use crate::restart::RetirePolicy;
use crate::TestId;

/// Why herd killed a worker process itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillReason {
    /// A test ran past `--timeout` (its outcome is already decided: timed out).
    Timeout,
    /// Its collection differs from the reference.
    Mismatch,
    /// It sent a frame that does not decode.
    Garbage(String),
    /// It broke the protocol.
    Violation(String),
    /// It reported an internal error of its own.
    InternalError(String),
    /// It did not report its collection in time.
    StartTimeout,
    /// Nobody joined as this (external) worker in time.
    JoinTimeout,
    /// No worker is needed any more (an external worker still awaited).
    Unneeded,
    /// It did not exit within the grace period after `shutdown`.
    GraceExpired,
    /// It stayed stopped, or silent and idle: hung.
    Hung,
    /// On another host, silent for this long: given up for lost.
    Lost(Duration),
    /// The session is draining and it had not started working.
    Drain,
    /// The session ended.
    Abort,
    /// Restarted to collect a shard of the reference another worker left.
    Recollect,
}

impl KillReason {
    /// The reason as the crash report says it.
    pub fn describe(&self) -> String {
        match self {
            KillReason::Timeout => "it was killed after a test timed out".into(),
            KillReason::Mismatch => {
                "it was killed: its collection differs from the reference".into()
            }
            KillReason::Garbage(why) => format!("it was killed: it sent a malformed frame ({why})"),
            KillReason::Violation(why) => format!("it was killed: {why}"),
            KillReason::InternalError(why) => {
                format!("it was killed after an internal error: {why}")
            }
            KillReason::StartTimeout => {
                "it was killed: it did not report its collection in time".into()
            }
            KillReason::JoinTimeout => "no worker joined in time".into(),
            KillReason::Unneeded => "no worker is needed any more".into(),
            KillReason::GraceExpired => "it was killed: it did not exit after shutdown".into(),
            KillReason::Hung => "it was killed: it stayed stopped (hung)".into(),
            KillReason::Lost(silent) => format!(
                "it was given up for lost: nothing heard for {:.1}s (its host or the network is gone)",
                silent.as_secs_f64()
            ),
            KillReason::Drain => "it was stopped before it started working".into(),
            KillReason::Abort => "it was killed: the session ended".into(),
            KillReason::Recollect => {
                "it was restarted to collect a shard of the reference another worker left".into()
            }
        }
    }

    /// Whether the process broke the protocol: nothing it sends afterwards counts (a later
    /// frame must not complete a test whose own report was refused), and its running test is
    /// not blamed (the misbehaviour is the worker's, not the test's).
    pub fn condemns(&self) -> bool {
        matches!(
            self,
            KillReason::Garbage(_)
                | KillReason::Violation(_)
                | KillReason::InternalError(_)
                | KillReason::Lost(_)
        )
    }

    /// Whether a death after this kill is the worker's fault: it counts in the crash streak
    /// and, unless a test answers for it, against the respawn budget.
    pub fn is_workers_fault(&self) -> bool {
        !matches!(
            self,
            KillReason::Timeout
                | KillReason::Drain
                | KillReason::Abort
                | KillReason::JoinTimeout
                | KillReason::Unneeded
                | KillReason::Recollect
        )
    }
}

/// The facts of one death, as the worker actor knows them.
#[derive(Debug, Clone, Default)]
pub struct Death {
    /// Why herd killed it, if herd did.
    pub kill: Option<KillReason>,
    /// It said `shutdown` before it went.
    pub shutdown_said: bool,
    /// The session is draining (SIGINT, `--maxfail`).
    pub draining: bool,
    /// It died before its collection was accepted (starting, collecting, checking).
    pub early: bool,
    /// The test it was running (by the coordinator's record) and for how long, in seconds.
    pub running: Option<(TestId, f64)>,
    /// The tests it held, in order (the running one may be among them).
    pub queue: Vec<TestId>,
    /// The test its status file names as last started, when it writes one.
    pub last_started: Option<TestId>,
    /// Its exit status, as text.
    pub status: String,
    /// The slot's deaths in a row without a finished test, before this one.
    pub streak: u32,
    /// It said the command line is wrong (see [`is_usage_error`]).
    pub usage_error: bool,
    /// It said `leaving` before it went (its host asked it to go: SIGTERM): not a crash.
    pub leaving: bool,
}

/// Whether a process that exited with `code` says the command line is wrong: it exited by
/// itself, before its hello, with the runner's usage-error code `usage_exit` (pytest's 4), if
/// the runner has one.
pub fn is_usage_error(code: Option<i32>, before_hello: bool, usage_exit: Option<i32>) -> bool {
    before_hello && code.is_some() && code == usage_exit
}

/// The test a death is blamed on.
#[derive(Debug, Clone, PartialEq)]
pub struct Blamed {
    /// The test, reported crashed (or re-run, within `--crash-retries`).
    pub test: TestId,
    /// Seconds it ran.
    pub duration: f64,
    /// Its start was confirmed (`test_started`, or the status file); else it was only next.
    pub confirmed: bool,
}

/// What the slot does after the death.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: the slot is done (a clean exit, a drain, no work left).
    Done,
    /// The slot retires (never respawned), for this reason.
    Retire(String),
    /// A new incarnation, after the appliance check if there is one; `counted` takes a respawn
    /// from the session's budget.
    Respawn {
        /// Whether this respawn takes from the budget.
        counted: bool,
    },
    /// The command line is wrong: the slot is done and the session ends as a usage error, with
    /// the process's output.
    UsageError,
}

/// What to do about a death.
#[derive(Debug, Clone, PartialEq)]
pub struct DeathPlan {
    /// It ended as it should: after `shutdown`, with nothing left to do.
    pub clean: bool,
    /// Why it died, for the crash report (`"<reason>; <status>"`).
    pub why: String,
    /// The test the death is blamed on.
    pub blamed: Option<Blamed>,
    /// Its unstarted tests, to the front of the queue (none while draining).
    pub requeue: Vec<TestId>,
    /// The slot's crash streak after this death.
    pub streak: u32,
    /// What the slot does next.
    pub next: Next,
}

/// Decides what a death means. The slot's retirement rule is `retire`.
pub fn plan_death(death: Death, retire: RetirePolicy) -> DeathPlan {
    let kill = death.kill.as_ref();
    let clean = death.shutdown_said && kill.is_none_or(|k| *k == KillReason::GraceExpired);
    let running = death.running.clone();
    let mut requeue: Vec<TestId> = death
        .queue
        .iter()
        .filter(|t| running.as_ref().is_none_or(|(r, _)| r != *t))
        .cloned()
        .collect();
    let why = match kill {
        Some(reason) => format!("{}; {}", reason.describe(), death.status),
        None if death.shutdown_said => {
            format!("it said shutdown with tests unfinished; {}", death.status)
        }
        None => format!("it exited unexpectedly with {}", death.status),
    };
    let mut plan = DeathPlan {
        clean,
        why,
        blamed: None,
        requeue: Vec::new(),
        streak: death.streak,
        next: Next::Done,
    };
    if clean && running.is_none() && requeue.is_empty() {
        return plan;
    }
    if death.usage_error && kill.is_none() {
        plan.why = format!("its command line is wrong: it exited with {}", death.status);
        plan.requeue = requeue;
        plan.next = Next::UsageError;
        return plan;
    }
    if death.leaving && kill.is_none_or(|k| *k == KillReason::GraceExpired) {
        // It was taken away, not broken: what it had not finished runs elsewhere, nothing is
        // blamed or counted, and the slot is done (a joiner may take its place).
        if !death.draining {
            if let Some((test, _)) = running {
                requeue.insert(0, test);
            }
            plan.requeue = requeue;
        }
        plan.why = format!("it left; {}", death.status);
        return plan;
    }
    plan.blamed = blame(&death, running, &mut requeue);
    if death.draining {
        // A graceful stop: the running test is reported, nothing else is dealt out again.
        return plan;
    }
    plan.requeue = requeue;
    let workers_fault = kill.is_none_or(KillReason::is_workers_fault);
    if workers_fault {
        plan.streak += 1;
        if retire.should_retire(plan.streak) {
            plan.next = Next::Retire(format!(
                "its process died {} times in a row (last: {})",
                plan.streak, plan.why
            ));
            return plan;
        }
    }
    // A death during a test is charged to that test (reported crashed, retried at most
    // --crash-retries times), not to the budget: a healthy session with a few crashing tests
    // finishes. Deaths no test answers for take from the budget.
    plan.next = Next::Respawn {
        counted: workers_fault && plan.blamed.is_none(),
    };
    plan
}

/// The test to report crashed after an unclean exit.
///
/// The worker's status file names the test it last started, even when its messages died with
/// it: that test is blamed if it had not finished; a running test it no longer names (its
/// result was lost) goes back to the queue. Without a status file: the running test, or else the
/// first test of its queue, as pytest-xdist does. A process herd killed for misbehaving
/// (garbage, lies) is not its test's fault: everything goes back to the queue (the respawn
/// budget bounds any loop).
fn blame(
    death: &Death,
    running: Option<(TestId, f64)>,
    unstarted: &mut Vec<TestId>,
) -> Option<Blamed> {
    if death.kill.as_ref().is_some_and(KillReason::condemns) {
        if let Some((test, _)) = running {
            unstarted.insert(0, test);
        }
        return None;
    }
    let confirmed = |(test, duration): (TestId, f64)| Blamed {
        test,
        duration,
        confirmed: true,
    };
    if let Some(last) = &death.last_started {
        return match running {
            Some((test, duration)) if test == *last => Some(confirmed((test, duration))),
            running => {
                let blamed = unstarted
                    .iter()
                    .position(|t| t == last)
                    .map(|i| unstarted.remove(i));
                if let Some((test, _)) = running {
                    unstarted.insert(0, test);
                }
                blamed.map(|test| confirmed((test, 0.0)))
            }
        };
    }
    match running {
        Some(running) => Some(confirmed(running)),
        None if death.kill.is_none() && !death.shutdown_said && !unstarted.is_empty() => {
            Some(Blamed {
                test: unstarted.remove(0),
                duration: 0.0,
                confirmed: false,
            })
        }
        None => None,
    }
}

#[cfg(test)]
mod tests;
