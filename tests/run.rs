//! `herd run` end to end with the exec runner: counts, exit codes, groups, providers, appliances,
//! timeouts and --maxfail. Real worker processes, real ZeroMQ sockets.

mod common;

use common::*;

#[test]
fn passing_and_failing_tests_are_counted_once_with_pytest_exit_codes() {
    let suite = Suite::new()
        .passing("a", "ok", 6)
        .test("b::fails", "echo 'expected 2, got 3' >&2\nexit 1\n")
        .test("b::skips", "echo 'needs a database'\nexit 77\n")
        .passing("c", "more", 4);
    let run = suite.run(&["-n", "2"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(
        (
            run.count("passed"),
            run.count("failed"),
            run.count("skipped")
        ),
        (10, 1, 1)
    );
    assert!(
        run.stdout.contains("1 failed, 10 passed, 1 skipped in "),
        "{}",
        run.dump()
    );
    assert!(
        run.stdout.contains("FAILED b::fails - expected 2, got 3"),
        "{}",
        run.dump()
    );
    assert!(run.finished("b::fails")["details"]
        .as_str()
        .unwrap()
        .contains("exit code 1"));
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("[w") && l.contains("PASSED a::ok0")),
        "{}",
        run.dump()
    );

    let all_pass = Suite::new().passing("a", "t", 5);
    let run = all_pass.run(&["-n", "3"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 5);
    assert!(
        run.of("worker_exited").iter().all(|e| e["clean"] == true),
        "{}",
        run.dump()
    );
}

#[test]
fn file_mode_keeps_a_module_on_one_worker_in_order() {
    let mut suite = Suite::new();
    for m in ["m1", "m2", "m3"] {
        for i in 0..4 {
            suite = suite.test(
                &format!("{m}::{m}_t{i}"),
                "echo \"$HERD_WORKER_ID\" >> order.log\nexit 0\n",
            );
        }
    }
    // Even work stealing keeps a module whole in `file` mode.
    let run = suite.run(&["-n", "2", "--dist", "file"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    for m in ["m1", "m2", "m3"] {
        let workers: Vec<&str> = run
            .of("test_finished")
            .iter()
            .filter(|e| e["test"].as_str().unwrap().starts_with(m))
            .map(|e| e["worker"].as_str().unwrap())
            .collect();
        assert_eq!(workers.len(), 4);
        assert!(
            workers.iter().all(|w| *w == workers[0]),
            "{m} split across workers: {workers:?}"
        );
        let order: Vec<String> = run
            .of("test_started")
            .iter()
            .map(|e| e["test"].as_str().unwrap().to_string())
            .filter(|t| t.starts_with(m))
            .collect();
        let expected: Vec<String> = (0..4).map(|i| format!("{m}::{m}_t{i}")).collect();
        assert_eq!(order, expected);
    }
}

#[test]
fn usage_errors_and_empty_suites_have_their_exit_codes() {
    let suite = Suite::new().passing("a", "t", 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["run", "-n", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-n many is not a whole number"));
    let run = suite.run(&["-n", "0"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(run
        .stderr
        .contains("-n 0 is out of range: give a number of workers from 1 to 1024"));
    let run = suite.run(&["--timeout", "0"]);
    assert_eq!(run.code, 4, "{}", run.dump());

    let empty = Suite::new();
    std::fs::write(empty.path().join("ids.txt"), "").unwrap();
    let run = empty.run(&[]);
    assert_eq!(run.code, 5, "{}", run.dump());
    assert!(run.stderr.contains("no tests collected"));

    let dup = Suite::new().passing("a", "t", 2);
    std::fs::write(dup.path().join("ids.txt"), "a::t0\na::t1\na::t0\n").unwrap();
    let run = dup.run(&[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(
        run.stderr.contains("more than once: a::t0"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_failed_collection_is_a_clear_error() {
    let suite = Suite::new().passing("a", "t", 1);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herd"));
    cmd.current_dir(suite.path()).args([
        "run",
        "--list",
        "echo cannot import foo >&2; exit 2",
        "--",
        "true",
    ]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collection failed") && stderr.contains("cannot import foo"),
        "{stderr}"
    );
}

#[test]
fn a_test_over_the_timeout_is_reported_and_its_worker_replaced() {
    let marker = "29.7153";
    let suite = Suite::new()
        .test("a::hangs", &format!("echo about to hang\nsleep {marker}\n"))
        .passing("b", "t", 4);
    let run = suite.run(&["-n", "1", "--timeout", "1"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.outcomes()["a::hangs"], "timed_out");
    assert_eq!(run.count("passed"), 4);
    let details = run.finished("a::hangs")["details"].as_str().unwrap();
    assert!(
        details.contains("timed out after 1s") && details.contains("about to hang"),
        "{details}"
    );
    assert!(run.respawned(), "{}", run.dump());
    assert!(
        no_processes_with(
            &format!("sleep {marker}"),
            std::time::Duration::from_secs(5)
        ),
        "orphaned sleep"
    );
}

#[test]
fn maxfail_stops_dealing_out_tests() {
    let mut suite = Suite::new();
    for i in 0..20 {
        suite = suite.test(&format!("m{i}::f{i}"), "exit 1\n");
    }
    let run = suite.run(&["-n", "1", "-x"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    // Tests already dealt may still run before the stop reaches the worker: at most the first
    // chunk (20 / 4) and the one it asks for before its last test (15 / 4).
    let failed = run.count("failed");
    assert!((1..=8).contains(&failed), "{failed} failed\n{}", run.dump());
    assert_eq!(run.count("not_run"), 20 - failed);
    assert!(run.stdout.contains("--maxfail"), "{}", run.dump());
}

#[test]
fn provider_tests_stick_to_the_worker_and_switching_runs_the_cleanse_hook() {
    let mut suite = Suite::new();
    let body = "echo \"$HERD_WORKER_ID\" >> runs.log\nexit 0\n";
    for (i, p) in ["p1", "p2", "p3", "p1", "p2", "p3"].iter().enumerate() {
        for t in 0..2 {
            suite = suite.test(&format!("mod{i}::t{t}_{i}[{p}-x]"), body);
        }
    }
    suite = suite.passing("plain", "t", 2);
    let cleanse = "echo \"$HERD_WORKER_ID $HERD_APPLIANCE $HERD_PROVIDER_FROM $HERD_PROVIDER_TO\" >> cleanse.log";
    let run = suite.run(&[
        "--appliance",
        "app1",
        "--providers",
        "p1,p2,p3",
        "--cleanse",
        cleanse,
    ]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let order: Vec<String> = run
        .of("test_started")
        .iter()
        .map(|e| e["test"].as_str().unwrap().to_string())
        .collect();
    let providers: Vec<&str> = order
        .iter()
        .filter_map(|t| ["p1", "p2", "p3"].into_iter().find(|p| t.contains(p)))
        .collect();
    assert_eq!(
        providers,
        ["p1", "p1", "p1", "p1", "p2", "p2", "p2", "p2", "p3", "p3", "p3", "p3"],
        "{order:?}"
    );
    let log = std::fs::read_to_string(suite.path().join("cleanse.log")).unwrap();
    assert_eq!(log, "w1 app1 p1 p2\nw1 app1 p2 p3\n");
    assert_eq!(run.of("provider_switched").len(), 2);
}

#[test]
fn each_appliance_gets_its_own_worker() {
    let suite = Suite::new().passing("a", "t", 3).test(
        "b::where",
        "echo \"$HERD_WORKER_ID=$HERD_APPLIANCE\" >> where.log\n",
    );
    let run = suite.run(&["--appliance", "db-one", "--appliance", "db-two", "-v"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let spawned: Vec<(String, String)> = run
        .of("worker_spawned")
        .iter()
        .map(|e| {
            (
                e["worker"].as_str().unwrap().into(),
                e["appliance"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(spawned.len(), 2);
    assert!(
        spawned.contains(&("w1".into(), "db-one".into()))
            && spawned.contains(&("w2".into(), "db-two".into()))
    );
    let log = std::fs::read_to_string(suite.path().join("where.log")).unwrap();
    assert!(log == "w1=db-one\n" || log == "w2=db-two\n", "{log}");
    assert!(
        run.stdout.contains("sent 1 tests to w"),
        "-v shows progress\n{}",
        run.dump()
    );
}

#[test]
fn junit_xml_and_durations_describe_the_run() {
    let suite = Suite::new()
        .passing("a", "ok", 3)
        .test("b::fails", "echo 'expected 2, got 3' >&2\nexit 1\n")
        .test("b::slow", "sleep 0.3\n")
        .test("b::skips", "echo 'needs a database'\nexit 77\n");
    let junit = suite.path().join("reports/junit.xml");
    let run = suite.run(&[
        "-n",
        "2",
        "--durations",
        "2",
        "--junit-xml",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
    let suite_node = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite_node.attribute("tests"), Some("6"));
    assert_eq!(suite_node.attribute("failures"), Some("1"));
    let cases: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                n.attribute("classname").unwrap(),
                n.attribute("name").unwrap(),
            )
        })
        .collect();
    assert!(
        cases.contains(&("b", "fails")) && cases.contains(&("a", "ok0")),
        "{cases:?}"
    );
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure
        .attribute("message")
        .unwrap()
        .contains("expected 2, got 3"));
    let slowest = run
        .stdout
        .lines()
        .skip_while(|l| !l.contains("slowest 2 durations"))
        .nth(1)
        .unwrap();
    assert!(
        slowest.trim_start().ends_with("s b::slow"),
        "{}",
        run.dump()
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("max-respawns") && script.contains("herd"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn herd_toml_profiles_set_options_and_flags_override_them() {
    let suite = Suite::new()
        .passing("a", "t", 2)
        .passing("b", "t", 2)
        .passing("c", "t", 2);
    let config = r#"
[profile.default]
workers = 1
list = "cat ids.txt"
command = ["sh", "-c", "exec sh \"./${1##*::}.sh\"", "herd-test", "{}"]

[profile.ci]
workers = 2
durations = 1
"#;
    std::fs::write(suite.path().join("herd.toml"), config).unwrap();
    let nested = suite.path().join("sub/dir");
    std::fs::create_dir_all(&nested).unwrap();
    let herd = |dir: &std::path::Path, args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herd"));
        cmd.current_dir(dir)
            .arg("run")
            .args(args)
            .arg("--events")
            .arg(suite.events_path())
            .env_remove("HERD_PROFILE");
        suite.run_with(cmd)
    };
    let spawned = |run: &Run| run.of("worker_spawned").len();

    let run = herd(suite.path(), &[]);
    assert_eq!(
        (run.code, spawned(&run), run.count("passed")),
        (0, 1, 6),
        "{}",
        run.dump()
    );
    let run = herd(suite.path(), &["--profile", "ci"]);
    assert_eq!((run.code, spawned(&run)), (0, 2), "{}", run.dump());
    assert!(run.stdout.contains("slowest 1 durations"), "{}", run.dump());
    let run = herd(suite.path(), &["--profile", "ci", "-n", "3"]);
    assert_eq!((run.code, spawned(&run)), (0, 3), "{}", run.dump());

    // From a subdirectory the project's herd.toml is found; the suite runs from there too.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herd"));
    cmd.current_dir(&nested)
        .args(["run", "--list", "cat ../../ids.txt", "--", "true"]);
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        suite.path().join("bad.toml"),
        "[profile.default]\nworkerz = 2\n",
    )
    .unwrap();
    let run = herd(suite.path(), &["--config", "bad.toml"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(
        run.stderr.contains("bad.toml") && run.stderr.contains("unknown field `workerz`"),
        "{}",
        run.dump()
    );
    let run = herd(suite.path(), &["--profile", "nightly"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr.contains("no profile \"nightly\""),
        "{}",
        run.dump()
    );
}

#[test]
fn workers_can_be_started_through_a_launcher_template() {
    let suite = Suite::new()
        .passing("a", "t", 2)
        .test("b::where", "echo \"$LAUNCHED_BY\" > launched.txt\n");
    let run = suite.run(&[
        "-n",
        "1",
        "--appliance",
        "db-9",
        "--launcher",
        "env LAUNCHED_BY=tpl-{worker}-{appliance} {cmd}",
    ]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 3);
    let launched = std::fs::read_to_string(suite.path().join("launched.txt")).unwrap();
    assert_eq!(launched.trim(), "tpl-w1-db-9");
    let run = suite.run(&["--launcher", "ssh somewhere"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(run.stderr.contains("has no {cmd}"), "{}", run.dump());
}

#[test]
fn load_mode_spreads_one_module_over_every_worker_and_file_mode_keeps_files_whole() {
    // Like a libtest binary: every id shares one module.
    let mut suite = Suite::new();
    for i in 0..40 {
        suite = suite.test(&format!("crate::t{i:02}"), "sleep 0.02\n");
    }
    let run = suite.run(&["-n", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let workers: std::collections::BTreeSet<&str> = run
        .of("test_finished")
        .iter()
        .map(|e| e["worker"].as_str().unwrap())
        .collect();
    assert_eq!(
        workers.len(),
        2,
        "load (the exec default) uses both workers\n{}",
        run.dump()
    );
    let sent: Vec<u64> = run
        .of("group_sent")
        .iter()
        .map(|e| e["tests"].as_u64().unwrap())
        .collect();
    assert!(
        sent.len() < 40 && sent.iter().any(|n| *n > 1),
        "tests go out in chunks: {sent:?}"
    );
    assert!(
        sent.last() <= sent.first(),
        "chunks shrink towards the end: {sent:?}"
    );

    let run = suite.run(&["-n", "2", "--dist", "file"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let workers: std::collections::BTreeSet<&str> = run
        .of("test_finished")
        .iter()
        .map(|e| e["worker"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 1, "one file, one group\n{}", run.dump());
    let run = suite.run(&["--dist", "scatter"]);
    assert_eq!(run.code, 4, "{}", run.dump());
}

#[test]
fn durations_are_remembered_and_the_longest_tests_go_first() {
    let mut suite = Suite::new();
    for i in 0..4 {
        suite = suite.test(&format!("m{i}::quick{i}"), "exit 0\n");
    }
    suite = suite.test("m9::slow", "sleep 0.4\n");
    let order = |run: &Run| -> Vec<String> {
        run.of("test_started")
            .iter()
            .map(|e| e["test"].as_str().unwrap().to_string())
            .collect()
    };
    let first = suite.run(&["-n", "1"]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(
        order(&first).last().map(String::as_str),
        Some("m9::slow"),
        "collection order at first"
    );
    let history = suite.path().join(".herd/durations.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert!(
        stored["durations"]["m9::slow"].as_f64().unwrap() >= 0.4,
        "{stored}"
    );
    let second = suite.run(&["-n", "1"]);
    assert_eq!(
        order(&second)[0],
        "m9::slow",
        "longest first with history\n{}",
        second.dump()
    );

    std::fs::write(&history, "{ this is not json").unwrap();
    let third = suite.run(&["-n", "1"]);
    assert_eq!(third.code, 0, "{}", third.dump());
    assert!(
        third.stderr.contains("is corrupt") && third.stderr.contains("rebuilding"),
        "{}",
        third.dump()
    );
    let rebuilt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(rebuilt["durations"].as_object().unwrap().len(), 5);
}

#[test]
fn an_idle_worker_takes_unstarted_tests_from_a_busy_one() {
    // One module is one group under modscope: without stealing one worker would run all 21.
    let suite = Suite::new()
        .test("m::slow", "sleep 1\n")
        .passing("m", "quick", 20);
    let run = suite.run(&["-n", "2", "--dist", "modscope"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.outcomes().len(), 21);
    let stolen = run.of("work_stolen");
    assert!(!stolen.is_empty(), "{}", run.dump());
    // Given back while the slow test still ran (the worker answers during a test).
    let slow_done = run.finished("m::slow")["t"].as_f64().unwrap();
    assert!(
        stolen[0]["t"].as_f64().unwrap() < slow_done,
        "{}",
        run.dump()
    );
    let workers: std::collections::HashSet<&str> = run
        .of("test_finished")
        .iter()
        .filter_map(|e| e["worker"].as_str())
        .collect();
    assert_eq!(workers.len(), 2, "both workers ran tests\n{}", run.dump());
}
