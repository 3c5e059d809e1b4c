//! The collector's configuration: `hierarchy`, `[collect]` and `[kafka]`, validated into
//! [`Config`]. Nothing else of the file is read or checked here (a site server has no InfluxDB
//! secret files); what `[collect]` leaves empty is filled from the ConfigMgr registry keys
//! ([`crate::discover`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use statmsg_plumbing::config::{
    check_tag_value, hierarchy, invalid, socket_address, ConfigError, KafkaSettings, RawConfig, StartAt,
};

use crate::discover;

/// What the collector needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub hierarchy: String,
    pub collect: CollectSettings,
    pub kafka: KafkaSettings,
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

impl Config {
    /// Validates the collector's sections once; every error names its key.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let hierarchy = hierarchy(raw)?;
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
        Ok(Config {
            hierarchy,
            collect: CollectSettings {
                paths,
                state_dir: raw.collect.state_dir.clone(),
                start_at: raw.collect.start_at,
                site: raw.collect.site.clone(),
                host,
                poll_interval: Duration::from_millis(raw.collect.poll_interval_ms),
                max_read_bytes: raw.collect.max_read_bytes,
                spool_dir,
                spool_max_bytes: raw.collect.spool_max_bytes,
                metrics_address,
                heartbeat: Duration::from_secs(raw.collect.heartbeat_s),
            },
            kafka: KafkaSettings::from_raw(&raw.kafka)?,
        })
    }

    /// Reads `path` (TOML, then `STATMSG__*` overrides) for the collector: what `[collect]` leaves empty (`paths`, `site`) is
    /// read from the ConfigMgr registry keys (on Windows; see [`discover`]). Also returns what
    /// was filled, for the log.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
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
        Ok((Config::from_raw(&raw)?, filled))
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
