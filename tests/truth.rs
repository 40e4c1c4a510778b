//! Never a false outcome, with real pytest: failure texts JSON cannot carry, reruns, results far
//! beyond the frame limit and tests that hold the interpreter lock all end with the outcome plain
//! pytest gives them, without a worker being killed for it.

mod common;

use common::pysuite::*;

/// Every test's outcome from `--events`, and no worker was killed or respawned for its text.
fn assert_no_respawn(run: &common::Run) {
    assert!(!run.respawned(), "a worker was respawned:\n{}", run.dump());
    assert!(
        run.of("message_refused").is_empty(),
        "a message was refused:\n{}",
        run.dump()
    );
}

#[test]
fn failures_whose_text_json_cannot_carry_stay_failures() {
    let text = r#"
import pytest

def test_lone_surrogate():
    assert False, "x \udcff y"

def test_nul_and_escapes():
    assert False, "nul \x00 bell \x07 esc \x1b[2J"

def test_surrogate_in_output():
    print("out \udc80")
    raise ValueError("bad \udfff")

@pytest.mark.parametrize("p", ["\udcff", "ok"])
def test_param(p):
    assert p == "ok"

def test_after():
    pass
"#;
    let suite = PySuite::new(&[("test_odd.py", text)]);
    let (code, counts, _) = suite.plain(&[]);
    for _ in 0..3 {
        let run = suite.herd(&["-n", "2"], &[]);
        assert_eq!(run.code, code, "{}", run.dump());
        let outcomes = run.outcomes();
        assert_eq!(outcomes["test_odd.py::test_lone_surrogate"], "failed");
        assert_eq!(outcomes["test_odd.py::test_nul_and_escapes"], "failed");
        assert_eq!(outcomes["test_odd.py::test_surrogate_in_output"], "failed");
        assert_eq!(outcomes["test_odd.py::test_after"], "passed");
        assert_eq!(run.count("failed"), counts["failed"], "{}", run.dump());
        assert_eq!(run.count("passed"), counts["passed"], "{}", run.dump());
        let details = run.finished("test_odd.py::test_lone_surrogate")["details"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(details.contains(r"x \udcff y"), "{details}");
        assert_no_respawn(&run);
    }
}

#[test]
fn reruns_are_passed_on_and_an_always_failing_test_ends_failed() {
    let text = r#"
import pathlib, pytest

@pytest.mark.flaky(reruns=2)
def test_always_fails():
    assert False, "always"

@pytest.mark.flaky(reruns=2)
def test_passes_the_second_time():
    mark = pathlib.Path("flaky-mark")
    if not mark.exists():
        mark.write_text("x")
        assert False, "first time"

def test_plain():
    pass
"#;
    let suite = PySuite::new(&[("test_rerun.py", text)]);
    let (code, counts, plain_out) = suite.plain(&["-p", "rerunfailures"]);
    assert_eq!(code, 1, "{plain_out}");
    assert_eq!(counts.get("rerun"), Some(&3), "{plain_out}");
    std::fs::remove_file(suite.path().join("flaky-mark")).unwrap();
    let run = suite.herd(&["-n", "2"], &["-p", "rerunfailures"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["test_rerun.py::test_always_fails"], "failed");
    assert_eq!(
        outcomes["test_rerun.py::test_passes_the_second_time"],
        "passed"
    );
    assert_eq!(outcomes["test_rerun.py::test_plain"], "passed");
    assert!(
        run.stdout.contains("3 rerun"),
        "the reruns are counted as pytest counts them:\n{}",
        run.dump()
    );
    assert_no_respawn(&run);
}

#[test]
fn results_beyond_the_frame_limit_are_cut_with_a_note_never_a_crash() {
    let text = r#"
import sys

def test_big_pass():
    sys.stdout.write("p" * 50_000_000)

def test_big_fail():
    sys.stdout.write("h" * 1000 + "f" * 20_000_000 + "TAIL-END")
    assert False, "big"

def test_after():
    pass
"#;
    let suite = PySuite::new(&[("test_big.py", text)]);
    let run = suite.herd(&["-n", "1"], &[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["test_big.py::test_big_pass"], "passed");
    assert_eq!(outcomes["test_big.py::test_big_fail"], "failed");
    assert_eq!(outcomes["test_big.py::test_after"], "passed");
    let details = run.finished("test_big.py::test_big_fail")["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        details.contains("cut here so the report fits in a frame")
            && details.contains("the output was 19.1 MiB in all"),
        "no note about the cut: {}",
        &details[..details.len().min(2000)]
    );
    assert!(details.contains("TAIL-END") && details.contains("hhhh"));
    assert_no_respawn(&run);
}

#[test]
fn a_test_holding_the_interpreter_lock_is_busy_not_hung() {
    // sum() over a range runs in C without releasing the GIL: the heartbeat thread cannot run
    // for the whole call, longer than the heartbeat timeout (5 s).
    let text = r#"
import time

def test_busy():
    # One call must hold the lock for longer than the limit; the machine's load changes how
    # long a call takes, so aim at 6.5 s and aim again until one call was long enough.
    n, took = 2_000_000, 0.0
    for _ in range(6):
        start = time.perf_counter()
        sum(range(n))
        took = time.perf_counter() - start
        if took > 5.5:
            break
        n = int(n * min(6.5 / max(took, 1e-3), 50))
    assert took > 5.5, f"held the lock for only {took:.1f}s"

def test_after():
    pass
"#;
    let suite = PySuite::new(&[("test_busy.py", text)]);
    let run = suite.herd(&["-n", "1"], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.outcomes()["test_busy.py::test_busy"], "passed");
    assert!(!run.stdout.contains("taking it for hung"), "{}", run.dump());
    assert_no_respawn(&run);
}

#[test]
fn the_exec_runners_output_cut_says_so() {
    // 200 KB of output from a failing test: the report keeps its head and tail and says how
    // much was cut between them.
    let suite = common::Suite::new().test(
        "a::loud",
        "printf 'FIRST-LINE\\n'\nhead -c 200000 /dev/zero | tr '\\0' x\nprintf '\\nLAST-LINE\\n'\nexit 1\n",
    );
    let run = suite.run(&["-n", "1"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let details = run.finished("a::loud")["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        details.contains("FIRST-LINE") && details.contains("LAST-LINE"),
        "head or tail lost"
    );
    assert!(
        details.contains("cut here; the output was 195.3 KiB in all"),
        "no note: {}",
        &details[..details.len().min(600)]
    );
    assert!(details.len() < 70 * 1024, "{} bytes kept", details.len());
}
