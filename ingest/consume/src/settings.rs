//! The consumer's configuration: `[kafka]`, `[consume]`, `[influxdb]` and `[track]`, validated
//! into [`Config`](crate::Config) (and `dlq`'s part of it). Nothing of `[collect]` is read here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use statmsg_plumbing::config::raw::{ApiVersion, RawTrack};
use statmsg_plumbing::config::secrets::read_secret_file;
use statmsg_plumbing::config::{invalid, socket_address, ConfigError, KafkaSettings, RawConfig, Secret};

use crate::Config;

#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// Most Kafka messages in one batch (a bound on memory and on what is read again after a
    /// crash).
    pub batch_max_messages: usize,
    /// Most points in one InfluxDB write request.
    pub batch_max_points: usize,
    pub batch_linger: Duration,
    /// How often every owned site's health is written (`site_sync_state`, `site_alert`,
    /// `collector_status`): `[consume] heartbeat_s`. Not the collector's heartbeat (its liveness
    /// message).
    pub health_interval: Duration,
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

impl Config {
    /// Reads `path` (TOML, then `STATMSG__*` overrides) and validates the consumer's sections.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::load(Some(path))?)
    }

    /// Validates the consumer's sections once; every error names its key.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let kafka = KafkaSettings::from_raw(&raw.kafka)?;
        if raw.consume.heartbeat_s == 0 {
            return Err(invalid("consume.heartbeat_s", "must be at least 1"));
        }
        let track = track_config(&raw.track)?;
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
                (true, false) => read_secret_file(key, file),
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
            ApiVersion::V1 => {
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
            ApiVersion::V2 => {
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
        Ok(Config {
            kafka,
            consume: ConsumeSettings {
                batch_max_messages: raw.consume.batch_max_messages,
                batch_max_points: raw.consume.batch_max_points,
                batch_linger: Duration::from_millis(raw.consume.batch_linger_ms),
                health_interval: Duration::from_secs(raw.consume.heartbeat_s),
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
