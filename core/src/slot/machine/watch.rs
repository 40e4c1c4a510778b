//! Watching the process: stopped (SIGSTOP) for `--hang-timeout`, or silent and idle
//! ([`crate::liveness`]) for `--heartbeat-timeout`; the signal faults a `--chaos` plan strikes
//! it with; and its output, kept (the end of it) for crash reports and, with capturing off
//! (pytest's `-s`), shown live a line at a time.

use std::time::Instant;

use super::*;
use crate::liveness::Liveness;
use crate::text::indent_tail;

impl Slot {
    /// The periodic check: a disowned worker's end, then silence, then a stopped process.
    pub(super) fn tick(&mut self, state: Option<ProcState>, now: Instant) {
        if std::mem::take(&mut self.inc.pending_gone) {
            let incarnation = self.incarnation;
            return self.gone(incarnation, 0, None, "disowned".into());
        }
        if self.silent(state, now) {
            return;
        }
        if !state.is_some_and(|state| state.stopped) {
            self.inc.stopped_since = None;
            return;
        }
        let since = *self.inc.stopped_since.get_or_insert(now);
        let stopped = now.saturating_duration_since(since);
        if stopped >= self.config.hang_timeout {
            let secs = stopped.as_secs_f64();
            self.notice(format!("has been stopped for {secs:.1}s; killing it"));
            self.kill(KillReason::Hung);
        }
    }

    /// Whether a process that promised heartbeats is silent and idle (then it is killed): hung
    /// here, lost on another host. A local process that computes is busy, not hung (a test
    /// holding the interpreter lock keeps the heartbeat thread from running).
    fn silent(&mut self, state: Option<ProcState>, now: Instant) -> bool {
        let live = matches!(
            self.phase,
            Phase::Collecting { .. } | Phase::Checking { .. } | Phase::Working { .. }
        ) && (self.inc.pid.is_some()
            || self.inc.identity.is_some() && self.inc.external);
        let Some(watch) = self.inc.liveness.as_mut().filter(|_| live) else {
            return false;
        };
        let cpu = state
            .filter(|_| watch.wants_cpu(now))
            .and_then(|state| state.cpu_ticks);
        let (Liveness::Silent(silent), None) = (watch.check(now, cpu), &self.inc.kill) else {
            return false;
        };
        let secs = silent.as_secs_f64();
        if self.config.remote {
            self.notice(format!(
                "sent nothing for {secs:.1}s although it promised heartbeats; giving it up for lost and re-queuing its tests"
            ));
            self.kill(KillReason::Lost(silent));
        } else {
            self.notice(format!(
                "sent nothing for {secs:.1}s although it promised heartbeats; taking it for hung and killing it (its process used no CPU either)"
            ));
            self.kill(KillReason::Hung);
        }
        true
    }

    /// Inflicts a signal fault on the process, if it still runs.
    pub(super) fn strike(&mut self, kind: FaultKind) {
        let Some(pid) = self.inc.pid else {
            return;
        };
        let test = self.running_test();
        self.out.push(Effect::Strike { pid, kind });
        self.fault(kind, test);
    }

    /// Output of the process of `incarnation`: its tail kept, and shown live with `-s`.
    pub(super) fn output(&mut self, incarnation: u32, bytes: &[u8]) {
        if incarnation != self.incarnation {
            return;
        }
        let tail = &mut self.inc.tail;
        tail.extend_from_slice(bytes);
        if tail.len() > 2 * TAIL_BYTES {
            tail.drain(..tail.len() - TAIL_BYTES);
        }
        if self.config.live_output {
            self.show_live(bytes);
        }
    }

    /// Live output (`-s`): each complete line goes out as a worker message, shown with the
    /// worker's id; a very long line is shown in pieces.
    fn show_live(&mut self, bytes: &[u8]) {
        const LONGEST_LINE: usize = 64 * 1024;
        self.inc.partial_line.extend_from_slice(bytes);
        while let Some(end) = self.inc.partial_line.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.inc.partial_line.drain(..=end).collect();
            self.publish_line(&line[..line.len() - 1]);
        }
        if self.inc.partial_line.len() > LONGEST_LINE {
            let piece = std::mem::take(&mut self.inc.partial_line);
            self.publish_line(&piece);
        }
    }

    fn publish_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r').to_string();
        let worker = self.id();
        self.publish(Event::WorkerMessage { worker, text });
    }

    /// The last line of live output, if it did not end with a newline.
    pub(super) fn flush_live(&mut self) {
        if !self.inc.partial_line.is_empty() {
            let piece = std::mem::take(&mut self.inc.partial_line);
            self.publish_line(&piece);
        }
    }

    /// The end of the process's output, as a crash report shows it.
    pub(super) fn tail_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.inc.tail);
        let tail = indent_tail(&text, TAIL_LINES);
        let worker = &self.config.worker;
        let mut out = if tail.is_empty() {
            format!("(no output from {worker})")
        } else {
            format!("last output of {worker}:{tail}")
        };
        if let Some(path) = &self.config.log_path {
            out.push_str(&format!("\n(full log: {})", path.display()));
        }
        out
    }
}
