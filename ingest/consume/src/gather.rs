//! Gathering Kafka messages into batches: waits for a first message, then takes more for up to
//! `batch_linger`, `batch_max_messages` messages or the batch's payload bound (from
//! [`FIRST_BATCH_BYTES`], doubled while a backlog lasts, up to [`BATCH_MAX_BYTES`]), or until
//! every assigned partition is read to its end. It owns what that needs to know: which
//! partitions are at their end, whether the batch being gathered ends a backlog, how large it may
//! grow, and the arena the next batch is copied into.
//!
//! Rebalances are served here (librdkafka calls back while `recv` is polled), so the consumer
//! gathers only while no batch is being stored.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::batch::{Gathered, KafkaOrigin};
use super::sink::FIRST_RETRY_WAIT;
use super::Shared;
use statmsg_plumbing::retry::Retry;
use statmsg_plumbing::shutdown::{unless_stopped, Shutdown, Stopped};

/// Payload bytes a batch gathers at most (besides `batch_max_messages`): a collector's bundle
/// holds up to 64 KiB of records, so a message count alone would not bound its memory. About
/// 80,000 records, 13,000 points when draining a backlog: InfluxDB spends less CPU on fewer,
/// larger writes (a 313,645-record backlog: 1.2 to 1.6 s with 32 MiB, 1.7 to 1.9 s with 8 to
/// 16 MiB, 1.9 to 2.1 s with 4 MiB).
pub(super) const BATCH_MAX_BYTES: usize = 32 << 20;

/// Payload bytes of the first batch of a backlog; each full batch doubles the bound of the next,
/// up to [`BATCH_MAX_BYTES`]. While the first batch is decoded nothing else happens (InfluxDB
/// idles): a small one starts sooner the pipeline of storing one batch while the next is
/// decoded (`./bench consume`, 1 consumer, 8 alternate runs: median 1.16 s -> 1.02 s).
pub(super) const FIRST_BATCH_BYTES: usize = 4 << 20;

pub(super) struct Gatherer {
    /// The topic read, named by every message's origin.
    topic: Arc<str>,
    /// Partitions whose end this consumer has reached (since their last message).
    pub(super) at_end: BTreeSet<i32>,
    /// The batch being gathered ends the backlog (logged once it is stored).
    pub(super) caught_up: bool,
    /// The arena of the batch decoded last, reused by the next gathering: a fresh one grew by
    /// reallocation and page faults (about a tenth of the consumer's time draining a backlog).
    pub(super) spare: Gathered,
    /// The payload bound of the next batch gathered: [`FIRST_BATCH_BYTES`], doubled by each full
    /// batch, back to it after one that is not.
    batch_bytes: usize,
    /// The batch gathered last is full: more messages are waiting (a backlog).
    pub(super) filled: bool,
}

impl Gatherer {
    pub(super) fn new(topic: &str) -> Self {
        Gatherer {
            topic: Arc::from(topic),
            at_end: BTreeSet::new(),
            caught_up: false,
            spare: Gathered::default(),
            batch_bytes: FIRST_BATCH_BYTES,
            filled: false,
        }
    }

    /// Waits for a first message, then gathers more until the batch is [`Gatherer::full`] or
    /// `batch_linger` passed, or until every assigned partition is read to its end (no
    /// waiting for more when there is none); returns early (possibly with none) at `health_at`
    /// (when the sites' health is due).
    pub(super) async fn next_messages(
        &mut self,
        shared: &Shared,
        shutdown: &Shutdown,
        health_at: tokio::time::Instant,
    ) -> Result<Gathered, Stopped> {
        let consume = &shared.config.consume;
        let mut messages = std::mem::take(&mut self.spare);
        messages.clear();
        let mut deadline = health_at;
        let mut retry = Retry::new(shutdown, "Kafka", FIRST_RETRY_WAIT);
        while !self.full(&messages, shared) {
            let received =
                unless_stopped(shutdown, tokio::time::timeout_at(deadline, shared.consumer.recv())).await?;
            match received {
                Err(_) => break, // linger over, or time for the sites' health
                Ok(Ok(m)) => {
                    shared.metrics.messages_read.fetch_add(1, Relaxed);
                    let topic = match m.topic() {
                        t if t == &*self.topic => self.topic.clone(),
                        other => Arc::from(other),
                    };
                    let origin = KafkaOrigin { topic, partition: m.partition(), offset: m.offset() };
                    self.at_end.remove(&origin.partition);
                    messages.push(origin, m.key(), m.payload());
                    deadline = deadline.min(tokio::time::Instant::now() + consume.batch_linger);
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    // Not only a partition newly at its end: one revoked and given back with
                    // nothing new to read reports its end again, and ends a backlog too.
                    self.at_end.insert(partition);
                    if self.all_at_end(shared) {
                        // Told once this batch, which holds the last messages, is stored.
                        self.caught_up = true;
                        break;
                    }
                }
                Ok(Err(e)) => retry.after_kafka(e).await?,
            }
        }
        self.filled = self.full(&messages, shared);
        self.batch_bytes = next_batch_bytes(self.batch_bytes, self.filled);
        Ok(messages)
    }

    /// `messages` is as large as the batch being gathered may be.
    fn full(&self, messages: &Gathered, shared: &Shared) -> bool {
        messages.len() >= shared.config.consume.batch_max_messages || messages.bytes() >= self.batch_bytes
    }

    /// Every partition assigned to this consumer is at its end.
    fn all_at_end(&self, shared: &Shared) -> bool {
        let Ok(assigned) = shared.consumer.assignment() else {
            return false;
        };
        let partitions = assigned.elements_for_topic(&shared.config.kafka.topic);
        !partitions.is_empty() && partitions.iter().all(|e| self.at_end.contains(&e.partition()))
    }
}

/// The bound of the batch after one of `bytes` that was `filled` (or not).
fn next_batch_bytes(bytes: usize, filled: bool) -> usize {
    match filled {
        true => bytes.saturating_mul(2).min(BATCH_MAX_BYTES),
        false => FIRST_BATCH_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_starts_with_a_small_batch_and_doubles_up_to_the_bound() {
        let mut bytes = FIRST_BATCH_BYTES;
        let mut bounds = vec![bytes];
        for _ in 0..5 {
            bytes = next_batch_bytes(bytes, true);
            bounds.push(bytes);
        }
        assert_eq!(bounds.iter().map(|b| b >> 20).collect::<Vec<_>>(), [4, 8, 16, 32, 32, 32]);
        // A batch that is not full (the backlog read, or live records): the next starts small.
        assert_eq!(next_batch_bytes(BATCH_MAX_BYTES, false), FIRST_BATCH_BYTES);
        assert_eq!(next_batch_bytes(FIRST_BATCH_BYTES, false), FIRST_BATCH_BYTES);
    }
}
