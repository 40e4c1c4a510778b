//! Deaths as the slot sees them: the kill-policy table by phase, status file and draining;
//! crash reports, shutdowns, the crash streak, respawn grants and usage errors.

use super::*;

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
fn a_process_that_cannot_start_counts_until_the_streak_retires_the_slot() {
    let mut h = Harness::new();
    h.feed(Input::Start);
    for round in 1..=3 {
        let failed = h.feed(Input::NotStarted {
            program: "pytest".into(),
            error: "No such file or directory".into(),
        });
        if round < 3 {
            assert_eq!(after(&failed), Some(After::Respawn { counted: true }));
            assert!(matches!(
                h.feed(Input::RespawnGranted(true))[..],
                [Effect::Spawn(_)]
            ));
        } else {
            assert_eq!(after(&failed), Some(After::Retired), "round {round}");
        }
    }
}

/// An external incarnation is awaited; its end comes on the next tick once it is given up.
fn awaited() -> Harness {
    let mut h = Harness::new();
    assert!(matches!(h.feed(Input::Start)[..], [Effect::Spawn(1)]));
    let effects = h.feed(Input::Awaiting("herd join w1".into()));
    assert!(effects.iter().any(|e| matches!(e, Effect::Awaiting(1))));
    h
}

fn given_up(h: &mut Harness) -> Vec<Effect> {
    let gone = h.feed(Input::Tick(None));
    let mut effects = h.feed(Input::Timer(timers(&gone)[0]));
    assert!(matches!(effects[..], [Effect::Barrier(1)]));
    let last_started = None;
    let reached = Input::BarrierReached {
        incarnation: 1,
        last_started,
    };
    effects.extend(h.feed(reached));
    effects
}

#[test]
fn an_external_slot_nobody_joins_is_retired_and_one_no_longer_needed_is_done() {
    let mut h = awaited();
    let start = Timer {
        incarnation: 1,
        kind: TimerKind::Start,
    };
    h.feed(Input::Timer(start));
    assert_eq!(after(&given_up(&mut h)), Some(After::Retired));
    let mut h = awaited();
    h.feed(Input::NoMoreWork);
    let effects = given_up(&mut h);
    assert_eq!(after(&effects), Some(After::Done));
    let exited = |e: &Effect| matches!(e, Effect::Publish(Event::WorkerExited { .. }));
    assert!(
        !effects.iter().any(exited),
        "it never joined: no exit to show"
    );
}
