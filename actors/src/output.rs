//! Output files that say when they fail: `--events`, per-worker logs, and the files written from
//! the finished report (`--junit-xml`, the duration history).
//!
//! No write is silently dropped: the first error of a file becomes an [`OutputFailure`] naming
//! the file and the OS error, which the Reporter prints before the summary line. A failed result
//! file makes the session exit 3 (internal error); every outcome is still printed.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::report::SessionReport;

/// An output file that could not be written completely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
pub struct OutputFailure {
    /// What the file is: `--events`, `--junit-xml`, `the worker log`, `the duration history`.
    pub what: String,
    /// The file.
    pub path: PathBuf,
    /// The OS error, as the OS says it (`No space left on device (os error 28)`).
    pub error: String,
    /// What it means for the file (`the file is incomplete`).
    pub consequence: String,
    /// Whether the file is a result (its failure makes the session exit 3) or only a help for
    /// the next run (a warning).
    pub fails_session: bool,
}

impl OutputFailure {
    /// A failure of `what` at `path` with `error`.
    pub fn new(what: &str, path: &Path, error: &io::Error, consequence: &str) -> OutputFailure {
        OutputFailure {
            what: what.to_string(),
            path: path.to_path_buf(),
            error: error.to_string(),
            consequence: consequence.to_string(),
            fails_session: true,
        }
    }

    /// The same failure, only a warning (the file is not a result).
    pub fn warning(mut self) -> OutputFailure {
        self.fails_session = false;
        self
    }
}

impl std::fmt::Display for OutputFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let warning = if self.fails_session { "" } else { "warning: " };
        write!(
            f,
            "herd: {warning}could not write {} {}: {}; {}",
            self.what,
            self.path.display(),
            self.error,
            self.consequence
        )
    }
}

/// A file written from the finished session's report, before the summary line is printed.
pub struct ReportFile {
    /// What the file is (`--junit-xml`).
    pub what: String,
    /// The file.
    pub path: PathBuf,
    /// Whether a failure makes the session fail (exit 3) or is a warning.
    pub fails_session: bool,
    /// What a failure means (`no report was written`).
    pub consequence: String,
    /// Writes the file; the error is reported as an [`OutputFailure`].
    pub write: WriteReport,
}

/// Writes one file from the finished report.
pub type WriteReport = Box<dyn FnOnce(&SessionReport) -> io::Result<()> + Send>;

impl ReportFile {
    /// Writes the file, returning the failure if it could not be written.
    pub fn write(self, report: &SessionReport) -> Option<OutputFailure> {
        let error = (self.write)(report).err()?;
        let failure = OutputFailure::new(&self.what, &self.path, &error, &self.consequence);
        Some(if self.fails_session {
            failure
        } else {
            failure.warning()
        })
    }
}

/// A file of whole lines (`--events`): each line is written at once and followed live; after
/// the first failed write the file is cut back to its last whole line and no more is written,
/// so it never holds half a line or a gap.
pub struct LineFile {
    what: String,
    path: PathBuf,
    file: Option<File>,
    written: u64,
    lines: usize,
    failure: Option<OutputFailure>,
}

impl LineFile {
    /// `file`, already created at `path`, as `what` (`--events`).
    pub fn new(what: &str, path: PathBuf, file: File) -> LineFile {
        LineFile {
            what: what.to_string(),
            path,
            file: Some(file),
            written: 0,
            lines: 0,
            failure: None,
        }
    }

    /// Whether lines are still being written.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Appends `line` and a newline.
    pub fn write_line(&mut self, mut line: Vec<u8>) {
        let Some(file) = &mut self.file else { return };
        line.push(b'\n');
        match file.write_all(&line) {
            Ok(()) => {
                self.written += line.len() as u64;
                self.lines += 1;
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Ends the file: everything is on the disk (an error then counts like a failed write).
    /// Returns the failure, if any write failed.
    pub fn close(&mut self) -> Option<OutputFailure> {
        if let Some(file) = self.file.take() {
            if let Err(e) = file.sync_all() {
                self.file = Some(file);
                self.fail(&e);
            }
        }
        self.failure.clone()
    }

    fn fail(&mut self, error: &io::Error) {
        let Some(file) = self.file.take() else { return };
        // Keep only whole lines: a reader then sees a prefix of the events, not a torn line.
        let cut = file.set_len(self.written).is_ok();
        let consequence = match cut {
            true => format!(
                "the file is incomplete: it holds only the first {} lines",
                self.lines
            ),
            false => "the file is incomplete (its last line may be cut)".to_string(),
        };
        tracing::warn!("{}: {error}", self.path.display());
        self.failure = Some(OutputFailure::new(
            &self.what,
            &self.path,
            error,
            &consequence,
        ));
    }
}

/// A worker's log (`--log-dir`): the raw output of every incarnation of one slot. The first
/// failed write is sent to the Reporter as an [`OutputFailure`]; nothing more is written after
/// it, so the log has no gap, only an end.
pub struct WorkerLog {
    path: PathBuf,
    file: Option<File>,
    reporter: Recipient<OutputFailure>,
}

impl WorkerLog {
    /// The log at `path`, created as `file` (or not: `Err` is reported at once).
    pub fn new(
        path: PathBuf,
        file: io::Result<File>,
        reporter: Recipient<OutputFailure>,
    ) -> WorkerLog {
        let mut log = WorkerLog {
            path,
            file: None,
            reporter,
        };
        match file {
            Ok(file) => log.file = Some(file),
            Err(e) => log.fail(&e),
        }
        log
    }

    fn fail(&mut self, error: &io::Error) {
        self.file = None;
        tracing::warn!("worker log {}: {error}", self.path.display());
        self.reporter.do_send(OutputFailure::new(
            "the worker log",
            &self.path,
            error,
            "the file is incomplete",
        ));
    }
}

impl Write for WorkerLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = &mut self.file else {
            // Already reported: the rest is dropped, so the log is a prefix of the output.
            return Ok(buf.len());
        };
        match file.write(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                self.fail(&e);
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_file_that_fails_keeps_its_whole_lines_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let file = File::create(&path).unwrap();
        let mut lines = LineFile::new("--events", path.clone(), file);
        lines.write_line(b"{\"a\":1}".to_vec());
        assert!(lines.is_open());
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let Ok(full) = full else { return };
        let mut broken = LineFile::new("--events", "/dev/full".into(), full);
        broken.write_line(b"{}".to_vec());
        assert!(!broken.is_open());
        let failure = broken.close().expect("the failure is kept");
        assert!(failure.error.contains("os error 28"), "{failure}");
        assert!(
            failure.to_string().starts_with(
                "herd: could not write --events /dev/full: No space left on device (os error 28); \
                 the file is incomplete"
            ),
            "{failure}"
        );
        assert_eq!(lines.close(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
    }

    #[test]
    fn a_warning_says_it_is_one() {
        let e = io::Error::from_raw_os_error(28);
        let failure = OutputFailure::new("the history", Path::new("h.json"), &e, "kept").warning();
        assert!(!failure.fails_session);
        assert!(failure
            .to_string()
            .starts_with("herd: warning: could not write the history h.json: No space left"));
    }
}
