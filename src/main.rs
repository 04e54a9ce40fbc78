//! The `shiplog` command: parse arguments, dispatch, and map every outcome to an exit code
//! in one place (0 ok, 1 bad config or input, 2 runtime failure).

use std::process::ExitCode;

use clap::Parser;
use std::io::{BufRead, Write};

use shiplog::cli::{Cli, Command, ParseArgs, RunArgs};
use shiplog::config::{Config, ConfigError, LogConfig, MetadataSource, SinkKind};
use shiplog::kube::PodIndex;
use shiplog::logging::Logging;
use shiplog::parse::ParserSet;
use shiplog::pipeline::{self, Mode, RunError};
use shiplog::record::write_json_str;
use shiplog::sink::Sink;
use shiplog::tail::FileSet;

/// A failure, sorted by the exit code it earns.
enum Failure {
    /// Exit 1: the config is at fault.
    Config(ConfigError),
    /// Exit 1: other input is at fault (a parser definition, an argument).
    Input(String),
    /// Exit 2: something failed while running.
    Runtime(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match (cli.command, cli.run) {
        (Some(Command::Check(args)), _) => {
            Logging::start(&LogConfig::default());
            check(&args.config)
        }
        (Some(Command::Parse(args)), _) => {
            Logging::start(&LogConfig::default());
            parse(&args)
        }
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
        Err(Failure::Input(error)) => {
            eprintln!("shiplog: {error}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("shiplog: {error}");
            ExitCode::from(2)
        }
    }
}

/// `shiplog check`: validates the config and its parsers, then says in one screen what
/// a run would do with them.
fn check(path: &std::path::Path) -> Result<(), Failure> {
    let config = Config::load(path).map_err(Failure::Config)?;
    let parsers = pipeline::parsers(&config).map_err(|e| Failure::Input(e.to_string()))?;
    let files = FileSet::new(&config.tail.include, &config.tail.exclude)
        .map_err(|e| Failure::Config(ConfigError::new(&config.source, "tail", e.to_string())))?;
    let (matched, skipped) = files.scan();
    let metadata = match config.kubernetes.metadata {
        MetadataSource::Api => format!(
            "from the Kubernetes API, pods of node {:?}",
            config.kubernetes.node_name
        ),
        MetadataSource::Off => "off: what file names carry".to_owned(),
        MetadataSource::File => {
            let pods = config.kubernetes.pods_file.as_deref().map(PodIndex::load);
            match pods {
                Some(Ok(index)) => format!("from a file: {} pods", index.len()),
                Some(Err(error)) => {
                    return Err(Failure::Config(ConfigError::new(
                        &config.source,
                        "kubernetes.pods_file",
                        error.to_string(),
                    )));
                }
                None => "from a file (none given)".to_owned(),
            }
        }
    };
    for sink in &config.sinks {
        Sink::check(sink).map_err(|e| {
            Failure::Config(ConfigError::new(
                &config.source,
                format!("sinks.{}", e.name),
                e.reason,
            ))
        })?;
    }
    let sinks: Vec<String> = config
        .sinks
        .iter()
        .map(|sink| match &sink.kind {
            SinkKind::Stdout => format!("{} (stdout)", sink.name),
            SinkKind::File { path } => format!("{} (file {})", sink.name, path.display()),
            SinkKind::Null => format!("{} (null)", sink.name),
            SinkKind::Kafka(kafka) => {
                format!(
                    "{} (kafka {}, topic {})",
                    sink.name, kafka.brokers, kafka.topic
                )
            }
            SinkKind::Cloudwatch(cloudwatch) => {
                let region = cloudwatch
                    .region
                    .as_deref()
                    .unwrap_or("region from the environment");
                let endpoint = cloudwatch
                    .endpoint
                    .as_ref()
                    .map(|endpoint| format!(" at {endpoint}"))
                    .unwrap_or_default();
                format!(
                    "{} (cloudwatch {region}{endpoint}, group {}, stream {})",
                    sink.name, cloudwatch.log_group, cloudwatch.log_stream
                )
            }
        })
        .collect();
    let names: Vec<&str> = parsers.names().collect();
    println!("{}: ok", config.source.display());
    println!(
        "  files:    {} matched now by {}",
        matched.len(),
        config.tail.include.join(", ")
    );
    if !skipped.is_empty() {
        println!(
            "            {} matched but unreadable (dangling links, folders)",
            skipped.len()
        );
    }
    println!("  state:    {}", config.state.path.display());
    println!("  metadata: {metadata}");
    println!("  parsers:  {} ({})", names.len(), names.join(", "));
    println!("  sinks:    {}", sinks.join(", "));
    match config.server.listen {
        Some(address) => println!("  server:   http://{address}/metrics, /healthz, /readyz"),
        None => println!("  server:   off"),
    }
    let events = &config.events;
    if events.enabled {
        let namespaces = match events.namespaces.as_slice() {
            [] => "all namespaces".to_owned(),
            names => names.join(", "),
        };
        println!(
            "  events:   {namespaces} as topic {}, while {} holds Lease {}/{}",
            events.topic, events.identity, events.lease_namespace, events.lease_name
        );
    } else {
        println!("  events:   off");
    }
    Ok(())
}

/// `shiplog parse`: each stdin line, parsed, as one JSON object on stdout: `log`, and
/// `data` (and `time` when the parser reads one) when it matched, `"matched": false` when not.
fn parse(args: &ParseArgs) -> Result<(), Failure> {
    let mut parsers = ParserSet::builtin();
    parsers
        .load_dirs(&args.parsers_dir)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let parser = parsers.get(&args.parser).ok_or_else(|| {
        let known: Vec<&str> = parsers.names().collect();
        Failure::Input(format!(
            "no parser named {:?} (known: {})",
            args.parser,
            known.join(", ")
        ))
    })?;
    let year = this_year();
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure::Input(format!("reading stdin: {e}")))?;
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"log\":");
        write_json_str(&mut out, &line);
        match parser.parse(&line, year) {
            Some(parsed) => {
                out.extend_from_slice(b",\"data\":");
                out.extend_from_slice(parsed.data.as_bytes());
                if let Some(time) = parsed.time {
                    out.extend_from_slice(b",\"time\":");
                    write_json_str(&mut out, &time);
                }
            }
            None => out.extend_from_slice(b",\"matched\":false"),
        }
        out.extend_from_slice(b"}\n");
        stdout
            .write_all(&out)
            .map_err(|e| Failure::Runtime(format!("writing stdout: {e}")))?;
    }
    Ok(())
}

/// This year, for parsers whose time formats have none.
fn this_year() -> i16 {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(..4)
        .and_then(|year| year.parse().ok())
        .unwrap_or(1970)
}

fn run(args: &RunArgs) -> Result<(), Failure> {
    let mut config = Config::load(&args.config).map_err(Failure::Config)?;
    let logging = Logging::start(&config.log);
    let mode = if args.once { Mode::Once } else { Mode::Follow };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| Failure::Runtime(format!("cannot start the async runtime: {error}")))?;
    loop {
        let summary =
            runtime
                .block_on(pipeline::run(&config, mode))
                .map_err(|error| match error {
                    RunError::Config(error) => Failure::Config(error),
                    RunError::Parsers(error) => Failure::Input(error.to_string()),
                    other => Failure::Runtime(other.to_string()),
                })?;
        report(&summary);
        match summary.reload {
            // The run drained and committed; the next one resumes from those offsets.
            Some(new) => {
                logging.reload(&config.log, &new.log);
                config = *new;
            }
            None => return Ok(()),
        }
    }
}

/// One log line saying what a run did.
fn report(summary: &pipeline::Summary) {
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
        excluded = p.excluded,
        parsed = p.parsed,
        unmatched = p.unmatched,
        illegal_topics = p.illegal_topics,
        pods_unknown = p.pods_unknown,
        pods_found_late = p.pods_found_late,
        delivered = %delivered.join(", "),
        "done"
    );
}
