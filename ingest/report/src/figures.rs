//! The figures of the capacity report, from sync runs (pure): per site the counts, duration
//! percentiles, weekly buckets, failure causes and streaks, and the trend of the weekly
//! medians. What `--json` writes (the contract is in `schema/README.md`) and what the HTML
//! shows.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use statmsg_schema::event::Phase;
use statmsg_track::{Outcome, SyncRun};

use crate::stats::{mann_kendall, median, percentile, theil_sen};

/// Fewer weekly medians than this: no trend (a quarter's weeks are 13).
pub const MIN_TREND_WEEKS: usize = 8;
/// Days in an average month, for "per month" figures.
const DAYS_PER_MONTH: f64 = 30.436_875;

/// A sync run as the report needs it, from the offline tracker or from InfluxDB's `sync_run`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub hierarchy: String,
    pub site: String,
    pub parent: Option<String>,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub duration_s: Option<f64>,
    /// The update source's content version after the run.
    pub content_version: Option<u64>,
    pub wsus_s: Option<f64>,
    pub site_db_s: Option<f64>,
    pub updates_synchronized: u64,
    pub failure: Option<String>,
    pub hresult: Option<String>,
}

impl From<&SyncRun> for RunFacts {
    fn from(run: &SyncRun) -> Self {
        RunFacts {
            hierarchy: run.hierarchy.clone(),
            site: run.site.clone(),
            parent: run.parent.clone(),
            start: run.start,
            end: run.end,
            outcome: run.outcome,
            duration_s: run.duration_s,
            content_version: run.content_version,
            wsus_s: run.phase_seconds(Phase::WsusServer),
            site_db_s: run.phase_seconds(Phase::SiteDatabase),
            updates_synchronized: run.updates_synchronized,
            failure: run.failure.as_ref().map(|f| f.message.clone()),
            hresult: run.failure.as_ref().and_then(|f| f.hresult.clone()),
        }
    }
}

/// What the report is asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The sync window (`[report] window_minutes`): when the median run will no longer fit.
    pub window_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub fleet: Fleet,
    pub sites: Vec<SiteFigures>,
}

/// The summary tiles.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub sites: usize,
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Succeeded of the runs that ended (succeeded or failed), 0..=1.
    pub success_rate: Option<f64>,
    pub median_duration_s: Option<f64>,
    pub p95_duration_s: Option<f64>,
    /// Sites whose weekly median duration grows significantly ("hierarchy/site").
    pub growing: Vec<String>,
    pub longest_failure_streak: Option<StreakAt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreakAt {
    pub hierarchy: String,
    pub site: String,
    pub runs: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteFigures {
    pub hierarchy: String,
    pub site: String,
    pub parent: Option<String>,
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Of the successful runs.
    pub median_duration_s: Option<f64>,
    pub p95_duration_s: Option<f64>,
    pub longest_failure_streak: usize,
    pub weekly: Vec<Week>,
    pub trend: Option<Trend>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend_reason: Option<String>,
    pub failure_causes: Vec<FailureCause>,
    pub failure_streaks: Vec<Streak>,
    /// As a child: the median time it took to reach each of its parent's new versions.
    pub propagation_median_s: Option<f64>,
    /// As a parent: how each child followed it.
    pub children: Vec<ChildPropagation>,
    /// Days from the last `Cleanup processed` line to the end of the period.
    pub days_since_cleanup: Option<f64>,
    /// Every run, for the charts (not in the JSON contract).
    #[serde(skip)]
    pub points: Vec<RunFacts>,
}

impl SiteFigures {
    /// Its weekly median duration grows: a significant trend with a positive slope.
    pub fn grows(&self) -> bool {
        self.trend.as_ref().is_some_and(|t| t.significant && t.slope_s_per_week > 0.0)
    }
}

/// Durations of the successful runs among `runs`.
fn succeeded_durations(runs: &[&RunFacts]) -> Vec<f64> {
    runs.iter().filter(|r| r.outcome == Outcome::Succeeded).filter_map(|r| r.duration_s).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// Its Monday (UTC).
    pub week: NaiveDate,
    pub runs: usize,
    pub failed: usize,
    pub median_duration_s: Option<f64>,
    pub p95_duration_s: Option<f64>,
}

/// Theil–Sen slope of the weekly medians with its 95 % interval, and the Mann–Kendall test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub slope_s_per_week: f64,
    pub low: f64,
    pub high: f64,
    /// Mann–Kendall's two-sided p below 0.05.
    pub significant: bool,
    pub p_value: f64,
    /// The fitted median duration at the first and the last week.
    pub first_s: f64,
    pub last_s: f64,
    pub weeks: usize,
    /// The slope and its interval per month, relative to the fitted median at the middle of the
    /// period, in percent: a catalog growing 4 % a month reads about 4 here.
    pub percent_per_month: f64,
    pub percent_per_month_low: f64,
    pub percent_per_month_high: f64,
    /// With a sync window: weeks until the fitted median exceeds it, at the interval's fast
    /// and slow ends (`None` at an end that does not grow, or when it exceeds it already).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exceeds_window_in_weeks: Option<(f64, Option<f64>)>,
}

impl Trend {
    pub fn per_month_s(&self) -> (f64, f64, f64) {
        let k = DAYS_PER_MONTH / 7.0;
        (self.slope_s_per_week * k, self.low * k, self.high * k)
    }
}

/// How a child followed its parent's content versions: the time from the parent's successful
/// run that reached a version to the child's first successful run with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildPropagation {
    pub child: String,
    pub versions: usize,
    pub median_delay_s: Option<f64>,
    pub max_delay_s: Option<f64>,
}

/// A `Cleanup processed N total updates and declined M` line of a site.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleanup {
    pub hierarchy: String,
    pub site: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureCause {
    pub message: String,
    pub hresult: Option<String>,
    pub count: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// Consecutive failed runs (any other outcome ends a streak).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Streak {
    pub runs: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The Monday of `t`'s week (UTC).
pub fn week_of(t: DateTime<Utc>) -> NaiveDate {
    let day = t.date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The figures of `runs` between `options.from` and `options.to` (by start; default: the first
/// and last run).
pub fn figures(runs: &[RunFacts], cleanups: &[Cleanup], options: &Options) -> Figures {
    let inside = |r: &&RunFacts| {
        options.from.map_or(true, |from| r.start >= from) && options.to.map_or(true, |to| r.start < to)
    };
    let mut by_site: BTreeMap<(&str, &str), Vec<&RunFacts>> = BTreeMap::new();
    for run in runs.iter().filter(inside) {
        by_site.entry((&run.hierarchy, &run.site)).or_default().push(run);
    }
    let first = runs.iter().filter(inside).map(|r| r.start).min();
    let last = runs.iter().filter(inside).map(|r| r.start).max();
    let from = options.from.or(first).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let to = options.to.or(last).unwrap_or(from);
    let mut sites: Vec<SiteFigures> =
        by_site.into_values().map(|mut runs| site_figures(&mut runs, options.window_minutes)).collect();
    propagation(&mut sites);
    for site in &mut sites {
        let last = cleanups
            .iter()
            .filter(|c| c.hierarchy == site.hierarchy && c.site == site.site && c.at <= to)
            .map(|c| c.at)
            .max();
        site.days_since_cleanup = last.map(|at| (to - at).num_seconds() as f64 / 86_400.0);
    }
    let fleet = fleet(&sites);
    Figures { from, to, fleet, sites }
}

fn site_figures(runs: &mut [&RunFacts], window_minutes: Option<f64>) -> SiteFigures {
    runs.sort_by_key(|r| r.start);
    let all = succeeded_durations(runs);
    let failed = runs.iter().filter(|r| r.outcome == Outcome::Failed).count();
    let succeeded = runs.iter().filter(|r| r.outcome == Outcome::Succeeded).count();
    let weekly = weekly(runs);
    let (trend, trend_reason) = match trend(&weekly, window_minutes) {
        Ok(trend) => (Some(trend), None),
        Err(reason) => (None, Some(reason)),
    };
    let failure_streaks = streaks(runs);
    let first = runs[0];
    SiteFigures {
        hierarchy: first.hierarchy.clone(),
        site: first.site.clone(),
        parent: runs.iter().rev().find_map(|r| r.parent.clone()),
        runs: runs.len(),
        succeeded,
        failed,
        median_duration_s: median(&all),
        p95_duration_s: percentile(&all, 95.0),
        longest_failure_streak: failure_streaks.iter().map(|s| s.runs).max().unwrap_or(0),
        weekly,
        trend,
        trend_reason,
        failure_causes: causes(runs),
        failure_streaks,
        propagation_median_s: None,
        children: Vec::new(),
        days_since_cleanup: None,
        points: runs.iter().map(|r| (*r).clone()).collect(),
    }
}

fn weekly(runs: &[&RunFacts]) -> Vec<Week> {
    let mut weeks: BTreeMap<NaiveDate, Vec<&RunFacts>> = BTreeMap::new();
    for run in runs {
        weeks.entry(week_of(run.start)).or_default().push(run);
    }
    weeks
        .into_iter()
        .map(|(week, runs)| {
            let durations = succeeded_durations(&runs);
            Week {
                week,
                runs: runs.len(),
                failed: runs.iter().filter(|r| r.outcome == Outcome::Failed).count(),
                median_duration_s: median(&durations),
                p95_duration_s: percentile(&durations, 95.0),
            }
        })
        .collect()
}

/// The trend of the weekly medians, or why there is none.
pub fn trend(weekly: &[Week], window_minutes: Option<f64>) -> Result<Trend, String> {
    let Some(first_week) = weekly.first().map(|w| w.week) else {
        return Err("no runs".into());
    };
    let points: Vec<(f64, f64)> = weekly
        .iter()
        .filter_map(|w| w.median_duration_s.map(|m| ((w.week - first_week).num_days() as f64 / 7.0, m)))
        .collect();
    if points.len() < MIN_TREND_WEEKS {
        return Err(format!(
            "{} weeks with a successful run: a trend needs at least {MIN_TREND_WEEKS}",
            points.len()
        ));
    }
    let fit = theil_sen(&points).ok_or("the weeks' medians do not vary in time")?;
    if fit.low <= 0.0 && 0.0 <= fit.high {
        return Err(format!(
            "no trend: the 95 % interval of the slope ({} to {} s per week) includes zero",
            signed(fit.low),
            signed(fit.high)
        ));
    }
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mk = mann_kendall(&ys).ok_or("too few weeks")?;
    let x_last = points[points.len() - 1].0;
    let last_s = fit.intercept + fit.slope * x_last;
    let middle_s = fit.intercept + fit.slope * (points[0].0 + x_last) / 2.0;
    let percent = |slope: f64| slope * (DAYS_PER_MONTH / 7.0) / middle_s * 100.0;
    let exceeds_window_in_weeks = window_minutes.map(|w| w * 60.0).and_then(|window| {
        let weeks_at = |slope: f64| (slope > 0.0).then(|| (window - last_s) / slope);
        if last_s >= window {
            return Some((0.0, Some(0.0)));
        }
        // The interval's fast end reaches the window first; a slow end that does not grow never.
        weeks_at(fit.high).map(|soonest| (soonest, weeks_at(fit.low)))
    });
    Ok(Trend {
        slope_s_per_week: fit.slope,
        low: fit.low,
        high: fit.high,
        significant: mk.p < 0.05,
        p_value: mk.p,
        first_s: fit.intercept,
        last_s,
        weeks: points.len(),
        percent_per_month: percent(fit.slope),
        percent_per_month_low: percent(fit.low),
        percent_per_month_high: percent(fit.high),
        exceeds_window_in_weeks,
    })
}

/// `+1.5`, `-0.3`, and `0.0` for anything that rounds to zero (never `-0.0`).
fn signed(v: f64) -> String {
    match format!("{v:+.1}").as_str() {
        "+0.0" | "-0.0" => "0.0".into(),
        text => text.into(),
    }
}

fn streaks(runs: &[&RunFacts]) -> Vec<Streak> {
    let mut out: Vec<Streak> = Vec::new();
    let mut current: Option<Streak> = None;
    for run in runs {
        if run.outcome == Outcome::Failed {
            let streak = current.get_or_insert(Streak { runs: 0, from: run.start, to: run.start });
            streak.runs += 1;
            streak.to = run.start;
        } else if let Some(done) = current.take() {
            out.push(done);
        }
    }
    out.extend(current);
    out
}

fn causes(runs: &[&RunFacts]) -> Vec<FailureCause> {
    let mut by_cause: BTreeMap<(String, Option<String>), FailureCause> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.outcome == Outcome::Failed) {
        let message = run.failure.clone().unwrap_or_else(|| "(no failure message logged)".into());
        let key = (message.clone(), run.hresult.clone());
        let cause = by_cause.entry(key).or_insert_with(|| FailureCause {
            message,
            hresult: run.hresult.clone(),
            count: 0,
            first: run.start,
            last: run.start,
        });
        cause.count += 1;
        cause.first = cause.first.min(run.start);
        cause.last = cause.last.max(run.start);
    }
    let mut causes: Vec<FailureCause> = by_cause.into_values().collect();
    causes.sort_by(|a, b| b.count.cmp(&a.count).then(b.last.cmp(&a.last)));
    causes
}

/// When each site first reached each content version (the end of its first successful run
/// with it).
fn reached(site: &SiteFigures) -> BTreeMap<u64, DateTime<Utc>> {
    let mut out = BTreeMap::new();
    for run in site.points.iter().filter(|r| r.outcome == Outcome::Succeeded) {
        if let (Some(v), Some(end)) = (run.content_version, run.end) {
            out.entry(v).or_insert(end);
        }
    }
    out
}

fn propagation(sites: &mut [SiteFigures]) {
    let reached: Vec<BTreeMap<u64, DateTime<Utc>>> = sites.iter().map(reached).collect();
    let mut children: Vec<Vec<ChildPropagation>> = vec![Vec::new(); sites.len()];
    for (c, child) in sites.iter().enumerate() {
        let Some(p) = sites
            .iter()
            .position(|s| s.hierarchy == child.hierarchy && Some(&s.site) == child.parent.as_ref())
        else {
            continue;
        };
        let delays: Vec<f64> = reached[p]
            .iter()
            .filter_map(|(v, at)| reached[c].get(v).map(|got| (*got - *at).num_seconds().max(0) as f64))
            .collect();
        children[p].push(ChildPropagation {
            child: child.site.clone(),
            versions: delays.len(),
            median_delay_s: median(&delays),
            max_delay_s: delays.iter().copied().max_by(f64::total_cmp),
        });
    }
    for (site, children) in sites.iter_mut().zip(children) {
        site.children = children;
    }
    let medians: BTreeMap<(String, String), Option<f64>> = sites
        .iter()
        .flat_map(|p| {
            p.children.iter().map(move |c| ((p.hierarchy.clone(), c.child.clone()), c.median_delay_s))
        })
        .collect();
    for site in sites.iter_mut() {
        site.propagation_median_s =
            medians.get(&(site.hierarchy.clone(), site.site.clone())).copied().flatten();
    }
}

fn fleet(sites: &[SiteFigures]) -> Fleet {
    let durations: Vec<f64> = sites
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| r.duration_s)
        .collect();
    let succeeded: usize = sites.iter().map(|s| s.succeeded).sum();
    let failed: usize = sites.iter().map(|s| s.failed).sum();
    let longest = sites
        .iter()
        .flat_map(|s| s.failure_streaks.iter().map(move |k| (s, k)))
        .max_by(|(_, a), (_, b)| a.runs.cmp(&b.runs).then(b.from.cmp(&a.from)))
        .map(|(s, k)| StreakAt {
            hierarchy: s.hierarchy.clone(),
            site: s.site.clone(),
            runs: k.runs,
            from: k.from,
            to: k.to,
        });
    Fleet {
        sites: sites.len(),
        runs: sites.iter().map(|s| s.runs).sum(),
        succeeded,
        failed,
        success_rate: (succeeded + failed > 0).then(|| succeeded as f64 / (succeeded + failed) as f64),
        median_duration_s: median(&durations),
        p95_duration_s: percentile(&durations, 95.0),
        growing: sites.iter().filter(|s| s.grows()).map(|s| format!("{}/{}", s.hierarchy, s.site)).collect(),
        longest_failure_streak: longest,
    }
}

#[cfg(test)]
#[path = "figures_tests.rs"]
mod tests;
