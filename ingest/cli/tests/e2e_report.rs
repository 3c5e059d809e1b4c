//! `statmsg report --influx` on a deployed pipeline: a simulated hierarchy (four months, one
//! site growing) goes through one collector per site, the real Kafka and the consumer into the
//! real InfluxDB; the report built from InfluxDB's `sync_run` history must carry the same
//! figures as the report built offline from the same logs, and find the same growth. Ignored by
//! a plain `cargo test`; `.ci/run` starts the stack and runs it with `--include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn report(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["report", "--json", "-o", "-"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "statmsg report {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs the local stack: deploy/local/stack up"]
fn the_report_from_influxdb_equals_the_report_from_the_logs() {
    let world = World::new("e2e_report");
    let sim = world.dir.path().join("sim");
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["simulate", "--sites", "4", "--days", "120", "--hierarchy", &world.name])
        .args(["--growth-percent-per-month", "P01=15", "--out"])
        .arg(&sim)
        .output()
        .unwrap();
    assert!(out.status.success());
    let truth: Value =
        serde_json::from_slice(&std::fs::read(sim.join(&world.name).join("truth.json")).unwrap()).unwrap();
    let runs = truth["runs"].as_array().unwrap().len() as u64;

    let config = world.config(&format!("url = \"{}\"\ndatabase = \"{}\"", influx_url(), world.name));
    let base = std::fs::read_to_string(&config).unwrap();
    let mut collectors = Vec::new();
    for site in ["CAS", "P01", "S01", "S02"] {
        let folder = sim.join(&world.name).join(site);
        let path = world.dir.path().join(format!("collect-{site}.toml"));
        let text = base
            .replace(
                &format!("paths = [\"{}/*.log\"]", world.dir.path().join("logs").display()),
                &format!("paths = [\"{0}/*.log\", \"{0}/*.lo_\"]", folder.display()),
            )
            .replace("site = \"CS1\"", &format!("site = \"{site}\""))
            .replace(
                &format!("state_dir = \"{}\"", world.dir.path().join("state").display()),
                &format!("state_dir = \"{}\"", world.dir.path().join(format!("state-{site}")).display()),
            );
        assert!(text.contains(&format!("site = \"{site}\"")) && text.contains("*.lo_"), "{text}");
        std::fs::write(&path, text).unwrap();
        collectors.push(Proc::start("collect", &path));
    }
    let consumer = Proc::start("consume", &config);
    let q = "SELECT count(\"outcome\") FROM \"sync_run\"";
    wait_for(
        Duration::from_secs(120),
        || (influx_query(&world.name, q)["series"][0]["values"][0][1].as_u64() == Some(runs)).then_some(()),
        || format!("{runs} runs expected: {}\n{}", influx_query(&world.name, q), consumer.output()),
    );
    consumer.stop();
    for c in collectors {
        c.stop();
    }

    let from_influx = report(&["--influx", "--config", config.to_str().unwrap()]);
    let from_logs = report(&[sim.to_str().unwrap()]);
    assert_eq!(from_influx["fleet"]["runs"].as_u64(), Some(runs));
    // The same figures, but for the clean-up lines, which InfluxDB does not hold.
    let (influx_sites, log_sites) =
        (from_influx["sites"].as_array().unwrap(), from_logs["sites"].as_array().unwrap());
    assert_eq!(influx_sites.len(), log_sites.len());
    for (a, b) in influx_sites.iter().zip(log_sites) {
        for (key, value) in b.as_object().unwrap() {
            let site = &b["site"];
            match key.as_str() {
                "days_since_cleanup" => assert!(a[key].is_null(), "{site}: {key} {}", a[key]),
                _ => assert_eq!(&a[key], value, "{site}: {key} from InfluxDB and from the logs"),
            }
        }
    }
    assert!(log_sites[0]["days_since_cleanup"].is_number(), "the top site's clean-up from its log");
    assert_eq!(from_influx["fleet"]["growing"], serde_json::json!([format!("{}/P01", world.name)]));
    // A period: only the runs that started in it.
    let june = report(&[
        "--influx",
        "--config",
        config.to_str().unwrap(),
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-30",
    ]);
    let in_april = truth["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["start"].as_str().unwrap().starts_with("2024-04"))
        .count();
    assert_eq!(june["fleet"]["runs"].as_u64(), Some(in_april as u64));
}
