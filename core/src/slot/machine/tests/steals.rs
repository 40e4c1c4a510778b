//! The steal handshake as the slot drives it: deferral, races with test starts, patience.

use super::*;

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
