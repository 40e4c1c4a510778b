//! A pytest suite the tests write, run by real pytest (from `.venv`, made by
//! `scripts/python-env`) and by a real `herd run -- pytest`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Run;

pub fn venv_pytest() -> PathBuf {
    let pytest = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pytest");
    assert!(
        pytest.exists(),
        "{} is missing: run scripts/python-env (scripts/test does) to install pytest and pyzmq",
        pytest.display()
    );
    pytest
}

/// A pytest suite in a temporary directory.
pub struct PySuite {
    pub dir: tempfile::TempDir,
}

impl PySuite {
    pub fn new(files: &[(&str, &str)]) -> PySuite {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        PySuite { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn events(&self) -> PathBuf {
        self.path().join("events.jsonl")
    }

    pub fn herd_command(&self, herd_args: &[&str], pytest_args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
        cmd.current_dir(self.path())
            .arg("run")
            .args(herd_args)
            .arg("--events")
            .arg(self.events())
            .arg("--")
            .arg(venv_pytest())
            .args(["-p", "no:cacheprovider"])
            .args(pytest_args)
            .env_remove("PYTEST_ADDOPTS")
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn herd(&self, herd_args: &[&str], pytest_args: &[&str]) -> Run {
        let out = self.herd_command(herd_args, pytest_args).output().unwrap();
        Run::from_output(out, &self.events())
    }

    /// Plain pytest on the suite with exactly `args`: (exit code, stdout, stderr).
    pub fn pytest(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(venv_pytest())
            .current_dir(self.path())
            .args(args)
            .env_remove("PYTEST_ADDOPTS")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Plain pytest without its cache, as herd's tests run it: (exit code, stdout, stderr).
    pub fn plain_output(&self, args: &[&str]) -> (i32, String, String) {
        self.pytest(&[&["-p", "no:cacheprovider"], args].concat())
    }

    /// Plain pytest on the same suite: (exit code, counts of its summary line).
    pub fn plain(&self, pytest_args: &[&str]) -> (i32, BTreeMap<String, usize>, String) {
        let (code, stdout, _) = self.plain_output(pytest_args);
        (code, summary_counts(&stdout), stdout)
    }
}

/// The counts of the last summary line (`== 1 failed, 2 passed, 1 error in 0.1s ==`).
pub fn summary_counts(output: &str) -> BTreeMap<String, usize> {
    let line = output
        .lines()
        .rev()
        .find(|l| {
            // `... in 1.23s`, or past a minute `... in 122.24s (0:02:02)`.
            let end = l.trim_end().trim_end_matches('=').trim_end();
            let end = match end.rsplit_once(" (") {
                Some((head, clock)) if clock.ends_with(')') => head,
                _ => end,
            };
            l.contains(" in ") && end.ends_with('s')
        })
        .unwrap_or_else(|| panic!("no summary line in:\n{output}"));
    let body = line.trim().trim_matches('=').trim();
    let body = &body[..body.rfind(" in ").unwrap()];
    body.split(", ")
        .filter_map(|part| {
            let (n, what) = part.split_once(' ')?;
            let what = if what == "errors" { "error" } else { what };
            Some((what.to_string(), n.parse().ok()?))
        })
        .collect()
}
