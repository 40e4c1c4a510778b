//! A protocol v1 client for workers written in Rust: connect, say hello, exchange messages.
//! herd's own exec worker is built on it; other harnesses can use it to write their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use herd_core::protocol::{
    self, decode_coordinator_message, encode, CollectScope, CoordinatorMessage, WorkerMessage,
    PROTOCOL_VERSION,
};

/// Why a worker could not talk to its coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A `HERD_*` variable is missing or invalid.
    #[error("{0} is not set or invalid: herd sets it for the workers it starts")]
    Environment(&'static str),
    /// ZeroMQ failed.
    #[error("cannot talk to the coordinator at {endpoint}: {source}")]
    Socket {
        /// The endpoint.
        endpoint: String,
        /// ZeroMQ's error.
        #[source]
        source: zmq::Error,
    },
    /// No answer in time.
    #[error("no answer from the coordinator at {0} within {1:?}; is herd still running?")]
    NoAnswer(String, Duration),
    /// The coordinator refused this worker.
    #[error("the coordinator refused this worker: {0}")]
    Refused(String),
    /// The coordinator sent something this client does not understand.
    #[error("unexpected message from the coordinator: {0}")]
    Unexpected(String),
    /// The fingerprint command failed, or a token file could not be read.
    #[error("{0}")]
    Setup(String),
}

/// The coordinator's answer to a replica that joins without naming a slot ([`join`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The slot the replica takes, and what to run there.
    Assigned {
        /// The worker id to say in `hello`.
        worker: String,
        /// The incarnation to say in `hello`.
        incarnation: u32,
        /// The rest of the `herd worker` command line (`--list CMD -- CMD {}`, `-- pytest ..`).
        runner: Vec<String>,
        /// The session's `--fingerprint` command.
        fingerprint: Option<String>,
        /// The slot's appliance.
        appliance: Option<String>,
    },
    /// Every slot is taken: nothing to do (the message says why).
    Full(String),
}

/// Asks the coordinator at `endpoint` for a slot, presenting `token` (and `fingerprint`, when
/// the replica knows the session's fingerprint command): the first step of a replica that does
/// not know its slot (see [`protocol`]'s module docs). It connects as `any.0.<nonce>` and
/// waits up to `timeout` for the answer.
pub fn join(
    endpoint: &str,
    token: &str,
    fingerprint: Option<String>,
    timeout: Duration,
) -> Result<Joined, ClientError> {
    let err = |source| ClientError::Socket {
        endpoint: endpoint.to_string(),
        source,
    };
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).map_err(err)?;
    let identity = protocol::socket_identity(protocol::JOIN_WORKER, 0);
    socket.set_identity(identity.as_bytes()).map_err(err)?;
    socket.set_linger(0).map_err(err)?;
    socket.connect(endpoint).map_err(err)?;
    let join = WorkerMessage::Join {
        protocol: PROTOCOL_VERSION,
        token: token.to_string(),
        fingerprint,
        pid: Some(std::process::id()),
    };
    socket.send(encode(&join), 0).map_err(err)?;
    let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    if socket.poll(zmq::POLLIN, millis).map_err(err)? == 0 {
        return Err(ClientError::NoAnswer(endpoint.to_string(), timeout));
    }
    let frame = socket.recv_bytes(0).map_err(err)?;
    match decode_coordinator_message(&frame).map_err(|e| ClientError::Unexpected(e.to_string()))? {
        CoordinatorMessage::Assigned {
            worker,
            incarnation,
            runner,
            fingerprint,
            appliance,
        } => Ok(Joined::Assigned {
            worker,
            incarnation,
            runner,
            fingerprint,
            appliance,
        }),
        CoordinatorMessage::Full { message } => Ok(Joined::Full(message)),
        CoordinatorMessage::Error { message } if message.contains("unknown variant") => {
            Err(ClientError::Refused(format!(
                "the coordinator does not take workers without --worker (an older herd?):                  {message}"
            )))
        }
        CoordinatorMessage::Error { message } => Err(ClientError::Refused(message)),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

/// Where and who a worker is, as herd tells it through the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEnv {
    /// `HERD_ENDPOINT`.
    pub endpoint: String,
    /// `HERD_TOKEN`.
    pub token: String,
    /// `HERD_WORKER_ID`.
    pub worker: String,
    /// `HERD_INCARNATION` (1 when unset).
    pub incarnation: u32,
    /// `HERD_APPLIANCE`.
    pub appliance: Option<String>,
    /// `HERD_FINGERPRINT_CMD`: a shell command whose output goes into the fingerprint this
    /// worker says in `hello` (run on this host when connecting).
    pub fingerprint_cmd: Option<String>,
}

impl WorkerEnv {
    /// Reads the `HERD_*` variables.
    pub fn from_env() -> Result<WorkerEnv, ClientError> {
        let var =
            |name: &'static str| std::env::var(name).map_err(|_| ClientError::Environment(name));
        let incarnation = match std::env::var(protocol::ENV_INCARNATION) {
            Ok(v) => v
                .parse()
                .map_err(|_| ClientError::Environment(protocol::ENV_INCARNATION))?,
            Err(_) => 1,
        };
        Ok(WorkerEnv {
            endpoint: var(protocol::ENV_ENDPOINT)?,
            token: var(protocol::ENV_TOKEN)?,
            worker: var(protocol::ENV_WORKER_ID)?,
            incarnation,
            appliance: std::env::var(protocol::ENV_APPLIANCE).ok(),
            fingerprint_cmd: std::env::var(protocol::ENV_FINGERPRINT_CMD)
                .ok()
                .filter(|c| !c.trim().is_empty()),
        })
    }

    /// A worker started by hand or by another tool (`herd worker --connect`): the coordinator's
    /// endpoint, the session token read from `token_file` (trimmed), and the slot it fills.
    pub fn remote(
        endpoint: impl Into<String>,
        token_file: &std::path::Path,
        worker: impl Into<String>,
        incarnation: u32,
    ) -> Result<WorkerEnv, ClientError> {
        Ok(WorkerEnv {
            endpoint: endpoint.into(),
            token: read_token_file(token_file).map_err(ClientError::Setup)?,
            worker: worker.into(),
            incarnation,
            appliance: None,
            fingerprint_cmd: None,
        })
    }

    /// The `HERD_*` variables that hand this identity to a worker process.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            (protocol::ENV_ENDPOINT.to_string(), self.endpoint.clone()),
            (protocol::ENV_TOKEN.to_string(), self.token.clone()),
            (protocol::ENV_WORKER_ID.to_string(), self.worker.clone()),
            (
                protocol::ENV_INCARNATION.to_string(),
                self.incarnation.to_string(),
            ),
        ];
        if let Some(appliance) = &self.appliance {
            vars.push((protocol::ENV_APPLIANCE.to_string(), appliance.clone()));
        }
        if let Some(cmd) = &self.fingerprint_cmd {
            vars.push((protocol::ENV_FINGERPRINT_CMD.to_string(), cmd.clone()));
        }
        vars
    }

    /// This worker's fingerprint: herd's version and the output of the fingerprint command, run
    /// here.
    pub fn fingerprint(&self) -> Result<String, ClientError> {
        let output = match &self.fingerprint_cmd {
            Some(cmd) => Some(run_fingerprint_cmd(cmd).map_err(ClientError::Setup)?),
            None => None,
        };
        Ok(protocol::fingerprint(
            env!("CARGO_PKG_VERSION"),
            output.as_deref(),
        ))
    }

    /// This spawn's name, `<worker>.<incarnation>`: the key of its fault requests and the fixed
    /// start of the ZeroMQ identity it connects with, which [`WorkerClient`] completes with a
    /// random nonce of its own (see [`protocol::socket_identity`]).
    pub fn identity(&self) -> String {
        protocol::identity(&self.worker, self.incarnation)
    }
}

/// A connected, welcomed worker. It may be shared between threads (one sends heartbeats while
/// the other runs tests): every socket operation takes a lock.
///
/// A coordinator that becomes unreachable (its process or host gone) is noticed: ZeroMQ
/// heartbeats drop a dead TCP connection after [`ZMTP_HEARTBEAT_TIMEOUT`], and once the
/// connection has been down for the connect timeout, [`WorkerClient::recv`] fails with
/// [`ClientError::NoAnswer`], so a worker on another host does not wait forever.
pub struct WorkerClient {
    socket: Mutex<zmq::Socket>,
    link: Mutex<Link>,
    env: WorkerEnv,
    collect: Option<CollectScope>,
    _context: zmq::Context,
}

/// How long a worker's connection may stay silent at the ZeroMQ level (no traffic, no answer to
/// its pings) before it is dropped and re-made. Longer than the coordinator's default
/// `--heartbeat-timeout`, so a blip the coordinator forgives does not break the connection.
pub const ZMTP_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection to the coordinator as the socket monitor reports it.
struct Link {
    monitor: zmq::Socket,
    down_since: Option<Instant>,
    give_up_after: Duration,
}

impl Link {
    /// Reads the monitor's events; how long the coordinator has been unreachable, once that is
    /// longer than `give_up_after`.
    fn lost_for(&mut self) -> Option<Duration> {
        while let Ok(frames) = self.monitor.recv_multipart(zmq::DONTWAIT) {
            let Some(head) = frames.first().filter(|f| f.len() >= 2) else {
                continue;
            };
            match zmq::SocketEvent::from_raw(u16::from_ne_bytes([head[0], head[1]])) {
                zmq::SocketEvent::DISCONNECTED => {
                    self.down_since.get_or_insert_with(Instant::now);
                }
                zmq::SocketEvent::HANDSHAKE_SUCCEEDED => self.down_since = None,
                _ => {}
            }
        }
        let down = self.down_since?.elapsed();
        (down >= self.give_up_after).then_some(down)
    }
}

impl WorkerClient {
    /// Connects with a fresh identity of this spawn (its name and a random nonce), says hello
    /// and waits up to `timeout` for the welcome.
    pub fn connect(env: WorkerEnv, timeout: Duration) -> Result<WorkerClient, ClientError> {
        WorkerClient::connect_with_heartbeat(env, timeout, None)
    }

    /// As [`WorkerClient::connect`], promising a heartbeat every `heartbeat` (then call
    /// [`WorkerClient::start_heartbeat`]): the coordinator takes a silent worker for hung.
    pub fn connect_with_heartbeat(
        env: WorkerEnv,
        timeout: Duration,
        heartbeat: Option<Duration>,
    ) -> Result<WorkerClient, ClientError> {
        let err = |source| ClientError::Socket {
            endpoint: env.endpoint.clone(),
            source,
        };
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).map_err(err)?;
        socket
            .set_identity(protocol::socket_identity(&env.worker, env.incarnation).as_bytes())
            .map_err(err)?;
        socket.set_linger(2000).map_err(err)?;
        socket.set_sndhwm(0).map_err(err)?;
        socket.set_heartbeat_ivl(1000).map_err(err)?;
        let zmtp_timeout = ZMTP_HEARTBEAT_TIMEOUT.as_millis() as i32;
        socket.set_heartbeat_timeout(zmtp_timeout).map_err(err)?;
        // inproc names are per context, and this context is the client's own.
        let events = zmq::SocketEvent::DISCONNECTED.to_raw() as i32
            | zmq::SocketEvent::HANDSHAKE_SUCCEEDED.to_raw() as i32;
        socket
            .monitor("inproc://herd-client-monitor", events)
            .map_err(err)?;
        let monitor = context.socket(zmq::PAIR).map_err(err)?;
        monitor
            .connect("inproc://herd-client-monitor")
            .map_err(err)?;
        socket.connect(&env.endpoint).map_err(err)?;
        let client = WorkerClient {
            socket: Mutex::new(socket),
            link: Mutex::new(Link {
                monitor,
                down_since: None,
                give_up_after: timeout,
            }),
            env,
            collect: None,
            _context: context,
        };
        client.send(&WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            worker: client.env.worker.clone(),
            incarnation: client.env.incarnation,
            token: client.env.token.clone(),
            pid: Some(std::process::id()),
            heartbeat: heartbeat.map(|h| h.as_secs_f64()),
            fingerprint: Some(client.env.fingerprint()?),
        })?;
        let mut client = client;
        match client.recv(Some(timeout))? {
            Some(CoordinatorMessage::Welcome { collect, .. }) => {
                client.collect = collect;
                Ok(client)
            }
            Some(CoordinatorMessage::Error { message }) => Err(ClientError::Refused(message)),
            Some(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            None => Err(ClientError::NoAnswer(client.env.endpoint.clone(), timeout)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, zmq::Socket> {
        self.socket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the coordinator asked this worker to collect in its `welcome` (`None`: everything).
    pub fn collect_scope(&self) -> Option<&CollectScope> {
        self.collect.as_ref()
    }

    /// Who this worker is.
    pub fn env(&self) -> &WorkerEnv {
        &self.env
    }

    /// Sends one message.
    pub fn send(&self, message: &WorkerMessage) -> Result<(), ClientError> {
        self.send_raw(&encode(message))
    }

    /// Sends several messages in one frame (a batch, handled in order); nothing when empty.
    pub fn send_batch(&self, messages: &[WorkerMessage]) -> Result<(), ClientError> {
        match messages {
            [] => Ok(()),
            [one] => self.send(one),
            many => self.send_raw(&encode(&many)),
        }
    }

    /// Sends a heartbeat every `every` from a thread of its own, until the returned handle is
    /// dropped.
    pub fn start_heartbeat(self: &Arc<Self>, every: Duration) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, flag) = (self.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_millis(50).min(every);
            let mut waited = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                waited += tick;
                if waited >= every {
                    waited = Duration::ZERO;
                    let _ = client.send(&WorkerMessage::Heartbeat);
                }
            }
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    /// Sends one frame as is (fault injection uses this to send garbage).
    pub fn send_raw(&self, frame: &[u8]) -> Result<(), ClientError> {
        self.lock()
            .send(frame, 0)
            .map_err(|source| ClientError::Socket {
                endpoint: self.env.endpoint.clone(),
                source,
            })
    }

    /// Waits up to `timeout` (forever with `None`) for a message; `Ok(None)` on timeout. Fails
    /// with [`ClientError::NoAnswer`] once the coordinator has been unreachable for longer than
    /// the connect timeout.
    pub fn recv(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Option<CoordinatorMessage>, ClientError> {
        let err = |source| ClientError::Socket {
            endpoint: self.env.endpoint.clone(),
            source,
        };
        let lost = self
            .link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .lost_for();
        if let Some(down) = lost {
            return Err(ClientError::NoAnswer(self.env.endpoint.clone(), down));
        }
        let millis = timeout.map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        let socket = self.lock();
        if socket.poll(zmq::POLLIN, millis).map_err(err)? == 0 {
            return Ok(None);
        }
        let frame = socket.recv_bytes(0).map_err(err)?;
        decode_coordinator_message(&frame)
            .map(Some)
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }
}

/// Reads a session token file: its content, trimmed; an empty file is an error.
pub fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_string())
}

/// Runs a `--fingerprint` command (`sh -c`) and returns its output, trimmed; a failure is an
/// error that names the command.
pub fn run_fingerprint_cmd(cmd: &str) -> Result<String, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the fingerprint command `{cmd}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the fingerprint command `{cmd}` failed ({}): {}",
            herd_actors::process::describe_status(&out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A running heartbeat thread; dropping it stops the heartbeats.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
