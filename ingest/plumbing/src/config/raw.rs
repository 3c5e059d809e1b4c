//! The configuration as written: serde types with their defaults, unknown keys refused.
//! `example.toml` documents every key; a test keeps the two in step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub hierarchy: String,
    pub collect: RawCollect,
    pub kafka: RawKafka,
    pub consume: RawConsume,
    pub influxdb: RawInflux,
    pub track: RawTrack,
    pub report: RawReport,
}

/// `statmsg report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReport {
    /// The sync window in minutes (0: none): when the median run will no longer fit.
    pub window_minutes: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCollect {
    #[serde(deserialize_with = "string_or_list")]
    pub paths: Vec<String>,
    pub state_dir: PathBuf,
    pub start_at: StartAt,
    pub site: String,
    pub host: String,
    pub poll_interval_ms: u64,
    pub max_read_bytes: usize,
    /// Empty: `<state_dir>/spool`.
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// `host:port` of the Prometheus endpoint; empty: none.
    pub metrics_address: String,
    /// Seconds between the collector's heartbeats to Kafka.
    pub heartbeat_s: u64,
}

/// Where to start in a file without checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKafka {
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub state_topic: String,
    pub group_id: String,
    pub partitions: i32,
    /// Replicas of each topic statmsg creates; none: the broker's `default.replication.factor`.
    pub replication_factor: Option<i32>,
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are read from files (secrets: `sasl.password`, ...).
    pub secret_files: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConsume {
    pub batch_max_messages: usize,
    pub batch_max_points: usize,
    pub batch_linger_ms: u64,
    pub heartbeat_s: u64,
    pub metrics_address: String,
}

/// Alert thresholds of the sync tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTrack {
    pub stall_after_minutes: u64,
    pub stall_factor: f64,
    pub slow_factor: f64,
    pub slow_min_minutes: u64,
    pub min_runs_for_median: usize,
    pub expected_interval_hours: f64,
    /// Per `hierarchy` or `hierarchy/site`, in hours.
    pub expected_interval_hours_for: BTreeMap<String, f64>,
    pub child_lag_grace_minutes: u64,
    /// `silent`: minutes without a collector heartbeat (fractions allowed).
    pub silent_after_minutes: f64,
}

impl Default for RawTrack {
    fn default() -> Self {
        RawTrack {
            stall_after_minutes: 120,
            stall_factor: 3.0,
            slow_factor: 3.0,
            slow_min_minutes: 10,
            min_runs_for_median: 5,
            expected_interval_hours: 26.0,
            expected_interval_hours_for: BTreeMap::new(),
            child_lag_grace_minutes: 120,
            silent_after_minutes: 10.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInflux {
    pub url: String,
    pub api: ApiVersion,
    pub database: String,
    pub retention_policy: String,
    pub username: String,
    pub password: String,
    pub org: String,
    pub bucket: String,
    pub token: String,
    /// Files holding `password` and `token` (empty: none).
    pub password_file: PathBuf,
    pub token_file: PathBuf,
    /// PEM file of the certificate authorities trusted for an https:// URL, besides the system's.
    pub ca_file: PathBuf,
    pub timeout_s: u64,
    /// v1: the retention policy of the per-minute points (empty: none, all in `retention_policy`).
    pub recent_retention_policy: String,
    pub recent_retention_days: u32,
    /// Create the database, the policy and the continuous queries at start.
    pub setup: bool,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            hierarchy: "default".into(),
            collect: RawCollect::default(),
            kafka: RawKafka::default(),
            consume: RawConsume::default(),
            influxdb: RawInflux::default(),
            track: RawTrack::default(),
            report: RawReport::default(),
        }
    }
}

impl Default for RawCollect {
    fn default() -> Self {
        RawCollect {
            paths: Vec::new(),
            state_dir: PathBuf::from("statmsg-state"),
            start_at: StartAt::End,
            site: String::new(),
            host: String::new(),
            poll_interval_ms: 250,
            max_read_bytes: 1 << 20,
            spool_dir: PathBuf::new(),
            spool_max_bytes: 256 << 20,
            metrics_address: String::new(),
            heartbeat_s: 60,
        }
    }
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            brokers: "127.0.0.1:9092".into(),
            topic: "statmsg.records".into(),
            dead_letter_topic: "statmsg.dead-letter".into(),
            state_topic: "statmsg.tracker-state".into(),
            group_id: "statmsg-consume".into(),
            partitions: 6,
            replication_factor: None,
            properties: BTreeMap::new(),
            secret_files: BTreeMap::new(),
        }
    }
}

impl Default for RawConsume {
    fn default() -> Self {
        RawConsume {
            batch_max_messages: 50_000,
            batch_max_points: 5000,
            batch_linger_ms: 500,
            heartbeat_s: 60,
            metrics_address: String::new(),
        }
    }
}

impl Default for RawInflux {
    fn default() -> Self {
        RawInflux {
            url: "http://127.0.0.1:8086".into(),
            api: ApiVersion::V1,
            database: "statmsg".into(),
            retention_policy: String::new(),
            recent_retention_policy: "statmsg_recent".into(),
            recent_retention_days: 30,
            setup: true,
            username: String::new(),
            password: String::new(),
            org: String::new(),
            bucket: "statmsg".into(),
            token: String::new(),
            password_file: PathBuf::new(),
            token_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            timeout_s: 30,
        }
    }
}

/// A list, or (from the environment) one comma-separated string.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
        }
        OneOrMany::Many(v) => v,
    })
}

impl RawConfig {
    /// The same configuration with passwords and tokens hidden, for printing.
    pub fn redacted(&self) -> RawConfig {
        let hide = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                "***".to_owned()
            }
        };
        let mut copy = self.clone();
        copy.influxdb.password = hide(&copy.influxdb.password);
        copy.influxdb.token = hide(&copy.influxdb.token);
        for (key, value) in copy.kafka.properties.iter_mut() {
            if super::secrets::is_secret_property(key) {
                *value = hide(value);
            }
        }
        copy
    }

    /// Reads the file (if any), then the `STATMSG__*` environment over it.
    pub fn load(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
        Self::load_with_env(path, None)
    }

    /// Like [`RawConfig::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<RawConfig, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder =
                builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        let environment = config::Environment::with_prefix("STATMSG")
            .prefix_separator("__")
            .separator("__")
            // No type guessing: a password "007" stays "007". Numbers are parsed where the field
            // is a number, and `collect.paths` accepts a comma-separated string.
            .try_parsing(false)
            .source(env);
        let load_error = |source| ConfigError::Load {
            path: path.map_or_else(|| PathBuf::from("(environment)"), Path::to_path_buf),
            source: Box::new(source),
        };
        let mut raw: RawConfig = builder
            .add_source(environment)
            .build()
            .map_err(load_error)?
            .try_deserialize()
            .map_err(load_error)?;
        if let Some(folder) = path.and_then(Path::parent) {
            raw.anchor_files_read(folder);
        }
        Ok(raw)
    }

    /// Relative names of the files the configuration has read (secret files, certificate
    /// authorities, certificates, keys, keytabs) are taken from `folder`, the configuration
    /// file's, as they are written beside it whatever folder the collector is started from. What
    /// statmsg writes (`state_dir`, `spool_dir`) stays relative to the working directory.
    fn anchor_files_read(&mut self, folder: &Path) {
        let anchor = |file: &mut PathBuf| {
            if !file.as_os_str().is_empty() && file.is_relative() {
                *file = folder.join(&*file);
            }
        };
        self.kafka.secret_files.values_mut().for_each(anchor);
        for file in
            [&mut self.influxdb.password_file, &mut self.influxdb.token_file, &mut self.influxdb.ca_file]
        {
            anchor(file);
        }
        for (key, value) in &mut self.kafka.properties {
            let names_a_file = KAFKA_FILE_PROPERTIES.contains(&key.replace('_', ".").as_str());
            // "probe": librdkafka looks in the system's usual places.
            if names_a_file
                && !value.is_empty()
                && value != "probe"
                && Path::new(value.as_str()).is_relative()
            {
                *value = folder.join(value.as_str()).display().to_string();
            }
        }
    }
}

/// librdkafka properties naming a file (or folder) it reads.
const KAFKA_FILE_PROPERTIES: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.crl.location",
    "sasl.kerberos.keytab",
];
