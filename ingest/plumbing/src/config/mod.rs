//! Configuration: one TOML file, every key overridable from the environment
//! (`STATMSG__<SECTION>__<KEY>`), read once into [`RawConfig`] (serde, unknown keys refused,
//! documented defaults in `example.toml`). Each stage validates only its own sections into its
//! typed `Config` (`statmsg_collect::Config::from_raw`, `statmsg_consume::Config::from_raw`) and
//! never sees raw values; what both read, `[kafka]`, is validated here ([`KafkaSettings`]), with
//! the checks every section uses.

pub mod raw;
pub mod secrets;

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

pub use raw::{RawConfig, RawKafka, StartAt};
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

pub fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, problem: problem.into() }
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
    /// Replicas of each topic statmsg creates, and the fewest an existing one may have; none:
    /// the broker's default, not checked.
    pub replication_factor: Option<i32>,
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
            .field("replication_factor", &self.replication_factor)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaSettings {
    /// Validates `[kafka]` (what both stages read), reading `[kafka.secret_files]`.
    pub fn from_raw(raw: &RawKafka) -> Result<KafkaSettings, ConfigError> {
        if raw.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        check_topic("kafka.topic", &raw.topic)?;
        check_topic("kafka.dead_letter_topic", &raw.dead_letter_topic)?;
        check_topic("kafka.state_topic", &raw.state_topic)?;
        if raw.topic == raw.dead_letter_topic {
            return Err(invalid("kafka.dead_letter_topic", "must differ from kafka.topic"));
        }
        if raw.state_topic == raw.topic || raw.state_topic == raw.dead_letter_topic {
            return Err(invalid(
                "kafka.state_topic",
                "must differ from kafka.topic and kafka.dead_letter_topic",
            ));
        }
        if raw.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if raw.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        if raw.replication_factor.is_some_and(|replicas| replicas < 1) {
            return Err(invalid(
                "kafka.replication_factor",
                "must be at least 1 (or left out: the broker's default)",
            ));
        }
        let mut properties: BTreeMap<String, String> =
            raw.properties.iter().map(|(k, v)| (k.replace('_', "."), v.clone())).collect();
        for (key, path) in &raw.secret_files {
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
        Ok(KafkaSettings {
            brokers: raw.brokers.clone(),
            topic: raw.topic.clone(),
            dead_letter_topic: raw.dead_letter_topic.clone(),
            state_topic: raw.state_topic.clone(),
            group_id: raw.group_id.clone(),
            partitions: raw.partitions,
            replication_factor: raw.replication_factor,
            properties,
        })
    }
}

/// The hierarchy every record and point is tagged with, checked.
pub fn hierarchy(raw: &RawConfig) -> Result<String, ConfigError> {
    check_tag_value("hierarchy", &raw.hierarchy, false)?;
    Ok(raw.hierarchy.clone())
}

/// Values that become InfluxDB tags must be representable there (see
/// `statmsg_schema::line_protocol`).
pub fn check_tag_value(key: &'static str, value: &str, may_be_empty: bool) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests;

/// An optional `host:port` with a numeric address (empty: none).
pub fn socket_address(key: &'static str, text: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match text.trim() {
        "" => Ok(None),
        address => address
            .parse()
            .map(Some)
            .map_err(|e| invalid(key, format!("{address:?} is not host:port with a numeric address ({e})"))),
    }
}
