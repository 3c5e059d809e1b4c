//! statmsg-track, the sync tracker: records of every site in, sync runs, site health, hierarchy
//! lag and alerts out. Pure (no I/O, no clock): the caller passes `now`, so that `statmsg
//! analyze` can replay history and tests can fix time.
//!
//! Each site has its own state machine ([`SiteState`]); records of one site must come in the
//! order they were written, records of different sites may interleave in any order. The
//! hierarchy (parent and children) is learnt from the records themselves, within each
//! hierarchy name the collectors were given.
//!
//! # Layout
//!
//! - This file: [`Tracker`] (every site by hierarchy, the hierarchy's lag and propagation) and
//!   its thresholds, [`TrackerConfig`].
//! - `site`: one site's state machine ([`SiteState`]), serializable so that the consumer can
//!   persist it and continue after a restart or a rebalance.
//! - `run`: one sync run ([`SyncRun`]): trigger, phases, outcome, failure, content version.
//! - `alert`: the alerts (`stalled`, `failed`, `missing_success`, `slow`, `child_lag`, and
//!   `silent` from the collectors' heartbeats) with when each began and where to look.
//! - [`points`]: the tracker's InfluxDB measurements (`sync_run`, `site_sync_state`,
//!   `version_propagation`) as line protocol.
//!
//! # What it must never depend on
//!
//! Only `statmsg-schema` (the record model and line-protocol encoding), `chrono` and `serde`.
//! It reads parsed records, never bytes: `statmsg-parse` is a dev-dependency for its tests, not
//! a dependency. No I/O, no async, no clock: never tokio, rdkafka, reqwest or hyper, nor
//! any shell crate (`statmsg`, `statmsg-plumbing`, `statmsg-collect`, `statmsg-consume`,
//! `statmsg-sim`).

mod alert;
pub mod points;
mod run;
mod site;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use statmsg_schema::{CollectorHeartbeat, Record};

pub use alert::{child_lag_alert, human, lag, site_alerts, Alert, AlertKind, Lag};
pub use run::{Failure, Outcome, PhaseSpan, RunProgress, RunTrigger, SyncRun};
use site::median;
pub use site::{CollectorSeen, Position, SiteState, VERSION_HISTORY};

/// Thresholds of the alerts; defaults in [`TrackerConfig::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// `stalled` after at least this long (default 2 h) ...
    pub stall_after: Duration,
    /// ... and more than this many times the site's median duration (default 3).
    pub stall_factor: f64,
    /// `slow`: a successful run longer than this many times the median (default 3) ...
    pub slow_factor: f64,
    /// ... and longer than this (default 10 min: a 40 s run is not slow because the median is 10 s).
    pub slow_min: Duration,
    /// Runs needed before the median means anything (default 5).
    pub min_runs_for_median: usize,
    /// `missing_success` after this long without a success (default 26 h).
    pub expected_interval: Duration,
    /// Per `hierarchy` or `hierarchy/site` (the more specific wins).
    pub expected_interval_overrides: BTreeMap<String, Duration>,
    /// `child_lag` after a child has been behind its parent this long (default 2 h).
    pub child_lag_grace: Duration,
    /// `silent` after the site's collector sent no heartbeat for this long (default 10 min).
    pub silent_after: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            stall_after: Duration::hours(2),
            stall_factor: 3.0,
            slow_factor: 3.0,
            slow_min: Duration::minutes(10),
            min_runs_for_median: 5,
            expected_interval: Duration::hours(26),
            expected_interval_overrides: BTreeMap::new(),
            child_lag_grace: Duration::hours(2),
            silent_after: Duration::minutes(10),
        }
    }
}

impl TrackerConfig {
    pub fn expected_interval_for(&self, hierarchy: &str, site: &str) -> Duration {
        let overrides = &self.expected_interval_overrides;
        overrides
            .get(&format!("{hierarchy}/{site}"))
            .or_else(|| overrides.get(hierarchy))
            .copied()
            .unwrap_or(self.expected_interval)
    }
}

/// (hierarchy, site)
pub type SiteKey = (String, String);

/// All sites' state machines.
#[derive(Debug, Default)]
pub struct Tracker {
    config: TrackerConfig,
    /// By hierarchy, then site: looked up with borrowed names (no allocation per record).
    sites: BTreeMap<String, BTreeMap<String, SiteState>>,
    /// Runs over for good, not yet taken.
    ended: Vec<SyncRun>,
    /// Sites whose current run changed since the last [`Tracker::take_runs`], by hierarchy.
    changed: BTreeMap<String, BTreeSet<String>>,
}

/// One site's health at a moment: what `statmsg analyze` prints and `site_sync_state` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteView {
    pub hierarchy: String,
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Outcome of the latest run (`running` while one runs), `unknown` before any.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_age_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_duration_s: Option<f64>,
    /// Seconds the current run has been running (0 when none runs).
    pub running_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_version: Option<u64>,
    /// Versions behind the parent (0 when level or without parent).
    pub version_lag: u64,
    /// Seconds behind the parent (since it reached the first version this site lacks).
    pub lag_s: f64,
    pub alerts: Vec<AlertKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record: Option<DateTime<Utc>>,
    /// Seconds since the site's collector last sent a heartbeat (none: it never did, as offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_age_s: Option<f64>,
}

/// When a child reached a version of its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Propagation {
    pub hierarchy: String,
    pub parent: String,
    pub child: String,
    pub version: u64,
    pub parent_reached: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_reached: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<f64>,
}

/// How a child followed its parent's content versions (those since the child's first record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropagationSummary {
    pub parent: String,
    /// Parent versions since the child's records begin, and how many the child reached.
    pub versions: usize,
    pub reached: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_delay_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_s: Option<f64>,
    /// The parent's newest version and when the child reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Propagation>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker { config, ..Tracker::default() }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Applies one record of `site` in `hierarchy`. `position` identifies the record in its
    /// source so that a redelivered record changes nothing.
    pub fn observe(&mut self, hierarchy: &str, site: &str, record: &Record<'_>, position: Option<Position>) {
        // One lookup for a site already known (nearly every record): the consumer calls this for
        // every record it reads.
        let observed = match self.sites.get_mut(hierarchy).and_then(|m| m.get_mut(site)) {
            Some(state) => state.observe(record, position),
            None => {
                let sites = self.sites.entry(hierarchy.to_owned()).or_default();
                let state = sites.entry(site.to_owned()).or_insert_with(|| SiteState::new(hierarchy, site));
                state.observe(record, position)
            }
        };
        if let Some(run) = observed.ended {
            self.ended.push(run);
        }
        if observed.changed && !self.changed.get(hierarchy).is_some_and(|c| c.contains(site)) {
            self.changed.entry(hierarchy.to_owned()).or_default().insert(site.to_owned());
        }
    }

    /// Runs that changed since the last call: those over for good, then the current run of
    /// every site whose run changed (it may change again: writers overwrite by start time).
    pub fn take_runs(&mut self) -> Vec<SyncRun> {
        let mut runs = std::mem::take(&mut self.ended);
        for (hierarchy, sites) in std::mem::take(&mut self.changed) {
            for site in sites {
                if let Some(run) = self.site(&hierarchy, &site).and_then(|s| s.run.clone()) {
                    runs.push(run);
                }
            }
        }
        runs
    }

    /// Every site, by hierarchy then site code.
    pub fn sites(&self) -> impl Iterator<Item = &SiteState> {
        self.sites.values().flat_map(BTreeMap::values)
    }

    pub fn site(&self, hierarchy: &str, site: &str) -> Option<&SiteState> {
        self.sites.get(hierarchy)?.get(site)
    }

    /// Applies a collector's heartbeat to its site (created if new): the latest one by the
    /// collector's clock counts, so that a redelivered or late one changes nothing.
    pub fn heartbeat(&mut self, beat: &CollectorHeartbeat) {
        if self.site(&beat.hierarchy, &beat.site).is_none() {
            let sites = self.sites.entry(beat.hierarchy.clone()).or_default();
            sites.insert(beat.site.clone(), SiteState::new(&beat.hierarchy, &beat.site));
        }
        let Some(state) = self.sites.get_mut(&beat.hierarchy).and_then(|m| m.get_mut(&beat.site)) else {
            return;
        };
        if state.collector.as_ref().is_some_and(|c| c.last_heartbeat > beat.time) {
            return;
        }
        state.collector = Some(CollectorSeen {
            host: beat.host.clone(),
            last_heartbeat: beat.time,
            status: beat.collector.clone(),
        });
    }

    /// Notes the Kafka partition a site's records come from.
    pub fn set_partition(&mut self, hierarchy: &str, site: &str, partition: i32) {
        if let Some(state) = self.sites.get_mut(hierarchy).and_then(|m| m.get_mut(site)) {
            state.partition = Some(partition);
        }
    }

    /// Takes over the sites and runs of another tracker that tracked other sites (analysed
    /// apart). A site both know keeps this tracker's state.
    pub fn absorb(&mut self, other: Tracker) {
        for (hierarchy, sites) in other.sites {
            let mine = self.sites.entry(hierarchy).or_default();
            for (site, state) in sites {
                debug_assert!(!mine.contains_key(&site), "site {site:?} tracked twice");
                mine.entry(site).or_insert(state);
            }
        }
        self.ended.extend(other.ended);
        for (hierarchy, sites) in other.changed {
            self.changed.entry(hierarchy).or_default().extend(sites);
        }
    }

    /// Puts back a site's persisted state (after a restart or a rebalance).
    pub fn restore(&mut self, state: SiteState) {
        self.sites.entry(state.hierarchy.clone()).or_default().insert(state.site.clone(), state);
    }

    /// Forgets a site (its partition went to another consumer).
    pub fn remove(&mut self, hierarchy: &str, site: &str) -> Option<SiteState> {
        self.sites.get_mut(hierarchy)?.remove(site)
    }

    /// The parent of a site: learnt from the site itself, or from a parent naming it a child.
    pub fn parent_of(&self, state: &SiteState) -> Option<&SiteState> {
        let name = state.parent.clone().or_else(|| {
            self.sites
                .get(&state.hierarchy)?
                .values()
                .find(|p| p.children.contains(&state.site))
                .map(|p| p.site.clone())
        })?;
        self.site(&state.hierarchy, &name)
    }

    /// Every alert at `now`, by hierarchy, site and kind.
    pub fn alerts(&self, now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::new();
        for state in self.sites() {
            out.extend(site_alerts(state, &self.config, now));
            if let Some(parent) = self.parent_of(state) {
                let lag = lag(state, parent, now);
                out.extend(child_lag_alert(state, &lag, &self.config, now));
            }
        }
        out.sort_by(|a, b| (&a.hierarchy, &a.site, a.kind).cmp(&(&b.hierarchy, &b.site, b.kind)));
        out
    }

    /// Every site's health at `now`.
    pub fn views(&self, now: DateTime<Utc>) -> Vec<SiteView> {
        let alerts = self.alerts(now);
        self.sites().map(|s| self.view(s, now, &alerts)).collect()
    }

    fn view(&self, state: &SiteState, now: DateTime<Utc>, alerts: &[Alert]) -> SiteView {
        let parent = self.parent_of(state);
        let lag = parent.map(|p| lag(state, p, now));
        let run = state.run.as_ref();
        let status = run.map_or("unknown", |r| r.outcome.as_str()).to_owned();
        let last_duration = state
            .last_finished
            .as_ref()
            .and_then(|(r, _)| r.duration_s)
            .or_else(|| run.and_then(|r| r.duration_s));
        let versions_behind = lag.as_ref().map_or(0, |l| match (l.parent_version, l.version) {
            (Some(p), Some(c)) => p.saturating_sub(c),
            (Some(_), None) => 1,
            _ => 0,
        });
        let mut children: Vec<String> = state.children.iter().cloned().collect();
        for other in self.sites() {
            if other.hierarchy == state.hierarchy
                && other.parent.as_deref() == Some(&state.site)
                && !children.contains(&other.site)
            {
                children.push(other.site.clone());
            }
        }
        children.sort();
        SiteView {
            hierarchy: state.hierarchy.clone(),
            site: state.site.clone(),
            parent: parent.map(|p| p.site.clone()).or_else(|| state.parent.clone()),
            children,
            status,
            last_success: state.last_success,
            last_success_age_s: state.last_success.map(|t| (now - t).num_seconds().max(0) as f64),
            last_duration_s: last_duration,
            median_duration_s: state.median_duration(),
            running_s: run.filter(|r| r.outcome == Outcome::Running).map_or(0.0, |r| r.running_seconds(now)),
            content_version: state.version_at(now).or(state.content_version),
            parent_version: lag.as_ref().and_then(|l| l.parent_version),
            version_lag: versions_behind,
            lag_s: lag.as_ref().map_or(0.0, |l| l.seconds(now)),
            alerts: alerts
                .iter()
                .filter(|a| a.hierarchy == state.hierarchy && a.site == state.site)
                .map(|a| a.kind)
                .collect(),
            last_record: state.last_seen,
            last_heartbeat_age_s: state
                .collector
                .as_ref()
                .map(|c| (now - c.last_heartbeat).num_milliseconds().max(0) as f64 / 1000.0),
        }
    }

    /// How `child` followed its parent, when it has one.
    pub fn propagation_summary(&self, child: &SiteState) -> Option<PropagationSummary> {
        let parent = self.parent_of(child)?;
        let since = child.first_seen?;
        let rows: Vec<Propagation> =
            propagation_rows(parent, child).filter(|r| r.parent_reached >= since).collect();
        let delays: Vec<f64> = rows.iter().filter_map(|r| r.delay_s).collect();
        Some(PropagationSummary {
            parent: parent.site.clone(),
            versions: rows.len(),
            reached: delays.len(),
            median_delay_s: median(delays.iter().copied()),
            max_delay_s: delays.iter().copied().reduce(f64::max),
            last: rows.last().cloned(),
        })
    }

    /// The last `n` versions of `child`'s parent, with when the child reached them.
    pub fn recent_propagation(&self, child: &SiteState, n: usize) -> Vec<Propagation> {
        let Some(parent) = self.parent_of(child) else { return Vec::new() };
        let skip = parent.versions.len().saturating_sub(n);
        propagation_rows(parent, child).skip(skip).collect()
    }

    /// The rows of `parent` and `child` that may have changed at or after `since` (all of them
    /// when `None`): versions the parent reached since, and versions the child reached since.
    /// Written for every pair a batch touched, from the time before the batch, they make the
    /// stored rows the same however records were batched.
    pub fn propagation_since(
        &self,
        parent: &SiteState,
        child: &SiteState,
        since: Option<DateTime<Utc>>,
    ) -> Vec<Propagation> {
        propagation_rows(parent, child)
            .filter(|row| match since {
                None => true,
                Some(t) => row.parent_reached >= t || row.child_reached.is_some_and(|c| c >= t),
            })
            .collect()
    }

    /// For each version a parent reached, when each of its children reached it.
    pub fn propagation(&self) -> Vec<Propagation> {
        let mut out = Vec::new();
        for child in self.sites() {
            if let Some(parent) = self.parent_of(child) {
                out.extend(propagation_rows(parent, child));
            }
        }
        out
    }
}

/// For each version `parent` reached, when `child` reached it.
fn propagation_rows<'a>(
    parent: &'a SiteState,
    child: &'a SiteState,
) -> impl Iterator<Item = Propagation> + 'a {
    parent.versions.iter().map(move |&(version, parent_reached)| {
        let child_reached = child.reached_at(version);
        Propagation {
            hierarchy: child.hierarchy.clone(),
            parent: parent.site.clone(),
            child: child.site.clone(),
            version,
            parent_reached,
            child_reached,
            delay_s: child_reached.map(|t| (t - parent_reached).num_milliseconds() as f64 / 1000.0),
        }
    })
}

#[cfg(test)]
mod tests;
