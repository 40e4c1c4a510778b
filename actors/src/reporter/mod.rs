//! The Reporter: the single writer of user-facing output and of `--events`. It feeds every
//! event to the [`Ledger`] (the exactly-once check, not-run settling, the tally, `--maxfail`)
//! and hands it, stamped with its time, to every [`Sink`]; adding an output means adding a sink.
//!
//! ```text
//!   Publish(event) --> Ledger --MaxfailReached--> Supervisor
//!                        |
//!                        v  Stamped{t, event}
//!          Subscribers, JsonLines (--events), Terminal, ReportFileSink (--junit-xml,
//!          history), ControllerSink (the pytest controller), Summary   (in this order)
//!
//!   Finish(end): the ledger settles the rest as "not run" (their events go to the sinks),
//!     every sink's finish(report)  (the bar goes, the report files are written, the summary),
//!     SessionFinished to every sink, every sink's close(failures)  (--events closed, then the
//!     summary prints the failed outputs and the final line)
//! ```

mod console;
mod controller;
mod json_lines;
mod lives;
mod progress;
mod report_file;
mod subscribers;
mod summary;
mod terminal;

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use herd_core::controller::session_exit_code;
use herd_core::events::{Event, Stamped};
use herd_core::ledger::{Effect, Ledger};
use herd_core::outcome::{exit_code, SessionEnd};

use crate::messages::{Finish, MaxfailReached, Publish};
use crate::output::{LineFile, OutputFailure, ReportFile};
use crate::report::SessionReport;

use console::SharedConsole;
use controller::{ControllerSink, PytestSummary};
use json_lines::JsonLines;
use report_file::ReportFileSink;
use subscribers::Subscribers;
use summary::Summary;
use terminal::Terminal;

pub use subscribers::EventSubscriber;

/// An output of the session: it sees every event, in order, and the finished report.
///
/// Its life: [`Sink::event`] for each event; when the session is over [`Sink::finish`] with
/// the report, then the last event (`SessionFinished`), then [`Sink::close`].
pub trait Sink: Send {
    /// One event, stamped with its time, after the ledger took it in.
    fn event(&mut self, stamped: &Stamped, ledger: &Ledger);

    /// The session is over and `report` is complete but for the output failures (its exit code
    /// may still become 3): what is written from the report is written now.
    fn finish(&mut self, report: &SessionReport, ledger: &Ledger) -> Result<(), OutputFailure> {
        let _ = (report, ledger);
        Ok(())
    }

    /// The exit code the runner's own report gives (the pytest controller's), if this output
    /// has one: it becomes the session's unless herd decided part of the session.
    fn runner_exit_code(&self) -> Option<i32> {
        None
    }

    /// Whether this output has already failed (the session then exits 3).
    fn failed(&self) -> bool {
        false
    }

    /// After the last event: the output is closed. `failures` are the outputs that could not
    /// be written so far; a failure found now is said first.
    fn close(&mut self, failures: &[OutputFailure]) -> Result<(), OutputFailure> {
        let _ = failures;
        Ok(())
    }
}

/// Where the reporter writes and how much.
pub struct ReporterOptions {
    /// User-facing output (stdout for the CLI).
    pub out: Box<dyn Write + Send>,
    /// `--events FILE`: every event as a JSON line.
    pub events: Option<LineFile>,
    /// Files written from the finished report (`--junit-xml`, the duration history), before
    /// the summary line; a failure is printed there.
    pub report_files: Vec<ReportFile>,
    /// 0 normal, 1 `-v` (progress, spawns), 2 `-vv` (test starts); negative is quieter.
    pub verbosity: i8,
    /// `--maxfail`: failures after which dispatching stops.
    pub maxfail: Option<usize>,
    /// At verbosity 0, a progress character per test instead of a line (pytest's style).
    pub dots: bool,
    /// `--durations N`: list the N slowest tests at the end (0: all).
    pub durations: Option<usize>,
    /// Show a live progress bar on stdout (a terminal); lines then go above it.
    pub progress_bar: bool,
    /// Color the outcome words (`--color`, `NO_COLOR`).
    pub color: bool,
    /// Called with every event as it happens (the embedding program's live view).
    pub subscribers: Vec<EventSubscriber>,
    /// The pytest controller's command: started now, before any worker; its summary, files
    /// and exit code are pytest's own (`None`: herd's summary).
    pub controller: Option<crate::WorkerCommand>,
    /// Set by the first worker that finds the command line wrong: then nothing is printed
    /// (the runner's own message is the whole output, as without herd).
    pub usage_error: Option<Arc<OnceLock<String>>>,
    /// The summary names every worker that took part and how many tests each finished (for
    /// sessions whose workers come and go: `--launcher external`).
    pub name_workers: bool,
}

impl ReporterOptions {
    /// The sinks these options ask for, in the order they are fed (the summary last).
    fn sinks(self) -> (Vec<Box<dyn Sink>>, SharedConsole) {
        let console = SharedConsole::new(self.out, self.progress_bar);
        let shared = console.clone();
        if let Some(usage_error) = self.usage_error {
            console.mute_when(usage_error);
        }
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if !self.subscribers.is_empty() {
            sinks.push(Box::new(Subscribers::new(self.subscribers)));
        }
        if let Some(events) = self.events {
            sinks.push(Box::new(JsonLines::new(events)));
        }
        let mut terminal = Terminal::new(console.clone(), self.verbosity, self.dots, self.color);
        if self.controller.is_some() {
            terminal = terminal.errors_at_end();
        }
        sinks.push(Box::new(terminal));
        for file in self.report_files {
            sinks.push(Box::new(ReportFileSink::new(file)));
        }
        let pytest_summary = PytestSummary::default();
        if let Some(command) = &self.controller {
            sinks.push(Box::new(ControllerSink::new(
                command,
                console.clone(),
                pytest_summary.clone(),
            )));
        }
        let summary = Summary::new(console, self.verbosity, self.durations, pytest_summary)
            .naming_workers(self.name_workers);
        sinks.push(Box::new(match self.controller {
            Some(_) => summary.errors_at_end(),
            None => summary,
        }));
        (sinks, shared)
    }
}

/// The actor that feeds the ledger and every sink.
pub struct Reporter {
    ledger: Ledger,
    sinks: Vec<Box<dyn Sink>>,
    lives: lives::Lives,
    /// Outputs that failed during the session (worker logs), said at the end.
    output_failures: Vec<OutputFailure>,
    supervisor: Option<Recipient<MaxfailReached>>,
    start: Instant,
    finished: bool,
    /// The console the sinks share (its waiting progress characters are flushed on a timer).
    console: SharedConsole,
}

impl Reporter {
    /// A reporter; the `Collected` event tells it which tests to expect.
    pub fn new(options: ReporterOptions) -> Reporter {
        let maxfail = options.maxfail;
        let (sinks, console) = options.sinks();
        Reporter {
            ledger: Ledger::new(maxfail),
            sinks,
            console,
            lives: lives::Lives::default(),
            output_failures: Vec::new(),
            supervisor: None,
            start: Instant::now(),
            finished: false,
        }
    }

    /// Tells the reporter whom to warn when `--maxfail` is reached.
    pub fn set_supervisor(&mut self, supervisor: Recipient<MaxfailReached>) {
        self.supervisor = Some(supervisor);
    }

    /// Carries out what the ledger decided about an event.
    fn carry_out(&self, effect: Effect) {
        match effect {
            Effect::MaxfailReached => {
                if let Some(s) = &self.supervisor {
                    s.do_send(MaxfailReached);
                }
            }
            Effect::Violation(msg) => tracing::error!("{msg}"),
        }
    }

    /// Stamps `event` with its time and hands it to every sink.
    fn fan_out(&mut self, event: Event) {
        let stamped = Stamped {
            t: self.start.elapsed().as_secs_f64(),
            event,
        };
        self.lives.event(&stamped);
        for sink in &mut self.sinks {
            sink.event(&stamped, &self.ledger);
        }
    }

    fn finish(&mut self, end: SessionEnd) -> SessionReport {
        self.finished = true;
        for result in self.ledger.settle_the_rest() {
            self.fan_out(result.event());
        }
        let mut report = self.report(end);
        for sink in &mut self.sinks {
            if let Err(failure) = sink.finish(&report, &self.ledger) {
                self.output_failures.push(failure);
            }
        }
        if let Some(code) = self.sinks.iter().find_map(|s| s.runner_exit_code()) {
            report.exit_code =
                session_exit_code(report.exit_code, &report.end, &report.tally, Some(code));
        }
        let failed = self.sinks.iter().any(|s| s.failed());
        if failed || self.output_failures.iter().any(|f| f.fails_session) {
            report.exit_code = exit_code::INTERNAL_ERROR;
        }
        self.fan_out(Event::SessionFinished {
            end: report.end.clone(),
            counts: report.tally.clone(),
            exit_code: report.exit_code,
            duration: report.duration,
        });
        for sink in &mut self.sinks {
            if let Err(failure) = sink.close(&self.output_failures) {
                if failure.fails_session {
                    report.exit_code = exit_code::INTERNAL_ERROR;
                }
                self.output_failures.insert(0, failure);
            }
        }
        report.output_failures = std::mem::take(&mut self.output_failures);
        report
    }

    /// The session's report as the ledger has it, ended as `end` (unless the exactly-once
    /// check failed), without the output failures.
    fn report(&mut self, end: SessionEnd) -> SessionReport {
        let end = self.ledger.checked_end(end);
        let duration = self.start.elapsed().as_secs_f64();
        let (workers, faults) = self.lives.close(duration);
        let tally = self.ledger.tally().clone();
        SessionReport {
            exit_code: exit_code(&end, &tally),
            workers,
            faults,
            end,
            tally,
            results: self.ledger.results().cloned().collect(),
            duration,
            violations: self.ledger.violations().to_vec(),
            output_failures: Vec::new(),
        }
    }
}

impl Actor for Reporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(console::PROGRESS_FLUSH, |reporter, _| {
            reporter.console.flush_pending()
        });
    }
}

impl Handler<Publish> for Reporter {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Self::Context) {
        if self.finished {
            tracing::debug!(?event, "event after the session finished");
            return;
        }
        if let Some(effect) = self.ledger.handle(&event) {
            self.carry_out(effect);
        }
        self.fan_out(event);
    }
}

impl Handler<OutputFailure> for Reporter {
    type Result = ();

    fn handle(&mut self, failure: OutputFailure, _: &mut Self::Context) {
        if self.finished {
            tracing::warn!("after the session finished: {failure}");
        } else if !self.output_failures.contains(&failure) {
            self.output_failures.push(failure);
        }
    }
}

impl Handler<Finish> for Reporter {
    type Result = MessageResult<Finish>;

    fn handle(&mut self, msg: Finish, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.finish(msg.end))
    }
}

#[cfg(test)]
mod tests;
