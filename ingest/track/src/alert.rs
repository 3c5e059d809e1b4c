//! Alerts: what an administrator must look at, each with when it began and where to look.
//!
//! `since` is when the condition crossed its threshold (a stall 2 h after its start, a missing
//! success 26 h after the last one), so that a dashboard can show how long it has been true.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::run::Outcome;
use super::site::SiteState;
use super::TrackerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A run has been running for longer than the larger of a threshold and k times the median.
    Stalled,
    /// The latest run failed (resolves on the next success).
    Failed,
    /// No success within the expected interval.
    MissingSuccess,
    /// The latest run succeeded but took more than k times the median.
    Slow,
    /// A child's content version has been behind its parent's for longer than the grace period.
    ChildLag,
    /// The site's collector sent no heartbeat for longer than the threshold (only for a site
    /// whose collector sent one: offline there are none).
    Silent,
}

impl AlertKind {
    pub const ALL: [AlertKind; 6] = [
        AlertKind::Stalled,
        AlertKind::Failed,
        AlertKind::MissingSuccess,
        AlertKind::Slow,
        AlertKind::ChildLag,
        AlertKind::Silent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Stalled => "stalled",
            AlertKind::Failed => "failed",
            AlertKind::MissingSuccess => "missing_success",
            AlertKind::Slow => "slow",
            AlertKind::ChildLag => "child_lag",
            AlertKind::Silent => "silent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub hierarchy: String,
    pub site: String,
    pub since: DateTime<Utc>,
    /// What to look at, with live figures (how long, how far behind): changes every minute.
    pub detail: String,
    /// The cause in one stable line (the failure and its HRESULT, since when), the same for as
    /// long as the episode lasts: short enough to be an alert label.
    #[serde(default)]
    pub summary: String,
}

/// Longest [`Alert::summary`], in characters.
pub const SUMMARY_MAX_CHARS: usize = 200;

fn summary(text: String) -> String {
    let line = super::run::one_line(&text);
    match line.char_indices().nth(SUMMARY_MAX_CHARS - 1) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// A duration as administrators read it: `3h12m`, `14m05s`, `2d03h`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h) {
        (0, 0) => format!("{m}m{sec:02}s"),
        (0, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The alerts of one site about itself (everything but `child_lag`, which needs its parent).
pub fn site_alerts(site: &SiteState, config: &TrackerConfig, now: DateTime<Utc>) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut alert = |kind, since, brief: String, detail: String| {
        let (hierarchy, site, summary) = (site.hierarchy.clone(), site.site.clone(), summary(brief));
        out.push(Alert { kind, hierarchy, site, since, detail, summary })
    };
    let median = site.median_duration().filter(|_| site.durations.len() >= config.min_runs_for_median);

    if let Some(run) = site.run.as_ref().filter(|r| r.outcome == Outcome::Running) {
        let threshold = stall_threshold(config, median);
        let running = run.running_seconds(now);
        if running > threshold {
            let phase = match run.current_phase() {
                Some(p) => format!(
                    "; in phase {}{} since {}",
                    phase_name(p.phase),
                    p.server.as_deref().map(|s| format!(" on {s}")).unwrap_or_default(),
                    ts(p.start)
                ),
                None => String::new(),
            };
            let progress = match &run.progress {
                Some(p) => format!(
                    "; last progress {} {} {}/{} at {}",
                    stage_name(p.stage),
                    p.items,
                    p.processed.map_or("?".into(), |n| n.to_string()),
                    p.total.map_or("?".into(), |n| n.to_string()),
                    ts(p.at)
                ),
                None => String::new(),
            };
            let quiet = (now - run.last_event).num_seconds() as f64;
            alert(
                AlertKind::Stalled,
                run.start + secs(threshold),
                format!("{} sync running since {}{phase}", run.trigger.as_str(), ts(run.start)),
                format!(
                    "{} sync running for {} (threshold {}{}){phase}{progress}; last record {} ago. Check WsyncMgr.log and the WSUS server's SoftwareDistribution.log; restart SMS_WSUS_SYNC_MANAGER if it stays silent",
                    run.trigger.as_str(),
                    human(running),
                    human(threshold),
                    median.map(|m| format!(", median {}", human(m))).unwrap_or_default(),
                    human(quiet),
                ),
            );
        }
    }

    if let Some(collector) = &site.collector {
        let quiet = now - collector.last_heartbeat;
        if quiet > config.silent_after {
            let status = &collector.status;
            let host = &collector.host;
            alert(
                AlertKind::Silent,
                collector.last_heartbeat + config.silent_after,
                format!("no heartbeat from the collector on {host} since {}", ts(collector.last_heartbeat)),
                format!(
                    "no heartbeat from the collector on {host} for {} (threshold {}); it last reported at {}: {} files watched, {} bytes unread, {} bytes spooled, statmsg {}. Check that the statmsg service runs on {host}, that the server is up and that it reaches Kafka (the service's log beside its configuration says why it cannot send)",
                    human(quiet.num_seconds() as f64),
                    human(config.silent_after.num_seconds() as f64),
                    ts(collector.last_heartbeat),
                    status.files_watched,
                    status.unread_bytes,
                    status.spool_bytes,
                    status.version,
                ),
            );
        }
    }

    // Failures since the last success, whatever came after them (an abandoned retry does not
    // clear it; only a success does).
    if let (Some(since), Some(run)) = (site.failing_since, site.last_failure.as_ref()) {
        let failure = run.failure.clone().unwrap_or_default();
        let brief = format!(
            "{}{}",
            failure.hresult.as_deref().map(|h| format!("[{h}] ")).unwrap_or_default(),
            failure.message
        );
        alert(
            AlertKind::Failed,
            since,
            brief,
            format!(
                "{} failed run(s) since {}; last at {}: {}{}{}{}",
                site.consecutive_failures,
                ts(since),
                ts(run.end.unwrap_or(run.start)),
                failure.message,
                failure.source.map(|s| format!(" (source {s})")).unwrap_or_default(),
                failure.hresult.map(|h| format!(" [{h}]")).unwrap_or_default(),
                run.retry_in_minutes.map(|m| format!("; retry in {m} min")).unwrap_or_default(),
            ),
        );
    }

    let interval = config.expected_interval_for(&site.hierarchy, &site.site);
    let reference = site.last_success.or(site.first_seen);
    if let Some(reference) = reference {
        let due = reference + interval;
        if now > due {
            let what = match site.last_success {
                Some(t) => format!("last success {} ({} ago)", ts(t), human((now - t).num_seconds() as f64)),
                None => format!("no success since the first record ({})", ts(reference)),
            };
            let brief = match site.last_success {
                Some(t) => format!("no success since {}", ts(t)),
                None => format!("no success since the first record ({})", ts(reference)),
            };
            alert(
                AlertKind::MissingSuccess,
                due,
                brief,
                format!(
                    "{what}, expected every {}. Check the SUP sync schedule, the latest run's outcome and WCM.log",
                    human(interval.num_seconds() as f64)
                ),
            );
        }
    }

    if let Some((run, Some(median))) = site.last_finished.as_ref() {
        let enough = site.durations.len() > config.min_runs_for_median;
        if let (true, Outcome::Succeeded, Some(d)) = (enough, run.outcome, run.duration_s) {
            if d > config.slow_factor * median && d > config.slow_min.num_seconds() as f64 {
                alert(
                    AlertKind::Slow,
                    run.end.unwrap_or(run.start),
                    format!("run of {} took {}, median {}", ts(run.start), human(d), human(*median)),
                    format!(
                        "run of {} took {}, {:.1}x the median {}; {} updates synchronized. Check WSUS database maintenance and the upstream server",
                        ts(run.start),
                        human(d),
                        d / median.max(1.0),
                        human(*median),
                        run.updates_synchronized
                    ),
                );
            }
        }
    }
    out
}

fn stall_threshold(config: &TrackerConfig, median: Option<f64>) -> f64 {
    let floor = config.stall_after.num_seconds() as f64;
    median.map_or(floor, |m| floor.max(config.stall_factor * m))
}

fn secs(s: f64) -> Duration {
    Duration::milliseconds((s * 1000.0) as i64)
}

fn phase_name(phase: statmsg_schema::event::Phase) -> &'static str {
    match phase {
        statmsg_schema::event::Phase::WsusServer => "WSUS server sync",
        statmsg_schema::event::Phase::SiteDatabase => "site database sync",
        statmsg_schema::event::Phase::Replicas => "replica sync",
    }
}

fn stage_name(stage: statmsg_schema::event::ProgressStage) -> &'static str {
    match stage {
        statmsg_schema::event::ProgressStage::Wsus => "WSUS",
        statmsg_schema::event::ProgressStage::Sms => "SMS",
        statmsg_schema::event::ProgressStage::Replica => "replica WSUS",
    }
}

/// How far a child is behind its parent at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    pub parent: String,
    pub parent_version: Option<u64>,
    pub version: Option<u64>,
    /// When the parent reached the first version the child lacks.
    pub behind_since: Option<DateTime<Utc>>,
}

impl Lag {
    pub fn seconds(&self, now: DateTime<Utc>) -> f64 {
        self.behind_since.map_or(0.0, |t| (now - t).num_seconds().max(0) as f64)
    }
}

/// The lag of `child` behind `parent` at `now`, from the versions their successful runs reached.
pub fn lag(child: &SiteState, parent: &SiteState, now: DateTime<Utc>) -> Lag {
    let version = child.version_at(now);
    let parent_version = parent.version_at(now);
    let behind_since = parent
        .versions
        .iter()
        .take_while(|(_, t)| *t <= now)
        // Without a version of its own, a child lags from the first parent version after its
        // records begin.
        .find(|(v, t)| match version {
            Some(c) => *v > c,
            None => child.first_seen.is_some_and(|f| f <= *t),
        })
        .map(|(_, t)| *t);
    Lag { parent: parent.site.clone(), parent_version, version, behind_since }
}

pub fn child_lag_alert(
    child: &SiteState,
    lag: &Lag,
    config: &TrackerConfig,
    now: DateTime<Utc>,
) -> Option<Alert> {
    let behind = lag.behind_since?;
    let due = behind + config.child_lag_grace;
    if now <= due {
        return None;
    }
    let notified = "check that the parent's sync notification reached the child's WSyncMgr.box (replication, SMSDBMON) and the child's WsyncMgr.log";
    Some(Alert {
        kind: AlertKind::ChildLag,
        hierarchy: child.hierarchy.clone(),
        site: child.site.clone(),
        since: due,
        summary: summary(format!(
            "content version {} behind parent {} at {} since {}",
            lag.version.map_or("unknown".into(), |v| v.to_string()),
            lag.parent,
            lag.parent_version.map_or("?".into(), |v| v.to_string()),
            ts(behind),
        )),
        detail: format!(
            "content version {} behind parent {} at {} since {} ({}); last success {}; {notified}",
            lag.version.map_or("unknown".into(), |v| v.to_string()),
            lag.parent,
            lag.parent_version.map_or("?".into(), |v| v.to_string()),
            ts(behind),
            human(lag.seconds(now)),
            child.last_success.map_or("never".into(), ts),
        ),
    })
}
