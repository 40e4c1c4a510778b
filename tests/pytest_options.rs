//! pytest's own options under `herd run -- pytest`, compared with plain pytest on suites the
//! tests write: options after which pytest ends early, usage errors and missing paths (once,
//! before any respawn), pytest-xdist's flags after `--`, and pass-through `--maxfail`/`-x`
//! counted over every worker.

mod common;

use std::collections::BTreeMap;

use common::pysuite::*;
use common::*;

fn spread_suite(sleep: f64) -> PySuite {
    let module = format!(
        "import time, pytest\n\n@pytest.mark.parametrize('i', range(6))\ndef test_fails(i):\n    \
         time.sleep({sleep})\n    assert i < 0\n\ndef test_passes():\n    pass\n"
    );
    PySuite::new(&[("test_one.py", &module), ("test_two.py", &module)])
}

/// `text` with pytest's timings (`in 0.01s`) masked, so two runs compare equal.
fn untimed(text: &str) -> String {
    text.lines()
        .map(|line| match line.rfind(" in ") {
            Some(at) if line.trim_end_matches('=').trim_end().ends_with('s') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many processes each worker slot started.
fn spawns_per_slot(run: &Run) -> BTreeMap<String, usize> {
    let mut spawns = BTreeMap::new();
    for e in run.of("worker_spawned") {
        *spawns
            .entry(e["worker"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    spawns
}

#[test]
fn options_that_end_early_print_what_plain_pytest_prints_with_its_exit_code() {
    let suite = spread_suite(0.0);
    let cases: [&[&str]; 7] = [
        &["--collect-only", "-q"],
        &["--co"],
        &["--markers"],
        &["--fixtures", "test_one.py"],
        &["--version"],
        &["-h"],
        &["--setup-plan", "-q", "test_two.py"],
    ];
    for args in cases {
        let (code, stdout, _) = suite.plain_output(args);
        let run = suite.herd(&["-n", "2"], args);
        assert_eq!(run.code, code, "{args:?}\n{}", run.dump());
        assert_eq!(
            untimed(&run.stdout),
            untimed(&stdout),
            "{args:?}\n{}",
            run.dump()
        );
        assert!(
            run.of("worker_spawned").is_empty(),
            "{args:?}: no worker\n{}",
            run.dump()
        );
    }
}

#[test]
fn a_usage_error_or_a_missing_path_is_pytests_message_and_exit_4_once() {
    let suite = spread_suite(0.0);
    std::fs::create_dir(suite.path().join("broken")).unwrap();
    std::fs::write(
        suite.path().join("broken/conftest.py"),
        "import no_such_module_herd\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--no-such-option"],
            "error: unrecognized arguments: --no-such-option",
        ),
        (
            &["no/such/path.py"],
            "ERROR: file or directory not found: no/such/path.py",
        ),
        (&["broken"], "No module named 'no_such_module_herd'"),
    ];
    for (args, message) in cases {
        let (code, _, stderr) = suite.plain_output(args);
        assert_eq!(code, 4, "plain pytest {args:?}: {stderr}");
        assert!(stderr.contains(message), "plain pytest {args:?}: {stderr}");
        let run = suite.herd(&["-n", "2"], args);
        assert_eq!(run.code, 4, "{args:?}\n{}", run.dump());
        let both = format!("{}{}", run.stdout, run.stderr);
        assert_eq!(
            both.matches(message).count(),
            1,
            "{args:?}: pytest's message, once\n{}",
            run.dump()
        );
        if args[0] != "no/such/path.py" {
            // Refused before any test: pytest's message (stderr) is all, as with pytest.
            assert_eq!(run.stdout, "", "{args:?}: nothing else\n{}", run.dump());
        }
        // pytest's message as pytest prints it, with nothing of herd's around it.
        assert!(!run.stderr.contains("herd:"), "{args:?}\n{}", run.dump());
        assert!(!run.respawned(), "{args:?}: no respawn\n{}", run.dump());
        let spawns = spawns_per_slot(&run);
        assert!(
            spawns.values().all(|n| *n == 1),
            "{spawns:?}\n{}",
            run.dump()
        );
    }
}

#[test]
fn xdist_flags_after_the_separator_are_a_usage_error_naming_herds_flag() {
    let suite = spread_suite(0.0);
    // What pytest itself says of them without xdist (herd's workers run with -p no:xdist).
    let (code, _, stderr) = suite.plain_output(&["-p", "no:xdist", "-n", "2"]);
    assert_eq!(code, 4, "{stderr}");
    let cases: [(&[&str], &str); 5] = [
        (&["-n", "2", "."], "put it before --: herd run -n 2 -- "),
        (&["--numprocesses=3"], "herd run -n 3 -- "),
        (&["--dist", "loadscope"], "herd run --dist modscope -- "),
        (&["--maxprocesses", "2"], "herd run -n 2 -- "),
        (
            &["--max-worker-restart", "1"],
            "herd run --max-respawns 1 -- ",
        ),
    ];
    for (args, advice) in cases {
        let run = suite.herd(&[], args);
        assert_eq!(run.code, 4, "{args:?}\n{}", run.dump());
        let first = args[0].split('=').next().unwrap();
        assert!(
            run.stderr.starts_with(&format!("herd: error: {first}"))
                && run.stderr.contains("after -- is pytest-xdist's flag")
                && run.stderr.contains(advice),
            "{args:?}\n{}",
            run.dump()
        );
        assert!(
            run.of("worker_spawned").is_empty(),
            "{args:?}: no worker\n{}",
            run.dump()
        );
    }
}

#[test]
fn pass_through_maxfail_and_exitfirst_count_over_every_worker() {
    let suite = spread_suite(0.5);
    // herd's own --maxfail stops dealing out tests; the tests running then finish. With tests
    // of equal length on 2 workers, failures come in pairs and each worker has started its next
    // test when a failure is counted: at most N + 3 fail (N + 2 x workers - 1).
    let bound = |n: usize| n..=n + 3;
    let own = suite.herd(&["-n", "2", "--maxfail", "3"], &[]);
    assert!(bound(3).contains(&own.count("failed")), "{}", own.dump());
    for (args, limit) in [(&["--maxfail=3"][..], 3), (&["-x"][..], 1)] {
        let (code, counts, stdout) = suite.plain(args);
        assert_eq!((code, counts.get("failed")), (1, Some(&limit)), "{stdout}");
        let run = suite.herd(&["-n", "2"], args);
        assert_eq!(run.code, code, "{args:?}\n{}", run.dump());
        let failed = run.count("failed");
        assert!(
            bound(limit).contains(&failed),
            "{args:?}: {failed} failed\n{}",
            run.dump()
        );
        // herd stopped the session; no worker stopped itself (a worker's own maxfail ends its
        // pytest session, which herd reports as an interruption, exit 2).
        assert!(run.stdout.contains("--maxfail reached"), "{}", run.dump());
        assert!(
            !run.stdout.contains("ended its test session"),
            "{}",
            run.dump()
        );
        assert!(run.count("not_run") > 0, "{}", run.dump());
        let spawns = spawns_per_slot(&run);
        assert!(
            spawns.values().all(|n| *n == 1),
            "{spawns:?}\n{}",
            run.dump()
        );
    }
    // With herd's own --maxfail too, the smaller limit wins.
    let run = suite.herd(&["-n", "2", "--maxfail", "9"], &["--maxfail", "1"]);
    let failed = run.count("failed");
    assert!(
        bound(1).contains(&failed),
        "{failed} failed\n{}",
        run.dump()
    );
}
