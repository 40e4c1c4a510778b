//! The command line: `herd run` and the hidden `herd worker`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::profile::{find_config, ConfigFile, Profile};
use crate::values;

/// herd: run one test suite across many supervised worker processes, and never lose a test.
#[derive(Debug, Parser)]
#[command(name = "herd", version, propagate_version = true)]
pub struct Cli {
    /// More output: -v shows progress and worker lifecycles, -vv every test start and herd's logs.
    /// Example: herd -v run -n 4 -- pytest
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output: no line per test. Example: herd -q run -- pytest
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// herd's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a suite across supervised workers.
    ///
    /// pytest runner (everything after `--` goes to pytest unchanged):
    ///   herd run -n 4 -- pytest tests/ -k smoke
    /// exec runner (one process per test, exit 0 passes, 77 skips):
    ///   herd run -n 4 --list 'ls tests/*.sh' -- sh {}
    ///
    /// Exit codes (pytest's): 0 all passed, 1 tests failed, 2 interrupted or collection failed,
    /// 3 internal error (respawn budget spent, every slot retired, or an output file such as
    /// --events, --junit-xml or a worker log that could not be written whole, e.g. on a full
    /// disk; the file and the OS error are named), 4 usage error (including an output path that
    /// cannot be created), 5 no tests collected.
    Run(Box<RunArgs>),
    /// Print a shell completion script. Example: herd completions bash > /etc/bash_completion.d/herd
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Serve as a worker: started by `herd run`, or on any host with --connect.
    ///
    /// Without --connect it reads the HERD_* variables `herd run` sets. With --connect it joins a
    /// session listening on TCP; `herd run --launcher external` prints each worker's command.
    ///
    /// exec runner:
    ///   herd worker --connect tcp://ci-1:5555 --token-file token --worker w3 \
    ///     --list 'ls tests/*.sh' -- sh {}
    /// pytest runner:
    ///   herd worker --connect tcp://ci-1:5555 --token-file token --worker w3 -- pytest tests/
    #[command(verbatim_doc_comment)]
    Worker(WorkerArgs),
}

/// Options of `herd run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Number of workers, 1 to 1024 (default: the number of CPUs). Example: -n 4
    #[arg(short = 'n', long = "workers", value_name = "N", allow_negative_numbers = true,
          value_parser = values::WORKERS.parser::<usize>())]
    pub workers: Option<usize>,
    /// A resource one worker owns exclusively (server URL, database, device); one worker per value,
    /// given to it as HERD_APPLIANCE. Example: --appliance db1 --appliance db2
    #[arg(long = "appliance", value_name = "VALUE", value_parser = values::APPLIANCE.parser())]
    pub appliances: Vec<String>,
    /// How tests are dealt out: modscope (module, then parametrize id; pytest's default), load
    /// (chunks sized from the remaining work; the exec runner's default), file, group (only
    /// herd_group marks tie tests). Example: --dist load
    #[arg(long, value_name = "MODE", value_parser = ["modscope", "load", "file", "group"])]
    pub dist: Option<String>,
    /// Where test durations are kept between runs, so groups are dealt longest first
    /// (default .herd/durations.json). Example: --history /tmp/herd-durations.json
    #[arg(long, value_name = "PATH")]
    pub history: Option<PathBuf>,
    /// Every worker collects the whole suite before its first test (by default a pytest suite's
    /// test files are shared out: each is collected by one worker, then by another only when
    /// tests of it are dealt there, and checked against the reference). Example: --collect-all
    #[arg(long)]
    pub collect_all: bool,
    /// Provider names matched in parametrize ids; a provider's tests stick to the worker holding it.
    /// Example: --providers rhv,vsphere,ec2
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', value_parser = values::PROVIDERS.parser())]
    pub providers: Vec<String>,
    /// Shell command run before a worker switches provider (gets HERD_APPLIANCE,
    /// HERD_PROVIDER_FROM, HERD_PROVIDER_TO). Example: --cleanse './cleanup.sh'
    #[arg(long, value_name = "CMD", value_parser = values::CLEANSE.parser())]
    pub cleanse: Option<String>,
    /// Shell command run before each respawn with HERD_APPLIANCE set; if it fails, the slot is
    /// retired instead. Example: --appliance-check 'pg_isready -h "$HERD_APPLIANCE"'
    #[arg(long, value_name = "CMD", value_parser = values::APPLIANCE_CHECK.parser())]
    pub appliance_check: Option<String>,
    /// Respawns allowed before the session stops, 0 to 100000 (default: 3 x workers).
    /// Example: --max-respawns 20
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = values::MAX_RESPAWNS.parser::<u32>())]
    pub max_respawns: Option<u32>,
    /// Count respawns only within this many seconds, 0.001 to 604800 (like OTP's intensity period).
    /// Example: --max-respawns 5 --respawn-window 60
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::RESPAWN_WINDOW.parser())]
    pub respawn_window: Option<f64>,
    /// Retire a worker slot whose process died this many times in a row, 0 to 10000 (0: never;
    /// default 3).
    /// Example: --retire-after 5
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = values::RETIRE_AFTER.parser::<u32>())]
    pub retire_after: Option<u32>,
    /// Re-run a test that crashed its worker up to N times (0 to 100) on a fresh worker before
    /// reporting it (default 0). Example: --crash-retries 1
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = values::CRASH_RETRIES.parser::<u32>())]
    pub crash_retries: Option<u32>,
    /// Stop dealing out tests after N failures (0: no limit; at most 10000000); running tests
    /// finish. Example: --maxfail 5
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = values::MAXFAIL.parser::<usize>())]
    pub maxfail: Option<usize>,
    /// Stop after the first failure (--maxfail 1). Example: herd run -x -- pytest
    #[arg(short = 'x', long, conflicts_with = "maxfail")]
    pub exitfirst: bool,
    /// Fail a test that runs longer than this many seconds, 0.001 to 604800 (its worker is killed
    /// and respawned). Example: --timeout 300
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::TIMEOUT.parser())]
    pub timeout: Option<f64>,
    /// Seconds a worker may take to exit after it shut down before it is killed, 0.001 to 604800
    /// (default 10).
    /// Example: --grace 30
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::GRACE.parser())]
    pub grace: Option<f64>,
    /// Seconds a new worker may take to report its collection before it is killed, 0.001 to
    /// 604800 (default 120).
    /// Example: --worker-start-timeout 600
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::WORKER_START_TIMEOUT.parser())]
    pub worker_start_timeout: Option<f64>,
    /// Write the results as JUnit XML (for CI). Example: --junit-xml reports/herd.xml
    #[arg(long, value_name = "PATH")]
    pub junit_xml: Option<PathBuf>,
    /// List the N slowest tests at the end (0: all; at most 10000000), like pytest.
    /// Example: --durations 10
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = values::DURATIONS.parser::<usize>())]
    pub durations: Option<usize>,
    /// Write every event as a JSON line to FILE. Example: --events events.jsonl
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Directory for per-worker logs (their stdout and stderr; default .herd/logs).
    /// Example: --log-dir /tmp/herd-logs
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// What starts the workers: local (default); external (herd prints the `herd worker
    /// --connect ...` command each worker must run, anywhere, and waits for it to join; needs
    /// --token-file); or a shell command template: {cmd} is the worker command (with its HERD_*
    /// environment), {host} a host of --hosts, {worker} the worker id, {appliance} its appliance.
    /// Example: --launcher 'ssh {host} {cmd}' --hosts node1,node2
    #[arg(long, value_name = "TEMPLATE", value_parser = values::LAUNCHER.parser())]
    pub launcher: Option<String>,
    /// Hosts for {host} in the --launcher template, dealt to the workers in turn (default -n: one
    /// worker per host). Example: --hosts node1,node2,node3
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', value_parser = values::HOSTS.parser())]
    pub hosts: Vec<String>,
    /// A file holding the session token (its content, trimmed) that every worker must present;
    /// needed to listen beyond this machine. Example: --token-file ~/.herd-token
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A shell command whose output, with herd's version, must be the same on every worker's host
    /// (workers run it themselves); a worker that differs is refused.
    /// Example: --fingerprint 'git rev-parse HEAD'
    #[arg(long, value_name = "CMD", value_parser = values::FINGERPRINT.parser())]
    pub fingerprint: Option<String>,
    /// Inject faults into the workers, replayable from the seed: each rate is the chance per test
    /// started (kill, stop, term: signals; exit0, garble: the worker exits 0 or sends garbage;
    /// lie: per spawn, a wrong collection). Example: --chaos 'seed=7,kill=0.05,stop=0.02'
    #[arg(long, value_name = "PLAN", value_parser = values::CHAOS.parser())]
    pub chaos: Option<String>,
    /// Seconds a worker process may stay stopped (SIGSTOP, a debugger) before it is killed and
    /// its work re-queued, 0.001 to 604800 (default 2). Example: --hang-timeout 10
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::HANG_TIMEOUT.parser())]
    pub hang_timeout: Option<f64>,
    /// Seconds a worker that promised heartbeats (herd's own workers do, every second) may stay
    /// silent before it is taken for hung, killed and its work re-queued, 0.001 to 604800
    /// (default 5).
    /// Example: --heartbeat-timeout 30
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true,
          value_parser = values::HEARTBEAT_TIMEOUT.parser())]
    pub heartbeat_timeout: Option<f64>,
    /// Color the output: auto (on a terminal, unless NO_COLOR is set), always, never.
    /// Example: --color never
    #[arg(long, value_enum, value_name = "WHEN")]
    pub color: Option<crate::session::ColorChoice>,
    /// The config file (default: herd.toml here or in the nearest parent directory).
    /// Example: --config ci/herd.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The profile of the config file to use; every profile inherits `default`. Example: --profile ci
    #[arg(long, value_name = "NAME", env = "HERD_PROFILE", value_parser = values::PROFILE.parser())]
    pub profile: Option<String>,
    /// ZeroMQ endpoint to bind (default: a private ipc socket); TCP lets workers on other hosts
    /// join (port 0: any free port). A non-loopback address needs --token-file.
    /// Example: --listen tcp://0.0.0.0:5555 --token-file token
    #[arg(long, visible_alias = "listen", value_name = "URL", value_parser = values::ENDPOINT.parser())]
    pub endpoint: Option<String>,
    /// Exec runner: shell command that prints one test id per line. Example: --list 'ls tests/*.sh'
    #[arg(long, value_name = "CMD", value_parser = values::LIST.parser())]
    pub list: Option<String>,
    /// The pytest command (`pytest ARGS`, `python -m pytest ARGS`), or with --list the command
    /// that runs one test (`{}` is replaced by the test id, or the id is appended).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options of `herd worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Join the coordinator at this endpoint (instead of reading HERD_ENDPOINT and the other
    /// HERD_* variables). Example: --connect tcp://ci-1.example:5555
    #[arg(long, value_name = "ENDPOINT", requires_all = ["token_file", "worker"],
          value_parser = values::ENDPOINT.parser())]
    pub connect: Option<String>,
    /// With --connect: the file holding the session token. Example: --token-file ~/.herd-token
    #[arg(long, value_name = "FILE", requires = "connect")]
    pub token_file: Option<PathBuf>,
    /// With --connect: the worker slot to fill (herd prints it). Example: --worker w3
    #[arg(long, value_name = "ID", requires = "connect", value_parser = values::WORKER_ID.parser())]
    pub worker: Option<String>,
    /// With --connect: the spawn number (a worker restarted after its predecessor died needs a
    /// higher one, up to 1000000; herd prints it). Example: --incarnation 2
    #[arg(long, value_name = "N", default_value_t = 1, requires = "connect",
          allow_negative_numbers = true, value_parser = values::INCARNATION.parser::<u32>())]
    pub incarnation: u32,
    /// With --connect: the appliance this worker owns (HERD_APPLIANCE). Example: --appliance db1
    #[arg(long, value_name = "VALUE", requires = "connect", value_parser = values::APPLIANCE.parser())]
    pub appliance: Option<String>,
    /// With --connect: the fingerprint command the coordinator was given (run here).
    /// Example: --fingerprint 'git rev-parse HEAD'
    #[arg(long, value_name = "CMD", requires = "connect", value_parser = values::FINGERPRINT.parser())]
    pub fingerprint: Option<String>,
    /// Exec runner: shell command that prints one test id per line. Example: --list 'ls tests/*.sh'
    #[arg(long, value_name = "CMD", value_parser = values::LIST.parser())]
    pub list: Option<String>,
    /// Exec runner: report every test passed without running anything (benchmarks of herd).
    #[arg(long, hide = true, requires = "list")]
    pub noop: bool,
    /// With --list, the command that runs one test; otherwise the worker command to run with the
    /// HERD_* variables (a pytest command gets herd's plugin).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The options given on the command line, as a profile that overrides the config file's.
    pub fn as_profile(&self) -> Profile {
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Profile {
            workers: self.workers,
            appliances: some_vec(&self.appliances),
            providers: some_vec(&self.providers),
            cleanse: self.cleanse.clone(),
            appliance_check: self.appliance_check.clone(),
            max_respawns: self.max_respawns,
            respawn_window: self.respawn_window,
            retire_after: self.retire_after,
            crash_retries: self.crash_retries,
            maxfail: self.maxfail,
            exitfirst: self.exitfirst.then_some(true),
            timeout: self.timeout,
            grace: self.grace,
            worker_start_timeout: self.worker_start_timeout,
            junit_xml: self.junit_xml.clone(),
            durations: self.durations,
            events: self.events.clone(),
            log_dir: self.log_dir.clone(),
            endpoint: self.endpoint.clone(),
            list: self.list.clone(),
            command: some_vec(&self.command),
            color: self.color,
            launcher: self.launcher.clone(),
            hosts: some_vec(&self.hosts),
            token_file: self.token_file.clone(),
            fingerprint: self.fingerprint.clone(),
            chaos: self.chaos.clone(),
            hang_timeout: self.hang_timeout,
            heartbeat_timeout: self.heartbeat_timeout,
            dist: self.dist.clone(),
            history: self.history.clone(),
            collect_all: self.collect_all.then_some(true),
        }
    }

    /// The effective options: the config file's profile (if any), overridden by the flags.
    pub fn resolve(&self, cwd: &std::path::Path) -> Result<Profile, String> {
        let path = match &self.config {
            Some(path) => Some(path.clone()),
            None => find_config(cwd),
        };
        let base = match (&path, &self.profile) {
            (Some(path), profile) => {
                ConfigFile::read(path)?.profile(profile.as_deref().unwrap_or("default"))?
            }
            (None, Some(name)) => {
                return Err(format!(
                    "--profile {name} needs a config file (no herd.toml found)"
                ))
            }
            (None, None) => Profile::default(),
        };
        Ok(base.merge(self.as_profile()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("herd").chain(args.iter().copied()))
    }

    #[test]
    fn run_options_become_a_config() {
        let cli = parse(&[
            "-v",
            "run",
            "-n",
            "3",
            "--providers",
            "a, b",
            "-x",
            "--timeout",
            "2.5",
            "--list",
            "ls",
            "--",
            "sh",
            "{}",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(args.command, ["sh", "{}"]);
        let config = args.as_profile().session_config(1).unwrap();
        assert_eq!(config.workers, Some(3));
        assert_eq!(config.providers, ["a", "b"]);
        assert_eq!(config.maxfail, Some(1));
        assert_eq!(config.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn nonsense_is_refused_clearly() {
        assert!(parse(&["run", "-n", "many"]).is_err());
        assert!(parse(&["run", "--maxfail", "2", "-x"]).is_err());
        let bad = |args: &[&str]| {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            std::error::Error::source(&err)
                .and_then(|s| s.downcast_ref::<values::BadValue>())
                .expect("herd's message")
                .to_string()
        };
        assert_eq!(
            bad(&["run", "--timeout=-1"]),
            "--timeout -1 is out of range: give seconds from 0.001 to 604800"
        );
        assert_eq!(
            bad(&["run", "-n", "-1"]),
            "-n -1 is out of range: give a number of workers from 1 to 1024"
        );
        assert!(bad(&["run", "--appliance", ""]).contains("--appliance '' is empty"));
        assert!(bad(&["run", "--providers", "a,,b"]).contains("--providers has an empty entry"));
        assert!(bad(&["worker", "--incarnation", "0"]).contains("--incarnation 0 is out of range"));
    }
}
