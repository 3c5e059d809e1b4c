//! The `statmsg` binary: the command line over the stages' crates, each subcommand one call.
//! `anyhow` lives here only. The central commands are in `central.rs` (feature `central`); the
//! site servers' build answers them with what it is.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

#[cfg(feature = "central")]
mod central;
mod cli;

use cli::{Cli, Command, ServiceAction};
use statmsg::{offline, settings::Settings};
use statmsg_collect::service;
use statmsg_parse::{self as parse, stats::Stats, FileKind};
use statmsg_plumbing::config::{RawConfig, Secret, EXAMPLE};
use statmsg_plumbing::shutdown;

fn main() -> ExitCode {
    #[cfg(not(feature = "central"))]
    if let Some(central) = central_command_asked() {
        eprintln!("statmsg: error: `{central}` is not in this build. {}", cli::COLLECTOR_BUILD);
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    init_logging(&cli);
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
        Command::Collect { config } => collect(&config, None),
        Command::Service { action } => service_action(action),
        Command::Config { example: true, .. } => print_example(),
        Command::Config { config: Some(path), .. } => check_config(&path),
        Command::Config { .. } => anyhow::bail!("say --example, or --config FILE to check a file"),
        #[cfg(feature = "central")]
        central => central::run(central),
        #[cfg(not(feature = "central"))]
        central => unreachable!("main answers {central:?} before parsing"),
    }
}

/// In the collector's build, a central subcommand asked for (`statmsg consume ...`, `statmsg help
/// consume`): answered before the options are parsed, so that a site server's administrator is
/// told what this build is, not which of that command's options are missing.
#[cfg(not(feature = "central"))]
fn central_command_asked() -> Option<String> {
    let mut args = std::env::args_os().skip(1).map(|a| a.into_string().unwrap_or_default());
    let first = args.next()?;
    let asked = if first == "help" { args.next()? } else { first };
    cli::CENTRAL_COMMANDS.contains(&asked.as_str()).then_some(asked)
}

/// Logs go to stderr, but a service's go to daily files beside its configuration (it has no
/// console).
fn init_logging(cli: &Cli) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    #[cfg(windows)]
    if let Command::Service { action: ServiceAction::Run { config, .. } } = &cli.command {
        use tracing_appender::rolling::{RollingFileAppender, Rotation};
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix("statmsg-collect")
            .filename_suffix("log")
            .max_log_files(statmsg_collect::service::LOG_FILES_KEPT)
            .build(statmsg_collect::service::log_dir(config));
        match appender {
            Ok(appender) => {
                tracing_subscriber::fmt()
                    .with_writer(appender)
                    .log_internal_errors(false)
                    .with_ansi(false)
                    .with_env_filter(filter())
                    .init();
                return;
            }
            Err(e) => {
                // A service has no console: without its log file it would fail unseen. The
                // service manager records the exit.
                eprintln!(
                    "statmsg: cannot write the service log in {}: {e}",
                    statmsg_collect::service::log_dir(config).display()
                );
                std::process::exit(2);
            }
        }
    }
    let _ = cli;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Where stderr is gone (a closed pipe, a console closed), the complaint would go to
        // stderr too and panic the thread that logged: a consumer whose signal task panicked
        // that way never stopped.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter())
        .init();
}

/// `statmsg collect`, on the process's signals or (as a service) on the service manager's stop.
fn collect(config: &Path, shutdown: Option<shutdown::Shutdown>) -> anyhow::Result<()> {
    statmsg_collect::memory::configure();
    let (config, filled) = statmsg_collect::Config::load(config)?;
    for note in &filled {
        tracing::info!("from the registry: {note}");
    }
    collector_runtime()?.block_on(async {
        let shutdown = shutdown.unwrap_or_else(shutdown::on_signals);
        statmsg_collect::run(config, shutdown).await
    })?;
    Ok(())
}

fn service_action(action: ServiceAction) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install { config, name, account, password_file } => {
            let config = std::path::absolute(&config).with_context(|| format!("{}", config.display()))?;
            // As the service will load it (with the registry's paths and site).
            statmsg_collect::Config::load(&config)
                .with_context(|| "the service would not start with this configuration")?;
            let password = match password_file {
                Some(path) => Some(service::read_password(&path)?),
                None => std::env::var("STATMSG_SERVICE_PASSWORD")
                    .ok()
                    .filter(|_| account.is_some())
                    .map(Secret::new),
            };
            let unsupported =
                service::install(&service::Install::new(name.clone(), config.clone(), account, password)?)?;
            for setting in &unsupported {
                eprintln!("statmsg: warning: {setting}");
            }
            eprintln!(
                "statmsg: service {name:?} installed (automatic start, restart on failure) with {}; \
                 `statmsg service start --name {name}` starts it; it logs to {}",
                config.display(),
                service::log_dir(&config).display()
            );
        }
        ServiceAction::Uninstall { name } => {
            service::uninstall(&name)?;
            eprintln!("statmsg: service {name:?} removed");
        }
        ServiceAction::Start { name } => {
            service::start(&name)?;
            eprintln!("statmsg: service {name:?} running");
        }
        ServiceAction::Stop { name } => {
            service::stop(&name)?;
            eprintln!("statmsg: service {name:?} stopped");
        }
        ServiceAction::Run { name, config } => {
            // Relative paths of the configuration (state_dir) are taken from its folder, not
            // from the system folder a service starts in.
            if let Some(folder) = config.parent().filter(|f| !f.as_os_str().is_empty()) {
                std::env::set_current_dir(folder).with_context(|| format!("{}", folder.display()))?;
            }
            service::run(&name, move |shutdown| {
                collect(&config, Some(shutdown)).map_err(|e| format!("{e:#}"))
            })?;
        }
    }
    Ok(())
}

fn print_example() -> anyhow::Result<()> {
    std::io::stdout().write_all(EXAMPLE.as_bytes())?;
    Ok(())
}

/// `statmsg config --config FILE`: valid for every stage of this build, and the effective
/// settings with secrets hidden.
fn check_config(path: &Path) -> anyhow::Result<()> {
    let raw = RawConfig::load(Some(path))?;
    Settings::validate(raw.clone())?;
    let effective = toml::to_string_pretty(&raw.redacted()).context("cannot print the configuration")?;
    writeln!(
        std::io::stdout(),
        "# {}: valid; effective settings (secrets hidden):\n{effective}",
        path.display()
    )?;
    Ok(())
}

/// The collector's runtime: it mostly waits (on file changes, the spool, Kafka's acknowledgements),
/// so two workers serve it on a site server of any size, and a few blocking threads (the reader,
/// spool files) that end when idle; each thread more is a stack and allocator cache held for good.
fn collector_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(COLLECTOR_WORKERS)
        .max_blocking_threads(COLLECTOR_BLOCKING_THREADS)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Async workers of the collector.
const COLLECTOR_WORKERS: usize = 2;
/// Blocking threads of the collector: the reader holds one for good, spool I/O the others.
const COLLECTOR_BLOCKING_THREADS: usize = 4;

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
    let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(FileKind::DETECT_BYTES)]);
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

/// Parses without printing records, on every core (see `statmsg::offline`).
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
