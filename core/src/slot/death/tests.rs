//! The death plan, table-driven: kill reason x phase x status file x draining.

use super::*;

fn retire3() -> RetirePolicy {
    RetirePolicy {
        after_consecutive_crashes: 3,
    }
}

fn ids(v: &[&str]) -> Vec<TestId> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A worker that was running `b` of its queue `a b c d` (a already finished and gone).
fn working(kill: Option<KillReason>) -> Death {
    Death {
        kill,
        running: Some(("b".into(), 1.5)),
        queue: ids(&["b", "c", "d"]),
        status: "signal 9 (SIGKILL)".into(),
        ..Death::default()
    }
}

#[test]
fn the_kill_policy_table() {
    use KillReason as K;
    struct Row {
        kill: Option<KillReason>,
        blamed: Option<&'static str>,
        requeue: &'static [&'static str],
        streak: u32,
        next: Next,
    }
    let respawn = |counted| Next::Respawn { counted };
    let rows = [
        // A crash during a test: the test answers for it, the budget does not.
        Row {
            kill: None,
            blamed: Some("b"),
            requeue: &["c", "d"],
            streak: 1,
            next: respawn(false),
        },
        // Misbehaviour: nothing is blamed, everything goes back, the budget pays.
        Row {
            kill: Some(K::Garbage("x".into())),
            blamed: None,
            requeue: &["b", "c", "d"],
            streak: 1,
            next: respawn(true),
        },
        Row {
            kill: Some(K::Violation("x".into())),
            blamed: None,
            requeue: &["b", "c", "d"],
            streak: 1,
            next: respawn(true),
        },
        Row {
            kill: Some(K::InternalError("x".into())),
            blamed: None,
            requeue: &["b", "c", "d"],
            streak: 1,
            next: respawn(true),
        },
        Row {
            kill: Some(K::Lost(Duration::from_secs(9))),
            blamed: None,
            requeue: &["b", "c", "d"],
            streak: 1,
            next: respawn(true),
        },
        // Hung during a test: the test answers for it.
        Row {
            kill: Some(K::Hung),
            blamed: Some("b"),
            requeue: &["c", "d"],
            streak: 1,
            next: respawn(false),
        },
        // A timeout's outcome is decided already (no running test left); not the worker's fault.
        Row {
            kill: Some(K::Recollect),
            blamed: Some("b"),
            requeue: &["c", "d"],
            streak: 0,
            next: respawn(false),
        },
    ];
    for (i, row) in rows.into_iter().enumerate() {
        let plan = plan_death(working(row.kill.clone()), retire3());
        assert_eq!(
            plan.blamed.as_ref().map(|b| b.test.as_str()),
            row.blamed,
            "row {i}: {:?}",
            row.kill
        );
        assert_eq!(plan.requeue, ids(row.requeue), "row {i}: {:?}", row.kill);
        assert_eq!(plan.streak, row.streak, "row {i}: {:?}", row.kill);
        assert_eq!(plan.next, row.next, "row {i}: {:?}", row.kill);
        assert!(!plan.clean, "row {i}");
    }
}

#[test]
fn a_timed_out_test_is_not_blamed_twice_and_does_not_count() {
    // The timeout already decided the test (it is no longer running or queued).
    let death = Death {
        kill: Some(KillReason::Timeout),
        queue: ids(&["c"]),
        status: "signal 9 (SIGKILL)".into(),
        ..Death::default()
    };
    let plan = plan_death(death, retire3());
    assert_eq!(plan.blamed, None);
    assert_eq!(plan.requeue, ids(&["c"]));
    assert_eq!(
        (plan.streak, plan.next),
        (0, Next::Respawn { counted: false })
    );
}

#[test]
fn a_death_before_any_test_counts_against_the_budget() {
    for kill in [
        None,
        Some(KillReason::StartTimeout),
        Some(KillReason::Mismatch),
    ] {
        let death = Death {
            kill: kill.clone(),
            early: true,
            status: "exit code 1".into(),
            ..Death::default()
        };
        let plan = plan_death(death, retire3());
        assert_eq!(plan.blamed, None, "{kill:?}");
        assert_eq!(plan.next, Next::Respawn { counted: true }, "{kill:?}");
    }
}

#[test]
fn the_status_file_decides_whom_to_blame() {
    // It names a test the coordinator thought unstarted (the start message died with it).
    let death = Death {
        running: None,
        queue: ids(&["c", "d"]),
        last_started: Some("d".into()),
        ..working(None)
    };
    let plan = plan_death(death, retire3());
    let blamed = plan.blamed.unwrap();
    assert_eq!((blamed.test.as_str(), blamed.confirmed), ("d", true));
    assert_eq!(plan.requeue, ids(&["c"]));
    // It names an earlier test than the one running (the running one's result was lost and
    // it never started): the running test goes back; nothing in the queue is blamed.
    let death = Death {
        last_started: Some("a".into()),
        ..working(None)
    };
    let plan = plan_death(death, retire3());
    assert_eq!(plan.blamed, None);
    assert_eq!(plan.requeue, ids(&["b", "c", "d"]));
    // It names the running test: that one, confirmed, with its time.
    let plan = plan_death(
        Death {
            last_started: Some("b".into()),
            ..working(None)
        },
        retire3(),
    );
    assert_eq!(
        plan.blamed,
        Some(Blamed {
            test: "b".into(),
            duration: 1.5,
            confirmed: true
        })
    );
}

#[test]
fn without_a_status_file_the_first_queued_test_is_blamed_unconfirmed() {
    let death = Death {
        running: None,
        queue: ids(&["c", "d"]),
        ..working(None)
    };
    let plan = plan_death(death, retire3());
    let blamed = plan.blamed.unwrap();
    assert_eq!((blamed.test.as_str(), blamed.confirmed), ("c", false));
    assert_eq!(plan.requeue, ids(&["d"]));
    // Not after a shutdown it said, nor when herd killed it.
    for (shutdown_said, kill) in [(true, None), (false, Some(KillReason::Hung))] {
        let death = Death {
            running: None,
            queue: ids(&["c"]),
            shutdown_said,
            kill,
            ..working(None)
        };
        assert_eq!(plan_death(death, retire3()).blamed, None);
    }
}

#[test]
fn draining_reports_the_running_test_and_returns_nothing() {
    let plan = plan_death(
        Death {
            draining: true,
            ..working(None)
        },
        retire3(),
    );
    assert_eq!(plan.blamed.map(|b| b.test), Some("b".into()));
    assert!(plan.requeue.is_empty());
    assert_eq!(plan.next, Next::Done);
}

#[test]
fn a_clean_exit_with_nothing_left_is_done() {
    for kill in [None, Some(KillReason::GraceExpired)] {
        let plan = plan_death(
            Death {
                kill,
                shutdown_said: true,
                status: "exit code 0".into(),
                ..Death::default()
            },
            retire3(),
        );
        assert!(plan.clean);
        assert_eq!((plan.next, plan.streak), (Next::Done, 0));
    }
    // Shutdown said with tests unfinished: the exit was orderly, but the slot is not done.
    let plan = plan_death(
        Death {
            shutdown_said: true,
            ..working(None)
        },
        retire3(),
    );
    assert!(plan.clean);
    assert_eq!(plan.next, Next::Respawn { counted: false });
    assert!(
        plan.why
            .starts_with("it said shutdown with tests unfinished"),
        "{}",
        plan.why
    );
}

#[test]
fn a_slot_that_keeps_dying_retires() {
    let plan = plan_death(
        Death {
            streak: 2,
            ..working(None)
        },
        retire3(),
    );
    assert_eq!(plan.streak, 3);
    match plan.next {
        Next::Retire(reason) => assert!(
            reason.starts_with("its process died 3 times in a row (last: it exited unexpectedly"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Never, with --retire-after 0.
    let never = RetirePolicy {
        after_consecutive_crashes: 0,
    };
    let plan = plan_death(
        Death {
            streak: 99,
            ..working(None)
        },
        never,
    );
    assert_eq!(plan.next, Next::Respawn { counted: false });
}

#[test]
fn the_reason_and_status_make_the_why() {
    let plan = plan_death(working(Some(KillReason::Hung)), retire3());
    assert_eq!(
        plan.why,
        "it was killed: it stayed stopped (hung); signal 9 (SIGKILL)"
    );
    let plan = plan_death(working(None), retire3());
    assert_eq!(plan.why, "it exited unexpectedly with signal 9 (SIGKILL)");
}

#[test]
fn only_misbehaviour_condemns_and_only_herds_own_stops_are_free() {
    use KillReason as K;
    let all = [
        K::Timeout,
        K::Mismatch,
        K::Garbage(String::new()),
        K::Violation(String::new()),
        K::InternalError(String::new()),
        K::StartTimeout,
        K::JoinTimeout,
        K::Unneeded,
        K::GraceExpired,
        K::Hung,
        K::Lost(Duration::ZERO),
        K::Drain,
        K::Abort,
        K::Recollect,
    ];
    let condemned: Vec<_> = all.iter().filter(|k| k.condemns()).collect();
    assert_eq!(condemned.len(), 4);
    let free: Vec<_> = all.iter().filter(|k| !k.is_workers_fault()).collect();
    assert_eq!(
        free,
        [
            &K::Timeout,
            &K::JoinTimeout,
            &K::Unneeded,
            &K::Drain,
            &K::Abort,
            &K::Recollect
        ]
    );
}

#[test]
fn a_usage_error_before_hello_ends_the_session_without_blame_or_count() {
    assert!(is_usage_error(Some(4), true, Some(4)));
    assert!(
        !is_usage_error(Some(4), false, Some(4)),
        "after its hello: a crash"
    );
    assert!(
        !is_usage_error(Some(4), true, None),
        "the runner has no usage code"
    );
    assert!(
        !is_usage_error(None, true, Some(4)),
        "a signal is not a usage error"
    );
    assert!(!is_usage_error(Some(3), true, Some(4)));
    let death = Death {
        early: true,
        status: "exit code 4".into(),
        streak: 1,
        usage_error: true,
        ..Death::default()
    };
    let plan = plan_death(death.clone(), retire3());
    assert_eq!(plan.next, Next::UsageError);
    assert_eq!((plan.blamed, plan.streak), (None, 1));
    assert!(plan.why.contains("command line is wrong"), "{}", plan.why);
    // Killed by herd (a drain, a timeout): the kill decides, as ever.
    let drained = Death {
        kill: Some(KillReason::Drain),
        draining: true,
        ..death
    };
    assert_eq!(plan_death(drained, retire3()).next, Next::Done);
}

#[test]
fn a_worker_that_left_is_not_a_crash_and_its_unfinished_tests_run_elsewhere() {
    // (finished its running test and said shutdown?, draining?, re-queued)
    let cases: [(bool, bool, &[&str]); 4] = [
        (true, false, &[]),
        // Taken away before it finished: its running test runs again elsewhere.
        (false, false, &["b", "c", "d"]),
        (false, true, &[]),
        (true, true, &[]),
    ];
    for (finished, draining, requeue) in cases {
        let mut death = working(None);
        death.leaving = true;
        death.draining = draining;
        death.streak = 2;
        if finished {
            death.running = None;
            death.queue.clear();
            death.shutdown_said = true;
            death.status = "exit status 0".into();
        }
        let plan = plan_death(death, retire3());
        let case = format!("finished {finished}, draining {draining}: {plan:?}");
        assert_eq!(plan.blamed, None, "{case}");
        assert_eq!(plan.requeue, ids(requeue), "{case}");
        assert_eq!((plan.streak, plan.next.clone()), (2, Next::Done), "{case}");
        assert_eq!(plan.clean, finished, "{case}");
    }
    // A worker herd killed for misbehaving is still handled as such.
    let mut death = working(Some(KillReason::Garbage("x".into())));
    death.leaving = true;
    assert_eq!(
        plan_death(death, retire3()).next,
        Next::Respawn { counted: true }
    );
}
