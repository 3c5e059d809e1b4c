//! The tracker's state in a compacted Kafka topic: one message per site (key `hierarchy/site`,
//! value the site's [`SiteState`] as JSON).
//!
//! The consumer publishes the states a batch changed after InfluxDB acknowledged the batch and
//! *before* it commits the batch's offsets, so the committed position never runs ahead of the
//! saved state: after a restart or a rebalance the new owner restores the state and re-reads at
//! most records the state already holds, which the tracker's per-source watermarks skip.
//!
//! Every consumer reads the whole topic (all partitions, no group): it restores the sites of the
//! partitions it is given, and keeps the other sites' states for the lag of its children behind
//! parents it does not own.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaSettings;
use crate::kafka::{client_config, ClientEvents, PRODUCER_DEFAULTS};
use crate::shutdown::Shutdown;
use statmsg_track::SiteState;

/// Longest wait for the broker's answer about the topic's partitions and their ends.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct StateStore {
    topic: String,
    reader: StreamConsumer<ClientEvents>,
    producer: FutureProducer<ClientEvents>,
    /// Partitions assigned to `reader` so far.
    partitions: Vec<i32>,
    latest: HashMap<String, SiteState>,
    /// Messages that were not a site state (kept out, reported).
    pub unreadable: u64,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("topic", &self.topic).field("sites", &self.latest.len()).finish()
    }
}

/// The key of a site's state.
pub fn state_key(hierarchy: &str, site: &str) -> String {
    format!("{hierarchy}/{site}")
}

impl StateStore {
    pub fn open(kafka: &KafkaSettings) -> Result<StateStore, KafkaError> {
        let mut config =
            client_config(kafka, &[("enable.auto.commit", "false"), ("enable.partition.eof", "false")]);
        // A group id is required by the client; no offsets are ever committed with it.
        config.set("group.id", format!("{}-state-reader", kafka.group_id));
        Ok(StateStore {
            topic: kafka.state_topic.clone(),
            reader: config.create_with_context(ClientEvents::new("state-reader"))?,
            producer: client_config(kafka, PRODUCER_DEFAULTS)
                .create_with_context(ClientEvents::new("state-writer"))?,
            partitions: Vec::new(),
            latest: HashMap::new(),
            unreadable: 0,
        })
    }

    pub fn get(&self, key: &str) -> Option<&SiteState> {
        self.latest.get(key)
    }

    pub fn states(&self) -> impl Iterator<Item = &SiteState> {
        self.latest.values()
    }

    /// Reads the topic up to its end as of this call. Blocks the calling task while it asks the
    /// broker for metadata (bounded by [`METADATA_TIMEOUT`]).
    pub async fn catch_up(&mut self, shutdown: &Shutdown) -> Result<(), KafkaError> {
        let (topic, reader) = (self.topic.clone(), &self.reader);
        let metadata = tokio::task::block_in_place(|| reader.fetch_metadata(Some(&topic), METADATA_TIMEOUT))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions != self.partitions {
            let mut list = TopicPartitionList::new();
            let position = reader.position().ok();
            for &p in &partitions {
                // Partitions read before continue where they were; new ones from the start.
                let offset =
                    match position.as_ref().and_then(|pos| pos.find_partition(&topic, p)).map(|e| e.offset())
                    {
                        Some(o @ Offset::Offset(_)) => o,
                        _ => Offset::Beginning,
                    };
                list.add_partition_offset(&topic, p, offset)?;
            }
            reader.assign(&list)?;
            self.partitions = partitions.clone();
        }
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for &p in &partitions {
            let (_, high) =
                tokio::task::block_in_place(|| reader.fetch_watermarks(&topic, p, METADATA_TIMEOUT))?;
            ends.insert(p, high);
        }
        let mut next: HashMap<i32, i64> = HashMap::new();
        if let Ok(pos) = reader.position() {
            for e in pos.elements_for_topic(&topic) {
                if let Offset::Offset(o) = e.offset() {
                    next.insert(e.partition(), o);
                }
            }
        }
        let done = |next: &HashMap<i32, i64>| {
            ends.iter().all(|(p, high)| *high == 0 || next.get(p).is_some_and(|n| n >= high))
        };
        while !done(&next) {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = tokio::time::timeout(METADATA_TIMEOUT * 3, reader.recv()) => match m {
                    Ok(m) => m?,
                    Err(_) => return Err(KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::RequestTimedOut)),
                },
            };
            next.insert(message.partition(), message.offset() + 1);
            let Some(key) = message.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                self.unreadable += 1;
                continue;
            };
            match message.payload() {
                None => {
                    self.latest.remove(&key); // a tombstone: the site was retired
                }
                Some(payload) => match serde_json::from_slice::<SiteState>(payload) {
                    Ok(state) => {
                        self.latest.insert(key, state);
                    }
                    Err(e) => {
                        self.unreadable += 1;
                        tracing::warn!(key, "tracker state topic: unreadable state ({e}); ignored");
                    }
                },
            }
        }
        Ok(())
    }

    /// Publishes `states` and waits until Kafka acknowledged every one, retrying while Kafka is
    /// unavailable. `false` on shutdown (then nothing may be committed).
    pub async fn publish(&mut self, states: Vec<SiteState>, shutdown: &Shutdown) -> bool {
        for state in states {
            let key = state_key(&state.hierarchy, &state.site);
            // Infallible: plain data.
            let payload = serde_json::to_vec(&state).expect("a site state always serializes");
            let mut delay = super::RETRY_MIN;
            loop {
                let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
                let sent = tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    r = self.producer.send(record, Duration::from_secs(30)) => r,
                };
                match sent {
                    Ok(_) => break,
                    Err((e, _)) => {
                        tracing::warn!("tracker state topic {}: {e}; retrying in {delay:?}", self.topic)
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(super::RETRY_MAX);
            }
            self.latest.insert(key, state);
        }
        true
    }
}
