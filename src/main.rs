//! The `shiplog` command: parse arguments, dispatch, and map every outcome to an exit code
//! in one place (0 ok, 1 bad config or input, 2 runtime failure).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shiplog::cli::{Cli, Command, RunArgs};
use shiplog::config::{Config, ConfigError};
use shiplog::pipeline::{self, Mode, RunError};

/// A failure, sorted by the exit code it earns.
enum Failure {
    /// Exit 1: the config or the input is at fault.
    Config(ConfigError),
    /// Exit 2: something failed while running.
    Runtime(String),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let outcome = match (cli.command, cli.run) {
        (Some(Command::Check(args)), _) => check(&args.config),
        (Some(Command::Run(args)), _) | (None, Some(args)) => run(&args),
        (None, None) => Err(Failure::Runtime(
            "no config given: use --config FILE (see --help)".into(),
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(error)) => {
            eprintln!("shiplog: {error}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("shiplog: {error}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &std::path::Path) -> Result<(), Failure> {
    let config = Config::load(path).map_err(Failure::Config)?;
    println!(
        "{}: ok ({} sink(s))",
        config.source.display(),
        config.sinks.len()
    );
    Ok(())
}

fn run(args: &RunArgs) -> Result<(), Failure> {
    let config = Config::load(&args.config).map_err(Failure::Config)?;
    let mode = if args.once { Mode::Once } else { Mode::Follow };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| Failure::Runtime(format!("cannot start the async runtime: {error}")))?;
    let summary = runtime
        .block_on(pipeline::run(&config, mode))
        .map_err(|error| match error {
            RunError::Config(error) => Failure::Config(error),
            other => Failure::Runtime(other.to_string()),
        })?;
    let p = summary.processed;
    let delivered: Vec<String> = summary
        .sinks
        .iter()
        .map(|s| format!("{} to {}", s.records, s.name))
        .collect();
    tracing::info!(
        files = p.files,
        lines = p.lines,
        bytes = p.bytes,
        decode_errors = p.decode_errors,
        delivered = %delivered.join(", "),
        "done"
    );
    Ok(())
}

/// shiplog's own log lines go to stderr, `info` and up unless `RUST_LOG` says otherwise,
/// keeping stdout for records.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
