//! Timers as effects: stale ones (an earlier incarnation, an ended test) are ignored; the
//! hang timeout.

use super::*;

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
