//! Unit tests of [`super`].

use super::*;

fn phase(when: Phase, outcome: PhaseOutcome) -> PhaseReport {
    PhaseReport {
        longrepr: (outcome == PhaseOutcome::Failed).then(|| format!("{when:?} broke")),
        ..PhaseReport::new("t", when, outcome, 0.25)
    }
}

fn verdict(phases: &[(Phase, PhaseOutcome)]) -> Verdict {
    let mut record = TestRecord::default();
    for (w, o) in phases {
        record.add(phase(*w, *o));
    }
    record.verdict()
}

use Phase::*;
use PhaseOutcome as P;

#[test]
fn a_pass_needs_a_call_report_that_says_so() {
    // The call's report was lost (a rejected frame): setup and teardown passing is no pass.
    let v = verdict(&[(Setup, P::Passed), (Teardown, P::Passed)]);
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.message.unwrap().contains("no report of its call phase"));
    // An outcome word herd does not know, or a rerun that was never followed, is no pass.
    for word in [P::Other, P::Rerun] {
        let v = verdict(&[(Setup, P::Passed), (Call, word), (Teardown, P::Passed)]);
        assert_eq!(v.outcome, Outcome::Error, "{word:?}");
    }
    // A test skipped in setup has no call, and is still a skip.
    assert_eq!(
        verdict(&[(Setup, P::Skipped), (Teardown, P::Passed)]).outcome,
        Outcome::Skipped
    );
}

#[test]
fn only_the_last_round_of_a_rerun_test_decides() {
    let round = |call: PhaseOutcome, last: bool| {
        vec![
            phase(Setup, P::Passed),
            phase(Call, call),
            PhaseReport {
                intermediate: !last,
                ..phase(Teardown, P::Passed)
            },
        ]
    };
    let record = |rounds: Vec<Vec<PhaseReport>>| {
        let mut r = TestRecord::default();
        rounds.into_iter().flatten().for_each(|p| r.add(p));
        r.verdict().outcome
    };
    assert_eq!(
        record(vec![round(P::Rerun, false), round(P::Failed, true)]),
        Outcome::Failed
    );
    // pytest-rerunfailures logs no teardown for a round it reruns.
    let rerun_round = vec![phase(Setup, P::Passed), phase(Call, P::Rerun)];
    assert_eq!(
        record(vec![
            rerun_round.clone(),
            rerun_round,
            round(P::Failed, true)
        ]),
        Outcome::Failed
    );
    let setup_rerun = vec![phase(Setup, P::Rerun)];
    assert_eq!(
        record(vec![setup_rerun, round(P::Passed, true)]),
        Outcome::Passed
    );
    assert_eq!(
        record(vec![round(P::Rerun, false), round(P::Passed, true)]),
        Outcome::Passed
    );
    // A failing round is never outvoted by an earlier passing one.
    assert_eq!(
        record(vec![round(P::Passed, false), round(P::Failed, true)]),
        Outcome::Failed
    );
}

#[test]
fn outcome_follows_the_phases() {
    assert_eq!(
        verdict(&[(Setup, P::Passed), (Call, P::Passed), (Teardown, P::Passed)]).outcome,
        Outcome::Passed
    );
    assert_eq!(
        verdict(&[(Setup, P::Passed), (Call, P::Failed), (Teardown, P::Passed)]).outcome,
        Outcome::Failed
    );
    assert_eq!(
        verdict(&[(Setup, P::Failed), (Teardown, P::Passed)]).outcome,
        Outcome::Error
    );
    assert_eq!(
        verdict(&[(Setup, P::Skipped), (Teardown, P::Passed)]).outcome,
        Outcome::Skipped
    );
    assert_eq!(
        verdict(&[(Call, P::Skipped), (Teardown, P::Passed)]).outcome,
        Outcome::Skipped
    );
    assert_eq!(
        verdict(&[(Call, P::Passed), (Teardown, P::Passed)]).duration,
        0.5
    );
}

#[test]
fn a_failing_teardown_is_never_a_pass() {
    let v = verdict(&[(Setup, P::Passed), (Call, P::Passed), (Teardown, P::Failed)]);
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v
        .details
        .unwrap()
        .contains("[teardown phase]\nTeardown broke"));
    let v = verdict(&[(Call, P::Failed), (Teardown, P::Failed)]);
    assert_eq!(v.outcome, Outcome::Failed);
    assert_eq!(
        v.details.unwrap(),
        "Call broke\n[teardown phase]\nTeardown broke"
    );
}

#[test]
fn failure_details_carry_the_captured_output() {
    let mut r = TestRecord::default();
    let mut call = phase(Call, P::Failed);
    call.sections = vec![
        ("Captured stdout call".into(), "hello\n".into()),
        ("Captured log call".into(), " ".into()),
    ];
    r.add(call);
    r.add(phase(Teardown, P::Passed));
    let details = r.verdict().details.unwrap();
    assert!(details.starts_with("Call broke\n---"), "{details}");
    assert!(
        details.contains(" Captured stdout call ") && details.ends_with("\nhello"),
        "{details}"
    );
    assert!(!details.contains("Captured log call"), "{details}");
}

#[test]
fn xfail_and_xpass() {
    let mut r = TestRecord::default();
    let mut call = phase(Call, P::Skipped);
    call.wasxfail = Some("bug 1".into());
    r.add(call.clone());
    r.add(phase(Teardown, P::Passed));
    assert_eq!(r.verdict().outcome, Outcome::Xfailed);
    let mut r = TestRecord::default();
    call.outcome = P::Passed;
    r.add(call);
    r.add(phase(Teardown, P::Passed));
    assert_eq!(r.verdict().outcome, Outcome::Xpassed);
}

#[test]
fn tally_line_lists_what_occurred_in_pytest_order() {
    let mut t = Tally::default();
    assert_eq!(t.summary_line(0.0), "no tests ran in 0.00s");
    for _ in 0..283 {
        t.add(Outcome::Passed);
    }
    for _ in 0..17 {
        t.add(Outcome::Failed);
    }
    assert_eq!(t.summary_line(2.414), "17 failed, 283 passed in 2.41s");
    t.add(Outcome::Crashed);
    t.add(Outcome::NotRun);
    t.add(Outcome::NotRun);
    t.add(Outcome::Error);
    assert_eq!(
        t.summary_line(1.0),
        "17 failed, 283 passed, 1 error, 1 crashed, 2 not run in 1.00s"
    );
    assert_eq!(t.total(), 304);
    assert_eq!(t.failures(), 19);
}

#[test]
fn pytest_categories_are_counted_as_pytest_counts_them() {
    let mut t = Tally::default();
    for (outcome, cats) in [
        (Outcome::Error, vec!["passed", "error"]),
        (Outcome::Failed, vec!["subtests passed", "failed", "passed"]),
        (Outcome::Passed, vec!["passed"]),
        (Outcome::Crashed, vec![]),
    ] {
        t.add(outcome);
        for c in cats {
            t.add_reported(c);
        }
    }
    assert_eq!(
        t.summary_line(0.5),
        "1 failed, 3 passed, 1 error, 1 subtests passed, 1 crashed in 0.50s"
    );
    assert_eq!(t.total(), 4);
}

#[test]
fn a_failed_subtest_fails_the_test() {
    let mut r = TestRecord::default();
    r.add(phase(Setup, P::Passed));
    let mut sub = phase(Call, P::Failed);
    sub.subtest = Some("i=1".into());
    sub.message = Some("assert 1 != 1".into());
    r.add(sub);
    r.add(phase(Call, P::Passed));
    r.add(phase(Teardown, P::Passed));
    let v = r.verdict();
    assert_eq!(
        (v.outcome, v.message.as_deref()),
        (Outcome::Failed, Some("assert 1 != 1"))
    );
}

#[test]
fn exit_codes_match_pytest() {
    let mut t = Tally::default();
    assert_eq!(exit_code(&SessionEnd::Completed, &t), exit_code::NO_TESTS);
    t.add(Outcome::Passed);
    t.add(Outcome::Skipped);
    assert_eq!(exit_code(&SessionEnd::Completed, &t), exit_code::OK);
    assert_eq!(
        exit_code(&SessionEnd::Interrupted("SIGINT".into()), &t),
        exit_code::INTERRUPTED
    );
    t.add(Outcome::Crashed);
    assert_eq!(
        exit_code(&SessionEnd::Completed, &t),
        exit_code::TESTS_FAILED
    );
    assert_eq!(
        exit_code(&SessionEnd::MaxfailReached, &t),
        exit_code::TESTS_FAILED
    );
    assert_eq!(
        exit_code(&SessionEnd::Aborted("budget".into()), &t),
        exit_code::INTERNAL_ERROR
    );
}

#[test]
fn severity_orders_session_ends() {
    assert!(SessionEnd::Aborted(String::new()) > SessionEnd::Interrupted(String::new()));
    assert!(SessionEnd::Interrupted(String::new()) > SessionEnd::MaxfailReached);
    assert!(SessionEnd::MaxfailReached > SessionEnd::Completed);
}

#[test]
fn the_summary_line_counts_deselected_tests_and_says_warnings_as_pytest_does() {
    let mut tally = Tally::default();
    for _ in 0..2 {
        tally.add(Outcome::Passed);
        tally.add_reported("passed");
    }
    tally.add_reported("warnings");
    tally.set_reported("deselected", 3);
    tally.set_reported("deselected", 3); // set, not added: said once however often
    assert_eq!(
        tally.summary_line(0.1),
        "2 passed, 3 deselected, 1 warning in 0.10s"
    );
    tally.add_reported("warnings");
    tally.set_reported("deselected", 0);
    assert_eq!(tally.summary_line(0.1), "2 passed, 2 warnings in 0.10s");
}
