//! The Grafana alert rules of `grafana/provisioning`, proven on the real pipeline: three simulated
//! hierarchies, timed to end now and each ending in other trouble (a stall, a child lag and
//! missing successes; a slow run; a long failure), go through one collector per site, Kafka and
//! the consumer into InfluxDB; one collector is killed. Then `grafana/check` validates the files
//! and evaluates every rule as Grafana does (query, reduce, threshold), and each rule must fire
//! for exactly the sites the simulator's truth says, and for no other.
//!
//! Needs `deploy/local/stack up`, python3 with jsonschema and yaml (`deploy/local/install`); run
//! with `cargo test -p statmsg --test integration e2e_grafana -- --include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

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

/// `grafana/check --influx`: every rule's evaluation and every dashboard query's rows, over the
/// last 30 days (the simulations are shorter).
fn check(db: &str, vars: &[&str]) -> Value {
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana/check");
    let mut command = Command::new(check);
    command.args(["--influx", &influx_url(), "--db", db, "--range", "30d"]);
    for var in vars {
        command.args(["--var", var]);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "grafana/check: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn evaluate(db: &str) -> BTreeMap<String, Value> {
    serde_json::from_value(check(db, &[])["rules"].clone()).unwrap()
}

/// The hourly downsampling now rather than at the hour's end: the statements of the continuous
/// queries `statmsg` set up for `db` (as InfluxDB holds them), run over the last hours.
fn downsample_now(db: &str) {
    let cqs = influx_query(db, "SHOW CONTINUOUS QUERIES");
    let series = cqs["series"].as_array().unwrap();
    let ours =
        series.iter().find(|s| s["name"] == db).unwrap_or_else(|| panic!("no continuous queries: {cqs}"));
    let statements = ours["values"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{ours}");
    for statement in statements {
        let cq = statement[1].as_str().unwrap();
        let select = &cq[cq.find("BEGIN ").unwrap() + 6..cq.rfind(" END").unwrap()];
        let select = select.replacen(" GROUP BY ", " WHERE time > now() - 3h GROUP BY ", 1);
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-XPOST", &format!("{}/query", influx_url())])
            .args(["--data-urlencode", &format!("db={db}"), "--data-urlencode", &format!("q={select}")])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && !said.contains("error"), "{select}: {said}");
    }
}

/// The rows of a panel's query, by panel title and refId.
fn rows<'a>(dashboard: &'a Value, title: &str, ref_id: &str) -> &'a Vec<Value> {
    dashboard["panels"][title][ref_id].as_array().unwrap_or_else(|| panic!("no panel {title:?} {ref_id}"))
}

/// A stat panel's single value.
fn stat(dashboard: &Value, title: &str) -> f64 {
    let rows = rows(dashboard, title, "A");
    assert_eq!(rows.len(), 1, "{title}: {rows:?}");
    let row = rows[0].as_object().unwrap();
    row.iter().find(|(k, _)| *k != "time").and_then(|(_, v)| v.as_f64()).unwrap()
}

fn sum(rows: &[Value], field: &str) -> f64 {
    rows.iter().filter_map(|r| r[field].as_f64()).sum()
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
    let q_silent = "SELECT last(\"alert_silent\") FROM \"statmsg_recent\".\"site_sync_state\" WHERE time > now() - 5s GROUP BY \"site\", \"hierarchy\"";
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

    downsample_now(&db);
    let checked = check(&db, &[]);
    let results: BTreeMap<String, Value> = serde_json::from_value(checked["rules"].clone()).unwrap();
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
    // Set up as an administrator would before any consumer ran: `statmsg influx setup`.
    let empty_config = consumer_config.with_file_name("empty.toml");
    let text = std::fs::read_to_string(&consumer_config).unwrap();
    std::fs::write(
        &empty_config,
        text.replace(&format!("database = \"{db}\""), &format!("database = \"{empty}\"")),
    )
    .unwrap();
    let said = influx_setup(&empty_config);
    assert!(said.contains("statmsg_recent"), "statmsg influx setup says what it did: {said}");
    let quiet = evaluate(&empty);
    assert_eq!(quiet["statmsg-consumer-silent"]["state"], "Alerting", "{}", quiet["statmsg-consumer-silent"]);
    for (uid, result) in &quiet {
        if uid != "statmsg-consumer-silent" {
            assert_eq!(result["state"], "Normal", "{uid}: {result}");
        }
    }

    // The fleet dashboard: every query, with Grafana's macros and variables, returns what its
    // panel promises.
    let fleet = &checked["dashboards"]["statmsg-fleet"];
    let mut all_sites = SiteSet::new();
    let mut all_runs = (0, 0, 0.0_f64);
    // (hierarchy, site) -> (runs, failed runs)
    let mut site_runs: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for (suffix, _) in HIERARCHIES {
        let hierarchy = format!("{}-{suffix}", world.name);
        let truth: Value =
            serde_json::from_slice(&std::fs::read(logs.join(&hierarchy).join("truth.json")).unwrap())
                .unwrap();
        for site in truth["sites"].as_array().unwrap() {
            all_sites.insert((hierarchy.clone(), site["site"].as_str().unwrap().to_owned()));
        }
        for run in truth["runs"].as_array().unwrap() {
            let counts =
                site_runs.entry((hierarchy.clone(), run["site"].as_str().unwrap().to_owned())).or_default();
            counts.0 += 1;
            counts.1 += usize::from(run["outcome"] == "failed");
            all_runs.0 += 1;
            all_runs.1 += usize::from(run["outcome"] == "failed");
            if run["outcome"] == "succeeded" {
                all_runs.2 = all_runs.2.max(run["duration_s"].as_f64().unwrap());
            }
        }
    }
    let hierarchies: Vec<String> = HIERARCHIES.iter().map(|(s, _)| format!("{}-{s}", world.name)).collect();
    let mut sorted = hierarchies.clone();
    sorted.sort();
    assert_eq!(fleet["variables"]["hierarchy"], serde_json::json!(sorted));
    assert_eq!(fleet["variables"]["site"], serde_json::json!(["CAS", "P01", "S01", "S02"]));
    assert_eq!(stat(fleet, "Sites"), all_sites.len() as f64);
    for (title, kind) in [
        ("Failing now", "failed"),
        ("Stalled now", "stalled"),
        ("Missing success", "missing_success"),
        ("Child sites lagging", "child_lag"),
        ("Silent sites", "silent"),
    ] {
        assert_eq!(stat(fleet, title), expected[kind].len() as f64, "{title}");
    }
    assert!(stat(fleet, "Oldest last success") > 26.0 * 3600.0);
    let attention: BTreeSet<(String, String, String)> = rows(fleet, "Needs attention", "A")
        .iter()
        .map(|r| {
            (
                r["hierarchy"].as_str().unwrap().into(),
                r["site"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = expected
        .iter()
        .flat_map(|(kind, sites)| sites.iter().map(|(h, s)| (h.clone(), s.clone(), kind.clone())))
        .collect();
    assert_eq!(attention, want);
    for row in rows(fleet, "Needs attention", "A") {
        assert!(!row["detail"].as_str().unwrap().is_empty(), "{row}");
        if row["site"] != "CAS" {
            assert!(row["parent"].is_string(), "a child's row names its parent: {row}");
        }
    }
    let alerting: SiteSet = want.iter().map(|(h, s, _)| (h.clone(), s.clone())).collect();
    let healthy: SiteSet = rows(fleet, "Healthy sites", "A")
        .iter()
        .map(|r| (r["hierarchy"].as_str().unwrap().into(), r["site"].as_str().unwrap().into()))
        .collect();
    assert_eq!(healthy, all_sites.difference(&alerting).cloned().collect::<SiteSet>());
    assert_eq!(sum(rows(fleet, "Runs and failures per day", "A"), "runs") as usize, all_runs.0);
    assert_eq!(sum(rows(fleet, "Runs and failures per day", "B"), "failures") as usize, all_runs.1);
    let slowest = rows(fleet, "Sync duration per day (median and slowest)", "A")
        .iter()
        .filter_map(|r| r["slowest"].as_f64())
        .fold(0.0, f64::max);
    assert!((slowest - all_runs.2).abs() < 2.0, "slowest {slowest}, truth {}", all_runs.2);
    assert!(!rows(fleet, "Sync status of every site", "A").is_empty());
    // One hierarchy chosen: the panels show it alone.
    let one = &hierarchies[0];
    let chosen = check(&db, &[&format!("hierarchy={one}")]);
    let fleet = &chosen["dashboards"]["statmsg-fleet"];
    let shown: BTreeSet<String> = rows(fleet, "Needs attention", "A")
        .iter()
        .map(|r| r["hierarchy"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, BTreeSet::from([one.clone()]));
    assert_eq!(stat(fleet, "Sites"), all_sites.iter().filter(|(h, _)| h == one).count() as f64);

    // The trends dashboard, over the same 30 days.
    let trends = &checked["dashboards"]["statmsg-trends"];
    assert_eq!(sum(rows(trends, "Runs and failures per week", "A"), "runs") as usize, all_runs.0);
    assert_eq!(sum(rows(trends, "Runs and failures per week", "B"), "failures") as usize, all_runs.1);
    for title in [
        "Weekly median sync duration per site",
        "Weekly 95th-percentile sync duration per site",
        "Updates synchronized per run",
        "Propagation delay per child (weekly median)",
    ] {
        assert!(!rows(trends, title, "A").is_empty(), "{title} returned nothing");
    }
    // From the hourly downsampling: every site alerting now had an alert this hour.
    let hours = rows(trends, "Hours with an alert per site per week", "A");
    let with_alert_hours: SiteSet = hours
        .iter()
        .filter(|r| r["count"].as_f64() > Some(0.0))
        .map(|r| (r["hierarchy"].as_str().unwrap().into(), r["site"].as_str().unwrap().into()))
        .collect();
    assert!(alerting.is_subset(&with_alert_hours), "alerting {alerting:?}, hours with an alert {hours:?}");

    // The site dashboard, for the stalled child site and for its parent.
    let stall = format!("{}-stall", world.name);
    let checked = check(&db, &[&format!("hierarchy={stall}"), "site=P01"]);
    let site = &checked["dashboards"]["statmsg-site"];
    let kinds = expected.values().filter(|sites| sites.contains(&(stall.clone(), "P01".to_owned()))).count();
    assert_eq!(stat(site, "Active alerts"), kinds as f64);
    let (runs, failed) = site_runs[&(stall.clone(), "P01".to_owned())];
    assert_eq!(rows(site, "Sync runs", "A").len(), runs);
    assert_eq!(site["annotations"]["Failed syncs"].as_array().unwrap().len(), failed);
    let messages = rows(site, "Status messages", "A");
    assert!(
        !messages.is_empty() && messages.iter().all(|m| m["id"].as_str().unwrap().parse::<u16>().is_ok())
    );
    let version = |r: &str| rows(site, "Catalog version: site and parent", r)[0]["last"].as_f64().unwrap();
    assert!(version("B") > version("A"), "P01 lags its parent's catalog version");
    assert!(stat(site, "Behind parent") > 7200.0);
    assert!(!rows(site, "Duration and phases of each run", "A").is_empty());
    let checked = check(&db, &[&format!("hierarchy={stall}"), "site=CAS"]);
    let propagation =
        rows(&checked["dashboards"]["statmsg-site"], "Version propagation to its children", "A");
    assert!(!propagation.is_empty());
    for row in propagation {
        assert!(all_sites.contains(&(stall.clone(), row["child"].as_str().unwrap().to_owned())), "{row}");
    }

    for (_, collector) in collectors {
        collector.stop();
    }
    consumer.stop();
}
