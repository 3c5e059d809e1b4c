//! Dead letters on the real stack: a point InfluxDB refuses (a field type conflict) and a Kafka
//! message that is not an envelope both reach the dead-letter topic with their reasons; `statmsg
//! dlq list` shows them; once the conflict is removed, `statmsg dlq replay` stores the refused
//! point (twice over: still one point), and the undecodable message goes round the consumer's
//! path again and comes back as a dead letter (never lost, never a panic).

#![allow(clippy::unwrap_used)]

mod common;

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
    consumer.stop();
    collector.stop();
}
