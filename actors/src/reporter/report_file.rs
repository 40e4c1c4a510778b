//! The report file sink: a file written from the finished session's report (`--junit-xml`,
//! the duration history), before the last event; a failure is said before the final line.

use herd_core::events::Stamped;
use herd_core::ledger::Ledger;

use super::Sink;
use crate::output::{OutputFailure, ReportFile};
use crate::report::SessionReport;

/// Writes one [`ReportFile`] when the session is over.
pub struct ReportFileSink {
    file: Option<ReportFile>,
}

impl ReportFileSink {
    /// The sink writing `file`.
    pub fn new(file: ReportFile) -> ReportFileSink {
        ReportFileSink { file: Some(file) }
    }
}

impl Sink for ReportFileSink {
    fn event(&mut self, _: &Stamped, _: &Ledger) {}

    fn finish(&mut self, report: &SessionReport, _: &Ledger) -> Result<(), OutputFailure> {
        match self.file.take().and_then(|file| file.write(report)) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}
