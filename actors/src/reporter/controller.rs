//! The controller sink: the pytest controller (one pytest process configured with the user's
//! arguments, which collects nothing and runs no test) gets every finished test's serialized
//! reports, the collection errors and the warnings, in the Reporter's order, as JSON lines on its
//! stdin (see `herd_core::controller`), and at the end how the session ended. It hands them to
//! pytest's own hooks, so `--junitxml`, `--report-log`, the cache, `-r`, `--tb`, `--durations`
//! and plugins' summaries come from pytest, written once. Its stdout is relayed to the console in
//! order; its exit code is pytest's.
//!
//! ```text
//!   Sink::event --ControllerFeed--> writer thread --stdin--> controller --stdout--> reader thread
//!                                                                                   |  lines
//!   Sink::event / finish: the lines read so far go to the console <-----------------+
//! ```
//!
//! If it dies, herd says so and its own summary is printed instead (nothing is lost: the events
//! and herd's tally do not depend on it).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::controller::{ControllerFeed, Line};
use herd_core::events::{Event, Stamped};
use herd_core::ledger::Ledger;
use nix::sys::signal::Signal;

use super::console::SharedConsole;
use super::Sink;
use crate::output::OutputFailure;
use crate::process::{describe_status, die_with_parent, WorkerCommand};
use crate::report::SessionReport;

/// How long the controller may take to print pytest's summary once it has every report.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the controller printed pytest's final summary (then the summary sink leaves its own
/// sections out). Shared by the controller and summary sinks.
#[derive(Clone, Default)]
pub struct PytestSummary(Arc<AtomicBool>);

impl PytestSummary {
    /// Whether pytest's summary was printed.
    pub fn shown(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// Feeds the pytest controller and relays its output.
///
/// The controller starts with the session (its first event), before any worker configures:
/// the workers wait for what its plugins add to their `workerinput` (xdist's
/// `pytest_configure_node`). Its stderr is held until the session collects, so a command line
/// pytest refuses is reported once, by the workers; a session that collects nothing (and has
/// nothing for pytest's report) keeps herd's summary.
pub struct ControllerSink {
    console: SharedConsole,
    command: WorkerCommand,
    process: Option<Controller>,
    feed: ControllerFeed,
    /// Lines made before the controller started.
    pending: Vec<Line>,
    summary: PytestSummary,
    /// Whether the session collected (else, with nothing said, pytest's report has nothing).
    collected: bool,
    /// Whether a line for pytest's report (a test, a collection error) was sent.
    said_something: bool,
    /// How it died, when that was before the collection (said at the end, if at all).
    early_death: Option<String>,
    /// Its exit code, once it ended after the end was said.
    exit_code: Option<i32>,
    dead: bool,
    /// Finished tests' lines not sent yet, one per line, and since when the first waits: they
    /// go in batches (a wake-up of the writer thread and of the controller per batch, not per
    /// test); any other line, and the end, send them first.
    batch: String,
    batched: usize,
    batch_since: Option<Instant>,
}

/// A batch of finished tests' lines goes once it holds this many...
const BATCH_LINES: usize = 64;
/// ...or once its first line has waited this long (checked at each event).
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// The running controller process.
struct Controller {
    child: Child,
    /// Lines to its stdin; `None` once it is closed (the end was said, or the controller died).
    input: Option<Sender<String>>,
    /// Its stdout, a line at a time; `None` when it ended.
    output: Receiver<String>,
    /// Its stderr, a line at a time.
    errors: Receiver<String>,
    /// Its stderr lines held until the session collected (a command line pytest refuses is
    /// said once, by the workers' pytest, not also by the controller's).
    held: Vec<String>,
}

impl ControllerSink {
    /// A sink for the controller `command`, started with the session.
    pub fn new(
        command: &WorkerCommand,
        console: SharedConsole,
        summary: PytestSummary,
    ) -> ControllerSink {
        ControllerSink {
            console,
            command: command.clone(),
            process: None,
            feed: ControllerFeed::default(),
            pending: Vec::new(),
            summary,
            collected: false,
            said_something: false,
            early_death: None,
            exit_code: None,
            dead: false,
            batch: String::new(),
            batched: 0,
            batch_since: None,
        }
    }

    /// Keeps a finished test's line for the next batch.
    fn batch_line(&mut self, line: &Line) {
        if self.batched > 0 {
            self.batch.push('\n');
        }
        self.batch.push_str(line.text());
        self.batched += 1;
        self.batch_since.get_or_insert_with(Instant::now);
    }

    /// Sends the batch if it is full or has waited long enough (`all`: whatever it holds).
    fn flush_batch(&mut self, all: bool) {
        let due = self.batched >= BATCH_LINES
            || self.batch_since.is_some_and(|t| t.elapsed() >= BATCH_WAIT);
        if self.batched == 0 || !(all || due) {
            return;
        }
        let text = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.batch_since = None;
        self.send_text(text);
    }

    /// Starts the controller (in its own process group, so a Ctrl-C reaches herd only; its
    /// stderr is herd's) and sends what waited for it.
    fn start(&mut self) {
        if self.process.is_some() || self.dead {
            return;
        }
        match spawn(&self.command) {
            Ok(process) => {
                self.process = Some(process);
                for line in std::mem::take(&mut self.pending) {
                    self.send(&line);
                }
            }
            Err(e) => {
                self.dead = true;
                self.console.lock().line(format!(
                    "herd: cannot start the pytest controller ({}: {e}); herd's summary follows",
                    self.command.program.display()
                ));
            }
        }
    }

    /// Relays what it printed so far; notices once that it died.
    fn relay(&mut self) {
        let Some(process) = &mut self.process else {
            return;
        };
        process.errors_to_stderr(self.collected || self.said_something);
        let lines: Vec<String> = process.output.try_iter().collect();
        let status = match self.dead {
            false => process.child.try_wait().ok().flatten(),
            true => None,
        };
        self.print(&lines);
        if let Some(status) = status {
            self.died(&describe_status(&status));
        }
    }

    fn print(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut console = self.console.lock();
        for line in lines {
            console.line(line);
        }
    }

    fn died(&mut self, status: &str) {
        self.dead = true;
        if let Some(process) = &mut self.process {
            process.input = None;
        }
        if !self.collected && !self.said_something {
            // Before the collection: perhaps a command line pytest refuses, which the workers
            // say; said at the end unless they did.
            self.early_death = Some(status.to_string());
            return;
        }
        self.say_died(status);
    }

    fn say_died(&mut self, status: &str) {
        if let Some(process) = &mut self.process {
            process.errors_to_stderr(true);
        }
        self.console.lock().line(format!(
            "herd: the pytest controller exited early ({status}): pytest's own report \
             (its summary, --junitxml, --report-log, the cache) is not written; herd's summary \
             has every outcome (--no-controller turns the controller off)"
        ));
    }

    fn send(&mut self, line: &Line) {
        if self.process.is_none() {
            self.pending.push(line.clone());
            return;
        }
        self.send_text(line.text().to_string());
    }

    /// Sends `text` (one line or several) to the controller's stdin.
    fn send_text(&mut self, text: String) {
        let Some(process) = &mut self.process else {
            return;
        };
        if let Some(input) = &process.input {
            if input.send(text).is_err() {
                process.input = None;
            }
        }
    }

    /// Closes its input and relays its output until it ends (or the time is up).
    fn wait_for_the_end(&mut self) -> Result<i32, String> {
        let process = self.process.as_mut().expect("started");
        process.input = None;
        let deadline = Instant::now() + FINISH_TIMEOUT;
        loop {
            let next = process
                .output
                .recv_timeout(deadline.saturating_duration_since(Instant::now()));
            match next {
                Ok(line) => {
                    let mut console = self.console.lock();
                    console.line(&line);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                    return Err(format!(
                        "it did not end within {}s; killed",
                        FINISH_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        let status = process.child.wait().map_err(|e| e.to_string())?;
        process.errors_to_stderr(true);
        status.code().ok_or_else(|| describe_status(&status))
    }
}

/// Spawns the controller `command` with its stdin and stdout piped to two threads.
fn spawn(command: &WorkerCommand) -> std::io::Result<Controller> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    die_with_parent(&mut cmd, Signal::SIGTERM);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    tracing::debug!(pid = child.id(), "pytest controller started");
    Ok(Controller {
        child,
        input: Some(write_lines(stdin)),
        output: read_lines(stdout),
        errors: read_lines(stderr),
        held: Vec::new(),
    })
}

impl Sink for ControllerSink {
    fn runner_exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    fn event(&mut self, stamped: &Stamped, _: &Ledger) {
        if self.dead {
            return;
        }
        // Started with the session, before any worker configures: the workers wait for what
        // its plugins add to their `workerinput` (xdist's `pytest_configure_node`).
        self.start();
        if matches!(stamped.event, Event::Collected { .. }) {
            self.collected = true;
        }
        for line in self.feed.lines(&stamped.event) {
            self.said_something |= matches!(line.kind(), "test" | "collect_error");
            if line.kind() == "test" && self.process.is_some() {
                self.batch_line(&line);
            } else {
                self.flush_batch(true); // in order
                self.send(&line);
            }
        }
        self.flush_batch(false);
        if !matches!(stamped.event, Event::SessionFinished { .. }) {
            self.relay();
        }
    }

    fn finish(&mut self, report: &SessionReport, _: &Ledger) -> Result<(), OutputFailure> {
        self.relay();
        if let Some(status) = self.early_death.take() {
            if !self.console.lock().muted() {
                self.say_died(&status);
            }
        }
        if self.dead || self.process.is_none() {
            return Ok(());
        }
        if !self.collected && !self.said_something {
            // Nothing collected and nothing for pytest's report: herd's summary says it.
            self.stop_quietly();
            return Ok(());
        }
        self.flush_batch(true);
        let end = Line::from(self.feed.finish(&report.end, report.exit_code));
        self.send(&end);
        match self.wait_for_the_end() {
            // pytest's usage error or internal error: its message is above; herd's summary stays.
            Ok(code) if code == 3 || code == 4 => self.died(&format!("exit code {code}")),
            Ok(code) => {
                self.exit_code = Some(code);
                self.summary.set();
            }
            Err(status) => self.died(&status),
        }
        Ok(())
    }
}

impl Controller {
    /// Writes its stderr lines to herd's (`now`), or holds them.
    fn errors_to_stderr(&mut self, now: bool) {
        self.held.extend(self.errors.try_iter());
        if now && !self.held.is_empty() {
            let mut stderr = std::io::stderr().lock();
            for line in self.held.drain(..) {
                let _ = writeln!(stderr, "{line}");
            }
        }
    }
}

impl ControllerSink {
    /// Ends a controller that has nothing to report (its output is not relayed).
    fn stop_quietly(&mut self) {
        if let Some(process) = &mut self.process {
            process.input = None;
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        self.dead = true;
    }
}

impl Drop for ControllerSink {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            if process.child.try_wait().ok().flatten().is_none() {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

/// A thread writing each line sent to `stdin`; it closes `stdin` when the sender is dropped or
/// the controller stops reading.
fn write_lines(stdin: std::process::ChildStdin) -> Sender<String> {
    let (tx, rx) = channel::<String>();
    std::thread::spawn(move || {
        let mut stdin = std::io::BufWriter::new(stdin);
        while let Ok(line) = rx.recv() {
            if writeln!(stdin, "{line}").is_err() {
                return;
            }
            // Write out what is queued, then wait for more: a batch per wakeup.
            if rx
                .try_iter()
                .try_for_each(|l| writeln!(stdin, "{l}"))
                .is_err()
            {
                return;
            }
            if stdin.flush().is_err() {
                return;
            }
        }
    });
    tx
}

/// A thread reading `stdout` a line at a time (lossily decoded); the channel closes at its end.
fn read_lines(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
