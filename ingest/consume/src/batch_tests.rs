//! Tests of the consumer's pure core (`batch.rs`).

use super::*;

fn origin(offset: i64) -> KafkaOrigin {
    KafkaOrigin { topic: Arc::from("t"), partition: 0, offset }
}

const STATUS: &str = r#"{"schema":1,"hierarchy":"h","site":"CS1","host":"cm1","source":{"path":"a","offset":0},"record":{"time":"2014-01-16T18:53:52.610Z","component":"SMS_WSUS_SYNC_MANAGER","thread":1,"text":"STATMSG: ID=6701","format":"server","statmsg":{"id":6701,"sev":"I","lev":"M","source":"SMS Server","comp":"SMS_WSUS_SYNC_MANAGER","sys":"S","site":"CS1","pid":1,"tid":2,"gmtdate":"2014-01-16T18:53:52.608Z","istr":["a","","","","","","","","",""],"attrs":[]}}}"#;
const PLAIN: &str = r#"{"schema":1,"hierarchy":"h","site":"CS1","host":"cm1","source":{"path":"a","offset":0},"record":{"time":null,"component":null,"thread":null,"text":"x","format":"unframed"}}"#;

#[test]
fn sorts_messages_into_points_skips_and_dead_letters() {
    let mut batch = Batch::default();
    batch.add(origin(5), Some(b"h/CS1"), Some(STATUS.as_bytes()));
    batch.add(origin(6), None, Some(PLAIN.as_bytes()));
    batch.add(origin(7), None, Some(b"{garbage"));
    batch.add(origin(8), None, Some(STATUS.replace("\"schema\":1", "\"schema\":99").as_bytes()));
    batch.add(origin(9), None, None);
    batch.add(KafkaOrigin { topic: Arc::from("t"), partition: 2, offset: 1 }, None, Some(STATUS.as_bytes()));
    assert_eq!((batch.messages(), batch.points(), batch.skipped), (6, 2, 1));
    assert!(batch.body().starts_with(
        "statmsg,component=SMS_WSUS_SYNC_MANAGER,hierarchy=h,id=6701,sev=I,site=CS1 istr0=\"a\""
    ));
    let reasons: Vec<&str> = batch.dead_letters().iter().map(|d| d.reason.as_str()).collect();
    assert!(reasons[0].starts_with("not a statmsg envelope"), "{reasons:?}");
    assert!(reasons[1].contains("newer"));
    assert_eq!(reasons[2], "empty message");
    assert_eq!(batch.next_offsets().collect::<Vec<_>>(), vec![("t", 0, 10), ("t", 2, 2)]);
}

#[test]
fn a_bundle_is_its_records_and_a_bad_one_is_a_dead_letter_of_its_own_that_replays_alone() {
    use statmsg_schema::bundle::{Bundler, FileOrigin};
    let status: Envelope<'_> = serde_json::from_str(STATUS).unwrap();
    let mut broken = status.record.clone();
    broken.statmsg_error = Some("STATMSG without ID".into());
    let mut bundler = Bundler::new(FileOrigin { hierarchy: "h", host: "cm1", path: "a", file: Some("1:2") });
    bundler.push("CS1", 0, status.record.clone());
    bundler.push("CS1", 100, broken);
    bundler.push("CS1", 200, status.record.clone());
    let messages = bundler.finish();
    assert_eq!(messages.len(), 1);
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    batch.add_tracked(origin(4), Some(b"h/CS1"), Some(&messages[0].1), Some(&mut tracker));
    assert_eq!((batch.messages(), batch.points()), (1, 2));
    assert_eq!(batch.next_offsets().collect::<Vec<_>>(), vec![("t", 0, 5)]);
    let dead = batch.dead_letters();
    assert_eq!((dead.len(), dead[0].reason.as_str(), dead[0].origin.offset), (1, "STATMSG without ID", 4));
    // The dead letter holds that record alone, as the envelope `statmsg dlq replay` sends back.
    let alone: serde_json::Value = serde_json::from_str(&dead[0].payload).unwrap();
    assert_eq!((&alone["source"]["offset"], &alone["source"]["file"]), (&100.into(), &"1:2".into()));
    assert_eq!((&alone["site"], &alone["record"]["text"]), (&"CS1".into(), &"STATMSG: ID=6701".into()));
    assert!(alone.get("records").is_none(), "{alone}");
    assert_eq!(dead[0].key.as_deref(), Some(&b"h/CS1"[..]));
    // Delivered again (at-least-once), the bundle feeds the tracker nothing new.
    let duplicates_before = tracker.site("h", "CS1").map(|s| s.duplicates);
    batch.add_tracked(origin(4), Some(b"h/CS1"), Some(&messages[0].1), Some(&mut tracker));
    assert_eq!(tracker.site("h", "CS1").map(|s| s.duplicates), duplicates_before.map(|d| d + 3));
}

#[test]
fn a_bundles_records_go_to_its_site_and_a_siteless_bundles_to_the_site_each_names() {
    use statmsg_schema::bundle::{Bundler, FileOrigin};
    let status: Envelope<'_> = serde_json::from_str(STATUS).unwrap();
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    for (hierarchy, site, partition) in [("h", "CS1", 5), ("g", "", 2)] {
        let mut bundler = Bundler::new(FileOrigin { hierarchy, host: "cm1", path: "a", file: None });
        for offset in [0, 100] {
            let mut record = status.record.clone();
            // Each status message names PS1 as its site (the second of the CS1 bundle too): a
            // bundle's site wins; a siteless bundle's records go to the site they name.
            if site.is_empty() || offset == 100 {
                record.statmsg.as_mut().unwrap().site = "PS1".into();
            }
            bundler.push(site, offset, record);
        }
        let (key, payload) = bundler.finish().remove(0);
        let origin = KafkaOrigin { topic: Arc::from("t"), partition, offset: 7 };
        batch.add_tracked(origin, Some(key.as_bytes()), Some(&payload), Some(&mut tracker));
    }
    assert_eq!(batch.records, 4);
    assert_eq!(tracker.site("h", "CS1").and_then(|s| s.partition), Some(5));
    assert_eq!(tracker.site("g", "PS1").and_then(|s| s.partition), Some(2));
    assert!(tracker.site("h", "PS1").is_none(), "the CS1 bundle's records are CS1's");
    let touched: Vec<_> = batch.touched_sites().map(|(h, s)| format!("{h}/{s}")).collect();
    assert_eq!(touched, ["g/PS1", "h/CS1"]);
}

#[test]
fn a_record_of_a_bundle_that_does_not_decode_is_set_aside_alone() {
    use statmsg_schema::bundle::{Bundler, FileOrigin};
    let status: Envelope<'_> = serde_json::from_str(STATUS).unwrap();
    let mut bundler = Bundler::new(FileOrigin { hierarchy: "h", host: "cm1", path: "a", file: None });
    for offset in [0, 100, 200] {
        bundler.push("CS1", offset, status.record.clone());
    }
    let payload = String::from_utf8(bundler.finish().remove(0).1).unwrap();
    // The second record as a newer collector might write it: an event this build does not know.
    let at = payload.match_indices("\"format\":\"server\"").nth(1).unwrap().0;
    let damaged = format!("{}\"event\":{{\"type\":\"from_the_future\"}},{}", &payload[..at], &payload[at..]);
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    batch.add_tracked(origin(9), Some(b"h/CS1"), Some(damaged.as_bytes()), Some(&mut tracker));
    assert_eq!((batch.records, batch.points()), (2, 2), "the other records are stored");
    let dead = batch.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("a record of a bundle: unknown variant `from_the_future`"),
        "{}",
        dead[0].reason
    );
    let alone: serde_json::Value = serde_json::from_str(&dead[0].payload).unwrap();
    assert_eq!((&alone["schema"], &alone["site"], &alone["path"]), (&2.into(), &"CS1".into(), &"a".into()));
    assert_eq!(alone["records"].as_array().map(|r| (r.len(), r[0]["offset"].clone())), Some((1, 100.into())));
}

#[test]
fn pieces_cover_every_point_once_in_order() {
    let mut batch = Batch::default();
    for offset in 0..7 {
        batch.add(origin(offset), None, Some(STATUS.replace("ID=6701", &format!("ID={offset}")).as_bytes()));
    }
    assert_eq!(batch.points(), 7);
    let pieces: Vec<_> = batch.pieces(3).collect();
    assert_eq!(pieces.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), vec![0..3, 3..6, 6..7]);
    assert_eq!(pieces.iter().map(|(_, body)| *body).collect::<String>(), batch.body());
    for (indices, body) in &pieces {
        let lines: String = indices.clone().map(|i| batch.point(i).0).collect();
        assert_eq!(&lines, body);
        assert_eq!(body.lines().count(), indices.len());
    }
    assert_eq!(batch.point(6).1, &origin(6));
    assert_eq!(batch.points_per_measurement(&[]), BTreeMap::from([("statmsg", 7)]));
    assert_eq!(batch.points_per_measurement(&[0, 6]), BTreeMap::from([("statmsg", 5)]));
    assert_eq!(batch.pieces(100).count(), 1);
    assert_eq!(Batch::default().pieces(3).count(), 0);
}

#[test]
fn malformed_status_messages_and_unwritable_points_are_dead_letters() {
    let mut batch = Batch::default();
    let malformed = PLAIN.replace(
        "\"format\":\"unframed\"",
        "\"format\":\"server\",\"statmsg_error\":\"STATMSG: PID=\\\"x\\\" is not valid\"",
    );
    batch.add(origin(1), None, Some(malformed.as_bytes()));
    batch.add(
        origin(2),
        None,
        Some(STATUS.replace("\"site\":\"CS1\",\"pid\"", "\"site\":\"C\\\\\",\"pid\"").as_bytes()),
    );
    assert_eq!(batch.points(), 0);
    assert_eq!(batch.dead_letters().len(), 2, "{:?}", batch.dead_letters());
    assert!(batch.dead_letters()[1].reason.contains("cannot carry"));
    assert!(batch.body().is_empty());
}

#[test]
fn records_feed_the_tracker_and_runs_become_points_of_their_site() {
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    let started = PLAIN
        .replace("\"time\":null", "\"time\":\"2014-01-16T18:53:50.147Z\"")
        .replace("\"format\":\"unframed\"}", "\"format\":\"server\",\"event\":{\"type\":\"sync_starting\"}}");
    batch.add_tracked(origin(1), None, Some(started.as_bytes()), Some(&mut tracker));
    batch.add_tracked(origin(2), None, Some(STATUS.as_bytes()), Some(&mut tracker));
    // The same record again (at-least-once): the tracker ignores it.
    batch.add_tracked(origin(3), None, Some(started.as_bytes()), Some(&mut tracker));
    assert_eq!(tracker.site("h", "CS1").map(|s| s.duplicates), Some(1));
    let runs = tracker.take_runs();
    assert_eq!(runs.len(), 1);
    batch.add_runs(&runs);
    assert_eq!(batch.points(), 2, "the status message and the run");
    assert!(batch.body().contains("\nsync_run,hierarchy=h,site=CS1 outcome=\"running\""), "{}", batch.body());
    assert_eq!(batch.touched_sites().collect::<Vec<_>>(), vec![&("h".to_owned(), "CS1".to_owned())]);
    assert_eq!(tracker.site("h", "CS1").and_then(|s| s.partition), Some(0));
}

#[test]
fn a_child_reaching_its_parents_version_becomes_a_propagation_point() {
    let envelope = |site: &str, offset: u64, message: &str, time: &str| {
        server_envelope(site, offset, message.to_owned(), time.to_owned())
    };
    let parent = [
        ("Starting Sync", "03-01-2024 10:00:00.000"),
        ("Set content version of update source {X} for site CAS to 34", "03-01-2024 10:05:00.000"),
        ("Sync succeeded. Setting sync alert to canceled state on site CAS", "03-01-2024 10:05:01.000"),
        ("Sending sync notification to child site(s): P01", "03-01-2024 10:05:02.000"),
    ];
    let child = [
        ("Found parent sync notification file CAS.SYN.", "03-01-2024 10:06:00.000"),
        ("Starting Sync", "03-01-2024 10:06:00.000"),
        ("Set content version of update source {X} for site P01 to 34", "03-01-2024 10:09:00.000"),
        ("Sync succeeded. Setting sync alert to canceled state on site P01", "03-01-2024 10:10:01.000"),
    ];
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    for (site, lines, partition) in [("CAS", &parent, 0), ("P01", &child, 1)] {
        for (k, (m, t)) in lines.iter().enumerate() {
            let payload = envelope(site, k as u64 * 100, m, t);
            let origin = KafkaOrigin { topic: Arc::from("t"), partition, offset: k as i64 };
            batch.add_tracked(origin, None, Some(&payload), Some(&mut tracker));
        }
    }
    let owned: Vec<_> = tracker.sites().cloned().collect();
    batch.add_propagation(
        &super::super::propagation::PropagationMemo::default().changed(&tracker, owned.iter()),
    );
    assert!(
        batch.body().contains(
            "version_propagation,child=P01,hierarchy=h,parent=CAS version=34i,reached=true,child_reached_ms=1709287801000i,delay_s=300.0 1709287501000000000\n"
        ),
        "{}",
        batch.body()
    );
}

/// The envelope of a server-format line of `site` at `time` (local, bias 0).
fn server_envelope(site: &str, offset: u64, message: String, time: String) -> Vec<u8> {
    use statmsg_schema::SourcePosition;
    let line = format!("{message}  $$<SMS_WSUS_SYNC_MANAGER><{time}+0><thread=1 (0x1)>");
    let record = statmsg_parse::parse_line(&line).into_owned();
    let env = Envelope {
        schema: SCHEMA_VERSION,
        hierarchy: "h".into(),
        site: site.to_owned().into(),
        host: site.to_lowercase().into(),
        source: SourcePosition { path: "WsyncMgr.log".into(), offset, file: Some("1:2".into()) },
        truncated: None,
        record,
    };
    serde_json::to_vec(&env).unwrap()
}

/// A parent reaching a new version every day and its child following an hour later, as
/// (site, partition, payload) in log order.
fn days_of_propagation(days: u32) -> Vec<(&'static str, i32, Vec<u8>)> {
    let envelope = server_envelope;
    let mut out = Vec::new();
    for day in 1..=days {
        let at = |h: u32, m: u32| format!("03-{day:02}-2024 {h:02}:{m:02}:00.000");
        let version = 100 + day;
        let parent = [
            ("Starting Sync".to_owned(), at(10, 0)),
            (format!("Set content version of update source {{X}} for site CAS to {version}"), at(10, 5)),
            ("Sync succeeded. Setting sync alert to canceled state on site CAS".to_owned(), at(10, 6)),
            ("Sending sync notification to child site(s): P01".to_owned(), at(10, 7)),
        ];
        let child = [
            ("Found parent sync notification file CAS.SYN.".to_owned(), at(11, 0)),
            ("Starting Sync".to_owned(), at(11, 0)),
            (format!("Set content version of update source {{X}} for site P01 to {version}"), at(11, 5)),
            ("Sync succeeded. Setting sync alert to canceled state on site P01".to_owned(), at(11, 6)),
        ];
        for (site, partition, lines) in [("CAS", 0, parent), ("P01", 1, child)] {
            for (k, (message, time)) in lines.into_iter().enumerate() {
                let offset = u64::from(day) * 1000 + k as u64 * 100;
                out.push((site, partition, envelope(site, offset, message, time)));
            }
        }
    }
    out
}

/// The `version_propagation` rows stored after writing `messages` in batches of `size`:
/// per series and time, the last line written.
fn stored_propagation(messages: &[(&str, i32, Vec<u8>)], size: usize) -> BTreeMap<String, String> {
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut memo = super::super::propagation::PropagationMemo::default();
    let mut stored = BTreeMap::new();
    for (n, chunk) in messages.chunks(size).enumerate() {
        let mut batch = Batch::default();
        for (k, (_, partition, payload)) in chunk.iter().enumerate() {
            let origin =
                KafkaOrigin { topic: Arc::from("t"), partition: *partition, offset: (n * size + k) as i64 };
            batch.add_tracked(origin, None, Some(payload), Some(&mut tracker));
        }
        let owned: Vec<_> = tracker.sites().cloned().collect();
        let rows = memo.changed(&tracker, owned.iter());
        memo.written(&rows);
        batch.add_propagation(&rows);
        for line in batch.body().lines().filter(|l| l.starts_with("version_propagation,")) {
            let (series, rest) = line.split_once(' ').unwrap();
            let time = rest.rsplit_once(' ').unwrap().1;
            stored.insert(format!("{series} {time}"), line.to_owned());
        }
    }
    stored
}

#[test]
fn propagation_rows_stored_do_not_depend_on_batching() {
    let messages = days_of_propagation(12);
    let whole = stored_propagation(&messages, messages.len());
    assert_eq!(whole.len(), 12, "one row per version: {whole:#?}");
    assert!(whole.values().all(|l| l.contains("reached=true") && l.contains("delay_s=3600.0")), "{whole:#?}");
    for size in [1, 3, 8, 40] {
        assert_eq!(stored_propagation(&messages, size), whole, "batches of {size}");
    }
}

#[test]
fn a_collector_heartbeat_reaches_the_tracker_and_junk_is_still_a_dead_letter() {
    const BEAT: &str = r#"{"schema":1,"hierarchy":"h","site":"PS1","host":"cm2","time":"2024-03-01T10:00:00.000Z","collector":{"version":"0.1.0","interval_s":60,"files_watched":3,"unread_bytes":0,"spool_bytes":0,"spool_records":0}}"#;
    let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
    let mut batch = Batch::default();
    batch.add_tracked(origin(7), Some(b"h/PS1"), Some(BEAT.as_bytes()), Some(&mut tracker));
    batch.add_tracked(origin(8), None, Some(br#"{"schema":1,"collector":{}}"#), Some(&mut tracker));
    batch.add_tracked(origin(9), None, Some(BEAT.replace("\"schema\":1", "\"schema\":9").as_bytes()), None);
    assert_eq!(batch.heartbeats, 1);
    assert_eq!(batch.points(), 0, "the consumer's health write carries it, with the site's state");
    let reasons: Vec<&str> = batch.dead_letters().iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("not a statmsg envelope: "), "{reasons:?}");
    assert!(reasons[1].contains("payload schema 9 is newer"), "{reasons:?}");
    let seen = tracker.site("h", "PS1").and_then(|s| s.collector.clone()).unwrap();
    assert_eq!((seen.host.as_str(), seen.status.files_watched), ("cm2", 3));
    assert_eq!(tracker.site("h", "PS1").and_then(|s| s.partition), Some(0));
    assert_eq!(batch.touched_sites().count(), 1, "its state is published like a record's");
}
