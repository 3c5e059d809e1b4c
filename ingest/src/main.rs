//! The `statmsg` binary: the command line over the library's stages. `anyhow` lives here only.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use statmsg_ingest::config::{RawConfig, Settings, EXAMPLE};
use statmsg_ingest::parse::{self, stats::Stats, FileKind};
use statmsg_ingest::{collect, consume, shutdown};

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
        result = if json { write_json(out, &record) } else { write_text(out, &record) };
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

/// Parses without printing records. Reads each file in large blocks into a reused buffer (no
/// page-faulting a file-sized allocation) and parses each block on every core, split at record
/// boundaries so the result is exactly that of one pass.
fn parse_stats(files: &[PathBuf]) -> anyhow::Result<()> {
    const BLOCK: usize = 32 << 20;
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut total = Stats::default();
    let mut buffer = vec![0u8; BLOCK];
    for path in files {
        let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut filled = read_full(&mut file, &mut buffer)?;
        let (kind, bom) = FileKind::detect(&buffer[..filled.min(8192)]);
        if kind.encoding == parse::Encoding::Utf16Le {
            // Transcoded whole: UTF-16 logs are rare and small.
            let mut bytes = buffer[..filled].to_vec();
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            total.bytes += bytes.len() as u64;
            parse::for_each_record(kind, &bytes[bom..], bom as u64, |_, r| total.add(&r));
            continue;
        }
        let mut start = bom;
        loop {
            let at_end = filled < buffer.len();
            // Parse up to the last record boundary of the block; carry the rest over.
            let end = if at_end {
                filled
            } else {
                parse::last_record_boundary(kind.format, &buffer[start..filled]) + start
            };
            let end = if end == start && !at_end { filled } else { end };
            total.merge(&parse_parallel(kind, &buffer[start..end], threads));
            total.bytes += (end - start) as u64;
            if at_end {
                break;
            }
            buffer.copy_within(end..filled, 0);
            let carried = filled - end;
            if carried == buffer.len() {
                buffer.resize(buffer.len() * 2, 0); // one record larger than a block
            }
            filled = carried + read_full(&mut file, &mut buffer[carried..])?;
            start = 0;
        }
        total.bytes += bom as u64;
    }
    std::io::stdout().write_all(total.report(started.elapsed().as_secs_f64()).as_bytes())?;
    Ok(())
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match std::io::Read::read(file, &mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn parse_parallel(kind: FileKind, bytes: &[u8], threads: usize) -> Stats {
    let mut parts = Vec::with_capacity(threads);
    let mut start = 0;
    for k in 1..threads {
        let cut = parse::record_boundary(kind.format, bytes, bytes.len() * k / threads).max(start);
        parts.push(&bytes[start..cut]);
        start = cut;
    }
    parts.push(&bytes[start..]);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut stats = Stats::default();
                    parse::for_each_record(kind, part, 0, |_, record| stats.add(&record));
                    stats
                })
            })
            .collect();
        let mut total = Stats::default();
        for h in handles {
            total.merge(&h.join().unwrap_or_default());
        }
        total
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
