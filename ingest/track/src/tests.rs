use chrono::{NaiveDateTime, TimeZone};

use super::*;
use statmsg_parse::{for_each_record, FileKind};

const CONTOSO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/contoso");

fn utc(s: &str) -> DateTime<Utc> {
    Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
}

/// Feeds a file's records to `site` of hierarchy `h`, with positions.
fn feed(tracker: &mut Tracker, h: &str, site: &str, bytes: &[u8], source: u64) {
    let (kind, bom) = FileKind::detect(bytes);
    for_each_record(kind, &bytes[bom..], bom as u64, |offset, record| {
        tracker.observe(h, site, record, Some(Position { source, offset }));
    });
}

/// A server-format line at local `time` (`MM-DD-YYYY HH:MM:SS.mmm`) with `bias`.
fn line(message: &str, time: &str, bias: i32) -> String {
    let local = chrono::NaiveDateTime::parse_from_str(time, "%m-%d-%Y %H:%M:%S%.3f").unwrap();
    let mut line = String::new();
    statmsg_parse::synth::write_server_line(&mut line, message, "SMS_WSUS_SYNC_MANAGER", local, bias, 1);
    line
}

fn statmsg(id: u16, site: &str, time: &str, bias: i32, istr0: &str, istr1: &str, le: &str) -> String {
    let sev = if id == 6703 { "E" } else { "I" };
    line(
        &format!(
            "STATMSG: ID={id} SEV={sev} LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=X SITE={site} PID=1 TID=1 ISTR0=\"{istr0}\" ISTR1=\"{istr1}\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0{le}"
        ),
        time,
        bias,
    )
}

/// A successful scheduled top-level run on `day` (MM-DD-YYYY) from `start` to `end` (HH:MM:SS).
fn good_run(site: &str, day: &str, start: &str, end: &str, version: u64) -> String {
    let t = |hms: &str| format!("{day} {hms}.000");
    [
        line("Wakeup for scheduled regular sync", &t(start), 0),
        line("Starting Sync", &t(start), 0),
        line("Performing sync on regular schedule", &t(start), 0),
        statmsg(6701, site, &t(start), 0, "", "", ""),
        line(&format!("Synchronizing WSUS server {site}.contoso.com ..."), &t(start), 0),
        line(
            &format!("Set content version of update source {{C2D1}} for site {site} to {version}"),
            &t(end),
            0,
        ),
        statmsg(6702, site, &t(end), 0, "", "", ""),
        line(&format!("Sync succeeded. Setting sync alert to canceled state on site {site}"), &t(end), 0),
    ]
    .concat()
}

#[test]
fn the_reference_hierarchy_is_reconstructed() {
    let mut t = Tracker::new(TrackerConfig::default());
    for (site, file) in
        [("CS1", "WsyncMgr.log"), ("CS1", "SMSProv.log"), ("PS1", "WsyncMgr.log"), ("PS2", "WsyncMgr.log")]
    {
        let bytes = std::fs::read(format!("{CONTOSO}/{site}/{file}")).unwrap();
        feed(&mut t, "contoso", site, &bytes, file.len() as u64);
    }
    let runs = t.take_runs();
    let cs1: Vec<&SyncRun> = runs.iter().filter(|r| r.site == "CS1").collect();
    assert_eq!(cs1.len(), 2);
    assert_eq!(cs1[0].trigger, RunTrigger::Manual);
    assert_eq!(cs1[0].outcome, Outcome::Succeeded);
    assert_eq!(cs1[0].duration_s, Some(233.0), "the logged Sync time 0d00h03m53s");
    assert_eq!(cs1[0].start, utc("2014-01-16 18:53:50") + Duration::milliseconds(147), "bias +480 = PST");
    assert_eq!((cs1[0].content_version_before, cs1[0].content_version), (None, Some(34)));
    assert_eq!(cs1[0].items_updated, Some(130));
    assert_eq!(cs1[0].updates_synchronized, 1);
    assert_eq!(cs1[0].children_notified, vec!["PS1", "PS2"]);
    let phases: Vec<Phase> = cs1[0].phases.iter().map(|p| p.phase).collect();
    assert_eq!(phases, vec![Phase::WsusServer, Phase::SiteDatabase]);
    assert_eq!(
        cs1[0].phase_seconds(Phase::WsusServer).map(f64::round),
        Some(73.0),
        "6704 to Done synchronizing WSUS Server"
    );
    assert_eq!(cs1[1].trigger, RunTrigger::Schedule);
    assert_eq!((cs1[1].content_version_before, cs1[1].content_version), (Some(34), Some(35)));

    let ps1 = runs.iter().find(|r| r.site == "PS1").unwrap();
    assert_eq!(
        (ps1.trigger, ps1.outcome, ps1.parent.as_deref()),
        (RunTrigger::Parent, Outcome::Succeeded, Some("CS1"))
    );
    assert_eq!(ps1.duration_s, Some(177.0));
    assert_eq!(ps1.content_version, Some(34));

    let ps1_state = t.site("contoso", "PS1").unwrap();
    assert_eq!(t.parent_of(ps1_state).map(|p| p.site.as_str()), Some("CS1"));
    let prop: Vec<Propagation> = t.propagation().into_iter().filter(|p| p.child == "PS1").collect();
    assert_eq!(prop[0].version, 34);
    assert!(prop[0].delay_s.unwrap() > 0.0 && prop[0].delay_s.unwrap() < 3600.0);
}

use statmsg_schema::event::Phase;

fn tracker_with(log: &str) -> Tracker {
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, "h", "CS1", log.as_bytes(), 1);
    t
}

#[test]
fn a_run_started_over_an_unfinished_one_is_abandoned() {
    let log = [
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        line("Synchronizing WSUS server a ...", "03-01-2024 10:00:01.000", 0),
        line("Wakeup for scheduled regular sync", "03-01-2024 14:00:00.000", 0),
        line("Starting Sync", "03-01-2024 14:00:00.000", 0),
        line("Performing sync on regular schedule", "03-01-2024 14:00:00.000", 0),
    ]
    .concat();
    let mut t = tracker_with(&log);
    let runs = t.take_runs();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].outcome, runs[0].end), (Outcome::Abandoned, Some(utc("2024-03-01 14:00:00"))));
    assert_eq!((runs[1].outcome, runs[1].trigger), (Outcome::Running, RunTrigger::Schedule));
}

#[test]
fn a_failure_carries_message_source_hresult_and_resolves_on_success() {
    let log = [
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        line("Performing sync on regular schedule", "03-01-2024 10:00:00.000", 0),
        line("Sync failed: WSUS server not configured. Please refer to WCM.log for configuration error details.. Source: CWSyncMgr::DoSync", "03-01-2024 10:00:05.000", 0),
        statmsg(6703, "CS1", "03-01-2024 10:00:05.000", 0, "CWSyncMgr::DoSync", "WSUS server not configured", " LE=0X8013150a"),
        line("Sync failed. Will retry in 60 minutes", "03-01-2024 10:00:05.000", 0),
        line("Wakeup for a polling cycle", "03-01-2024 11:00:05.000", 0),
        line("Starting Sync", "03-01-2024 11:00:05.000", 0),
        line("Performing sync on retry schedule", "03-01-2024 11:00:05.000", 0),
    ]
    .concat();
    let mut t = tracker_with(&log);
    let runs = t.take_runs();
    let failure = runs[0].failure.clone().unwrap();
    assert_eq!(
        failure.message,
        "WSUS server not configured. Please refer to WCM.log for configuration error details."
    );
    assert_eq!(
        (failure.source.as_deref(), failure.hresult.as_deref()),
        (Some("CWSyncMgr::DoSync"), Some("0x8013150A"))
    );
    assert_eq!((runs[0].outcome, runs[0].retry_in_minutes), (Outcome::Failed, Some(60)));
    assert_eq!((runs[1].trigger, runs[1].retries), (RunTrigger::Retry, 1));
    let now = utc("2024-03-01 11:30:00");
    let failed: Vec<Alert> = t.alerts(now).into_iter().filter(|a| a.kind == AlertKind::Failed).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].since, utc("2024-03-01 10:00:05"));
    assert!(
        failed[0].detail.contains("0x8013150A") && failed[0].detail.contains("retry in 60 min"),
        "{}",
        failed[0].detail
    );

    feed(&mut t, "h", "CS1", statmsg(6702, "CS1", "03-01-2024 11:20:00.000", 0, "", "", "").as_bytes(), 2);
    assert!(t.alerts(now).iter().all(|a| a.kind != AlertKind::Failed), "resolved by the success");
}

#[test]
fn stalled_uses_the_larger_of_the_threshold_and_k_medians() {
    // Five runs of 1 h: the median makes the stall threshold 3 h, not 2 h.
    let mut log = String::new();
    for d in 1..=5 {
        log += &good_run("CS1", &format!("03-0{d}-2024"), "01:00:00", "02:00:00", d);
    }
    log += &line("Starting Sync", "03-06-2024 01:00:00.000", 0);
    log += &line("Synchronizing WSUS server cs1 ...", "03-06-2024 01:00:01.000", 0);
    log += &line(
        "sync: WSUS synchronizing updates, processed 10 out of 130 items (7%)",
        "03-06-2024 01:10:00.000",
        0,
    );
    let t = tracker_with(&log);
    let stalled = |now| t.alerts(utc(now)).into_iter().find(|a| a.kind == AlertKind::Stalled);
    assert!(stalled("2024-03-06 03:30:00").is_none(), "2.5 h is under 3 x the 1 h median");
    let alert = stalled("2024-03-06 04:30:00").unwrap();
    assert_eq!(alert.since, utc("2024-03-06 04:00:00"));
    assert!(alert.detail.contains("10/130"), "{}", alert.detail);
    // Without history the floor of 2 h applies.
    let t = tracker_with(&line("Starting Sync", "03-06-2024 01:00:00.000", 0));
    assert_eq!(
        t.alerts(utc("2024-03-06 03:00:01")).iter().filter(|a| a.kind == AlertKind::Stalled).count(),
        1
    );
}

#[test]
fn slow_and_missing_success() {
    let mut log = String::new();
    for d in 1..=6 {
        log += &good_run("CS1", &format!("03-0{d}-2024"), "01:00:00", "01:10:00", d);
    }
    log += &good_run("CS1", "03-07-2024", "01:00:00", "03:00:00", 7); // 12x the median
    let t = tracker_with(&log);
    let kinds = |now| t.alerts(utc(now)).into_iter().map(|a| a.kind).collect::<Vec<_>>();
    assert_eq!(kinds("2024-03-07 04:00:00"), vec![AlertKind::Slow]);
    assert_eq!(kinds("2024-03-08 05:00:01"), vec![AlertKind::MissingSuccess, AlertKind::Slow]);
    let missing =
        t.alerts(utc("2024-03-08 06:00:00")).into_iter().find(|a| a.kind == AlertKind::MissingSuccess);
    assert_eq!(missing.unwrap().since, utc("2024-03-08 05:00:00"), "26 h after the last success");

    let mut config = TrackerConfig::default();
    config.expected_interval_overrides.insert("h/CS1".into(), Duration::days(7));
    let mut t = Tracker::new(config);
    feed(&mut t, "h", "CS1", log.as_bytes(), 1);
    assert!(t.alerts(utc("2024-03-10 00:00:00")).iter().all(|a| a.kind != AlertKind::MissingSuccess));
}

#[test]
fn a_dst_change_inside_a_run_keeps_its_true_duration() {
    // US Eastern, 2024-03-10: 01:59 EST (+300) is followed by 03:00 EDT (+240).
    let log = [
        line("Starting Sync", "03-10-2024 01:50:00.000", 300),
        line("Synchronizing WSUS server a ...", "03-10-2024 01:50:01.000", 300),
        statmsg(6702, "CS1", "03-10-2024 03:05:00.000", 240, "", "", ""),
    ]
    .concat();
    let mut t = tracker_with(&log);
    let run = t.take_runs().pop().unwrap();
    assert_eq!(run.duration_s, Some(15.0 * 60.0), "15 minutes, not 1 h 15");
}

#[test]
fn sites_interleaved_in_any_order_and_duplicates_give_the_same_runs() {
    let cs1 = std::fs::read(format!("{CONTOSO}/CS1/WsyncMgr.log")).unwrap();
    let ps1 = std::fs::read(format!("{CONTOSO}/PS1/WsyncMgr.log")).unwrap();
    let mut sequential = Tracker::new(TrackerConfig::default());
    feed(&mut sequential, "c", "CS1", &cs1, 1);
    feed(&mut sequential, "c", "PS1", &ps1, 2);
    let mut expected = sequential.take_runs();
    expected.sort_by(|a, b| (&a.site, a.start).cmp(&(&b.site, b.start)));

    // Child first, line by line alternating, every record delivered twice.
    let lines = |b: &[u8]| -> Vec<(u64, String)> {
        let text = String::from_utf8_lossy(b).into_owned();
        let mut offset = 0;
        text.split_inclusive('\n')
            .map(|l| {
                let at = offset;
                offset += l.len() as u64;
                (at, l.to_owned())
            })
            .collect()
    };
    let (a, b) = (lines(&ps1), lines(&cs1));
    let mut t = Tracker::new(TrackerConfig::default());
    for i in 0..a.len().max(b.len()) {
        for (site, src, list) in [("PS1", 2, &a), ("CS1", 1, &b)] {
            if let Some((offset, l)) = list.get(i) {
                for _ in 0..2 {
                    let record = statmsg_parse::parse_line(l.trim_start_matches('\u{feff}'));
                    t.observe("c", site, &record, Some(Position { source: src, offset: *offset }));
                }
            }
        }
    }
    let mut got = t.take_runs();
    got.sort_by(|a, b| (&a.site, a.start).cmp(&(&b.site, b.start)));
    assert_eq!(got, expected);
    assert!(t.site("c", "CS1").unwrap().duplicates > 60);
    assert_eq!(t.propagation(), sequential.propagation());
}

#[test]
fn a_child_behind_its_parent_alerts_after_the_grace_period() {
    let parent = [
        good_run("CS1", "03-01-2024", "01:00:00", "01:10:00", 40),
        line("Sending sync notification to child site(s): PS1", "03-01-2024 01:10:01.000", 0),
        good_run("CS1", "03-02-2024", "01:00:00", "01:10:00", 41),
    ]
    .concat();
    let child = [
        good_run("PS1", "03-01-2024", "01:20:00", "01:25:00", 40),
        line("Wakeup for a polling cycle", "03-02-2024 05:00:00.000", 0),
    ]
    .concat();
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, "h", "CS1", parent.as_bytes(), 1);
    feed(&mut t, "h", "PS1", child.as_bytes(), 2);
    let lag_alert = |now| t.alerts(utc(now)).into_iter().find(|a| a.kind == AlertKind::ChildLag);
    assert!(lag_alert("2024-03-02 03:00:00").is_none(), "within the 2 h grace");
    let alert = lag_alert("2024-03-02 03:10:01").unwrap();
    assert_eq!((alert.site.as_str(), alert.since), ("PS1", utc("2024-03-02 03:10:00")));
    assert!(alert.detail.contains("40 behind parent CS1 at 41"), "{}", alert.detail);
    let view = t.views(utc("2024-03-02 04:10:00")).into_iter().find(|v| v.site == "PS1").unwrap();
    assert_eq!((view.version_lag, view.lag_s, view.parent.as_deref()), (1, 3.0 * 3600.0, Some("CS1")));
    let prop = t.propagation();
    assert_eq!(prop.iter().find(|p| p.version == 40).unwrap().delay_s, Some(15.0 * 60.0));
    assert_eq!(prop.iter().find(|p| p.version == 41).unwrap().child_reached, None);
    let recent = t.recent_propagation(t.site("h", "PS1").unwrap(), 1);
    assert_eq!(recent.iter().map(|p| (p.version, p.child_reached)).collect::<Vec<_>>(), vec![(41, None)]);
}

#[test]
fn state_persisted_mid_run_continues_the_same_run() {
    let log = good_run("CS1", "03-01-2024", "01:00:00", "01:10:00", 5);
    let cut = log.match_indices("\r\n").nth(4).unwrap().0 + 2; // after the phase started
    let whole = tracker_with(&log).site("h", "CS1").unwrap().clone();

    let mut first = Tracker::new(TrackerConfig::default());
    feed(&mut first, "h", "CS1", &log.as_bytes()[..cut], 1);
    let saved = serde_json::to_string(first.site("h", "CS1").unwrap()).unwrap();
    let mut second = Tracker::new(TrackerConfig::default());
    second.restore(serde_json::from_str(&saved).unwrap());
    // The restart redelivers from an earlier offset: the watermark skips what was applied.
    let (kind, _) = FileKind::detect(log.as_bytes());
    for_each_record(kind, log.as_bytes(), 0, |offset, record| {
        second.observe("h", "CS1", record, Some(Position { source: 1, offset }));
    });
    let mut resumed = second.site("h", "CS1").unwrap().clone();
    assert_eq!(resumed.duplicates, 5, "the five records applied before the restart");
    resumed.duplicates = 0;
    assert_eq!(resumed, whole);
}

// Cases from a review of the tracker: each failed before its fix.

#[test]
fn a_late_6701_stays_in_its_run() {
    // `Starting Sync`, SUP list, then 6701 three minutes later (a slow SCF read): one run.
    let log = [
        line("Wakeup for scheduled regular sync", "03-01-2024 10:00:00.000", 0),
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        line("Performing sync on regular schedule", "03-01-2024 10:00:00.010", 0),
        line("Read SUPs from SCF for cs1.contoso.com", "03-01-2024 10:00:00.300", 0),
        statmsg(6701, "CS1", "03-01-2024 10:03:00.000", 0, "", "", ""),
        statmsg(6702, "CS1", "03-01-2024 10:10:00.000", 0, "", "", ""),
        // The next run's 6701 without its `Starting Sync`: a new run.
        statmsg(6701, "CS1", "03-02-2024 10:00:00.000", 0, "", "", ""),
    ]
    .concat();
    let runs = tracker_with(&log).take_runs();
    let summary: Vec<_> = runs.iter().map(|r| (r.start, r.outcome, r.trigger)).collect();
    assert_eq!(
        summary,
        vec![
            (utc("2024-03-01 10:00:00"), Outcome::Succeeded, RunTrigger::Schedule),
            (utc("2024-03-02 10:00:00"), Outcome::Running, RunTrigger::Unknown)
        ]
    );
}

#[test]
fn a_child_without_version_lags_behind_a_parent_version_reached_after_its_records_begin() {
    let parent = [
        good_run("CS1", "03-01-2024", "01:00:00", "01:10:00", 40),
        line("Sending sync notification to child site(s): PS1", "03-01-2024 01:10:01.000", 0),
        good_run("CS1", "03-03-2024", "01:00:00", "01:10:00", 41),
    ]
    .concat();
    let child = [
        line("Wakeup for a polling cycle", "03-02-2024 05:00:00.000", 0),
        line("Wakeup for a polling cycle", "03-04-2024 05:00:00.000", 0),
    ]
    .concat();
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, "h", "CS1", parent.as_bytes(), 1);
    feed(&mut t, "h", "PS1", child.as_bytes(), 2);
    let lag =
        t.alerts(utc("2024-03-04 05:00:00")).into_iter().find(|a| a.kind == AlertKind::ChildLag).unwrap();
    assert_eq!((lag.site.as_str(), lag.since), ("PS1", utc("2024-03-03 03:10:00")));
}

#[test]
fn a_rolled_file_is_a_new_source_and_loses_nothing_in_the_same_millisecond() {
    let old = [
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        statmsg(6702, "CS1", "03-01-2024 10:05:00.000", 0, "", "", ""),
    ]
    .concat();
    let new = [
        line(
            "Updated 130 items in SMS database, new update source content version is 34",
            "03-01-2024 10:05:00.000",
            0,
        ),
        line("Sync time: 0d00h05m00s", "03-01-2024 10:05:00.000", 0),
    ]
    .concat();
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, "h", "CS1", old.as_bytes(), 7);
    feed(&mut t, "h", "CS1", new.as_bytes(), 8); // the collector's file identity changed
    let s = t.site("h", "CS1").unwrap();
    assert_eq!((s.duplicates, s.content_version), (0, Some(34)));
    // Without a file identity (one source for the path), a later time still tells a new record.
    let later = line("Wakeup for a polling cycle", "03-01-2024 11:00:00.000", 0);
    feed(&mut t, "h", "CS1", later.as_bytes(), 8);
    assert_eq!(t.site("h", "CS1").unwrap().duplicates, 0);
}

#[test]
fn a_clock_stepped_back_inside_a_file_drops_nothing() {
    let log = [
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        line("Synchronizing WSUS server a ...", "03-01-2024 10:03:00.000", 0),
        statmsg(6702, "CS1", "03-01-2024 10:01:30.000", 0, "", "", ""),
    ]
    .concat();
    let t = tracker_with(&log);
    let s = t.site("h", "CS1").unwrap();
    assert_eq!((s.duplicates, s.run.as_ref().unwrap().outcome), (0, Outcome::Succeeded));
}

#[test]
fn an_outcome_of_a_run_begun_before_the_first_record_is_a_run() {
    let log = [
        line(
            "sync: SMS synchronizing updates, processed 5 out of 5 items (100%)",
            "03-01-2024 10:04:00.000",
            0,
        ),
        statmsg(6702, "CS1", "03-01-2024 10:05:00.000", 0, "", "", ""),
        line("Sync time: 0d00h05m00s", "03-01-2024 10:05:00.030", 0),
        // A failure after a wake-up whose start line is missing: a run from the wake-up.
        line("Wakeup for scheduled regular sync", "03-02-2024 10:00:00.000", 0),
        line("Sync failed: boom. Source: x", "03-02-2024 10:01:00.000", 0),
    ]
    .concat();
    let mut t = tracker_with(&log);
    let runs: Vec<_> =
        t.take_runs().into_iter().map(|r| (r.start, r.outcome, r.trigger, r.duration_s)).collect();
    assert_eq!(
        runs,
        vec![
            (utc("2024-03-01 10:04:00"), Outcome::Succeeded, RunTrigger::Unknown, Some(300.0)),
            (utc("2024-03-02 10:00:00"), Outcome::Failed, RunTrigger::Schedule, Some(60.0)),
        ]
    );
    assert_eq!(t.site("h", "CS1").unwrap().last_success, Some(utc("2024-03-01 10:05:00")));
    assert!(t.alerts(utc("2024-03-02 10:30:00")).iter().any(|a| a.kind == AlertKind::Failed));
}

#[test]
fn failed_lasts_until_a_success_even_past_an_abandoned_retry() {
    let log = [
        line("Starting Sync", "03-01-2024 10:00:00.000", 0),
        line("Sync failed: boom. Source: x", "03-01-2024 10:00:05.000", 0),
        line("Sync failed. Will retry in 60 minutes", "03-01-2024 10:00:05.010", 0),
        line("Wakeup for a polling cycle", "03-01-2024 11:00:05.000", 0),
        line("Starting Sync", "03-01-2024 11:00:05.000", 0),
        line("Performing sync on retry schedule", "03-01-2024 11:00:05.000", 0),
        line("Wakeup for scheduled regular sync", "03-01-2024 12:00:00.000", 0),
        line("Starting Sync", "03-01-2024 12:00:00.000", 0),
    ]
    .concat();
    let t = tracker_with(&log);
    let failed =
        t.alerts(utc("2024-03-01 12:30:00")).into_iter().find(|a| a.kind == AlertKind::Failed).unwrap();
    assert_eq!(failed.since, utc("2024-03-01 10:00:05"));
    assert!(failed.detail.contains("boom") && failed.detail.contains("retry in 60 min"), "{}", failed.detail);
}

#[test]
fn other_components_and_two_runs_in_one_second() {
    let log = [
        line("Wakeup for scheduled regular sync", "03-01-2024 10:00:00.000", 0),
        line("Performing sync on regular schedule", "03-01-2024 10:00:00.010", 0),
        statmsg(6701, "CS1", "03-01-2024 10:00:01.400", 0, "", "", ""),
        line(
            "STATMSG: ID=6703 SEV=E LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_DATABASE_NOTIFICATION_MONITOR\" SYS=X SITE=CS1 PID=1 TID=1 ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0",
            "03-01-2024 10:00:02.000",
            0,
        ),
        statmsg(6702, "CS1", "03-01-2024 10:05:00.000", 0, "", "", ""),
        line("Sync time: 0d00h04m59s", "03-01-2024 10:05:00.030", 0),
        line("Starting Sync", "03-01-2024 11:00:00.100", 0),
        line("Sync failed: WSUS server not configured. Please refer to WCM.log for configuration error details.. Source: CWSyncMgr::DoSync", "03-01-2024 11:00:00.200", 0),
        line("Wakeup by inbox drop", "03-01-2024 11:00:00.500", 0),
        line("Found local sync request file", "03-01-2024 11:00:00.600", 0),
        line("Starting Sync", "03-01-2024 11:00:00.700", 0),
        statmsg(6701, "CS1", "03-01-2024 11:00:00.900", 0, "", "", ""),
    ]
    .concat();
    let runs: Vec<_> = tracker_with(&log).take_runs().into_iter().map(|r| (r.outcome, r.trigger)).collect();
    assert_eq!(
        runs,
        vec![
            (Outcome::Succeeded, RunTrigger::Schedule),
            (Outcome::Failed, RunTrigger::Unknown),
            (Outcome::Running, RunTrigger::Manual)
        ]
    );
}

fn heartbeat(site: &str, time: &str) -> CollectorHeartbeat {
    CollectorHeartbeat {
        schema: 1,
        hierarchy: "contoso".into(),
        site: site.into(),
        host: format!("{site}-server"),
        time: utc(time),
        collector: statmsg_schema::CollectorStatus {
            version: "0.1.0".into(),
            interval_s: 60,
            files_watched: 2,
            unread_bytes: 0,
            spool_bytes: 512,
            spool_records: 3,
            last_rollover: None,
        },
    }
}

#[test]
fn silent_is_raised_for_the_site_whose_collector_stopped_and_ends_when_it_is_back() {
    let mut t = Tracker::new(TrackerConfig::default());
    // A site with records but no collector heartbeat (an older collector, or offline) is never silent.
    feed(&mut t, "contoso", "PS1", good_run("PS1", "03-01-2024", "10:00:00", "10:05:00", 34).as_bytes(), 1);
    for minute in 0..=5 {
        t.heartbeat(&heartbeat("CS1", &format!("2024-03-01 10:{minute:02}:00")));
        t.heartbeat(&heartbeat("CS2", &format!("2024-03-01 10:{minute:02}:00")));
    }
    // CS2's collector stops at 10:05; CS1's goes on.
    for minute in 6..=20 {
        t.heartbeat(&heartbeat("CS1", &format!("2024-03-01 10:{minute:02}:00")));
    }
    let silent = |t: &Tracker, now: &str| -> Vec<Alert> {
        t.alerts(utc(now)).into_iter().filter(|a| a.kind == AlertKind::Silent).collect()
    };
    assert!(silent(&t, "2024-03-01 10:15:00").is_empty(), "10 min is the threshold, not yet over");
    let alerts = silent(&t, "2024-03-01 10:15:01");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].site, "CS2");
    assert_eq!(alerts[0].since, utc("2024-03-01 10:15:00"));
    assert!(alerts[0].detail.contains("collector on CS2-server for 10m01s"), "{}", alerts[0].detail);
    let view = t.views(utc("2024-03-01 10:20:00")).into_iter().find(|v| v.site == "CS2").unwrap();
    assert_eq!(view.last_heartbeat_age_s, Some(900.0));
    assert_eq!(view.alerts, vec![AlertKind::Silent]);
    assert_eq!(view.status, "unknown", "a site known only from heartbeats has no run yet");
    // A late, redelivered heartbeat does not move the last one back.
    t.heartbeat(&heartbeat("CS1", "2024-03-01 10:01:00"));
    assert!(!silent(&t, "2024-03-01 10:25:00").is_empty(), "CS2 is still silent");
    assert_eq!(silent(&t, "2024-03-01 10:25:00").iter().filter(|a| a.site == "CS1").count(), 0);
    // CS2 is back.
    t.heartbeat(&heartbeat("CS2", "2024-03-01 10:21:00"));
    assert!(silent(&t, "2024-03-01 10:21:30").is_empty());
    // The collector state survives the consumer's persistence.
    let state = t.site("contoso", "CS2").unwrap();
    let back: SiteState = serde_json::from_str(&serde_json::to_string(state).unwrap()).unwrap();
    assert_eq!(&back, state);
}
