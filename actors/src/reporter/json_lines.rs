//! The JSON lines sink (`--events FILE`): every event as one JSON line, written at once so
//! tools can follow the file live. The last line is `session_finished`, with the exit code.

use herd_core::events::Stamped;
use herd_core::ledger::Ledger;

use super::Sink;
use crate::output::{LineFile, OutputFailure};

/// Writes every event to a [`LineFile`].
pub struct JsonLines {
    file: LineFile,
}

impl JsonLines {
    /// The sink writing to `file`.
    pub fn new(file: LineFile) -> JsonLines {
        JsonLines { file }
    }
}

impl Sink for JsonLines {
    fn event(&mut self, stamped: &Stamped, _: &Ledger) {
        if !self.file.is_open() {
            return;
        }
        match serde_json::to_vec(stamped) {
            Ok(line) => self.file.write_line(line),
            Err(e) => tracing::error!("an event does not serialize: {e}"),
        }
    }

    fn failed(&self) -> bool {
        !self.file.is_open()
    }

    fn close(&mut self, _: &[OutputFailure]) -> Result<(), OutputFailure> {
        self.file.close().map_or(Ok(()), Err)
    }
}
