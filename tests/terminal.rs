//! What herd draws on a terminal, checked without screenshots: herd runs under `script` (a real
//! pseudo-terminal) and the bytes it wrote are inspected.

mod common;

use common::*;

/// Runs `herd run ARGS` on `suite` under a pseudo-terminal; returns what it drew.
fn on_terminal(suite: &Suite, args: &str, env: &[(&str, &str)]) -> String {
    let herd = env!("CARGO_BIN_EXE_herd");
    let cmd = format!(
        "{herd} run {args} --list 'cat ids.txt' -- sh -c 'sleep 0.2; exec sh \"./${{1##*::}}.sh\"' t {{}}"
    );
    let mut script = std::process::Command::new("script");
    script
        .current_dir(suite.path())
        .args(["-qfec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR");
    for (k, v) in env {
        script.env(k, v);
    }
    let out = script.output().expect("`script` (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn suite() -> Suite {
    Suite::new()
        .passing("a", "t", 5)
        .test("b::fails", "echo boom >&2\nexit 1\n")
}

#[test]
fn a_terminal_gets_a_live_progress_bar_and_colors() {
    let drawn = on_terminal(&suite(), "-n 2", &[]);
    assert!(drawn.contains("6/6 tests"), "{drawn}");
    assert!(
        drawn.contains("1 failed") && drawn.contains("2 workers running"),
        "{drawn}"
    );
    assert!(drawn.contains("ETA"), "{drawn}");
    assert!(
        drawn.contains("\x1b[31mFAILED\x1b[0m") || drawn.contains("\x1b[1m\x1b[31mFAILED"),
        "{drawn}"
    );
    assert!(drawn.contains("1 failed, 5 passed in"), "{drawn}");
}

#[test]
fn no_color_and_color_never_are_honoured_and_pipes_get_plain_lines() {
    let drawn = on_terminal(&suite(), "-n 2", &[("NO_COLOR", "1")]);
    assert!(
        drawn.contains("6/6 tests") && !drawn.contains("\x1b[31m"),
        "{drawn}"
    );
    let drawn = on_terminal(&suite(), "-n 2 --color never", &[]);
    assert!(!drawn.contains("\x1b[31m"), "{drawn}");
    let forced = suite();
    let run = forced.run(&["-n", "2", "--color", "always"]);
    assert!(run.stdout.contains("\x1b[31mFAILED"), "{}", run.dump());
    assert!(
        !run.stdout.contains("tests  ") && !run.stdout.contains('\r'),
        "no bar on a pipe\n{}",
        run.dump()
    );
}
