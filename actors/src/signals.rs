//! A thread that turns SIGINT, SIGTERM and SIGQUIT into messages for the Supervisor.

use std::io;
use std::thread::JoinHandle;

use actix::Recipient;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::messages::SignalReceived;

/// The signals herd handles itself while a session runs.
pub const HANDLED: [i32; 3] = [SIGINT, SIGTERM, SIGQUIT];

/// Watches signals until dropped.
pub struct SignalWatch {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalWatch {
    /// Starts forwarding [`HANDLED`] signals to `to`.
    pub fn start(to: Recipient<SignalReceived>) -> io::Result<SignalWatch> {
        let mut signals = Signals::new(HANDLED)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("herd-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    tracing::debug!(signal, "signal received");
                    to.do_send(SignalReceived(signal));
                }
            })?;
        Ok(SignalWatch {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
