//! The loop every Rust worker needs, written once: connect and say hello, send the collection,
//! run what the coordinator deals out, and keep the conversation going meanwhile. The caller
//! gives the collection and how to run one test; herd's exec worker (`herd worker`) and the
//! custom-runner example are built on it.
//!
//! ```no_run
//! use std::time::Duration;
//! use herd::client::WorkerEnv;
//! use herd::core::outcome::{Phase, PhaseOutcome};
//! use herd::core::protocol::PhaseReport;
//! use herd::worker_loop::WorkerLoop;
//!
//! let env = WorkerEnv::from_env()?;
//! let worker = WorkerLoop::connect(env, Duration::from_secs(10), None)?;
//! worker.run(vec!["t::one".into(), "t::two".into()], |test| {
//!     vec![PhaseReport::new(test, Phase::Teardown, PhaseOutcome::Passed, 0.0)]
//! })?;
//! # Ok::<(), herd::client::ClientError>(())
//! ```
//!
//! What the loop does for the caller (the decisions are [`Conversation`]'s, a plain value):
//! - asks for the next group as the last test it holds starts, so the group is there when the
//!   test ends;
//! - answers `release` (work stealing) with `released`, also while a test runs (the test runs on
//!   a thread of its own unless [`WorkerLoop::inline`]);
//! - honours `stop` (the running test finishes, no other starts, `shutdown` goes) and `error`
//!   (the loop returns [`ClientError::Refused`]);
//! - writes each test's id to the file `HERD_STATUS_FILE` names as it starts, sends
//!   `test_started`, then the reports with the next frame;
//! - sends heartbeats when [`WorkerLoop::connect`] is given an interval;
//! - leaves early when asked to ([`WorkerLoop::leave_when`]: its host's SIGTERM), giving back
//!   its unstarted tests;
//! - carries out the [`Faults`] it is given (`HERD_WORKER_FAULT`), for tests of herd itself.

mod conversation;
mod faults;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use herd_core::protocol::PhaseReport;
use herd_core::TestId;

pub use conversation::{Answer, Conversation, Step};
pub use faults::{Faults, Strike, ENV_WORKER_FAULT};

use crate::client::{ClientError, Heartbeat, WorkerClient, WorkerEnv};

/// How often a worker running a test looks for messages (a `release` is answered this fast).
const ANSWER_TICK: Duration = Duration::from_millis(5);
/// How long a worker with nothing to run waits for a message before it looks again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// A connected, welcomed worker, ready to run a collection (see the module docs).
pub struct WorkerLoop {
    client: Arc<WorkerClient>,
    heartbeat: Option<Heartbeat>,
    faults: Faults,
    inline: bool,
    leave: Option<Arc<AtomicBool>>,
}

impl WorkerLoop {
    /// Connects as `env` says, says hello and waits up to `timeout` for the welcome; with
    /// `heartbeat`, promises one that often and sends them from a thread of its own.
    pub fn connect(
        env: WorkerEnv,
        timeout: Duration,
        heartbeat: Option<Duration>,
    ) -> Result<WorkerLoop, ClientError> {
        let client = Arc::new(WorkerClient::connect_with_heartbeat(
            env, timeout, heartbeat,
        )?);
        let heartbeat = heartbeat.map(|every| client.start_heartbeat(every));
        Ok(WorkerLoop {
            client,
            heartbeat,
            faults: Faults::default(),
            inline: false,
            leave: None,
        })
    }

    /// The client, to send what the loop does not (an `internal_error` when collecting fails).
    pub fn client(&self) -> &WorkerClient {
        &self.client
    }

    /// Carries out `faults` (see [`Faults`]): for tests of herd itself.
    pub fn with_faults(mut self, faults: Faults) -> WorkerLoop {
        self.faults = faults;
        self
    }

    /// Leaves early once `flag` is set (by a SIGTERM handler): the unstarted tests are given
    /// back (`leaving`), the running test finishes, then `shutdown` (see
    /// [`Conversation::leave`]).
    pub fn leave_when(mut self, flag: Arc<AtomicBool>) -> WorkerLoop {
        self.leave = Some(flag);
        self
    }

    /// Runs each test on the loop's own thread: messages are read between tests only, so a
    /// `release` waits for the running test. For tests that take no time (`herd worker --noop`).
    pub fn inline(mut self) -> WorkerLoop {
        self.inline = true;
        self
    }

    /// Reports `collection`, then runs each test dealt out with `run` (which returns the test's
    /// phase reports, the last one its teardown) until the coordinator has no more work or says
    /// stop; `Ok` once `shutdown` is sent.
    pub fn run<F>(mut self, mut collection: Vec<TestId>, run: F) -> Result<(), ClientError>
    where
        F: FnMut(&TestId) -> Vec<PhaseReport> + Send + 'static,
    {
        collection.extend(self.faults.extra_test.clone());
        let mut tests = if self.inline {
            TestRunner::Here(run)
        } else {
            TestRunner::aside(run)
        };
        let (mut conversation, opening) =
            Conversation::open(collection, self.client.collect_scope());
        for message in &opening {
            self.client.send(message)?;
        }
        let status = StatusFile::from_env();
        let mut done = 0usize;
        loop {
            // Take everything that has arrived; wait only when there is nothing to run.
            self.take_arrived(&mut conversation)?;
            let test = match conversation.next_step() {
                Step::Start { test, frame } => {
                    status.starting(&test);
                    self.client.send_batch(&frame)?;
                    test
                }
                Step::Wait { frame } => {
                    self.client.send_batch(&frame)?;
                    if let Some(message) = self.client.recv(Some(IDLE_WAIT))? {
                        self.answer(conversation.take(message))?;
                    }
                    continue;
                }
                Step::Finish { frame } => return self.client.send_batch(&frame),
            };
            if self.faults.exits_as_test_starts(done) {
                // Close the socket first (its linger delivers what was sent), then vanish.
                drop(self.heartbeat.take());
                drop(self);
                std::process::exit(0);
            }
            let reports = tests.run(
                &test,
                |waiting| self.take_arrived(waiting),
                &mut conversation,
            )?;
            conversation.finished(reports);
            done += 1;
            if let Some(strike) = self.faults.after_tests(done) {
                self.strike(strike, &mut conversation)?;
            }
        }
    }

    /// Takes every message that has arrived, answering each.
    fn take_arrived(&self, conversation: &mut Conversation) -> Result<(), ClientError> {
        if self
            .leave
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            self.client.send_batch(&conversation.leave())?;
        }
        while let Some(message) = self.client.recv(Some(Duration::ZERO))? {
            self.answer(conversation.take(message))?;
        }
        Ok(())
    }

    fn answer(&self, answer: Answer) -> Result<(), ClientError> {
        match answer {
            Answer::Nothing => Ok(()),
            Answer::Send(frame) => self.client.send_batch(&frame),
            Answer::Refused(message) => Err(ClientError::Refused(message)),
        }
    }

    /// Misbehaves on purpose after a test (the fault hooks).
    fn strike(
        &mut self,
        strike: Strike,
        conversation: &mut Conversation,
    ) -> Result<(), ClientError> {
        self.client.send_batch(&conversation.take_outbox())?;
        match strike {
            Strike::Garbage => self.client.send_raw(b"{this is not json"),
            Strike::Wedge => {
                // Hang for good, silently: no heartbeat, no progress.
                drop(self.heartbeat.take());
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }
}

/// Where the caller's `run` runs.
enum TestRunner<F> {
    /// On the loop's thread.
    Here(F),
    /// On a thread of its own, fed one test at a time, while the loop takes messages.
    Aside {
        tests: mpsc::Sender<TestId>,
        reports: mpsc::Receiver<Vec<PhaseReport>>,
    },
}

impl<F> TestRunner<F>
where
    F: FnMut(&TestId) -> Vec<PhaseReport> + Send + 'static,
{
    fn aside(mut run: F) -> TestRunner<F> {
        let (tests, todo) = mpsc::channel::<TestId>();
        let (done, reports) = mpsc::channel();
        std::thread::Builder::new()
            .name("herd-test-runner".into())
            .spawn(move || {
                for test in todo {
                    if done.send(run(&test)).is_err() {
                        break;
                    }
                }
            })
            .expect("a thread for the tests");
        TestRunner::Aside { tests, reports }
    }

    /// Runs `test`; while it runs aside, `meanwhile` takes the coordinator's messages.
    fn run(
        &mut self,
        test: &TestId,
        mut meanwhile: impl FnMut(&mut Conversation) -> Result<(), ClientError>,
        conversation: &mut Conversation,
    ) -> Result<Vec<PhaseReport>, ClientError> {
        let (tests, reports) = match self {
            TestRunner::Here(run) => return Ok(run(test)),
            TestRunner::Aside { tests, reports } => (tests, reports),
        };
        let panicked = || ClientError::Unexpected(format!("the runner of {test} panicked"));
        tests.send(test.clone()).map_err(|_| panicked())?;
        loop {
            match reports.recv_timeout(ANSWER_TICK) {
                Ok(reports) => return Ok(reports),
                Err(mpsc::RecvTimeoutError::Timeout) => meanwhile(conversation)?,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(panicked()),
            }
        }
    }
}

/// The file named by `HERD_STATUS_FILE`, holding the id of the test being started.
struct StatusFile(Option<std::fs::File>);

impl StatusFile {
    fn from_env() -> StatusFile {
        let path = std::env::var_os(herd_core::protocol::ENV_STATUS_FILE);
        StatusFile(path.and_then(|p| std::fs::File::create(p).ok()))
    }

    /// Records `test` before any of its code runs (a plain write survives a sudden death).
    fn starting(&self, test: &str) {
        use std::os::unix::fs::FileExt;
        if let Some(file) = &self.0 {
            let _ = file.write_all_at(format!("{test}\n").as_bytes(), 0);
        }
    }
}
