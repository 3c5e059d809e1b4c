//! The sync tracker inside the consumer: which sites this consumer owns (the sites of its
//! partitions, as the consumer group gives them: [`crate::group`]), restoring their state from
//! the state topic when partitions come, and the periodic write of every owned site's health
//! (`site_sync_state`, `site_alert`, `collector_status`, `version_propagation`).

use std::collections::BTreeSet;

use rdkafka::consumer::Consumer;

use super::batch::Gathered;
use super::group::{rewind_to_committed, Rebalanced, WatchedConsumer};
use super::influx::{InfluxClient, WriteError};
use super::propagation::PropagationMemo;
use super::sink::FIRST_RETRY_WAIT;
use super::state::{state_key, StateTopic};
use crate::settings::ConsumeSettings;
use statmsg_plumbing::retry::Retry;
use statmsg_plumbing::shutdown::{unless_stopped, Shutdown, Stopped};
use statmsg_track::points::{write_collector_status, write_propagation, write_site_alert, write_site_state};
use statmsg_track::{SiteKey, Tracker, TrackerConfig};

/// The tracker, its saved state, and which sites this consumer owns.
pub(super) struct Tracking {
    pub(super) tracker: Tracker,
    pub(super) states: StateTopic,
    /// Partitions of the records topic assigned at the last look.
    pub(super) assigned: BTreeSet<i32>,
    /// Sites whose state here is authoritative (restored when their partition came, or fed since).
    owned: BTreeSet<SiteKey>,
}

impl Tracking {
    pub(super) fn new(config: TrackerConfig, states: StateTopic) -> Self {
        Tracking { tracker: Tracker::new(config), states, assigned: BTreeSet::new(), owned: BTreeSet::new() }
    }

    /// Reads the whole state topic and restores every site.
    pub(super) async fn restore_all(&mut self, shutdown: &Shutdown) -> Result<(), Stopped> {
        self.catch_up(shutdown).await?;
        for state in self.states.states() {
            self.tracker.restore(state.clone());
        }
        Ok(())
    }

    /// Reads the state topic to its end, retrying while Kafka is unavailable; through a broker's
    /// failover without a growing pause.
    async fn catch_up(&mut self, shutdown: &Shutdown) -> Result<(), Stopped> {
        let mut retry = Retry::new(shutdown, "tracker state topic", FIRST_RETRY_WAIT);
        while let Err(e) = unless_stopped(shutdown, self.states.catch_up()).await? {
            retry.after_kafka(e).await?;
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
            .states
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

    /// Writes every owned site's health: a `site_sync_state` point for every site of this
    /// consumer's partitions, with its alerts and collectors (one try: the next write comes
    /// soon), after refreshing the sites other consumers own (parents
    /// of ours, for the lag). `Ok(true)` when written.
    ///
    /// While `catching_up` (a backlog not yet read to its end) the sites' alerts are judged at
    /// the wall clock on a history that stops earlier: no `site_alert` points then, so that
    /// alert rules never page on what the rest of the backlog resolves.
    pub(super) async fn write_health(
        &mut self,
        influx: &InfluxClient,
        consume: &ConsumeSettings,
        memo: &mut PropagationMemo,
        catching_up: bool,
        shutdown: &Shutdown,
    ) -> Result<bool, Stopped> {
        // What other consumers saved lately, as far as already fetched: this write never
        // waits for the state topic (the lag behind a foreign parent may be a fetch behind).
        if let Err(e) = unless_stopped(shutdown, self.states.refresh()).await? {
            tracing::warn!("tracker state topic: {e}; the next health write reads it again");
        }
        let foreign: Vec<_> = self
            .states
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
        let period = consume.health_interval.as_secs().max(1) as i64;
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
                influx.write_recent(&recent).await
            }
        };
        let write_long = async {
            if body.is_empty() {
                Ok(())
            } else {
                influx.write(&body).await
            }
        };
        let (recent, long) =
            unless_stopped(shutdown, async { tokio::join!(write_recent, write_long) }).await?;
        if long.is_ok() {
            memo.written(&rows);
        }
        match recent.and(long) {
            Ok(()) => {
                tracing::debug!(sites, propagation = rows.len(), "site health written");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(sites, "site health not written ({e}); the next write follows");
                if matches!(e, WriteError::PolicyMissing(_) | WriteError::DatabaseMissing(_)) {
                    if let Err(e) = unless_stopped(shutdown, super::retention::setup(influx)).await? {
                        tracing::warn!("{e}");
                    }
                }
                Ok(false)
            }
        }
    }
}
