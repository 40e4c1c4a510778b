//! Benchmark (not a test): runs 10,000 trivial exec tests through a real session and prints the
//! coordinator's own cost per test. The coordinator runs in this process, so `getrusage(SELF)`
//! counts herd's actor thread, transport thread and ZeroMQ threads, and none of the worker or test
//! processes.
//!
//! With `--noop` the workers run nothing (`herd worker --noop` reports each test passed): the
//! figures are then herd's alone, for runs of 100,000 tests and more, or of many workers
//! (`scripts/bench.sh scale`: 200 workers, 20,000 tests).
//!
//! Run with `scripts/bench.sh` (builds `herd` in release mode first), or:
//!   cargo build --release && cargo run --release --example bench_exec -- [TESTS] [WORKERS] [--noop]

use std::ffi::OsString;
use std::time::Instant;

use herd::core::grouping::Dist;
use herd::{ExecRunner, Outcome, Runner, RunnerError, Session, SessionConfig, WorkerCommand};

/// The exec runner, its workers optionally in no-op mode.
struct Bench {
    runner: ExecRunner,
    noop: bool,
}

impl Runner for Bench {
    fn name(&self) -> &str {
        "exec"
    }
    fn collect(&self) -> Result<Option<Vec<String>>, RunnerError> {
        self.runner.collect()
    }
    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        let mut command = self.runner.worker_command()?;
        if self.noop {
            command.args.insert(1, OsString::from("--noop"));
        }
        Ok(command)
    }
    fn default_dist(&self) -> Dist {
        self.runner.default_dist()
    }
}

fn cpu_and_rss() -> (f64, i64) {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (
        secs(usage.user_time()) + secs(usage.system_time()),
        usage.max_rss(),
    )
}

/// The peak resident set of this process as /proc/self/status says it (`VmHWM`).
fn vm_hwm() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib / 1024.0))
}

fn main() {
    let noop = std::env::args().any(|a| a == "--noop");
    let mut args = std::env::args().skip(1).filter(|a| a != "--noop");
    let tests: usize = args
        .next()
        .map_or(10_000, |a| a.parse().expect("TESTS is a number"));
    let workers: usize = args
        .next()
        .map_or(2, |a| a.parse().expect("WORKERS is a number"));
    let dir = tempfile::tempdir().unwrap();
    let ids: String = (0..tests).map(|i| format!("t{i}\n")).collect();
    std::fs::write(dir.path().join("ids.txt"), ids).unwrap();
    let runner = Bench {
        runner: ExecRunner {
            list: format!("cat {}", dir.path().join("ids.txt").display()),
            command: vec!["true".into()],
            worker_program: herd::runner::find_herd_binary()
                .expect("run `cargo build --release` first"),
        },
        noop,
    };
    let config = SessionConfig {
        workers: Some(workers),
        log_dir: None,
        history: None,
        verbosity: -1,
        handle_signals: false,
        ..SessionConfig::default()
    };
    let (cpu0, _) = cpu_and_rss();
    let start = Instant::now();
    let report = Session::new(config, Box::new(runner))
        .with_output(Box::new(std::io::sink()))
        .run()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, rss_kib) = cpu_and_rss();
    let cpu = cpu1 - cpu0;
    assert_eq!(
        report.tally.get(Outcome::Passed),
        tests,
        "every test passes: {:?}",
        report.tally
    );
    let used = {
        let mut ids: Vec<&str> = report
            .results
            .iter()
            .filter_map(|r| r.worker.as_deref())
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let what = if noop { "no-op workers" } else { "`true`" };
    println!("herd exec benchmark: {tests} tests ({what}), {workers} workers");
    println!(
        "  wall time          {wall:.2} s ({:.0} tests/s)",
        tests as f64 / wall
    );
    println!(
        "  coordinator CPU    {cpu:.3} s = {:.1} µs per test, {:.1} ms per worker",
        cpu * 1e6 / tests as f64,
        cpu * 1e3 / workers as f64
    );
    println!(
        "  coordinator RSS    {:.1} MiB peak (getrusage; VmHWM {})",
        rss_kib as f64 / 1024.0,
        vm_hwm().unwrap_or_else(|| "unknown".into())
    );
    println!("  workers that ran tests {used} of {workers}");
    println!(
        "  outcomes           {}",
        report.tally.summary_line(report.duration)
    );
}
