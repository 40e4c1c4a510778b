//! The command line: `herd run` and the hidden `herd worker`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::options::RunOptions;
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
    /// Without --worker it takes a free slot and learns the test command from the session, so
    /// identical replicas (a Kubernetes Job, `srun -n N`, `sbatch --array`) need only:
    ///   herd worker --connect tcp://ci-1:5555 --token-file token
    /// With --connect, SIGTERM makes it leave cleanly: its unstarted tests go back, the running
    /// test finishes (a second SIGTERM stops it at once).
    ///
    /// exec runner:
    ///   herd worker --connect tcp://ci-1:5555 --token-file token --worker w3 \
    ///     --list 'ls tests/*.sh' -- sh {}
    /// pytest runner:
    ///   herd worker --connect tcp://ci-1:5555 --token-file token --worker w3 -- pytest tests/
    #[command(verbatim_doc_comment)]
    Worker(WorkerArgs),
}

/// Options of `herd run`: every [`RunOptions`] flag, and the test command after `--`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The options, as flags.
    #[command(flatten)]
    pub options: RunOptions,
    /// The pytest command (`pytest ARGS`, `python -m pytest ARGS`), or with --list the command
    /// that runs one test (`{}` is replaced by the test id, or the id is appended).
    ///
    /// pytest options that run no test (--collect-only/--co, --fixtures, --fixtures-per-test,
    /// --markers, --setup-plan, --cache-show, --version, -h/--help) run once as plain pytest,
    /// its output and exit code passed through. A usage error or a missing path ends at once
    /// with pytest's message (exit 4). --maxfail N, -x and --exitfirst count over every worker,
    /// like herd's own (with both, the smaller limit wins). pytest-xdist's flags (-n, --dist...)
    /// go before `--`, as herd's.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options of `herd worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Join the coordinator at this endpoint (instead of reading HERD_ENDPOINT and the other
    /// HERD_* variables). Example: --connect tcp://ci-1.example:5555
    #[arg(long, value_name = "ENDPOINT", requires = "token_file",
          value_parser = values::ENDPOINT.parser())]
    pub connect: Option<String>,
    /// With --connect: the file holding the session token. Example: --token-file ~/.herd-token
    #[arg(long, value_name = "FILE", requires = "connect")]
    pub token_file: Option<PathBuf>,
    /// With --connect: the worker slot to fill (herd prints it). Without it the worker asks the
    /// session for a free slot (--launcher external) and learns what to run there; if every slot
    /// is taken it says so and exits 0. Example: --worker w3
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
    #[arg(long, hide = true)]
    pub noop: bool,
    /// With --list, the command that runs one test; otherwise the worker command to run with the
    /// HERD_* variables (a pytest command gets herd's plugin).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The options given on the command line, as a profile that overrides the config file's.
    pub fn as_profile(&self) -> Profile {
        Profile {
            command: (!self.command.is_empty()).then(|| self.command.clone()),
            ..self.options.clone()
        }
    }

    /// The effective options: the config file's profile (if any), overridden by the flags.
    pub fn resolve(&self, cwd: &std::path::Path) -> Result<Profile, String> {
        let path = match &self.options.config {
            Some(path) => Some(path.clone()),
            None => find_config(cwd),
        };
        let base = match (&path, &self.options.profile) {
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
