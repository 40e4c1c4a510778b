//! Unit tests of [`super`].

use super::*;

#[test]
fn slots_follow_appliances_or_n() {
    let config = SessionConfig {
        workers: Some(3),
        ..SessionConfig::default()
    };
    let ids: Vec<String> = Session::slots(&config)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["w1", "w2", "w3"]);
    let config = SessionConfig {
        appliances: vec!["db1".into(), "db2".into()],
        ..SessionConfig::default()
    };
    let slots = Session::slots(&config).unwrap();
    assert_eq!(
        slots[1],
        WorkerSlot {
            id: "w2".into(),
            appliance: Some("db2".into())
        }
    );
    let config = SessionConfig {
        workers: Some(3),
        appliances: vec!["a".into()],
        ..SessionConfig::default()
    };
    assert!(matches!(
        Session::slots(&config),
        Err(SessionError::Usage(_))
    ));
    let config = SessionConfig {
        appliances: vec!["a".into(), "a".into()],
        ..SessionConfig::default()
    };
    assert!(Session::slots(&config)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    let config = SessionConfig {
        workers: Some(0),
        ..SessionConfig::default()
    };
    assert_eq!(Session::slots(&config).unwrap_err().exit_code(), 4);
}

#[test]
fn values_an_embedder_gives_are_checked_not_panicked_on() {
    let usage = |config: SessionConfig| match config.check() {
        Err(SessionError::Usage(msg)) => msg,
        other => panic!("a usage error expected, got {other:?}"),
    };
    let msg = usage(SessionConfig {
        timeout: Some(Duration::MAX),
        ..SessionConfig::default()
    });
    assert!(
        msg.starts_with("--timeout 1.8446744073709552e19 is out of range"),
        "{msg}"
    );
    let msg = usage(SessionConfig {
        workers: Some(99_999_999_999),
        ..SessionConfig::default()
    });
    assert!(
        msg.contains("give a number of workers from 1 to 1024"),
        "{msg}"
    );
    let msg = usage(SessionConfig {
        appliances: vec!["db1".into(), " ".into()],
        ..SessionConfig::default()
    });
    assert!(msg.starts_with("--appliance ' ' is empty"), "{msg}");
    let msg = usage(SessionConfig {
        heartbeat_timeout: Duration::ZERO,
        ..SessionConfig::default()
    });
    assert!(
        msg.contains("--heartbeat-timeout 0 is out of range"),
        "{msg}"
    );
    assert!(SessionConfig::default().check().is_ok());
    let many = SessionConfig {
        appliances: (0..2000).map(|i| format!("a{i}")).collect(),
        ..SessionConfig::default()
    };
    assert!(Session::slots(&many)
        .unwrap_err()
        .to_string()
        .contains("2000 --appliance values is out of range"));
}

#[test]
fn only_loopback_and_ipc_endpoints_are_local() {
    for local in [
        "ipc:///tmp/herd.sock",
        "tcp://127.0.0.1:0",
        "tcp://127.1.2.3:5555",
        "tcp://localhost:5555",
        "tcp://[::1]:5555",
    ] {
        assert!(endpoint_is_local(local), "{local}");
    }
    for open in [
        "tcp://0.0.0.0:5555",
        "tcp://*:5555",
        "tcp://10.0.0.1:5555",
        "tcp://eth0:5555",
        "tcp://[::]:5555",
        "ws://127.0.0.1:5555",
    ] {
        assert!(!endpoint_is_local(open), "{open}");
    }
}

#[test]
fn open_endpoints_and_external_workers_need_a_token_file() {
    let config = SessionConfig {
        endpoint: Some("tcp://0.0.0.0:5555".into()),
        ..SessionConfig::default()
    };
    let err = check_remote_options(&config).unwrap_err();
    assert!(err.to_string().contains("--token-file"), "{err}");
    assert_eq!(err.exit_code(), 4);
    let config = SessionConfig {
        launcher: Some("external".into()),
        ..SessionConfig::default()
    };
    assert!(check_remote_options(&config).is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  s3cret\n").unwrap();
    let config = SessionConfig {
        endpoint: Some("tcp://0.0.0.0:5555".into()),
        token_file: Some(file.clone()),
        ..SessionConfig::default()
    };
    assert_eq!(check_remote_options(&config).unwrap().as_str(), "s3cret");
    std::fs::write(&file, "\n").unwrap();
    assert!(check_remote_options(&config)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let config = SessionConfig {
        hosts: vec!["a".into()],
        launcher: Some("ssh x {cmd}".into()),
        ..SessionConfig::default()
    };
    assert!(check_remote_options(&config)
        .unwrap_err()
        .to_string()
        .contains("{host}"));
}

#[test]
fn an_output_path_says_what_is_wrong_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "").unwrap();
    let err = open_output("--junit-xml", &file.join("x.xml")).unwrap_err();
    assert_eq!(err.exit_code(), 4);
    let text = err.to_string();
    assert!(
        text.contains(&format!("{} is a file, not a directory", file.display())),
        "{text}"
    );
    let err = check_output_dir("--log-dir", &file)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot write in --log-dir"), "{err}");
    assert!(err.contains("is a file, not a directory"), "{err}");
    let err = open_output("--events", dir.path()).unwrap_err().to_string();
    assert!(err.contains("it is a directory"), "{err}");
    let nested = dir.path().join("a/b/e.jsonl");
    assert!(open_output("--events", &nested).is_ok());
    assert!(check_output_dir("--log-dir", &dir.path().join("logs")).is_ok());
    // The writability probe leaves nothing behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
        0
    );
}

#[test]
fn the_smaller_failure_limit_wins_and_zero_is_none() {
    assert_eq!(smaller_limit(Some(5), Some(2)), Some(2));
    assert_eq!(smaller_limit(Some(1), Some(3)), Some(1));
    assert_eq!(smaller_limit(None, Some(3)), Some(3));
    assert_eq!(smaller_limit(Some(4), Some(0)), Some(4));
    assert_eq!(smaller_limit(None, None), None);
}

#[test]
fn private_dir_is_0700() {
    use std::os::unix::fs::PermissionsExt;
    let dir = private_dir().unwrap();
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
