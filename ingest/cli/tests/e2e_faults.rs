//! Faults on the real servers: `kill -9` of the collector and the consumer in the middle of a
//! stream, and InfluxDB going down and coming back. Each test counts what was lost and what
//! was duplicated in InfluxDB; both must be zero. Ignored by a plain `cargo test`; `.ci/run`
//! starts the stack and runs them with `--include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use serde_json::Value;

fn gmt(n: usize) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
        + chrono::Duration::milliseconds(n as i64 * 250)
}

fn record(n: usize) -> String {
    let istr = vec![format!("rec-{n}"), "The operation has timed out".to_owned()];
    let g = gmt(n);
    server_line(&statmsg_message(6704, 'I', g, &istr, None), g + chrono::Duration::hours(1), -60, 1234)
}

fn records(range: std::ops::Range<usize>) -> String {
    range.map(record).collect()
}

/// Markers (`rec-N`) of every point stored, and how many points there are.
fn stored(url: &str, database: &str) -> (BTreeSet<String>, usize) {
    let out = Command::new("curl")
        .args(["-sS", "-G", &format!("{url}/query")])
        .args(["--data-urlencode", &format!("db={database}")])
        .args(["--data-urlencode", "q=SELECT istr0 FROM statmsg"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let values = v["results"][0]["series"][0]["values"].as_array().cloned().unwrap_or_default();
    let markers = values.iter().filter_map(|row| row[1].as_str().map(str::to_owned)).collect();
    (markers, values.len())
}

fn assert_exactly_once(url: &str, database: &str, total: usize) {
    let (markers, points) = stored(url, database);
    let lost: Vec<usize> = (0..total).filter(|n| !markers.contains(&format!("rec-{n}"))).collect();
    let duplicated = points - markers.len();
    eprintln!("{database}: {total} written, {points} stored, {} lost, {duplicated} duplicated", lost.len());
    assert!(lost.is_empty(), "lost {} records, first {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert_eq!(duplicated, 0, "duplicated points");
    assert_eq!(points, total);
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn kill_9_of_collector_and_consumer_loses_and_duplicates_nothing() {
    let world = World::new("faults_kill");
    let log = world.log_path("WsyncMgr.log");
    let state = world.dir.path().join("state");
    // Small reads, so the collector is killed between checkpoints of one file.
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx_url(), world.name));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[collect]\n", "[collect]\nmax_read_bytes = 4096\n");
    std::fs::write(&config, text).unwrap();
    let (first, total) = (6000, 9000);
    append(&log, &records(0..first));

    let consumer = Proc::start("consume", &config);
    let collector = Proc::start("collect", &config);
    let len = std::fs::metadata(&log).unwrap().len();
    // Killed once Kafka has some of the records: the rest are in its spool or still in the log.
    let topic = format!("{}.records", world.name);
    wait_for(
        Duration::from_secs(60),
        || (!topic_payloads(&kafka_brokers(), &topic).is_empty()).then_some(()),
        || collector.output(),
    );
    collector.kill9();
    let in_kafka = topic_payloads(&kafka_brokers(), &topic).len();
    let at_kill = checkpoint_offset(&state, &log);
    eprintln!(
        "collector killed with {in_kafka} of {first} records in Kafka, checkpoint {at_kill} of {len} bytes"
    );

    // The consumer dies mid-stream too, before it can commit what it wrote last.
    wait_for(
        Duration::from_secs(60),
        || (stored(&influx_url(), &world.name).1 > 0).then_some(()),
        || consumer.output(),
    );
    consumer.kill9();
    append(&log, &records(first..total));
    let collector = Proc::start("collect", &config);
    let consumer = Proc::start("consume", &config);
    wait_for(
        Duration::from_secs(120),
        || (stored(&influx_url(), &world.name).1 >= total).then_some(()),
        || {
            format!(
                "{} of {total}\n{}\n{}",
                stored(&influx_url(), &world.name).1,
                collector.output(),
                consumer.output()
            )
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_exactly_once(&influx_url(), &world.name, total);
    collector.stop();
    consumer.stop();
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn influxdb_down_commits_nothing_and_loses_nothing() {
    let world = World::new("faults_influx");
    let log = world.log_path("WsyncMgr.log");
    let port = free_port_pair(18_086);
    let mut influx = PrivateInflux::start(&world.dir.path().join("influxdb"), port, false);
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx.url(), world.name));
    let total = 3000;
    append(&log, &records(0..1000));
    let collector = Proc::start("collect", &config);
    let consumer = Proc::start("consume", &config);
    wait_for(
        Duration::from_secs(60),
        || (stored(&influx.url(), &world.name).1 >= 1000).then_some(()),
        || consumer.output(),
    );

    // Down: the consumer keeps retrying and commits nothing while records keep coming.
    influx.kill9();
    append(&log, &records(1000..2000));
    std::thread::sleep(Duration::from_secs(3));
    assert!(consumer.output().contains("InfluxDB unavailable"), "{}", consumer.output());
    influx.resume();
    append(&log, &records(2000..total));
    wait_for(
        Duration::from_secs(120),
        || (stored(&influx.url(), &world.name).1 >= total).then_some(()),
        || format!("{} of {total}\n{}", stored(&influx.url(), &world.name).1, consumer.output()),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_exactly_once(&influx.url(), &world.name, total);
    collector.stop();
    consumer.stop();
}
