//! Configuration: one TOML file, every key overridable from the environment
//! (`STATMSG__<SECTION>__<KEY>`), read once into [`RawConfig`] (serde, unknown keys refused,
//! documented defaults in `example.toml`) and validated once into [`Settings`]. Stages take their
//! own validated part and never see raw values.

pub mod discover;
mod raw;
pub mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use raw::{RawConfig, RawTrack, StartAt};
pub use secrets::Secret;

/// The commented example printed by `statmsg config --example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration {}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: Box<config::ConfigError>,
    },
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, problem: problem.into() }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hierarchy: String,
    pub collect: CollectSettings,
    pub kafka: KafkaSettings,
    pub consume: ConsumeSettings,
    pub influxdb: InfluxSettings,
    pub track: statmsg_track::TrackerConfig,
}

#[derive(Debug, Clone)]
pub struct CollectSettings {
    pub paths: Vec<glob::Pattern>,
    pub state_dir: PathBuf,
    pub start_at: StartAt,
    pub site: String,
    pub host: String,
    pub poll_interval: Duration,
    pub max_read_bytes: usize,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Between the collector's heartbeats to Kafka.
    pub heartbeat: Duration,
}

#[derive(Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    /// Compacted topic holding each site's tracker state (key hierarchy/site).
    pub state_topic: String,
    pub group_id: String,
    pub partitions: i32,
    /// librdkafka properties, names normalized (`_` read as `.`), those of
    /// `[kafka.secret_files]` read in.
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if secrets::is_secret_property(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("state_topic", &self.state_topic)
            .field("group_id", &self.group_id)
            .field("partitions", &self.partitions)
            .field("properties", &properties)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// Most Kafka messages in one batch (a bound on memory and on what is read again after a
    /// crash).
    pub batch_max_messages: usize,
    /// Most points in one InfluxDB write request.
    pub batch_max_points: usize,
    pub batch_linger: Duration,
    /// How often `site_sync_state` points are written for every site.
    pub heartbeat: Duration,
    /// Where `GET /metrics` is served; none by default.
    pub metrics_address: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct InfluxSettings {
    pub url: reqwest::Url,
    pub api: InfluxApi,
    pub timeout: Duration,
    /// Certificate authorities trusted for https://, besides the system's (PEM).
    pub ca_file: Option<PathBuf>,
    /// v1: where the per-minute points go (none: with the others).
    pub recent: Option<RecentRetention>,
    /// Create the database, the retention policy and the continuous queries at start.
    pub setup: bool,
}

/// The short retention policy of the per-minute points (`site_sync_state`, `site_alert`,
/// `collector_status`), downsampled hourly into the long one by continuous queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRetention {
    pub policy: String,
    pub days: u32,
}

/// Where and how points are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxApi {
    V1 { database: String, retention_policy: String, username: String, password: Secret },
    V2 { org: String, bucket: String, token: Secret },
}

impl Settings {
    /// Reads `path` (TOML), applies `STATMSG__*` environment overrides, validates.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let raw = RawConfig::load(Some(path))?;
        Settings::validate(raw)
    }

    /// [`Settings::load`] for the collector: what `[collect]` leaves empty (`paths`, `site`) is
    /// read from the ConfigMgr registry keys (on Windows; see [`discover`]). Also returns what
    /// was filled, for the log.
    pub fn load_collector(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
        let mut raw = RawConfig::load(Some(path))?;
        let filled = if raw.collect.paths.is_empty() || raw.collect.site.is_empty() {
            discover::fill(&mut raw.collect, &discover::this_machine())
        } else {
            Vec::new()
        };
        if raw.collect.paths.is_empty() {
            return Err(invalid(
                "collect.paths",
                "is empty and no ConfigMgr installation was found in the registry: name the log files to tail",
            ));
        }
        Ok((Settings::validate(raw)?, filled))
    }

    /// Validates raw values once; every error names its key.
    pub fn validate(raw: RawConfig) -> Result<Settings, ConfigError> {
        check_tag_value("hierarchy", &raw.hierarchy, false)?;
        check_tag_value("collect.site", &raw.collect.site, true)?;
        let paths = raw
            .collect
            .paths
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| invalid("collect.paths", format!("{p:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.collect.poll_interval_ms == 0 {
            return Err(invalid("collect.poll_interval_ms", "must be at least 1"));
        }
        if raw.collect.heartbeat_s == 0 || raw.collect.heartbeat_s > 3600 {
            return Err(invalid("collect.heartbeat_s", "must be between 1 and 3600"));
        }
        if raw.collect.max_read_bytes < 4096 {
            return Err(invalid("collect.max_read_bytes", "must be at least 4096"));
        }
        // Room for a few read chunks' records (their JSON is 2 to 4 times the lines).
        let least_spool = (16 * raw.collect.max_read_bytes as u64).max(1 << 20);
        if raw.collect.spool_max_bytes < least_spool {
            return Err(invalid(
                "collect.spool_max_bytes",
                format!("must be at least {least_spool} (16 times collect.max_read_bytes, and 1 MiB)"),
            ));
        }
        let metrics_address = socket_address("collect.metrics_address", &raw.collect.metrics_address)?;
        let spool_dir = if raw.collect.spool_dir.as_os_str().is_empty() {
            raw.collect.state_dir.join("spool")
        } else {
            raw.collect.spool_dir.clone()
        };
        let host = if raw.collect.host.is_empty() { local_host_name() } else { raw.collect.host.clone() };
        if raw.kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        check_topic("kafka.topic", &raw.kafka.topic)?;
        check_topic("kafka.dead_letter_topic", &raw.kafka.dead_letter_topic)?;
        check_topic("kafka.state_topic", &raw.kafka.state_topic)?;
        if raw.kafka.topic == raw.kafka.dead_letter_topic {
            return Err(invalid("kafka.dead_letter_topic", "must differ from kafka.topic"));
        }
        if raw.kafka.state_topic == raw.kafka.topic || raw.kafka.state_topic == raw.kafka.dead_letter_topic {
            return Err(invalid(
                "kafka.state_topic",
                "must differ from kafka.topic and kafka.dead_letter_topic",
            ));
        }
        if raw.consume.heartbeat_s == 0 {
            return Err(invalid("consume.heartbeat_s", "must be at least 1"));
        }
        let track = track_config(&raw.track)?;
        if raw.kafka.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if raw.kafka.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        let mut properties: BTreeMap<String, String> =
            raw.kafka.properties.iter().map(|(k, v)| (k.replace('_', "."), v.clone())).collect();
        for (key, path) in &raw.kafka.secret_files {
            let key = key.replace('_', ".");
            if properties.contains_key(&key) {
                return Err(invalid(
                    "kafka.secret_files",
                    format!("{key:?} is also set in kafka.properties: set it in one place"),
                ));
            }
            let secret = secrets::read_secret_file("kafka.secret_files", path)?;
            properties.insert(key, secret.expose().to_owned());
        }
        check_kafka_properties(&properties)?;
        if raw.consume.batch_max_points == 0 {
            return Err(invalid("consume.batch_max_points", "must be at least 1"));
        }
        if raw.consume.batch_max_messages == 0 {
            return Err(invalid("consume.batch_max_messages", "must be at least 1"));
        }
        let consume_metrics = socket_address("consume.metrics_address", &raw.consume.metrics_address)?;
        let url = reqwest::Url::parse(&raw.influxdb.url)
            .map_err(|e| invalid("influxdb.url", format!("{:?}: {e}", raw.influxdb.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("influxdb.url", "must be an http:// or https:// URL"));
        }
        let i = raw.influxdb;
        let from_file = |key: &'static str, value: String, file: &Path| -> Result<Secret, ConfigError> {
            match (value.is_empty(), file.as_os_str().is_empty()) {
                (_, true) => Ok(Secret::new(value)),
                (true, false) => secrets::read_secret_file(key, file),
                (false, false) => Err(invalid(key, "is set, and so is its value: set it in one place")),
            }
        };
        let ca_file = if i.ca_file.as_os_str().is_empty() {
            None
        } else {
            let pem = std::fs::read(&i.ca_file).map_err(|e| {
                invalid("influxdb.ca_file", format!("cannot read {}: {e}", i.ca_file.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid("influxdb.ca_file", format!("{} is not PEM: {e}", i.ca_file.display()))
            })?;
            if certificates.is_empty() {
                return Err(invalid(
                    "influxdb.ca_file",
                    format!("{} holds no certificate", i.ca_file.display()),
                ));
            }
            if url.scheme() != "https" {
                return Err(invalid("influxdb.ca_file", "is set, but influxdb.url is not https://"));
            }
            Some(i.ca_file.clone())
        };
        let api = match i.api {
            raw::ApiVersion::V1 => {
                if i.database.is_empty() {
                    return Err(invalid("influxdb.database", "must not be empty with api = \"v1\""));
                }
                InfluxApi::V1 {
                    database: i.database,
                    retention_policy: i.retention_policy,
                    username: i.username,
                    password: from_file("influxdb.password_file", i.password, &i.password_file)?,
                }
            }
            raw::ApiVersion::V2 => {
                if i.bucket.is_empty() {
                    return Err(invalid("influxdb.bucket", "must not be empty with api = \"v2\""));
                }
                InfluxApi::V2 {
                    org: i.org,
                    bucket: i.bucket,
                    token: from_file("influxdb.token_file", i.token, &i.token_file)?,
                }
            }
        };
        if i.timeout_s == 0 {
            return Err(invalid("influxdb.timeout_s", "must be at least 1"));
        }
        let recent = match &api {
            InfluxApi::V1 { retention_policy, .. } if !i.recent_retention_policy.is_empty() => {
                if i.recent_retention_policy == *retention_policy {
                    return Err(invalid(
                        "influxdb.recent_retention_policy",
                        "must differ from influxdb.retention_policy",
                    ));
                }
                if !(1..=3650).contains(&i.recent_retention_days) {
                    return Err(invalid("influxdb.recent_retention_days", "must be between 1 and 3650"));
                }
                Some(RecentRetention {
                    policy: i.recent_retention_policy.clone(),
                    days: i.recent_retention_days,
                })
            }
            _ => None,
        };
        Ok(Settings {
            hierarchy: raw.hierarchy,
            collect: CollectSettings {
                paths,
                state_dir: raw.collect.state_dir,
                start_at: raw.collect.start_at,
                site: raw.collect.site,
                host,
                poll_interval: Duration::from_millis(raw.collect.poll_interval_ms),
                max_read_bytes: raw.collect.max_read_bytes,
                spool_dir,
                spool_max_bytes: raw.collect.spool_max_bytes,
                metrics_address,
                heartbeat: Duration::from_secs(raw.collect.heartbeat_s),
            },
            kafka: KafkaSettings {
                brokers: raw.kafka.brokers,
                topic: raw.kafka.topic,
                dead_letter_topic: raw.kafka.dead_letter_topic,
                state_topic: raw.kafka.state_topic,
                group_id: raw.kafka.group_id,
                partitions: raw.kafka.partitions,
                properties,
            },
            consume: ConsumeSettings {
                batch_max_messages: raw.consume.batch_max_messages,
                batch_max_points: raw.consume.batch_max_points,
                batch_linger: Duration::from_millis(raw.consume.batch_linger_ms),
                heartbeat: Duration::from_secs(raw.consume.heartbeat_s),
                metrics_address: consume_metrics,
            },
            influxdb: InfluxSettings {
                url,
                api,
                timeout: Duration::from_secs(i.timeout_s),
                ca_file,
                recent,
                setup: i.setup,
            },
            track,
        })
    }
}

/// The sync window of `[report]` (`None`: none configured).
pub fn report_window_minutes(raw: &raw::RawReport) -> Result<Option<f64>, ConfigError> {
    let w = raw.window_minutes;
    if w == 0.0 {
        Ok(None)
    } else if w.is_finite() && w > 0.0 && w <= 7.0 * 24.0 * 60.0 {
        Ok(Some(w))
    } else {
        Err(invalid("report.window_minutes", format!("{w} must be between 0 (none) and 10080 minutes")))
    }
}

/// The tracker's thresholds from `[track]`.
pub fn track_config(raw: &RawTrack) -> Result<statmsg_track::TrackerConfig, ConfigError> {
    let hours = |key: &'static str, h: f64| {
        if h.is_finite() && h > 0.0 && h < 24.0 * 3650.0 {
            Ok(chrono::Duration::seconds((h * 3600.0) as i64))
        } else {
            Err(invalid(key, format!("{h} must be a positive number of hours")))
        }
    };
    let factor = |key: &'static str, f: f64| {
        if f.is_finite() && f >= 1.0 {
            Ok(f)
        } else {
            Err(invalid(key, format!("{f} must be at least 1")))
        }
    };
    let minutes = |key: &'static str, m: u64| {
        if m == 0 || m > 60 * 24 * 3650 {
            Err(invalid(key, "must be between 1 and 5256000 minutes"))
        } else {
            Ok(chrono::Duration::minutes(m as i64))
        }
    };
    let mut overrides = BTreeMap::new();
    for (scope, h) in &raw.expected_interval_hours_for {
        if scope.is_empty() || scope.matches('/').count() > 1 {
            return Err(invalid(
                "track.expected_interval_hours_for",
                format!("{scope:?} must be \"hierarchy\" or \"hierarchy/site\""),
            ));
        }
        overrides.insert(scope.clone(), hours("track.expected_interval_hours_for", *h)?);
    }
    Ok(statmsg_track::TrackerConfig {
        stall_after: minutes("track.stall_after_minutes", raw.stall_after_minutes)?,
        stall_factor: factor("track.stall_factor", raw.stall_factor)?,
        slow_factor: factor("track.slow_factor", raw.slow_factor)?,
        slow_min: minutes("track.slow_min_minutes", raw.slow_min_minutes)?,
        min_runs_for_median: raw.min_runs_for_median.max(1),
        expected_interval: hours("track.expected_interval_hours", raw.expected_interval_hours)?,
        expected_interval_overrides: overrides,
        child_lag_grace: minutes("track.child_lag_grace_minutes", raw.child_lag_grace_minutes)?,
        silent_after: {
            let m = raw.silent_after_minutes;
            if (0.05..=60.0 * 24.0 * 365.0).contains(&m) {
                chrono::Duration::milliseconds((m * 60_000.0) as i64)
            } else {
                return Err(invalid(
                    "track.silent_after_minutes",
                    format!("{m} must be between 0.05 and 525600"),
                ));
            }
        },
    })
}

/// Values that become InfluxDB tags must be representable there (see
/// `statmsg_schema::line_protocol`).
fn check_tag_value(key: &'static str, value: &str, may_be_empty: bool) -> Result<(), ConfigError> {
    if value.is_empty() && !may_be_empty {
        return Err(invalid(key, "must not be empty"));
    }
    if value.chars().any(|c| c.is_control() || c == '\\' || c == '/') {
        return Err(invalid(key, format!("{value:?} must not contain control characters, `\\` or `/`")));
    }
    Ok(())
}

/// librdkafka accepts every property (names and values), checked now rather than when a client
/// starts; its complaint about a secret property never repeats the value.
fn check_kafka_properties(properties: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let mut config = rdkafka::ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config.create_native_config().map(drop).map_err(|e| match e {
        rdkafka::error::KafkaError::ClientConfig(_, _, key, _) if secrets::is_secret_property(&key) => {
            invalid("kafka.properties", format!("{key:?}: librdkafka refuses it (its value is not shown)"))
        }
        rdkafka::error::KafkaError::ClientConfig(_, description, key, _) => {
            invalid("kafka.properties", format!("{key:?}: {description}"))
        }
        other => invalid("kafka.properties", other.to_string()),
    })
}

fn check_topic(key: &'static str, topic: &str) -> Result<(), ConfigError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(invalid(key, format!("{topic:?} is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])")))
    }
}

/// The machine's host name: `COMPUTERNAME` on Windows, the kernel's on Linux.
fn local_host_name() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests;

/// An optional `host:port` with a numeric address (empty: none).
fn socket_address(key: &'static str, text: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match text.trim() {
        "" => Ok(None),
        address => address
            .parse()
            .map(Some)
            .map_err(|e| invalid(key, format!("{address:?} is not host:port with a numeric address ({e})"))),
    }
}
