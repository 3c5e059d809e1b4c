//! The Grafana alert rules of `grafana/provisioning`, proven on the real pipeline: three simulated
//! hierarchies, timed to end now and each ending in other trouble (a stall, a child lag and
//! missing successes; a slow run; a long failure), go through one collector per site, Kafka and
//! the consumer into InfluxDB; one collector is killed. Then `grafana/check` validates the files
//! and evaluates every rule as Grafana does (query, reduce, threshold), and each rule must fire
//! for exactly the sites the simulator's truth says, and for no other.
//!
//! Needs `deploy/local/stack up`, python3 with jsonschema and yaml (`deploy/local/install`); run
//! with `cargo test --test e2e_grafana -- --include-ignored`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// (hierarchy suffix, days): the simulator's ten-day fault cycle puts each in trouble at its end.
const HIERARCHIES: [(&str, u32); 3] = [("stall", 5), ("slow", 6), ("fail", 9)];
/// The site whose collector is killed (in the hierarchy ending in a slow run).
const KILLED: (&str, &str) = ("slow", "P01");

type SiteSet = BTreeSet<(String, String)>;

fn simulate(out: &Path, hierarchy: &str, days: u32) -> Value {
    let start = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let status = Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["simulate", "--sites", "4", "--days", &days.to_string(), "--hierarchy", hierarchy])
        .args(["--start", &start.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    serde_json::from_slice(&std::fs::read(out.join(hierarchy).join("truth.json")).unwrap()).unwrap()
}

fn collector_config(world: &World, hierarchy: &str, site: &str, folder: &Path) -> PathBuf {
    let path = world.dir.path().join(format!("collect-{hierarchy}-{site}.toml"));
    let text = format!(
        r#"hierarchy = "{hierarchy}"
[collect]
paths = ["{folder}/*.log", "{folder}/*.lo_"]
state_dir = "{state}"
start_at = "beginning"
site = "{site}"
heartbeat_s = 1
[kafka]
brokers = "{brokers}"
topic = "{name}.records"
"#,
        folder = folder.display(),
        state = world.dir.path().join(format!("state-{hierarchy}-{site}")).display(),
        brokers = kafka_brokers(),
        name = world.name,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `grafana/check --influx`: every rule's evaluation.
fn evaluate(db: &str) -> BTreeMap<String, Value> {
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/check");
    let out = Command::new(check).args(["--influx", &influx_url(), "--db", db]).output().unwrap();
    assert!(out.status.success(), "grafana/check: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn firing(result: &Value) -> SiteSet {
    let labels = result["firing"].as_array().unwrap();
    labels
        .iter()
        .map(|l| (l["hierarchy"].as_str().unwrap().into(), l["site"].as_str().unwrap().into()))
        .collect()
}

#[test]
#[ignore = "needs the local stack: deploy/local/stack up"]
fn every_alert_rule_fires_for_exactly_the_sites_the_truth_says() {
    let world = World::new("e2e_grafana");
    let db = world.name.clone();
    let consumer_config = world.config(&format!("url = \"{}\"\ndatabase = \"{db}\"", influx_url()));
    let text = std::fs::read_to_string(&consumer_config).unwrap();
    // `silent` 12 s after the last heartbeat, so that the test need not wait 10 minutes.
    std::fs::write(&consumer_config, format!("{text}[track]\nsilent_after_minutes = 0.2\n")).unwrap();

    let logs = world.dir.path().join("sim");
    let mut expected: BTreeMap<String, SiteSet> = BTreeMap::new();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    let mut collectors = BTreeMap::new();
    for (suffix, days) in HIERARCHIES {
        let hierarchy = format!("{}-{suffix}", world.name);
        let truth = simulate(&logs, &hierarchy, days);
        runs.insert(hierarchy.clone(), truth["runs"].as_array().unwrap().len());
        let last = truth["checks"].as_array().unwrap().last().unwrap();
        assert_eq!(last["at"], truth["end"], "the truth's last check is at its end");
        for alert in last["alerts"].as_array().unwrap() {
            let site = (hierarchy.clone(), alert["site"].as_str().unwrap().to_owned());
            expected.entry(alert["kind"].as_str().unwrap().to_owned()).or_default().insert(site);
        }
        for site in truth["sites"].as_array().unwrap() {
            let site = site["site"].as_str().unwrap();
            let config = collector_config(&world, &hierarchy, site, &logs.join(&hierarchy).join(site));
            collectors.insert((suffix, site.to_owned()), Proc::start("collect", &config));
        }
    }
    for kind in ["stalled", "failed", "missing_success", "slow", "child_lag"] {
        assert!(
            expected.get(kind).is_some_and(|s| !s.is_empty()),
            "the simulation must end with {kind}: {expected:?}"
        );
    }
    let consumer = Proc::start("consume", &consumer_config);

    // Every run of every hierarchy is in InfluxDB.
    let q_runs = "SELECT count(\"outcome\") FROM \"sync_run\" GROUP BY \"hierarchy\"";
    wait_for(
        Duration::from_secs(180),
        || {
            let result = influx_query(&db, q_runs);
            let series = result["series"].as_array().cloned().unwrap_or_default();
            let got: BTreeMap<String, usize> = series
                .iter()
                .map(|s| {
                    (
                        s["tags"]["hierarchy"].as_str().unwrap().to_owned(),
                        s["values"][0][1].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            (got == runs).then_some(())
        },
        || format!("runs expected {runs:?}, got {}\n{}", influx_query(&db, q_runs), consumer.output()),
    );

    // One collector dies: its site, and only it, must become `silent`.
    let killed = (format!("{}-{}", world.name, KILLED.0), KILLED.1.to_owned());
    collectors.remove(&(KILLED.0, KILLED.1.to_owned())).unwrap().kill9();
    expected.entry("silent".into()).or_default().insert(killed.clone());
    let q_silent = "SELECT last(\"alert_silent\") FROM \"site_sync_state\" WHERE time > now() - 5s GROUP BY \"site\", \"hierarchy\"";
    wait_for(
        Duration::from_secs(60),
        || {
            let result = influx_query(&db, q_silent);
            let series = result["series"].as_array().cloned().unwrap_or_default();
            series
                .iter()
                .any(|s| {
                    s["tags"]["hierarchy"] == killed.0.as_str()
                        && s["tags"]["site"] == killed.1.as_str()
                        && s["values"][0][1] == 1
                })
                .then_some(())
        },
        || format!("{}\n{}", influx_query(&db, q_silent), consumer.output()),
    );

    let results = evaluate(&db);
    let rule = |kind: &str| &results[&format!("statmsg-{}", kind.replace('_', "-"))];
    for kind in ["stalled", "failed", "missing_success", "slow", "child_lag", "silent"] {
        let want = expected.get(kind).cloned().unwrap_or_default();
        assert_eq!(firing(rule(kind)), want, "rule {kind}: {}", rule(kind));
        assert_eq!(rule(kind)["state"], "Alerting");
    }
    // The cause reaches the notification: the failure's message and HRESULT are in the labels.
    for labels in rule("failed")["firing"].as_array().unwrap() {
        let summary = labels["summary"].as_str().unwrap();
        assert!(summary.starts_with("[0x8013150A] "), "{summary}");
    }
    for labels in rule("silent")["firing"].as_array().unwrap() {
        assert!(
            labels["summary"].as_str().unwrap().starts_with("no heartbeat from the collector on "),
            "{labels}"
        );
    }
    // The second opinion from the raw status messages agrees with the tracker's missing_success.
    assert_eq!(
        firing(&results["statmsg-no-6702"]),
        expected["missing_success"],
        "{}",
        results["statmsg-no-6702"]
    );
    // The consumer writes its heartbeats: that rule is quiet ...
    assert_eq!(
        results["statmsg-consumer-silent"]["state"], "Normal",
        "{}",
        results["statmsg-consumer-silent"]
    );

    // ... and fires where no heartbeat comes (an empty database: NoData), while the tracker's
    // rules stay quiet there (an empty result means no site has that alert).
    let empty = format!("{db}_empty");
    let created = Command::new("curl")
        .args(["-sS", "--fail", "-XPOST", &format!("{}/query", influx_url()), "--data-urlencode"])
        .arg(format!("q=CREATE DATABASE \"{empty}\""))
        .status()
        .unwrap();
    assert!(created.success());
    let quiet = evaluate(&empty);
    assert_eq!(quiet["statmsg-consumer-silent"]["state"], "Alerting", "{}", quiet["statmsg-consumer-silent"]);
    for (uid, result) in &quiet {
        if uid != "statmsg-consumer-silent" {
            assert_eq!(result["state"], "Normal", "{uid}: {result}");
        }
    }

    for (_, collector) in collectors {
        collector.stop();
    }
    consumer.stop();
}
