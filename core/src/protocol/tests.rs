//! Unit tests of [`super`].

use super::*;

#[test]
fn messages_round_trip_with_a_type_tag() {
    let hello = WorkerMessage::Hello {
        protocol: 1,
        worker: "w1".into(),
        incarnation: 2,
        token: "t".into(),
        pid: Some(42),
        heartbeat: Some(1.0),
        fingerprint: Some("herd 0.1.0 | abc".into()),
    };
    let frame = encode(&hello);
    assert!(String::from_utf8_lossy(&frame).contains(r#""type":"hello""#));
    assert_eq!(decode_worker_message(&frame).unwrap(), hello);

    let report = WorkerMessage::Report(PhaseReport::new(
        "a::b",
        Phase::Teardown,
        PhaseOutcome::Passed,
        0.5,
    ));
    assert_eq!(decode_worker_message(&encode(&report)).unwrap(), report);
    let tests = CoordinatorMessage::Tests {
        tests: vec!["x".into()],
    };
    assert_eq!(decode_coordinator_message(&encode(&tests)).unwrap(), tests);
}

#[test]
fn minimal_report_needs_only_test_when_outcome() {
    let msg = decode_worker_message(
        br#"{"type":"report","test":"t","when":"call","outcome":"failed","extra":1}"#,
    )
    .unwrap();
    match msg {
        WorkerMessage::Report(r) => {
            assert_eq!(r.when, Phase::Call);
            assert_eq!(r.outcome, PhaseOutcome::Failed);
            assert_eq!(r.duration, 0.0);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn garbage_is_a_decode_error_not_a_panic() {
    for frame in [
        &b""[..],
        b"\xff\xfe",
        b"{}",
        b"[1,2]",
        br#"{"type":"nope"}"#,
        b"null",
    ] {
        assert!(matches!(
            decode_worker_message(frame),
            Err(DecodeError::Malformed(_))
        ));
    }
    let big = vec![b' '; MAX_FRAME_BYTES + 1];
    assert_eq!(
        decode_worker_message(&big),
        Err(DecodeError::TooLarge(MAX_FRAME_BYTES + 1))
    );
}

#[test]
fn a_frame_may_hold_a_batch() {
    let batch = br#" [{"type":"need_tests"},{"type":"test_started","test":"t"}]"#;
    assert_eq!(
        decode_worker_frame(batch).unwrap(),
        vec![
            WorkerMessage::NeedTests,
            WorkerMessage::TestStarted { test: "t".into() }
        ]
    );
    assert_eq!(
        decode_worker_frame(br#"{"type":"shutdown"}"#).unwrap(),
        vec![WorkerMessage::Shutdown]
    );
    assert!(decode_worker_frame(br#"[{"type":"need_tests"},{"type":"bogus"}]"#).is_err());
    assert!(decode_worker_frame(b"[").is_err());
}

#[test]
fn hello_is_checked_for_version_and_token() {
    let token = Token::generate();
    assert_eq!(token.as_str().len(), 32);
    assert!(check_hello(1, token.as_str(), &token).is_ok());
    assert!(check_hello(2, token.as_str(), &token)
        .unwrap_err()
        .contains("version 2"));
    assert!(check_hello(1, "nope", &token)
        .unwrap_err()
        .contains("token"));
    assert!(!token.matches(""));
    assert_ne!(Token::generate().as_str(), token.as_str());
    assert!(!format!("{token:?}").contains(token.as_str()));
}

#[test]
fn fingerprints_must_match_and_name_both() {
    let ours = fingerprint("0.1.0", Some("abc\n"));
    assert_eq!(ours, "herd 0.1.0 | abc");
    assert_eq!(fingerprint("0.1.0", None), "herd 0.1.0");
    assert!(check_fingerprint(Some(&ours), &ours, true).is_ok());
    let why = check_fingerprint(Some("herd 0.1.0 | def"), &ours, false).unwrap_err();
    assert!(why.contains("abc") && why.contains("def"), "{why}");
    assert!(check_fingerprint(None, &ours, false).is_ok());
    assert!(check_fingerprint(None, &ours, true)
        .unwrap_err()
        .contains("no fingerprint"));
    // Older workers' hellos, without the field, still decode.
    let old = br#"{"type":"hello","protocol":1,"worker":"w1","incarnation":1,"token":"t"}"#;
    assert!(matches!(
        decode_worker_message(old),
        Ok(WorkerMessage::Hello {
            fingerprint: None,
            ..
        })
    ));
}

#[test]
fn socket_identities_are_unpredictable_and_checked_against_the_hello() {
    let a = socket_identity("w3", 2);
    let b = socket_identity("w3", 2);
    assert_ne!(a, b);
    assert!(
        a.starts_with("w3.2.") && a.len() == "w3.2.".len() + NONCE_HEX,
        "{a}"
    );
    assert_eq!(check_identity(a.as_bytes(), "w3", 2), Ok(()));
    assert!(check_identity(a.as_bytes(), "w3", 1).is_err());
    assert!(check_identity(a.as_bytes(), "w", 32).is_err());
    for bad in [
        "w3.2",
        "w3.2.",
        "w3.2.1234",
        "w3.2.XYZ0123456789abcdef",
        "w3.20.0123456789abcdef",
    ] {
        let why = check_identity(bad.as_bytes(), "w3", 2).unwrap_err();
        assert!(why.contains("w3.2.<nonce>"), "{bad}: {why}");
    }
    assert_eq!(check_identity(b"w3.2.0123456789abcdef", "w3", 2), Ok(()));
    assert!(check_identity(b"w3.2.0123456789abcdef\n", "w3", 2).is_err());
}

#[test]
fn identity_names_worker_and_incarnation() {
    assert_eq!(identity("w3", 2), "w3.2");
}

#[test]
fn joins_assignments_and_goodbyes_round_trip_and_a_joiner_identity_is_checked() {
    let join = r#"{"type":"join","protocol":1,"token":"s3cret","pid":7}"#;
    assert_eq!(
        decode_worker_message(join.as_bytes()).unwrap(),
        WorkerMessage::Join {
            protocol: 1,
            token: "s3cret".into(),
            fingerprint: None,
            pid: Some(7),
        }
    );
    let assigned = CoordinatorMessage::Assigned {
        worker: "w3".into(),
        incarnation: 2,
        runner: vec!["--".into(), "pytest".into()],
        fingerprint: None,
        appliance: None,
    };
    let text = String::from_utf8(encode(&assigned)).unwrap();
    assert_eq!(
        text,
        r#"{"type":"assigned","worker":"w3","incarnation":2,"runner":["--","pytest"]}"#
    );
    assert_eq!(
        decode_coordinator_message(text.as_bytes()).unwrap(),
        assigned
    );
    let leaving = r#"{"type":"leaving","tests":["a"]}"#;
    assert_eq!(
        decode_worker_message(leaving.as_bytes()).unwrap(),
        WorkerMessage::Leaving {
            tests: vec!["a".into()]
        }
    );
    let full = r#"{"type":"full","message":"every slot is taken"}"#;
    assert!(matches!(
        decode_coordinator_message(full.as_bytes()).unwrap(),
        CoordinatorMessage::Full { .. }
    ));
    let joiner = socket_identity(JOIN_WORKER, 0);
    assert!(joiner.starts_with("any.0."));
    assert_eq!(check_identity(joiner.as_bytes(), JOIN_WORKER, 0), Ok(()));
    assert!(check_identity(b"any.0.guess", JOIN_WORKER, 0).is_err());
}
