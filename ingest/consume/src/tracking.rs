//! The sync tracker inside the consumer: which sites this consumer owns (the sites of its
//! partitions), restoring their state from the state topic when partitions come, and the
//! heartbeat of `site_sync_state` points.
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

use super::batch::Gathered;
use super::influx::{InfluxClient, WriteError};
use super::metrics::ConsumeMetrics;
use super::propagation::PropagationMemo;
use super::state::{state_key, StateStore};
use crate::settings::ConsumeSettings;
use statmsg_plumbing::kafka::ClientEvents;
use statmsg_plumbing::retry::Retry;
use statmsg_plumbing::shutdown::{unless_stopped, Shutdown, Stopped};

/// First pause after the state topic could not be read, then doubled.
const FIRST_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
use statmsg_track::points::{write_collector_status, write_propagation, write_site_alert, write_site_state};
use statmsg_track::{SiteKey, Tracker, TrackerConfig};

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

/// The tracker, its saved state, and which sites this consumer owns.
pub(super) struct Tracking {
    pub(super) tracker: Tracker,
    pub(super) store: StateStore,
    /// Partitions of the records topic assigned at the last look.
    pub(super) assigned: BTreeSet<i32>,
    /// Sites whose state here is authoritative (restored when their partition came, or fed since).
    owned: BTreeSet<SiteKey>,
}

impl Tracking {
    pub(super) fn new(config: TrackerConfig, store: StateStore) -> Self {
        Tracking { tracker: Tracker::new(config), store, assigned: BTreeSet::new(), owned: BTreeSet::new() }
    }

    /// Reads the whole state topic and restores every site.
    pub(super) async fn restore_all(&mut self, shutdown: &Shutdown) -> Result<(), Stopped> {
        self.catch_up(shutdown).await?;
        for state in self.store.states() {
            self.tracker.restore(state.clone());
        }
        Ok(())
    }

    /// Reads the state topic to its end, retrying while Kafka is unavailable.
    async fn catch_up(&mut self, shutdown: &Shutdown) -> Result<(), Stopped> {
        let mut retry = Retry::new(shutdown, "tracker state topic", FIRST_RETRY_WAIT);
        while let Err(e) = unless_stopped(shutdown, self.store.catch_up()).await? {
            retry.after(e).await?;
        }
        Ok(())
    }

    /// Before applying `messages`: drops those of partitions revoked while they were gathered
    /// (re-reading from the committed offset a partition that came back), and when partitions
    /// came or went, or a site arrives that this consumer did not own, reads the state topic
    /// and restores those sites from it (the previous owner saved them before committing).
    pub(super) async fn follow_assignment(
        &mut self,
        consumer: &WatchedConsumer,
        topic: &str,
        rebalanced: Rebalanced,
        messages: &mut Gathered,
        shutdown: &Shutdown,
    ) -> Result<(), Stopped> {
        let assigned: BTreeSet<i32> = consumer
            .assignment()
            .map(|list| list.elements_for_topic(topic).iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        if !rebalanced.revoked.is_empty() {
            let before = messages.len();
            messages.retain(|m| !rebalanced.revoked.contains(&m.origin.partition));
            let back: Vec<i32> = rebalanced.revoked.intersection(&assigned).copied().collect();
            rewind_to_committed(consumer, topic, &back);
            let tracker = &self.tracker;
            self.owned.retain(|(h, s)| {
                tracker
                    .site(h, s)
                    .and_then(|st| st.partition)
                    .map_or(true, |p| !rebalanced.revoked.contains(&p))
            });
            tracing::info!(revoked = ?rebalanced.revoked, came_back = ?back, dropped = before - messages.len(), "partitions revoked");
        }
        // Keys come in runs (a partition holds a few sites): each distinct key is looked at once.
        let mut keys: BTreeSet<&[u8]> = BTreeSet::new();
        let mut last: Option<&[u8]> = None;
        for (_, key, _) in messages.iter() {
            if key.is_some() && key != last {
                keys.extend(key);
                last = key;
            }
        }
        let arriving: BTreeSet<SiteKey> = keys
            .into_iter()
            .filter_map(|k| std::str::from_utf8(k).ok())
            .filter_map(|k| k.rsplit_once('/'))
            .map(|(h, s)| (h.to_owned(), s.to_owned()))
            .filter(|key| !self.owned.contains(key))
            .collect();
        let changed = assigned != self.assigned || rebalanced.assigned || !rebalanced.revoked.is_empty();
        if !changed && arriving.is_empty() {
            return Ok(());
        }
        if changed {
            // Another consumer may have saved newer states of these partitions' sites.
            let reading = std::time::Instant::now();
            self.catch_up(shutdown).await?;
            tracing::debug!(took = ?reading.elapsed(), "tracker state topic read to its end");
        }
        // Without a rebalance, a site new to this consumer arrives on a partition it has held
        // since the last reading to the end: only this consumer can have saved a newer state.
        // New partitions, and revoked ones that came back: their sites' saved state is newer.
        let gained: BTreeSet<i32> = assigned
            .iter()
            .filter(|p| !self.assigned.contains(p) || rebalanced.revoked.contains(p))
            .copied()
            .collect();
        let restore: Vec<_> = self
            .store
            .states()
            .filter(|s| {
                let key = (s.hierarchy.clone(), s.site.clone());
                !self.owned.contains(&key)
                    && (s.partition.is_some_and(|p| gained.contains(&p)) || arriving.contains(&key))
            })
            .cloned()
            .collect();
        if !gained.is_empty() || !restore.is_empty() {
            tracing::info!(partitions = ?gained, sites = restore.len(), "assignment changed: restored the tracker state of the sites");
        }
        for state in restore {
            self.owned.insert((state.hierarchy.clone(), state.site.clone()));
            self.tracker.restore(state);
        }
        self.owned.extend(arriving);
        let tracker = &self.tracker;
        self.owned.retain(|(h, s)| {
            tracker.site(h, s).and_then(|st| st.partition).map_or(true, |p| assigned.contains(&p))
        });
        self.assigned = assigned;
        Ok(())
    }

    /// Writes a `site_sync_state` point for every site of this consumer's partitions (one try:
    /// the next heartbeat comes soon), after refreshing the sites other consumers own (parents
    /// of ours, for the lag). `Ok(true)` when written.
    ///
    /// While `catching_up` (a backlog not yet read to its end) the sites' alerts are judged at
    /// the wall clock on a history that stops earlier: no `site_alert` points then, so that
    /// alert rules never page on what the rest of the backlog resolves.
    pub(super) async fn heartbeat(
        &mut self,
        writer: &InfluxClient,
        consume: &ConsumeSettings,
        memo: &mut PropagationMemo,
        catching_up: bool,
        shutdown: &Shutdown,
    ) -> Result<bool, Stopped> {
        // What other consumers saved lately, as far as already fetched: the heartbeat never
        // waits for the state topic (the lag behind a foreign parent may be a fetch behind).
        if let Err(e) = unless_stopped(shutdown, self.store.refresh()).await? {
            tracing::warn!("tracker state topic: {e}; the next heartbeat reads it again");
        }
        let foreign: Vec<_> = self
            .store
            .states()
            .filter(|s| !self.owned.contains(&(s.hierarchy.clone(), s.site.clone())))
            .cloned()
            .collect();
        for state in foreign {
            if !state.partition.is_some_and(|p| self.assigned.contains(&p)) {
                self.tracker.restore(state);
            }
        }
        let now = chrono::Utc::now();
        let period = consume.heartbeat.as_secs().max(1) as i64;
        let at = chrono::DateTime::from_timestamp(now.timestamp() / period * period, 0).unwrap_or(now);
        // The per-minute points go to the short retention policy, the rest to the long one.
        let (mut body, mut recent) = (String::new(), String::new());
        let mut sites = 0;
        for view in self.tracker.views(now) {
            let state = self.tracker.site(&view.hierarchy, &view.site);
            if !state.and_then(|s| s.partition).is_some_and(|p| self.assigned.contains(&p)) {
                continue;
            }
            let key = || state_key(&view.hierarchy, &view.site);
            match write_site_state(&view, at, &mut recent) {
                Ok(()) => sites += 1,
                Err(e) => tracing::warn!(site = %key(), "site_sync_state: {e}"),
            }
            if let Some(seen) = state.and_then(|s| s.collector.as_ref()) {
                if let Err(e) =
                    write_collector_status(&view.hierarchy, &view.site, seen, now, at, &mut recent)
                {
                    tracing::warn!(site = %key(), "collector_status: {e}");
                }
            }
        }
        // Every active alert of an owned site, with its cause as a label for alert rules.
        let alerts = if catching_up { Vec::new() } else { self.tracker.alerts(now) };
        for alert in alerts {
            let state = self.tracker.site(&alert.hierarchy, &alert.site);
            if !state.and_then(|s| s.partition).is_some_and(|p| self.assigned.contains(&p)) {
                continue;
            }
            let parent = state.and_then(|s| self.tracker.parent_of(s)).map(|p| p.site.as_str());
            if let Err(e) = write_site_alert(&alert, parent, at, &mut recent) {
                tracing::warn!(site = %state_key(&alert.hierarchy, &alert.site), "site_alert: {e}");
            }
        }
        // Rows of owned children that changed without a record of theirs (their parent's new
        // versions, learnt from the state topic).
        let owned = self.tracker.sites().filter(|s| s.partition.is_some_and(|p| self.assigned.contains(&p)));
        let rows = memo.changed(&self.tracker, owned);
        for row in &rows {
            if let Err(e) = write_propagation(row, &mut body) {
                tracing::warn!(child = %row.child, "version_propagation: {e}");
            }
        }
        if sites == 0 && rows.is_empty() {
            return Ok(true);
        }
        let write_recent = async {
            if recent.is_empty() {
                Ok(())
            } else {
                writer.write_recent(&recent).await
            }
        };
        let write_long = async {
            if body.is_empty() {
                Ok(())
            } else {
                writer.write(&body).await
            }
        };
        let (recent, long) =
            unless_stopped(shutdown, async { tokio::join!(write_recent, write_long) }).await?;
        if long.is_ok() {
            memo.written(&rows);
        }
        match recent.and(long) {
            Ok(()) => {
                tracing::debug!(sites, propagation = rows.len(), "heartbeat written");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(sites, "heartbeat not written ({e}); the next one follows");
                if matches!(e, WriteError::PolicyMissing(_) | WriteError::DatabaseMissing(_)) {
                    if let Err(e) = unless_stopped(shutdown, super::retention::setup(writer)).await? {
                        tracing::warn!("{e}");
                    }
                }
                Ok(false)
            }
        }
    }
}

/// Moves `partitions` back to their committed offsets (the beginning when none), so that the
/// messages dropped for them are read again.
fn rewind_to_committed(consumer: &WatchedConsumer, topic: &str, partitions: &[i32]) {
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
