//! The consumer group, as this consumer sees it: which partitions it holds, where a newly
//! assigned partition starts (its committed offset, else the reset position), how far behind
//! each one is (the lag, for the metrics), and rewinding partitions to their committed offsets.
//!
//! Partitions move in rebalances. A [`RebalanceWatch`] (the consumer's context) records every
//! revocation and assignment as librdkafka reports it, so that a partition that went and came
//! back between two looks is not mistaken for one that stayed: its messages gathered before the
//! revocation are dropped (they are the new owner's, or are re-read from the committed offset),
//! and its sites are restored from the state their last owner saved.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::ConsumeMetrics;
use statmsg_plumbing::kafka::ClientEvents;

/// The consumer's context: what rebalances did since the last [`RebalanceWatch::take`],
/// librdkafka's logs and errors, and its statistics (the lag per partition, when metrics are on).
#[derive(Debug, Clone)]
pub struct RebalanceWatch {
    rebalanced: Arc<Mutex<Rebalanced>>,
    events: Arc<ClientEvents>,
    metrics: Arc<ConsumeMetrics>,
    topic: String,
    /// Where a partition without a committed offset starts (`auto.offset.reset`); `None`: let
    /// librdkafka decide (`error`, or a value this does not know).
    reset: Option<Offset>,
}

impl RebalanceWatch {
    /// `auto_offset_reset`: the consumer's `auto.offset.reset`.
    pub fn new(metrics: Arc<ConsumeMetrics>, topic: &str, auto_offset_reset: &str) -> Self {
        let reset = match auto_offset_reset {
            "earliest" | "smallest" | "beginning" => Some(Offset::Beginning),
            "latest" | "largest" | "end" => Some(Offset::End),
            _ => None,
        };
        RebalanceWatch {
            rebalanced: Arc::default(),
            events: Arc::new(ClientEvents::new("consumer")),
            metrics,
            topic: topic.to_owned(),
            reset,
        }
    }

    /// Sets where each newly assigned partition starts: its committed offset, else the reset
    /// position. Left to librdkafka, a partition without a committed offset waits a fixed 100 ms
    /// before librdkafka asks where it begins (it treats "no offset" as an error to back off
    /// from: `rdkafka_offset.c`), which delays a new group's first batch. Any failure leaves
    /// the list as it came: librdkafka then does it its own way.
    fn start_positions(&self, consumer: &BaseConsumer<Self>, assigned: &mut TopicPartitionList) {
        let Some(reset) = self.reset else { return };
        let committed = match consumer.committed_offsets(assigned.clone(), COMMITTED_WAIT) {
            Ok(committed) => committed,
            Err(e) => return tracing::debug!("committed offsets of the assigned partitions: {e}"),
        };
        for e in committed.elements() {
            let start = match e.offset() {
                Offset::Offset(n) => Offset::Offset(n),
                Offset::Invalid => reset,
                _ => continue,
            };
            if let Err(e) = assigned.set_partition_offset(e.topic(), e.partition(), start) {
                tracing::debug!("start of an assigned partition: {e}");
            }
        }
    }
}

/// How long an assignment waits for the group's committed offsets (then librdkafka looks them
/// up itself).
const COMMITTED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Rebalanced {
    /// Partitions revoked (whatever came after).
    pub revoked: BTreeSet<i32>,
    /// An assignment happened.
    pub assigned: bool,
}

impl RebalanceWatch {
    pub fn take(&self) -> Rebalanced {
        self.rebalanced.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }
}

impl ClientContext for RebalanceWatch {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.events.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let lag = statistics
            .topics
            .get(&self.topic)
            .map(|topic| {
                topic
                    .partitions
                    .values()
                    // Partition -1 is librdkafka's own.
                    .filter(|p| p.partition >= 0 && p.desired)
                    .filter_map(|p| Some((p.partition, lag(p.consumer_lag, p.lo_offset, p.hi_offset)?)))
                    .collect()
            })
            .unwrap_or_default();
        self.metrics.set_lag(lag);
    }
}

/// A partition's lag from librdkafka's figures. Its own `consumer_lag` is -1 until this group has
/// read or committed something there: then every retained message waits (none, for a partition
/// that is empty: 0, not "unknown"). `None` while the partition's offsets are not known yet.
fn lag(consumer_lag: i64, low: i64, high: i64) -> Option<i64> {
    if consumer_lag >= 0 {
        Some(consumer_lag)
    } else if low >= 0 && high >= low {
        Some(high - low)
    } else {
        None
    }
}

impl ConsumerContext for RebalanceWatch {
    /// rdkafka's own, with [`RebalanceWatch::start_positions`] before an assignment.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_positions(consumer, partitions);
                let done = match cooperative {
                    true => consumer.incremental_assign(partitions),
                    false => consumer.assign(partitions),
                };
                self.post_rebalance(consumer, &Rebalance::Assign(partitions));
                done
            }
            other => {
                let rebalance = match other {
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(partitions),
                    error => {
                        let code = RDKafkaErrorCode::from(error);
                        tracing::error!("Kafka rebalance failed: {code}");
                        Rebalance::Error(KafkaError::Rebalance(code))
                    }
                };
                let done = match cooperative {
                    true => consumer.incremental_unassign(partitions),
                    false => consumer.unassign(),
                };
                self.post_rebalance(consumer, &rebalance);
                done
            }
        };
        if let Err(e) = done {
            tracing::error!("Kafka rebalance: {e}");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Ok(mut r) = self.rebalanced.lock() {
            match rebalance {
                Rebalance::Revoke(list) => r.revoked.extend(list.elements().iter().map(|e| e.partition())),
                Rebalance::Assign(_) => r.assigned = true,
                Rebalance::Error(_) => {}
            }
        }
    }
}

pub type WatchedConsumer = StreamConsumer<RebalanceWatch>;

/// Moves `partitions` back to their committed offsets (the beginning when none), so that the
/// messages dropped for them are read again.
pub fn rewind_to_committed(consumer: &WatchedConsumer, topic: &str, partitions: &[i32]) {
    if partitions.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(topic, p);
    }
    let timeout = std::time::Duration::from_secs(10);
    let committed = tokio::task::block_in_place(|| consumer.committed_offsets(list, timeout));
    for &p in partitions {
        let offset = committed
            .as_ref()
            .ok()
            .and_then(|c| c.find_partition(topic, p).map(|e| e.offset()))
            .filter(|o| matches!(o, Offset::Offset(_)))
            .unwrap_or(Offset::Beginning);
        if let Err(e) = consumer.seek(topic, p, offset, timeout) {
            tracing::warn!(partition = p, "cannot rewind to the committed offset ({e}); its messages come back with the next rebalance or restart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lag;

    #[test]
    fn lag_of_a_partition_the_group_never_read() {
        assert_eq!(lag(7, 0, 20), Some(7), "librdkafka's figure when it has one");
        assert_eq!(lag(-1, 0, 0), Some(0), "an empty partition lags by nothing");
        assert_eq!(lag(-1, 5, 12), Some(7), "nothing read yet: every retained message waits");
        assert_eq!(lag(-1, -1, -1), None, "offsets not known yet");
    }
}
