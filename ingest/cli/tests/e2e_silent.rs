//! `silent` on the real servers: three collectors (one per site) send heartbeats through Kafka,
//! one consumer tracks them; the collector of one site is killed, and `site_sync_state` raises
//! `silent` for exactly that site, then ends it when the collector is back.
//!
//! Needs `deploy/local/stack up`; run with
//! `cargo test -p statmsg --test integration e2e_silent -- --include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// The latest `site_sync_state` of every site written in the last few seconds: site -> row.
fn latest_states(db: &str) -> BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    let q = "SELECT last(alert_silent) AS alert_silent, last(alerts) AS alerts, last(last_heartbeat_age_s) AS age \
             FROM statmsg_recent.site_sync_state WHERE time > now() - 3s GROUP BY site";
    let result = influx_query(db, q);
    let mut out = BTreeMap::new();
    for series in result["series"].as_array().cloned().unwrap_or_default() {
        let site = series["tags"]["site"].as_str().unwrap().to_owned();
        let columns: Vec<String> =
            series["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        let values = series["values"][0].as_array().unwrap();
        out.insert(site, columns.into_iter().zip(values.iter().cloned()).collect());
    }
    out
}

fn silent_sites(states: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>) -> Vec<&str> {
    states.iter().filter(|(_, r)| r["alert_silent"] == 1).map(|(s, _)| s.as_str()).collect()
}

#[test]
#[ignore = "needs the local stack: deploy/local/stack up"]
fn the_site_whose_collector_died_is_silent_and_only_it_until_the_collector_is_back() {
    let world = World::new("e2e_silent");
    let db = world.name.clone();
    let consumer_config = world.config(&format!("url = \"{}\"\ndatabase = \"{db}\"", influx_url()));
    let text = std::fs::read_to_string(&consumer_config).unwrap();
    // `silent` after 6 s without a heartbeat; collectors beat every second.
    std::fs::write(&consumer_config, format!("{text}[track]\nsilent_after_minutes = 0.1\n")).unwrap();
    let logs = world.dir.path().join("logs");
    let state = world.dir.path().join("state");
    let collector_config = |site: &str| -> PathBuf {
        let site_logs = logs.join(site);
        std::fs::create_dir_all(&site_logs).unwrap();
        std::fs::write(
            site_logs.join("WsyncMgr.log"),
            format!("Wakeup for scheduled regular sync {site}\r\n"),
        )
        .unwrap();
        let path = world.dir.path().join(format!("collect-{site}.toml"));
        let text = text
            .replace("site = \"CS1\"", &format!("site = \"{site}\"\nheartbeat_s = 1"))
            .replace(&format!("{}/*.log", logs.display()), &format!("{}/*.log", site_logs.display()))
            .replace(
                &format!("state_dir = \"{}\"", state.display()),
                &format!("state_dir = \"{}\"", state.join(site).display()),
            );
        std::fs::write(&path, text).unwrap();
        path
    };
    let configs: BTreeMap<&str, PathBuf> =
        ["CS1", "PS1", "PS2"].into_iter().map(|s| (s, collector_config(s))).collect();
    let consumer = Proc::start("consume", &consumer_config);
    let mut collectors: BTreeMap<&str, Proc> =
        configs.iter().map(|(site, config)| (*site, Proc::start("collect", config))).collect();

    // Every site is known from its heartbeats, none silent.
    let states = wait_for(
        Duration::from_secs(60),
        || Some(latest_states(&db)).filter(|s| s.len() == 3 && s.values().all(|r| r["age"].is_number())),
        || format!("{:?}\n{}", latest_states(&db), consumer.output()),
    );
    assert!(silent_sites(&states).is_empty(), "{states:?}");
    let beats = rows(&influx_query(
        &db,
        "SELECT count(files_watched) FROM statmsg_recent.collector_status GROUP BY site",
    ));
    assert!(!beats.is_empty());

    // PS2's collector dies (kill -9: no goodbye). Within the threshold nothing fires ...
    collectors.remove("PS2").unwrap().kill9();
    std::thread::sleep(Duration::from_secs(3));
    assert!(silent_sites(&latest_states(&db)).is_empty(), "silent before its threshold");
    // ... then exactly PS2 is silent, with its alert named, while the others' heartbeats go on.
    let states = wait_for(
        Duration::from_secs(30),
        || Some(latest_states(&db)).filter(|s| !silent_sites(s).is_empty()),
        || format!("{:?}\n{}", latest_states(&db), consumer.output()),
    );
    assert_eq!(silent_sites(&states), vec!["PS2"], "{states:?}");
    assert_eq!(states["PS2"]["alerts"], "silent");
    assert!(states["PS2"]["age"].as_f64().unwrap() > 6.0, "{states:?}");
    for site in ["CS1", "PS1"] {
        assert!(states[site]["age"].as_f64().unwrap() < 5.0, "{site}: {states:?}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(silent_sites(&latest_states(&db)), vec!["PS2"], "it stays silent while the collector is away");

    // Back: the alert ends with its first heartbeat.
    collectors.insert("PS2", Proc::start("collect", &configs["PS2"]));
    wait_for(
        Duration::from_secs(30),
        || Some(latest_states(&db)).filter(|s| s.len() == 3 && silent_sites(s).is_empty()),
        || format!("{:?}\n{}", latest_states(&db), consumer.output()),
    );
    for (_, collector) in collectors {
        collector.stop();
    }
    consumer.stop();
}
