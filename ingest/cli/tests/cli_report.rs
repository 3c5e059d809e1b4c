//! `statmsg report` against the simulator's truth: a year of a hierarchy in which two sites'
//! catalogs grow (`--growth-percent-per-month`), the others flat with noise, Patch-Tuesday
//! spikes and the simulator's faults. The report's figures (`--json`) must match the truth run
//! for run, find growth in exactly the growing sites with the true rate inside the interval,
//! and none elsewhere. The truth's figures are computed here, from `truth.json`, by code that
//! shares nothing with the report's.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::Value;

const GROWING: [(&str, f64); 2] = [("P01", 4.0), ("S01", 8.0)];

fn statmsg(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg")).args(args).output().unwrap();
    assert!(out.status.success(), "statmsg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The sorted middle, or the mean of the two middles.
fn middle(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn monday_of(t: &str) -> NaiveDate {
    let day = t.parse::<DateTime<Utc>>().unwrap().date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

#[test]
fn the_report_matches_the_simulators_truth_and_finds_exactly_the_growth() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let mut args = vec!["simulate", "--sites", "5", "--days", "365", "--out", sim.to_str().unwrap()];
    let growth: Vec<String> = GROWING.iter().map(|(s, p)| format!("{s}={p}")).collect();
    for g in &growth {
        args.extend(["--growth-percent-per-month", g]);
    }
    statmsg(&args);
    let truth: Value =
        serde_json::from_slice(&std::fs::read(sim.join("contoso/truth.json")).unwrap()).unwrap();
    let recorded: Vec<(String, f64)> = truth["growth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["site"].as_str().unwrap().to_owned(), g["percent_per_month"].as_f64().unwrap()))
        .collect();
    assert_eq!(recorded, GROWING.map(|(s, p)| (s.to_owned(), p)), "the truth records the growth");

    let json = dir.path().join("report.json");
    statmsg(&["report", "--json", "-o", json.to_str().unwrap(), sim.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let sites = report["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 5);

    for site in sites {
        let code = site["site"].as_str().unwrap();
        let runs: Vec<&Value> =
            truth["runs"].as_array().unwrap().iter().filter(|r| r["site"] == code).collect();
        let failed = |r: &&Value| r["outcome"] == "failed";
        let durations: Vec<f64> = runs
            .iter()
            .filter(|r| r["outcome"] == "succeeded")
            .filter_map(|r| r["duration_s"].as_f64())
            .collect();
        assert_eq!(site["runs"].as_u64().unwrap() as usize, runs.len(), "{code}: runs");
        assert_eq!(
            site["failed"].as_u64().unwrap() as usize,
            runs.iter().filter(|r| failed(r)).count(),
            "{code}: failed"
        );
        assert_eq!(site["median_duration_s"].as_f64(), middle(durations), "{code}: median");
        // Failure streaks: consecutive failed runs, in start order.
        let (mut longest, mut current) = (0, 0);
        for r in &runs {
            current = if failed(r) { current + 1 } else { 0 };
            longest = longest.max(current);
        }
        assert_eq!(site["longest_failure_streak"].as_u64().unwrap(), longest, "{code}: streak");
        // Week by week.
        let mut weeks: BTreeMap<NaiveDate, (u64, u64, Vec<f64>)> = BTreeMap::new();
        for r in &runs {
            let week = weeks.entry(monday_of(r["start"].as_str().unwrap())).or_default();
            week.0 += 1;
            week.1 += u64::from(failed(r));
            if r["outcome"] == "succeeded" {
                week.2.extend(r["duration_s"].as_f64());
            }
        }
        let reported: BTreeMap<NaiveDate, (u64, u64, Option<f64>)> = site["weekly"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let week = w["week"].as_str().unwrap().parse().unwrap();
                (
                    week,
                    (
                        w["runs"].as_u64().unwrap(),
                        w["failed"].as_u64().unwrap(),
                        w["median_duration_s"].as_f64(),
                    ),
                )
            })
            .collect();
        let expected: BTreeMap<NaiveDate, (u64, u64, Option<f64>)> =
            weeks.into_iter().map(|(w, (n, f, d))| (w, (n, f, middle(d)))).collect();
        assert_eq!(reported, expected, "{code}: weekly");

        // Growth: found exactly where the truth put it, the true rate inside the interval.
        match GROWING.iter().find(|(s, _)| *s == code) {
            Some((_, percent)) => {
                let trend = &site["trend"];
                assert_eq!(trend["significant"], true, "{code}: {site}");
                let (low, high) = (
                    trend["percent_per_month_low"].as_f64().unwrap(),
                    trend["percent_per_month_high"].as_f64().unwrap(),
                );
                assert!(low <= *percent && *percent <= high, "{code}: {percent} % not in {low} to {high}");
            }
            None => {
                assert!(site["trend"].is_null(), "{code} is flat: {}", site["trend"]);
                assert!(site["trend_reason"].as_str().unwrap().contains("includes zero"), "{code}: {site}");
            }
        }
    }
    // WSUS clean-up: logged by the top site 0.9 s after each success.
    let to: DateTime<Utc> = report["to"].as_str().unwrap().parse().unwrap();
    let last_cleanup = truth["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["site"] == "CAS" && r["outcome"] == "succeeded")
        .map(|r| r["end"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() + Duration::milliseconds(900))
        .filter(|t| *t <= to)
        .max()
        .unwrap();
    let days = (to - last_cleanup).num_milliseconds() as f64 / 86_400_000.0;
    let reported = sites[0]["days_since_cleanup"].as_f64().unwrap();
    assert!((reported - days).abs() < 1e-3, "days since clean-up {reported}, truth {days}");
    assert!(sites[1..].iter().all(|s| s["days_since_cleanup"].is_null()), "only the top site cleans up");
    let growing: Vec<&str> =
        report["fleet"]["growing"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
    assert_eq!(growing, ["contoso/P01", "contoso/S01"]);

    // The same figures as one HTML page: self-contained and small.
    let html = dir.path().join("report.html");
    statmsg(&["report", "-o", html.to_str().unwrap(), sim.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
    assert_eq!(page.matches("<svg").count(), 5 * 4, "four charts per site");
    assert!(Path::new(&html).metadata().unwrap().len() < 400_000, "a year of 5 sites");
}
