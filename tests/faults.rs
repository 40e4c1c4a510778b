//! `--chaos`: each fault kind really strikes real worker processes, herd survives it, and every
//! collected test still ends with exactly one outcome. A seed replays the same faults.

mod common;

use common::*;

fn suite() -> Suite {
    let mut suite = Suite::new();
    for i in 0..10 {
        suite = suite.test(&format!("m{i}::t{i}"), "sleep 0.05\nexit 0\n");
    }
    suite
}

/// Runs the suite with one worker under `chaos`; checks exactly-once and returns the run.
fn chaos(chaos: &str) -> Run {
    let suite = suite();
    let run = suite.run(&[
        "-n",
        "1",
        "--chaos",
        chaos,
        "--max-respawns",
        "100",
        "--retire-after",
        "0",
        "--hang-timeout",
        "0.5",
    ]);
    assert!(matches!(run.code, 0 | 1), "{}", run.dump());
    assert_eq!(run.outcomes().len(), 10);
    run
}

fn faults<'a>(run: &'a Run, kind: &str) -> Vec<&'a serde_json::Value> {
    run.of("fault_injected")
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn kill_term_and_stop_strike_running_tests_and_nothing_is_lost() {
    for kind in ["kill", "term", "stop"] {
        let run = chaos(&format!("seed=11,{kind}=0.3"));
        let struck = faults(&run, kind);
        assert!(
            !struck.is_empty(),
            "{kind}: no fault injected\n{}",
            run.dump()
        );
        assert!(struck.iter().any(|f| f["test"].is_string()), "{kind}");
        assert!(run.count("crashed") >= 1, "{kind}\n{}", run.dump());
        assert_eq!(
            run.count("crashed") + run.count("passed"),
            10,
            "{kind}\n{}",
            run.dump()
        );
        assert!(
            run.stdout
                .contains(&format!("herd: injected {} fault", struck.len())),
            "{}",
            run.dump()
        );
        if kind == "stop" {
            assert!(
                run.stdout.contains("has been stopped for"),
                "{}",
                run.dump()
            );
        }
    }
}

#[test]
fn workers_made_to_exit_0_send_garbage_or_lie_are_survived() {
    for (kind, evidence) in [
        ("exit0", "exit code 0"),
        ("garble", "malformed frame"),
        ("lie", "collection differs"),
    ] {
        let run = chaos(&format!("seed=5,{kind}=0.3"));
        assert!(
            !faults(&run, kind).is_empty(),
            "{kind}: no fault injected\n{}",
            run.dump()
        );
        assert!(run.stdout.contains(evidence), "{kind}\n{}", run.dump());
    }
}

#[test]
fn a_seed_replays_the_same_faults() {
    let plan = "seed=99,kill=0.2,stop=0.1,term=0.1,exit0=0.1,garble=0.1,lie=0.2";
    let sequence = |run: &Run| -> Vec<(String, String)> {
        run.of("fault_injected")
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_string(),
                    f["test"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    let first = chaos(plan);
    let second = chaos(plan);
    assert!(!sequence(&first).is_empty());
    assert_eq!(sequence(&first), sequence(&second));
}

#[test]
fn nonsense_plans_are_usage_errors() {
    let run = suite().run(&["--chaos", "kill=7"]);
    assert_eq!(run.code, 4, "{}", run.dump());
    assert!(run.stderr.contains("not a probability"), "{}", run.dump());
}

#[test]
fn a_wedged_worker_is_found_by_its_missing_heartbeat() {
    let suite = suite();
    let mut cmd = suite.command(&["-n", "1", "--heartbeat-timeout", "2"]);
    // The first process hangs silently (no heartbeats, no progress) after two tests.
    cmd.env("HERD_WORKER_FAULT", "w1.1:wedge-after=2");
    let run = suite.run_with(cmd);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.count("passed"), 10, "{}", run.dump());
    assert!(
        run.stdout
            .contains("promised heartbeats; taking it for hung"),
        "{}",
        run.dump()
    );
    assert!(run.respawned(), "{}", run.dump());
}
