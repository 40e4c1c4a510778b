//! The pool without processes or sockets: each test is a script of inputs and the effects each
//! one must produce, written as short lines (`w1#1 <- [a b]` is an assignment, `ask w1#1 for
//! w2 (0)` a steal request, the rest events).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::grouping::{ByFile, Modscope, OneByOne};

mod min_workers;

fn ids(list: &[&str]) -> Vec<TestId> {
    list.iter().map(|s| s.to_string()).collect()
}

fn pool(grouping: Arc<dyn GroupingPolicy>, workers: usize, providers: &str) -> Pool {
    Pool::new(
        grouping,
        History::default(),
        workers,
        Providers::parse(providers),
        0,
    )
}

fn reference(tests: &[&str]) -> PoolInput {
    PoolInput::Reference(Arc::new(Reference::whole(ids(tests), BTreeMap::new())))
}

fn req(worker: &str, incarnation: u32) -> PoolInput {
    holding(worker, incarnation, &[])
}

fn holding(worker: &str, incarnation: u32, tests: &[&str]) -> PoolInput {
    PoolInput::Request(Request {
        worker: worker.into(),
        incarnation,
        collected: None,
        holding: ids(tests),
    })
}

fn collected(worker: &str, files: &[&str]) -> PoolInput {
    let files: HashSet<String> = files.iter().map(|f| f.to_string()).collect();
    PoolInput::Request(Request {
        worker: worker.into(),
        incarnation: 1,
        collected: Some(Arc::new(files)),
        holding: Vec::new(),
    })
}

fn returned(worker: &str, tests: &[&str], crashed: Option<&str>, stolen: bool) -> PoolInput {
    PoolInput::Returned {
        worker: worker.into(),
        tests: ids(tests),
        crashed: crashed.map(|test| Crash {
            test: test.into(),
            duration: 1.5,
            details: "exit status 9\nlast line".into(),
        }),
        stolen,
    }
}

/// The unstarted tests of a dead worker, and the test it was running.
fn died(worker: &str, tests: &[&str], crashed: Option<&str>) -> PoolInput {
    returned(worker, tests, crashed, false)
}

/// The answer to a steal request.
fn released(worker: &str, tests: &[&str]) -> PoolInput {
    returned(worker, tests, None, true)
}

fn settled(worker: &str, count: usize) -> PoolInput {
    PoolInput::Settled {
        worker: worker.into(),
        count,
    }
}

fn gone(worker: &str) -> PoolInput {
    PoolInput::Gone {
        worker: worker.into(),
    }
}

fn show(effect: &PoolEffect) -> String {
    match effect {
        PoolEffect::Assign {
            worker,
            incarnation,
            tests,
            switch,
        } => {
            let switch = switch
                .as_ref()
                .map_or(String::new(), |(f, t)| format!(" switch {f}->{t}"));
            format!("{worker}#{incarnation} <- [{}]{switch}", tests.join(" "))
        }
        PoolEffect::AskBack {
            worker,
            incarnation,
            thief,
            thief_load,
        } => {
            // An empty sum is -0; shown as 0.
            let load = thief_load + 0.0;
            format!("ask {worker}#{incarnation} for {thief} ({load})")
        }
        PoolEffect::Publish(event) => match event {
            Event::GroupSent {
                worker,
                tests,
                sent,
                total,
            } => format!("sent {worker} {tests} ({sent}/{total})"),
            Event::TestsRequeued { worker, tests } => {
                format!("requeued from {worker} [{}]", tests.join(" "))
            }
            Event::WorkStolen { from, tests } => format!("stolen from {from}: {tests}"),
            Event::TestFinished {
                test,
                worker,
                verdict,
            } => format!(
                "{:?} {test} on {} ({}s, {:?})",
                verdict.outcome,
                worker.as_deref().unwrap_or("-"),
                verdict.duration,
                verdict.message.as_deref().unwrap_or("")
            ),
            other => format!("{other:?}"),
        },
    }
}

/// Plays `steps`, one millisecond apart, asserting each input's effects (`sent` events left
/// out unless `with_sent`).
fn play_with(pool: &mut Pool, t0: Instant, with_sent: bool, steps: Vec<(PoolInput, &[&str])>) {
    for (i, (input, expected)) in steps.into_iter().enumerate() {
        let what = format!("step {i}: {input:?}");
        let now = t0 + Duration::from_millis(i as u64);
        let effects: Vec<String> = pool
            .handle(input, now)
            .iter()
            .map(show)
            .filter(|e| with_sent || !e.starts_with("sent "))
            .collect();
        assert_eq!(effects, expected, "{what}");
    }
}

fn play(pool: &mut Pool, steps: Vec<(PoolInput, &[&str])>) {
    play_with(pool, Instant::now(), false, steps);
}

const NONE: &[&str] = &[];

/// A grouping mode, the number of workers, the collection, and what consecutive requests of
/// one worker are dealt.
type DealCase<'a> = (
    Arc<dyn GroupingPolicy>,
    usize,
    Vec<&'a str>,
    Vec<Vec<&'a str>>,
);

#[test]
fn dealing_order_and_chunking() {
    // (mode, workers, collection, the assignments of consecutive requests by one worker)
    let forty: Vec<String> = (0..40).map(|i| format!("m.py::t{i:02}")).collect();
    let forty: Vec<&str> = forty.iter().map(String::as_str).collect();
    let a: Vec<String> = (0..20).map(|i| format!("a.py::t[{i}]")).collect();
    let b: Vec<String> = (0..20).map(|i| format!("b.py::t[{i}]")).collect();
    let ab: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
    let cases: Vec<DealCase> = vec![
        // load: chunks of a quarter of the worker's share, shrinking towards the end.
        (
            Arc::new(OneByOne),
            1,
            forty.clone(),
            vec![
                forty[0..9].to_vec(),
                forty[9..16].to_vec(),
                forty[16..21].to_vec(),
                forty[21..25].to_vec(),
            ],
        ),
        // two workers: chunks half as long.
        (
            Arc::new(OneByOne),
            2,
            forty.clone(),
            vec![forty[0..4].to_vec(), forty[4..8].to_vec()],
        ),
        // modscope: a module's parametrizations go out together, never past the module.
        (
            Arc::new(Modscope),
            1,
            ab.clone(),
            vec![
                ab[0..9].to_vec(),
                ab[9..16].to_vec(),
                ab[16..20].to_vec(),
                ab[20..24].to_vec(),
            ],
        ),
        // file: one module per request, however short.
        (
            Arc::new(ByFile),
            1,
            ab.clone(),
            vec![ab[0..20].to_vec(), ab[20..40].to_vec(), vec![]],
        ),
    ];
    for (mode, workers, tests, expected) in cases {
        let mut pool = pool(mode.clone(), workers, "");
        assert!(pool.handle(reference(&tests), Instant::now()).is_empty());
        for (i, chunk) in expected.iter().enumerate() {
            let effects = pool.handle(req("w1", 1), Instant::now());
            let PoolEffect::Assign { tests: got, .. } = effects.last().unwrap() else {
                panic!("{mode:?} request {i}: {effects:?}");
            };
            assert_eq!(got, chunk, "{mode:?} with {workers} workers, request {i}");
            pool.handle(settled("w1", got.len()), Instant::now());
        }
    }
}

#[test]
fn a_group_sent_is_published_before_its_assignment_and_counts_returns() {
    let mut pool = pool(Arc::new(ByFile), 2, "");
    play_with(
        &mut pool,
        Instant::now(),
        true,
        vec![
            (reference(&["a.py::1", "a.py::2", "b.py::1"]), NONE),
            (
                req("w1", 1),
                &["sent w1 2 (2/3)", "w1#1 <- [a.py::1 a.py::2]"],
            ),
            (
                died("w1", &["a.py::2"], None),
                &["requeued from w1 [a.py::2]"],
            ),
            (req("w2", 1), &["sent w2 1 (2/3)", "w2#1 <- [a.py::2]"]),
        ],
    );
    assert_eq!(pool.remaining(), 1);
}

#[test]
fn longest_first_and_collected_files_first() {
    let mut history = History::default();
    history.record([("b.py::slow".to_string(), 9.0), ("a.py::quick".into(), 0.1)]);
    let mut pool = Pool::new(Arc::new(ByFile), history, 2, Providers::default(), 0);
    let tests = ["a.py::quick", "b.py::slow", "c.py::x", "d.py::y"];
    play(
        &mut pool,
        vec![
            (reference(&tests), NONE),
            // LPT: the slow file first; unknown tests count as the mean (4.55 s).
            (req("w1", 1), &["w1#1 <- [b.py::slow]"]),
            // A worker that collected only d.py is dealt d.py first.
            (collected("w2", &["d.py"]), &["w2#1 <- [d.py::y]"]),
            // Nothing of its files left: the queue's order.
            (collected("w2", &["d.py"]), &["w2#1 <- [c.py::x]"]),
        ],
    );
}

#[test]
fn provider_affinity() {
    let mut pool = pool(Arc::new(Modscope), 2, "p1,p2");
    let tests = ["a.py::t[p1]", "b.py::t[p1]", "c.py::t[p2]", "d.py::t"];
    play(
        &mut pool,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), &["w1#1 <- [a.py::t[p1]]"]),
            // p1 is held by w1: w2 takes the free provider.
            (req("w2", 1), &["w2#1 <- [c.py::t[p2]]"]),
            (req("w2", 1), &["w2#1 <- [d.py::t]"]),
            // Only p1's group is left and w1 holds p1: w2, still holding tests, hears "no more".
            (req("w2", 1), &["w2#1 <- []"]),
            (settled("w2", 2), NONE),
            // Idle, it waits instead (w1 may die and its provider come free).
            (req("w2", 1), NONE),
            (req("w1", 1), &["w1#1 <- [b.py::t[p1]]"]),
            (settled("w1", 1), NONE),
            // w1 dies with b's test unstarted: p1 stays w1's (its next incarnation takes the
            // group), and w2, with nothing out anywhere, hears "no more".
            (
                died("w1", &["b.py::t[p1]"], None),
                &["requeued from w1 [b.py::t[p1]]", "w2#1 <- []"],
            ),
            (req("w1", 2), &["w1#2 <- [b.py::t[p1]]"]),
        ],
    );
    let mut pool = self::pool(Arc::new(Modscope), 2, "p1,p2");
    play(
        &mut pool,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), &["w1#1 <- [a.py::t[p1]]"]),
            (req("w2", 1), &["w2#1 <- [c.py::t[p2]]"]),
            (gone("w1"), NONE),
            // w1 is gone and p1 free, but w2 first takes what needs no switch.
            (req("w2", 1), &["w2#1 <- [d.py::t]"]),
            (req("w2", 1), &["w2#1 <- [b.py::t[p1]] switch p2->p1"]),
        ],
    );
    assert_eq!(pool.worker("w2").unwrap().provider.as_deref(), Some("p1"));
    assert_eq!(pool.worker("w1").unwrap().provider, None);
}

#[test]
fn an_idle_request_waits_while_others_hold_tests_and_is_served_when_they_come_back() {
    let mut pool = pool(Arc::new(OneByOne), 2, "");
    play(
        &mut pool,
        vec![
            (reference(&["t1", "t2"]), NONE),
            (req("w1", 1), &["w1#1 <- [t1]"]),
            (req("w2", 1), &["w2#1 <- [t2]"]),
            // w1 still holds t1 (no outcome yet): told at once.
            (req("w1", 1), &["w1#1 <- []"]),
            (settled("w1", 1), NONE),
            // Idle while w2 holds t2 (one test: nothing to steal): parked.
            (req("w1", 1), NONE),
            (settled("w2", 0), NONE),
            // w2 dies before t2 starts: w1 takes it.
            (
                died("w2", &["t2"], None),
                &["requeued from w2 [t2]", "w1#1 <- [t2]"],
            ),
            (req("w2", 2), NONE),
            // t2 finished: nothing is out, the parked request hears "no more".
            (settled("w1", 1), &["w2#2 <- []"]),
        ],
    );
    assert!(pool.worker("w2").unwrap().parked.is_none());
}

#[test]
fn parked_requests_are_served_in_the_order_they_came_and_replaced_by_newer_ones() {
    let mut pool = pool(Arc::new(OneByOne), 3, "");
    play(
        &mut pool,
        vec![
            (reference(&["t1"]), NONE),
            (req("w1", 1), &["w1#1 <- [t1]"]),
            (req("w3", 1), NONE),
            (req("w2", 1), NONE),
            // A newer request of w3 replaces its older one and goes to the back.
            (req("w3", 2), NONE),
            (
                died("w1", &["t1"], None),
                &["requeued from w1 [t1]", "w2#1 <- [t1]"],
            ),
            (gone("w1"), NONE),
            (settled("w2", 1), &["w3#2 <- []"]),
        ],
    );
}

/// w1 holds a.py (4 tests), w2 ran b.py and is idle: it asks w1 for tests back.
fn stealing(crash_retries: u32) -> Pool {
    let mut pool = Pool::new(
        Arc::new(ByFile),
        History::default(),
        2,
        Providers::default(),
        crash_retries,
    );
    let tests = ["a.py::1", "a.py::2", "a.py::3", "a.py::4", "b.py::1"];
    play(
        &mut pool,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), &["w1#1 <- [a.py::1 a.py::2 a.py::3 a.py::4]"]),
            (req("w2", 1), &["w2#1 <- [b.py::1]"]),
            (settled("w2", 1), NONE),
            (req("w2", 1), &["ask w1#1 for w2 (0)"]),
        ],
    );
    pool
}

#[test]
fn a_steal_is_dealt_to_the_thief() {
    let mut pool = stealing(0);
    play(
        &mut pool,
        vec![
            (
                released("w1", &["a.py::3", "a.py::4"]),
                &["stolen from w1: 2", "w2#1 <- [a.py::3 a.py::4]"],
            ),
            (settled("w1", 2), NONE),
            (settled("w2", 2), NONE),
            (req("w1", 1), &["w1#1 <- []"]),
        ],
    );
}

#[test]
fn the_victim_dies_before_answering_and_the_thief_gets_what_it_returned() {
    let mut pool = stealing(0);
    play(
        &mut pool,
        vec![
            (
                died("w1", &["a.py::3", "a.py::4"], Some("a.py::2")),
                &[
                    "Crashed a.py::2 on w1 (1.5s, \"exit status 9\")",
                    "requeued from w1 [a.py::3 a.py::4]",
                    "w2#1 <- [a.py::3 a.py::4]",
                ],
            ),
            // w1 finished a.py::1 before it died; its late answer to the steal brings nothing.
            (settled("w1", 1), NONE),
            (req("w1", 2), &["ask w2#1 for w1 (0)"]),
            (released("w1", &[]), NONE),
            // w1#2 still waits for w2's answer, which is dealt to it.
            (
                released("w2", &["a.py::4"]),
                &["stolen from w2: 1", "w1#2 <- [a.py::4]"],
            ),
        ],
    );
    assert_eq!(pool.worker("w1").unwrap().in_flight, 1);
    assert_eq!(pool.worker("w2").unwrap().in_flight, 1);
}

#[test]
fn an_unanswered_steal_does_not_outlive_the_victims_incarnation() {
    let mut pool = stealing(1);
    play(
        &mut pool,
        vec![
            // w1#1 dies without answering; a.py::1 is re-run (one crash retry).
            (
                died("w1", &["a.py::2", "a.py::3", "a.py::4"], Some("a.py::1")),
                &[
                    "requeued from w1 [a.py::1 a.py::2 a.py::3 a.py::4]",
                    "w2#1 <- [a.py::1 a.py::2 a.py::3 a.py::4]",
                ],
            ),
            (settled("w2", 1), NONE),
            // w1#2 is idle: w2 is asked for it.
            (req("w1", 2), &["ask w2#1 for w1 (0)"]),
            (
                released("w2", &["a.py::3", "a.py::4"]),
                &["stolen from w2: 2", "w1#2 <- [a.py::3 a.py::4]"],
            ),
            (settled("w2", 1), NONE),
            // w1#1 never answered, but w1#2 is another process: it is asked (at the share it
            // was once asked at as w1#1, 4, it would not be).
            (req("w2", 1), &["ask w1#2 for w2 (0)"]),
            (
                released("w1", &["a.py::4"]),
                &["stolen from w1: 1", "w2#1 <- [a.py::4]"],
            ),
        ],
    );
    assert_eq!(pool.worker("w1").unwrap().in_flight, 1);
    assert_eq!(pool.worker("w2").unwrap().in_flight, 1);
}

#[test]
fn a_victim_is_asked_again_only_after_its_share_changed() {
    let t0 = Instant::now();
    let mut pool = stealing(0);
    play_with(
        &mut pool,
        t0,
        false,
        vec![
            // Nothing to give: w2 waits, w1 is not asked again at the same share.
            (released("w1", &[]), NONE),
            (req("w2", 1), NONE),
            // A third worker finds the pool empty too: w1 is asked for it once its share changed.
            (req("w3", 1), NONE),
            (settled("w1", 1), &["ask w1#1 for w2 (0)"]),
            // Asked and not yet answered: not asked again, whoever waits.
            (settled("w1", 0), NONE),
            (req("w3", 1), NONE),
            (released("w1", &[]), NONE),
            (settled("w1", 1), &["ask w1#1 for w2 (0)"]),
            (released("w1", &[]), NONE),
            // One test left (the running one): nobody is asked; once it is done, "no more".
            (settled("w1", 1), NONE),
            (settled("w1", 1), &["w2#1 <- []", "w3#1 <- []"]),
        ],
    );
    let asked = pool.worker("w1").unwrap().asked.unwrap();
    assert_eq!((asked.share, asked.at), (2, t0 + Duration::from_millis(7)));
}

#[test]
fn the_busiest_worker_is_asked_and_the_thief_load_is_its_unstarted_tests() {
    let mut pool = pool(Arc::new(ByFile), 3, "");
    let tests = [
        "a.py::1", "a.py::2", "b.py::1", "b.py::2", "b.py::3", "c.py::1",
    ];
    play(
        &mut pool,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), &["w1#1 <- [a.py::1 a.py::2]"]),
            (req("w2", 1), &["w2#1 <- [b.py::1 b.py::2 b.py::3]"]),
            (req("w3", 1), &["w3#1 <- [c.py::1]"]),
            // w3 holds c.py::1 (1 s expected without a history); b's worker holds the most.
            (holding("w3", 1, &["c.py::1"]), &["ask w2#1 for w3 (1)"]),
            // An answer is on its way: even a worker holding a test waits for it.
            (holding("w1", 1, &["a.py::2"]), NONE),
            // The first to wait gets what came back; w2's share changed, so it is asked again
            // for the other, which holds 1 s of work.
            (
                released("w2", &["b.py::3"]),
                &[
                    "stolen from w2: 1",
                    "w3#1 <- [b.py::3]",
                    "ask w2#1 for w1 (1)",
                ],
            ),
        ],
    );
    assert_eq!(pool.steal_policy().expected("c.py::1"), 1.0);
}

#[test]
fn crash_retries() {
    // (retries allowed, crashes of one test) -> what each crash produces
    for retries in 0..3u32 {
        let mut pool = Pool::new(
            Arc::new(OneByOne),
            History::default(),
            1,
            Providers::default(),
            retries,
        );
        pool.handle(reference(&["t"]), Instant::now());
        for attempt in 1..=retries + 1 {
            let served = pool.handle(req("w1", attempt), Instant::now());
            assert_eq!(show(served.last().unwrap()), format!("w1#{attempt} <- [t]"));
            let effects = pool.handle(died("w1", &[], Some("t")), Instant::now());
            if let [PoolEffect::Publish(Event::TestFinished { verdict, .. })] = &effects[..] {
                assert_eq!(verdict.details.as_deref(), Some("exit status 9\nlast line"));
            }
            let effects: Vec<String> = effects.iter().map(show).collect();
            let expected = if attempt <= retries {
                vec!["requeued from w1 [t]".to_string()]
            } else {
                vec!["Crashed t on w1 (1.5s, \"exit status 9\")".to_string()]
            };
            assert_eq!(effects, expected, "{retries} retries, crash {attempt}");
        }
        assert_eq!(pool.remaining(), 0);
        assert_eq!(pool.worker("w1").unwrap().in_flight, 0);
    }
}

#[test]
fn halt_clears_the_queue_and_answers_parked_workers_empty() {
    let mut pool = pool(Arc::new(OneByOne), 2, "");
    play(
        &mut pool,
        vec![
            (reference(&["t1", "t2", "t3"]), NONE),
            (req("w1", 1), &["w1#1 <- [t1]"]),
            (PoolInput::Halt, NONE),
            (req("w2", 1), &["w2#1 <- []"]),
        ],
    );
    assert_eq!(pool.remaining(), 0);
    let mut pool = stealing(0);
    play(
        &mut pool,
        vec![
            (req("w3", 1), NONE),
            (PoolInput::Halt, &["w2#1 <- []", "w3#1 <- []"]),
            (req("w2", 1), &["w2#1 <- []"]),
            // Tests that come back after the halt are not dealt again.
            (
                died("w1", &["a.py::3", "a.py::4"], None),
                &["requeued from w1 [a.py::3 a.py::4]"],
            ),
            (req("w1", 2), &["w1#2 <- []"]),
        ],
    );
    assert_eq!(pool.remaining(), 0);
    assert!(pool.worker("w3").unwrap().parked.is_none());
}
