//! The central commands (feature `central`): the consumer and its set-up, the dead-letter topic,
//! and the offline `analyze`, `report` and `simulate`. Each subcommand is one call.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;
use statmsg_plumbing::config::{KafkaSettings, RawConfig};
use statmsg_plumbing::shutdown;
use statmsg_sim::{SimConfig, Simulation};

use crate::cli::{AnalyzeArgs, Command, DlqAction, InfluxAction, KafkaAction, ReportArgs, SimulateArgs};

/// Runs a central command (those of the collector's build are answered in `main.rs`).
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Analyze(args) => analyze(args),
        Command::Report(args) => report(args),
        Command::Simulate(args) => simulate(args),
        Command::Consume { config } => consume(&config),
        Command::Dlq { action } => dlq(action),
        Command::Kafka { action: KafkaAction::Setup { config } } => kafka_setup(&config),
        Command::Influx { action: InfluxAction::Setup { config } } => influx_setup(&config),
        Command::Parse { .. }
        | Command::Collect { .. }
        | Command::Service { .. }
        | Command::Config { .. } => {
            unreachable!("the collector's commands are run by main.rs")
        }
    }
}

fn consume(config: &Path) -> anyhow::Result<()> {
    let config = statmsg_consume::Config::load(config)?;
    runtime()?.block_on(async {
        let shutdown = shutdown::on_signals();
        statmsg_consume::run(config, shutdown).await
    })?;
    Ok(())
}

fn influx_setup(config: &Path) -> anyhow::Result<()> {
    let config = statmsg_consume::Config::load(config)?;
    let client = statmsg_consume::influx::InfluxClient::new(&config.influxdb)?;
    let done = runtime()?.block_on(statmsg_consume::retention::setup(&client))?;
    for line in done {
        println!("{line}");
    }
    Ok(())
}

/// `statmsg kafka setup`: says what it found of each topic; fails when one is refused, or
/// exists but is unfit for statmsg's guarantees or could not be checked (it changes nothing
/// that exists: it says what to change).
fn kafka_setup(config: &Path) -> anyhow::Result<()> {
    use statmsg_plumbing::kafka::topics::{check_topics, Role, TopicState};
    let kafka = &KafkaSettings::from_raw(&RawConfig::load(Some(config))?.kafka)?;
    let found = runtime()?
        .block_on(check_topics(kafka, Role::Consumer))
        .with_context(|| format!("cannot ask Kafka at {} for its topics", kafka.brokers))?;
    let (mut refused, mut unfit) = (Vec::new(), Vec::new());
    for (topic, state) in found {
        match state {
            TopicState::Created => println!("topic {topic}: created"),
            TopicState::Present => println!("topic {topic}: present (left as it is)"),
            TopicState::Unfit(findings) => {
                for finding in findings {
                    println!("topic {topic}: present, unfit: {finding}");
                }
                unfit.push(topic);
            }
            TopicState::Unchecked(why) => {
                println!("topic {topic}: present, not checked: {why}");
                unfit.push(topic);
            }
            TopicState::Refused(why) => {
                println!("topic {topic}: refused: {why}");
                refused.push(topic);
            }
        }
    }
    anyhow::ensure!(refused.is_empty(), "Kafka refused to create {}", refused.join(", "));
    anyhow::ensure!(unfit.is_empty(), "{} to change (above); nothing was changed", unfit.join(", "));
    Ok(())
}

/// `statmsg dlq list|replay`.
fn dlq(action: DlqAction) -> anyhow::Result<()> {
    use statmsg_consume::dlq;
    let (DlqAction::List { config, .. } | DlqAction::Replay { config, .. }) = &action;
    let config = dlq::Config::from(&statmsg_consume::Config::load(config)?);
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

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let AnalyzeArgs { now, json, hierarchy, config, paths } = args;
    let raw = RawConfig::load(config.as_deref())?;
    let tracker = statmsg_consume::settings::track_config(&raw.track)?;
    let config = statmsg::analyze::Config { paths, now, hierarchy, tracker, threads: threads() };
    let progress = statmsg::analyze::Progress::default();
    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| statmsg::analyze::run(&config, &progress));
        progress_bar(&progress, &worker);
        worker.join().map_err(|_| anyhow::anyhow!("the analysis panicked"))
    })??;
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        statmsg::analyze::write_json(&report, &mut out)?;
    } else {
        statmsg::analyze::write_table(&report, colour, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// `statmsg report`: the figures of the runs read from log folders or InfluxDB, as HTML or JSON.
fn report(args: ReportArgs) -> anyhow::Result<()> {
    let ReportArgs { from, to, config, influx, json, hierarchy, output, paths } = args;
    let raw = RawConfig::load(config.as_deref())?;
    let window_minutes = statmsg::report::window_minutes(&raw.report)?;
    let options = statmsg_report::Options { from, to, window_minutes };
    let (runs, cleanups, description) = if influx {
        let config = statmsg_consume::Config::load(config.as_deref().context("--influx needs --config")?)?;
        let runs = runtime()?.block_on(statmsg::report::from_influx(&config.influxdb, from, to))?;
        (runs, Vec::new(), format!("InfluxDB {}", config.influxdb.url))
    } else {
        let tracker = statmsg_consume::settings::track_config(&raw.track)?;
        let described = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let config = statmsg::analyze::Config { paths, now: to, hierarchy, tracker, threads: threads() };
        let (runs, cleanups) = statmsg::report::from_logs(&config)?;
        (runs, cleanups, format!("the logs in {described}"))
    };
    let figures = statmsg_report::figures(&runs, &cleanups, &options);
    let text = if json {
        serde_json::to_string_pretty(&figures)? + "\n"
    } else {
        let source =
            statmsg_report::html::Source { description: &description, generated: Utc::now(), window_minutes };
        statmsg_report::html::page(&figures, &source)
    };
    if output.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(());
    }
    std::fs::write(&output, text).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "statmsg report: {} sites, {} runs, {} to {}: {} ({} kB)",
        figures.fleet.sites,
        figures.fleet.runs,
        figures.from.format("%Y-%m-%d"),
        figures.to.format("%Y-%m-%d"),
        output.display(),
        std::fs::metadata(&output).map_or(0, |m| m.len()) / 1000
    );
    Ok(())
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let out = args.out.clone();
    let sim = Simulation::generate(SimConfig::from(args));
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

impl From<SimulateArgs> for SimConfig {
    fn from(a: SimulateArgs) -> SimConfig {
        SimConfig {
            hierarchy: a.hierarchy,
            sites: a.sites,
            days: a.days,
            seed: a.seed,
            start: a.start,
            interval: chrono::Duration::hours(i64::from(a.interval_hours.max(1))),
            roll_bytes: a.roll_bytes.max(1024),
            keep_history: !a.no_history,
            faults: !a.no_faults,
            updates: a.updates,
            growth: a.growth.into_iter().collect(),
            ..SimConfig::default()
        }
    }
}

/// The central commands' runtime: every core.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Threads for reading log files offline: every core, at most 8.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// A progress bar on stderr while `worker` runs, for inputs over 50 MB on a terminal.
fn progress_bar<T>(progress: &statmsg::analyze::Progress, worker: &std::thread::ScopedJoinHandle<'_, T>) {
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
