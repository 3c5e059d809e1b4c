use chrono::{DateTime, Duration, NaiveDate, Utc};
use statmsg_track::Outcome;

use super::*;

/// 2024-03-04 00:00 UTC, a Monday.
fn monday() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_709_510_400, 0).unwrap()
}

fn run(site: &str, at: DateTime<Utc>, outcome: Outcome, duration_s: f64) -> RunFacts {
    RunFacts {
        hierarchy: "contoso".into(),
        site: site.into(),
        parent: None,
        start: at,
        end: Some(at + Duration::seconds(duration_s as i64)),
        outcome,
        duration_s: (outcome == Outcome::Succeeded).then_some(duration_s),
        content_version: None,
        wsus_s: None,
        site_db_s: None,
        updates_synchronized: 0,
        failure: (outcome == Outcome::Failed).then(|| "The operation has timed out".to_owned()),
        hresult: (outcome == Outcome::Failed).then(|| "0x8013150A".to_owned()),
    }
}

#[test]
fn weeks_start_on_monday_and_count_runs_failures_and_medians() {
    assert_eq!(week_of(monday() + Duration::days(6)), NaiveDate::from_ymd_opt(2024, 3, 4).unwrap());
    assert_eq!(week_of(monday() - Duration::seconds(1)), NaiveDate::from_ymd_opt(2024, 2, 26).unwrap());
    let runs = vec![
        run("PS1", monday(), Outcome::Succeeded, 600.0),
        run("PS1", monday() + Duration::days(1), Outcome::Failed, 0.0),
        run("PS1", monday() + Duration::days(2), Outcome::Succeeded, 800.0),
        run("PS1", monday() + Duration::days(3), Outcome::Succeeded, 1000.0),
        run("PS1", monday() + Duration::days(8), Outcome::Abandoned, 0.0),
    ];
    let f = figures(&runs, &[], &Options::default());
    let site = &f.sites[0];
    assert_eq!((site.runs, site.succeeded, site.failed), (5, 3, 1));
    assert_eq!(site.median_duration_s, Some(800.0));
    assert_eq!(site.weekly.len(), 2);
    assert_eq!(
        (site.weekly[0].runs, site.weekly[0].failed, site.weekly[0].median_duration_s),
        (4, 1, Some(800.0))
    );
    assert_eq!((site.weekly[1].runs, site.weekly[1].median_duration_s), (1, None));
    assert_eq!(f.fleet.success_rate, Some(0.75));
    assert_eq!(site.trend, None);
    assert_eq!(site.trend_reason.as_deref(), Some("1 weeks with a successful run: a trend needs at least 8"));
}

#[test]
fn streaks_are_consecutive_failures_and_causes_are_counted() {
    let outcomes = [
        Outcome::Failed,
        Outcome::Failed,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Failed,
        Outcome::Failed,
    ];
    let runs: Vec<RunFacts> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| run("PS1", monday() + Duration::hours(i as i64), *o, 300.0))
        .collect();
    let f = figures(&runs, &[], &Options::default());
    let site = &f.sites[0];
    let lengths: Vec<usize> = site.failure_streaks.iter().map(|s| s.runs).collect();
    assert_eq!(lengths, [2, 3]);
    assert_eq!(site.longest_failure_streak, 3);
    assert_eq!(site.failure_streaks[1].from, monday() + Duration::hours(3));
    assert_eq!(site.failure_causes.len(), 1);
    assert_eq!(
        (site.failure_causes[0].count, site.failure_causes[0].hresult.as_deref()),
        (5, Some("0x8013150A"))
    );
    assert_eq!(f.fleet.longest_failure_streak.as_ref().map(|s| s.runs), Some(3));
}

#[test]
fn the_period_filters_runs_by_start() {
    let runs: Vec<RunFacts> =
        (0..10).map(|d| run("PS1", monday() + Duration::days(d), Outcome::Succeeded, 300.0)).collect();
    let options = Options {
        from: Some(monday() + Duration::days(2)),
        to: Some(monday() + Duration::days(5)),
        window_minutes: None,
    };
    let f = figures(&runs, &[], &options);
    assert_eq!(f.sites[0].runs, 3);
    assert_eq!((f.from, f.to), (options.from.unwrap(), options.to.unwrap()));
}

/// Weekly medians on a line: 600 s growing `slope` s a week, plus a wobble.
fn weekly_line(weeks: usize, slope: f64) -> Vec<Week> {
    (0..weeks)
        .map(|i| Week {
            week: week_of(monday()) + Duration::weeks(i as i64),
            runs: 7,
            failed: 0,
            median_duration_s: Some(600.0 + slope * i as f64 + [0.0, 9.0, -7.0, 4.0][i % 4]),
            p95_duration_s: None,
        })
        .collect()
}

#[test]
fn a_growing_median_has_a_trend_and_a_window_forecast() {
    let trend = trend(&weekly_line(20, 30.0), Some(60.0)).unwrap();
    assert!(trend.low <= 30.0 && 30.0 <= trend.high, "{trend:?}");
    assert!(trend.low > 0.0 && trend.significant);
    // 600 + 30 x 19 = 1170 s at the last week; the 3600 s window is 81 weeks away at 30 s.
    let (soonest, latest) = trend.exceeds_window_in_weeks.unwrap();
    let latest = latest.unwrap();
    assert!(soonest <= 81.0 && 81.0 <= latest, "{soonest} {latest}");
    // Relative to the middle (about 885 s): 30 s/week is 14.7 % a month.
    assert!((trend.percent_per_month - 30.0 * 30.436_875 / 7.0 / trend_middle(&trend) * 100.0).abs() < 1e-9);
}

fn trend_middle(t: &Trend) -> f64 {
    (t.first_s + t.last_s) / 2.0
}

#[test]
fn no_trend_is_shown_without_enough_weeks_or_when_the_interval_holds_zero() {
    let few = trend(&weekly_line(7, 30.0), None).unwrap_err();
    assert!(few.contains("at least 8"), "{few}");
    let flat = trend(&weekly_line(30, 0.0), None).unwrap_err();
    assert!(flat.contains("includes zero"), "{flat}");
    // Weeks without a successful run do not count.
    let mut gaps = weekly_line(10, 30.0);
    for i in [2, 4, 6] {
        gaps[i].median_duration_s = None;
    }
    assert_eq!(trend(&gaps, None).unwrap_err(), "7 weeks with a successful run: a trend needs at least 8");
    gaps[4].median_duration_s = Some(720.0);
    assert!(trend(&gaps, None).is_ok());
}

#[test]
fn days_since_the_last_cleanup_count_to_the_end_of_the_period() {
    let runs: Vec<RunFacts> =
        (0..10).map(|d| run("PS1", monday() + Duration::days(d), Outcome::Succeeded, 300.0)).collect();
    let cleanup = |site: &str, days: i64| Cleanup {
        hierarchy: "contoso".into(),
        site: site.into(),
        at: monday() + Duration::days(days),
    };
    let cleanups = [cleanup("PS1", 2), cleanup("PS1", 5), cleanup("PS1", 30), cleanup("PS2", 8)];
    let f = figures(&runs, &cleanups, &Options::default());
    // The period ends at the last run (day 9); the clean-up of day 30 is after it.
    assert_eq!(f.sites[0].days_since_cleanup, Some(4.0));
    let none = figures(&runs, &[cleanup("PS2", 1)], &Options::default());
    assert_eq!(none.sites[0].days_since_cleanup, None);
}
