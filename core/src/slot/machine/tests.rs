//! Unit tests of the slot's machine: inputs in, effects out, no processes or sockets.

use std::collections::BTreeMap;

use super::*;
use crate::outcome::{Phase as TestPhase, PhaseOutcome};
use crate::protocol::{PhaseReport, PROTOCOL_VERSION};
use crate::providers::Providers;

mod deaths;
mod steals;
mod timers;
mod work;

const PID: u32 = 4242;
const NONCE: &str = "0123456789abcdef";

fn config() -> Config {
    Config {
        worker: "w1".into(),
        appliance: None,
        timeout: Some(Duration::from_secs(10)),
        start_timeout: Duration::from_secs(30),
        grace: Duration::from_secs(5),
        hang_timeout: Duration::from_secs(10),
        heartbeat_timeout: Duration::from_secs(10),
        retire: RetirePolicy::default(),
        usage_exit: Some(4),
        live_output: false,
        remote: false,
        log_path: None,
        appliance_check: false,
        cleanse: false,
        reference_known: true,
        faults: None,
    }
}

fn ids(tests: &[&str]) -> Vec<TestId> {
    tests.iter().map(|t| t.to_string()).collect()
}

/// A slot and a clock the test moves by hand.
struct Harness {
    slot: Slot,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(config())
    }

    fn with(config: Config) -> Harness {
        Harness {
            slot: Slot::new(config),
            now: Instant::now(),
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.slot.handle(input, self.now)
    }

    fn later(&mut self, after: Duration) {
        self.now += after;
    }

    fn identity(&self) -> Vec<u8> {
        let identity = protocol::identity("w1", self.slot.incarnation());
        format!("{identity}.{NONCE}").into_bytes()
    }

    fn say(&mut self, message: WorkerMessage) -> Vec<Effect> {
        let identity = self.identity();
        self.feed(Input::FromProcess {
            identity,
            message,
            collect: None,
        })
    }

    /// A process started and said hello.
    fn hello(&mut self) -> Vec<Effect> {
        let incarnation = self.slot.incarnation();
        self.say(WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            worker: "w1".into(),
            incarnation,
            token: "token".into(),
            pid: Some(PID),
            heartbeat: None,
            fingerprint: None,
        })
    }

    fn collection(&mut self) -> Vec<Effect> {
        self.say(WorkerMessage::Collection {
            tests: ids(&["t::a", "t::b", "t::c"]),
            errors: Vec::new(),
            herd_groups: BTreeMap::new(),
            files: None,
            scope: None,
            digest: None,
            deselected: Vec::new(),
        })
    }

    fn accept(&mut self) -> Vec<Effect> {
        let reference = Reference::whole(ids(&["t::a", "t::b", "t::c"]), BTreeMap::new());
        let incarnation = self.slot.incarnation();
        self.feed(Input::Verdict {
            incarnation,
            verdict: CollectionVerdict::Accepted(Arc::new(reference)),
        })
    }

    /// A new incarnation, spawned and collecting.
    fn spawned(&mut self) {
        if self.slot.incarnation() == 0 {
            self.feed(Input::Start);
        }
        self.feed(Input::Started(PID));
        self.hello();
    }

    /// A working slot holding `t::a`, `t::b`, `t::c`.
    fn working(&mut self) {
        self.spawned();
        self.collection();
        self.accept();
        self.say(WorkerMessage::NeedTests);
        let incarnation = self.slot.incarnation();
        self.feed(Input::Assignment {
            incarnation,
            tests: ids(&["t::a", "t::b", "t::c"]),
            switch: None,
        });
    }

    fn start(&mut self, test: &str) -> Vec<Effect> {
        self.say(WorkerMessage::TestStarted { test: test.into() })
    }

    fn teardown(&mut self, test: &str) -> Vec<Effect> {
        let report = PhaseReport::new(test, TestPhase::Teardown, PhaseOutcome::Passed, 0.1);
        self.say(WorkerMessage::Report(report))
    }

    /// The process exits, its settle timer fires and its barrier is reached.
    fn die(&mut self, code: Option<i32>, last_started: Option<&str>) -> Vec<Effect> {
        let incarnation = self.slot.incarnation();
        let status = "signal 9 (SIGKILL)".to_string();
        let mut effects = self.feed(Input::Exited {
            incarnation,
            code,
            status,
        });
        let settle = timers(&effects);
        assert!(settle.iter().any(|t| t.kind == TimerKind::Settle));
        effects.extend(self.feed(Input::Timer(settle[0])));
        let last_started = last_started.map(str::to_string);
        effects.extend(self.feed(Input::BarrierReached {
            incarnation,
            last_started,
        }));
        effects
    }
}

fn timers(effects: &[Effect]) -> Vec<Timer> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Arm { timer, .. } => Some(*timer),
            _ => None,
        })
        .collect()
}

fn killed(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::KillGroup(PID)))
}

fn sent(effects: &[Effect]) -> Vec<&CoordinatorMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

fn returned(effects: &[Effect]) -> Vec<(Vec<TestId>, Option<&Crashed>, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ReturnTests {
                tests,
                crashed,
                stolen,
            } => Some((tests.clone(), crashed.as_ref(), *stolen)),
            _ => None,
        })
        .collect()
}

fn finished(effects: &[Effect]) -> Vec<(&TestId, &crate::outcome::Verdict)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(Event::TestFinished { test, verdict, .. }) => Some((test, verdict)),
            _ => None,
        })
        .collect()
}

/// What the slot does after a death.
#[derive(Debug, PartialEq)]
enum After {
    Respawn { counted: bool },
    Done,
    Retired,
}

fn after(effects: &[Effect]) -> Option<After> {
    effects.iter().find_map(|e| match e {
        Effect::RequestRespawn { counted } => Some(After::Respawn { counted: *counted }),
        Effect::WorkerDone { retired: true, .. } => Some(After::Retired),
        Effect::WorkerDone { retired: false, .. } => Some(After::Done),
        _ => None,
    })
}

/// Where the slot was when its process died.
#[derive(Debug, Clone, Copy)]
enum When {
    /// Collecting: no collection accepted yet.
    Early,
    /// Working, holding three tests, none started.
    Idle,
    /// Working, running `t::a`.
    Running,
}

/// kill reason, phase, status file, draining -> blamed, re-queued, next.
type Row<'a> = (
    Option<KillReason>,
    When,
    Option<&'a str>,
    bool,
    Option<&'a str>,
    Vec<TestId>,
    After,
);

/// How long the settle timer of an exit waits.
fn settle_time(effects: &[Effect]) -> Option<Duration> {
    effects.iter().find_map(|e| match e {
        Effect::Arm { timer, after } if timer.kind == TimerKind::Settle => Some(*after),
        _ => None,
    })
}

#[test]
fn an_exit_after_shutdown_is_handled_at_once_a_death_after_the_settle_time() {
    let exit = |h: &mut Harness| {
        let incarnation = h.slot.incarnation();
        h.feed(Input::Exited {
            incarnation,
            code: Some(0),
            status: "exit code 0".into(),
        })
    };
    // Its last messages may still be on the way.
    let mut died = Harness::new();
    died.working();
    died.start("t::a");
    assert_eq!(settle_time(&exit(&mut died)), Some(EXIT_SETTLE));
    // `shutdown` was its last message: nothing more can come.
    let mut done = Harness::new();
    done.working();
    done.say(WorkerMessage::Shutdown);
    assert_eq!(settle_time(&exit(&mut done)), Some(Duration::ZERO));
}
