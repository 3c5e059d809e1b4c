//! The `statmsg` binary: the command line over the library's stages. `anyhow` lives here only.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use statmsg_ingest::config::{RawConfig, Settings, EXAMPLE};
use statmsg_ingest::parse::{self, stats::Stats, FileKind};
use statmsg_ingest::{collect, consume, offline, shutdown};

/// statmsg: ConfigMgr software-update synchronization, from site-server logs to Kafka and InfluxDB.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse log files offline and print their records.
    Parse {
        /// One JSON object per record (the documented contract) instead of text.
        #[arg(long, conflicts_with = "stats")]
        json: bool,
        /// Print no records: counts per format, record kind and event type, and the speed.
        #[arg(long)]
        stats: bool,
        /// Log files (WsyncMgr.log, WsyncMgr.lo_, ...).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Tail the configured log files and publish their records to Kafka.
    Collect {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
    /// Read records from Kafka and write status messages to InfluxDB.
    Consume {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
    /// Print the example configuration, or check a configuration file.
    Config {
        /// Print every key, commented, with its default.
        #[arg(long, conflicts_with = "config")]
        example: bool,
        /// Validate this file (with STATMSG__* overrides) and print the effective settings.
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("statmsg: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Parse { stats: true, files, .. } => parse_stats(&files),
        Command::Parse { json, files, .. } => parse_files(&files, json),
        Command::Collect { config } => {
            let settings = Settings::load(&config)?;
            runtime()?.block_on(async {
                let shutdown = shutdown::on_signals();
                collect::run(collect::Config::from(&settings), shutdown).await
            })?;
            Ok(())
        }
        Command::Consume { config } => {
            let settings = Settings::load(&config)?;
            runtime()?.block_on(async {
                let shutdown = shutdown::on_signals();
                consume::run(consume::Config::from(&settings), shutdown).await
            })?;
            Ok(())
        }
        Command::Config { example: true, .. } => {
            std::io::stdout().write_all(EXAMPLE.as_bytes())?;
            Ok(())
        }
        Command::Config { config: Some(path), .. } => {
            let raw = RawConfig::load(Some(&path))?;
            Settings::validate(raw.clone())?;
            let effective =
                toml::to_string_pretty(&raw.redacted()).context("cannot print the configuration")?;
            writeln!(
                std::io::stdout(),
                "# {}: valid; effective settings (secrets hidden):\n{effective}",
                path.display()
            )?;
            Ok(())
        }
        Command::Config { .. } => anyhow::bail!("say --example, or --config FILE to check a file"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn parse_files(files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    for path in files {
        parse_file(path, json, &mut out).with_context(|| format!("{}", path.display()))?;
    }
    out.flush()?;
    Ok(())
}

fn parse_file(path: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(8192)]);
    let mut result = Ok(());
    parse::for_each_record(kind, &bytes[bom..], bom as u64, |_, record| {
        if result.is_err() {
            return;
        }
        result = if json { write_json(out, record) } else { write_text(out, record) };
    });
    result
}

fn write_json(out: &mut impl Write, record: &statmsg_schema::Record<'_>) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn write_text(out: &mut impl Write, record: &statmsg_schema::Record<'_>) -> anyhow::Result<()> {
    let time = record.time.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()).unwrap_or_default();
    let event = record.event.as_ref().map_or("", |e| e.type_name());
    writeln!(out, "{time:24} {:24} {event:24} {}", record.component.as_deref().unwrap_or("-"), record.text)?;
    Ok(())
}

/// Parses without printing records, on every core (see `statmsg_ingest::offline`).
fn parse_stats(files: &[PathBuf]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut total = Stats::default();
    for path in files {
        let (_, parts) = offline::parse_file(path, threads, Stats::default, |s, _, r| s.add(r))
            .with_context(|| format!("{}", path.display()))?;
        parts.iter().for_each(|s| total.merge(s));
        total.bytes += std::fs::metadata(path)?.len();
    }
    std::io::stdout().write_all(total.report(started.elapsed().as_secs_f64()).as_bytes())?;
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
