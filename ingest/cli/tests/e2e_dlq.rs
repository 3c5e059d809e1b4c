//! Dead letters on the real stack: a point InfluxDB refuses (a field type conflict) and a Kafka
//! message that is not an envelope both reach the dead-letter topic with their reasons; `statmsg
//! dlq list` shows them; once the conflict is removed, `statmsg dlq replay` stores the refused
//! point (twice over: still one point), and the undecodable message goes round the consumer's
//! path again and comes back as a dead letter (never lost, never a panic).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;
use std::time::Duration;

use chrono::NaiveDate;
use common::*;

fn statmsg(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "statmsg {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn influx_post(path_and_query: &str, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-XPOST", &format!("{}{path_and_query}", influx_url()), "--data-binary", body])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn dead_letters_are_listed_and_replayed_after_the_fix() {
    let world = World::new("dlq");
    let db = &world.name;
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{db}\"", influx_url()));
    let config_arg = config.to_str().unwrap();
    // The consumer's Prometheus endpoint, scraped as Prometheus would, checked along the way.
    let metrics_port = free_port_pair(18_800);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "heartbeat_s = 1\n",
        &format!("heartbeat_s = 1\nmetrics_address = \"127.0.0.1:{metrics_port}\"\n"),
    );
    // One collector heartbeat, at its start: the counts below are exact.
    std::fs::write(&config, text.replace("[collect]\n", "[collect]\nheartbeat_s = 3600\n")).unwrap();
    let gmt = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap().and_hms_milli_opt(3, 4, 5, 678).unwrap();
    // A point of the same measurement and week whose istr0 is an integer: InfluxDB refuses the
    // consumer's string istr0 (type conflict, HTTP 400).
    influx_post("/query", &format!("q=CREATE DATABASE \"{db}\""));
    let conflict = format!(
        "statmsg,hierarchy=other,site=XX istr0=1i {}\n",
        gmt.and_utc().timestamp_nanos_opt().unwrap()
    );
    let written = influx_post(&format!("/write?db={db}"), &conflict);
    assert!(written.is_empty(), "{written}");

    let log = world.log_path("WsyncMgr.log");
    let istr = vec!["refused-then-replayed".to_owned()];
    append(&log, &server_line(&statmsg_message(6702, 'I', gmt, &istr, None), gmt, 0, 1));
    let collector = Proc::start("collect", &config);
    let consumer = Proc::start("consume", &config);
    wait_for(
        Duration::from_secs(60),
        || consumer.output().contains("consuming").then_some(()),
        || consumer.output(),
    );
    let garbage = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' '{{not an envelope' | kcat -b {} -P -t {}.records -k {db}/CS1",
            kafka_brokers(),
            world.name
        ))
        .status()
        .unwrap();
    assert!(garbage.success());
    let dead_letter_topic = format!("{}.dead-letter", world.name);
    let letters = |n: usize| {
        let payloads = topic_payloads(&kafka_brokers(), &dead_letter_topic);
        (payloads.len() >= n).then_some(payloads)
    };
    wait_for(Duration::from_secs(60), || letters(2), || consumer.output());

    let listed = statmsg(&["dlq", "list", "--config", config_arg]);
    assert!(listed.contains("InfluxDB refused the point"), "{listed}");
    assert!(listed.contains("field type conflict"), "{listed}");
    assert!(listed.contains("not a statmsg envelope"), "{listed}");
    assert!(listed.contains(&format!("from {}.records/", world.name)), "{listed}");
    assert!(listed.contains("{not an envelope"), "the payload's first bytes: {listed}");
    assert!(listed.contains("2 dead letters; per reason:"), "{listed}");
    let json = statmsg(&["dlq", "list", "--json", "--config", config_arg]);
    let kinds: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"point".to_owned()) && kinds.contains(&"message".to_owned()), "{kinds:?}");
    assert_eq!(statmsg_count(db), 0, "the refused point is not stored");

    // The fix: the conflicting measurement goes; the point is replayed, twice: one point.
    let dropped = influx_post("/query", &format!("db={db}&q=DROP MEASUREMENT statmsg"));
    assert!(!dropped.contains("error"), "{dropped}");
    for _ in 0..2 {
        let replayed = statmsg(&["dlq", "replay", "--reason", "refused", "--config", config_arg]);
        assert!(replayed.contains("replayed 0 messages") && replayed.contains("and 1 points"), "{replayed}");
        let rows = rows(&influx_query(db, "SELECT istr0, pid FROM statmsg"));
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["istr0"], "refused-then-replayed");
    }

    // The undecodable message goes through the consumer again and is dead-lettered again.
    let replayed = statmsg(&["dlq", "replay", "--reason", "not a statmsg envelope", "--config", config_arg]);
    assert!(replayed.contains("replayed 1 messages") && replayed.contains("and 0 points"), "{replayed}");
    wait_for(Duration::from_secs(60), || letters(3), || consumer.output());
    let listed = statmsg(&["dlq", "list", "--config", config_arg]);
    assert!(listed.contains("3 dead letters; per reason:"), "{listed}");
    assert_eq!(statmsg_count(db), 1);

    // A status message that InfluxDB takes, then the metrics say what happened, in numbers.
    let later = gmt + chrono::Duration::minutes(5);
    append(&log, &server_line(&statmsg_message(6701, 'I', later, &[], None), later, 0, 1));
    wait_for(Duration::from_secs(60), || (statmsg_count(db) == 2).then_some(()), || consumer.output());
    let scrape = || scrape_metrics(metrics_port);
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    // The lag comes with librdkafka's statistics (every 5 s).
    let text = wait_for(
        Duration::from_secs(30),
        || {
            let text = scrape();
            let lags: Vec<f64> = text
                .lines()
                .filter(|l| l.starts_with("statmsg_consume_lag_messages{partition="))
                .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
                .collect();
            (lags.len() == 3 && lags.iter().all(|&l| l == 0.0)).then_some(text)
        },
        scrape,
    );
    // Read: the first status message, the undecodable one, its replay, the second status message,
    // and the collector's heartbeat; records among them: the two status messages.
    assert_eq!(value(&text, "statmsg_consume_messages_read_total"), Some(5.0), "{text}");
    assert_eq!(value(&text, "statmsg_consume_records_read_total"), Some(2.0), "{text}");
    assert_eq!(value(&text, "statmsg_consume_dead_letters_total"), Some(3.0), "{text}");
    assert_eq!(
        value(&text, "statmsg_consume_points_written_total{measurement=\"statmsg\"}"),
        Some(1.0),
        "the refused point was stored by replay, not by the consumer: {text}"
    );
    assert_eq!(value(&text, "statmsg_consume_tracker_sites"), Some(1.0), "{text}");
    let age = value(&text, "statmsg_consume_heartbeat_age_seconds").unwrap();
    assert!((0.0..5.0).contains(&age), "heartbeats every second: {text}");
    assert!(value(&text, "statmsg_consume_write_duration_seconds_count").unwrap() >= 1.0, "{text}");
    assert!(value(&text, "statmsg_consume_state_publish_duration_seconds_count").unwrap() >= 1.0, "{text}");
    assert!(value(&text, "statmsg_consume_batches_committed_total").unwrap() >= 3.0, "{text}");
    assert!(text.contains("# TYPE statmsg_consume_retries_total counter"), "{text}");
    consumer.stop();
    collector.stop();
}
