//! Shared helpers for herd's integration tests: suites of real shell tests in a temporary
//! directory, a real `herd run`, and the `--events` file read back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod pysuite;

/// A suite of shell tests. Test ids are `module::name`; test `name` runs `name.sh`.
pub struct Suite {
    pub dir: tempfile::TempDir,
    ids: Vec<String>,
    list: String,
}

impl Suite {
    pub fn new() -> Suite {
        Suite {
            dir: tempfile::tempdir().unwrap(),
            ids: Vec::new(),
            list: "cat ids.txt".into(),
        }
    }

    /// Uses another list command (run in the suite's directory).
    pub fn with_list(mut self, list: &str) -> Suite {
        self.list = list.to_string();
        self
    }

    /// Adds test `id` (`module::name`) whose body is `script`.
    pub fn test(mut self, id: &str, script: &str) -> Suite {
        let name = id.rsplit("::").next().unwrap();
        std::fs::write(self.dir.path().join(format!("{name}.sh")), script).unwrap();
        self.ids.push(id.to_string());
        std::fs::write(self.dir.path().join("ids.txt"), self.ids.join("\n") + "\n").unwrap();
        self
    }

    /// Adds `n` passing tests `module::{prefix}{i}`.
    pub fn passing(mut self, module: &str, prefix: &str, n: usize) -> Suite {
        for i in 0..n {
            self = self.test(&format!("{module}::{prefix}{i}"), "exit 0\n");
        }
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// `herd run ARGS --events ... --list LIST -- <run one test>`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
        cmd.current_dir(self.path())
            .arg("run")
            .args(args)
            .arg("--events")
            .arg(self.events_path())
            .args([
                "--list",
                &self.list,
                "--",
                "sh",
                "-c",
                r#"exec sh "./${1##*::}.sh""#,
                "herd-test",
                "{}",
            ])
            .env_remove("HERD_WORKER_FAULT")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs herd to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args))
    }

    pub fn run_with(&self, mut cmd: Command) -> Run {
        let out = cmd.output().expect("herd runs");
        Run::from_output(out, &self.events_path())
    }

    /// Starts herd in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits until the events file holds `n` events of kind `event`.
    pub fn wait_for_events(&self, event: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if read_events(&self.events_path())
                .iter()
                .filter(|e| e["event"] == event)
                .count()
                >= n
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {n} {event} events within 30s");
    }
}

/// A finished herd run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

impl Run {
    pub fn from_output(out: Output, events: &Path) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            events: read_events(events),
        }
    }

    pub fn wait(child: Child, events: &Path) -> Run {
        Run::from_output(child.wait_with_output().unwrap(), events)
    }

    /// Events of one kind.
    pub fn of(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }

    /// Every collected test's single outcome; panics if any test has none or more than one.
    pub fn outcomes(&self) -> HashMap<String, String> {
        let started = self.of("collected");
        assert_eq!(started.len(), 1, "one collected event\n{}", self.dump());
        let collected: Vec<String> = started[0]["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let mut outcomes = HashMap::new();
        for e in self.of("test_finished") {
            let test = e["test"].as_str().unwrap().to_string();
            let outcome = e["outcome"].as_str().unwrap().to_string();
            assert!(
                collected.contains(&test),
                "outcome for uncollected {test}\n{}",
                self.dump()
            );
            if let Some(first) = outcomes.insert(test.clone(), outcome) {
                panic!("{test} has two outcomes (first {first})\n{}", self.dump());
            }
        }
        for test in &collected {
            assert!(
                outcomes.contains_key(test),
                "{test} has no outcome\n{}",
                self.dump()
            );
        }
        let finished = self.of("session_finished");
        assert_eq!(
            finished.len(),
            1,
            "one session_finished event\n{}",
            self.dump()
        );
        assert_eq!(
            finished[0]["exit_code"],
            self.code,
            "exit code matches the event\n{}",
            self.dump()
        );
        outcomes
    }

    /// Whether some worker slot started a second process (a respawn).
    pub fn respawned(&self) -> bool {
        self.of("worker_spawned")
            .iter()
            .any(|e| e["incarnation"] == 2)
    }

    /// How many tests ended with `outcome`.
    pub fn count(&self, outcome: &str) -> usize {
        self.outcomes().values().filter(|o| *o == outcome).count()
    }

    /// The finished event of one test.
    pub fn finished(&self, test: &str) -> &Value {
        self.of("test_finished")
            .into_iter()
            .find(|e| e["test"] == test)
            .unwrap()
    }

    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Processes whose command line contains `marker` (other than the caller).
pub fn processes_with(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", "-a", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

/// The path of example `name`, built beside the test binaries (`cargo test --all-targets`):
/// `target/<profile>/deps/<test>-<hash>` -> `target/<profile>/examples/<name>`.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test --all-targets` builds it",
        path.display()
    );
    path
}

/// The processes (other than this one) whose working directory is `dir`: a session's workers
/// and tests run in its suite's directory, so this finds only that session's processes.
pub fn processes_in(dir: &Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

/// Waits up to `limit` for no process to remain in `dir` (see [`processes_in`]).
pub fn no_processes_in(dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if processes_in(dir).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `limit` for no process with `marker` in its command line to remain.
pub fn no_processes_with(marker: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if processes_with(marker).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to a process.
/// How long a test waits for something that must happen (liveness, not speed).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits up to `limit` for `check` to return something; fails the test, naming `what`, after.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the session token `secret` to `dir/name`, readable by its owner only (herd refuses
/// a token file others can read); its path.
pub fn token_file(dir: &Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// Waits for `child` (spawned with piped stdout and stderr): its exit code (-1 for a signal)
/// and its stdout followed by its stderr.
pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}
