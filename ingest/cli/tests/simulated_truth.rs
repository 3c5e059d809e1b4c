//! Scenarios from `statmsg simulate`, read back from the files it wrote (encodings, zones with
//! daylight saving, rollover and history files) by `statmsg analyze`'s code, and checked run by
//! run and alert by alert against the simulation's truth: no run missed or invented, no alert
//! missed, no false one, each with the right `since`.

#![allow(clippy::unwrap_used)]

use chrono::Duration;
use statmsg::analyze::{self, Progress};
use statmsg_sim::truth::{ExpectedAlert, Truth};
use statmsg_sim::{SimConfig, Simulation};
use statmsg_track::TrackerConfig;

fn analyze_at(dir: &std::path::Path, now: Option<chrono::DateTime<chrono::Utc>>) -> analyze::Report {
    let config = analyze::Config {
        paths: vec![dir.to_owned()],
        now,
        hierarchy: None,
        tracker: TrackerConfig::default(),
        threads: 2,
    };
    analyze::run(&config, &Progress::default()).unwrap()
}

fn check(config: SimConfig) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulation::generate(config.clone());
    sim.write(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join(&config.hierarchy).join("truth.json")).unwrap();
    let truth: Truth = serde_json::from_str(&text).unwrap();
    assert_eq!(truth, Truth::of(&sim), "truth.json is the truth");

    // Every run, as generated.
    let report = analyze_at(dir.path(), Some(truth.end));
    let mut missed = Vec::new();
    for expected in &truth.runs {
        let found = report.runs.iter().find(|r| r.site == expected.site && r.start == expected.start);
        match found {
            None => missed.push(format!("{} {}", expected.site, expected.start)),
            Some(run) => {
                let got = (run.outcome, run.trigger, run.end, run.duration_s, run.content_version);
                let want = (
                    expected.outcome,
                    expected.trigger,
                    expected.end,
                    expected.duration_s,
                    expected.content_version,
                );
                // A failed run's duration is end - start; the truth leaves it out.
                let got =
                    if expected.duration_s.is_none() { (got.0, got.1, got.2, None, got.4) } else { got };
                assert_eq!(got, want, "run of {} at {}", expected.site, expected.start);
            }
        }
    }
    assert!(missed.is_empty(), "runs missed: {missed:?}");
    assert_eq!(report.runs.len(), truth.runs.len(), "no invented run");

    // Every alert at every check, and nothing else.
    let mut alerts_seen = std::collections::BTreeSet::new();
    for check in &truth.checks {
        let report = analyze_at(dir.path(), Some(check.at));
        let mut got: Vec<ExpectedAlert> = report
            .alerts
            .iter()
            .map(|a| ExpectedAlert { site: a.site.clone(), kind: a.kind, since: a.since })
            .collect();
        got.sort();
        // `since` to the millisecond, except where the threshold is a fraction of a median.
        let close = |a: &ExpectedAlert, b: &ExpectedAlert| {
            a.site == b.site && a.kind == b.kind && (a.since - b.since).abs() <= Duration::milliseconds(1)
        };
        let missing: Vec<_> = check.alerts.iter().filter(|e| !got.iter().any(|g| close(e, g))).collect();
        let extra: Vec<_> = got.iter().filter(|g| !check.alerts.iter().any(|e| close(e, g))).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "at {}: missed {missing:?}, false {extra:?}",
            check.at
        );
        alerts_seen.extend(got.iter().map(|a| a.kind));
    }
    let alerting = truth.checks.iter().filter(|c| !c.alerts.is_empty()).count();
    let alerts: usize = truth.checks.iter().map(|c| c.alerts.len()).sum();
    eprintln!(
        "{} sites, {} days: {} runs matched; {} checks ({alerting} with alerts, {alerts} alerts) matched; kinds {alerts_seen:?}",
        config.sites,
        config.days,
        truth.runs.len(),
        truth.checks.len()
    );
    if config.faults && config.days >= 10 && config.sites > 1 {
        assert_eq!(alerts_seen.len(), 5, "every kind of alert occurs: {alerts_seen:?}");
    }
}

#[test]
fn a_hierarchy_of_seven_sites_over_twenty_days() {
    check(SimConfig { sites: 7, days: 20, seed: 1, ..SimConfig::default() });
}

#[test]
fn small_rolls_utf16_and_a_second_seed() {
    // Thirteen sites: every zone and encoding, rolled every 40 KB into history files.
    check(SimConfig {
        sites: 13,
        days: 11,
        seed: 7,
        roll_bytes: 40_000,
        updates: 15,
        ..SimConfig::default()
    });
}

#[test]
fn a_standalone_primary_site() {
    check(SimConfig { sites: 1, days: 10, seed: 3, ..SimConfig::default() });
}

#[test]
fn a_daylight_saving_change_inside_runs() {
    // US Eastern (the top site's zone) moves from +300 to +240 at 07:00 UTC on 2024-03-10; the
    // run starting at 06:55 UTC ends after it. Start and end are compared to the millisecond.
    let config = SimConfig {
        sites: 3,
        days: 12,
        faults: false,
        schedule_minute: 415,
        schedule_jitter_s: 1,
        ..SimConfig::default()
    };
    let sim = Simulation::generate(config.clone());
    let dst = chrono::DateTime::parse_from_rfc3339("2024-03-10T07:00:00Z").unwrap();
    let crossing = sim.runs.iter().filter(|r| r.start < dst && r.end.is_some_and(|e| e > dst)).count();
    assert!(crossing >= 1, "a run spans the change");
    check(config);
}

/// `samples/fabrikam` is exactly what `statmsg simulate --out samples --hierarchy fabrikam
/// --sites 7 --days 15` writes, and its truth holds.
#[test]
fn the_committed_sample_is_reproducible() {
    let config = SimConfig { hierarchy: "fabrikam".into(), sites: 7, days: 15, ..SimConfig::default() };
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = Simulation::generate(config.clone()).write(dir.path()).unwrap();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    for file in files.iter().chain([&dir.path().join("fabrikam/truth.json")]) {
        let relative = file.strip_prefix(dir.path()).unwrap();
        let committed = std::fs::read(samples.join(relative)).unwrap();
        assert!(
            committed == std::fs::read(file).unwrap(),
            "{} differs: regenerate the sample",
            relative.display()
        );
    }
    check(config);
}

#[test]
fn without_faults_nothing_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulation::generate(SimConfig { sites: 5, days: 8, faults: false, ..SimConfig::default() });
    sim.write(dir.path()).unwrap();
    for day in 1..8 {
        let report =
            analyze_at(dir.path(), Some(sim.config.start + Duration::days(day) + Duration::hours(20)));
        assert!(report.alerts.is_empty(), "{:?}", report.alerts);
    }
}
