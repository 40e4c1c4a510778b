//! The Transport: one thread owns the ZeroMQ ROUTER socket.
//!
//! ```text
//!  workers (DEALER) ==tcp/ipc==> ROUTER --decode--> Inbound ------> Supervisor (gate)
//!                                  ^                                      |
//!                                  +-- inproc PULL <-- PUSH <-- Transport actor <-- Outbound
//! ```
//!
//! Frames are decoded on the transport thread, so the actors only ever see typed messages (or
//! the reason a frame was refused). The Transport actor owns the PUSH end and the thread's life.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix::prelude::*;
use herd_core::protocol::{decode_worker_frame, encode, DecodeError, MAX_FRAME_BYTES};

use crate::messages::{Barrier, BarrierReached, Inbound, InboundBatch, Outbound};

/// The first frame of a barrier marker in the outbox (no identity can be empty).
const BARRIER: &[u8] = b"";
/// A wake-up in the outbox (one empty frame): the socket thread looks at `stop` at once instead
/// of at its next poll timeout.
const WAKE: &[u8] = b"";

/// Where the socket thread delivers what it receives.
pub struct Inboxes {
    /// Decoded frames.
    pub frames: Recipient<InboundBatch>,
    /// Barriers; must be the same actor as `frames`, so that order is kept.
    pub barriers: Recipient<BarrierReached>,
}

/// The actor that sends frames to workers and owns the socket thread.
pub struct Transport {
    push: zmq::Socket,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    endpoint: String,
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {endpoint}: {source}")]
pub struct BindError {
    /// The endpoint asked for.
    pub endpoint: String,
    /// ZeroMQ's error.
    #[source]
    pub source: zmq::Error,
}

impl Transport {
    /// Binds a ROUTER on `endpoint` and starts the socket thread, which delivers every inbound
    /// frame to `inbound`.
    pub fn bind(endpoint: &str, inbound: Inboxes) -> Result<Transport, BindError> {
        let err = |source| BindError {
            endpoint: endpoint.to_string(),
            source,
        };
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).map_err(err)?;
        router.set_linger(0).map_err(err)?;
        router.set_router_mandatory(true).map_err(err)?;
        router.set_maxmsgsize(MAX_FRAME_BYTES as i64).map_err(err)?;
        router.set_rcvhwm(0).map_err(err)?;
        router.bind(endpoint).map_err(err)?;
        let bound = router
            .get_last_endpoint()
            .map_err(err)?
            .unwrap_or_else(|raw| String::from_utf8_lossy(&raw).into_owned());

        // inproc names are per context, and this context is the transport's own.
        let outbox = "inproc://herd-outbox";
        let pull = ctx.socket(zmq::PULL).map_err(err)?;
        pull.set_linger(0).map_err(err)?;
        pull.bind(outbox).map_err(err)?;
        let push = ctx.socket(zmq::PUSH).map_err(err)?;
        push.set_linger(0).map_err(err)?;
        push.set_sndhwm(0).map_err(err)?;
        push.connect(outbox).map_err(err)?;

        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("herd-transport".into())
            .spawn(move || pump(router, pull, inbound, flag))
            .map_err(|e| err(zmq::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
        Ok(Transport {
            push,
            stop,
            thread: Some(thread),
            endpoint: bound,
        })
    }

    /// The endpoint actually bound (useful with `tcp://127.0.0.1:0`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = self.push.send(WAKE, zmq::DONTWAIT);
            let _ = thread.join();
        }
    }
}

impl Actor for Transport {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.shut();
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shut();
    }
}

impl Handler<Barrier> for Transport {
    type Result = ();

    fn handle(&mut self, msg: Barrier, _: &mut Self::Context) {
        let frames = [
            BARRIER.to_vec(),
            msg.worker.into_bytes(),
            msg.incarnation.to_string().into_bytes(),
        ];
        if let Err(e) = self.push.send_multipart(frames, 0) {
            tracing::error!("transport outbox refused a barrier: {e}");
        }
    }
}

impl Handler<Outbound> for Transport {
    type Result = ();

    fn handle(&mut self, msg: Outbound, _: &mut Self::Context) {
        let frames = [msg.identity, encode(&msg.message)];
        if let Err(e) = self.push.send_multipart(frames, 0) {
            tracing::error!("transport outbox refused a frame: {e}");
        }
    }
}

/// The endpoint workers are told to connect to: the bound one, with a wildcard host (`*`,
/// `0.0.0.0`, `[::]`) replaced by this machine's host name.
pub fn advertised(bound: &str) -> String {
    let Some(rest) = bound.strip_prefix("tcp://") else {
        return bound.to_string();
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return bound.to_string();
    };
    if !matches!(host, "*" | "0.0.0.0" | "[::]" | "::") {
        return bound.to_string();
    }
    match nix::unistd::gethostname() {
        Ok(name) => format!("tcp://{}:{port}", name.to_string_lossy()),
        Err(_) => bound.to_string(),
    }
}

/// The socket thread: polls the ROUTER and the outbox until `stop` is set.
fn pump(router: zmq::Socket, outbox: zmq::Socket, inbound: Inboxes, stop: Arc<AtomicBool>) {
    let receive_all = || {
        let mut batch = Vec::new();
        while let Ok(frames) = router.recv_multipart(zmq::DONTWAIT) {
            batch.extend(decode_frames(frames));
        }
        if !batch.is_empty() {
            inbound.frames.do_send(InboundBatch(batch));
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            outbox.as_poll_item(zmq::POLLIN),
        ];
        if let Err(e) = zmq::poll(&mut items, 100) {
            tracing::error!("transport poll failed: {e}");
            continue;
        }
        let (from_peers, to_peers) = (items[0].is_readable(), items[1].is_readable());
        if from_peers {
            receive_all();
        }
        if to_peers {
            while let Ok(frames) = outbox.recv_multipart(zmq::DONTWAIT) {
                if let [wake] = frames.as_slice() {
                    if wake.as_slice() == WAKE {
                        continue;
                    }
                }
                if let [marker, worker, incarnation] = frames.as_slice() {
                    if marker.as_slice() == BARRIER {
                        receive_all();
                        let worker = String::from_utf8_lossy(worker).into_owned();
                        let incarnation = String::from_utf8_lossy(incarnation).parse().unwrap_or(0);
                        inbound.barriers.do_send(BarrierReached {
                            worker,
                            incarnation,
                        });
                        continue;
                    }
                }
                if let Err(e) = router.send_multipart(frames, zmq::DONTWAIT) {
                    // The peer is gone (router_mandatory) or its queue is full.
                    tracing::debug!("could not deliver a frame: {e}");
                }
            }
        }
    }
}

/// Turns `[identity, (empty,)* payload]` into one [`Inbound`] per message (a payload may be a
/// batch), or one carrying the reason it does not decode.
fn decode_frames(mut frames: Vec<Vec<u8>>) -> Vec<Inbound> {
    if frames.is_empty() {
        return Vec::new();
    }
    let identity = frames.remove(0);
    while frames.len() > 1 && frames[0].is_empty() {
        frames.remove(0);
    }
    let messages = match frames.as_slice() {
        [payload] => decode_worker_frame(payload),
        [] => Err(DecodeError::Malformed("no payload frame".into())),
        _ => Err(DecodeError::Malformed(format!(
            "{} payload frames, expected 1",
            frames.len()
        ))),
    };
    match messages {
        Ok(messages) => messages
            .into_iter()
            .map(|m| Inbound {
                identity: identity.clone(),
                message: Ok(m),
            })
            .collect(),
        Err(e) => vec![Inbound {
            identity,
            message: Err(e),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::protocol::WorkerMessage;

    #[test]
    fn wildcard_hosts_are_advertised_by_name() {
        assert_eq!(advertised("ipc:///tmp/x.sock"), "ipc:///tmp/x.sock");
        assert_eq!(advertised("tcp://10.1.2.3:5555"), "tcp://10.1.2.3:5555");
        let name = nix::unistd::gethostname().unwrap();
        assert_eq!(
            advertised("tcp://0.0.0.0:5555"),
            format!("tcp://{}:5555", name.to_string_lossy())
        );
    }

    #[test]
    fn frames_decode_with_or_without_a_delimiter() {
        let ok = decode_frames(vec![b"w1.1".to_vec(), br#"{"type":"need_tests"}"#.to_vec()]);
        assert_eq!(ok[0].identity, b"w1.1");
        assert_eq!(ok[0].message, Ok(WorkerMessage::NeedTests));
        let req = decode_frames(vec![
            b"x".to_vec(),
            vec![],
            br#"{"type":"shutdown"}"#.to_vec(),
        ]);
        assert_eq!(req[0].message, Ok(WorkerMessage::Shutdown));
        let batch = br#"[{"type":"need_tests"},{"type":"shutdown"}]"#.to_vec();
        let both = decode_frames(vec![b"x".to_vec(), batch]);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].message, Ok(WorkerMessage::Shutdown));
        let bad = decode_frames(vec![b"x".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert!(bad[0].message.is_err());
        assert!(decode_frames(vec![b"x".to_vec()])[0].message.is_err());
        assert!(decode_frames(vec![]).is_empty());
    }
}
