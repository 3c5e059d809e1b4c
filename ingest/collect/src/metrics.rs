//! The collector's counters, shared by its reader and its drainer, and their Prometheus names
//! (served by [`statmsg_plumbing::prometheus`] when `[collect] metrics_address` is set; documented in
//! `README.md`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use super::SharedSpool;
use statmsg_plumbing::prometheus::Exposition;

#[derive(Debug, Default)]
pub struct CollectMetrics {
    /// Scans of the watched paths so far: the first heartbeat waits for one.
    pub scans: AtomicU64,
    pub files_watched: AtomicU64,
    /// Bytes of the watched files beyond their checkpoints, at the end of the last pass.
    pub unread_bytes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub records_read: AtomicU64,
    pub messages_acknowledged: AtomicU64,
    pub delivery_errors: AtomicU64,
    /// Unix seconds of the last rollover seen (0: none yet).
    pub last_rollover: AtomicU64,
}

impl CollectMetrics {
    pub fn rollover_now(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.last_rollover.store(now, Relaxed);
    }

    pub fn render(&self, spool: &SharedSpool) -> String {
        let (bytes, entries, oldest) = spool.backlog();
        Exposition::default()
            .gauge(
                "statmsg_collect_files_watched",
                "Log files matched by the configured paths at the last scan.",
                self.files_watched.load(Relaxed) as f64,
            )
            .gauge(
                "statmsg_collect_unread_bytes",
                "Bytes of the watched files not yet read into the spool, at the end of the last pass.",
                self.unread_bytes.load(Relaxed) as f64,
            )
            .counter(
                "statmsg_collect_bytes_read_total",
                "Bytes of log files read into records.",
                self.bytes_read.load(Relaxed),
            )
            .counter(
                "statmsg_collect_records_read_total",
                "Records read and written to the spool.",
                self.records_read.load(Relaxed),
            )
            .counter(
                "statmsg_collect_messages_acknowledged_total",
                "Messages (bundles of records) Kafka acknowledged, which left the spool.",
                self.messages_acknowledged.load(Relaxed),
            )
            .gauge("statmsg_collect_spool_bytes", "Bytes in the spool waiting for Kafka.", bytes as f64)
            .gauge(
                "statmsg_collect_spool_entries",
                "Messages (bundles of records) in the spool waiting for Kafka.",
                entries as f64,
            )
            .gauge(
                "statmsg_collect_spool_max_bytes",
                "The spool's bound (collect.spool_max_bytes).",
                spool.max_bytes() as f64,
            )
            .gauge(
                "statmsg_collect_spool_full",
                "1 while the spool is full and reading has stopped.",
                if spool.is_full() { 1.0 } else { 0.0 },
            )
            .gauge(
                "statmsg_collect_oldest_unacknowledged_age_seconds",
                "Age of the oldest record in the spool (0 when empty).",
                oldest.map_or(0.0, |d| d.as_secs_f64()),
            )
            .counter(
                "statmsg_collect_delivery_errors_total",
                "Batches Kafka did not acknowledge (kept in the spool and retried).",
                self.delivery_errors.load(Relaxed),
            )
            .gauge(
                "statmsg_collect_last_rollover_timestamp_seconds",
                "When a rollover (rename, copy or truncation) was last seen, Unix time; 0 for none.",
                self.last_rollover.load(Relaxed) as f64,
            )
            .finish()
    }
}
