//! Table-driven tests of the session's brain: sequences of inputs, the effects of the last one
//! and the phase after it.

use std::time::{Duration, Instant};

use super::*;
use Effect::{CountRemaining, Drain, Finish, Grant, NoMoreWork, Revive, SlotGone};

fn session(slots: &[&str], budget: u32) -> Session {
    let slots = slots.iter().map(|s| s.to_string()).collect();
    Session::new(slots, RespawnBudget::new(budget, None))
}

/// Feeds `inputs` one by one at `now`; the effects of each.
fn feed(s: &mut Session, inputs: &[Input], now: Instant) -> Vec<Vec<Effect>> {
    inputs.iter().map(|i| s.handle(i.clone(), now)).collect()
}

fn last(s: &mut Session, inputs: &[Input]) -> Vec<Effect> {
    feed(s, inputs, Instant::now()).pop().unwrap_or_default()
}

fn note(text: &str) -> Effect {
    Effect::Notice(text.into())
}

fn interrupted(why: &str) -> SessionEnd {
    SessionEnd::Interrupted(why.into())
}

fn draining(reason: SessionEnd, interrupts: Interrupts) -> Phase {
    Phase::Draining { reason, interrupts }
}

fn done(worker: &str) -> Input {
    Input::WorkerDone {
        worker: worker.into(),
        retired: false,
    }
}

fn retired(worker: &str) -> Input {
    Input::WorkerDone {
        worker: worker.into(),
        retired: true,
    }
}

fn respawn(worker: &str, counted: bool) -> Input {
    Input::RespawnRequested {
        worker: worker.into(),
        counted,
    }
}

fn exit(reason: &str) -> Input {
    Input::SessionExitRequested {
        worker: "w1".into(),
        reason: reason.into(),
    }
}

const INT: Input = Input::Signal(Signal::Interrupt);
const TERM: Input = Input::Signal(Signal::Terminate);
const QUIT: Input = Input::Signal(Signal::Quit);
const MAXFAIL: Input = Input::MaxfailReached;

const STOPPING: &str = "SIGINT: stopping after the running tests; send it again to kill them";
const MAXFAIL_NOTICE: &str = "--maxfail reached: no more tests are dealt out; running tests finish";

/// (what, inputs, effects of the last input, phase after it), on a session of two slots.
type Case = (&'static str, Vec<Input>, Vec<Effect>, Phase);

fn check(cases: Vec<Case>) {
    for (what, inputs, effects, phase) in cases {
        let mut s = session(&["w1", "w2"], 2);
        assert_eq!(last(&mut s, &inputs), effects, "{what}: effects");
        assert_eq!(s.phase(), &phase, "{what}: phase");
    }
}

#[test]
fn signals() {
    let sigint = interrupted("SIGINT");
    check(vec![
        (
            "one SIGINT drains",
            vec![INT],
            vec![note(STOPPING), Drain],
            draining(sigint.clone(), Interrupts::Once),
        ),
        (
            "a second SIGINT kills",
            vec![INT, INT],
            vec![
                note("SIGINT again: killing every worker"),
                Finish(interrupted("SIGINT twice")),
            ],
            Phase::Finishing(interrupted("SIGINT twice")),
        ),
        (
            "SIGTERM counts as SIGINT does",
            vec![TERM, TERM],
            vec![
                note("SIGTERM again: killing every worker"),
                Finish(interrupted("SIGTERM twice")),
            ],
            Phase::Finishing(interrupted("SIGTERM twice")),
        ),
        (
            "SIGQUIT kills at once",
            vec![QUIT],
            vec![
                note("SIGQUIT: ending the session now"),
                Finish(interrupted("SIGQUIT")),
            ],
            Phase::Finishing(interrupted("SIGQUIT")),
        ),
        (
            "SIGQUIT while draining kills",
            vec![INT, QUIT],
            vec![
                note("SIGQUIT: ending the session now"),
                Finish(interrupted("SIGQUIT")),
            ],
            Phase::Finishing(interrupted("SIGQUIT")),
        ),
        (
            "a signal while finishing does nothing",
            vec![QUIT, INT],
            vec![],
            Phase::Finishing(interrupted("SIGQUIT")),
        ),
        (
            "nor does a second one after the kill",
            vec![INT, INT, INT],
            vec![],
            Phase::Finishing(interrupted("SIGINT twice")),
        ),
    ]);
}

#[test]
fn drain_and_abort_ordering() {
    let sigint = interrupted("SIGINT");
    check(vec![
        (
            "--maxfail drains",
            vec![MAXFAIL],
            vec![note(MAXFAIL_NOTICE), Drain],
            draining(SessionEnd::MaxfailReached, Interrupts::None),
        ),
        (
            "a first SIGINT after --maxfail drains no more, but escalates",
            vec![MAXFAIL, INT],
            vec![note(STOPPING)],
            draining(sigint.clone(), Interrupts::Once),
        ),
        (
            "--maxfail after SIGINT does not lower the reason",
            vec![INT, MAXFAIL],
            vec![note(MAXFAIL_NOTICE)],
            draining(sigint.clone(), Interrupts::Once),
        ),
        (
            "a second SIGINT after --maxfail kills",
            vec![MAXFAIL, INT, INT],
            vec![
                note("SIGINT again: killing every worker"),
                Finish(interrupted("SIGINT twice")),
            ],
            Phase::Finishing(interrupted("SIGINT twice")),
        ),
        (
            "a worker's session exit drains",
            vec![exit("pytest.exit")],
            vec![note("w1 ended its test session: pytest.exit"), Drain],
            draining(interrupted("pytest.exit"), Interrupts::None),
        ),
        (
            "a worker's session exit beats --maxfail",
            vec![MAXFAIL, exit("bye")],
            vec![note("w1 ended its test session: bye")],
            draining(interrupted("bye"), Interrupts::None),
        ),
        (
            "the drained session finishes with its reason",
            vec![MAXFAIL, INT, done("w1"), done("w2")],
            vec![SlotGone("w2".into()), Finish(sigint.clone())],
            Phase::Finishing(sigint.clone()),
        ),
        (
            "an abort while draining beats the drain's reason",
            vec![MAXFAIL, Input::CollectionUnusable("duplicate ids".into())],
            vec![Finish(interrupted("duplicate ids"))],
            Phase::Finishing(interrupted("duplicate ids")),
        ),
        (
            "a milder end than the drain's keeps the drain's",
            vec![INT, Input::NoTests],
            vec![Finish(sigint.clone())],
            Phase::Finishing(sigint),
        ),
    ]);
}

#[test]
fn budget() {
    let spent = SessionEnd::Aborted("too many worker respawns (budget of 2 spent)".into());
    check(vec![
        (
            "a counted respawn is granted",
            vec![respawn("w1", true)],
            vec![Grant(true)],
            Phase::Running,
        ),
        (
            "until the budget is spent",
            vec![
                respawn("w1", true),
                respawn("w2", true),
                respawn("w1", true),
            ],
            vec![
                note("too many worker respawns (2 allowed); w1 would need another"),
                Finish(spent.clone()),
                Grant(false),
            ],
            Phase::Finishing(spent.clone()),
        ),
        (
            "uncounted respawns are always granted",
            vec![
                respawn("w1", true),
                respawn("w1", true),
                respawn("w1", false),
            ],
            vec![Grant(true)],
            Phase::Running,
        ),
        (
            "no respawn while draining, and no abort",
            vec![MAXFAIL, respawn("w1", true)],
            vec![Grant(false)],
            draining(SessionEnd::MaxfailReached, Interrupts::None),
        ),
        (
            "nor an uncounted one",
            vec![INT, respawn("w1", false)],
            vec![Grant(false)],
            draining(interrupted("SIGINT"), Interrupts::Once),
        ),
        (
            "draining refuses counted respawns without spending the budget",
            vec![
                INT,
                respawn("w1", true),
                respawn("w1", true),
                respawn("w1", true),
            ],
            vec![Grant(false)],
            draining(interrupted("SIGINT"), Interrupts::Once),
        ),
        (
            "nothing once finishing",
            vec![
                respawn("w1", true),
                respawn("w1", true),
                respawn("w1", true),
                respawn("w2", false),
            ],
            vec![Grant(false)],
            Phase::Finishing(spent),
        ),
    ]);
}

#[test]
fn an_empty_budget_allows_only_uncounted_respawns() {
    let mut s = session(&["w1"], 0);
    assert_eq!(last(&mut s, &[respawn("w1", false)]), vec![Grant(true)]);
    let effects = last(&mut s, &[respawn("w1", true)]);
    let spent = SessionEnd::Aborted("too many worker respawns (budget of 0 spent)".into());
    assert_eq!(effects[1..], [Finish(spent), Grant(false)]);
}

#[test]
fn a_budget_window_forgets_old_respawns() {
    let t = Instant::now();
    let mut s = Session::new(
        vec!["w1".into()],
        RespawnBudget::new(1, Some(Duration::from_secs(5))),
    );
    let at = |secs| t + Duration::from_secs(secs);
    assert_eq!(s.handle(respawn("w1", true), at(0)), vec![Grant(true)]);
    assert_eq!(s.handle(respawn("w1", true), at(5)), vec![Grant(true)]);
    assert_eq!(
        s.handle(respawn("w1", true), at(9)).last(),
        Some(&Grant(false))
    );
    assert!(s.is_finishing());
}

#[test]
fn retirement_and_completion() {
    let every_retired = SessionEnd::Aborted("every worker slot was retired".into());
    check(vec![
        (
            "a slot done for want of work tells the others",
            vec![done("w1")],
            vec![SlotGone("w1".into()), NoMoreWork],
            Phase::Running,
        ),
        (
            "a retired slot does not",
            vec![retired("w1")],
            vec![SlotGone("w1".into())],
            Phase::Running,
        ),
        (
            "a slot done twice, or unknown, is ignored",
            vec![done("w1"), done("w1"), done("w9")],
            vec![],
            Phase::Running,
        ),
        (
            "the last slot done asks what is left",
            vec![done("w1"), done("w2")],
            vec![SlotGone("w2".into()), CountRemaining],
            Phase::Running,
        ),
        (
            "nothing left: completed",
            vec![done("w1"), done("w2"), Input::Remaining(0)],
            vec![Finish(SessionEnd::Completed)],
            Phase::Finishing(SessionEnd::Completed),
        ),
        (
            "tests left: the first slot not retired is revived",
            vec![retired("w1"), done("w2"), Input::Remaining(3)],
            vec![
                note("3 tests are left and every worker has stopped; reviving w2"),
                Revive("w2".into()),
            ],
            Phase::Running,
        ),
        (
            "a stale count after the revival is ignored",
            vec![
                retired("w1"),
                done("w2"),
                Input::Remaining(3),
                Input::Remaining(0),
            ],
            vec![],
            Phase::Running,
        ),
        (
            "the revived slot done again",
            vec![
                retired("w1"),
                done("w2"),
                Input::Remaining(3),
                done("w2"),
                Input::Remaining(0),
            ],
            vec![Finish(SessionEnd::Completed)],
            Phase::Finishing(SessionEnd::Completed),
        ),
        (
            "every slot retired: aborted",
            vec![retired("w1"), retired("w2"), Input::Remaining(0)],
            vec![Finish(every_retired.clone())],
            Phase::Finishing(every_retired.clone()),
        ),
        (
            "every slot retired with tests left: aborted",
            vec![retired("w2"), retired("w1"), Input::Remaining(5)],
            vec![Finish(every_retired.clone())],
            Phase::Finishing(every_retired),
        ),
        (
            "a drain between the question and the answer: no revival",
            vec![retired("w1"), done("w2"), MAXFAIL, Input::Remaining(3)],
            vec![Finish(SessionEnd::MaxfailReached)],
            Phase::Finishing(SessionEnd::MaxfailReached),
        ),
        (
            "draining: the last slot done finishes without asking",
            vec![MAXFAIL, retired("w1"), done("w2")],
            vec![SlotGone("w2".into()), Finish(SessionEnd::MaxfailReached)],
            Phase::Finishing(SessionEnd::MaxfailReached),
        ),
    ]);
}

#[test]
fn starting_and_collecting() {
    let mut none = session(&[], 2);
    let no_workers = SessionEnd::Aborted("no workers to run the tests".into());
    assert_eq!(last(&mut none, &[Input::Started]), vec![Finish(no_workers)]);
    check(vec![
        (
            "slots to run: nothing to do",
            vec![Input::Started],
            vec![],
            Phase::Running,
        ),
        (
            "one collection error",
            vec![Input::CollectionErrors(1)],
            vec![Finish(interrupted("1 error during collection"))],
            Phase::Finishing(interrupted("1 error during collection")),
        ),
        (
            "several",
            vec![Input::CollectionErrors(3)],
            vec![Finish(interrupted("3 errors during collection"))],
            Phase::Finishing(interrupted("3 errors during collection")),
        ),
        (
            "no tests: completed",
            vec![Input::NoTests],
            vec![Finish(SessionEnd::Completed)],
            Phase::Finishing(SessionEnd::Completed),
        ),
    ]);
}

#[test]
fn finish_happens_once() {
    let every_input = || {
        vec![
            Input::Started,
            INT,
            TERM,
            QUIT,
            MAXFAIL,
            exit("bye"),
            respawn("w1", true),
            respawn("w1", false),
            done("w1"),
            retired("w2"),
            Input::Remaining(4),
            Input::CollectionErrors(2),
            Input::CollectionUnusable("dup".into()),
            Input::NoTests,
        ]
    };
    // Whatever ends the session, and whatever comes after, exactly one Finish and one Drain at
    // most are emitted, and the end never changes once finishing.
    for first in every_input() {
        for second in every_input() {
            let mut s = session(&["w1", "w2"], 1);
            let mut inputs = vec![first.clone(), second.clone(), QUIT];
            inputs.extend(every_input());
            let effects: Vec<Effect> = feed(&mut s, &inputs, Instant::now())
                .into_iter()
                .flatten()
                .collect();
            let finishes: Vec<&Effect> =
                effects.iter().filter(|e| matches!(e, Finish(_))).collect();
            let drains = effects.iter().filter(|e| **e == Drain).count();
            assert_eq!(finishes.len(), 1, "{first:?}, {second:?}: {effects:?}");
            assert!(drains <= 1, "{first:?}, {second:?}: {effects:?}");
            let Finish(end) = finishes[0] else {
                unreachable!()
            };
            assert_eq!(s.phase(), &Phase::Finishing(end.clone()));
        }
    }
}

#[test]
fn while_finishing_only_notices_and_refusals() {
    let mut s = session(&["w1", "w2"], 2);
    s.handle(QUIT, Instant::now());
    let cases = [
        (INT, vec![]),
        (QUIT, vec![]),
        (MAXFAIL, vec![note(MAXFAIL_NOTICE)]),
        (exit("bye"), vec![note("w1 ended its test session: bye")]),
        (respawn("w1", false), vec![Grant(false)]),
        (done("w1"), vec![SlotGone("w1".into())]),
        (done("w2"), vec![SlotGone("w2".into())]),
        (Input::Remaining(3), vec![]),
        (Input::NoTests, vec![]),
    ];
    for (input, effects) in cases {
        assert_eq!(
            s.handle(input.clone(), Instant::now()),
            effects,
            "{input:?}"
        );
    }
    assert_eq!(s.phase(), &Phase::Finishing(interrupted("SIGQUIT")));
}

#[test]
fn slots_made_during_the_session_and_workers_that_left() {
    check(vec![
        (
            "a worker that left does not stop the slots awaiting one",
            vec![Input::WorkerLeft("w1".into())],
            vec![SlotGone("w1".into())],
            Phase::Running,
        ),
        (
            "a slot made for a joiner is live: the session waits for it",
            vec![Input::SlotAdded("w3".into()), done("w1"), done("w2")],
            vec![SlotGone("w2".into()), NoMoreWork],
            Phase::Running,
        ),
        (
            "the last to leave asks what is left",
            vec![
                Input::WorkerLeft("w1".into()),
                Input::WorkerLeft("w2".into()),
            ],
            vec![SlotGone("w2".into()), CountRemaining],
            Phase::Running,
        ),
    ]);
    // A slot added while finishing is not.
    let mut s = session(&["w1"], 1);
    last(&mut s, &[QUIT, Input::SlotAdded("w2".into())]);
    assert!(!s.live().contains("w2"));
}
