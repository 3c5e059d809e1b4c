//! Secure transport end to end, on servers of the test's own: a Kafka broker with a SASL_SSL
//! listener (SCRAM-SHA-512, a certificate from a throw-away CA made with `openssl` at test time)
//! and an InfluxDB over HTTPS with authentication (a certificate of the same CA).
//!
//! The collector and the consumer deliver through them, with the passwords read from files the
//! configuration names. First with a wrong password, then with a CA that did not sign the
//! broker's certificate: each time the error names the cause, nothing is delivered and nothing
//! is lost (the spool keeps the records, the consumer commits nothing). Then the configuration is
//! fixed and everything arrives exactly once.
//!
//! Ignored by a plain `cargo test`; `.ci/run` runs it (openssl, Java with the Kafka jars, kcat and
//! influxd, from `deploy/local/install`).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use serde_json::Value;

const RECORDS: usize = 200;
const USER: &str = "statmsg";
const PASSWORD: &str = "correct horse battery staple";
const INFLUX_ADMIN: &str = "admin";
const INFLUX_PASSWORD: &str = "influx secret";

fn gmt(n: usize) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
        + chrono::Duration::milliseconds(n as i64 * 250)
}

fn record(n: usize) -> String {
    let istr = vec![format!("rec-{n}"), "through TLS".to_owned()];
    let g = gmt(n);
    server_line(&statmsg_message(6704, 'I', g, &istr, None), g + chrono::Duration::hours(1), -60, 1234)
}

/// How often each `rec-N` is in the topic (read through the broker's PLAINTEXT listener).
fn delivered(brokers: &str, topic: &str) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    for payload in topic_payloads(brokers, topic) {
        let v: Value = serde_json::from_str(&payload).unwrap();
        let text = v["record"]["text"].as_str().unwrap_or_default();
        if let Some(n) =
            text.split("ISTR0=\"rec-").nth(1).and_then(|t| t.split('"').next()).and_then(|n| n.parse().ok())
        {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

/// An InfluxQL query over HTTPS, trusting only the test CA, as the admin.
fn influx_https(url: &str, ca: &Path, database: &str, q: &str) -> Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca.display().to_string(),
            "-u",
            &format!("{INFLUX_ADMIN}:{INFLUX_PASSWORD}"),
        ])
        .args(["-G", &format!("{url}/query")])
        .args(["--data-urlencode", &format!("db={database}"), "--data-urlencode", &format!("q={q}")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

struct Setup {
    dir: PathBuf,
    name: String,
    brokers: String,
    influx_url: String,
    ca: PathBuf,
}

impl Setup {
    /// Each phase its own state (and spool), so that what one phase kept is not taken for
    /// what another did.
    fn state(&self, config_file: &str) -> PathBuf {
        self.dir.join(format!("state-{}", config_file.trim_end_matches(".toml")))
    }

    /// A configuration for both stages; `password_file` and `kafka_ca` are what the phases vary.
    fn config(&self, file: &str, password_file: &Path, kafka_ca: &Path) -> PathBuf {
        let influx_password = self.dir.join("influx.password");
        std::fs::write(&influx_password, format!("{INFLUX_PASSWORD}\n")).unwrap();
        let path = self.dir.join(file);
        let text = format!(
            r#"hierarchy = "{name}"
[collect]
paths = ["{logs}/*.log"]
state_dir = "{state}"
start_at = "beginning"
site = "CS1"
poll_interval_ms = 50
[kafka]
brokers = "{brokers}"
topic = "{name}.records"
dead_letter_topic = "{name}.dead-letter"
state_topic = "{name}.tracker-state"
group_id = "{name}"
partitions = 3
[kafka.properties]
"security.protocol" = "sasl_ssl"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "{USER}"
"ssl.ca.location" = "{kafka_ca}"
"message.timeout.ms" = "60000"
[kafka.secret_files]
"sasl.password" = "{password_file}"
[consume]
batch_max_messages = 500
batch_max_points = 500
batch_linger_ms = 100
heartbeat_s = 1
[influxdb]
url = "{influx_url}"
database = "{name}"
username = "{INFLUX_ADMIN}"
password_file = "{influx_password}"
ca_file = "{ca}"
"#,
            name = self.name,
            logs = self.dir.join("logs").display(),
            state = self.state(file).display(),
            brokers = self.brokers,
            kafka_ca = kafka_ca.display(),
            password_file = password_file.display(),
            influx_url = self.influx_url,
            influx_password = influx_password.display(),
            ca = self.ca.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
#[ignore = "needs openssl, Java with the Kafka jars, kcat and influxd (.ci/run)"]
fn collector_and_consumer_deliver_through_sasl_ssl_and_https_and_recover_from_bad_credentials() {
    let world = World::new("tls");
    let dir = world.dir.path().to_path_buf();
    let ca = TestCa::new(&dir.join("ca"), "statmsg test CA");
    let rogue = TestCa::new(&dir.join("rogue"), "a CA nobody trusts");
    let kafka_certificate = ca.issue("kafka");
    let kafka = PrivateKafka::start_with(
        &dir.join("kafka"),
        Some(SaslSsl { user: USER, password: PASSWORD, certificate: &kafka_certificate }),
    );
    let influx_certificate = ca.issue("influxdb");
    let influx = PrivateInflux::start_with(
        &dir.join("influxdb"),
        free_port_pair(21_400),
        true,
        Some(&influx_certificate),
    );
    // With authentication on, the first user may be created without one: the admin.
    let created = influx_https(
        &influx.url(),
        &ca.cert,
        "",
        &format!("CREATE USER {INFLUX_ADMIN} WITH PASSWORD '{INFLUX_PASSWORD}' WITH ALL PRIVILEGES"),
    );
    assert!(created["results"][0]["error"].is_null(), "create the InfluxDB admin: {created}");

    let setup = Setup {
        dir: dir.clone(),
        name: world.name.clone(),
        brokers: kafka.secure_brokers(),
        influx_url: influx.url(),
        ca: ca.cert.clone(),
    };
    let topic = format!("{}.records", world.name);
    let right = dir.join("kafka.password");
    std::fs::write(&right, format!("{PASSWORD}\n")).unwrap();
    let wrong = dir.join("kafka.wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append(&logs.join("WsyncMgr.log"), &(0..RECORDS).map(record).collect::<String>());

    // A wrong password, then an untrusted certificate: the cause is said, nothing is delivered.
    let refused = [
        (
            "wrong-password.toml",
            &wrong,
            &ca.cert,
            "SASL authentication",
            "(the broker refused the login: check",
        ),
        (
            "untrusted.toml",
            &right,
            &rogue.cert,
            "certificate verify failed",
            "(TLS failed: check ssl.ca.location",
        ),
    ];
    for (file, password, kafka_ca, cause, hint) in refused {
        let used = std::fs::read_to_string(password).unwrap().trim().to_owned();
        let config = setup.config(file, password, kafka_ca);
        let collector = Proc::start("collect", &config);
        let consumer = Proc::start("consume", &config);
        for stage in [&collector, &consumer] {
            wait_for(
                Duration::from_secs(60),
                || {
                    let said = stage.output();
                    // The topic check's own client must say it too: rdkafka's admin client never
                    // polls for it, statmsg does.
                    let topic_check_said = said
                        .lines()
                        .any(|line| line.contains("client=\"topic-check\"") && line.contains(cause));
                    (said.contains(cause) && topic_check_said).then_some(())
                },
                || format!("{} did not say {cause:?}:\n{}", stage.what, stage.output()),
            );
        }
        for stage in [&collector, &consumer] {
            let said = stage.output();
            assert!(said.contains(hint), "{} does not say what to check ({hint:?}):\n{said}", stage.what);
            assert!(
                said.lines().any(|line| line.contains("client=\"topic-check\"") && line.contains(hint)),
                "{}'s topic check did not say the cause:\n{said}",
                stage.what
            );
            assert!(
                !said.contains(&used) && !said.contains(INFLUX_PASSWORD),
                "a password in the log of {}",
                stage.what
            );
        }
        assert!(
            delivered(&kafka.brokers(), &topic).is_empty(),
            "{file}: delivered through a refused connection"
        );
        collector.stop();
        consumer.stop();
        let points = influx_https(&influx.url(), &ca.cert, &world.name, "SELECT count(pid) FROM statmsg");
        assert!(points["results"][0]["series"].is_null(), "{file}: the consumer wrote {points}");
        let spooled: u64 = std::fs::read_dir(setup.state(file).join("spool"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(spooled > (RECORDS * 200) as u64, "{file}: the records wait in the spool ({spooled} bytes)");
        eprintln!("{file}: refused, the cause said ({cause}); the records kept in the spool");
    }

    // Fixed: everything arrives, exactly once, through TLS all the way to InfluxDB.
    let config = setup.config("right.toml", &right, &ca.cert);
    let collector = Proc::start("collect", &config);
    let consumer = Proc::start("consume", &config);
    let seen = wait_for(
        Duration::from_secs(90),
        || {
            let seen = delivered(&kafka.brokers(), &topic);
            (seen.len() == RECORDS).then_some(seen)
        },
        || format!("not all records reached Kafka:\n{}", collector.output()),
    );
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    assert_eq!(duplicates, 0, "no kill, no duplicate");
    let points = wait_for(
        Duration::from_secs(90),
        || {
            let v = influx_https(&influx.url(), &ca.cert, &world.name, "SELECT count(pid) FROM statmsg");
            let points = v["results"][0]["series"][0]["values"][0][1].as_u64().unwrap_or(0);
            (points == RECORDS as u64).then_some(points)
        },
        || format!("not all points in InfluxDB:\n{}", consumer.output()),
    );
    collector.stop();
    consumer.stop();
    eprintln!(
        "through SASL_SSL (SCRAM-SHA-512) and HTTPS with authentication: {} records in Kafka, {points} points in \
         InfluxDB, 0 lost, 0 duplicated",
        seen.len()
    );
}
