//! The sync tracker inside the consumer, on the real servers: `sync_run` points while a run runs
//! and when it ends, `site_sync_state` heartbeats with the alerts, and the tracker's state kept
//! across a `kill -9` of the consumer in the middle of a run (restored from the compacted state
//! topic, not rebuilt from re-read records: the offsets were committed).
//!
//! Needs `deploy/local/stack up`; run with
//! `cargo test -p statmsg --test integration e2e_tracker -- --include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::*;

fn line_at(message: &str, utc: chrono::DateTime<Utc>) -> String {
    // Written in US Eastern standard time (+300), read back as UTC.
    server_line(message, (utc - chrono::Duration::minutes(300)).naive_utc(), 300, 4242)
}

fn last_row(db: &str, q: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    rows(&influx_query(db, q)).pop()
}

#[test]
#[ignore = "needs the local stack: deploy/local/stack up"]
fn a_run_survives_a_consumer_kill_in_its_middle_and_heartbeats_carry_the_alerts() {
    let world = World::new("e2e_tracker");
    let db = world.name.clone();
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{db}\"", influx_url()));
    // A killed consumer's partitions move after its session times out: keep that short.
    // One collector heartbeat (at its start), so that the points the restarted consumer commits
    // are only the second half's.
    let text = std::fs::read_to_string(&config).unwrap();
    let text =
        text.replace("[kafka.properties]\n", "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n");
    std::fs::write(&config, text.replace("[collect]\n", "[collect]\nheartbeat_s = 3600\n")).unwrap();
    let log = world.log_path("WsyncMgr.log");

    // A manual sync that started three hours ago and is still in its WSUS phase: stalled.
    let start = Utc::now() - chrono::Duration::hours(3);
    let at = |s: i64| start + chrono::Duration::seconds(s);
    let gmt = |s: i64| at(s).naive_utc();
    let first_half = [
        line_at("Wakeup by inbox drop", at(-1)),
        line_at("Found local sync request file", at(-1)),
        line_at("Starting Sync", at(0)),
        line_at("Performing sync on local request", at(0)),
        line_at(&statmsg_message(6701, 'I', gmt(1), &[], None), at(1)),
        line_at(&statmsg_message(6704, 'I', gmt(2), &[], None), at(2)),
        line_at("Synchronizing WSUS server cs1.contoso.com ...", at(2)),
        line_at(
            "sync: WSUS synchronizing updates, processed 12 out of 130 items (9%), ETA in 00:10:03",
            at(60),
        ),
    ]
    .concat();
    append(&log, &first_half);

    let collector = Proc::start("collect", &config);
    let consumer = Proc::start("consume", &config);
    let q_run = "SELECT * FROM sync_run WHERE site = 'CS1'";
    let running = wait_for(
        Duration::from_secs(60),
        || last_row(&db, q_run).filter(|r| r["outcome"] == "running"),
        || format!("no running sync_run\n{}", consumer.output()),
    );
    assert_eq!(running["trigger"], "manual");
    assert_eq!(
        running["time"].as_i64().unwrap(),
        start.timestamp_nanos_opt().unwrap() / 1_000_000 * 1_000_000
    );
    // The heartbeat says the run is stalled (3 h > 2 h), with the site's other alert fields at 0.
    let q_state =
        "SELECT * FROM statmsg_recent.site_sync_state WHERE site = 'CS1' ORDER BY time DESC LIMIT 1";
    let state = wait_for(
        Duration::from_secs(30),
        || last_row(&db, q_state).filter(|r| r["alert_stalled"] == 1),
        || format!("no stalled heartbeat: {:?}\n{}", last_row(&db, q_state), consumer.output()),
    );
    assert_eq!((state["status"].as_str(), state["alert_failed"].as_i64()), (Some("running"), Some(0)));
    assert!(state["running_s"].as_f64().unwrap() > 3.0 * 3600.0 - 60.0, "{state:?}");
    // Every record of the first half, and the collector's heartbeat, are committed (so none
    // will be re-read) before the kill.
    wait_for(
        Duration::from_secs(30),
        || last_row(&db, "SELECT count(files_watched) FROM statmsg_recent.collector_status").map(|_| ()),
        || consumer.output(),
    );
    wait_for(
        Duration::from_secs(30),
        || consumer.output().contains("batch committed").then_some(()),
        || consumer.output(),
    );
    std::thread::sleep(Duration::from_millis(500));
    consumer.kill9();

    let second_half = [
        line_at("Done synchronizing WSUS Server cs1.contoso.com", at(3 * 3600)),
        line_at(
            "Set content version of update source {C2D17964-BBDD-4339-B9F3-12D7205B39CC} for site CS1 to 35",
            at(3 * 3600 + 5),
        ),
        line_at(&statmsg_message(6702, 'I', gmt(3 * 3600 + 10), &[], None), at(3 * 3600 + 10)),
        line_at("Sync succeeded. Setting sync alert to canceled state on site CS1", at(3 * 3600 + 10)),
        line_at(
            "Updated 130 items in SMS database, new update source content version is 35",
            at(3 * 3600 + 10),
        ),
        line_at("Sync time: 0d03h00m10s", at(3 * 3600 + 10)),
    ]
    .concat();
    append(&log, &second_half);
    let consumer = Proc::start("consume", &config);
    let done = wait_for(
        Duration::from_secs(60),
        || last_row(&db, q_run).filter(|r| r["outcome"] == "succeeded"),
        || format!("{:?}\n{}", rows(&influx_query(&db, q_run)), consumer.output()),
    );
    // Only the restored state knew the trigger and the start: the first half was not re-read.
    assert_eq!(done["trigger"], "manual", "{done:?}");
    assert_eq!(done["duration_s"].as_f64(), Some(3.0 * 3600.0 + 10.0));
    assert_eq!(done["content_version"].as_i64(), Some(35));
    assert_eq!(
        rows(&influx_query(&db, q_run)).len(),
        1,
        "one run, not a second one started after the restart"
    );
    assert!(consumer.output().contains("sites=1"), "restored one site:\n{}", consumer.output());
    // The restarted consumer wrote the second half's status message and the run, nothing re-read.
    // (The run is in InfluxDB a moment before its batch is committed and logged: wait for it.)
    let committed = || -> u64 {
        consumer
            .output()
            .lines()
            .filter_map(|l| l.split("batch committed points=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let points =
        wait_for(Duration::from_secs(30), || Some(committed()).filter(|&p| p >= 2), || consumer.output());
    assert_eq!(points, 2, "{}", consumer.output());
    let state = wait_for(
        Duration::from_secs(30),
        || last_row(&db, q_state).filter(|r| r["status"] == "succeeded"),
        || format!("{:?}", last_row(&db, q_state)),
    );
    assert_eq!((state["alert_stalled"].as_i64(), state["alert_count"].as_i64()), (Some(0), Some(0)));
    assert_eq!(state["content_version"].as_i64(), Some(35));
    consumer.stop();
    collector.stop();
}
