//! The tracker's InfluxDB measurements (documented in `schema/README.md`):
//!
//! - `sync_run`: one point per run, at its start time; rewritten while the run changes, so
//!   the last write holds its outcome. Tags `hierarchy`, `site` only (a tag that changed during
//!   the run would make a second series).
//! - `site_sync_state`: one point per site per heartbeat, at the heartbeat time (rounded down to
//!   the heartbeat, so that a repeated write overwrites): how the site is doing at that moment,
//!   with one 0/1 field per alert kind, so that alert rules never depend on absent data.
//! - `site_alert`: one point per active alert per heartbeat, tagged with its kind and its stable
//!   one-line summary, so that an alert rule's labels carry the cause (the failure and its
//!   HRESULT) into the notification; the series of an episode ends when the alert does.
//! - `collector_status`: per site whose collector sent heartbeats, per heartbeat of the
//!   consumer: what the collector last said of itself and how long ago.
//! - `version_propagation`: per parent content version and child, at the time the parent
//!   reached it: when the child reached it and the delay (rewritten when the child does).

use chrono::{DateTime, Utc};
use statmsg_schema::event::Phase;
use statmsg_schema::line_protocol::{LineProtocolError, PointBuilder};

use super::{Alert, AlertKind, CollectorSeen, Outcome, Propagation, SiteView, SyncRun};

pub const SYNC_RUN: &str = "sync_run";
pub const SITE_SYNC_STATE: &str = "site_sync_state";
pub const VERSION_PROPAGATION: &str = "version_propagation";
pub const SITE_ALERT: &str = "site_alert";
pub const COLLECTOR_STATUS: &str = "collector_status";

fn nanos(t: DateTime<Utc>) -> Result<i64, LineProtocolError> {
    t.timestamp_nanos_opt().ok_or_else(|| LineProtocolError::TimestampOutOfRange(t.to_rfc3339()))
}

/// Appends the `sync_run` point of `run`.
pub fn write_sync_run(run: &SyncRun, out: &mut String) -> Result<(), LineProtocolError> {
    let at = nanos(run.start)?;
    let mut p = PointBuilder::new(out, SYNC_RUN)
        .tag("hierarchy", &run.hierarchy)?
        .tag("site", &run.site)?
        .field_str("outcome", run.outcome.as_str())
        .field_bool("running", run.outcome == Outcome::Running)
        .field_bool("succeeded", run.outcome == Outcome::Succeeded)
        .field_str("trigger", run.trigger.as_str())
        .field_bool("full", run.full)
        .field_int("updates_synchronized", run.updates_synchronized as i64)
        .field_int("updates_failed", run.updates_failed as i64)
        .field_int("retries", i64::from(run.retries))
        .field_int("last_event_ms", run.last_event.timestamp_millis());
    if let Some(end) = run.end {
        p = p.field_int("end_ms", end.timestamp_millis());
    }
    if let Some(d) = run.duration_s {
        p = p.field_float("duration_s", d);
    }
    for (key, phase) in
        [("wsus_s", Phase::WsusServer), ("site_db_s", Phase::SiteDatabase), ("replicas_s", Phase::Replicas)]
    {
        if let Some(s) = run.phase_seconds(phase) {
            p = p.field_float(key, s);
        }
    }
    let ints = [
        ("content_version_before", run.content_version_before),
        ("content_version", run.content_version),
        ("items_updated", run.items_updated),
        ("retry_in_minutes", run.retry_in_minutes.map(u64::from)),
    ];
    for (key, value) in ints {
        if let Some(v) = value {
            p = p.field_int(key, v as i64);
        }
    }
    if let Some(f) = &run.failure {
        p = p.field_str("failure", &f.message);
        if let Some(s) = &f.source {
            p = p.field_str("failure_source", s);
        }
        if let Some(h) = &f.hresult {
            p = p.field_str("hresult", h);
        }
    }
    if let Some(parent) = &run.parent {
        p = p.field_str("parent", parent);
    }
    if !run.children_notified.is_empty() {
        p = p.field_str("children_notified", &run.children_notified.join(","));
    }
    p.finish(at)
}

/// Appends the `version_propagation` point of `row`.
pub fn write_propagation(row: &Propagation, out: &mut String) -> Result<(), LineProtocolError> {
    let at = nanos(row.parent_reached)?;
    let mut p = PointBuilder::new(out, VERSION_PROPAGATION)
        .tag("child", &row.child)?
        .tag("hierarchy", &row.hierarchy)?
        .tag("parent", &row.parent)?
        .field_int("version", row.version as i64)
        .field_bool("reached", row.child_reached.is_some());
    if let Some(t) = row.child_reached {
        p = p.field_int("child_reached_ms", t.timestamp_millis());
    }
    if let Some(d) = row.delay_s {
        p = p.field_float("delay_s", d);
    }
    p.finish(at)
}

/// Appends the `site_sync_state` point of `view` at `at`.
pub fn write_site_state(
    view: &SiteView,
    at: DateTime<Utc>,
    out: &mut String,
) -> Result<(), LineProtocolError> {
    let at = nanos(at)?;
    let mut p = PointBuilder::new(out, SITE_SYNC_STATE)
        .tag("hierarchy", &view.hierarchy)?
        .tag("site", &view.site)?
        .field_str("status", &view.status)
        .field_float("running_s", view.running_s)
        .field_int("version_lag", view.version_lag as i64)
        .field_float("lag_s", view.lag_s)
        .field_int("alert_count", view.alerts.len() as i64);
    for kind in AlertKind::ALL {
        let key = match kind {
            AlertKind::Stalled => "alert_stalled",
            AlertKind::Failed => "alert_failed",
            AlertKind::MissingSuccess => "alert_missing_success",
            AlertKind::Slow => "alert_slow",
            AlertKind::ChildLag => "alert_child_lag",
            AlertKind::Silent => "alert_silent",
        };
        p = p.field_int(key, i64::from(view.alerts.contains(&kind)));
    }
    let alerts: Vec<&str> = view.alerts.iter().map(|a| a.as_str()).collect();
    p = p.field_str("alerts", &alerts.join(","));
    if let Some(age) = view.last_success_age_s {
        p = p.field_float("last_success_age_s", age);
    }
    if let Some(t) = view.last_success {
        p = p.field_int("last_success_ms", t.timestamp_millis());
    }
    if let Some(age) = view.last_heartbeat_age_s {
        p = p.field_float("last_heartbeat_age_s", age);
    }
    if let Some(d) = view.last_duration_s {
        p = p.field_float("last_duration_s", d);
    }
    if let Some(d) = view.median_duration_s {
        p = p.field_float("median_duration_s", d);
    }
    if let Some(v) = view.content_version {
        p = p.field_int("content_version", v as i64);
    }
    if let Some(v) = view.parent_version {
        p = p.field_int("parent_version", v as i64);
    }
    if let Some(parent) = &view.parent {
        p = p.field_str("parent", parent);
    }
    p.finish(at)
}

/// Appends the `site_alert` point of an active `alert` at `at` (the heartbeat time).
///
/// Its summary is a tag, so that alerting sees it as a label. Line protocol cannot carry every
/// backslash in a tag value (see `statmsg_schema::line_protocol`): there they read `/`; the
/// `detail` field holds the text as it is.
pub fn write_site_alert(
    alert: &Alert,
    parent: Option<&str>,
    at: DateTime<Utc>,
    out: &mut String,
) -> Result<(), LineProtocolError> {
    let at = nanos(at)?;
    let summary = alert.summary.replace('\\', "/");
    let mut p = PointBuilder::new(out, SITE_ALERT)
        .tag("hierarchy", &alert.hierarchy)?
        .tag("kind", alert.kind.as_str())?
        .tag("site", &alert.site)?
        .tag("summary", &summary)?
        .field_int("active", 1)
        .field_int("since_ms", alert.since.timestamp_millis())
        .field_str("detail", &alert.detail);
    if let Some(parent) = parent {
        p = p.field_str("parent", parent);
    }
    p.finish(at)
}

/// Appends the `collector_status` point of a site's collector at `at` (the heartbeat time).
pub fn write_collector_status(
    hierarchy: &str,
    site: &str,
    seen: &CollectorSeen,
    now: DateTime<Utc>,
    at: DateTime<Utc>,
    out: &mut String,
) -> Result<(), LineProtocolError> {
    let at = nanos(at)?;
    let status = &seen.status;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let age = (now - seen.last_heartbeat).num_milliseconds().max(0) as f64 / 1000.0;
    let mut p = PointBuilder::new(out, COLLECTOR_STATUS)
        .tag("hierarchy", hierarchy)?
        .tag("site", site)?
        .field_str("host", &seen.host)
        .field_str("version", &status.version)
        .field_int("interval_s", count(status.interval_s))
        .field_int("files_watched", count(status.files_watched))
        .field_int("unread_bytes", count(status.unread_bytes))
        .field_int("spool_bytes", count(status.spool_bytes))
        .field_int("spool_records", count(status.spool_records))
        .field_int("last_heartbeat_ms", seen.last_heartbeat.timestamp_millis())
        .field_float("heartbeat_age_s", age);
    if let Some(t) = status.last_rollover {
        p = p.field_int("last_rollover_ms", t.timestamp_millis());
    }
    p.finish(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Failure, RunTrigger};

    fn run() -> SyncRun {
        let start = DateTime::parse_from_rfc3339("2024-03-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let mut run = SyncRun::new("contoso", "CS1", start, RunTrigger::Schedule);
        run.outcome = Outcome::Failed;
        run.end = Some(start + chrono::Duration::seconds(90));
        run.duration_s = Some(90.0);
        run.failure = Some(Failure {
            message: "bad \"thing\"\nx=1,y=2 z".into(),
            source: Some("Src".into()),
            hresult: Some("0x80131500".into()),
        });
        run
    }

    #[test]
    fn a_run_is_one_point_at_its_start_and_hostile_text_stays_in_its_field() {
        let mut out = String::new();
        write_sync_run(&run(), &mut out).unwrap();
        assert!(out.starts_with("sync_run,hierarchy=contoso,site=CS1 outcome=\"failed\",running=false,succeeded=false,trigger=\"schedule\","), "{out}");
        assert!(out.contains("failure=\"bad \\\"thing\\\"\nx=1,y=2 z\""), "{out}");
        assert!(out.ends_with(" 1709287200000000000\n"), "{out}");
        assert!(out.contains("duration_s=90.0,"), "{out}");
    }

    #[test]
    fn a_site_state_has_every_alert_field() {
        let view = SiteView {
            hierarchy: "contoso".into(),
            site: "PS1".into(),
            parent: Some("CS1".into()),
            children: vec![],
            status: "running".into(),
            last_success: None,
            last_success_age_s: None,
            last_duration_s: None,
            median_duration_s: None,
            running_s: 7200.5,
            content_version: Some(33),
            parent_version: Some(34),
            version_lag: 1,
            lag_s: 9000.0,
            alerts: vec![AlertKind::Stalled, AlertKind::ChildLag],
            last_record: None,
            last_heartbeat_age_s: Some(42.5),
        };
        let mut out = String::new();
        let at = DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z").unwrap().with_timezone(&Utc);
        write_site_state(&view, at, &mut out).unwrap();
        for field in [
            "alert_stalled=1i",
            "alert_failed=0i",
            "alert_missing_success=0i",
            "alert_slow=0i",
            "alert_child_lag=1i",
            "alert_silent=0i",
            "last_heartbeat_age_s=42.5",
            "alerts=\"stalled,child_lag\"",
            "version_lag=1i",
            "parent_version=34i",
        ] {
            assert!(out.contains(field), "{field} in {out}");
        }
    }

    #[test]
    fn a_propagation_row_is_a_point_at_the_time_the_parent_reached_the_version() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let row = Propagation {
            hierarchy: "contoso".into(),
            parent: "CS1".into(),
            child: "PS1".into(),
            version: 34,
            parent_reached: t("2024-03-01T10:00:00Z"),
            child_reached: Some(t("2024-03-01T10:07:30Z")),
            delay_s: Some(450.0),
        };
        let mut out = String::new();
        write_propagation(&row, &mut out).unwrap();
        assert_eq!(
            out,
            "version_propagation,child=PS1,hierarchy=contoso,parent=CS1 version=34i,reached=true,child_reached_ms=1709287650000i,delay_s=450.0 1709287200000000000\n"
        );
    }

    #[test]
    fn an_alert_point_carries_its_summary_as_a_tag_that_hostile_text_cannot_break() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let alert = Alert {
            kind: AlertKind::Failed,
            hierarchy: "contoso".into(),
            site: "CS1".into(),
            since: t("2024-03-01T10:00:00Z"),
            detail: "1 failed run(s)\nx=1 \"q\"".into(),
            summary: "[0x80131500] C:\\Logs\\ a=b,c \\".into(),
        };
        let mut out = String::new();
        write_site_alert(&alert, Some("CAS"), t("2024-03-01T12:00:00Z"), &mut out).unwrap();
        assert_eq!(
            out,
            "site_alert,hierarchy=contoso,kind=failed,site=CS1,summary=[0x80131500]\\ C:/Logs/\\ a\\=b\\,c\\ / active=1i,since_ms=1709287200000i,detail=\"1 failed run(s)\nx=1 \\\"q\\\"\",parent=\"CAS\" 1709294400000000000\n"
        );
    }

    #[test]
    fn a_collector_status_says_what_the_collector_last_said_and_how_long_ago() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let seen = CollectorSeen {
            host: "cm1 \"x\"".into(),
            last_heartbeat: t("2024-03-01T11:59:30Z"),
            status: statmsg_schema::CollectorStatus {
                version: "0.1.0".into(),
                interval_s: 60,
                files_watched: 3,
                unread_bytes: 10,
                spool_bytes: 0,
                spool_records: 0,
                last_rollover: Some(t("2024-03-01T09:12:00Z")),
            },
        };
        let mut out = String::new();
        let (now, at) = (t("2024-03-01T12:00:15Z"), t("2024-03-01T12:00:00Z"));
        write_collector_status("contoso", "CS1", &seen, now, at, &mut out).unwrap();
        assert_eq!(
            out,
            "collector_status,hierarchy=contoso,site=CS1 host=\"cm1 \\\"x\\\"\",version=\"0.1.0\",interval_s=60i,files_watched=3i,unread_bytes=10i,spool_bytes=0i,spool_records=0i,last_heartbeat_ms=1709294370000i,heartbeat_age_s=45.0,last_rollover_ms=1709284320000i 1709294400000000000\n"
        );
    }
}
