//! A worker process's output: read from its pipes, written to its log, and given to the brain
//! (which keeps its tail for crash reports and, with `-s`, shows it live).

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

    fn handle(&mut self, msg: Output, ctx: &mut Self::Context) {
        if let Some(log) = &mut self.log {
            let _ = log.write_all(&msg.bytes);
        }
        let output = Input::Output {
            incarnation: msg.incarnation,
            bytes: msg.bytes,
        };
        self.input(ctx, output);
    }
}
