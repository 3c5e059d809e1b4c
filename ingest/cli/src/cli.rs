//! The command line: every subcommand, its options and their parsers (clap's derive).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use statmsg_collect::service;

/// statmsg tells ConfigMgr administrators whether software-update synchronization is healthy
/// across their hierarchies: which site syncs, which one stalled or failed and why, which child
/// site lags its parent.
///
/// On every site server, `statmsg collect` (or the Windows service) tails WsyncMgr.log and the
/// logs beside it into Kafka; centrally, `statmsg consume` rebuilds every sync run into InfluxDB
/// for Grafana's dashboards and alerts. `statmsg analyze` does the same offline on copied log
/// folders, and `statmsg report` writes the capacity report.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
#[cfg_attr(not(feature = "central"), command(after_help = COLLECTOR_BUILD))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What the site servers' build says of itself (`--help`, and a central command asked of it).
#[cfg(not(feature = "central"))]
pub const COLLECTOR_BUILD: &str = "This is the collector's build of statmsg, for site servers: it runs \
collect, service, config, parse and --version. consume, dlq, kafka, influx, analyze, report and \
simulate are in the full build (the central one).";

/// The subcommands of the central build only (`analyze` ... `influx` below).
#[cfg(not(feature = "central"))]
pub const CENTRAL_COMMANDS: [&str; 7] =
    ["analyze", "report", "simulate", "consume", "dlq", "kafka", "influx"];

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Reconstruct every sync run from log folders and files, offline, and print each site's
    /// health and the active alerts (no servers needed).
    Analyze(AnalyzeArgs),
    /// The capacity trend report: one self-contained HTML file (or its figures as JSON), from
    /// log folders (read as `analyze` reads them) or from InfluxDB's sync history.
    Report(ReportArgs),
    /// Write realistic WsyncMgr.log files of a simulated hierarchy, with faults and a truth file.
    Simulate(SimulateArgs),
    /// Tail the configured log files and publish their records to Kafka.
    Collect {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
    /// The collector as a Windows service: install, start, stop, uninstall.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Read records from Kafka: status messages, sync runs and each site's health to InfluxDB.
    Consume {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
    /// The dead-letter topic: list what the consumer could not store, replay it after a fix.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Kafka: `setup` creates the records, dead-letter and tracker state topics (as an admin,
    /// once).
    Kafka {
        #[command(subcommand)]
        action: KafkaAction,
    },
    /// InfluxDB: `setup` creates the database, the short retention policy of the per-minute
    /// points and the continuous queries that downsample them (as an admin, once).
    Influx {
        #[command(subcommand)]
        action: InfluxAction,
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

#[derive(Debug, Subcommand)]
pub enum KafkaAction {
    /// Create the topics of `[kafka]` that do not exist yet: `topic` and `dead_letter_topic` with
    /// `partitions` partitions, `state_topic` compacted with one (what collectors and consumers
    /// do at start when their user may). Existing topics are left as they are.
    Setup {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum InfluxAction {
    /// Create or update the database, the retention policy `[influxdb]
    /// recent_retention_policy` and the hourly continuous queries (what the consumer does at
    /// start when `[influxdb] setup` is on and its user may).
    Setup {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Every dead letter (reason, origin topic/partition/offset, first bytes of the payload),
    /// then the counts per reason.
    List {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
        /// One JSON object per dead letter instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back through the consumer's path (messages to the records topic,
    /// refused points to InfluxDB); idempotent: a record becomes the same point again.
    Replay {
        #[arg(long, short, env = "STATMSG_CONFIG")]
        config: PathBuf,
        /// Only the letters whose reason contains this text.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Install the service: automatic (delayed) start, restart on failure, running
    /// `statmsg service run --config CONFIG`; it logs to `logs\` beside the configuration.
    Install {
        /// The configuration file (absolute path).
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
        /// Run as this account (default: LocalSystem), e.g. `NT AUTHORITY\NetworkService` or a
        /// group managed service account `DOMAIN\statmsg$`.
        #[arg(long)]
        account: Option<String>,
        /// The account's password: the first line of this file (or STATMSG_SERVICE_PASSWORD);
        /// never on the command line.
        #[arg(long, requires = "account")]
        password_file: Option<PathBuf>,
    },
    /// Stop the service if it runs, and remove it.
    Uninstall {
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Start the service and wait until it runs.
    Start {
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service and wait until it stopped (state saved).
    Stop {
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// What the service manager starts: `statmsg collect` as a service.
    #[command(hide = true)]
    Run {
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .map_err(|_| format!("{s:?}: expected RFC 3339 (2024-03-10T12:00:00Z) or YYYY-MM-DD HH:MM:SS (UTC)"))
}

/// `SITE=PERCENT`, or `PERCENT` for every site (`*`).
fn parse_growth(s: &str) -> Result<(String, f64), String> {
    let (site, percent) = s.split_once('=').unwrap_or(("*", s));
    match percent.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p > -50.0 && p <= 100.0 && !site.trim().is_empty() => {
            Ok((site.trim().to_owned(), p))
        }
        _ => Err(format!("{s:?}: expected SITE=PERCENT or PERCENT (a monthly growth, -50 to 100)")),
    }
}

/// `YYYY-MM-DD` as its midnight (UTC), or an RFC 3339 time.
fn parse_day(s: &str) -> Result<DateTime<Utc>, String> {
    match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(day) => Ok(day.and_time(chrono::NaiveTime::MIN).and_utc()),
        Err(_) => parse_time(s),
    }
}

/// `YYYY-MM-DD` as the end of that day (the next midnight, excluded), or an RFC 3339 time.
fn parse_day_end(s: &str) -> Result<DateTime<Utc>, String> {
    match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(day) => Ok((day + chrono::Duration::days(1)).and_time(chrono::NaiveTime::MIN).and_utc()),
        Err(_) => parse_time(s),
    }
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The clock: show the hierarchy as it was then, ignoring later records (RFC 3339 or
    /// `YYYY-MM-DD HH:MM:SS`, UTC). Default: the newest record read.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// JSON lines (`type`: `site`, `sync_run`, `alert`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Hierarchy name for every input (default: the folder above each site's folder).
    #[arg(long)]
    pub hierarchy: Option<String>,
    /// Alert thresholds from this configuration's `[track]` section (and STATMSG__TRACK__*).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Log folders (searched recursively; one folder per site server) and files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// First day (UTC, YYYY-MM-DD or RFC 3339). Default: the first run.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<DateTime<Utc>>,
    /// Last day, included (UTC, YYYY-MM-DD; an RFC 3339 time is the exclusive end). Default:
    /// the last run.
    #[arg(long, value_parser = parse_day_end)]
    pub to: Option<DateTime<Utc>>,
    /// `[report] window_minutes`, `[track]` and, with `--influx`, `[influxdb]`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Read the `sync_run` history from InfluxDB (the configuration's `[influxdb]`).
    #[arg(long, requires = "config", conflicts_with = "paths")]
    pub influx: bool,
    /// Write the figures as JSON (the contract in schema/README.md) instead of HTML.
    #[arg(long)]
    pub json: bool,
    /// Hierarchy name for every input (default: the folder above each site's folder).
    #[arg(long)]
    pub hierarchy: Option<String>,
    /// The file to write (`-`: standard output).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Log folders (one folder per site server) and files.
    #[arg(required_unless_present = "influx")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder: `<out>/<hierarchy>/<SITE>/WsyncMgr*.log` and `<out>/<hierarchy>/truth.json`.
    #[arg(long, short)]
    pub out: PathBuf,
    #[arg(long, default_value = "contoso")]
    pub hierarchy: String,
    /// Sites: a central site, primaries and secondaries (1: a stand-alone primary).
    #[arg(long, default_value_t = 4)]
    pub sites: usize,
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    /// First day (UTC).
    #[arg(long, default_value = "2024-03-01T00:00:00Z", value_parser = parse_time)]
    pub start: DateTime<Utc>,
    /// The top site's sync schedule, in hours.
    #[arg(long, default_value_t = 24)]
    pub interval_hours: u32,
    /// Roll `WsyncMgr.log` to `WsyncMgr.lo_` at this size (ConfigMgr's default: 250 KB).
    #[arg(long, default_value_t = 250_000)]
    pub roll_bytes: usize,
    /// Keep only the last rolled file (`.lo_`), as ConfigMgr does without log history.
    #[arg(long)]
    pub no_history: bool,
    /// No injected faults.
    #[arg(long)]
    pub no_faults: bool,
    /// Mean updates synchronized per top-level run.
    #[arg(long, default_value_t = 40)]
    pub updates: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Catalog growth: `SITE=PERCENT` (or `PERCENT` for every site), repeatable; that site's
    /// run durations and updates grow by PERCENT a month, compounded (recorded in the truth).
    #[arg(long = "growth-percent-per-month", value_parser = parse_growth)]
    pub growth: Vec<(String, f64)>,
}
