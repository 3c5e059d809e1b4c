//! The state machine of one site: records in, sync runs out. Pure; serializable, so that the
//! consumer can persist it and pick it up again after a restart or a rebalance.
//!
//! A run starts at `Starting Sync` (or 6701 when that line is missing) with the trigger the
//! records before it announced (wake-up reason, request file, `Performing sync on ...`). It ends
//! at its outcome (6702 / `Sync succeeded`, 6703 / `Sync failed`, `Aborting sync`), but keeps
//! the records that follow the outcome (items updated, `Sync time`, replicas, child
//! notifications) until the next wake-up. A run still running when the next one starts is
//! `abandoned`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statmsg_schema::event::{Phase, Trigger, Wakeup};
use statmsg_schema::{CollectorStatus, Event, Record};

use super::run::{
    hresult_hex, hresult_in, one_line, Failure, Outcome, PhaseSpan, RunProgress, RunTrigger, SyncRun,
};

/// Successful run durations kept for the median.
pub const DURATION_HISTORY: usize = 30;
/// Content versions (with the time the site reached them) kept for propagation and lag.
pub const VERSION_HISTORY: usize = 256;
/// A 6701 this close after `Starting Sync` belongs to the same run.
const START_SLACK_S: i64 = 120;

/// Where a record came from, to drop the duplicates at-least-once delivery brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Identifies the source file (a hash of its path).
    pub source: u64,
    pub offset: u64,
}

/// The trigger announced by the records before `Starting Sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    trigger: Option<RunTrigger>,
    full: bool,
    parent: Option<String>,
    /// When the wake-up or request came (where a run whose start line is missing began).
    #[serde(default)]
    since: Option<DateTime<Utc>>,
}

/// Everything the tracker knows about one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    pub hierarchy: String,
    pub site: String,
    /// The current run, or the last one while it may still get its trailing records.
    pub run: Option<SyncRun>,
    /// The current run takes trailing records (it ended, and no wake-up came since).
    trailing: bool,
    pending: Pending,
    /// Durations of the last successful runs, oldest first.
    pub durations: VecDeque<f64>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last run that ended, with the median of the successes before it (for `slow`).
    pub last_finished: Option<(SyncRun, Option<f64>)>,
    /// Start of the current streak of failures (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    /// Latest content version and the versions reached by successful runs, oldest first.
    pub content_version: Option<u64>,
    pub versions: VecDeque<(u64, DateTime<Utc>)>,
    pub parent: Option<String>,
    pub children: BTreeSet<String>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Per source, the last position applied (duplicates are at or before it).
    watermarks: BTreeMap<u64, (DateTime<Utc>, u64)>,
    /// The current run has had its 6701 (a second one starts a new run).
    #[serde(default)]
    status_started: bool,
    /// The latest failed run (the `failed` alert's detail while failures last).
    #[serde(default)]
    pub last_failure: Option<SyncRun>,
    /// The last WSUS clean-up after a sync (`Cleanup processed N total updates and declined M`):
    /// ConfigMgr runs it only after a successful sync, so failing streaks stop it too.
    #[serde(default)]
    pub last_cleanup: Option<DateTime<Utc>>,
    /// Records skipped as duplicates.
    pub duplicates: u64,
    /// The Kafka partition of the site's records (the consumer that owns it reports it).
    #[serde(default)]
    pub partition: Option<i32>,
    /// The site's collector as its latest heartbeat described it (none before the first, and
    /// never offline).
    #[serde(default)]
    pub collector: Option<CollectorSeen>,
}

/// The latest heartbeat of a site's collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorSeen {
    pub host: String,
    pub last_heartbeat: DateTime<Utc>,
    pub status: CollectorStatus,
}

impl SiteState {
    pub fn new(hierarchy: &str, site: &str) -> Self {
        SiteState {
            hierarchy: hierarchy.to_owned(),
            site: site.to_owned(),
            run: None,
            trailing: false,
            pending: Pending::default(),
            durations: VecDeque::new(),
            last_success: None,
            last_finished: None,
            failing_since: None,
            consecutive_failures: 0,
            content_version: None,
            versions: VecDeque::new(),
            parent: None,
            children: BTreeSet::new(),
            first_seen: None,
            last_seen: None,
            watermarks: BTreeMap::new(),
            status_started: false,
            last_failure: None,
            last_cleanup: None,
            duplicates: 0,
            partition: None,
            collector: None,
        }
    }

    /// Median duration of the last successful runs, in seconds.
    pub fn median_duration(&self) -> Option<f64> {
        median(self.durations.iter().copied())
    }

    /// Applies one record. Returns a run that left the tracker's hands (ended and superseded)
    /// and whether the current run changed; records without time or meaning change nothing.
    pub fn observe(&mut self, record: &Record<'_>, at: Option<Position>) -> Observed {
        let mut observed = Observed::default();
        let Some(time) = record.time else { return observed };
        if let Some(position) = at {
            if !self.advance_watermark(position, time) {
                self.duplicates += 1;
                return observed;
            }
        }
        self.first_seen = Some(self.first_seen.map_or(time, |t| t.min(time)));
        self.last_seen = Some(self.last_seen.map_or(time, |t| t.max(time)));
        let status = record.statmsg.as_ref().filter(|m| m.comp == "SMS_WSUS_SYNC_MANAGER");
        if let Some(m) = status {
            match m.id {
                6701 => observed.merge(self.start(time, true)),
                6702 => observed.merge(self.succeed(time)),
                6703 => {
                    let failure = Failure {
                        message: one_line(&m.istr[1]),
                        source: (!m.istr[0].is_empty()).then(|| m.istr[0].to_string()),
                        hresult: m.le.map(hresult_hex).or_else(|| hresult_in(&m.istr[1])),
                    };
                    observed.merge(self.fail(time, failure));
                }
                6704 => self.phase_started(time, Phase::WsusServer, None),
                6705 => self.phase_started(time, Phase::SiteDatabase, None),
                6706 => self.phase_started(time, Phase::Replicas, None),
                _ => {}
            }
            observed.changed |= self.touch(time);
            return observed;
        }
        let Some(event) = &record.event else { return observed };
        match event {
            Event::SyncWakeup { reason } => {
                self.trailing = false;
                self.pending = Pending { since: Some(time), ..Pending::default() };
                self.pending.trigger = match reason {
                    Wakeup::Schedule => Some(RunTrigger::Schedule),
                    Wakeup::InboxDrop | Wakeup::Polling => None,
                };
                return observed;
            }
            Event::SyncRequestFile { trigger, parent, full, .. } => {
                self.trailing = false;
                self.pending.since.get_or_insert(time);
                self.pending.trigger = Some(RunTrigger::from(*trigger));
                self.pending.full |= full.unwrap_or(false);
                if let Some(parent) = parent {
                    self.set_parent(parent);
                    self.pending.parent = Some(parent.to_string());
                }
                return observed;
            }
            Event::SyncNowRequested | Event::SyncFileDropped { .. } => {
                // The console's "Synchronize now" on the way (SMSProv, SMSDBMON).
                if let Event::SyncFileDropped { full: true, .. } = event {
                    self.pending.full = true;
                }
                self.pending.trigger.get_or_insert(RunTrigger::Manual);
                return observed;
            }
            Event::SyncStarting => observed.merge(self.start(time, false)),
            Event::SyncRequested { trigger } => {
                if let Some(run) = self.running_mut() {
                    run.trigger = RunTrigger::from(*trigger);
                    if *trigger == Trigger::Retry {
                        run.retries = run.retries.max(1);
                    }
                } else {
                    self.pending.trigger = Some(RunTrigger::from(*trigger));
                }
            }
            Event::PhaseStarted { phase, server } => {
                self.phase_started(time, *phase, server.as_deref());
            }
            Event::PhaseDone { phase, server } => {
                if let Some(run) = self.run_mut() {
                    let open = run.phases.iter_mut().rev().find(|p| p.phase == *phase && p.end.is_none());
                    match open {
                        Some(p) => {
                            p.end = Some(time);
                            p.server.get_or_insert_with(|| server.to_string());
                        }
                        None => run.phases.push(PhaseSpan {
                            phase: *phase,
                            server: Some(server.to_string()),
                            start: time,
                            end: Some(time),
                        }),
                    }
                }
            }
            Event::Progress { stage, items, processed, total, percent, .. } => {
                if let Some(run) = self.running_mut() {
                    run.progress = Some(RunProgress {
                        stage: *stage,
                        items: items.to_string(),
                        processed: *processed,
                        total: *total,
                        percent: *percent,
                        at: time,
                    });
                }
            }
            Event::UpdateSynchronized { .. } => {
                if let Some(run) = self.running_mut() {
                    run.updates_synchronized += 1;
                }
            }
            Event::UpdateFailed { .. } => {
                if let Some(run) = self.running_mut() {
                    run.updates_failed += 1;
                }
            }
            Event::ContentVersionSet { site, version, .. } => {
                if site.eq_ignore_ascii_case(&self.site) {
                    self.set_version(time, *version);
                }
            }
            Event::ItemsUpdated { items, version } => {
                if let Some(run) = self.run_mut() {
                    run.items_updated = Some(*items);
                }
                self.set_version(time, *version);
            }
            Event::SyncedWithParent { parent, version } => {
                self.set_parent(parent);
                if let Some(run) = self.run_mut() {
                    run.parent = Some(parent.to_string());
                }
                self.set_version(time, *version);
            }
            Event::SyncSucceeded { .. } => observed.merge(self.succeed(time)),
            Event::SyncTime { seconds } => {
                if let Some(run) = self.run_mut() {
                    run.logged_duration_s = Some(*seconds);
                    run.update_duration();
                    if run.outcome == Outcome::Succeeded {
                        self.record_duration_fix(*seconds as f64);
                    }
                }
            }
            Event::ChildrenNotified { sites } => {
                for child in sites.iter() {
                    self.children.insert(child.to_owned());
                }
                if let Some(run) = self.run_mut() {
                    run.children_notified = sites.iter().map(str::to_owned).collect();
                }
            }
            Event::NotificationReplicated { sites, .. } => {
                for child in sites.iter() {
                    self.children.insert(child.to_owned());
                }
            }
            Event::SyncFailed { message, source } => {
                let failure = Failure {
                    message: one_line(message),
                    source: source.as_ref().map(|s| one_line(s)),
                    hresult: hresult_in(message),
                };
                observed.merge(self.fail(time, failure));
            }
            Event::RetryScheduled { minutes } => {
                if let Some(run) = self.run_mut() {
                    run.retry_in_minutes = Some(*minutes);
                }
                self.pending.trigger = Some(RunTrigger::Retry);
            }
            Event::CleanupDone { .. } => self.last_cleanup = Some(time),
            Event::SyncAborted => {
                let failure = Failure {
                    message: "Too many consecutive failures. Aborting sync.".into(),
                    ..Failure::default()
                };
                observed.merge(self.fail(time, failure));
            }
            _ => return observed,
        }
        observed.changed |= self.touch(time);
        observed
    }

    /// Moves the source's watermark forward; false for a record at or before it (a duplicate).
    ///
    /// A source is one file (its identity, not only its path), so the offset alone orders its
    /// records, even when the clock steps back. The time also counts for sources without a file
    /// identity (older collectors): their path restarts at offset 0 after a rollover, with later
    /// times. The mark is the highest time and offset applied; a record at or below both is one
    /// already applied.
    fn advance_watermark(&mut self, at: Position, time: DateTime<Utc>) -> bool {
        let Some(mark) = self.watermarks.get_mut(&at.source) else {
            self.watermarks.insert(at.source, (time, at.offset));
            return true;
        };
        let newer = at.offset > mark.1 || time > mark.0;
        if newer {
            *mark = (mark.0.max(time), at.offset);
        }
        newer
    }

    fn touch(&mut self, time: DateTime<Utc>) -> bool {
        match self.run.as_mut() {
            Some(run) if run.outcome == Outcome::Running || self.trailing => {
                run.last_event = run.last_event.max(time);
                if let Some((finished, _)) = self.last_finished.as_mut().filter(|(f, _)| f.start == run.start)
                {
                    // Records after the outcome complete the finished run too.
                    finished.clone_from(run);
                }
                if let Some(failed) = self.last_failure.as_mut().filter(|f| f.start == run.start) {
                    failed.clone_from(run);
                }
                true
            }
            _ => false,
        }
    }

    fn running_mut(&mut self) -> Option<&mut SyncRun> {
        self.run.as_mut().filter(|r| r.outcome == Outcome::Running)
    }

    /// The run a record after the outcome still belongs to.
    fn run_mut(&mut self) -> Option<&mut SyncRun> {
        let trailing = self.trailing;
        self.run.as_mut().filter(|r| r.outcome == Outcome::Running || trailing)
    }

    fn start(&mut self, time: DateTime<Utc>, from_status: bool) -> Observed {
        let mut observed = Observed::default();
        if let Some(run) = &self.run {
            let running = run.outcome == Outcome::Running;
            // The run's first 6701 belongs to it however late it comes (a slow SCF read); a
            // repeated `Starting Sync` right after the first, before any work, too.
            let same = if from_status {
                running && !self.status_started
            } else {
                running
                    && run.updates_synchronized == 0
                    && run.phases.is_empty()
                    && (time - run.start).num_seconds().abs() <= START_SLACK_S
            };
            if same {
                self.status_started |= from_status;
                return observed;
            }
        }
        if let Some(mut old) = self.run.take() {
            if old.outcome == Outcome::Running {
                old.finish(Outcome::Abandoned, time);
                self.last_finished = Some((old.clone(), self.median_duration()));
            }
            observed.ended = Some(old);
        }
        let pending = std::mem::take(&mut self.pending);
        let mut run =
            SyncRun::new(&self.hierarchy, &self.site, time, pending.trigger.unwrap_or(RunTrigger::Unknown));
        run.full = pending.full;
        run.parent = pending.parent;
        run.content_version_before = self.content_version;
        run.retries = self.consecutive_failures;
        self.run = Some(run);
        self.trailing = false;
        self.status_started = from_status;
        observed.changed = true;
        observed
    }

    /// An outcome with no run to end: the run began before the records read (or its start
    /// line is missing). It starts at the first record read, or at the last wake-up.
    fn start_unseen(&mut self, time: DateTime<Utc>) -> Observed {
        let needed = match &self.run {
            None => true,
            Some(run) => run.outcome != Outcome::Running && !self.trailing,
        };
        if !needed {
            return Observed::default();
        }
        let start = match (&self.run, self.pending.since) {
            (None, _) => self.first_seen.unwrap_or(time),
            (Some(_), Some(since)) => since,
            (Some(_), None) => time,
        };
        let mut observed = self.start(start.min(time), false);
        self.status_started = true;
        if let Some(run) = self.run.as_mut() {
            run.last_event = time;
        }
        observed.changed = true;
        observed
    }

    fn phase_started(&mut self, time: DateTime<Utc>, phase: Phase, server: Option<&str>) {
        let Some(run) = self.run_mut() else { return };
        if let Some(open) = run.phases.last_mut().filter(|p| p.end.is_none()) {
            // 6704 and `Synchronizing WSUS server X ...` announce the same phase.
            if open.phase == phase && (open.server.is_none() || server.is_none()) {
                if open.server.is_none() {
                    open.server = server.map(str::to_owned);
                }
                return;
            }
            open.end = Some(time);
        }
        run.phases.push(PhaseSpan { phase, server: server.map(str::to_owned), start: time, end: None });
    }

    fn succeed(&mut self, time: DateTime<Utc>) -> Observed {
        let started = self.start_unseen(time);
        let Some(run) = self.run.as_mut() else { return started };
        if run.outcome != Outcome::Running {
            return Observed::default(); // the second line of the same outcome
        }
        let before = self.durations.iter().copied();
        let median_before = median(before);
        run.finish(Outcome::Succeeded, time);
        self.trailing = true;
        if let Some(d) = run.duration_s {
            self.durations.push_back(d);
            if self.durations.len() > DURATION_HISTORY {
                self.durations.pop_front();
            }
        }
        self.last_success = Some(self.last_success.map_or(time, |t| t.max(time)));
        self.failing_since = None;
        self.consecutive_failures = 0;
        let finished = run.clone();
        if let Some(v) = self.content_version {
            self.reached(v, time);
        }
        self.last_finished = Some((finished, median_before));
        Observed { ended: started.ended, changed: true }
    }

    /// The logged `Sync time` replaces the duration measured from the records.
    fn record_duration_fix(&mut self, seconds: f64) {
        if let Some(last) = self.durations.back_mut() {
            *last = seconds;
        }
    }

    fn fail(&mut self, time: DateTime<Utc>, failure: Failure) -> Observed {
        let started = self.start_unseen(time);
        let Some(run) = self.run.as_mut() else { return started };
        let first = run.outcome == Outcome::Running;
        if !(first || self.trailing && run.outcome == Outcome::Failed) {
            return Observed::default();
        }
        // `Sync failed: ...` and 6703 describe one failure: keep what each adds.
        let merged = match run.failure.take() {
            Some(old) => Failure {
                message: if old.message.is_empty() { failure.message } else { old.message },
                source: old.source.or(failure.source),
                hresult: old.hresult.or(failure.hresult),
            },
            None => failure,
        };
        run.failure = Some(merged);
        run.finish(Outcome::Failed, time);
        self.trailing = true;
        if first {
            self.failing_since.get_or_insert(time);
            self.consecutive_failures += 1;
        }
        let finished = run.clone();
        self.last_failure = Some(finished.clone());
        self.last_finished = Some((finished, median(self.durations.iter().copied())));
        Observed { ended: started.ended, changed: true }
    }

    fn set_version(&mut self, time: DateTime<Utc>, version: u64) {
        if let Some(run) = self.run_mut() {
            run.content_version = Some(run.content_version.map_or(version, |v| v.max(version)));
            if run.outcome == Outcome::Succeeded {
                // After the outcome (child sites log their parent's version then).
                self.content_version = Some(self.content_version.map_or(version, |v| v.max(version)));
                self.reached(version, time);
                return;
            }
        }
        self.content_version = Some(self.content_version.map_or(version, |v| v.max(version)));
    }

    /// The site reached `version` at `time` (with a successful run).
    fn reached(&mut self, version: u64, time: DateTime<Utc>) {
        if self.versions.back().is_some_and(|&(v, _)| v >= version) {
            return;
        }
        self.versions.push_back((version, time));
        if self.versions.len() > VERSION_HISTORY {
            self.versions.pop_front();
        }
    }

    fn set_parent(&mut self, parent: &str) {
        if !parent.is_empty() && !parent.eq_ignore_ascii_case(&self.site) {
            self.parent = Some(parent.to_owned());
        }
    }

    /// The version the site had at `time` (from the versions its successful runs reached).
    pub fn version_at(&self, time: DateTime<Utc>) -> Option<u64> {
        self.versions.iter().take_while(|(_, t)| *t <= time).map(|(v, _)| *v).last()
    }

    /// When the site first had a version at least `version`.
    pub fn reached_at(&self, version: u64) -> Option<DateTime<Utc>> {
        self.versions.iter().find(|(v, _)| *v >= version).map(|(_, t)| *t)
    }
}

/// What one record did.
#[derive(Debug, Default)]
pub struct Observed {
    /// A run that is over and will not change again.
    pub ended: Option<SyncRun>,
    /// The current run changed.
    pub changed: bool,
}

impl Observed {
    fn merge(&mut self, other: Observed) {
        self.changed |= other.changed;
        if other.ended.is_some() {
            self.ended = other.ended;
        }
    }
}

pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}
