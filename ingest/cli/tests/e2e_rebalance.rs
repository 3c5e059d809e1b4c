//! Two consumers share the records topic; one is killed (`kill -9`) while every site is in the
//! middle of a run. The survivor takes over its partitions, restores those sites' tracker state
//! from the compacted state topic, and finishes every run as one run with what the first half
//! said (trigger, start).
//!
//! Needs `deploy/local/stack up`; run with
//! `cargo test -p statmsg --test integration e2e_rebalance -- --include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::*;

/// CRC-32 (IEEE), what librdkafka's default partitioner hashes keys with.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn line(message: &str, utc: chrono::DateTime<Utc>) -> String {
    server_line(message, utc.naive_utc(), 0, 7)
}

#[test]
#[ignore = "needs the local stack: deploy/local/stack up"]
fn the_surviving_consumer_continues_the_runs_of_the_partitions_it_takes_over() {
    let world = World::new("e2e_rebalance");
    let db = world.name.clone();
    let base = world.config(&format!("url = \"{}\"\ndatabase = \"{db}\"", influx_url()));
    let text = std::fs::read_to_string(&base).unwrap().replace(
        "[kafka.properties]\n",
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"partitioner\" = \"consistent_random\"\n",
    );
    // One site per partition of the 3: both consumers own sites.
    let mut sites: Vec<String> = Vec::new();
    for p in 0..3u32 {
        let site = (0..1000)
            .map(|i| format!("S{i:02}"))
            .find(|s| crc32(format!("{}/{s}", world.name).as_bytes()) % 3 == p)
            .unwrap();
        sites.push(site);
    }
    let start = Utc::now() - chrono::Duration::minutes(30);
    let at = |s: i64| start + chrono::Duration::seconds(s);
    let mut collectors = Vec::new();
    let mut logs = Vec::new();
    for site in &sites {
        let dir = world.dir.path().join(site);
        std::fs::create_dir_all(&dir).unwrap();
        let config = world.dir.path().join(format!("{site}.toml"));
        let logs_dir = world.dir.path().join("logs").display().to_string();
        let state_dir = world.dir.path().join("state").display().to_string();
        let own = text
            .replace(&format!("{logs_dir}/*.log"), &format!("{}/*.log", dir.display()))
            .replace(&state_dir, &format!("{state_dir}-{site}"))
            .replace("site = \"CS1\"", &format!("site = \"{site}\""));
        std::fs::write(&config, own).unwrap();
        let log = dir.join("WsyncMgr.log");
        append(
            &log,
            &[
                line("Wakeup by inbox drop", at(-1)),
                line("Found parent sync notification file CAS.SYN.", at(-1)),
                line("Starting Sync", at(0)),
                line("Performing sync on parent request", at(0)),
                line(&format!("Synchronizing WSUS server {}.contoso.com ...", site.to_lowercase()), at(2)),
            ]
            .concat(),
        );
        logs.push(log);
        collectors.push(Proc::start("collect", &config));
    }
    std::fs::write(&base, &text).unwrap();
    let first = Proc::start("consume", &base);
    let second = Proc::start("consume", &base);
    let q = "SELECT * FROM sync_run GROUP BY site";
    wait_for(
        Duration::from_secs(90),
        || {
            (rows(&influx_query(&db, q)).iter().filter(|r| r["outcome"] == "running").count() == 3)
                .then_some(())
        },
        || format!("{:?}\n{}\n{}", rows(&influx_query(&db, q)), first.output(), second.output()),
    );
    // Both consumers own partitions (which one processed a site's first half depends on when
    // the group settled: a partition may have moved already, its site restored from the state
    // topic). Every first half is in InfluxDB, so its state is saved an instant later.
    wait_for(
        Duration::from_secs(60),
        || {
            let owns = |p: &Proc| {
                p.output().lines().any(|l| l.contains("assignment changed") && !l.contains("partitions={}"))
            };
            (owns(&first) && owns(&second)).then_some(())
        },
        || format!("FIRST:\n{}\nSECOND:\n{}", first.output(), second.output()),
    );
    std::thread::sleep(Duration::from_secs(2));
    first.kill9();

    for (site, log) in sites.iter().zip(&logs) {
        append(
            log,
            &[
                line(&format!("Done synchronizing WSUS Server {}.contoso.com", site.to_lowercase()), at(600)),
                line(
                    &format!("Set content version of update source {{C2D1}} for site {site} to 77"),
                    at(601),
                ),
                line(
                    &format!("Sync succeeded. Setting sync alert to canceled state on site {site}"),
                    at(602),
                ),
                line("Successfully synced site with parent CAS, version 77", at(602)),
                line("Sync time: 0d00h10m02s", at(602)),
            ]
            .concat(),
        );
    }
    let done = wait_for(
        Duration::from_secs(90),
        || {
            let r = rows(&influx_query(&db, q));
            (r.iter().filter(|r| r["outcome"] == "succeeded").count() == 3).then_some(r)
        },
        || format!("{:?}\n{}", rows(&influx_query(&db, q)), second.output()),
    );
    assert_eq!(done.len(), 3, "one run per site: {done:?}");
    for run in &done {
        assert_eq!(
            (run["trigger"].as_str(), run["parent"].as_str()),
            (Some("parent"), Some("CAS")),
            "{run:?}"
        );
        assert_eq!(run["duration_s"].as_f64(), Some(602.0));
        assert_eq!(
            run["time"].as_i64().unwrap(),
            start.timestamp_nanos_opt().unwrap() / 1_000_000 * 1_000_000
        );
    }
    assert!(
        second.output().lines().any(|l| l.contains("assignment changed") && !l.contains("sites=0")),
        "the survivor restored the sites it took over:\n{}",
        second.output()
    );
    second.stop();
    for c in collectors {
        c.stop();
    }
}
