//! The command line of CONTRACT.md, as clap definitions and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// shiplog: a Kubernetes node log collector.
#[derive(Debug, Parser)]
#[command(
    name = "shiplog",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `run`'s arguments, accepted without the word `run`.
    #[command(flatten)]
    pub run: Option<RunArgs>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector.
    Run(RunArgs),
    /// Validate a config file and its parsers; exit 0 when usable, 1 with the reason when not.
    Check(CheckArgs),
    /// Read raw lines on stdin and print what a parser makes of each, as JSON.
    Parse(ParseArgs),
}

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Read what the matched files hold now, deliver it to every sink, then exit.
    #[arg(long)]
    pub once: bool,
}

/// Arguments of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

/// Arguments of `parse`.
#[derive(Debug, Clone, Args)]
pub struct ParseArgs {
    /// The parser: a built-in one, or one defined in `--parsers-dir`.
    #[arg(long, value_name = "NAME")]
    pub parser: String,
    /// A folder of parser definitions (`*.toml`) to load besides the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub parsers_dir: Vec<PathBuf>,
}
