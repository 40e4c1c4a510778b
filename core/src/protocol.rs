//! Protocol v1: JSON messages over ZeroMQ between the coordinator and its workers.
//!
//! ```text
//!   coordinator (ROUTER, binds)                worker (DEALER, connects)
//!        |  <-- hello {protocol, worker, incarnation, token, pid, heartbeat, fingerprint}
//!        |  --> welcome {worker, incarnation, collect?}  (or error {message}, then nothing)
//!        |  <-- collection {tests, files?, scope?} (checked against the reference)
//!        |  <-- heartbeat                          (every few seconds, if hello promised it)
//!        |  <-- need_tests
//!        |  --> tests {tests: [...]}               (an empty list: no more work)
//!        |  <-- file_collection {file, tests}      (a file collected late; checked first)
//!        |  --> file_accepted {file}               (its tests may run)
//!        |  <-- test_started {test}
//!        |  <-- report {test, when: setup|call|teardown, outcome, ...}   (teardown ends a test)
//!        |  <-- need_tests                         (sent before the last test of a group runs)
//!        |  --> release {tests}                    (work stealing: give back unstarted tests)
//!        |  <-- released {tests}                   (those it removed from its queue)
//!        |  ...
//!        |  --> stop                               (finish the running test, start no other)
//!        |  <-- workeroutput {output}              (pytest's config.workeroutput, optional)
//!        |  <-- leaving {tests}                    (or, on its own: it gives back its unstarted
//!        |                                          tests, finishes the running one, leaves)
//!        |  <-- shutdown                           (then the process exits)
//! ```
//!
//! **Joining without a slot** (elastic sessions: N identical replicas of a Kubernetes Job, a
//! Slurm job array, a CI matrix). A replica does not know which slot it is; it first asks:
//!
//! ```text
//!   joiner (DEALER, identity any.0.<nonce>)     coordinator
//!        |  <-- join {protocol, token, fingerprint, pid}
//!        |  --> assigned {worker, incarnation, runner, fingerprint?, appliance?}
//!        |      (or full {message}: every slot is taken; or error {message})
//!   then, as that slot, a new connection with identity <worker>.<incarnation>.<nonce> and the
//!   usual hello (the token checked again).
//! ```
//!
//! * `join` is checked like a `hello` (version, token, fingerprint) **before** anything is
//!   assigned: an unauthenticated peer gets an `error` and nothing else. Its identity must be
//!   [`JOIN_WORKER`]`.0.<nonce>` ([`check_identity`] with incarnation 0).
//! * `assigned` reserves a slot awaiting a worker (or a new one, up to the session's maximum)
//!   for the start timeout, and says what to run there: `runner` is the rest of the `herd
//!   worker` command line (`--list CMD -- CMD {}`, or `-- pytest ARGS`), so a replica needs
//!   only the endpoint and the token.
//! * `leaving` is a worker's clean goodbye (it got SIGTERM): its unstarted tests go back to
//!   the queue at once, the running test finishes, then `shutdown`. Tests that arrive
//!   afterwards are given back with another `leaving`.
//! * **Compatibility.** These are additions to protocol v1 ([`PROTOCOL_VERSION`] stays 1): a
//!   worker that names its slot works as before, with any coordinator of v1. A coordinator that
//!   predates them answers `join` with an `error` (an unknown message type), which the joiner
//!   reports as "the coordinator does not take workers without --worker".
//!
//! * Every frame is one JSON object with a `type` field. A ROUTER sees `[identity, payload]`; a
//!   REQ-style empty delimiter frame before the payload is tolerated.
//! * The worker's ZeroMQ identity is `<worker>.<incarnation>.<nonce>` (see [`socket_identity`]):
//!   unique per spawn, so a respawned worker is never confused with its predecessor, and with a
//!   random part the worker draws itself, so nobody can connect first under the identity a
//!   worker will use and lock it out. The coordinator binds an identity to a spawn only once that
//!   spawn's `hello` has passed the token, version and fingerprint checks ([`check_identity`]);
//!   an identity that never authenticated holds nothing.
//! * The first message must be `hello` with [`PROTOCOL_VERSION`] and the session token from
//!   `HERD_TOKEN`. Anything from an identity that has not said a valid hello is answered with an
//!   `error` and otherwise ignored. Frames larger than [`MAX_FRAME_BYTES`] are refused.
//! * Messages are asynchronous: there is no acknowledgement per event; a worker only waits for
//!   `welcome` and for `tests`. A worker may send several messages in one frame as a JSON
//!   array (a batch), handled in order. A worker may hold `test_started` and passing reports
//!   back for a batch (herd's pytest worker sends at most one batch every 25 ms; a failure at
//!   once): which test a worker that died was running comes from its status file
//!   ([`ENV_STATUS_FILE`]), and a test whose reports never came runs again.
//! * A worker learns everything from its environment: [`ENV_ENDPOINT`], [`ENV_TOKEN`],
//!   [`ENV_WORKER_ID`], [`ENV_INCARNATION`], [`ENV_STATUS_FILE`] and, when it owns one,
//!   [`ENV_APPLIANCE`].

mod runner_form;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::collection::CollectScope;
use crate::outcome::{Phase, PhaseOutcome};
use crate::TestId;
pub use runner_form::RunnerForm;

/// The protocol version a worker must announce in its `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame the coordinator accepts (also enforced on the socket).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Environment variable holding the ZeroMQ endpoint a worker connects to.
pub const ENV_ENDPOINT: &str = "HERD_ENDPOINT";
/// Environment variable holding the session token a worker presents in `hello`.
pub const ENV_TOKEN: &str = "HERD_TOKEN";
/// Environment variable holding the worker's id (`w1`, `w2`, ...), stable across respawns.
pub const ENV_WORKER_ID: &str = "HERD_WORKER_ID";
/// Environment variable holding the spawn number of this worker process (1 for the first spawn).
pub const ENV_INCARNATION: &str = "HERD_INCARNATION";
/// Environment variable holding the appliance the worker owns, when it owns one.
pub const ENV_APPLIANCE: &str = "HERD_APPLIANCE";
/// Environment variable naming a file in which the worker writes the id of each test as it
/// starts it, as the file's first line (overwriting the previous one; what follows the first
/// newline is ignored), before running any of the test's code. A plain
/// file write survives the process's sudden death where queued messages do not, so herd always
/// knows which test a crashed worker was running. Optional for a worker, but without it a crash
/// is blamed on the first unconfirmed test of its queue.
pub const ENV_STATUS_FILE: &str = "HERD_STATUS_FILE";

/// Environment variable holding a shell command whose output goes into the worker's fingerprint
/// (`git rev-parse HEAD`); the worker runs it on its own host (see [`fingerprint`]).
pub const ENV_FINGERPRINT_CMD: &str = "HERD_FINGERPRINT_CMD";
/// Environment variable holding the version of the herd that set up a worker which cannot know
/// it otherwise (the pytest plugin), for its fingerprint.
pub const ENV_VERSION: &str = "HERD_VERSION";

/// A message from a worker to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The first message of every worker process.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The worker id from `HERD_WORKER_ID`.
        worker: String,
        /// The spawn number from `HERD_INCARNATION`.
        incarnation: u32,
        /// The session token from `HERD_TOKEN`.
        token: String,
        /// The worker's process id, for logs.
        #[serde(default)]
        pid: Option<u32>,
        /// Seconds between the `heartbeat`s the worker promises to send, even while a test runs;
        /// a worker that then falls silent is taken for hung. `None`: no heartbeats.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat: Option<f64>,
        /// What code the worker runs, computed on its own host (see [`fingerprint`]); a worker
        /// whose fingerprint differs from the coordinator's is refused. `None`: not said (older
        /// workers), accepted unless the session asks for `--fingerprint`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// "Still alive" (see `heartbeat` in `hello`); nothing else.
    Heartbeat,
    /// The ids the worker collected, in its own order.
    Collection {
        /// Collected test ids.
        tests: Vec<TestId>,
        /// Collectors that failed (a module that does not import, ...).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<CollectionError>,
        /// Tests that must run together on one worker, in order: test id -> group name (pytest's
        /// `@pytest.mark.herd_group("name")`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        herd_groups: BTreeMap<TestId, String>,
        /// Every test file of the walk, in order, when the worker collected only part of them
        /// (the `collect` scope of its `welcome`); absent for a whole collection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files: Option<Vec<String>>,
        /// The scope the worker collected (absent: everything).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<CollectScope>,
        /// With the `digest` scope: the [`crate::collection::digest`] of the collection, sent
        /// instead of its ids (`tests` is then empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// Tests the runner collected but left out (pytest's `-k`/`-m`/`--deselect`: its
        /// `pytest_deselected`), counted in the summary as pytest counts them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deselected: Vec<TestId>,
    },
    /// The tests of one more file, collected when tests of it were dealt to a worker that had
    /// not collected it (sent before any of them starts).
    FileCollection {
        /// The file, as the walk lists it.
        file: String,
        /// Its collected ids, in order.
        tests: Vec<TestId>,
        /// Failed collectors.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<CollectionError>,
    },
    /// A request for the next group of tests.
    NeedTests,
    /// A test is about to run its setup.
    TestStarted {
        /// The test's id.
        test: TestId,
    },
    /// One phase of a test finished; the `teardown` report ends the test. (Decoded by
    /// [`decode_worker_frame`] itself, without serde's buffering: its [`RunnerForm`] stays text.)
    #[serde(skip_deserializing)]
    Report(PhaseReport),
    /// A line for the user, printed with the worker's id.
    Message {
        /// The text to print.
        text: String,
    },
    /// A warning the test run recorded (pytest's `pytest_warning_recorded`); counted and listed
    /// in the summary like pytest's "warnings summary".
    Warning {
        /// The warning as text (`path:line: Category: message`).
        text: String,
        /// The test that raised it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<TestId>,
        /// When it was raised (pytest: `config`, `collect` or `runtest`). Warnings raised
        /// outside tests are raised by every worker alike and counted once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<String>,
    },
    /// The test session asked to end (pytest.exit(), KeyboardInterrupt in the worker): the
    /// coordinator stops dealing out tests and ends the session as interrupted.
    SessionExit {
        /// Why.
        reason: String,
    },
    /// The worker hit an error it cannot recover from; it is killed and respawned.
    InternalError {
        /// What went wrong.
        message: String,
    },
    /// The answer to `release`: the tests the worker removed from its queue and will not run
    /// (those it had not started); the coordinator deals them to another worker.
    Released {
        /// The tests given back, in order (possibly none).
        tests: Vec<TestId>,
    },
    /// What the worker returns to the runner's controller as it finishes, sent just before
    /// `shutdown` (pytest: `config.workeroutput`, which xdist's `pytest_testnodedown` plugins
    /// read). Opaque to herd; one per worker process.
    #[serde(rename = "workeroutput")]
    WorkerOutput {
        /// The output, as the worker gave it.
        output: serde_json::Value,
    },
    /// The worker finished its work and is about to exit.
    Shutdown,
    /// A replica that does not know its slot asks for one (see the module docs); answered with
    /// `assigned`, `full` or `error`.
    Join {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The session token.
        token: String,
        /// The joiner's fingerprint (see [`fingerprint`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// The joiner's process id, for logs.
        #[serde(default)]
        pid: Option<u32>,
    },
    /// The worker leaves early (it was asked to by its host: SIGTERM): these unstarted tests
    /// are given back, the running test (if any) finishes, then `shutdown` follows.
    Leaving {
        /// The tests given back, in order (possibly none).
        tests: Vec<TestId>,
    },
}

impl WorkerMessage {
    /// A whole collection: `tests` in order, no errors, no `herd_group` marks.
    pub fn collection(tests: Vec<TestId>) -> WorkerMessage {
        WorkerMessage::Collection {
            tests,
            errors: Vec::new(),
            herd_groups: BTreeMap::new(),
            files: None,
            scope: None,
            digest: None,
            deselected: Vec::new(),
        }
    }
}

/// The report of one phase of one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// The test's id.
    pub test: TestId,
    /// Which phase this reports.
    pub when: Phase,
    /// How the phase ended.
    pub outcome: PhaseOutcome,
    /// Seconds the phase took.
    #[serde(default)]
    pub duration: f64,
    /// The long failure text (a traceback, the test's output), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longrepr: Option<String>,
    /// A one-line summary of the failure or skip reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Captured output sections as `(title, text)` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<(String, String)>,
    /// Set when the test was expected to fail (pytest's `wasxfail`), with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasxfail: Option<String>,
    /// The report's category as the runner counts it in its summary (pytest's
    /// `pytest_report_teststatus` category: `passed`, `failed`, `error`, `xfailed`,
    /// `subtests passed`, or empty for a passing setup or teardown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Properties the test recorded (pytest's `record_property`), as `(name, value)` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, serde_json::Value)>,
    /// Set on the report of a subtest (its description); a test may report several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtest: Option<String>,
    /// Set on the teardown that ends a round which is run again (pytest-rerunfailures): the
    /// test goes on, and only its last round decides its outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub intermediate: bool,
    /// The runner's own serialized form of this report (pytest's
    /// `pytest_report_to_serializable`), sent only when a controller takes it (the pytest
    /// controller): opaque to herd, forwarded as it is, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytest: Option<RunnerForm>,
}

impl PhaseReport {
    /// The report of a phase with nothing more to say than how it ended and how long it took.
    pub fn new(
        test: impl Into<TestId>,
        when: Phase,
        outcome: PhaseOutcome,
        duration: f64,
    ) -> PhaseReport {
        PhaseReport {
            test: test.into(),
            when,
            outcome,
            duration,
            longrepr: None,
            message: None,
            sections: Vec::new(),
            wasxfail: None,
            category: None,
            user_properties: Vec::new(),
            subtest: None,
            intermediate: false,
            pytest: None,
        }
    }
}

/// A collector that failed, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionError {
    /// The collector's id (for pytest, the module's node id).
    pub nodeid: String,
    /// The error text.
    #[serde(default)]
    pub longrepr: String,
}

/// A message from the coordinator to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    /// The worker's `hello` was accepted.
    Welcome {
        /// The worker id the coordinator knows it by.
        worker: String,
        /// The incarnation that was accepted.
        incarnation: u32,
        /// What to collect before reporting the collection (absent: everything).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collect: Option<CollectScope>,
    },
    /// The next group of tests; an empty list means there is no more work.
    Tests {
        /// Test ids to run, in order.
        tests: Vec<TestId>,
    },
    /// The digest in `collection` differs from the reference's: send the collection again with
    /// its ids, so the difference can be shown.
    CollectionNeeded,
    /// The answer to `file_collection` when the file matches the reference: its tests may run.
    /// (When it does not match, the worker is stopped instead.)
    FileAccepted {
        /// The file.
        file: String,
    },
    /// Work stealing: give back those of these tests that have not started (they are at the
    /// end of the worker's queue); the worker answers `released`.
    Release {
        /// Tests the coordinator asks back.
        tests: Vec<TestId>,
    },
    /// Finish the running test, start no other, send `shutdown` and exit.
    Stop,
    /// The answer to `join`: the slot reserved for the joiner, and what to run there.
    Assigned {
        /// The worker id to say in `hello`.
        worker: String,
        /// The incarnation to say in `hello`.
        incarnation: u32,
        /// The rest of the `herd worker` command line: `--list CMD -- CMD {}` (exec runner)
        /// or `-- pytest ARGS` (a worker command).
        runner: Vec<String>,
        /// The session's `--fingerprint` command, to run on the joiner's host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// The appliance the slot owns, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        appliance: Option<String>,
    },
    /// The answer to `join` when every slot is taken and no new one may be made: the joiner
    /// has nothing to do and exits (successfully).
    Full {
        /// Why, for the joiner to print.
        message: String,
    },
    /// The coordinator refused a message; the worker should exit.
    Error {
        /// Why.
        message: String,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    /// The frame is not a valid protocol message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Decodes one frame sent by a worker.
pub fn decode_worker_message(frame: &[u8]) -> Result<WorkerMessage, DecodeError> {
    decode(frame, worker_message)
}

/// Decodes one frame sent by a worker that may be a batch: a JSON array of messages, in order
/// (a worker sends a test's reports and the next test's start in one frame).
pub fn decode_worker_frame(frame: &[u8]) -> Result<Vec<WorkerMessage>, DecodeError> {
    match frame.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => decode(frame, |batch| {
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(batch)?;
            items
                .iter()
                .map(|item| worker_message(item.get().as_bytes()))
                .collect()
        }),
        _ => decode(frame, worker_message).map(|m| vec![m]),
    }
}

/// One worker message: a `report` (nearly every message) straight into its struct, anything
/// else through the tagged enum (serde buffers those; a report's [`RunnerForm`] must not be).
fn worker_message(bytes: &[u8]) -> serde_json::Result<WorkerMessage> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let Kind { kind } = serde_json::from_slice(bytes)?;
    if kind == "report" {
        serde_json::from_slice(bytes).map(WorkerMessage::Report)
    } else {
        serde_json::from_slice(bytes)
    }
}

/// Decodes one frame sent by the coordinator.
pub fn decode_coordinator_message(frame: &[u8]) -> Result<CoordinatorMessage, DecodeError> {
    decode(frame, |bytes| serde_json::from_slice(bytes))
}

fn decode<T>(
    frame: &[u8],
    parse: impl Fn(&[u8]) -> serde_json::Result<T>,
) -> Result<T, DecodeError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge(frame.len()));
    }
    parse(frame)
        .or_else(|e| {
            // Strings JSON cannot carry (a lone surrogate, bytes that are not UTF-8) are made
            // visible text: a report is never dropped for its text.
            let repaired = crate::text::repair_frame(frame).ok_or(e)?;
            parse(&repaired)
        })
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail.
    serde_json::to_vec(message).expect("protocol messages always serialize")
}

/// The name of one spawn of a worker, `<worker>.<incarnation>` (`w3.2`): how herd names the
/// spawn in messages, status files and fault plans, and the fixed start of its ZeroMQ identity
/// (see [`socket_identity`]). Being predictable, it is never the whole identity.
pub fn identity(worker: &str, incarnation: u32) -> String {
    format!("{worker}.{incarnation}")
}

/// The worker name in the identity of a replica that asks for a slot (`any.0.<nonce>`).
pub const JOIN_WORKER: &str = "any";

/// How many random hex digits [`socket_identity`] appends; [`check_identity`] accepts between
/// [`MIN_NONCE_HEX`] and this many.
pub const NONCE_HEX: usize = 32;
/// The fewest random hex digits an identity must end with.
pub const MIN_NONCE_HEX: usize = 16;

/// A fresh ZeroMQ identity for one spawn, chosen by the worker itself when it connects:
/// `<worker>.<incarnation>.<nonce>`, the nonce 128 random bits from the operating system as
/// hex (`w3.2.9f0c...`). Nobody can know it before the worker connects, so nobody can take it
/// first: a ROUTER refuses a second peer with an identity in use.
pub fn socket_identity(worker: &str, incarnation: u32) -> String {
    let mut bytes = [0u8; NONCE_HEX / 2];
    getrandom::getrandom(&mut bytes).expect("the operating system provides randomness");
    let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.{nonce}", identity(worker, incarnation))
}

/// Checks that a ZeroMQ identity belongs to the spawn a `hello` names: `<worker>.<incarnation>`
/// followed by `.` and a nonce of [`MIN_NONCE_HEX`] to [`NONCE_HEX`] lowercase hex digits.
pub fn check_identity(presented: &[u8], worker: &str, incarnation: u32) -> Result<(), String> {
    let name = identity(worker, incarnation);
    let nonce = presented
        .strip_prefix(name.as_bytes())
        .and_then(|rest| rest.strip_prefix(b"."));
    let Some(nonce) = nonce else {
        return Err(format!(
            "the identity does not start with {name}. (expected {name}.<nonce>)"
        ));
    };
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if !(MIN_NONCE_HEX..=NONCE_HEX).contains(&nonce.len()) || !nonce.iter().all(hex) {
        return Err(format!(
            "the identity must end with {MIN_NONCE_HEX} to {NONCE_HEX} random lowercase hex \
             digits chosen by the worker (expected {name}.<nonce>)"
        ));
    }
    Ok(())
}

/// A per-session secret that every worker must present in its `hello`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A fresh random token (128 bits from the operating system, as hex).
    pub fn generate() -> Token {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the operating system provides randomness");
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A token with a known value (for a token file shared with remote workers).
    pub fn from_secret(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The token's text, to hand to a worker.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares a presented token in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == presented.len() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

/// A fingerprint: `herd <version>`, then the output of the `--fingerprint` command (trimmed), if
/// any, after ` | `. Coordinator and worker each compute their own on their own host.
pub fn fingerprint(herd_version: &str, command_output: Option<&str>) -> String {
    match command_output.map(str::trim) {
        Some(out) => format!("herd {herd_version} | {out}"),
        None => format!("herd {herd_version}"),
    }
}

/// Checks a worker's fingerprint against the coordinator's. A worker that says none passes unless
/// `required` (the session has a `--fingerprint` command).
pub fn check_fingerprint(
    worker: Option<&str>,
    coordinator: &str,
    required: bool,
) -> Result<(), String> {
    match worker {
        Some(theirs) if theirs == coordinator => Ok(()),
        Some(theirs) => Err(format!(
            "fingerprint mismatch: the worker runs {theirs:?}, the coordinator {coordinator:?} \
             (same herd version and --fingerprint output needed everywhere)"
        )),
        None if required => Err(format!(
            "the worker sent no fingerprint; the coordinator requires {coordinator:?}"
        )),
        None => Ok(()),
    }
}

/// Checks a `hello` against the session's token and protocol version.
pub fn check_hello(protocol: u32, token: &str, session_token: &Token) -> Result<(), String> {
    if protocol != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {protocol} is not supported (this coordinator speaks {PROTOCOL_VERSION})"
        ));
    }
    if !session_token.matches(token) {
        return Err("wrong session token".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
