//! End to end through the real servers of `deploy/local/stack` (Apache Kafka in KRaft mode,
//! InfluxDB 1.x, VictoriaMetrics for the v2 write API): log lines appended to a file while
//! `statmsg collect` and `statmsg consume` run arrive in InfluxDB exactly once, every field
//! intact. Ignored by a plain `cargo test`; `.ci/run` starts the stack and runs them with
//! `--include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use serde_json::Value;

const BIAS: i32 = 240; // US Eastern daylight time: UTC = local + 240 minutes

fn gmt(n: usize) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 8, 2).unwrap().and_hms_milli_opt(20, 0, 0, 0).unwrap()
        + chrono::Duration::milliseconds(n as i64 * 1_007)
}

/// Insertion strings that try everything: separators of line protocol, quotes, backslashes
/// (also trailing), the `~~` line-break code, non-ASCII, and an attempt at field injection.
fn hostile(n: usize) -> Vec<String> {
    let pool = [
        "comma, separated, values",
        "spaces   and\ttab",
        "key=value a==b =",
        r#"say "hi" and "bye""#,
        r"C:\Program Files\Microsoft Configuration Manager\",
        "line one~~line two~three",
        "Grüße – 日本語 – émoji 🎉",
        r#"x" injected=1i,other="y"#,
        r#"\" ISTR9= not a key"#,
        "",
    ];
    let mut istr: Vec<String> = (0..10).map(|k| pool[(n + k) % pool.len()].to_owned()).collect();
    istr[0] = format!("rec-{n}");
    istr
}

struct Expected {
    id: u16,
    sev: char,
    istr: Vec<String>,
    le: Option<u32>,
    gmt: NaiveDateTime,
}

fn expected(n: usize) -> Expected {
    let id = 6701 + (n % 6) as u16;
    let (sev, le) = if id == 6703 { ('E', Some(0x8013_1500 + n as u32)) } else { ('I', None) };
    Expected { id, sev, istr: hostile(n), le, gmt: gmt(n) }
}

/// Record `n` as log text: a narrative line, then its status message.
fn lines(n: usize) -> String {
    let e = expected(n);
    let local = e.gmt - chrono::Duration::minutes(i64::from(BIAS));
    server_line(
        &format!("sync: WSUS synchronizing updates, processed {n} out of 999 items"),
        local,
        BIAS,
        9640,
    ) + &server_line(&statmsg_message(e.id, e.sev, e.gmt, &e.istr, e.le), local, BIAS, 9640)
}

fn check_point(row: &serde_json::Map<String, Value>, name: &str, e: &Expected) {
    let n = &e.istr[0];
    assert_eq!(row["hierarchy"], name, "{n}");
    assert_eq!(row["site"], "CS1", "{n}");
    assert_eq!(row["component"], "SMS_WSUS_SYNC_MANAGER", "{n}");
    assert_eq!(row["id"], e.id.to_string(), "{n}");
    assert_eq!(row["sev"], e.sev.to_string(), "{n}");
    for (k, value) in e.istr.iter().enumerate() {
        assert_eq!(row[&format!("istr{k}")], value.as_str(), "{n} istr{k}");
    }
    assert_eq!(row["sys"], "CM1.contoso.com");
    assert_eq!(row["pid"], 2836);
    assert_eq!(row["tid"], 9640);
    assert_eq!(row["le"], e.le.map_or(Value::Null, |le| Value::from(u64::from(le))), "{n} le");
    let ns = row["time"].as_i64().unwrap();
    assert_eq!(ns.div_euclid(1_000_000), e.gmt.and_utc().timestamp_millis(), "{n} time is GMTDATE");
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn status_messages_arrive_exactly_once_with_every_field_intact() {
    let world = World::new("e2e");
    let log = world.log_path("WsyncMgr.log");
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx_url(), world.name));
    let total = 120;

    // A BOM and some records before the collector starts...
    append(&log, "\u{feff}");
    for n in 0..30 {
        append(&log, &lines(n));
    }
    let consumer = Proc::start("consume", &config);
    let collector = Proc::start("collect", &config);
    // ...then the rest appended while it runs, in bursts, one record split mid-line.
    for n in 30..total {
        let text = lines(n);
        if n == 77 {
            let (a, b) = text.split_at(text.len() / 2);
            append(&log, a);
            std::thread::sleep(Duration::from_millis(300));
            append(&log, b);
        } else {
            append(&log, &text);
        }
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    wait_for(
        Duration::from_secs(90),
        || (statmsg_count(&world.name) >= total as u64).then_some(()),
        || {
            format!(
                "{} of {total} points\ncollector:\n{}\nconsumer:\n{}",
                statmsg_count(&world.name),
                collector.output(),
                consumer.output()
            )
        },
    );
    // Give any duplicate a chance to show up before counting.
    std::thread::sleep(Duration::from_secs(1));
    let result =
        influx_query(&world.name, &format!("SELECT * FROM statmsg WHERE hierarchy = '{}'", world.name));
    let rows = rows(&result);
    assert_eq!(rows.len(), total, "exactly one point per status message");
    let by_marker: BTreeMap<String, _> =
        rows.iter().map(|r| (r["istr0"].as_str().unwrap().to_owned(), r)).collect();
    assert_eq!(by_marker.len(), total, "no record twice");
    for n in 0..total {
        let row = by_marker.get(&format!("rec-{n}")).unwrap_or_else(|| panic!("rec-{n} lost"));
        check_point(row, &world.name, &expected(n));
    }

    collector.stop();
    consumer.stop();
    // The checkpoint reached the end of the file, so a restart re-sends nothing.
    let offset = checkpoint_offset(&world.dir.path().join("state"), &log);
    assert_eq!(offset, std::fs::metadata(&log).unwrap().len());
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn the_v2_write_api_stores_every_status_message() {
    let world = World::new("e2e_v2");
    let log = world.log_path("WsyncMgr.log");
    let config = world.config(&format!(
        "url = \"{}\"\napi = \"v2\"\norg = \"e2e\"\nbucket = \"statmsg\"\ntoken = \"test-token\"",
        victoria_url()
    ));
    let total = 40;
    for n in 0..total {
        append(&log, &lines(n));
    }
    let consumer = Proc::start("consume", &config);
    let collector = Proc::start("collect", &config);

    // VictoriaMetrics keeps numeric fields only: check pid (every point) and le (6703s).
    let export = |metric: &str| -> Vec<Value> {
        let out = std::process::Command::new("curl")
            .args(["-sS", &format!("{}/api/v1/export", victoria_url())])
            .args(["--data-urlencode", &format!("match[]={metric}{{hierarchy=\"{}\"}}", world.name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    let samples = |series: &[Value]| -> usize {
        series.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum()
    };
    wait_for(
        Duration::from_secs(90),
        || (samples(&export("statmsg_pid")) >= total).then_some(()),
        || {
            format!(
                "{} of {total} samples\ncollector:\n{}\nconsumer:\n{}",
                samples(&export("statmsg_pid")),
                collector.output(),
                consumer.output()
            )
        },
    );
    let pid = export("statmsg_pid");
    assert_eq!(samples(&pid), total);
    for series in &pid {
        assert_eq!(series["metric"]["site"], "CS1");
        assert!(series["values"].as_array().unwrap().iter().all(|v| v == 2836));
    }
    let le = export("statmsg_le");
    let mut le_values: Vec<u64> =
        le.iter().flat_map(|s| s["values"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap())).collect();
    le_values.sort_unstable();
    let mut want: Vec<u64> = (0..total).filter_map(|n| expected(n).le).map(u64::from).collect();
    want.sort_unstable();
    assert_eq!(le_values, want);
    collector.stop();
    consumer.stop();
}

/// Partitions of `topic` (none when it does not exist), from the broker's metadata of every
/// topic (asking for one topic would have the broker create it: `auto.create.topics.enable`).
fn partitions_of(topic: &str) -> usize {
    let out = std::process::Command::new("kcat").args(["-b", &kafka_brokers(), "-L", "-J"]).output().unwrap();
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let topics = metadata["topics"].as_array().unwrap();
    let found = topics.iter().find(|t| t["topic"] == topic);
    found.and_then(|t| t["partitions"].as_array()).map_or(0, Vec::len)
}

/// The value of `name` in the broker's configuration of `topic`.
fn topic_setting(topic: &str, name: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", kafka_brokers()).create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let described = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|entry| entry.value.clone())
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn kafka_setup_creates_the_topics_of_the_configuration_once() {
    let world = World::new("ksetup");
    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx_url(), world.name));
    let setup = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_statmsg"))
            .args(["kafka", "setup", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
        said
    };
    let (records, dead, state) = (
        format!("{}.records", world.name),
        format!("{}.dead-letter", world.name),
        format!("{}.tracker-state", world.name),
    );
    assert_eq!(partitions_of(&records), 0, "a new name");

    let first = setup();
    for topic in [&records, &dead, &state] {
        assert!(first.contains(&format!("topic {topic}: created")), "{first}");
    }
    // `partitions = 3` in the test's configuration; the state topic has one, compacted.
    assert_eq!([partitions_of(&records), partitions_of(&dead), partitions_of(&state)], [3, 3, 1]);
    assert_eq!(topic_setting(&state, "cleanup.policy").as_deref(), Some("compact"));
    assert_eq!(topic_setting(&records, "cleanup.policy").as_deref(), Some("delete"));

    let again = setup();
    for topic in [&records, &dead, &state] {
        assert!(again.contains(&format!("topic {topic}: present (left as it is)")), "{again}");
    }
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn kafka_setup_says_what_existing_topics_lack_and_changes_nothing() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;

    let world = World::new("kunfit");
    let (records, dead, state) = (
        format!("{}.records", world.name),
        format!("{}.dead-letter", world.name),
        format!("{}.tracker-state", world.name),
    );
    // Made by hand before statmsg: one replica each, the state topic not compacted.
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", kafka_brokers()).create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let made = runtime
        .block_on(admin.create_topics(
            &[
                NewTopic::new(&records, 3, TopicReplication::Fixed(1)),
                NewTopic::new(&dead, 3, TopicReplication::Fixed(1)),
                NewTopic::new(&state, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "delete"),
            ],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(made.iter().all(Result::is_ok), "{made:?}");

    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx_url(), world.name));
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("partitions = 3\n", "partitions = 3\nreplication_factor = 2\n");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["kafka", "setup", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (said, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "unfit topics fail the setup: {said}{err}");
    for topic in [&records, &dead, &state] {
        let unfit = format!("topic {topic}: present, unfit: 1 replica(s) a partition, 2 configured");
        assert!(said.contains(&unfit), "{said}");
    }
    let uncompacted =
        format!("topic {state}: present, unfit: cleanup.policy delete: the tracker state topic");
    assert!(said.contains(&uncompacted), "{said}");
    assert!(said.contains(&format!("--entity-name {state} --add-config cleanup.policy=compact")), "{said}");
    let policy_findings = said.matches("present, unfit: cleanup.policy").count();
    assert_eq!(policy_findings, 1, "only the state topic must be compacted: {said}");
    assert!(err.contains("nothing was changed"), "{err}");
    // Nothing changed.
    assert_eq!(topic_setting(&state, "cleanup.policy").as_deref(), Some("delete"));
    assert_eq!([partitions_of(&records), partitions_of(&dead), partitions_of(&state)], [3, 3, 1]);
}
