//! The command line of CONTRACT.md, as clap definitions and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What every command's help ends with: how a run ends, what it listens to, what it reads
/// from the environment.
const RUN_NOTES: &str = "\
Exit codes:
  0  ok (a --once run delivered everything; a followed run stopped by SIGTERM/SIGINT)
  1  bad config or input: the message names the file, the key and the reason
  2  runtime failure

Signals:
  SIGTERM, SIGINT  stop reading, drain in-flight records (pipeline.shutdown_timeout),
                   commit offsets, exit 0
  SIGHUP           reload the config file (also on an edit of it); a config that fails
                   `shiplog check` is refused and the running one stays

Environment:
  ${NAME}, ${NAME:-default}   any variable, in the config's string values
  NODE_NAME                   kubernetes.node_name when the config leaves it empty
  KUBECONFIG                  the API client's config outside a cluster
  POD_NAMESPACE, POD_NAME     shiplog's own pod: never ship its own log; events' Lease
  HOSTNAME                    events' holder identity when POD_NAME is unset
  RUST_LOG                    shiplog's own log level (wins over [log] level)
  SHIPLOG_LOG_FORMAT          json | text (wins over [log] format)
  AWS_REGION, AWS_*           the CloudWatch sink's region and credentials chain

Docs: docs/ in the repository (configuration.md, operations.md).";

/// shiplog: a Kubernetes node log collector.
#[derive(Debug, Parser)]
#[command(
    name = "shiplog",
    version,
    about,
    after_help = RUN_NOTES,
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
    #[command(after_help = RUN_NOTES)]
    Run(RunArgs),
    /// Validate a config file and its parsers; exit 0 when usable, 1 with the reason when not.
    ///
    /// The same checks run at start-up and before a reload takes over.
    #[command(after_help = RUN_NOTES)]
    Check(CheckArgs),
    /// Read raw lines on stdin and print what a parser makes of each, as JSON.
    ///
    /// Each line becomes one JSON object on stdout: `log`, and `data` (and `time` when the
    /// parser reads one) when it matched, `"matched": false` when not. With `--multiline`,
    /// each event (its lines joined with "\n") does, with `lines` and, when cut,
    /// `"truncated": true`.
    #[command(after_help = RUN_NOTES)]
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
    #[arg(long, value_name = "NAME", required_unless_present = "multiline")]
    pub parser: Option<String>,
    /// A multiline rule (built in: java, python, go, ruby; or one of `--parsers-dir`): the
    /// lines of one event are joined first, and each event printed with its `lines` count.
    #[arg(long, value_name = "NAME")]
    pub multiline: Option<String>,
    /// A folder of parser definitions (`*.toml`) to load besides the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub parsers_dir: Vec<PathBuf>,
}
