//! Output files under real trouble: a real full disk (a small tmpfs, mounted for the test) under
//! `--events`, `--junit-xml`, `--log-dir` and `--history`, and output paths that cannot be
//! created. A failed result file is said (the file and the OS error) and exits 3, the summary
//! still counts every test; a bad path is a usage error (exit 4) before any worker starts.
//!
//! The full-disk tests need root (`mount -t tmpfs`); elsewhere they print `SKIPPED: ...` and
//! return.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{read_events, Run, Suite};

const NO_SPACE: &str = "No space left on device (os error 28)";

/// A tmpfs of 64 KiB mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs with `options` (`size=64k`, `ro,size=64k`), or why there cannot be one.
    fn mount(options: &str) -> Result<Tmpfs, String> {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's effective user.
        if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            return Err("mounting a tmpfs needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    /// A 64 KiB tmpfs with only `free` bytes left.
    fn full(free: usize) -> Result<Tmpfs, String> {
        let fs = Tmpfs::mount("size=64k")?;
        std::fs::write(fs.path("filler"), vec![0u8; 64 * 1024 - free])
            .map_err(|e| format!("cannot fill the tmpfs: {e}"))?;
        Ok(fs)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A tmpfs, or `None` after printing why the test is skipped.
fn tmpfs_or_skip(made: Result<Tmpfs, String>) -> Option<Tmpfs> {
    match made {
        Ok(fs) => Some(fs),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// `passed` passing tests and `failed` failing ones, each writing `noise` bytes to stderr.
fn suite(passed: usize, failed: usize, noise: usize) -> Suite {
    let say = format!("head -c {noise} /dev/zero | tr '\\0' x >&2\n");
    let mut suite = Suite::new();
    for i in 0..passed {
        suite = suite.test(&format!("m::ok{i}"), &format!("{say}exit 0\n"));
    }
    for i in 0..failed {
        suite = suite.test(&format!("m::bad{i}"), &format!("{say}exit 1\n"));
    }
    suite
}

/// `herd run -n 2 ARGS --list ... -- <run one test>` in the suite's directory.
fn herd(suite: &Suite, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_herd"))
        .current_dir(suite.path())
        .args(["run", "-n", "2"])
        .args(args.iter().map(|a| a.as_ref()))
        .args(["--list", "cat ids.txt", "--", "sh", "-c"])
        .args([r#"exec sh "./${1##*::}.sh""#, "herd-test", "{}"])
        .env_remove("RUST_LOG")
        .env_remove("HERD_WORKER_FAULT")
        .output()
        .expect("herd runs");
    Run::from_output(out, &suite.events_path())
}

/// The final line's counts, like pytest's (`290 passed, 10 failed in 1.20s`).
fn summary(run: &Run) -> String {
    let last = run.stdout.lines().rev().find(|l| l.contains(" in "));
    last.unwrap_or_else(|| panic!("no summary line\n{}", run.dump()))
        .trim_matches(|c| c == '=' || c == ' ')
        .to_string()
}

fn said(run: &Run, what: &str, path: &Path) -> bool {
    let start = format!(
        "herd: could not write {what} {}: {NO_SPACE}",
        path.display()
    );
    run.stdout.lines().any(|l| l.starts_with(&start))
}

#[test]
fn events_on_a_full_disk_are_cut_to_whole_lines_said_and_exit_3() {
    let Some(fs) = tmpfs_or_skip(Tmpfs::full(16 * 1024)) else {
        return;
    };
    let suite = suite(290, 10, 0);
    let events = fs.path("events.jsonl");
    let run = herd(&suite, &[&"--events", &events]);
    assert_eq!(run.code, 3, "{}", run.dump());
    assert!(
        said(&run, "--events", &events),
        "the file and the error are named\n{}",
        run.dump()
    );
    assert!(
        run.stdout.contains("the file is incomplete"),
        "{}",
        run.dump()
    );
    assert!(
        summary(&run).starts_with("10 failed, 290 passed in "),
        "every test is counted\n{}",
        run.dump()
    );
    // What was written is whole lines of events, a prefix of the session without its end.
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.ends_with('\n') && text.len() > 1000, "{text}");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a whole JSON line");
    }
    assert!(!read_events(&events)
        .iter()
        .any(|e| e["event"] == "session_finished"));
}

#[test]
fn junit_xml_on_a_full_disk_is_said_removed_and_exits_3() {
    let Some(fs) = tmpfs_or_skip(Tmpfs::full(8 * 1024)) else {
        return;
    };
    let suite = suite(290, 10, 0);
    let junit = fs.path("junit.xml");
    let run = herd(
        &suite,
        &[&"--events", &suite.events_path(), &"--junit-xml", &junit],
    );
    assert_eq!(run.code, 3, "{}", run.dump());
    assert!(said(&run, "--junit-xml", &junit), "{}", run.dump());
    assert!(!junit.exists(), "no half report is left for CI to read");
    assert!(summary(&run).starts_with("10 failed, 290 passed in "));
    // The events (on a disk with room) still hold every test's one outcome, and the exit code.
    let outcomes = run.outcomes();
    assert_eq!(outcomes.values().filter(|o| *o == "passed").count(), 290);
}

#[test]
fn worker_logs_on_a_full_disk_are_said_and_exit_3() {
    let Some(fs) = tmpfs_or_skip(Tmpfs::full(16 * 1024)) else {
        return;
    };
    let suite = suite(100, 0, 1000);
    let logs = fs.path("logs");
    let run = herd(
        &suite,
        &[&"--events", &suite.events_path(), &"--log-dir", &logs],
    );
    assert_eq!(run.code, 3, "{}", run.dump());
    let named = ["w1", "w2"]
        .iter()
        .any(|w| said(&run, "the worker log", &logs.join(format!("{w}.log"))));
    assert!(named, "the log and the error are named\n{}", run.dump());
    assert!(
        summary(&run).starts_with("100 passed in "),
        "{}",
        run.dump()
    );
    assert_eq!(run.count("passed"), 100, "{}", run.dump());
}

#[test]
fn a_history_that_cannot_be_saved_is_a_warning_and_the_old_one_stays_whole() {
    let Some(fs) = tmpfs_or_skip(Tmpfs::full(4 * 1024)) else {
        return;
    };
    let history = fs.path("durations.json");
    let old = r#"{"durations":{"m::ok0":0.5}}"#;
    std::fs::write(&history, old).unwrap();
    // 300 test ids do not fit in the space left.
    let suite = suite(300, 0, 0);
    let run = herd(&suite, &[&"--history", &history]);
    assert_eq!(
        run.code,
        0,
        "not a result file: the exit code stands\n{}",
        run.dump()
    );
    let start = format!(
        "herd: warning: could not write the duration history {}: {NO_SPACE}",
        history.display()
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with(&start)),
        "{}",
        run.dump()
    );
    assert_eq!(std::fs::read_to_string(&history).unwrap(), old);
    let names: Vec<String> = std::fs::read_dir(fs.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
}

/// A suite whose one test leaves a mark, to show that no worker ran it.
fn marking_suite() -> Suite {
    Suite::new().test("m::mark", "touch ran\nexit 0\n")
}

fn assert_usage_error(suite: &Suite, run: &Run, words: &[&str]) {
    assert_eq!(run.code, 4, "{}", run.dump());
    for w in words {
        assert!(run.stderr.contains(w), "says {w:?}\n{}", run.dump());
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.dump());
    assert!(!suite.path().join("ran").exists(), "no test ran");
}

#[test]
fn an_output_path_under_a_file_is_a_usage_error_naming_the_file() {
    let suite = marking_suite();
    std::fs::write(suite.path().join("afile"), "").unwrap();
    let run = herd(&suite, &[&"--junit-xml", &"afile/x.xml"]);
    assert_usage_error(
        &suite,
        &run,
        &[
            "--junit-xml afile/x.xml",
            "afile is a file, not a directory",
        ],
    );
    let run = herd(&suite, &[&"--events", &"afile/deeper/e.jsonl"]);
    assert_usage_error(&suite, &run, &["afile is a file, not a directory"]);
    let run = herd(&suite, &[&"--log-dir", &"afile"]);
    assert_usage_error(
        &suite,
        &run,
        &["--log-dir afile", "afile is a file, not a directory"],
    );
    let run = herd(&suite, &[&"--events", &"."]);
    assert_usage_error(&suite, &run, &["--events .", "it is a directory"]);
    // A directory that does not exist yet is made.
    let run = herd(&suite, &[&"--junit-xml", &"reports/new/x.xml"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(suite.path().join("reports/new/x.xml").exists());
}

#[test]
fn an_output_path_that_cannot_be_written_is_a_usage_error() {
    let suite = marking_suite();
    // Root may write anywhere but on a read-only file system; others not in a 0555 directory.
    let readonly = Tmpfs::mount("ro,size=64k");
    let (dir, why) = match &readonly {
        Ok(fs) => (fs.dir.path().to_path_buf(), "Read-only file system"),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt;
            let dir = suite.path().join("locked");
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            (dir, "Permission denied")
        }
    };
    let events = dir.join("e.jsonl");
    let run = herd(&suite, &[&"--events", &events]);
    let flag = format!("--events {}", events.display());
    assert_usage_error(&suite, &run, &[&flag, why]);
    let missing = dir.join("missing/e.jsonl");
    let run = herd(&suite, &[&"--events", &missing]);
    assert_usage_error(&suite, &run, &[&missing.display().to_string(), why]);
    let logs = dir.join("logs");
    let run = herd(&suite, &[&"--log-dir", &logs]);
    assert_usage_error(
        &suite,
        &run,
        &[&format!("--log-dir {}", logs.display()), why],
    );
    if readonly.is_ok() {
        let run = herd(&suite, &[&"--log-dir", &dir]);
        assert_usage_error(
            &suite,
            &run,
            &[&format!("--log-dir {}", dir.display()), why],
        );
    }
}
