//! The consumer's counters and their Prometheus names (served by [`statmsg_plumbing::prometheus`] when
//! `[consume] metrics_address` is set; every metric is documented in `README.md`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use statmsg_plumbing::prometheus::{Exposition, Histogram, Kind};

#[derive(Debug, Default)]
pub struct ConsumeMetrics {
    pub messages_read: AtomicU64,
    pub records_read: AtomicU64,
    pub batches_committed: AtomicU64,
    /// Points InfluxDB acknowledged, per measurement.
    points_written: Mutex<BTreeMap<String, u64>>,
    pub write_seconds: Histogram,
    pub state_publish_seconds: Histogram,
    /// Transient failures waited out (InfluxDB or Kafka unavailable).
    pub retries: AtomicU64,
    pub dead_letters: AtomicU64,
    pub tracker_sites: AtomicU64,
    /// Unix seconds of the last health write (0: none yet); exposed as
    /// `statmsg_consume_heartbeat_age_seconds`, the name dashboards know.
    pub last_health_write: AtomicU64,
    /// Messages not yet committed, per partition of the records topic (librdkafka's statistics).
    lag: Mutex<BTreeMap<i32, i64>>,
}

impl ConsumeMetrics {
    pub fn points_written(&self, measurement: &str, points: u64) {
        let mut written = self.points_written.lock().unwrap_or_else(PoisonError::into_inner);
        *written.entry(measurement.to_owned()).or_default() += points;
    }

    pub fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner) = lag;
    }

    pub fn health_written_now(&self) {
        self.last_health_write.store(unix_now(), Relaxed);
    }

    pub fn render(&self) -> String {
        let lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let written = self.points_written.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let last_health_write = self.last_health_write.load(Relaxed);
        let heartbeat_age =
            if last_health_write == 0 { -1.0 } else { unix_now().saturating_sub(last_health_write) as f64 };
        Exposition::default()
            .labeled(
                "statmsg_consume_lag_messages",
                "Messages of the records topic not yet stored and committed, per assigned partition.",
                Kind::Gauge,
                lag.iter().map(|(p, l)| ("partition", p.to_string(), *l as f64)),
            )
            .counter(
                "statmsg_consume_messages_read_total",
                "Kafka messages read from the records topic.",
                self.messages_read.load(Relaxed),
            )
            .counter(
                "statmsg_consume_records_read_total",
                "Records decoded from the records topic (a bundle holds many), counted when stored.",
                self.records_read.load(Relaxed),
            )
            .counter(
                "statmsg_consume_batches_committed_total",
                "Batches stored in InfluxDB, their states saved and their offsets committed.",
                self.batches_committed.load(Relaxed),
            )
            .labeled(
                "statmsg_consume_points_written_total",
                "Points InfluxDB acknowledged, per measurement.",
                Kind::Counter,
                written.iter().map(|(m, n)| ("measurement", m.clone(), *n as f64)),
            )
            .histogram(
                "statmsg_consume_write_duration_seconds",
                "Time of one InfluxDB write request, until acknowledged (retries not included).",
                &self.write_seconds,
            )
            .counter(
                "statmsg_consume_retries_total",
                "Attempts that failed for a transient reason and were retried (InfluxDB or Kafka away).",
                self.retries.load(Relaxed),
            )
            .counter(
                "statmsg_consume_dead_letters_total",
                "Messages or points sent to the dead-letter topic.",
                self.dead_letters.load(Relaxed),
            )
            .gauge(
                "statmsg_consume_tracker_sites",
                "Sites the sync tracker knows (its own and, for lag, their parents).",
                self.tracker_sites.load(Relaxed) as f64,
            )
            .gauge(
                "statmsg_consume_heartbeat_age_seconds",
                "Seconds since site_sync_state points were last written; -1 before the first.",
                heartbeat_age,
            )
            .histogram(
                "statmsg_consume_state_publish_duration_seconds",
                "Time to publish a batch's tracker states until Kafka acknowledged all of them.",
                &self.state_publish_seconds,
            )
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered_with_its_labels() {
        let m = ConsumeMetrics::default();
        m.points_written("statmsg", 5);
        m.points_written("sync_run", 2);
        m.points_written("statmsg", 1);
        m.set_lag(BTreeMap::from([(0, 12), (3, 0)]));
        m.write_seconds.observe(std::time::Duration::from_millis(20));
        let text = m.render();
        for expected in [
            "statmsg_consume_lag_messages{partition=\"0\"} 12\n",
            "statmsg_consume_lag_messages{partition=\"3\"} 0\n",
            "statmsg_consume_points_written_total{measurement=\"statmsg\"} 6\n",
            "statmsg_consume_points_written_total{measurement=\"sync_run\"} 2\n",
            "statmsg_consume_write_duration_seconds_bucket{le=\"0.025\"} 1\n",
            "statmsg_consume_heartbeat_age_seconds -1\n",
            "# TYPE statmsg_consume_state_publish_duration_seconds histogram\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        m.health_written_now();
        assert!(m.render().contains("statmsg_consume_heartbeat_age_seconds 0\n"));
    }
}
