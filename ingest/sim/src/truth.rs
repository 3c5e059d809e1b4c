//! The truth of a simulation: every run as generated, the faults injected, and at chosen
//! moments the alerts that must be active. The alerts come from this module's own reading of
//! the alert definitions over the generated runs (an oracle independent of the tracker, which
//! only ever sees the log text).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Simulation, TruthRun};
use statmsg_track::{AlertKind, Outcome, TrackerConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub hierarchy: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub sites: Vec<TruthSite>,
    pub runs: Vec<TruthRun>,
    pub faults: Vec<TruthFault>,
    pub checks: Vec<Check>,
    /// Sites whose runs grow, percent per month (durations and updates, compounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub growth: Vec<TruthGrowth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthGrowth {
    pub site: String,
    pub percent_per_month: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthSite {
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The Windows time zone its logs are written in, and their encoding.
    pub zone: String,
    pub encoding: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthFault {
    pub kind: String,
    pub site: String,
    pub at: DateTime<Utc>,
}

/// At `at`, with every record up to `at` read, exactly these alerts are active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub at: DateTime<Utc>,
    pub alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExpectedAlert {
    pub site: String,
    pub kind: AlertKind,
    pub since: DateTime<Utc>,
}

/// What the oracle knows of one site.
struct SiteFacts<'a> {
    site: &'a str,
    parent: Option<&'a str>,
    runs: Vec<&'a TruthRun>,
    first_line: Option<DateTime<Utc>>,
}

impl Truth {
    pub fn of(sim: &Simulation) -> Truth {
        let config = TrackerConfig::default();
        let facts: Vec<SiteFacts<'_>> = sim
            .sites
            .iter()
            .zip(&sim.lines)
            .map(|(s, lines)| SiteFacts {
                site: &s.site,
                parent: s.parent.as_deref(),
                runs: sim.runs.iter().filter(|r| r.site == s.site).collect(),
                first_line: lines.first().map(|(t, _)| *t),
            })
            .collect();
        let mut moments: Vec<DateTime<Utc>> = Vec::new();
        for f in &sim.faults {
            let after = match f.kind {
                "stall" => Duration::minutes(150),
                "failure" => Duration::minutes(10),
                "lost_notification" => Duration::hours(3),
                "slow" => Duration::minutes(5),
                _ => Duration::minutes(1),
            };
            moments.push(f.at + after);
        }
        let mut day = sim.config.start + Duration::hours(12);
        while day < sim.end && moments.len() < 400 {
            moments.extend([day, day + Duration::hours(11)]);
            day += Duration::days(1);
        }
        moments.push(sim.end);
        // Then 30 s either side of every moment an alert begins: thresholds are checked too.
        let mut edges = Vec::new();
        for &at in &moments {
            for alert in expected_alerts(&facts, &config, at) {
                edges.extend([alert.since - Duration::seconds(30), alert.since + Duration::seconds(30)]);
            }
        }
        moments.extend(edges);
        moments.retain(|t| *t <= sim.end && *t >= sim.config.start);
        moments.sort();
        moments.dedup();
        let checks = moments
            .into_iter()
            .map(|at| Check { at, alerts: expected_alerts(&facts, &config, at) })
            .collect();
        Truth {
            hierarchy: sim.config.hierarchy.clone(),
            start: sim.config.start,
            end: sim.end,
            sites: sim
                .sites
                .iter()
                .map(|s| TruthSite {
                    site: s.site.clone(),
                    parent: s.parent.clone(),
                    zone: format!("{:?}", s.zone),
                    encoding: format!("{:?}", s.encoding),
                })
                .collect(),
            runs: sim.runs.clone(),
            growth: sim
                .sites
                .iter()
                .filter_map(|s| {
                    let percent = sim.config.growth.get(&s.site).or_else(|| sim.config.growth.get("*"))?;
                    Some(TruthGrowth { site: s.site.clone(), percent_per_month: *percent })
                })
                .collect(),
            faults: sim
                .faults
                .iter()
                .map(|f| TruthFault { kind: f.kind.to_owned(), site: f.site.clone(), at: f.at })
                .collect(),
            checks,
        }
    }
}

/// When a run's outcome is known (an abandoned run: when the next one starts).
fn outcome_time(run: &TruthRun) -> Option<DateTime<Utc>> {
    match run.outcome {
        Outcome::Running => None,
        _ => run.end,
    }
}

/// Successful durations known at `c`, in order, with their end.
fn successes<'a>(f: &SiteFacts<'a>, c: DateTime<Utc>) -> Vec<(&'a TruthRun, DateTime<Utc>)> {
    f.runs
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| Some((*r, outcome_time(r).filter(|t| *t <= c)?)))
        .collect()
}

/// How many of the latest successful durations the median is taken over (the README's rule).
const MEDIAN_WINDOW: usize = 30;

/// The median of the last [`MEDIAN_WINDOW`] durations: the middle value, or the mean of the two
/// middle values of an even count. Computed here, not borrowed from the tracker: an oracle that
/// shares the code it judges cannot catch that code's bugs.
fn last_n_median(durations: &[f64]) -> Option<f64> {
    let mut window = durations[durations.len().saturating_sub(MEDIAN_WINDOW)..].to_vec();
    window.sort_unstable_by(f64::total_cmp);
    let n = window.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(window[n / 2]),
        _ => Some((window[n / 2 - 1] + window[n / 2]) / 2.0),
    }
}

/// The versions a site reached by `c`, increasing, with when.
fn versions(f: &SiteFacts<'_>, c: DateTime<Utc>) -> Vec<(u64, DateTime<Utc>)> {
    let mut out: Vec<(u64, DateTime<Utc>)> = Vec::new();
    for (run, t) in successes(f, c) {
        if let Some(v) = run.content_version {
            if out.last().map_or(true, |(last, _)| v > *last) {
                out.push((v, t));
            }
        }
    }
    out
}

fn expected_alerts(facts: &[SiteFacts<'_>], config: &TrackerConfig, c: DateTime<Utc>) -> Vec<ExpectedAlert> {
    let mut out = Vec::new();
    let secs = |s: f64| Duration::milliseconds((s * 1000.0) as i64);
    for f in facts {
        let Some(first) = f.first_line.filter(|t| *t <= c) else { continue };
        let mut push = |kind, since| out.push(ExpectedAlert { site: f.site.to_owned(), kind, since });
        let known: Vec<&TruthRun> = f.runs.iter().copied().filter(|r| r.start <= c).collect();
        let wins = successes(f, c);
        let durations: Vec<f64> = wins.iter().filter_map(|(r, _)| r.duration_s).collect();
        let median_now = last_n_median(&durations)
            .filter(|_| durations.len().min(MEDIAN_WINDOW) >= config.min_runs_for_median);

        // stalled
        if let Some(current) = known.last() {
            let running = outcome_time(current).map_or(true, |t| t > c);
            if running {
                let floor = config.stall_after.num_seconds() as f64;
                let threshold = median_now.map_or(floor, |m| floor.max(config.stall_factor * m));
                if (c - current.start).num_milliseconds() as f64 / 1000.0 > threshold {
                    push(AlertKind::Stalled, current.start + secs(threshold));
                }
            }
        }
        // failed: the last run to end failed, and failures followed the last success.
        let ended: Vec<(&TruthRun, DateTime<Utc>)> =
            known.iter().filter_map(|r| Some((*r, outcome_time(r).filter(|t| *t <= c)?))).collect();
        let last_finished = ended.iter().max_by_key(|(r, t)| (*t, r.start)).copied();
        let last_success = wins.last().map(|(_, t)| *t);
        let failing_since = ended
            .iter()
            .filter(|(r, t)| r.outcome == Outcome::Failed && last_success.map_or(true, |s| *t > s))
            .map(|(_, t)| *t)
            .min();
        if let Some(since) = failing_since {
            push(AlertKind::Failed, since);
        }
        // missing_success
        let due = last_success.unwrap_or(first) + config.expected_interval;
        if c > due {
            push(AlertKind::MissingSuccess, due);
        }
        // slow
        if let Some((run, end)) = last_finished.filter(|(r, _)| r.outcome == Outcome::Succeeded) {
            let before: Vec<f64> =
                wins.iter().filter(|(_, t)| *t < end).filter_map(|(r, _)| r.duration_s).collect();
            let enough = durations.len().min(MEDIAN_WINDOW) > config.min_runs_for_median;
            if let (Some(m), Some(d), true) = (last_n_median(&before), run.duration_s, enough) {
                if d > config.slow_factor * m && d > config.slow_min.num_seconds() as f64 {
                    push(AlertKind::Slow, end);
                }
            }
        }
        // child_lag
        if let Some(parent) = f.parent.and_then(|p| facts.iter().find(|x| x.site == p)) {
            let notified = successes(parent, c).first().map(|(_, t)| *t + Duration::milliseconds(300));
            let asked =
                f.runs.iter().find(|r| r.trigger == statmsg_track::RunTrigger::Parent).map(|r| r.start);
            let known_at = [notified, asked].into_iter().flatten().min();
            if known_at.is_some_and(|k| k <= c) {
                let mine = versions(f, c).last().map(|(v, _)| *v);
                let behind = versions(parent, c)
                    .into_iter()
                    .find(|(v, t)| match mine {
                        Some(m) => *v > m,
                        None => first <= *t,
                    })
                    .map(|(_, t)| t);
                if let Some(since) = behind.map(|t| t + config.child_lag_grace).filter(|due| c > *due) {
                    push(AlertKind::ChildLag, since);
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::last_n_median;

    #[test]
    fn the_oracles_median_is_over_the_last_thirty() {
        assert_eq!(last_n_median(&[]), None);
        assert_eq!(last_n_median(&[7.0]), Some(7.0));
        assert_eq!(last_n_median(&[9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(last_n_median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // 40 durations, 1 to 40: only 11 to 40 count, whose middle values are 25 and 26.
        let durations: Vec<f64> = (1..=40).map(f64::from).collect();
        assert_eq!(last_n_median(&durations), Some(25.5));
    }
}
