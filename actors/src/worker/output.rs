//! A worker process's output: to its log, the tail kept for crash reports, and, with
//! capturing off (pytest's `-s`), shown live a line at a time.

use super::*;

/// Output of a worker process (stdout or stderr).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Output {
    incarnation: u32,
    bytes: Vec<u8>,
}

/// Copies a child's output stream to its Worker actor until EOF.
pub(super) async fn forward_output(
    mut stream: impl AsyncRead + Unpin,
    to: Addr<Worker>,
    incarnation: u32,
) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        to.do_send(Output {
            incarnation,
            bytes: buf[..n].to_vec(),
        });
    }
}

impl Handler<Output> for Worker {
    type Result = ();

    fn handle(&mut self, msg: Output, _: &mut Self::Context) {
        if let Some(log) = &mut self.inc.log {
            let _ = log.write_all(&msg.bytes);
        }
        if msg.incarnation == self.incarnation {
            self.inc.tail.extend_from_slice(&msg.bytes);
            if self.inc.tail.len() > 2 * TAIL_BYTES {
                self.inc.tail.drain(..self.inc.tail.len() - TAIL_BYTES);
            }
            if self.settings.live_output {
                self.show_live(&msg.bytes);
            }
        }
    }
}

impl Worker {
    /// Live output (`-s`): each complete line goes to the Reporter as a worker message, shown
    /// with the worker's id; a very long line is shown in pieces.
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

    fn publish_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.publish(Event::WorkerMessage {
            worker: self.id(),
            text: text.trim_end_matches('\r').to_string(),
        });
    }

    /// The last line of live output, if it did not end with a newline.
    pub(super) fn flush_live(&mut self) {
        if !self.inc.partial_line.is_empty() {
            let piece = std::mem::take(&mut self.inc.partial_line);
            self.publish_line(&piece);
        }
    }
}
