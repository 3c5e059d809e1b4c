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

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use statmsg_plumbing::config::KafkaSettings;
use statmsg_plumbing::kafka::{client_config, is_failover, ClientEvents, EAGER_CONNECTIONS};
use statmsg_track::SiteState;

/// Longest wait for the broker's answer about the topic's partitions and their ends.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct StateTopic {
    topic: String,
    reader: StreamConsumer<ClientEvents>,
    /// Asks for metadata and the partitions' ends on connections of its own: a broker answers a
    /// connection's requests in order, so behind the reader's waiting fetches (up to
    /// `fetch.wait.max.ms`, 500 ms) each question took half a second.
    queries: BaseConsumer<ClientEvents>,
    /// Partitions assigned to `reader` so far.
    partitions: Vec<i32>,
    latest: HashMap<String, SiteState>,
    /// Messages that were not a site state (kept out, reported).
    pub unreadable: u64,
}

impl std::fmt::Debug for StateTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTopic").field("topic", &self.topic).field("sites", &self.latest.len()).finish()
    }
}

/// The key of a site's state.
pub fn state_key(hierarchy: &str, site: &str) -> String {
    format!("{hierarchy}/{site}")
}

impl StateTopic {
    pub fn open(kafka: &KafkaSettings) -> Result<StateTopic, KafkaError> {
        let defaults = [("enable.auto.commit", "false"), ("enable.partition.eof", "false")];
        let mut config = client_config(kafka, &[&defaults[..], EAGER_CONNECTIONS].concat());
        // A group id is required by the client; no offsets are ever committed with it.
        config.set("group.id", format!("{}-state-reader", kafka.group_id));
        Ok(StateTopic {
            topic: kafka.state_topic.clone(),
            reader: config.create_with_context(ClientEvents::new("state-reader"))?,
            queries: config.create_with_context(ClientEvents::new("state-reader"))?,
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
    /// broker for metadata (bounded by [`METADATA_TIMEOUT`]). Safe to drop at any await (on a
    /// shutdown): what was read is kept, and the next call continues.
    pub async fn catch_up(&mut self) -> Result<(), KafkaError> {
        let started = std::time::Instant::now();
        let (topic, reader, queries) = (self.topic.clone(), &self.reader, &self.queries);
        let metadata =
            tokio::task::block_in_place(|| queries.fetch_metadata(Some(&topic), METADATA_TIMEOUT))?;
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
        // One request per partition, all at once: each waits for its answer on its own.
        let topic_name = topic.as_str();
        let ends: HashMap<i32, i64> = tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let asking: Vec<_> = partitions
                    .iter()
                    .map(|&p| {
                        scope.spawn(move || (p, queries.fetch_watermarks(topic_name, p, METADATA_TIMEOUT)))
                    })
                    .collect();
                asking
                    .into_iter()
                    .map(|a| {
                        let (p, answer) = a.join().map_err(|_| KafkaError::Canceled)?;
                        answer.map(|(_, high)| (p, high))
                    })
                    .collect::<Result<HashMap<_, _>, KafkaError>>()
            })
        })?;
        // Serves its logs and errors (it never fetches, so nothing else comes).
        while queries.poll(Duration::ZERO).is_some() {}
        let mut next: HashMap<i32, i64> = HashMap::new();
        if let Ok(pos) = reader.position() {
            for e in pos.elements_for_topic(&topic) {
                if let Offset::Offset(o) = e.offset() {
                    next.insert(e.partition(), o);
                }
            }
        }
        tracing::trace!(took = ?started.elapsed(), "tracker state topic: ends known");
        let done = |next: &HashMap<i32, i64>| {
            ends.iter().all(|(p, high)| *high == 0 || next.get(p).is_some_and(|n| n >= high))
        };
        // The longest wait for the next message, failovers included.
        let mut deadline = tokio::time::Instant::now() + METADATA_TIMEOUT * 3;
        while !done(&next) {
            let message = match tokio::time::timeout_at(deadline, reader.recv()).await {
                // librdkafka reports a broker lost and follows the partition's new leader by
                // itself: the reading goes on, within the same deadline.
                Ok(Err(e)) if is_failover(&e) => {
                    tracing::debug!("tracker state topic: {e}; reading on");
                    continue;
                }
                Ok(m) => m?,
                // A local timeout (not a broker's): no failover to wait for.
                Err(_) => {
                    return Err(KafkaError::MessageConsumption(
                        rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
            };
            deadline = tokio::time::Instant::now() + METADATA_TIMEOUT * 3;
            next.insert(message.partition(), message.offset() + 1);
            apply(&mut self.latest, &mut self.unreadable, message.key(), message.payload());
        }
        Ok(())
    }

    /// Takes in what the reader has already fetched, without waiting for more: the states other
    /// consumers published lately (for the lag of children behind parents this consumer does not
    /// own), as fresh as librdkafka's prefetching keeps them.
    pub async fn refresh(&mut self) -> Result<(), KafkaError> {
        if self.partitions.is_empty() {
            return Ok(()); // never caught up: nothing assigned yet
        }
        // A zero timeout polls the reader once: a message it holds is returned at once.
        while let Ok(message) = tokio::time::timeout(Duration::ZERO, self.reader.recv()).await {
            let message = match message {
                // A broker lost: what is fetched later is taken in by the next call.
                Err(e) if is_failover(&e) => break,
                m => m?,
            };
            let (key, payload) = (message.key().map(<[u8]>::to_vec), message.payload().map(<[u8]>::to_vec));
            apply(&mut self.latest, &mut self.unreadable, key.as_deref(), payload.as_deref());
        }
        Ok(())
    }

    /// Notes states this consumer published (Kafka acknowledged them) as the latest.
    pub fn remember(&mut self, states: Vec<SiteState>) {
        for state in states {
            self.latest.insert(state_key(&state.hierarchy, &state.site), state);
        }
    }
}

/// The topic's messages for `states`: each keyed `hierarchy/site` (see [`state_key`]), its
/// payload the state as JSON.
pub fn encode(states: &[SiteState]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    states
        .iter()
        .map(|state| {
            let key = state_key(&state.hierarchy, &state.site).into_bytes();
            // Infallible: plain data.
            (Some(key), serde_json::to_vec(state).expect("a site state always serializes"))
        })
        .collect()
}

/// One message of the topic: a site's state, or a tombstone (the site was retired).
fn apply(
    latest: &mut HashMap<String, SiteState>,
    unreadable: &mut u64,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) {
    let Some(key) = key.map(|k| String::from_utf8_lossy(k).into_owned()) else {
        *unreadable += 1;
        return;
    };
    match payload {
        None => {
            latest.remove(&key);
        }
        Some(payload) => match serde_json::from_slice::<SiteState>(payload) {
            Ok(state) => {
                latest.insert(key, state);
            }
            Err(e) => {
                *unreadable += 1;
                tracing::warn!(key, "tracker state topic: unreadable state ({e}); ignored");
            }
        },
    }
}

#[cfg(test)]
mod tests;
