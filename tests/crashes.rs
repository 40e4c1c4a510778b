//! Workers that die, lie or misbehave: nothing is lost, nothing is invented. Real processes are
//! really killed.

mod common;

use common::*;

const KILL_ONCE: &str =
    "if [ ! -e killed.mark ]; then touch killed.mark; kill -9 $PPID; sleep 5; fi\nexit 0\n";

#[test]
fn a_sigkilled_worker_reports_its_test_crashed_and_the_rest_rerun() {
    let suite = Suite::new()
        .passing("a", "first", 1)
        .test("a::killer", KILL_ONCE)
        .passing("a", "after", 3)
        .passing("b", "t", 4);
    // Whole modules (`--dist file`: stealing never splits one), so the killer's module-mates
    // are the ones returned, however the machine's load times the other worker.
    let run = suite.run(&["-n", "2", "--dist", "file"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.outcomes()["a::killer"], "crashed");
    assert_eq!(run.count("passed"), 8, "{}", run.dump());
    let details = run.finished("a::killer")["details"].as_str().unwrap();
    assert!(
        details.contains("signal 9 (SIGKILL)") && details.contains("crashed while running"),
        "{details}"
    );
    let requeued = run.of("tests_requeued");
    assert_eq!(requeued.len(), 1, "{}", run.dump());
    let tests: Vec<&str> = requeued[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tests, ["a::after0", "a::after1", "a::after2"]);
    let exited = run.of("worker_exited");
    assert!(
        exited
            .iter()
            .any(|e| e["clean"] == false && e["status"] == "signal 9 (SIGKILL)"),
        "{}",
        run.dump()
    );
    assert!(run.respawned(), "respawned\n{}", run.dump());
    assert!(run.stdout.contains("1 crashed"), "{}", run.dump());
}

#[test]
fn crash_retries_rerun_the_crashed_test_on_a_fresh_worker() {
    let suite = Suite::new()
        .test("a::killer", KILL_ONCE)
        .passing("a", "t", 2);
    let run = suite.run(&["-n", "1", "--crash-retries", "1"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.outcomes()["a::killer"], "passed");
    assert_eq!(run.finished("a::killer")["worker"], "w1");
}

#[test]
fn a_worker_that_exits_0_without_shutdown_is_a_crash_and_its_tests_rerun() {
    let suite = Suite::new().passing("a", "t", 5);
    let mut cmd = suite.command(&["-n", "1", "--dist", "modscope"]);
    // The first process exits 0 as its third test starts.
    cmd.env("HERD_WORKER_FAULT", "w1.1:exit0-after=2");
    let run = suite.run_with(cmd);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.outcomes()["a::t2"], "crashed", "{}", run.dump());
    assert!(run.finished("a::t2")["details"]
        .as_str()
        .unwrap()
        .contains("exit code 0"));
    assert_eq!(run.count("passed"), 4);
    let exited = run.of("worker_exited");
    assert!(
        exited
            .iter()
            .any(|e| e["incarnation"] == 1 && e["clean"] == false && e["status"] == "exit code 0"),
        "{}",
        run.dump()
    );
    let requeued = run.of("tests_requeued");
    assert_eq!(requeued.len(), 1, "{}", run.dump());
    assert_eq!(requeued[0]["tests"], serde_json::json!(["a::t3", "a::t4"]));
    assert!(run.respawned());
}

#[test]
fn a_collection_mismatch_shows_a_diff_and_respawns_the_worker() {
    let suite = Suite::new().passing("a", "t", 3).passing("b", "t", 3);
    let mut cmd = suite.command(&["-n", "2"]);
    cmd.env("HERD_WORKER_FAULT", "w1.1:extra-test=a::bogus");
    let run = suite.run_with(cmd);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 6);
    let mismatch = run.of("collection_mismatch");
    assert_eq!(mismatch.len(), 1, "{}", run.dump());
    let diff = mismatch[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("--- reference") && diff.contains("+++ w1.1") && diff.contains("+a::bogus"),
        "{diff}"
    );
    assert!(
        run.stdout.contains("collection differs") && run.stdout.contains("+a::bogus"),
        "{}",
        run.dump()
    );
    assert!(run
        .of("worker_spawned")
        .iter()
        .any(|e| e["worker"] == "w1" && e["incarnation"] == 2));
}

#[test]
fn workers_that_always_lie_spend_the_budget_and_end_the_session() {
    let suite = Suite::new().passing("a", "t", 4).with_list("sh list.sh");
    // Every worker sees one more test than the coordinator did.
    let list = "cat ids.txt\n[ -n \"$HERD_WORKER_ID\" ] && echo extra::$HERD_WORKER_ID\nexit 0\n";
    std::fs::write(suite.path().join("list.sh"), list).unwrap();
    let run = suite.run(&["-n", "2", "--max-respawns", "3", "--retire-after", "0"]);
    assert_eq!(run.code, 3, "{}", run.dump());
    assert_eq!(run.count("not_run"), 4);
    assert!(
        run.stdout.contains("too many worker respawns"),
        "{}",
        run.dump()
    );
    // 2 spawns + at most 3 respawns (the last one granted may be overtaken by the abort when
    // both workers die at once).
    let spawned = run.of("worker_spawned").len();
    assert!(
        (4..=5).contains(&spawned),
        "{spawned} spawns\n{}",
        run.dump()
    );
    assert!(run.of("collection_mismatch").len() >= 4);
}

#[test]
fn tests_that_kill_their_worker_are_charged_to_themselves_not_the_budget() {
    let kill = "kill -9 $PPID\nsleep 5\n";
    let suite = Suite::new()
        .test("a::k1", kill)
        .test("a::k2", kill)
        .passing("a", "ok", 2)
        .test("a::k3", kill)
        .test("a::k4", kill);
    // A budget of one respawn, and no retirement: four deaths during tests still finish.
    let run = suite.run(&["-n", "1", "--max-respawns", "1", "--retire-after", "0"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let outcomes = run.outcomes();
    for killer in ["a::k1", "a::k2", "a::k3", "a::k4"] {
        assert_eq!(outcomes[killer], "crashed", "{killer}\n{}", run.dump());
    }
    assert_eq!(run.count("passed"), 2, "{}", run.dump());
    assert!(
        !run.stdout.contains("too many worker respawns"),
        "{}",
        run.dump()
    );
    assert!(run.stdout.contains("2 passed, 4 crashed"), "{}", run.dump());
}

#[test]
fn a_healthy_session_with_some_crashing_tests_finishes() {
    // 80 tests, 8 of which kill their worker, on 2 workers with the default budget (6
    // respawns) and retirement rule: every test gets its outcome; nothing is left not run.
    let kill = "kill -9 $PPID\nsleep 5\n";
    let mut suite = Suite::new();
    for i in 0..80 {
        suite = if i % 10 == 5 {
            suite.test(&format!("m{}::k{i}", i / 20), kill)
        } else {
            suite.test(&format!("m{}::t{i}", i / 20), "exit 0\n")
        };
    }
    let run = suite.run(&["-n", "2"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.count("crashed"), 8, "{}", run.dump());
    assert_eq!(run.count("passed"), 72, "{}", run.dump());
    assert_eq!(run.count("not_run"), 0, "{}", run.dump());
}

#[test]
fn workers_that_die_before_any_test_end_the_session_quickly() {
    // A broken environment: every worker dies while collecting. The default policy ends the
    // session after a few spawns (each slot retires after 3 deaths in a row), not one per test.
    let suite = Suite::new().passing("a", "t", 20).with_list("sh list.sh");
    let list = "cat ids.txt\n[ -n \"$HERD_WORKER_ID\" ] && kill -9 $PPID\nexit 0\n";
    std::fs::write(suite.path().join("list.sh"), list).unwrap();
    let run = suite.run(&["-n", "2"]);
    assert_eq!(run.code, 3, "{}", run.dump());
    assert_eq!(run.count("not_run"), 20, "{}", run.dump());
    let spawned = run.of("worker_spawned").len();
    assert!(spawned <= 8, "{spawned} spawns\n{}", run.dump());
}

#[test]
fn a_slot_whose_appliance_check_fails_is_retired_and_its_tests_move() {
    let body = "[ \"$HERD_APPLIANCE\" = bad ] && { kill -9 $PPID; sleep 5; }\nexit 0\n";
    let mut suite = Suite::new();
    for i in 0..6 {
        suite = suite.test(&format!("m{i}::t{i}"), body);
    }
    let args = [
        "--appliance",
        "bad",
        "--appliance",
        "good",
        "--appliance-check",
        "test \"$HERD_APPLIANCE\" = good",
    ];
    let run = suite.run(&args);
    assert_eq!(run.code, 1, "{}", run.dump());
    let retired = run.of("worker_retired");
    assert_eq!(retired.len(), 1, "{}", run.dump());
    assert_eq!(retired[0]["worker"], "w1");
    assert!(retired[0]["reason"]
        .as_str()
        .unwrap()
        .contains("appliance check failed"));
    assert_eq!(run.count("crashed"), 1, "{}", run.dump());
    assert_eq!(run.count("passed"), 5, "{}", run.dump());
    assert!(run
        .of("test_finished")
        .iter()
        .filter(|e| e["outcome"] == "passed")
        .all(|e| e["worker"] == "w2"));
}

#[test]
fn a_slot_that_crashes_repeatedly_is_retired_and_the_last_slot_ends_the_session() {
    let kill = "kill -9 $PPID\nsleep 5\n";
    let mut suite = Suite::new();
    for i in 0..4 {
        suite = suite.test(&format!("m{i}::k{i}"), kill);
    }
    let run = suite.run(&["-n", "1", "--retire-after", "2"]);
    assert_eq!(run.code, 3, "{}", run.dump());
    assert_eq!(run.count("crashed"), 2, "{}", run.dump());
    assert_eq!(run.count("not_run"), 2, "{}", run.dump());
    assert!(
        run.stdout.contains("every worker slot was retired"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_worker_that_sends_garbage_is_killed_and_its_work_rerun() {
    let suite = Suite::new().passing("a", "t", 4);
    let mut cmd = suite.command(&["-n", "1"]);
    cmd.env("HERD_WORKER_FAULT", "w1.1:garbage-after=1");
    let run = suite.run_with(cmd);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 4);
    assert!(run.stdout.contains("malformed frame"), "{}", run.dump());
    assert!(run.respawned(), "{}", run.dump());
}
