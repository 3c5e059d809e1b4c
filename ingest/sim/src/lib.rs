//! statmsg-sim, behind `statmsg simulate`: realistic WsyncMgr.log files of a whole hierarchy over days, with injected
//! faults, and a truth file saying what happened and which alerts must be active when.
//!
//! The top site syncs on its schedule (and on a console "Synchronize now" on day 1 of every ten,
//! with its SMSProv.log and smsdbmon.log lines) and notifies its children when it succeeds; children
//! (primaries, then their secondaries) sync on that notification, as the seed reference tells.
//! Faults come in a ten-day cycle so that every kind shows in ten days and they do not overlap:
//! day 2 a failure at the top (the retry succeeds), day 3 a lost child notification, day 4 a
//! stall, day 5 a slow run (8x), day 6 a failure at a child, day 7 a run 2.5x slower than usual
//! (under the `slow` alert's 3x) and a manual full sync, day 8 a failure at the top lasting 30
//! hours (retried hourly). Sites rotate through the time zones (daylight saving included: the
//! default start, 2024-03-01, puts the US change of March 10 inside a run) and encodings. The truth's alert checks come from its own oracle ([`truth`]),
//! computed from what was generated, not from parsing the logs.

mod narrative;
pub mod render;
pub mod truth;

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BinaryHeap;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use narrative::{run_lines, Cause, Fate, Line, RunPlan};
use render::{server_line, FileEncoding, RollingWriter, Zone};
use statmsg_parse::synth::Rng;
use statmsg_track::{Outcome, RunTrigger};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub hierarchy: String,
    pub sites: usize,
    pub days: u32,
    pub seed: u64,
    pub start: DateTime<Utc>,
    /// The top site's sync schedule: every `interval`, at `schedule_minute` minutes after
    /// midnight UTC plus up to `schedule_jitter_s` seconds.
    pub interval: Duration,
    pub schedule_minute: u32,
    pub schedule_jitter_s: u32,
    pub roll_bytes: usize,
    /// Keep every rolled file as a history file (else only the last, `.lo_`).
    pub keep_history: bool,
    pub faults: bool,
    /// Mean updates synchronized per top-level run (the volume of a run).
    pub updates: u32,
    /// Catalog growth: per site code (`*`: every site), percent per month by which its run
    /// durations and updates grow (compounded from the start).
    pub growth: BTreeMap<String, f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hierarchy: "contoso".into(),
            sites: 4,
            days: 10,
            seed: 1,
            start: DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            interval: Duration::hours(24),
            schedule_minute: 390,
            schedule_jitter_s: 1200,
            roll_bytes: 250_000,
            keep_history: true,
            faults: true,
            updates: 40,
            growth: BTreeMap::new(),
        }
    }
}

/// One simulated site.
#[derive(Debug, Clone, Serialize)]
pub struct SimSite {
    pub site: String,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub zone: Zone,
    pub encoding: FileEncoding,
}

/// A run as it was generated.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TruthRun {
    pub site: String,
    pub start: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub trigger: RunTrigger,
    pub duration_s: Option<f64>,
    pub content_version: Option<u64>,
}

/// An injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub kind: &'static str,
    pub site: String,
    pub at: DateTime<Utc>,
}

/// A whole simulation: sites, their timelines and the truth.
#[derive(Debug)]
pub struct Simulation {
    pub config: SimConfig,
    pub sites: Vec<SimSite>,
    /// Per site (same order as `sites`): lines in time order.
    pub lines: Vec<Vec<Line>>,
    /// Per site: lines of other logs (SMSProv.log, smsdbmon.log: the trigger chain of a console
    /// "Synchronize now"), as (file stem, component, time, message), in time order.
    pub other: Vec<Vec<OtherLine>>,
    pub runs: Vec<TruthRun>,
    pub faults: Vec<Fault>,
    pub end: DateTime<Utc>,
}

/// A line of another component's log: (file stem, component, time, message).
pub type OtherLine = (&'static str, &'static str, DateTime<Utc>, String);

struct Request {
    at: DateTime<Utc>,
    cause: Cause,
}

/// How much longer the runs of the day after a Patch Tuesday are.
const PATCH_TUESDAY_SPIKE: f64 = 1.5;

/// From 17:00 UTC on the second Tuesday of the month (Microsoft's release, 10:00 Pacific) to
/// the same time the next day.
fn after_patch_tuesday(t: DateTime<Utc>) -> bool {
    use chrono::{Datelike, Weekday};
    let day = t.date_naive();
    let release_day = |d: chrono::NaiveDate| d.weekday() == Weekday::Tue && (8..=14).contains(&d.day());
    let hour = chrono::Timelike::hour(&t);
    (release_day(day) && hour >= 17) || (release_day(day - Duration::days(1)) && hour < 17)
}

impl SimConfig {
    /// The growth of `site`'s runs at `t`: compounded monthly percent since the start.
    pub fn growth_factor(&self, site: &str, t: DateTime<Utc>) -> f64 {
        let Some(percent) = self.growth.get(site).or_else(|| self.growth.get("*")) else { return 1.0 };
        let months = (t - self.start).num_seconds() as f64 / (DAYS_PER_MONTH * 86_400.0);
        (1.0 + percent / 100.0).powf(months.max(0.0))
    }
}

/// Days in an average month.
const DAYS_PER_MONTH: f64 = 30.436_875;

/// Builds the hierarchy: a central site, primaries under it, secondaries under the primaries
/// (a single site is a stand-alone primary).
fn topology(config: &SimConfig) -> Vec<SimSite> {
    let n = config.sites.max(1);
    let mut sites = Vec::with_capacity(n);
    let encodings = [
        FileEncoding::Utf8Bom,
        FileEncoding::Utf8Bom,
        FileEncoding::Utf8Bom,
        FileEncoding::Utf16LeBom,
        FileEncoding::Utf8,
    ];
    let mk = |i: usize, site: String, parent: Option<String>| SimSite {
        host: format!("{}.{}.com", site.to_lowercase(), config.hierarchy),
        site,
        parent,
        children: Vec::new(),
        zone: Zone::ALL[i % Zone::ALL.len()],
        encoding: encodings[i % encodings.len()],
    };
    if n == 1 {
        return vec![mk(0, "PS1".into(), None)];
    }
    sites.push(mk(0, "CAS".into(), None));
    let primaries = (n - 1).div_ceil(3);
    for p in 0..primaries {
        sites.push(mk(p + 1, format!("P{:02}", p + 1), Some("CAS".into())));
    }
    for s in 0..(n - 1 - primaries) {
        let parent = format!("P{:02}", s % primaries + 1);
        sites.push(mk(primaries + 1 + s, format!("S{:02}", s + 1), Some(parent)));
    }
    for i in 0..sites.len() {
        let children = sites
            .iter()
            .filter(|c| c.parent.as_deref() == Some(&sites[i].site))
            .map(|c| c.site.clone())
            .collect();
        sites[i].children = children;
    }
    sites
}

impl Simulation {
    pub fn generate(config: SimConfig) -> Simulation {
        let sites = topology(&config);
        let mut rng = Rng::new(config.seed);
        let end = config.start + Duration::days(i64::from(config.days));
        let mut lines: Vec<Vec<Line>> = vec![Vec::new(); sites.len()];
        let mut other: Vec<Vec<OtherLine>> = vec![Vec::new(); sites.len()];
        let mut runs = Vec::new();
        let mut faults = Vec::new();
        let mut inbox: Vec<Vec<Request>> = (0..sites.len()).map(|_| Vec::new()).collect();
        // Per site: (time, version) of each success, for the version a child gets.
        let mut successes: Vec<Vec<(DateTime<Utc>, u64)>> = vec![Vec::new(); sites.len()];

        // The top site's schedule.
        let mut t = config.start + Duration::minutes(i64::from(config.schedule_minute));
        while t < end {
            let jitter = rng.below(u64::from(config.schedule_jitter_s)) as i64;
            inbox[0].push(Request { at: t + Duration::seconds(jitter), cause: Cause::Schedule });
            t += config.interval;
        }
        // "Synchronize now" in the console: day 1 of every cycle, 14:00.
        for cycle in (0..config.days).step_by(10).filter(|d| d + 1 < config.days) {
            let at = config.start + Duration::days(i64::from(cycle + 1)) + Duration::hours(14);
            inbox[0].push(Request { at, cause: Cause::Manual { full: false } });
        }
        if config.faults {
            for cycle in (0..config.days).step_by(10).filter(|d| d + 7 < config.days) {
                let at = config.start + Duration::days(i64::from(cycle + 7)) + Duration::hours(15);
                inbox[0].push(Request { at, cause: Cause::Manual { full: true } });
            }
        }

        // Sites in order: parents come before their children.
        for i in 0..sites.len() {
            let site = &sites[i];
            let top = site.parent.is_none();
            let parent_index = site.parent.as_ref().and_then(|p| sites.iter().position(|s| &s.site == p));
            let mut causes: Vec<Cause> = Vec::new();
            let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> = BinaryHeap::new();
            for r in std::mem::take(&mut inbox[i]) {
                queue.push(Reverse((r.at, causes.len())));
                causes.push(r.cause);
            }
            let mut version = 100u64;
            let mut busy_until = DateTime::<Utc>::MIN_UTC;
            let mut failing_until: Option<DateTime<Utc>> = None;
            let mut faulted_days = std::collections::BTreeSet::new();
            let mut last_run: Option<usize> = None;
            // WSyncMgr keeps one retry pending; any run supersedes it.
            let mut pending_retry: Option<usize> = None;
            while let Some(Reverse((at, id))) = queue.pop() {
                let cause = causes[id];
                if cause == Cause::Retry && pending_retry != Some(id) {
                    continue;
                }
                pending_retry = None;
                let start = at.max(busy_until + Duration::minutes(1));
                if start >= end {
                    continue;
                }
                let day = (start - config.start).num_days() as u32;
                let cycle_day = day % 10;
                let first_today = faulted_days.insert(day);
                let mut fate = Fate::Succeed;
                let mut slow = 1.0;
                if config.faults && first_today {
                    match cycle_day {
                        2 if top => fate = Fate::Fail,
                        4 if i == stall_site(day, sites.len()) => fate = Fate::Stall,
                        5 if top => slow = 8.0,
                        // Slower than usual, but under 3x the median: no alert.
                        7 if top => slow = 2.5,
                        6 if i == child_failure_site(day, sites.len()) => fate = Fate::Fail,
                        8 if top => failing_until = Some(start + Duration::hours(30)),
                        _ => {}
                    }
                }
                if failing_until.is_some_and(|until| start < until) {
                    fate = Fate::Fail;
                }
                let base = if top { 480 + rng.below(420) } else { 180 + rng.below(300) } as i64;
                let grown = config.growth_factor(&site.site, start);
                // The first runs after a Patch Tuesday carry the month's updates: longer, but
                // not slow (never on top of an injected slowness).
                let spike = if slow == 1.0 && after_patch_tuesday(start) { PATCH_TUESDAY_SPIKE } else { 1.0 };
                let seconds = (base as f64 * slow * grown * spike) as i64;
                let version_after = match parent_index {
                    None => version + 1,
                    Some(p) => {
                        let known = &successes[p];
                        let n = known.partition_point(|(t, _)| *t <= start);
                        n.checked_sub(1).map_or(version, |k| known[k].1)
                    }
                };
                let updates = (config.updates / 2 + rng.below(u64::from(config.updates) + 1) as u32).max(1);
                let updates = (f64::from(updates) * grown * spike) as u32;
                let plan = RunPlan {
                    site: &site.site,
                    host: &site.host,
                    parent: site.parent.as_deref(),
                    children: &site.children,
                    start,
                    seconds,
                    cause,
                    fate,
                    version_before: version,
                    version_after,
                    updates,
                };
                lines[i].extend(run_lines(&plan, &mut rng));
                if cause == (Cause::Manual { full: false }) {
                    other[i].extend(narrative::console_trigger(start, 47_000 + runs.len() as u64));
                }
                // A stalled run before this one is abandoned by it.
                if let Some(prev) = last_run.map(|k| &mut runs[k]) {
                    let prev: &mut TruthRun = prev;
                    if prev.outcome == Outcome::Running {
                        prev.outcome = Outcome::Abandoned;
                        prev.end = Some(start);
                    }
                }
                let trigger = match cause {
                    Cause::Schedule => RunTrigger::Schedule,
                    Cause::Manual { .. } => RunTrigger::Manual,
                    Cause::Parent => RunTrigger::Parent,
                    Cause::Retry => RunTrigger::Retry,
                };
                let finish = start + Duration::seconds(seconds);
                let mut run = TruthRun {
                    site: site.site.clone(),
                    start,
                    end: Some(finish),
                    outcome: Outcome::Succeeded,
                    trigger,
                    duration_s: Some(seconds as f64),
                    content_version: None,
                };
                match fate {
                    Fate::Succeed => {
                        version = version_after.max(version);
                        run.content_version = Some(version);
                        successes[i].push((finish, version));
                        busy_until = finish;
                        if slow > 1.0 {
                            let kind = if slow >= 3.0 { "slow" } else { "near_slow" };
                            faults.push(Fault { kind, site: site.site.clone(), at: finish });
                        }
                        if cause == (Cause::Manual { full: true }) {
                            faults.push(Fault {
                                kind: "manual_full_sync",
                                site: site.site.clone(),
                                at: start,
                            });
                        }
                        let lost = (config.faults && top && cycle_day == 3 && !site.children.is_empty())
                            .then(|| site.children[(day as usize / 10) % site.children.len()].clone());
                        for child in &site.children {
                            if Some(child) == lost.as_ref() {
                                faults.push(Fault {
                                    kind: "lost_notification",
                                    site: child.clone(),
                                    at: finish,
                                });
                                continue;
                            }
                            let idx = sites.iter().position(|s| &s.site == child).unwrap_or(0);
                            let delay = Duration::seconds(40 + rng.below(600) as i64);
                            inbox[idx].push(Request { at: finish + delay, cause: Cause::Parent });
                        }
                    }
                    Fate::Fail => {
                        run.outcome = Outcome::Failed;
                        run.duration_s = None;
                        busy_until = finish;
                        faults.push(Fault { kind: "failure", site: site.site.clone(), at: finish });
                        let retry = finish + Duration::minutes(60) + Duration::milliseconds(10);
                        queue.push(Reverse((retry, causes.len())));
                        pending_retry = Some(causes.len());
                        causes.push(Cause::Retry);
                    }
                    Fate::Stall => {
                        run.outcome = Outcome::Running;
                        run.end = None;
                        run.duration_s = None;
                        faults.push(Fault { kind: "stall", site: site.site.clone(), at: start });
                    }
                }
                last_run = Some(runs.len());
                runs.push(run);
            }
        }
        for (i, site_lines) in lines.iter_mut().enumerate() {
            add_polling(site_lines, config.start, end, i * 7 % 50);
            site_lines.sort_by_key(|(t, _)| *t); // stable: a run's lines keep their order
        }
        runs.sort_by(|a, b| (&a.site, a.start).cmp(&(&b.site, b.start)));
        Simulation { config, sites, lines, other, runs, faults, end }
    }

    /// Writes `<dir>/<hierarchy>/<SITE>/WsyncMgr*.log` and `<dir>/<hierarchy>/truth.json`;
    /// returns the log files written and their total size.
    pub fn write(&self, dir: &Path) -> std::io::Result<(Vec<PathBuf>, u64)> {
        let root = dir.join(&self.config.hierarchy);
        let mut all = Vec::new();
        let mut total = 0;
        for (site, lines) in self.sites.iter().zip(&self.lines) {
            let mut writer = RollingWriter::new(
                &root.join(&site.site),
                "WsyncMgr",
                site.encoding,
                site.zone,
                self.config.roll_bytes,
                self.config.keep_history,
            );
            let mut buf = String::new();
            for (t, message) in lines {
                buf.clear();
                server_line(message, "SMS_WSUS_SYNC_MANAGER", *t, site.zone, 9640, &mut buf);
                writer.append(&buf, *t);
            }
            let (paths, bytes) = writer.finish()?;
            all.extend(paths);
            total += bytes;
        }
        for (site, lines) in self.sites.iter().zip(&self.other) {
            for stem in ["SMSProv", "smsdbmon"] {
                let mine: Vec<&OtherLine> = lines.iter().filter(|l| l.0 == stem).collect();
                if mine.is_empty() {
                    continue;
                }
                let dir = root.join(&site.site);
                let mut writer =
                    RollingWriter::new(&dir, stem, site.encoding, site.zone, self.config.roll_bytes, true);
                let mut buf = String::new();
                for (_, component, t, message) in mine {
                    buf.clear();
                    server_line(message, component, *t, site.zone, 5012, &mut buf);
                    writer.append(&buf, *t);
                }
                let (paths, bytes) = writer.finish()?;
                all.extend(paths);
                total += bytes;
            }
        }
        let truth = truth::Truth::of(self);
        let json = serde_json::to_string_pretty(&truth).map_err(std::io::Error::other)?;
        std::fs::write(root.join("truth.json"), json + "\n")?;
        Ok((all, total))
    }
}

/// The site that stalls on day 4 of a cycle (rotates through the hierarchy).
fn stall_site(day: u32, n: usize) -> usize {
    (day as usize / 10 + 1) % n
}

/// The child that fails on day 6 of a cycle.
fn child_failure_site(day: u32, n: usize) -> usize {
    if n == 1 {
        0
    } else {
        1 + (day as usize / 10 + 1) % (n - 1)
    }
}

/// `Wakeup for a polling cycle` every hour, outside runs (a stalled run stays silent).
fn add_polling(lines: &mut Vec<Line>, start: DateTime<Utc>, end: DateTime<Utc>, offset: usize) {
    // Busy from a run's first line to its last (or to the next run, for a stall).
    let mut busy: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for (t, m) in lines.iter() {
        if m.starts_with("Wakeup") || m == "Starting Sync" {
            open.get_or_insert(*t - Duration::minutes(2));
        }
        if is_run_end(m) {
            if let Some(s) = open.take() {
                busy.push((s, *t + Duration::minutes(2)));
            }
        }
    }
    if let Some(s) = open {
        busy.push((s, end));
    }
    let mut t = start + Duration::minutes(7 + offset as i64);
    let mut k = 0;
    while t < end {
        while k < busy.len() && busy[k].1 < t {
            k += 1;
        }
        if k >= busy.len() || t < busy[k].0 {
            lines.push((t, "Wakeup for a polling cycle".into()));
        }
        t += Duration::hours(1);
    }
}

fn is_run_end(m: &str) -> bool {
    m.starts_with("Sync time") || m.starts_with("Sync failed. Will")
}

#[cfg(test)]
mod tests;
