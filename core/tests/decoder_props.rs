//! Property tests of the frame decoder: any bytes are decoded or refused with an error, never a
//! panic; every message survives encoding; a batch is its messages in order; frames over the
//! size limit are refused.

use herd_core::outcome::{Phase, PhaseOutcome};
use herd_core::protocol::*;
use proptest::prelude::*;

fn test_id() -> impl Strategy<Value = String> {
    "[a-z_/.]{1,12}(::[a-zA-Z_]{1,10})?(\\[[a-z0-9-]{1,6}\\])?"
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![Just(Phase::Setup), Just(Phase::Call), Just(Phase::Teardown)]
}

fn phase_outcome() -> impl Strategy<Value = PhaseOutcome> {
    prop_oneof![
        Just(PhaseOutcome::Passed),
        Just(PhaseOutcome::Failed),
        Just(PhaseOutcome::Skipped),
        Just(PhaseOutcome::Rerun)
    ]
}

fn message() -> impl Strategy<Value = WorkerMessage> {
    prop_oneof![
        (any::<u32>(), "[a-z0-9]{1,4}", any::<u32>(), ".{0,40}").prop_map(
            |(protocol, worker, incarnation, token)| {
                WorkerMessage::Hello {
                    protocol,
                    worker,
                    incarnation,
                    token,
                    pid: None,
                    heartbeat: None,
                    fingerprint: None,
                }
            }
        ),
        prop::collection::vec(test_id(), 0..20).prop_map(WorkerMessage::collection),
        Just(WorkerMessage::NeedTests),
        Just(WorkerMessage::Heartbeat),
        test_id().prop_map(|test| WorkerMessage::TestStarted { test }),
        (
            test_id(),
            phase(),
            phase_outcome(),
            (0u32..1_000_000).prop_map(|n| f64::from(n) / 1024.0),
            proptest::option::of(".{0,200}")
        )
            .prop_map(|(test, when, outcome, duration, longrepr)| {
                WorkerMessage::Report(PhaseReport {
                    longrepr,
                    ..PhaseReport::new(test, when, outcome, duration)
                })
            }),
        ".{0,80}".prop_map(|text| WorkerMessage::Message { text }),
        Just(WorkerMessage::Shutdown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_decode_or_fail_cleanly(frame in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_worker_frame(&frame);
        let _ = decode_worker_message(&frame);
        let _ = decode_coordinator_message(&frame);
    }

    #[test]
    fn json_shaped_noise_decodes_or_fails_cleanly(frame in r#"[\[\]{}":,0-9a-z_ .-]{0,200}"#) {
        let _ = decode_worker_frame(frame.as_bytes());
    }

    #[test]
    fn every_message_round_trips(msg in message()) {
        prop_assert_eq!(decode_worker_message(&encode(&msg)).unwrap(), msg.clone());
        prop_assert_eq!(decode_worker_frame(&encode(&msg)).unwrap(), vec![msg]);
    }

    #[test]
    fn a_batch_is_its_messages_in_order(batch in prop::collection::vec(message(), 1..8)) {
        prop_assert_eq!(decode_worker_frame(&encode(&batch)).unwrap(), batch);
    }

    #[test]
    fn a_mangled_message_never_panics(msg in message(), cut in 0usize..64, flip in any::<u8>()) {
        let mut frame = encode(&msg);
        let at = cut.min(frame.len().saturating_sub(1));
        if !frame.is_empty() {
            frame[at] ^= flip;
            frame.truncate(frame.len() - cut.min(frame.len()) / 2);
        }
        let _ = decode_worker_frame(&frame);
    }
}

/// Text a report may carry that strict JSON cannot: lone surrogate escapes (what Python's `json`
/// writes for a `surrogateescape`d byte), bytes that are not UTF-8, NUL and other control
/// characters written raw.
fn odd_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[a-z \\n]{0,6}".prop_map(String::into_bytes),
        (0xd800u32..0xe000).prop_map(|u| format!("\\u{u:04x}").into_bytes()),
        Just(b"\\ud83d\\ude00".to_vec()),
        (0x80u8..=0xff).prop_map(|b| vec![b]),
        (0u8..0x20).prop_map(|b| vec![b]),
        Just("é✓".as_bytes().to_vec()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A report is never dropped for its text: whatever its failure text holds, the frame
    /// decodes, and the report keeps its test, phase and outcome (a failure stays a failure).
    #[test]
    fn a_report_with_odd_text_is_never_dropped(text in odd_text(), outcome in phase_outcome()) {
        let word = match outcome {
            PhaseOutcome::Passed => "passed",
            PhaseOutcome::Failed => "failed",
            PhaseOutcome::Skipped => "skipped",
            _ => "rerun",
        };
        let mut frame = format!(
            r#"[{{"type":"report","test":"t.py::x","when":"call","outcome":"{word}","longrepr":""#
        )
        .into_bytes();
        frame.extend_from_slice(&text);
        frame.extend_from_slice(br#""},{"type":"test_started","test":"t.py::y"}]"#);
        let decoded = decode_worker_frame(&frame);
        prop_assert!(decoded.is_ok(), "{:?} for {:?}", decoded, String::from_utf8_lossy(&frame));
        let decoded = decoded.unwrap();
        match &decoded[0] {
            WorkerMessage::Report(r) => {
                prop_assert_eq!(&r.test, "t.py::x");
                prop_assert_eq!(r.outcome, outcome);
            }
            other => prop_assert!(false, "not a report: {:?}", other),
        }
        prop_assert_eq!(decoded.len(), 2);
    }
}

#[test]
fn an_unknown_outcome_word_decodes_and_is_never_a_pass() {
    let frame = br#"{"type":"report","test":"t","when":"call","outcome":"flaky"}"#;
    let WorkerMessage::Report(report) = decode_worker_message(frame).unwrap() else {
        panic!("not a report");
    };
    assert_eq!(report.outcome, PhaseOutcome::Other);
}

#[test]
fn frames_over_the_limit_are_refused() {
    let big = format!(
        "[{}]",
        vec![r#"{"type":"need_tests"}"#; MAX_FRAME_BYTES / 20].join(",")
    );
    assert!(big.len() > MAX_FRAME_BYTES);
    assert!(matches!(
        decode_worker_frame(big.as_bytes()),
        Err(DecodeError::TooLarge(_))
    ));
}
