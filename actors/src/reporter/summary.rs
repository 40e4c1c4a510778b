//! The summary sink: what is printed once the session is over, as pytest prints it. First the
//! warnings summary, the failures with their text, the slowest durations, how the session
//! ended and the faults injected; then, after every other output closed, the outputs that
//! could not be written and the final line with the counts.

use std::collections::HashSet;

use herd_core::events::{Event, Stamped};
use herd_core::ledger::{Ledger, RaisedWarning, TestResult};
use herd_core::outcome::SessionEnd;
use herd_core::protocol::CollectionError;
use herd_core::TestId;

use super::console::{Console, SharedConsole};
use super::controller::PytestSummary;
use super::Sink;
use crate::output::OutputFailure;
use crate::report::{InjectedFault, SessionReport};

/// Prints the end of the session. It must be the last sink: it prints the others' failures.
pub struct Summary {
    console: SharedConsole,
    /// Below 0, the warnings and failures sections are left out.
    verbosity: i8,
    /// `--durations N`: the N slowest tests (0: all).
    durations: Option<usize>,
    /// The final line, known when the report is.
    final_line: Option<String>,
    /// Whether the pytest controller printed pytest's own summary: then herd's sections and
    /// final line are left out, and only what pytest cannot know is said.
    pytest_summary: PytestSummary,
    /// Whether the collection errors wait for the end (see [`Summary::errors_at_end`]).
    errors_at_end: bool,
    /// The collection errors to print if pytest's summary does not, by the worker that said
    /// them first, each collector once.
    errors: Vec<(String, Vec<CollectionError>)>,
    errors_seen: HashSet<String>,
    /// Name every worker that took part (see [`Summary::naming_workers`]).
    name_workers: bool,
}

impl Summary {
    /// The summary sink on `console`.
    pub fn new(
        console: SharedConsole,
        verbosity: i8,
        durations: Option<usize>,
        pytest_summary: PytestSummary,
    ) -> Summary {
        Summary {
            console,
            verbosity,
            durations,
            final_line: None,
            pytest_summary,
            errors_at_end: false,
            errors: Vec::new(),
            errors_seen: HashSet::new(),
            name_workers: false,
        }
    }

    /// With `on`, the summary names every worker that took part, with the tests each finished
    /// (sessions whose workers come and go).
    pub fn naming_workers(mut self, on: bool) -> Summary {
        self.name_workers = on;
        self
    }

    /// Prints the collection errors (each collector once) if pytest's summary did not: the
    /// terminal left them to the end.
    pub fn errors_at_end(mut self) -> Summary {
        self.errors_at_end = true;
        self
    }
}

impl Sink for Summary {
    fn event(&mut self, stamped: &Stamped, _: &Ledger) {
        if let Event::CollectionErrors { worker, errors } = &stamped.event {
            let new: Vec<CollectionError> = errors
                .iter()
                .filter(|e| self.errors_seen.insert(e.nodeid.clone()))
                .cloned()
                .collect();
            if self.errors_at_end && !new.is_empty() {
                self.errors.push((worker.clone(), new));
            }
        }
    }

    fn finish(&mut self, report: &SessionReport, ledger: &Ledger) -> Result<(), OutputFailure> {
        let mut console = self.console.lock();
        let pytests = self.pytest_summary.shown();
        if !pytests {
            for (worker, errors) in &self.errors {
                for line in super::terminal::collection_errors(worker, errors) {
                    console.line(line);
                }
            }
        }
        if self.verbosity >= 0 && !pytests {
            print_warnings(&mut console, ledger.warnings());
            print_failures(&mut console, &report.results);
        }
        if let Some(n) = self.durations.filter(|_| !pytests) {
            print_durations(&mut console, &report.results, n);
        }
        match &report.end {
            SessionEnd::Completed => {}
            // pytest's summary said it ("stopping after N failures", "Interrupted: ...").
            SessionEnd::MaxfailReached | SessionEnd::Interrupted(_) if pytests => {}
            SessionEnd::MaxfailReached => console.line("herd: stopping after --maxfail failures"),
            SessionEnd::Interrupted(why) => console.line(format!("herd: interrupted: {why}")),
            SessionEnd::Aborted(why) => console.line(format!("herd: session aborted: {why}")),
        }
        if !report.faults.is_empty() {
            console.line(faults_line(&report.faults));
        }
        if self.name_workers {
            console.line(workers_line(report));
        }
        self.final_line = if pytests {
            herd_only_line(&report.tally)
        } else {
            let summary = format!(" {} ", report.tally.summary_line(report.duration));
            Some(format!("{summary:=^78}"))
        };
        Ok(())
    }

    fn close(&mut self, failures: &[OutputFailure]) -> Result<(), OutputFailure> {
        let mut console = self.console.lock();
        for failure in failures {
            console.line(failure.to_string());
        }
        if let Some(line) = self.final_line.take() {
            console.line(line);
        }
        console.flush();
        Ok(())
    }
}

/// Up to this many workers, the summary gives each one's count of tests; beyond, ranges.
const WORKERS_NAMED_ONE_BY_ONE: usize = 16;

/// `herd: 3 workers took part: w1 (12 tests), w2 (8 tests), w3 (3 tests)`, in slot order; for
/// many workers, ranges of names and the spread of counts: `herd: 300 workers took part:
/// w1-w300 (61 to 78 tests each)`.
fn workers_line(report: &SessionReport) -> String {
    let mut workers: Vec<&str> = Vec::new();
    for life in &report.workers {
        if !workers.contains(&life.worker.as_str()) {
            workers.push(&life.worker);
        }
    }
    // In slot order: w2 before w10.
    workers.sort_by_key(|w| (w.len(), *w));
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for result in &report.results {
        if let Some(worker) = result.worker.as_deref() {
            *counts.entry(worker).or_default() += 1;
        }
    }
    let count = |w: &str| counts.get(w).copied().unwrap_or(0);
    let tests = |n: usize| format!("{n} test{}", if n == 1 { "" } else { "s" });
    let n = workers.len();
    let noun = if n == 1 { "worker" } else { "workers" };
    if n <= WORKERS_NAMED_ONE_BY_ONE {
        let named: Vec<String> = workers
            .iter()
            .map(|w| format!("{w} ({})", tests(count(w))))
            .collect();
        return format!("herd: {n} {noun} took part: {}", named.join(", "));
    }
    let least = workers.iter().map(|w| count(w)).min().unwrap_or(0);
    let most = workers.iter().map(|w| count(w)).max().unwrap_or(0);
    format!(
        "herd: {n} {noun} took part: {} ({least} to {most} tests each)",
        name_ranges(&workers)
    )
}

/// Worker names with runs of consecutive `w<N>` shortened: `w1-w4, w7, db`.
fn name_ranges(workers: &[&str]) -> String {
    let number = |w: &str| w.strip_prefix('w').and_then(|n| n.parse::<u64>().ok());
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let close = |run: Option<(u64, u64)>, parts: &mut Vec<String>| match run {
        Some((a, b)) if a == b => parts.push(format!("w{a}")),
        Some((a, b)) => parts.push(format!("w{a}-w{b}")),
        None => {}
    };
    for w in workers {
        match (number(w), run) {
            (Some(k), Some((a, b))) if k == b + 1 => run = Some((a, k)),
            (Some(k), _) => {
                close(run, &mut parts);
                run = Some((k, k));
            }
            (None, _) => {
                close(run.take(), &mut parts);
                parts.push(w.to_string());
            }
        }
    }
    close(run, &mut parts);
    parts.join(", ")
}

/// pytest's "warnings summary": each distinct warning once, with the tests that raised it.
fn print_warnings(console: &mut Console, warnings: &[RaisedWarning]) {
    if warnings.is_empty() {
        return;
    }
    let mut distinct: Vec<(&str, Vec<&TestId>)> = Vec::new();
    for warning in warnings {
        let at = match distinct.iter().position(|(t, _)| *t == warning.text) {
            Some(i) => i,
            None => {
                distinct.push((&warning.text, Vec::new()));
                distinct.len() - 1
            }
        };
        distinct[at].1.extend(&warning.test);
    }
    console.line(format!("{:=^78}", " warnings summary "));
    for (text, tests) in distinct {
        for test in tests.iter().take(5) {
            console.line(test);
        }
        if tests.len() > 5 {
            console.line(format!("  (and {} more tests)", tests.len() - 5));
        }
        console.line(format!("  {}", text.trim_end().replace('\n', "\n  ")));
        console.line("");
    }
}

/// The failures section (each failure's text) and the short test summary.
fn print_failures(console: &mut Console, results: &[TestResult]) {
    let failed: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.verdict.outcome.is_failure())
        .collect();
    if failed.is_empty() {
        return;
    }
    console.line(format!("{:=^78}", " FAILURES "));
    for r in &failed {
        let title = format!(" {} [{}] ", r.test, r.worker.as_deref().unwrap_or("-"));
        console.line(format!("{title:_^78}"));
        let details = r.verdict.details.as_deref().unwrap_or("(no details)");
        console.line(details.trim_end());
    }
    console.line(format!("{:=^78}", " short test summary info "));
    for r in &failed {
        let reason = r
            .verdict
            .message
            .as_deref()
            .map(|m| format!(" - {}", m.trim()));
        console.line(format!(
            "{} {}{}",
            r.verdict.outcome,
            r.test,
            reason.unwrap_or_default()
        ));
    }
}

/// pytest's "slowest durations": the `n` slowest tests that ran (all with 0).
fn print_durations(console: &mut Console, results: &[TestResult], n: usize) {
    let mut ran: Vec<(f64, &TestId)> = results
        .iter()
        .filter(|r| r.worker.is_some())
        .map(|r| (r.verdict.duration, &r.test))
        .collect();
    ran.sort_by(|a, b| b.0.total_cmp(&a.0));
    let shown = if n == 0 { ran.len() } else { n.min(ran.len()) };
    let title = if n == 0 {
        " slowest durations ".to_string()
    } else {
        format!(" slowest {n} durations ")
    };
    console.line(format!("{title:=^78}"));
    for (secs, test) in &ran[..shown] {
        console.line(format!("{secs:>8.2}s {test}"));
    }
}

/// Below pytest's summary, what herd decided and pytest does not know: tests that crashed or
/// timed out (shown to pytest as failed) and tests not run (not shown to it).
fn herd_only_line(tally: &herd_core::outcome::Tally) -> Option<String> {
    use herd_core::outcome::Outcome;
    let parts: Vec<String> = [Outcome::Crashed, Outcome::TimedOut, Outcome::NotRun]
        .iter()
        .map(|o| (o, tally.get(*o)))
        .filter(|(_, n)| *n > 0)
        .map(|(o, n)| format!("{n} {}", o.noun(n)))
        .collect();
    if parts.is_empty() {
        return None;
    }
    let shown = tally.get(Outcome::Crashed) + tally.get(Outcome::TimedOut);
    let note = if shown > 0 {
        "; pytest counted the crashed and timed out as failed"
    } else {
        ""
    };
    Some(format!("herd: {}{note}", parts.join(", ")))
}

/// `herd: injected 14 faults: 6 kill, 4 stop, ...`
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

#[cfg(test)]
mod tests {
    use super::name_ranges;

    #[test]
    fn runs_of_worker_names_are_shortened() {
        assert_eq!(
            name_ranges(&["w1", "w2", "w3", "w5", "w7", "w8"]),
            "w1-w3, w5, w7-w8"
        );
        assert_eq!(name_ranges(&["w1", "db", "w2"]), "w1, db, w2");
        assert_eq!(name_ranges(&[]), "");
    }
}
