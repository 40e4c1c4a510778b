//! The `herd` command.

use std::process::ExitCode;

use clap::Parser;
use herd::cli::{Cli, Command};
use herd::core::outcome::exit_code;
use herd::Session;

fn main() -> ExitCode {
    if asks_for_version() {
        print!("{}", herd::preflight::version_text());
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(clap_error(&e)),
    };
    init_logging(cli.verbose);
    let code = match cli.command {
        Command::Worker(args) => herd::exec::worker_main(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "herd", &mut std::io::stdout());
            0
        }
        Command::Run(args) => {
            let verbosity = if cli.quiet {
                -1
            } else {
                i8::try_from(cli.verbose).unwrap_or(i8::MAX)
            };
            run(&args, verbosity)
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(args: &herd::cli::RunArgs, verbosity: i8) -> i32 {
    let usage = |msg: String| {
        eprintln!("herd: error: {msg}");
        exit_code::USAGE_ERROR
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let options = match args.resolve(&cwd) {
        Ok(options) => options,
        Err(msg) => return usage(msg),
    };
    let config = match options.session_config(verbosity) {
        Ok(config) => config,
        Err(msg) => return usage(msg),
    };
    let command = options.command.clone().unwrap_or_default();
    if command.is_empty() {
        return usage("give the test command after `--`: `-- pytest ARGS` (pytest runner), or `--list CMD -- CMD {}` (exec runner)".into());
    }
    let pytest = options.list.is_none() && herd::PytestRunner::is_pytest_command(&command);
    if pytest && herd::pytest::ends_early(&command).is_some() {
        // `--collect-only`, `--fixtures`, `--help`...: pytest runs no test; plain pytest, once.
        return herd::pytest::run_plain(&command).unwrap_or_else(usage);
    }
    // Workers started here are checked before any starts (see herd::preflight).
    let local = matches!(config.launcher.as_deref(), None | Some("local"));
    let runner = match herd::preflight::runner_for(options.list.as_deref(), command.clone(), local)
    {
        Ok(runner) => runner,
        Err(e) => return usage(e.to_string()),
    };
    match Session::new(config, runner).run() {
        Ok(report) if pytest && local && report.exit_code == exit_code::NO_TESTS => {
            // A missing path: pytest says so only after its (empty) collection.
            match herd::pytest::why_nothing_collected(&command) {
                Some(message) => {
                    eprintln!("{message}");
                    exit_code::USAGE_ERROR
                }
                None => report.exit_code,
            }
        }
        Ok(report) => report.exit_code,
        Err(herd::SessionError::Refused(message)) => {
            eprintln!("{message}");
            exit_code::USAGE_ERROR
        }
        Err(e) => {
            eprintln!("herd: error: {e}");
            e.exit_code()
        }
    }
}

/// Prints a command-line error and returns the exit code: 4 (usage error), or 0 for `--help`
/// and `--version`. A value out of its range gets herd's own message, which says what to give.
fn clap_error(e: &clap::Error) -> u8 {
    let bad = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<herd::values::BadValue>())
        .cloned()
        .or_else(|| {
            (e.kind() == clap::error::ErrorKind::UnknownArgument)
                .then(|| herd::values::hyphen_value_error(&std::env::args_os().collect::<Vec<_>>()))
                .flatten()
        });
    match bad {
        Some(bad) => eprintln!("herd: error: {bad}"),
        None => {
            let _ = e.print();
        }
    }
    if e.use_stderr() {
        exit_code::USAGE_ERROR as u8
    } else {
        0
    }
}

/// Whether the command line asks for `--version` (or `-V`) before any `--`: herd answers with
/// the protocol and plugin versions too, which clap's own flag cannot say.
fn asks_for_version() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--version" || a == "-V")
}

/// Logs go to stderr through `tracing`; `RUST_LOG` wins over `-v`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 | 1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
