//! What a collector says about itself: one JSON [`CollectorHeartbeat`] every minute, on the
//! records topic with the records' key (`hierarchy/site`), so that it reaches the consumer that
//! tracks the site, in order with the site's records.
//!
//! ```json
//! {"schema":2,"hierarchy":"contoso","site":"CS1","host":"cm1","time":"2024-03-01T10:00:00.000Z",
//!  "collector":{"version":"0.1.0","interval_s":60,"files_watched":3,"unread_bytes":0,
//!               "spool_bytes":0,"spool_records":0,"last_rollover":"2024-03-01T09:12:00.000Z"}}
//! ```
//!
//! A log may stay silent for a day between syncs, so log silence proves nothing; a missing
//! heartbeat does: the collector, its server or the path to Kafka is down. The consumer tracks
//! the latest per site, raises the `silent` alert from it, and writes it every minute with the
//! site's state (`collector_status`). It is not an [`Envelope`](crate::Envelope): it has no `record`
//! and no `source`, and an envelope has no `collector`, so neither decodes as the other.

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::record::millis;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorHeartbeat {
    /// [`crate::SCHEMA_VERSION`] when written by this build.
    pub schema: u32,
    pub hierarchy: String,
    /// The site the collector serves (its records' envelope site).
    pub site: String,
    pub host: String,
    /// When the collector sent it (its own clock).
    #[serde(serialize_with = "millis::serialize", deserialize_with = "millis::deserialize")]
    pub time: DateTime<Utc>,
    pub collector: CollectorStatus,
}

/// The collector's own health, as its Prometheus endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// statmsg's version.
    pub version: String,
    /// Seconds between heartbeats.
    pub interval_s: u64,
    /// Log files matched by the configured paths at the last scan.
    pub files_watched: u64,
    /// Bytes of the watched files not yet read into the spool.
    pub unread_bytes: u64,
    /// Bytes and messages (bundles of records; the name predates bundles) in the spool not yet
    /// acknowledged by Kafka.
    pub spool_bytes: u64,
    pub spool_records: u64,
    /// When a rollover was last seen (none since the collector started: absent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "millis::serialize_opt",
        deserialize_with = "millis::deserialize_opt"
    )]
    pub last_rollover: Option<DateTime<Utc>>,
}

impl CollectorHeartbeat {
    /// The Kafka key: `hierarchy/site`, the key of the site's records.
    pub fn key(&self) -> String {
        format!("{}/{}", self.hierarchy, self.site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    const BEAT: &str = r#"{"schema":1,"hierarchy":"contoso","site":"CS1","host":"cm1","time":"2024-03-01T10:00:00.000Z","collector":{"version":"0.1.0","interval_s":60,"files_watched":3,"unread_bytes":10,"spool_bytes":0,"spool_records":0,"last_rollover":"2024-03-01T09:12:00.000Z"}}"#;

    #[test]
    fn a_heartbeat_round_trips_and_is_not_an_envelope() {
        let beat: CollectorHeartbeat = serde_json::from_str(BEAT).unwrap();
        assert_eq!(serde_json::to_string(&beat).unwrap(), BEAT);
        assert_eq!(beat.key(), "contoso/CS1");
        assert!(serde_json::from_str::<Envelope<'_>>(BEAT).is_err());
        let envelope = r#"{"schema":1,"hierarchy":"h","site":"CS1","host":"cm1","source":{"path":"a","offset":0},"record":{"time":null,"component":null,"thread":null,"text":"x","format":"unframed"}}"#;
        assert!(serde_json::from_str::<CollectorHeartbeat>(envelope).is_err());
    }
}
