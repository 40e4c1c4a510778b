//! Unit tests of the slot's machine: inputs in, effects out, no processes or sockets.

use std::collections::BTreeMap;

use super::*;
use crate::outcome::{Phase as TestPhase, PhaseOutcome};
use crate::protocol::{PhaseReport, PROTOCOL_VERSION};
use crate::providers::Providers;

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

#[test]
fn kill_reason_phase_status_file_and_draining_decide_the_death_as_the_worker_sees_it() {
    use KillReason as K;
    let a = Some("t::a");
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // kill       when           status  drain  blamed  re-queued                     next
        (None,        When::Running, None,   false, a,      ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (None,        When::Running, a,      false, a,      ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (None,        When::Idle,    None,   false, a,      ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (None,        When::Idle,    a,      false, a,      ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (None,        When::Early,   None,   false, None,   vec![],                       After::Respawn { counted: true }),
        (None,        When::Running, None,   true,  a,      vec![],                       After::Done),
        (Some(K::Garbage("x".into())), When::Running, a, false, None, ids(&["t::a", "t::b", "t::c"]), After::Respawn { counted: true }),
        (Some(K::Violation("x".into())), When::Running, None, false, None, ids(&["t::a", "t::b", "t::c"]), After::Respawn { counted: true }),
        (Some(K::Lost(Duration::from_secs(9))), When::Running, None, false, None, ids(&["t::a", "t::b", "t::c"]), After::Respawn { counted: true }),
        (Some(K::Hung), When::Running, None,   false, a,      ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (Some(K::Hung), When::Early,   None,   false, None,   vec![],                       After::Respawn { counted: true }),
        (Some(K::StartTimeout), When::Early, None, false, None, vec![],                     After::Respawn { counted: true }),
        (Some(K::Mismatch), When::Early, None, false, None,   vec![],                       After::Respawn { counted: true }),
        (Some(K::Recollect), When::Running, None, false, a,   ids(&["t::b", "t::c"]),       After::Respawn { counted: false }),
        (Some(K::Recollect), When::Idle, None, false, None,   ids(&["t::a", "t::b", "t::c"]), After::Respawn { counted: false }),
        (None,        When::Running, Some("t::b"), false, Some("t::b"), ids(&["t::a", "t::c"]), After::Respawn { counted: false }),
        (Some(K::Drain), When::Early,  None,   true,  None,   vec![],                       After::Done),
    ];
    for (kill, when, status, draining, blamed, requeue, next) in table {
        let row = format!("{kill:?} {when:?} status {status:?} draining {draining}");
        let mut h = Harness::new();
        match when {
            When::Early => h.spawned(),
            When::Idle => h.working(),
            When::Running => {
                h.working();
                h.start("t::a");
            }
        }
        if draining {
            h.slot.draining = true;
        }
        if let Some(reason) = kill {
            h.slot.kill(reason);
            assert!(killed(&std::mem::take(&mut h.slot.out)), "{row}: killed");
        }
        h.later(Duration::from_secs(1));
        let effects = h.die(None, status);
        let back = returned(&effects);
        let crashed = back.iter().find_map(|(_, c, _)| c.map(|c| c.test.as_str()));
        assert_eq!(crashed, blamed, "{row}: blamed");
        let tests: Vec<TestId> = back.iter().flat_map(|(t, _, _)| t.clone()).collect();
        assert_eq!(tests, requeue, "{row}: re-queued");
        assert_eq!(after(&effects), Some(next), "{row}: next");
    }
}

#[test]
fn a_blamed_test_gets_a_crash_report_with_the_process_output() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    let incarnation = h.slot.incarnation();
    let bytes = b"boom: segfault\n".to_vec();
    h.feed(Input::Output { incarnation, bytes });
    let effects = h.die(None, None);
    let back = returned(&effects);
    let details = &back[0].1.expect("blamed").details;
    assert!(
        details.contains("crashed while running this test"),
        "{details}"
    );
    assert!(details.contains("boom: segfault"), "{details}");
}

#[test]
fn timers_of_an_earlier_incarnation_are_ignored_after_a_respawn() {
    let mut h = Harness::new();
    h.working();
    let started = h.start("t::a");
    let test_timer = timers(&started)[0];
    assert_eq!(test_timer.kind, TimerKind::Test { seq: 1 });
    let shutdown = h.say(WorkerMessage::Shutdown);
    let grace = timers(&shutdown)[0];
    let death = h.die(None, None);
    assert_eq!(after(&death), Some(After::Respawn { counted: false }));
    let respawned = h.feed(Input::RespawnGranted(true));
    assert!(matches!(respawned.last(), Some(Effect::Spawn(2))));
    h.spawned();
    // The old start, grace and test timers fire now: nothing happens to the new process.
    let stale = Timer {
        incarnation: 1,
        kind: TimerKind::Start,
    };
    for timer in [test_timer, grace, stale] {
        h.later(Duration::from_secs(60));
        assert!(h.feed(Input::Timer(timer)).is_empty(), "{timer:?}");
    }
    assert!(matches!(h.slot.phase(), Phase::Collecting { .. }));
    // The current incarnation's own start timer still works.
    let current = Timer {
        incarnation: 2,
        kind: TimerKind::Start,
    };
    assert!(killed(&h.feed(Input::Timer(current))));
}

#[test]
fn a_test_timer_is_ignored_once_its_test_ended_and_kills_when_it_did_not() {
    let mut h = Harness::new();
    h.working();
    let first = timers(&h.start("t::a"))[0];
    h.teardown("t::a");
    let second = timers(&h.start("t::b"))[0];
    assert!(h.feed(Input::Timer(first)).is_empty(), "t::a ended already");
    h.later(Duration::from_secs(10));
    let effects = h.feed(Input::Timer(second));
    let done = finished(&effects);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, "t::b");
    assert_eq!(done[0].1.outcome, crate::outcome::Outcome::TimedOut);
    assert!(effects.iter().any(|e| matches!(e, Effect::Settled(1))));
    assert!(killed(&effects));
    // Its death does not blame t::b again: it is decided.
    let death = h.die(None, None);
    let back = returned(&death);
    assert!(back.iter().all(|(_, crashed, _)| crashed.is_none()));
    assert_eq!(back[0].0, ids(&["t::c"]));
}

#[test]
fn a_shutdown_with_tests_unfinished_gives_them_back_and_blames_none() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    h.teardown("t::a");
    let shutdown = h.say(WorkerMessage::Shutdown);
    assert_eq!(h.slot.phase(), Phase::Stopping);
    assert_eq!(timers(&shutdown)[0].kind, TimerKind::Grace);
    let effects = h.die(Some(0), None);
    let back = returned(&effects);
    assert_eq!(back, vec![(ids(&["t::b", "t::c"]), None, false)]);
    assert_eq!(after(&effects), Some(After::Respawn { counted: true }));
    let notice = effects
        .iter()
        .any(|e| matches!(e, Effect::Publish(Event::WorkerExited { clean: true, .. })));
    assert!(notice, "it exited as it said it would: {effects:?}");
}

#[test]
fn an_ended_session_kills_at_once_and_plans_no_death() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    let killed_now = h.feed(Input::KillNow);
    assert!(killed(&killed_now));
    assert!(killed_now.iter().any(|e| matches!(e, Effect::DropGroup)));
    assert_eq!(h.slot.phase(), Phase::Done);
    assert!(h
        .die(None, None)
        .iter()
        .all(|e| !matches!(e, Effect::ReturnTests { .. })));
    assert!(!h.slot.wants_process(h.slot.incarnation()));
}

#[test]
fn a_clean_shutdown_is_done_and_a_late_grace_timer_kills_a_lingering_process() {
    let mut h = Harness::new();
    h.working();
    for test in ["t::a", "t::b", "t::c"] {
        h.start(test);
        h.teardown(test);
    }
    let grace = timers(&h.say(WorkerMessage::Shutdown))[0];
    h.later(Duration::from_secs(5));
    assert!(
        killed(&h.feed(Input::Timer(grace))),
        "still running after grace"
    );
    let effects = h.die(None, None);
    assert!(returned(&effects).is_empty());
    assert_eq!(after(&effects), Some(After::Done));
}

#[test]
fn an_early_request_for_work_is_served_once_the_collection_is_accepted() {
    let mut h = Harness::new();
    h.spawned();
    assert!(
        h.say(WorkerMessage::NeedTests).is_empty(),
        "kept while collecting"
    );
    let checking = h.collection();
    assert!(matches!(checking[0], Effect::CheckCollection { .. }));
    assert!(
        h.say(WorkerMessage::NeedTests).is_empty(),
        "kept while checking"
    );
    let accepted = h.accept();
    let asks = accepted
        .iter()
        .filter(|e| matches!(e, Effect::RequestWork { .. }))
        .count();
    assert_eq!(asks, 1, "one request, served now");
    assert!(
        h.say(WorkerMessage::NeedTests).is_empty(),
        "one request at a time"
    );
}

#[test]
fn a_shard_waits_for_the_whole_reference_and_its_early_request_with_it() {
    let mut h = Harness::new();
    h.spawned();
    h.collection();
    h.say(WorkerMessage::NeedTests);
    let incarnation = h.slot.incarnation();
    let pending = CollectionVerdict::Pending;
    let verdict = Input::Verdict {
        incarnation,
        verdict: pending,
    };
    assert!(h.feed(verdict).is_empty());
    let reference = Arc::new(Reference::whole(ids(&["t::a"]), BTreeMap::new()));
    let ready = h.feed(Input::ReferenceReady(reference));
    assert!(h.slot.phase().is_working());
    assert!(matches!(ready[0], Effect::RequestWork { .. }));
}

#[test]
fn a_verdict_for_an_earlier_incarnation_is_ignored() {
    let mut h = Harness::new();
    h.spawned();
    h.collection();
    let verdict = Input::Verdict {
        incarnation: 7,
        verdict: CollectionVerdict::Mismatch("diff".into()),
    };
    assert!(h.feed(verdict).is_empty());
    assert!(matches!(h.slot.phase(), Phase::Checking { .. }));
}

fn steal() -> Input {
    let policy = StealPolicy::new(BTreeMap::new(), Providers::default());
    Input::Steal {
        policy: Arc::new(policy),
        thief_load: 0.0,
    }
}

#[test]
fn a_steal_right_after_delivery_waits_for_the_first_start() {
    let mut h = Harness::new();
    h.working();
    let deferred = h.feed(steal());
    assert_eq!(timers(&deferred)[0].kind, TimerKind::Deferral);
    assert!(sent(&deferred).is_empty(), "not asked yet");
    let started = h.start("t::a");
    let release = sent(&started);
    assert!(
        matches!(release.last(), Some(CoordinatorMessage::Release { .. })),
        "asked once a test started: {release:?}"
    );
    // The deferral's patience runs out later: nothing is asked again.
    let deferral = timers(&deferred)[0];
    assert!(sent(&h.feed(Input::Timer(deferral))).is_empty());
}

#[test]
fn a_release_answered_after_the_test_started_gives_back_only_unstarted_tests() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    h.teardown("t::a");
    let asked = h.feed(steal());
    let Some(CoordinatorMessage::Release { tests }) = sent(&asked).last().cloned().cloned() else {
        panic!("asked: {asked:?}");
    };
    assert_eq!(tests, ids(&["t::c"]));
    // The process started t::c before it read the release: it answers with what it could.
    h.start("t::b");
    h.teardown("t::b");
    h.start("t::c");
    let answer = h.say(WorkerMessage::Released {
        tests: ids(&["t::c"]),
    });
    assert_eq!(returned(&answer), vec![(vec![], None, true)]);
    assert!(!killed(&answer));
    // The patience timer fires after the answer: the Scheduler heard once.
    let patience = timers(&asked)[0];
    assert!(h.feed(Input::Timer(patience)).is_empty());
    // A second answer was never asked for.
    let again = h.say(WorkerMessage::Released { tests: vec![] });
    assert!(killed(&again));
}

#[test]
fn an_unanswered_release_is_answered_nothing_after_patience_or_on_death() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    let asked = h.feed(steal());
    let patience = timers(&asked)[0];
    let expired = h.feed(Input::Timer(patience));
    assert_eq!(returned(&expired), vec![(vec![], None, true)]);
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    h.feed(steal());
    let death = h.die(None, None);
    let stolen: Vec<_> = returned(&death).into_iter().filter(|r| r.2).collect();
    assert_eq!(stolen, vec![(vec![], None, true)], "answered once, nothing");
}

#[test]
fn deaths_in_a_row_without_a_finished_test_retire_the_slot() {
    let mut h = Harness::new();
    for round in 1..=3 {
        h.spawned();
        let death = h.die(None, None);
        let next = after(&death);
        if round < 3 {
            assert_eq!(
                next,
                Some(After::Respawn { counted: true }),
                "round {round}"
            );
            h.feed(Input::RespawnGranted(true));
        } else {
            assert_eq!(next, Some(After::Retired));
            assert_eq!(h.slot.phase(), Phase::Done);
        }
    }
}

#[test]
fn a_finished_test_breaks_the_crash_streak() {
    let mut h = Harness::new();
    for _ in 0..2 {
        h.spawned();
        h.die(None, None);
        h.feed(Input::RespawnGranted(true));
    }
    h.working();
    h.start("t::a");
    h.teardown("t::a");
    h.die(None, None);
    h.feed(Input::RespawnGranted(true));
    h.spawned();
    let death = h.die(None, None);
    assert_eq!(after(&death), Some(After::Respawn { counted: true }));
}

#[test]
fn a_denied_respawn_or_a_failed_appliance_check_ends_the_slot() {
    let mut h = Harness::new();
    h.spawned();
    h.die(None, None);
    assert_eq!(
        after(&h.feed(Input::RespawnGranted(false))),
        Some(After::Done)
    );
    let mut h = Harness::with(Config {
        appliance_check: true,
        ..config()
    });
    h.spawned();
    let death = h.die(None, None);
    assert!(death.iter().any(|e| matches!(e, Effect::ApplianceCheck)));
    let failed = h.feed(Input::ApplianceChecked(Some("no db".into())));
    assert_eq!(after(&failed), Some(After::Retired));
    assert!(
        h.feed(Input::RespawnGranted(true)).is_empty(),
        "done already"
    );
}

#[test]
fn a_usage_error_before_hello_ends_the_session_with_no_respawn() {
    let mut h = Harness::new();
    h.feed(Input::Start);
    h.feed(Input::Started(PID));
    let incarnation = h.slot.incarnation();
    let bytes = b"usage: pytest [options]\n".to_vec();
    h.feed(Input::Output { incarnation, bytes });
    let effects = h.die(Some(4), None);
    let usage = effects
        .iter()
        .position(|e| matches!(e, Effect::UsageError(out) if out == "usage: pytest [options]"));
    let exited = effects
        .iter()
        .position(|e| matches!(e, Effect::Publish(Event::WorkerExited { .. })));
    assert!(
        usage.expect("a usage error") < exited.expect("its exit"),
        "said first"
    );
    assert!(returned(&effects).is_empty());
    assert_eq!(after(&effects), Some(After::Done));
}

#[test]
fn a_condemned_process_is_not_heard_any_more() {
    let mut h = Harness::new();
    h.working();
    h.start("t::a");
    let garbage = h.feed(Input::Garbage {
        identity: h.identity(),
        reason: "not json".into(),
    });
    assert!(killed(&garbage));
    assert!(h.teardown("t::a").is_empty(), "its report does not count");
}

#[test]
fn a_hello_of_another_incarnation_is_refused() {
    let mut h = Harness::new();
    h.feed(Input::Start);
    let effects = h.feed(Input::FromProcess {
        identity: format!("w1.5.{NONCE}").into_bytes(),
        message: WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            worker: "w1".into(),
            incarnation: 5,
            token: "token".into(),
            pid: None,
            heartbeat: None,
            fingerprint: None,
        },
        collect: None,
    });
    assert!(matches!(
        sent(&effects)[..],
        [CoordinatorMessage::Error { .. }]
    ));
    assert_eq!(h.slot.phase(), Phase::Starting);
}

#[test]
fn draining_stops_a_working_process_and_kills_a_starting_one() {
    let mut h = Harness::new();
    h.working();
    let drained = h.feed(Input::Drain);
    assert!(matches!(sent(&drained)[..], [CoordinatorMessage::Stop]));
    assert!(!killed(&drained));
    let answer = h.say(WorkerMessage::NeedTests);
    assert!(
        matches!(sent(&answer)[..], [CoordinatorMessage::Tests { ref tests }] if tests.is_empty())
    );
    let mut h = Harness::new();
    h.spawned();
    assert!(killed(&h.feed(Input::Drain)));
}

#[test]
fn a_stopped_process_is_killed_after_the_hang_timeout() {
    let mut h = Harness::new();
    h.working();
    let stopped = Some(ProcState {
        stopped: true,
        cpu_ticks: Some(1),
    });
    assert!(!killed(&h.feed(Input::Tick(stopped))));
    h.later(Duration::from_secs(9));
    assert!(!killed(&h.feed(Input::Tick(stopped))));
    h.later(Duration::from_secs(1));
    assert!(killed(&h.feed(Input::Tick(stopped))));
    assert_eq!(h.slot.inc.kill, Some(KillReason::Hung));
}
