//! The Reporter: the single writer of user-facing output and of `--events`, and the keeper of the
//! exactly-once invariant: every collected test ends with exactly one outcome.
//!
//! A test's line is printed when its outcome is known (after teardown), prefixed with the worker
//! id. At the end, tests that never got an outcome are settled as "not run", the failures and a
//! short summary are printed, and the final line gives the counts like pytest's.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use herd_core::events::{Event, Stamped};
use herd_core::outcome::{exit_code, Outcome, SessionEnd, Tally, Verdict};
use herd_core::TestId;

use crate::messages::{Finish, MaxfailReached, Publish};
use crate::output::{LineFile, OutputFailure, ReportFile};
use crate::progress::Progress;
use crate::report::{InjectedFault, SessionReport, TestResult, WorkerLife};

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
}

/// A callback that receives every event of a session, in order, with its time.
pub type EventSubscriber = Box<dyn FnMut(&Stamped) + Send>;

/// The actor that prints and records everything.
pub struct Reporter {
    out: Box<dyn Write + Send>,
    events: Option<LineFile>,
    report_files: Vec<ReportFile>,
    output_failures: Vec<OutputFailure>,
    verbosity: i8,
    maxfail: Option<usize>,
    maxfail_sent: bool,
    supervisor: Option<Recipient<MaxfailReached>>,
    start: Instant,
    collection: Arc<Vec<TestId>>,
    index: HashMap<TestId, usize>,
    results: Vec<Option<TestResult>>,
    tally: Tally,
    violations: Vec<String>,
    finished: bool,
    workers: Vec<WorkerLife>,
    faults: Vec<InjectedFault>,
    progress: Option<Progress>,
    color: bool,
    durations: Option<usize>,
    subscribers: Vec<EventSubscriber>,
    warnings: Vec<(Option<TestId>, String)>,
    dots: bool,
    column: usize,
}

impl Reporter {
    /// A reporter; the `Collected` event tells it which tests to expect.
    pub fn new(options: ReporterOptions) -> Reporter {
        Reporter {
            out: options.out,
            events: options.events,
            report_files: options.report_files,
            output_failures: Vec::new(),
            verbosity: options.verbosity,
            maxfail: options.maxfail.filter(|n| *n > 0),
            maxfail_sent: false,
            supervisor: None,
            start: Instant::now(),
            results: Vec::new(),
            collection: Arc::new(Vec::new()),
            index: HashMap::new(),
            tally: Tally::default(),
            violations: Vec::new(),
            finished: false,
            workers: Vec::new(),
            faults: Vec::new(),
            progress: options.progress_bar.then(Progress::on_stdout),
            color: options.color,
            durations: options.durations,
            subscribers: options.subscribers,
            warnings: Vec::new(),
            dots: options.dots,
            column: 0,
        }
    }

    /// Tells the reporter whom to warn when `--maxfail` is reached.
    pub fn set_supervisor(&mut self, supervisor: Recipient<MaxfailReached>) {
        self.supervisor = Some(supervisor);
    }

    fn line(&mut self, text: impl AsRef<str>) {
        if let Some(progress) = &self.progress {
            progress.println(text.as_ref());
            return;
        }
        if self.column > 0 {
            let _ = writeln!(self.out);
            self.column = 0;
        }
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    /// One progress character; a line ends every 60 tests with the share done.
    fn dot(&mut self, outcome: Outcome) {
        let _ = write!(self.out, "{}", outcome.letter());
        self.column += 1;
        let done = self.tally.total() + 1;
        if self.column >= 60 || done == self.collection.len() {
            let pct = done * 100 / self.collection.len().max(1);
            let pad = 60 - self.column;
            let _ = writeln!(self.out, "{:pad$} [{pct:>3}%]", "");
            self.column = 0;
        }
        let _ = self.out.flush();
    }

    /// The outcome's word, colored when color is on.
    fn word(&self, outcome: Outcome) -> String {
        use anstyle::{AnsiColor, Style};
        if !self.color {
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

    fn record(&mut self, event: &Event) {
        let writing = self.events.as_ref().is_some_and(LineFile::is_open);
        if !writing && self.subscribers.is_empty() {
            return;
        }
        let stamped = Stamped {
            t: self.start.elapsed().as_secs_f64(),
            event: event.clone(),
        };
        for subscriber in &mut self.subscribers {
            subscriber(&stamped);
        }
        if let Some(events) = self.events.as_mut().filter(|e| e.is_open()) {
            // One line per event, written at once, so tools can follow the file live.
            match serde_json::to_vec(&stamped) {
                Ok(line) => events.write_line(line),
                Err(e) => tracing::error!("an event does not serialize: {e}"),
            }
        }
    }

    fn settle(&mut self, result: TestResult) {
        let Some(&i) = self.index.get(&result.test) else {
            let msg = format!(
                "outcome {} for {} which was never collected",
                result.verdict.outcome, result.test
            );
            tracing::error!("{msg}");
            self.violations.push(msg);
            return;
        };
        if let Some(first) = &self.results[i] {
            let msg = format!(
                "second outcome {} for {} (first: {} on {})",
                result.verdict.outcome,
                result.test,
                first.verdict.outcome,
                first.worker.as_deref().unwrap_or("-")
            );
            tracing::error!("{msg}");
            self.violations.push(msg);
            return;
        }
        self.tally.add(result.verdict.outcome);
        for category in &result.verdict.categories {
            self.tally.add_reported(category);
        }
        if result.verdict.outcome.is_failure() {
            if let (Some(max), false) = (self.maxfail, self.maxfail_sent) {
                if self.tally.failures() >= max {
                    self.maxfail_sent = true;
                    if let Some(s) = &self.supervisor {
                        s.do_send(MaxfailReached);
                    }
                }
            }
        }
        self.results[i] = Some(result);
    }

    fn show(&mut self, event: &Event) {
        let v = self.verbosity;
        match event {
            Event::SessionStarted {
                runner, workers, ..
            } if v >= 1 => self.line(format!("herd: {workers} workers, {runner} runner")),
            Event::Collected { tests } if v >= 0 => {
                self.line(format!("herd: collected {} tests", tests.len()))
            }
            Event::CollectionErrors { worker, errors } => {
                self.line(format!("{:=^78}", " ERRORS "));
                for e in errors {
                    self.line(format!(
                        "{:_^78}",
                        format!(" ERROR collecting {} ", e.nodeid)
                    ));
                    self.line(e.longrepr.trim_end());
                }
                self.line(format!(
                    "[{worker}] {} errors during collection",
                    errors.len()
                ));
            }
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
                if *incarnation > 1 && v >= 0 {
                    self.line(format!("[{worker}] respawned (pid {pid}){on}"));
                } else if v >= 1 {
                    self.line(format!("[{worker}] started (pid {pid}){on}"));
                }
            }
            Event::WorkerAwaited {
                worker, command, ..
            } => self.line(format!(
                "[{worker}] waiting for this worker to join; run:\n    {command}"
            )),
            Event::CollectionMismatch { worker, diff } => self.line(format!(
                "[{worker}] collection differs from the reference:\n{}",
                diff.trim_end()
            )),
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
                self.line(format!(
                    "sent {tests} tests to {worker} ({sent}/{total}, {pct:.1}%)"
                ))
            }
            Event::ProviderSwitched { worker, from, to } => {
                self.line(format!("[{worker}] switched provider {from} -> {to}"))
            }
            Event::TestStarted { test, worker } if v >= 2 => {
                self.line(format!("[{worker}] RUNNING {test}"))
            }
            Event::TestFinished {
                test,
                worker: Some(worker),
                verdict,
            } if v >= 0 => {
                let outcome = verdict.outcome;
                let compact = self.dots && v == 0;
                match (compact, self.progress.is_some()) {
                    (true, false) => self.dot(outcome),
                    // The bar shows progress: in compact mode only what did not pass gets a line.
                    (true, true) if outcome == Outcome::Passed => {}
                    _ => {
                        let word = self.word(outcome);
                        self.line(format!(
                            "[{worker}] {word} {test} ({:.2}s)",
                            verdict.duration
                        ))
                    }
                }
            }
            Event::TestsRequeued { worker, tests } => self.line(format!(
                "[{worker}] {} unfinished tests returned to the front of the queue",
                tests.len()
            )),
            Event::WorkStolen { from, tests } if v >= 1 => self.line(format!(
                "[{from}] gave back {tests} unstarted tests for an idle worker"
            )),
            Event::WorkerMessage { worker, text } => self.line(format!("[{worker}] {text}")),
            Event::WorkerExited {
                worker,
                status,
                clean: false,
                ..
            } => self.line(format!("[{worker}] worker died ({status})")),
            Event::WorkerExited {
                worker,
                status,
                clean: true,
                ..
            } if v >= 1 => self.line(format!("[{worker}] worker exited ({status})")),
            Event::WorkerRetired { worker, reason } => {
                self.line(format!("[{worker}] retired: {reason}"))
            }
            Event::Notice { worker, text } => {
                self.line(format!("[{}] {text}", worker.as_deref().unwrap_or("herd")))
            }
            Event::FaultInjected {
                worker, kind, test, ..
            } if v >= 1 => {
                let during = test
                    .as_ref()
                    .map(|t| format!(" during {t}"))
                    .unwrap_or_default();
                self.line(format!("[{worker}] chaos: {kind}{during}"))
            }
            Event::MessageRefused { identity, reason } => self.line(format!(
                "[herd] refused a message from {identity:?}: {reason}"
            )),
            _ => {}
        }
    }

    fn finish(&mut self, end: SessionEnd) -> SessionReport {
        self.finished = true;
        if let Some(progress) = self.progress.take() {
            progress.finish();
        }
        let end = self.settle_the_rest(end);
        self.print_warnings();
        self.print_failures();
        self.print_durations();
        let duration = self.start.elapsed().as_secs_f64();
        let code = exit_code(&end, &self.tally);
        match &end {
            SessionEnd::Completed => {}
            SessionEnd::MaxfailReached => self.line("herd: stopping after --maxfail failures"),
            SessionEnd::Interrupted(why) => self.line(format!("herd: interrupted: {why}")),
            SessionEnd::Aborted(why) => self.line(format!("herd: session aborted: {why}")),
        }
        if !self.faults.is_empty() {
            let line = faults_line(&self.faults);
            self.line(line);
        }
        for life in self.workers.iter_mut().filter(|w| w.ended.is_none()) {
            life.ended = Some(duration);
            life.status = Some("killed as the session ended".into());
        }
        let mut report = SessionReport {
            workers: std::mem::take(&mut self.workers),
            faults: std::mem::take(&mut self.faults),
            end,
            tally: self.tally.clone(),
            results: self.results.iter().flatten().cloned().collect(),
            exit_code: code,
            duration,
            violations: self.violations.clone(),
            output_failures: Vec::new(),
        };
        self.write_outputs(&mut report);
        let summary = format!(" {} ", self.tally.summary_line(duration));
        self.line(format!("{summary:=^78}"));
        let _ = self.out.flush();
        report
    }

    /// Settles every test still without an outcome as not run, and checks that every collected
    /// test has exactly one outcome (a violation aborts the session).
    fn settle_the_rest(&mut self, end: SessionEnd) -> SessionEnd {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                let test = self.collection[i].clone();
                let verdict = Verdict::decided(Outcome::NotRun, 0.0, None, None);
                let result = TestResult {
                    test,
                    worker: None,
                    verdict,
                };
                self.record(&result.event());
                self.settle(result);
            }
        }
        if self.tally.total() != self.collection.len() && self.violations.is_empty() {
            self.violations.push(format!(
                "{} outcomes for {} collected tests",
                self.tally.total(),
                self.collection.len()
            ));
        }
        if self.violations.is_empty() {
            return end;
        }
        end.max(SessionEnd::Aborted(format!(
            "internal error: the exactly-once check failed ({})",
            self.violations.join("; ")
        )))
    }

    /// Writes the report files and the last event, closes `--events`, and prints every output
    /// file that could not be written: a result file among them makes the exit code 3.
    fn write_outputs(&mut self, report: &mut SessionReport) {
        for file in std::mem::take(&mut self.report_files) {
            self.output_failures.extend(file.write(report));
        }
        let events_failed = self.events.as_ref().is_some_and(|e| !e.is_open());
        if events_failed || self.output_failures.iter().any(|f| f.fails_session) {
            report.exit_code = exit_code::INTERNAL_ERROR;
        }
        let finished = Event::SessionFinished {
            end: report.end.clone(),
            counts: self.tally.clone(),
            exit_code: report.exit_code,
            duration: report.duration,
        };
        self.record(&finished);
        if let Some(failure) = self.events.as_mut().and_then(LineFile::close) {
            report.exit_code = exit_code::INTERNAL_ERROR;
            self.output_failures.insert(0, failure);
        }
        for failure in self.output_failures.clone() {
            self.line(failure.to_string());
        }
        report.output_failures = std::mem::take(&mut self.output_failures);
    }

    /// pytest's "warnings summary": each distinct warning once, with the tests that raised it.
    fn print_warnings(&mut self) {
        if self.warnings.is_empty() || self.verbosity < 0 {
            return;
        }
        let mut distinct: Vec<(String, Vec<String>)> = Vec::new();
        for (test, text) in std::mem::take(&mut self.warnings) {
            let at = match distinct.iter().position(|(t, _)| *t == text) {
                Some(i) => i,
                None => {
                    distinct.push((text, Vec::new()));
                    distinct.len() - 1
                }
            };
            distinct[at].1.extend(test);
        }
        self.line(format!("{:=^78}", " warnings summary "));
        for (text, tests) in distinct {
            for test in tests.iter().take(5) {
                self.line(test);
            }
            if tests.len() > 5 {
                self.line(format!("  (and {} more tests)", tests.len() - 5));
            }
            self.line(format!("  {}", text.trim_end().replace('\n', "\n  ")));
            self.line("");
        }
    }

    /// pytest's "slowest durations": the N slowest tests (all with `--durations 0`).
    fn print_durations(&mut self) {
        let Some(n) = self.durations else { return };
        let mut ran: Vec<(f64, TestId)> = self
            .results
            .iter()
            .flatten()
            .filter(|r| r.worker.is_some())
            .map(|r| (r.verdict.duration, r.test.clone()))
            .collect();
        ran.sort_by(|a, b| b.0.total_cmp(&a.0));
        let shown = if n == 0 { ran.len() } else { n.min(ran.len()) };
        let title = if n == 0 {
            " slowest durations ".to_string()
        } else {
            format!(" slowest {n} durations ")
        };
        self.line(format!("{title:=^78}"));
        for (secs, test) in &ran[..shown] {
            self.line(format!("{secs:>8.2}s {test}"));
        }
    }

    fn print_failures(&mut self) {
        let failed: Vec<TestResult> = self
            .results
            .iter()
            .flatten()
            .filter(|r| r.verdict.outcome.is_failure())
            .cloned()
            .collect();
        if failed.is_empty() || self.verbosity < 0 {
            return;
        }
        self.line(format!("{:=^78}", " FAILURES "));
        for r in &failed {
            let title = format!(" {} [{}] ", r.test, r.worker.as_deref().unwrap_or("-"));
            self.line(format!("{title:_^78}"));
            self.line(
                r.verdict
                    .details
                    .as_deref()
                    .unwrap_or("(no details)")
                    .trim_end(),
            );
        }
        self.line(format!("{:=^78}", " short test summary info "));
        for r in &failed {
            let reason = r
                .verdict
                .message
                .as_deref()
                .map(|m| format!(" - {}", m.trim()));
            self.line(format!(
                "{} {}{}",
                r.verdict.outcome,
                r.test,
                reason.unwrap_or_default()
            ));
        }
    }
}

/// `injected 14 faults: 6 kill, 4 stop, ...`
fn faults_line(faults: &[InjectedFault]) -> String {
    let counts: Vec<String> = herd_core::faults::FaultKind::ALL
        .iter()
        .map(|k| (k, faults.iter().filter(|f| f.kind == *k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let noun = if faults.len() == 1 { "fault" } else { "faults" };
    format!(
        "herd: injected {} {noun}: {}",
        faults.len(),
        counts.join(", ")
    )
}

impl Actor for Reporter {
    type Context = Context<Self>;
}

impl Handler<Publish> for Reporter {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Self::Context) {
        if self.finished {
            tracing::debug!(?event, "event after the session finished");
            return;
        }
        self.record(&event);
        self.show(&event);
        if let Event::Warning {
            test,
            text,
            outside_tests,
            ..
        } = &event
        {
            // Every worker collects: a warning raised outside tests counts once.
            let seen =
                *outside_tests && self.warnings.iter().any(|(t, w)| t.is_none() && w == text);
            if !seen {
                self.tally.add_reported("warnings");
                self.warnings.push((test.clone(), text.clone()));
            }
        }
        if let Some(progress) = &mut self.progress {
            match &event {
                Event::Collected { tests } => progress.set_total(tests.len()),
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
        let now = self.start.elapsed().as_secs_f64();
        match &event {
            Event::WorkerSpawned {
                worker,
                incarnation,
                pid,
                appliance,
            } => self.workers.push(WorkerLife {
                worker: worker.clone(),
                incarnation: *incarnation,
                pid: *pid,
                appliance: appliance.clone(),
                started: now,
                ended: None,
                status: None,
                clean: false,
            }),
            Event::FaultInjected {
                worker,
                incarnation,
                kind,
                test,
            } => self.faults.push(InjectedFault {
                t: now,
                worker: worker.clone(),
                incarnation: *incarnation,
                kind: *kind,
                test: test.clone(),
            }),
            Event::WorkerExited {
                worker,
                incarnation,
                status,
                clean,
            } => {
                let life = self
                    .workers
                    .iter_mut()
                    .rev()
                    .find(|w| w.worker == *worker && w.incarnation == *incarnation);
                if let Some(life) = life {
                    (life.ended, life.status, life.clean) =
                        (Some(now), Some(status.clone()), *clean);
                }
            }
            _ => {}
        }
        if let Event::Collected { tests } = &event {
            self.index = tests
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect();
            self.results = vec![None; tests.len()];
            self.collection = Arc::new(tests.clone());
        }
        if let Event::TestFinished {
            test,
            worker,
            verdict,
        } = event
        {
            self.settle(TestResult {
                test,
                worker,
                verdict,
            });
        }
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
mod tests {
    use super::*;
    use herd_core::outcome::Outcome;
    use std::fs::File;

    fn finished(test: &str, outcome: Outcome) -> Publish {
        let verdict = Verdict::decided(outcome, 0.1, None, None);
        Publish(Event::TestFinished {
            test: test.into(),
            worker: Some("w1".into()),
            verdict,
        })
    }

    fn reporter() -> Addr<Reporter> {
        Reporter::new(ReporterOptions {
            out: Box::new(std::io::sink()),
            events: None,
            report_files: Vec::new(),
            verbosity: 0,
            maxfail: None,
            dots: false,
            durations: None,
            progress_bar: false,
            color: false,
            subscribers: Vec::new(),
        })
        .start()
    }

    #[actix_rt::test]
    async fn a_second_outcome_for_a_test_is_an_internal_error() {
        let reporter = reporter();
        reporter.do_send(Publish(Event::Collected {
            tests: vec!["a".into(), "b".into()],
        }));
        reporter.do_send(finished("a", Outcome::Passed));
        reporter.do_send(finished("a", Outcome::Failed));
        reporter.do_send(finished("ghost", Outcome::Passed));
        let report = reporter
            .send(Finish {
                end: SessionEnd::Completed,
            })
            .await
            .unwrap();
        assert_eq!(report.exit_code, exit_code::INTERNAL_ERROR);
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
        assert!(report.violations[0].contains("second outcome FAILED for a (first: PASSED on w1)"));
        assert!(report.violations[1].contains("ghost which was never collected"));
        assert!(matches!(report.end, SessionEnd::Aborted(ref why) if why.contains("exactly-once")));
        // The first outcome stands; the test nobody ran is settled as not run.
        let outcomes: Vec<Outcome> = report.results.iter().map(|r| r.verdict.outcome).collect();
        assert_eq!(outcomes, [Outcome::Passed, Outcome::NotRun]);
    }

    /// Output shared with the test.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn report_file(what: &str, fails_session: bool) -> ReportFile {
        ReportFile {
            what: what.into(),
            path: format!("/out/{what}").into(),
            fails_session,
            consequence: "it is gone".into(),
            write: Box::new(|_| Err(std::io::Error::from_raw_os_error(28))),
        }
    }

    #[actix_rt::test]
    async fn a_failed_output_file_is_said_before_the_summary_and_exits_3() {
        let out = Shared::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let events = LineFile::new("--events", path.clone(), File::create(&path).unwrap());
        let reporter = Reporter::new(ReporterOptions {
            out: Box::new(out.clone()),
            events: Some(events),
            report_files: vec![
                report_file("--junit-xml", true),
                report_file("history", false),
            ],
            verbosity: 0,
            maxfail: None,
            dots: false,
            durations: None,
            progress_bar: false,
            color: false,
            subscribers: Vec::new(),
        })
        .start();
        reporter.do_send(Publish(Event::Collected {
            tests: vec!["a".into()],
        }));
        reporter.do_send(finished("a", Outcome::Failed));
        let log = std::io::Error::from_raw_os_error(28);
        let failure = OutputFailure::new("the worker log", "/logs/w1.log".as_ref(), &log, "cut");
        reporter.do_send(failure.clone());
        let end = SessionEnd::Completed;
        let report = reporter.send(Finish { end }).await.unwrap();
        // Tests failed (1), but a result file is incomplete: internal error.
        assert_eq!(report.exit_code, exit_code::INTERNAL_ERROR);
        assert_eq!(report.output_failures.len(), 3);
        assert_eq!(report.output_failures[0], failure);
        assert!(!report.output_failures[2].fails_session);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().rev().take(4).collect();
        assert!(lines[0].contains("1 failed in"), "{text}");
        assert!(lines[1].starts_with("herd: warning: could not write history /out/history: No space left on device (os error 28); it is gone"), "{text}");
        assert!(
            lines[2].starts_with("herd: could not write --junit-xml /out/--junit-xml: No space"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("herd: could not write the worker log /logs/w1.log: No space"),
            "{text}"
        );
        // The events file is whole and says the exit code.
        let last = std::fs::read_to_string(&path).unwrap();
        let last: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(last["exit_code"], 3);
    }

    #[actix_rt::test]
    async fn a_failed_warning_file_keeps_the_exit_code() {
        let reporter = Reporter::new(ReporterOptions {
            out: Box::new(std::io::sink()),
            events: None,
            report_files: vec![report_file("history", false)],
            verbosity: 0,
            maxfail: None,
            dots: false,
            durations: None,
            progress_bar: false,
            color: false,
            subscribers: Vec::new(),
        })
        .start();
        reporter.do_send(Publish(Event::Collected {
            tests: vec!["a".into()],
        }));
        reporter.do_send(finished("a", Outcome::Passed));
        let end = SessionEnd::Completed;
        let report = reporter.send(Finish { end }).await.unwrap();
        assert_eq!(report.exit_code, exit_code::OK);
        assert_eq!(report.output_failures.len(), 1);
    }

    #[actix_rt::test]
    async fn a_clean_session_settles_every_test_once() {
        let reporter = reporter();
        reporter.do_send(Publish(Event::Collected {
            tests: vec!["a".into(), "b".into(), "c".into()],
        }));
        reporter.do_send(finished("b", Outcome::Failed));
        let report = reporter
            .send(Finish {
                end: SessionEnd::Interrupted("SIGINT".into()),
            })
            .await
            .unwrap();
        assert!(report.violations.is_empty());
        assert_eq!(report.tally.total(), 3);
        assert_eq!(report.tally.get(Outcome::NotRun), 2);
        assert_eq!(report.exit_code, exit_code::INTERRUPTED);
    }
}
