//! The `shiplog` command: parse arguments, dispatch, and map every outcome to an exit code
//! in one place (0 ok, 1 bad config or input, 2 runtime failure).

use std::borrow::Cow;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use std::io::{BufRead, Write};

use shiplog::cli::{Cli, Command, ParseArgs, RunArgs};
use shiplog::config::{Config, ConfigError, LogConfig, SinkConfig, SinkKind};
use shiplog::decode::{Message, Stream};
use shiplog::logging::Logging;
use shiplog::multiline::Joiner;
use shiplog::parse::{Parser, ParserSet};
use shiplog::pipeline::{self, MetadataPlan, Mode, RunError};
use shiplog::record::write_json_str;

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
    shiplog::allocator::bound_arenas();
    let cli = parse_args();
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

/// The command line, with `parse --help` listing the built-in parsers.
fn parse_args() -> Cli {
    let parsers = ParserSet::builtin();
    let builtin: Vec<&str> = parsers.names().collect();
    let command = Cli::command().mut_subcommand("parse", |parse| {
        let notes = parse.get_after_help().map(ToString::to_string);
        parse.after_help(format!(
            "Built-in parsers: {}.\n\n{}",
            builtin.join(", "),
            notes.unwrap_or_default()
        ))
    });
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|error| error.exit())
}

/// `shiplog check`: puts the config through the checks a start and a reload make, then
/// says in one screen what a run would do with it.
fn check(path: &std::path::Path) -> Result<(), Failure> {
    let config = Config::load(path).map_err(Failure::Config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::Runtime(format!("cannot start the async runtime: {error}")))?;
    let validated = runtime
        .block_on(pipeline::validate(&config))
        .map_err(failure)?;
    let (readable, unreadable) = pipeline::survey(&validated.files);
    let metadata = match &validated.metadata {
        MetadataPlan::Api(_) => format!(
            "from the Kubernetes API, pods of node {:?}",
            config.kubernetes.node_name
        ),
        MetadataPlan::File(index) => format!("from a file: {} pods", index.len()),
        MetadataPlan::Off => "off: what file names carry".to_owned(),
    };
    let sinks: Vec<String> = config.sinks.iter().map(describe_sink).collect();
    let names = &validated.parser_names;
    println!("{}: ok", config.source.display());
    for warning in config.warnings() {
        println!("  warning:  {warning}");
    }
    println!(
        "  files:    {} matched now by {}",
        readable.len(),
        config.tail.include.join(", ")
    );
    if !unreadable.is_empty() {
        println!(
            "            {} matched but unreadable (not counted above):",
            unreadable.len()
        );
        for (path, reason) in &unreadable {
            println!("              {}: {reason}", path.display());
        }
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

/// A sink in one phrase, for `check`.
fn describe_sink(sink: &SinkConfig) -> String {
    match &sink.kind {
        SinkKind::Stdout => format!("{} (stdout)", sink.name),
        SinkKind::File { path } => format!("{} (file {})", sink.name, path.display()),
        SinkKind::Null => format!("{} (null)", sink.name),
        SinkKind::Kafka(kafka) => format!(
            "{} (kafka {}, topic {})",
            sink.name, kafka.brokers, kafka.topic
        ),
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
    }
}

/// `shiplog parse`: each stdin line (or, with `--multiline`, each event), parsed, as one
/// JSON object on stdout: `log`, and `data` (and `time` when the parser reads one) when it
/// matched, `"matched": false` when not.
fn parse(args: &ParseArgs) -> Result<(), Failure> {
    let mut parsers = ParserSet::builtin();
    parsers
        .load_dirs(&args.parsers_dir)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let parser = match &args.parser {
        Some(name) => Some(parsers.get(name).ok_or_else(|| {
            let known: Vec<&str> = parsers.names().collect();
            Failure::Input(format!(
                "no parser named {name:?} (known: {})",
                known.join(", ")
            ))
        })?),
        None => None,
    };
    let mut joiner = match &args.multiline {
        Some(name) => {
            let rule = parsers.multiline(name).ok_or_else(|| {
                let known: Vec<&str> = parsers.multiline_names().collect();
                Failure::Input(format!(
                    "no multiline rule named {name:?} (known: {})",
                    known.join(", ")
                ))
            })?;
            Some(Joiner::new(rule, PARSE_MAX_LINES, PARSE_MAX_BYTES))
        }
        None => None,
    };
    let year = this_year();
    let mut stdout = std::io::stdout().lock();
    let mut failed = None;
    let mut print = |message: Message<'_>| {
        if failed.is_some() {
            return;
        }
        let text = String::from_utf8_lossy(&message.bytes);
        let invalid_utf8 = matches!(text, Cow::Owned(_));
        let out = render_parsed(&text, parser.as_deref(), year, joiner_fields(&message));
        let out = if invalid_utf8 {
            flag_invalid_utf8(out)
        } else {
            out
        };
        if let Err(e) = stdout.write_all(&out) {
            failed = Some(Failure::Runtime(format!("writing stdout: {e}")));
        }
    };
    // Bytes, not text: a line that is not UTF-8 is replaced and flagged as the pipeline
    // does, and every line after it is still read.
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    for number in 0_u64.. {
        line.clear();
        let read = stdin
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::Input(format!("reading stdin: {e}")))?;
        if read == 0 {
            break;
        }
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let message = Message {
            time: Cow::Borrowed(""),
            stream: Stream::Stdout,
            bytes: Cow::Borrowed(bytes),
            truncated: false,
            partial: false,
        };
        match joiner.as_mut() {
            Some(joiner) => joiner.push(message, number, &mut print),
            None => print(message),
        }
    }
    if let Some(joiner) = joiner.as_mut() {
        joiner.flush(&mut print);
    }
    failed.map_or(Ok(()), Err)
}

/// `parse --multiline`'s limits: the collector's defaults.
const PARSE_MAX_LINES: usize = 500;
const PARSE_MAX_BYTES: usize = 256 * 1024;

/// What `parse --multiline` adds to an event's object: its line count and whether it was cut.
struct EventFields {
    lines: usize,
    truncated: bool,
}

fn joiner_fields(message: &Message<'_>) -> EventFields {
    EventFields {
        lines: newline_count(&message.bytes) + 1,
        truncated: message.truncated,
    }
}

fn newline_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// One line or event as `parse` prints it.
fn render_parsed(text: &str, parser: Option<&Parser>, year: i16, event: EventFields) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"log\":");
    write_json_str(&mut out, text);
    if event.lines > 1 || event.truncated {
        out.extend_from_slice(format!(",\"lines\":{}", event.lines).as_bytes());
    }
    if event.truncated {
        out.extend_from_slice(b",\"truncated\":true");
    }
    match parser.map(|parser| parser.parse(text, year)) {
        Some(Some(parsed)) => {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(parsed.data.as_bytes());
            if let Some(time) = parsed.time {
                out.extend_from_slice(b",\"time\":");
                write_json_str(&mut out, &time);
            }
        }
        Some(None) => out.extend_from_slice(b",\"matched\":false"),
        None => {}
    }
    out.extend_from_slice(b"}\n");
    out
}

/// `parse`'s output line `out` (a JSON object and a newline) flagged `"invalid_utf8": true`:
/// the line's bytes were not UTF-8 and were replaced by U+FFFD, as the pipeline does.
fn flag_invalid_utf8(mut out: Vec<u8>) -> Vec<u8> {
    out.truncate(out.len().saturating_sub(2));
    out.extend_from_slice(b",\"invalid_utf8\":true}\n");
    out
}

/// This year, for parsers whose time formats have none.
fn this_year() -> i16 {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(..4)
        .and_then(|year| year.parse().ok())
        .unwrap_or(1970)
}

/// `shiplog run`: the collector, until `--once` is done or a signal stops it. Errors before
/// the first run starts are the config's; a reload never ends the process.
fn run(args: &RunArgs) -> Result<(), Failure> {
    let config = Config::load(&args.config).map_err(Failure::Config)?;
    let logging = Logging::start(&config.log);
    let mode = if args.once { Mode::Once } else { Mode::Follow };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| Failure::Runtime(format!("cannot start the async runtime: {error}")))?;
    let on_reload = |old: &Config, new: &Config| logging.reload(&old.log, &new.log);
    runtime
        .block_on(pipeline::supervise(config, mode, on_reload))
        .map(drop)
        .map_err(failure)
}

/// A pipeline error, sorted by its exit code.
fn failure(error: RunError) -> Failure {
    match error {
        RunError::Config(error) => Failure::Config(error),
        RunError::Parsers(error) => Failure::Input(error.to_string()),
        other => Failure::Runtime(other.to_string()),
    }
}
