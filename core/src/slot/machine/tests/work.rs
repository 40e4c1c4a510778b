//! Hello, collection and work: early requests, shards, stale verdicts, condemned processes,
//! draining.

use super::*;

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
