//! The terminal sink: what is printed as each event happens. A test's line is printed when its
//! outcome is known (after teardown), prefixed with the worker id, or a progress character in
//! pytest's compact style; the live progress bar follows the tests and the workers.

use herd_core::events::{Event, Stamped};
use herd_core::ledger::Ledger;
use herd_core::outcome::{Outcome, Verdict};
use herd_core::protocol::CollectionError;

use super::console::SharedConsole;
use super::Sink;
use crate::output::OutputFailure;
use crate::report::SessionReport;

/// Prints the session's events as they happen.
pub struct Terminal {
    console: SharedConsole,
    /// 0 normal, 1 `-v`, 2 `-vv`; negative is quieter.
    verbosity: i8,
    /// At verbosity 0, a progress character per test instead of a line.
    dots: bool,
    /// Color the outcome words.
    color: bool,
    /// Leave collection errors to the final summary (pytest's, or herd's if it has none).
    errors_at_end: bool,
}

impl Terminal {
    /// The terminal sink on `console`.
    pub fn new(console: SharedConsole, verbosity: i8, dots: bool, color: bool) -> Terminal {
        Terminal {
            console,
            verbosity,
            dots,
            color,
            errors_at_end: false,
        }
    }

    /// Collection errors are not shown live but once, in the final summary (pytest's
    /// controller prints its ERRORS section; herd's summary does if the controller has none).
    pub fn errors_at_end(mut self) -> Terminal {
        self.errors_at_end = true;
        self
    }

    /// A test's line, its progress character, or nothing (a pass under the progress bar).
    fn test_finished(&self, test: &str, worker: &str, verdict: &Verdict, ledger: &Ledger) {
        let outcome = verdict.outcome;
        let compact = self.dots && self.verbosity == 0;
        let mut console = self.console.lock();
        match (compact, console.progress_bar().is_some()) {
            (true, false) => {
                let (done, total) = (ledger.tally().total(), ledger.collection().len());
                console.progress_char(outcome.letter(), done, total)
            }
            // The bar shows progress: in compact mode only what did not pass gets a line.
            (true, true) if outcome == Outcome::Passed => {}
            _ => {
                let word = word(outcome, self.color);
                console.line(format!(
                    "[{worker}] {word} {test} ({:.2}s)",
                    verdict.duration
                ))
            }
        }
    }

    /// Keeps the progress bar in step with the tests and the running workers.
    fn follow(&self, event: &Event) {
        let mut console = self.console.lock();
        let Some(progress) = console.progress_bar() else {
            return;
        };
        match event {
            Event::Collected { tests, .. } => progress.set_total(tests.len()),
            Event::WorkerSpawned { .. } => progress.workers(true),
            Event::WorkerExited { .. } => progress.workers(false),
            Event::TestFinished {
                worker: Some(_),
                verdict,
                ..
            } => progress.test_finished(verdict.outcome.is_failure()),
            _ => {}
        }
    }
}

impl Sink for Terminal {
    fn event(&mut self, stamped: &Stamped, ledger: &Ledger) {
        let event = &stamped.event;
        match event {
            Event::TestFinished {
                test,
                worker: Some(worker),
                verdict,
            } if self.verbosity >= 0 => self.test_finished(test, worker, verdict, ledger),
            Event::CollectionErrors { .. } if self.errors_at_end => {}
            _ => {
                let lines = lines(event, self.verbosity);
                let mut console = self.console.lock();
                for line in lines {
                    console.line(line);
                }
            }
        }
        self.follow(event);
    }

    fn finish(&mut self, _: &SessionReport, _: &Ledger) -> Result<(), OutputFailure> {
        self.console.lock().end_progress_bar();
        Ok(())
    }
}

/// The outcome's word, colored when `color` is on.
fn word(outcome: Outcome, color: bool) -> String {
    use anstyle::{AnsiColor, Style};
    if !color {
        return outcome.word().to_string();
    }
    let color = match outcome {
        Outcome::Passed | Outcome::Xfailed => AnsiColor::Green,
        Outcome::Skipped | Outcome::Xpassed | Outcome::NotRun => AnsiColor::Yellow,
        _ => AnsiColor::Red,
    };
    let style = Style::new().fg_color(Some(color.into())).bold();
    format!("{style}{}{style:#}", outcome.word())
}

/// The lines `event` prints at verbosity `v` (none for most events); a test's outcome is
/// printed by [`Terminal::test_finished`].
fn lines(event: &Event, v: i8) -> Vec<String> {
    if let Event::CollectionErrors { worker, errors } = event {
        return collection_errors(worker, errors);
    }
    session_line(event, v)
        .or_else(|| worker_line(event, v))
        .or_else(|| work_line(event, v))
        .into_iter()
        .collect()
}

/// pytest's errors section for a collection that failed.
pub(super) fn collection_errors(worker: &str, errors: &[CollectionError]) -> Vec<String> {
    let mut lines = vec![format!("{:=^78}", " ERRORS ")];
    for e in errors {
        let title = format!(" ERROR collecting {} ", e.nodeid);
        lines.push(format!("{title:_^78}"));
        lines.push(e.longrepr.trim_end().to_string());
    }
    lines.push(format!(
        "[{worker}] {} errors during collection",
        errors.len()
    ));
    lines
}

/// The session's own lines: its start, the collection, notices, refused messages.
fn session_line(event: &Event, v: i8) -> Option<String> {
    Some(match event {
        Event::SessionStarted {
            runner, workers, ..
        } if v >= 1 => format!("herd: {workers} workers, {runner} runner"),
        Event::Collected { tests, deselected } if v >= 0 => match deselected.len() {
            0 => format!("herd: collected {} tests", tests.len()),
            // As pytest's header says it.
            n => format!(
                "herd: collected {} tests / {n} deselected / {} selected",
                tests.len() + n,
                tests.len()
            ),
        },
        Event::CollectionMismatch { worker, diff } => format!(
            "[{worker}] collection differs from the reference:\n{}",
            diff.trim_end()
        ),
        Event::Notice { worker, text } => {
            format!("[{}] {text}", worker.as_deref().unwrap_or("herd"))
        }
        Event::MessageRefused { identity, reason } => {
            format!("[herd] refused a message from {identity:?}: {reason}")
        }
        _ => return None,
    })
}

/// A worker process's lines: spawned, awaited, exited, retired, its messages, chaos.
fn worker_line(event: &Event, v: i8) -> Option<String> {
    Some(match event {
        Event::WorkerSpawned {
            worker,
            incarnation,
            pid,
            appliance,
        } => {
            let on = appliance
                .as_ref()
                .map(|a| format!(" on {a}"))
                .unwrap_or_default();
            match *incarnation > 1 {
                true if v >= 0 => format!("[{worker}] respawned (pid {pid}){on}"),
                false if v >= 1 => format!("[{worker}] started (pid {pid}){on}"),
                _ => return None,
            }
        }
        Event::WorkerAwaited {
            worker, command, ..
        } => format!("[{worker}] waiting for this worker to join; run:\n    {command}"),
        Event::WorkerMessage { worker, text } => format!("[{worker}] {text}"),
        Event::WorkerExited {
            worker,
            status,
            clean: false,
            ..
        } => format!("[{worker}] worker died ({status})"),
        Event::WorkerExited {
            worker,
            status,
            clean: true,
            ..
        } if v >= 1 => format!("[{worker}] worker exited ({status})"),
        Event::WorkerRetired { worker, reason } => format!("[{worker}] retired: {reason}"),
        Event::FaultInjected {
            worker, kind, test, ..
        } if v >= 1 => {
            let during = test
                .as_ref()
                .map(|t| format!(" during {t}"))
                .unwrap_or_default();
            format!("[{worker}] chaos: {kind}{during}")
        }
        _ => return None,
    })
}

/// How the work moves: groups sent, providers switched, tests started, requeued, stolen.
fn work_line(event: &Event, v: i8) -> Option<String> {
    Some(match event {
        Event::GroupSent {
            worker,
            tests,
            sent,
            total,
        } if v >= 1 => {
            let pct = if *total == 0 {
                100.0
            } else {
                *sent as f64 * 100.0 / *total as f64
            };
            format!("sent {tests} tests to {worker} ({sent}/{total}, {pct:.1}%)")
        }
        Event::ProviderSwitched { worker, from, to } => {
            format!("[{worker}] switched provider {from} -> {to}")
        }
        Event::TestStarted { test, worker } if v >= 2 => format!("[{worker}] RUNNING {test}"),
        Event::TestsRequeued { worker, tests } => format!(
            "[{worker}] {} unfinished tests returned to the front of the queue",
            tests.len()
        ),
        Event::WorkStolen { from, tests } if v >= 1 => {
            format!("[{from}] gave back {tests} unstarted tests for an idle worker")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_prints_at_its_verbosity() {
        let spawned = |incarnation| Event::WorkerSpawned {
            worker: "w1".into(),
            incarnation,
            pid: 7,
            appliance: Some("db1".into()),
        };
        let exited = |clean| Event::WorkerExited {
            worker: "w1".into(),
            incarnation: 1,
            status: "exit code 0".into(),
            clean,
        };
        let started = Event::TestStarted {
            test: "t".into(),
            worker: "w1".into(),
        };
        // (event, verbosity, lines)
        let cases: [(Event, i8, &[&str]); 9] = [
            (spawned(1), 0, &[]),
            (spawned(1), 1, &["[w1] started (pid 7) on db1"]),
            (spawned(2), 0, &["[w1] respawned (pid 7) on db1"]),
            (spawned(2), -1, &[]),
            (exited(false), -1, &["[w1] worker died (exit code 0)"]),
            (exited(true), 0, &[]),
            (exited(true), 1, &["[w1] worker exited (exit code 0)"]),
            (started.clone(), 1, &[]),
            (started, 2, &["[w1] RUNNING t"]),
        ];
        for (event, v, expected) in cases {
            assert_eq!(lines(&event, v), expected, "{event:?} at {v}");
        }
    }
}
