//! herd's command line under fire: a bounded fuzz of the parser with herd's real flags and the
//! nastiest values (huge, negative, NaN, inf, empty, not UTF-8), the same for `herd.toml`
//! profiles, and the real `herd` binary on the worst cases: always exit 4 with a message that
//! says what to give, never a panic (101) or an abort.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use herd::cli::{Cli, Command as Sub};
use herd::profile::ConfigFile;
use herd::values::{self, BadValue};
use herd::Session;
use proptest::prelude::*;

/// Every flag of `herd run` (and the global ones).
const RUN_FLAGS: &[&str] = &[
    "-n",
    "--workers",
    "--appliance",
    "--dist",
    "--history",
    "--collect-all",
    "--providers",
    "--cleanse",
    "--appliance-check",
    "--max-respawns",
    "--respawn-window",
    "--retire-after",
    "--crash-retries",
    "--maxfail",
    "-x",
    "--timeout",
    "--grace",
    "--worker-start-timeout",
    "--junit-xml",
    "--durations",
    "--events",
    "--log-dir",
    "--launcher",
    "--hosts",
    "--token-file",
    "--fingerprint",
    "--chaos",
    "--hang-timeout",
    "--heartbeat-timeout",
    "--color",
    "--config",
    "--profile",
    "--endpoint",
    "--listen",
    "--list",
    "-v",
    "-q",
];

/// Every flag of `herd worker`.
const WORKER_FLAGS: &[&str] = &[
    "--connect",
    "--token-file",
    "--worker",
    "--incarnation",
    "--appliance",
    "--fingerprint",
    "--list",
    "--noop",
];

/// Values that broke herd before, or sit on an edge of a range.
const EDGES: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "-1",
    "-5",
    "1024",
    "1025",
    "0.001",
    "0.0009",
    "604800",
    "604800.1",
    "1e300",
    "-1e300",
    "1e-300",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "infinity",
    "99999999999",
    "18446744073709551616",
    "4294967296",
    "-0",
    "+3",
    "1_000",
    "0x10",
    "--",
    "-",
    ",",
    "a,,b",
    ",a",
    "\n",
    "\t",
    "\u{0}",
    "{}",
    "load",
    "always",
    "tcp://0.0.0.0:0",
    "é",
];

/// One argument: text from the edges or anything, or bytes that are not UTF-8.
fn value() -> impl Strategy<Value = OsString> {
    prop_oneof![
        4 => proptest::sample::select(EDGES).prop_map(OsString::from),
        2 => any::<f64>().prop_map(|v| OsString::from(v.to_string())),
        2 => any::<i128>().prop_map(|v| OsString::from(v.to_string())),
        2 => ".{0,12}".prop_map(OsString::from),
        1 => proptest::collection::vec(any::<u8>(), 0..8).prop_map(OsString::from_vec),
        1 => Just(OsString::from_vec(vec![b'a', 0xff, b'b'])),
    ]
}

/// One piece of a command line: a flag, a flag with its value, `--flag=value`, or a stray value.
fn piece(flags: &'static [&'static str]) -> impl Strategy<Value = Vec<OsString>> {
    let flag = proptest::sample::select(flags);
    prop_oneof![
        1 => flag.clone().prop_map(|f| vec![f.into()]),
        4 => (flag.clone(), value()).prop_map(|(f, v)| vec![f.into(), v]),
        1 => (flag, value()).prop_map(|(f, v)| {
            let mut joined = OsString::from(format!("{f}="));
            joined.push(v);
            vec![joined]
        }),
        1 => value().prop_map(|v| vec![v]),
    ]
}

/// A whole argument vector of `herd run` or `herd worker`, sometimes with a test command.
fn argv() -> impl Strategy<Value = Vec<OsString>> {
    let run = proptest::collection::vec(piece(RUN_FLAGS), 0..6).prop_map(|p| ("run", p));
    let worker = proptest::collection::vec(piece(WORKER_FLAGS), 0..5).prop_map(|p| ("worker", p));
    (
        prop_oneof![3 => run, 1 => worker],
        proptest::option::of(proptest::collection::vec(value(), 0..3)),
    )
        .prop_map(|((sub, pieces), command)| {
            let mut argv: Vec<OsString> = vec!["herd".into(), sub.into()];
            argv.extend(pieces.into_iter().flatten());
            if let Some(command) = command {
                argv.push("--".into());
                argv.extend(command);
            }
            argv
        })
}

/// Parses `argv` as `herd` would and takes the result as far as it goes without running
/// anything; panics (failing the property) only if herd would have panicked or been unclear.
fn parse_and_configure(argv: &[OsString]) {
    match Cli::try_parse_from(argv) {
        Ok(cli) => {
            if let Sub::Run(args) = cli.command {
                let profile = args.as_profile();
                // What clap accepted, the profile check accepts too: the ranges are one.
                assert_eq!(profile.check(), Ok(()), "{argv:?}");
                if let Ok(config) = profile.session_config(0) {
                    assert!(config.check().is_ok(), "{argv:?}");
                    let _ = Session::slots(&config);
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "{argv:?}");
            if e.kind() == clap::error::ErrorKind::ValueValidation {
                let bad = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<BadValue>())
                    .unwrap_or_else(|| panic!("no herd message for {argv:?}: {message}"));
                assert!(bad.hint.starts_with("give "), "{bad}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_command_line_makes_herd_panic(argv in argv()) {
        parse_and_configure(&argv);
    }

    #[test]
    fn numeric_flags_take_only_their_range(
        flag in proptest::sample::select(&values::ALL_COUNTS[..6]),
        seconds in proptest::sample::select(&values::ALL_SECONDS[..]),
        count in prop_oneof![any::<i128>(), -2i128..2000],
        secs in prop_oneof![any::<f64>(), -1.0f64..700000.0],
    ) {
        let parsed = Cli::try_parse_from(["herd", "run", flag.flag, &count.to_string()]);
        let in_range = (flag.min as i128..=flag.max as i128).contains(&count);
        prop_assert_eq!(parsed.is_ok(), in_range, "{} {}", flag.flag, count);
        let parsed = Cli::try_parse_from(["herd", "run", seconds.flag, &secs.to_string()]);
        let in_range = (values::MIN_SECONDS..=values::MAX_SECONDS).contains(&secs);
        prop_assert_eq!(parsed.is_ok(), in_range, "{} {}", seconds.flag, secs);
        if let Some(bad) = parsed.as_ref().err().and_then(std::error::Error::source) {
            prop_assert!(bad.to_string().starts_with(seconds.flag), "{}", bad);
        }
    }

    #[test]
    fn no_profile_value_makes_herd_panic(
        key in proptest::sample::select(&[
            "workers", "max-respawns", "retire-after", "crash-retries", "maxfail", "durations",
            "timeout", "grace", "worker-start-timeout", "respawn-window", "hang-timeout",
            "heartbeat-timeout", "appliances", "providers", "hosts", "list", "launcher", "chaos",
        ][..]),
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            proptest::sample::select(&["nan", "inf", "-inf", "\"\"", "[\"\"]", "[\"a\", \" \"]",
                "1e300", "-0.0", "\"x\"", "[]"][..]).prop_map(str::to_string),
        ],
    ) {
        let text = format!("[profile.p]\n{key} = {value}\n");
        match ConfigFile::parse(&text, Path::new("herd.toml")) {
            Ok(file) => {
                let profile = file.profile("p").unwrap();
                if let Ok(config) = profile.session_config(0) {
                    prop_assert!(config.check().is_ok(), "{}", text);
                }
            }
            Err(e) => prop_assert!(e.starts_with("herd.toml"), "{}", e),
        }
    }
}

/// `herd ARGS` in an empty directory (no herd.toml): its exit code and stderr.
fn herd(args: &[OsString], dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERD_PROFILE")
        .env_remove("RUST_LOG")
        .output()
        .expect("herd runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn the_real_binary_refuses_the_nastiest_values_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let week = "give seconds from 0.001 to 604800";
    let workers = "give a number of workers from 1 to 1024";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["-n", "99999999999"],
            format!("-n 99999999999 is out of range: {workers}"),
        ),
        (
            vec!["-n", "-1"],
            format!("-n -1 is out of range: {workers}"),
        ),
        (
            vec!["--workers", "0"],
            format!("-n 0 is out of range: {workers}"),
        ),
        (
            vec!["--timeout", "1e300"],
            format!("--timeout 1e300 is out of range: {week}"),
        ),
        (
            vec!["--timeout", "-5"],
            format!("--timeout -5 is out of range: {week}"),
        ),
        (
            vec!["--timeout", "NaN"],
            format!("--timeout NaN is not a number: {week}"),
        ),
        (
            vec!["--grace", "1e300"],
            format!("--grace 1e300 is out of range: {week}"),
        ),
        (
            vec!["--grace", "-inf"],
            format!("--grace -inf is out of range: {week}"),
        ),
        (
            vec!["--heartbeat-timeout", "inf"],
            format!("--heartbeat-timeout inf is out of range: {week}"),
        ),
        (
            vec!["--hang-timeout", "1e300"],
            format!("--hang-timeout 1e300 is out of range: {week}"),
        ),
        (
            vec!["--respawn-window", "1e300"],
            format!("--respawn-window 1e300 is out of range: {week}"),
        ),
        (
            vec!["--worker-start-timeout", "1e20"],
            format!("--worker-start-timeout 1e20 is out of range: {week}"),
        ),
        (
            vec!["--max-respawns", "-1"],
            "--max-respawns -1 is out of range".into(),
        ),
        (
            vec!["--appliance", ""],
            "--appliance '' is empty: give an appliance".into(),
        ),
        (
            vec!["--providers", ""],
            "--providers has an empty entry".into(),
        ),
        (vec!["--hosts", "a,,b"], "--hosts has an empty entry".into()),
        (
            vec!["--list", ""],
            "--list '' is empty: give a shell command".into(),
        ),
    ];
    for (flags, expected) in cases {
        let mut args = os(&["run"]);
        args.extend(os(&flags));
        args.extend(os(&["--", "pytest"]));
        let (code, stderr) = herd(&args, dir.path());
        assert_eq!(code, Some(4), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(&format!("herd: error: {expected}")),
            "{flags:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
    let (code, stderr) = herd(
        &os(&[
            "worker",
            "--connect",
            "tcp://127.0.0.1:1",
            "--token-file",
            "t",
            "--worker",
            "w1",
            "--incarnation",
            "-1",
            "--",
            "x",
        ]),
        dir.path(),
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("--incarnation -1 is out of range: give a spawn number"),
        "{stderr}"
    );
    // Not UTF-8, as a value and as the test command: a usage error, not a panic.
    for args in [
        vec![
            "run".into(),
            "--appliance".into(),
            OsString::from_vec(vec![0xff]),
        ],
        vec![
            "run".into(),
            "--".into(),
            OsString::from_vec(vec![b'p', 0xff]),
        ],
    ] {
        let (code, stderr) = herd(&args, dir.path());
        assert_eq!(code, Some(4), "{stderr}");
        assert!(stderr.contains("invalid UTF-8"), "{stderr}");
    }
}

#[test]
fn a_profile_value_out_of_range_names_the_file_profile_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herd.toml"),
        "[profile.default]\nworkers = 2\n\n[profile.ci]\ntimeout = 1e300\n",
    )
    .unwrap();
    let (code, stderr) = herd(&os(&["run", "--profile", "ci", "--", "pytest"]), dir.path());
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains(
            "herd.toml [profile.ci]: timeout = 1e300 is out of range: give seconds from 0.001 \
             to 604800"
        ),
        "{stderr}"
    );
}

#[test]
fn exec_ids_that_are_not_utf8_are_refused_before_any_test_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = herd(
        &os(&[
            "run",
            "-n",
            "1",
            "--list",
            r"printf 'ok\na\377b\n'",
            "--",
            "sh",
            "-c",
            r#"printf '%s\n' "$1" >> ran.txt"#,
            "sh",
            "{}",
        ]),
        dir.path(),
    );
    assert_eq!(code, Some(2), "a collection error: {stderr}");
    assert!(
        stderr.contains(r#"printed a test id that is not valid UTF-8 on line 2: "a\xffb""#),
        "{stderr}"
    );
    assert!(stderr.contains("rename the test"), "{stderr}");
    assert!(!dir.path().join("ran.txt").exists(), "no test may run");
}

#[test]
fn utf8_exec_ids_reach_the_test_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = herd(
        &os(&[
            "run",
            "-n",
            "1",
            "--history",
            "h.json",
            "--log-dir",
            "logs",
            "--list",
            r"printf 'caf\303\251 \342\234\223\n'",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$1" > got.txt"#,
            "sh",
            "{}",
        ]),
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let got = std::fs::read(dir.path().join("got.txt")).unwrap();
    assert_eq!(got, "café ✓".as_bytes());
}
