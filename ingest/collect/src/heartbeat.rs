//! The collector's heartbeat: every `collect.heartbeat_s` (and at start, as soon as the
//! reader's first scan found the files) a
//! [`CollectorHeartbeat`] for the site it serves, on the records topic with the records' key, so
//! that the consumer tracking the site can tell a quiet log from a dead collector (`silent`).
//!
//! A heartbeat is sent once, not spooled and not retried: one that Kafka cannot take is
//! replaced by the next, and a heartbeat that arrives late changes nothing (the consumer keeps
//! the newest by the collector's clock). Its sending never holds up the records: it shares the
//! drainer's producer but waits for its own acknowledgement only.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use statmsg_schema::{CollectorHeartbeat, CollectorStatus, SCHEMA_VERSION};

use super::metrics::CollectMetrics;
use super::{SharedSpool, SHUTDOWN_GRACE};
use crate::settings::CollectSettings;
use statmsg_plumbing::config::KafkaSettings;
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::shutdown::Shutdown;

/// How often the first heartbeat looks whether the reader's first scan is done.
const FIRST_SCAN_POLL: Duration = Duration::from_millis(20);

/// The heartbeat of `site` now, from the collector's counters.
pub fn beat(
    hierarchy: &str,
    collect: &CollectSettings,
    spool: &SharedSpool,
    metrics: &CollectMetrics,
) -> CollectorHeartbeat {
    let (spool_bytes, spool_records, _) = spool.backlog();
    let last_rollover = match metrics.last_rollover.load(Relaxed) {
        0 => None,
        secs => chrono::DateTime::from_timestamp(secs as i64, 0),
    };
    CollectorHeartbeat {
        schema: SCHEMA_VERSION,
        hierarchy: hierarchy.to_owned(),
        site: collect.site.clone(),
        host: collect.host.clone(),
        time: chrono::Utc::now(),
        collector: CollectorStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            interval_s: collect.heartbeat.as_secs(),
            files_watched: metrics.files_watched.load(Relaxed),
            unread_bytes: metrics.unread_bytes.load(Relaxed),
            spool_bytes,
            spool_records,
            last_rollover,
        },
    }
}

/// Sends heartbeats until shutdown. Without a site (none configured nor in the registry) there
/// is nothing to key them by: it says so once and sends none.
pub async fn run(
    hierarchy: &str,
    collect: &CollectSettings,
    kafka: &KafkaSettings,
    publisher: &Publisher,
    spool: &SharedSpool,
    metrics: &CollectMetrics,
    shutdown: &Shutdown,
) {
    if collect.site.is_empty() {
        tracing::warn!("no site code ([collect] site, or the registry): no heartbeats, so the consumer cannot raise `silent` for this collector");
        return;
    }
    // The first heartbeat describes the files found, not a collector that has not looked yet.
    let first_scan = async {
        while metrics.scans.load(Relaxed) == 0 {
            tokio::time::sleep(FIRST_SCAN_POLL).await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::timeout(collect.heartbeat, first_scan) => {}
    }
    let mut ticks = tokio::time::interval(collect.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let beat = beat(hierarchy, collect, spool, metrics);
        let payload = serde_json::to_vec(&beat).expect("a heartbeat always serializes");
        let sent = publisher
            .publish_all(&kafka.topic, [(Some(beat.key()), payload)], shutdown, SHUTDOWN_GRACE)
            .await;
        match sent {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("heartbeat delivered again");
            }
            Ok(()) => tracing::trace!(site = %beat.site, "heartbeat delivered"),
            Err(_) if shutdown.is_cancelled() => return,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("heartbeat not delivered ({e}): the next follows in {:?}", collect.heartbeat);
            }
            Err(e) => tracing::debug!("heartbeat not delivered ({e})"),
        }
    }
}
