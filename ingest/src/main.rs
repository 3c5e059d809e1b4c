//! The `statmsg` binary: the command line over the library's stages. `anyhow` lives here only.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Parser as _;
mod cli;

use cli::{Cli, Command, DlqAction, InfluxAction, KafkaAction, ServiceAction};
use statmsg_ingest::config::{RawConfig, Settings, EXAMPLE};
use statmsg_ingest::simulate::{SimConfig, Simulation};
use statmsg_ingest::{collect, consume, offline, service, shutdown};
use statmsg_parse::{self as parse, stats::Stats, FileKind};

fn main() -> ExitCode {
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
        Command::Analyze { now, json, hierarchy, config, paths } => {
            let raw = RawConfig::load(config.as_deref())?;
            let tracker = statmsg_ingest::config::track_config(&raw.track)?;
            analyze(now, json, hierarchy, tracker, paths)
        }
        Command::Report { from, to, config, influx, json, hierarchy, output, paths } => {
            let raw = RawConfig::load(config.as_deref())?;
            let window_minutes = statmsg_ingest::config::report_window_minutes(&raw.report)?;
            let options = statmsg_report::Options { from, to, window_minutes };
            let (runs, cleanups, description) = if influx {
                let settings = Settings::load(config.as_deref().context("--influx needs --config")?)?;
                let runs =
                    runtime()?.block_on(statmsg_ingest::report::from_influx(&settings.influxdb, from, to))?;
                (runs, Vec::new(), format!("InfluxDB {}", settings.influxdb.url))
            } else {
                let tracker = statmsg_ingest::config::track_config(&raw.track)?;
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
                let described = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                let config = statmsg_ingest::analyze::Config { paths, now: to, hierarchy, tracker, threads };
                let (runs, cleanups) = statmsg_ingest::report::from_logs(&config)?;
                (runs, cleanups, format!("the logs in {described}"))
            };
            let figures = statmsg_report::figures(&runs, &cleanups, &options);
            let text = if json {
                serde_json::to_string_pretty(&figures)? + "\n"
            } else {
                let source = statmsg_report::html::Source {
                    description: &description,
                    generated: Utc::now(),
                    window_minutes,
                };
                statmsg_report::html::page(&figures, &source)
            };
            if output.as_os_str() == "-" {
                std::io::stdout().write_all(text.as_bytes())?;
            } else {
                std::fs::write(&output, text)
                    .with_context(|| format!("cannot write {}", output.display()))?;
                eprintln!(
                    "statmsg report: {} sites, {} runs, {} to {}: {} ({} kB)",
                    figures.fleet.sites,
                    figures.fleet.runs,
                    figures.from.format("%Y-%m-%d"),
                    figures.to.format("%Y-%m-%d"),
                    output.display(),
                    std::fs::metadata(&output).map_or(0, |m| m.len()) / 1000
                );
            }
            Ok(())
        }
        Command::Simulate {
            out,
            hierarchy,
            sites,
            days,
            start,
            interval_hours,
            roll_bytes,
            no_history,
            no_faults,
            updates,
            seed,
            growth,
        } => {
            let config = SimConfig {
                hierarchy,
                sites,
                days,
                seed,
                start,
                interval: chrono::Duration::hours(i64::from(interval_hours.max(1))),
                roll_bytes: roll_bytes.max(1024),
                keep_history: !no_history,
                faults: !no_faults,
                updates,
                growth: growth.into_iter().collect(),
                ..SimConfig::default()
            };
            let sim = Simulation::generate(config);
            let (files, bytes) = sim.write(&out).with_context(|| format!("{}", out.display()))?;
            eprintln!(
                "statmsg simulate: {} sites, {} runs, {} faults; {} files, {:.1} MB under {}",
                sim.sites.len(),
                sim.runs.len(),
                sim.faults.len(),
                files.len(),
                bytes as f64 / 1e6,
                out.join(&sim.config.hierarchy).display()
            );
            Ok(())
        }
        Command::Collect { config } => collect(&config, None),
        Command::Service { action } => service_action(action),
        Command::Consume { config } => {
            let settings = Settings::load(&config)?;
            runtime()?.block_on(async {
                let shutdown = shutdown::on_signals();
                consume::run(consume::Config::from(&settings), shutdown).await
            })?;
            Ok(())
        }
        Command::Dlq { action } => dlq(action),
        Command::Kafka { action: KafkaAction::Setup { config } } => kafka_setup(&config),
        Command::Influx { action: InfluxAction::Setup { config } } => {
            let settings = Settings::load(&config)?;
            let writer = consume::influx::InfluxWriter::new(&settings.influxdb)?;
            let done = runtime()?.block_on(consume::retention::setup(&writer))?;
            for line in done {
                println!("{line}");
            }
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
            .max_log_files(service::LOG_FILES_KEPT)
            .build(service::log_dir(config));
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
                    service::log_dir(config).display()
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
    statmsg_ingest::memory::configure();
    let (settings, filled) = Settings::load_collector(config)?;
    for note in &filled {
        tracing::info!("from the registry: {note}");
    }
    collector_runtime()?.block_on(async {
        let shutdown = shutdown.unwrap_or_else(shutdown::on_signals);
        collect::run(collect::Config::from(&settings), shutdown).await
    })?;
    Ok(())
}

fn service_action(action: ServiceAction) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install { config, name, account, password_file } => {
            let config = std::path::absolute(&config).with_context(|| format!("{}", config.display()))?;
            // As the service will load it (with the registry's paths and site).
            Settings::load_collector(&config)
                .with_context(|| "the service would not start with this configuration")?;
            let password = match password_file {
                Some(path) => Some(service::read_password(&path)?),
                None => std::env::var("STATMSG_SERVICE_PASSWORD")
                    .ok()
                    .filter(|_| account.is_some())
                    .map(statmsg_ingest::config::Secret::new),
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

/// `statmsg kafka setup`: says what it found of each topic; fails when one is refused.
fn kafka_setup(config: &Path) -> anyhow::Result<()> {
    use statmsg_ingest::kafka::{check_topics, topics_of, Role, TopicState};
    let settings = Settings::load(config)?;
    let kafka = &settings.kafka;
    let found = runtime()?
        .block_on(check_topics(kafka, &topics_of(kafka, Role::Consumer)))
        .with_context(|| format!("cannot ask Kafka at {} for its topics", kafka.brokers))?;
    let mut refused = Vec::new();
    for (topic, state) in found {
        match state {
            TopicState::Created => println!("topic {topic}: created"),
            TopicState::Present => println!("topic {topic}: present (left as it is)"),
            TopicState::Refused(why) => {
                println!("topic {topic}: refused: {why}");
                refused.push(topic);
            }
        }
    }
    anyhow::ensure!(refused.is_empty(), "Kafka refused to create {}", refused.join(", "));
    Ok(())
}

/// `statmsg dlq list|replay`.
fn dlq(action: DlqAction) -> anyhow::Result<()> {
    use consume::dlq;
    let (DlqAction::List { config, .. } | DlqAction::Replay { config, .. }) = &action;
    let config = dlq::Config::from(&Settings::load(config)?);
    let kafka = config.kafka.clone();
    let runtime = runtime()?;
    let letters = runtime
        .block_on(async { tokio::task::spawn_blocking(move || dlq::read_all(&kafka)).await })
        .context("reading the dead-letter topic")??;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match action {
        DlqAction::List { json: true, .. } => {
            for letter in &letters {
                serde_json::to_writer(&mut out, letter)?;
                writeln!(out)?;
            }
        }
        DlqAction::List { .. } => dlq::write_list(&letters, &mut out)?,
        DlqAction::Replay { reason, .. } => {
            let done = runtime.block_on(async {
                dlq::replay(&config, &letters, reason.as_deref(), &shutdown::on_signals()).await
            })?;
            writeln!(
                out,
                "replayed {} messages to {} and {} points to InfluxDB; {} points refused again; {} letters skipped (derived points, foreign messages)",
                done.messages, config.kafka.topic, done.points, done.refused.len(), done.skipped
            )?;
            for (offset, why) in &done.refused {
                writeln!(out, "  dead letter at offset {offset}: {}", why.escape_debug())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn analyze(
    now: Option<DateTime<Utc>>,
    json: bool,
    hierarchy: Option<String>,
    tracker: statmsg_track::TrackerConfig,
    paths: Vec<PathBuf>,
) -> anyhow::Result<()> {
    let config = statmsg_ingest::analyze::Config {
        paths,
        now,
        hierarchy,
        tracker,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(8),
    };
    let progress = statmsg_ingest::analyze::Progress::default();
    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| statmsg_ingest::analyze::run(&config, &progress));
        progress_bar(&progress, &worker);
        worker.join().map_err(|_| anyhow::anyhow!("the analysis panicked"))
    })??;
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        statmsg_ingest::analyze::write_json(&report, &mut out)?;
    } else {
        statmsg_ingest::analyze::write_table(&report, colour, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// A progress bar on stderr while `worker` runs, for inputs over 50 MB on a terminal.
fn progress_bar<T>(
    progress: &statmsg_ingest::analyze::Progress,
    worker: &std::thread::ScopedJoinHandle<'_, T>,
) {
    use std::sync::atomic::Ordering;
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return;
    }
    let mut shown = false;
    while !worker.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let total = progress.total.load(Ordering::Relaxed);
        // Files re-read (times interleaved) count twice: never past the end.
        let done = progress.done.load(Ordering::Relaxed).min(total);
        if total < 50_000_000 {
            continue;
        }
        let filled = (done * 30 / total.max(1)) as usize;
        let _ = write!(
            stderr,
            "\ranalyzing [{}{}] {:>3}% {:.0}/{:.0} MB",
            "#".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            done * 100 / total.max(1),
            done as f64 / 1e6,
            total as f64 / 1e6
        );
        shown = true;
    }
    if shown {
        let _ = write!(stderr, "\r{:60}\r", "");
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
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
