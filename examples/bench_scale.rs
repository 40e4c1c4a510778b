//! Benchmark (not a test): many workers against one coordinator. Starts WORKERS (default 200)
//! local workers of herd's own worker binary in no-op mode (`herd worker --noop`: each test is
//! reported passed without running anything), deals them TESTS (default 20,000) tests, and prints
//! the coordinator's CPU per test and its peak memory. The coordinator runs in this process, so
//! `getrusage(SELF)` counts only herd's actor, transport and ZeroMQ threads.
//!
//! Run with `scripts/bench.sh scale [WORKERS] [TESTS]`, or:
//!   cargo build --release && cargo run --release --example bench_scale -- [WORKERS] [TESTS]

use std::ffi::OsString;
use std::time::Instant;

use herd::core::grouping::Dist;
use herd::{ExecRunner, Outcome, Runner, RunnerError, Session, SessionConfig, WorkerCommand};

/// The exec runner with its workers in no-op mode.
struct NoopRunner(ExecRunner);

impl Runner for NoopRunner {
    fn name(&self) -> &str {
        "exec (no-op)"
    }
    fn collect(&self) -> Result<Option<Vec<String>>, RunnerError> {
        self.0.collect()
    }
    fn worker_command(&self) -> Result<WorkerCommand, RunnerError> {
        let mut command = self.0.worker_command()?;
        command.args.insert(1, OsString::from("--noop"));
        Ok(command)
    }
    fn default_dist(&self) -> Dist {
        self.0.default_dist()
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

fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args
        .next()
        .map_or(200, |a| a.parse().expect("WORKERS is a number"));
    let tests: usize = args
        .next()
        .map_or(20_000, |a| a.parse().expect("TESTS is a number"));
    let dir = tempfile::tempdir().unwrap();
    let ids: String = (0..tests).map(|i| format!("t{i}\n")).collect();
    std::fs::write(dir.path().join("ids.txt"), ids).unwrap();
    let runner = NoopRunner(ExecRunner {
        list: format!("cat {}", dir.path().join("ids.txt").display()),
        command: vec!["true".into()],
        worker_program: herd::runner::find_herd_binary()
            .expect("run `cargo build --release` first"),
    });
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
    println!("herd scale benchmark: {workers} workers (herd worker --noop), {tests} tests");
    println!(
        "  wall time          {wall:.2} s ({:.0} tests/s; includes starting every worker)",
        tests as f64 / wall
    );
    println!(
        "  coordinator CPU    {cpu:.3} s = {:.1} µs per test, {:.1} ms per worker",
        cpu * 1e6 / tests as f64,
        cpu * 1e3 / workers as f64
    );
    println!(
        "  coordinator RSS    {:.1} MiB peak",
        rss_kib as f64 / 1024.0
    );
    println!("  workers that ran tests {used} of {workers}");
    println!(
        "  outcomes           {}",
        report.tally.summary_line(report.duration)
    );
}
