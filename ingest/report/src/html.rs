//! The report as one self-contained HTML page: inline CSS, inline SVG, no script, no request.
//! Written with `maud`, which escapes every value spliced into the page: a site name or a
//! failure message from a hostile log stays text.

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::figures::{Figures, SiteFigures, Trend};
use crate::svg::{patch_tuesdays, Chart, Layer, Unit};
use statmsg_track::Outcome;

const CSS: &str = include_str!("report.css");

/// Where the figures came from, for the header.
#[derive(Debug)]
pub struct Source<'a> {
    pub description: &'a str,
    pub generated: DateTime<Utc>,
    pub window_minutes: Option<f64>,
}

pub fn page(figures: &Figures, source: &Source<'_>) -> String {
    let title = format!(
        "Software update sync: capacity report, {} to {}",
        figures.from.format("%Y-%m-%d"),
        figures.to.format("%Y-%m-%d")
    );
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { (title) }
                    p.meta { "From " (source.description) "; written by statmsg " (env!("CARGO_PKG_VERSION")) " on " (source.generated.format("%Y-%m-%d %H:%M UTC")) "." }
                }
                (fleet(figures))
                (blind_spots())
                @for (hierarchy, sites) in by_hierarchy(figures) {
                    section.hierarchy {
                        h2 id={ "h-" (anchor(hierarchy)) } { "Hierarchy " (hierarchy) }
                        (hierarchy_tiles(&sites))
                        @for site in sites { (site_section(site, figures, source.window_minutes)) }
                    }
                }
            }
        }
    };
    markup.into_string()
}

/// A hierarchy's own summary: its sites, runs, failures, and its slowest and growing sites.
fn hierarchy_tiles(sites: &[&SiteFigures]) -> Markup {
    let runs: usize = sites.iter().map(|s| s.runs).sum();
    let failed: usize = sites.iter().map(|s| s.failed).sum();
    let succeeded: usize = sites.iter().map(|s| s.succeeded).sum();
    let slowest =
        sites.iter().filter_map(|s| Some((s, s.median_duration_s?))).max_by(|a, b| a.1.total_cmp(&b.1));
    let growing: Vec<&str> = sites.iter().filter(|s| s.grows()).map(|s| s.site.as_str()).collect();
    let rate = (succeeded + failed > 0).then(|| succeeded as f64 / (succeeded + failed) as f64);
    html! {
        div.tiles {
            (tile("Sites", &sites.len().to_string(), None))
            (tile("Sync runs", &runs.to_string(), Some(&format!("{failed} failed"))))
            (tile("Success rate", &optional(rate, percent), None))
            (tile("Slowest median", &slowest.map_or("–".into(), |(_, d)| duration(d)), slowest.map(|(s, _)| s.site.as_str())))
            (tile("Growing", &growing.len().to_string(), (!growing.is_empty()).then(|| growing.join(", ")).as_deref()))
        }
    }
}

fn by_hierarchy(figures: &Figures) -> Vec<(&str, Vec<&SiteFigures>)> {
    let mut out: Vec<(&str, Vec<&SiteFigures>)> = Vec::new();
    for site in &figures.sites {
        match out.last_mut() {
            Some((h, sites)) if *h == site.hierarchy => sites.push(site),
            _ => out.push((&site.hierarchy, vec![site])),
        }
    }
    out
}

/// An `id` from log text: letters, digits and `-` only.
fn anchor(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

fn site_anchor(site: &SiteFigures) -> String {
    format!("s-{}-{}", anchor(&site.hierarchy), anchor(&site.site))
}

pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s.abs() {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{:.0} min", seconds / 60.0),
        _ => format!("{:.1} h", seconds / 3600.0),
    }
}

fn optional(value: Option<f64>, show: fn(f64) -> String) -> String {
    value.map_or_else(|| "–".into(), show)
}

fn runs(n: usize) -> String {
    if n == 1 {
        "1 run".into()
    } else {
        format!("{n} runs")
    }
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// "about +4 min per month (from +2 to +6)".
pub fn trend_text(trend: &Trend) -> String {
    let (slope, low, high) = trend.per_month_s();
    let minutes = |s: f64| format!("{:+.1}", s / 60.0);
    format!(
        "about {} min per month, {:+.1} % (from {} to {} min, 95 % interval; {} weeks, Mann–Kendall p {}{})",
        minutes(slope),
        trend.percent_per_month,
        minutes(low),
        minutes(high),
        trend.weeks,
        if trend.p_value < 0.001 { "< 0.001".to_owned() } else { format!("= {:.3}", trend.p_value) },
        if trend.significant { "" } else { ", not significant" }
    )
}

fn window_text(trend: &Trend, window_minutes: Option<f64>) -> Option<String> {
    let window = window_minutes?;
    Some(match trend.exceeds_window_in_weeks {
        Some((soonest, _)) if soonest <= 0.0 => format!("the median run already exceeds the {window:.0}-minute window"),
        Some((soonest, Some(latest))) => format!(
            "at this rate the median run exceeds the {window:.0}-minute window in {soonest:.0} to {latest:.0} weeks"
        ),
        Some((soonest, None)) => format!(
            "at this rate the median run exceeds the {window:.0}-minute window in {soonest:.0} weeks at the soonest"
        ),
        None => format!("the median run is not growing towards the {window:.0}-minute window"),
    })
}

fn tile(label: &str, value: &str, note: Option<&str>) -> Markup {
    html! {
        div.tile { span.label { (label) } span.value { (value) } @if let Some(n) = note { span.note { (n) } } }
    }
}

fn fleet(figures: &Figures) -> Markup {
    let f = &figures.fleet;
    let streak = f.longest_failure_streak.as_ref();
    let lagging = lagging_children(figures);
    html! {
        section.fleet {
            h2 { "Fleet" }
            div.tiles {
                (tile("Sites", &f.sites.to_string(), None))
                (tile("Sync runs", &f.runs.to_string(), Some(&format!("{} failed", f.failed))))
                (tile("Success rate", &optional(f.success_rate, percent), Some("of runs that ended")))
                (tile("Median duration", &optional(f.median_duration_s, duration), Some("successful runs")))
                (tile("95th percentile", &optional(f.p95_duration_s, duration), Some("successful runs")))
                (tile("Sites whose duration grows", &f.growing.len().to_string(), (!f.growing.is_empty()).then(|| f.growing.join(", ")).as_deref()))
                (tile("Longest failure streak", &runs(streak.map_or(0, |s| s.runs)), streak.map(|s| format!("{}/{} from {}", s.hierarchy, s.site, s.from.format("%Y-%m-%d"))).as_deref()))
                (tile("Children lagging most", &lagging.first().map_or("–".into(), |(s, d)| format!("{} ({})", s, duration(*d))), Some("median time to reach the parent's version")))
            }
            table.sites {
                thead { tr { th { "Site" } th { "Parent" } th.n { "Runs" } th.n { "Failed" } th.n { "Median" } th.n { "95th pct." } th.n { "Longest streak" } th { "Trend of the weekly median" } } }
                tbody {
                    @for s in &figures.sites {
                        tr {
                            td { a href={ "#" (site_anchor(s)) } { (s.hierarchy) "/" (s.site) } }
                            td { (s.parent.as_deref().unwrap_or("–")) }
                            td.n { (s.runs) } td.n { (s.failed) }
                            td.n { (optional(s.median_duration_s, duration)) } td.n { (optional(s.p95_duration_s, duration)) }
                            td.n { (s.longest_failure_streak) }
                            td { @match &s.trend { Some(t) => (trend_text(t)), None => span.muted { (s.trend_reason.as_deref().unwrap_or("")) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The five longest streaks of two failures or more, longest first.
fn longest_streaks(site: &SiteFigures) -> Vec<&crate::figures::Streak> {
    let mut streaks: Vec<_> = site.failure_streaks.iter().filter(|s| s.runs > 1).collect();
    streaks.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.from.cmp(&b.from)));
    streaks.truncate(5);
    streaks
}

/// Children by the median time between their parent's success and their own next success.
fn lagging_children(figures: &Figures) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = figures
        .sites
        .iter()
        .filter_map(|s| s.propagation_median_s.map(|d| (format!("{}/{}", s.hierarchy, s.site), d)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn blind_spots() -> Markup {
    html! {
        section.blind {
            h2 { "What the logs cannot see" }
            p { "This report reads ConfigMgr's logs only. It does not know the size of the SUSDB database, the memory of the WsusPool application pool, how many superseded updates are not declined, or which products and languages are selected: each drives sync duration, and none is guessed here. Check them on the WSUS servers of the sites whose duration grows." }
        }
    }
}

fn site_section(site: &SiteFigures, figures: &Figures, window_minutes: Option<f64>) -> Markup {
    let (from, to) = (figures.from, figures.to.max(figures.from + Duration::days(1)));
    let succeeded: Vec<(DateTime<Utc>, f64)> = site
        .points
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .filter_map(|r| r.duration_s.map(|d| (r.start, d)))
        .collect();
    let failures: Vec<DateTime<Utc>> =
        site.points.iter().filter(|r| r.outcome == Outcome::Failed).map(|r| r.start).collect();
    let week_mid =
        |w: &crate::figures::Week| w.week.and_hms_opt(12, 0, 0).map(|t| t.and_utc() + Duration::days(3));
    let weekly_line = |pick: fn(&crate::figures::Week) -> Option<f64>| -> Vec<(DateTime<Utc>, f64)> {
        site.weekly.iter().filter_map(|w| Some((week_mid(w)?, pick(w)?))).collect()
    };
    let durations = Chart {
        title: "Duration of each run",
        from,
        to,
        unit: Unit::Minutes,
        layers: vec![
            Layer::Rules { class: "patch", at: patch_tuesdays(from, to) },
            Layer::Ticks { class: "failure", at: failures },
            Layer::Dots { class: "run", points: succeeded },
            Layer::Line { class: "median", points: weekly_line(|w| w.median_duration_s), gap_days: 15 },
            Layer::Line { class: "p95", points: weekly_line(|w| w.p95_duration_s), gap_days: 15 },
        ],
    };
    let phase = |pick: fn(&crate::figures::RunFacts) -> Option<f64>| -> Vec<(DateTime<Utc>, f64)> {
        site.points
            .iter()
            .filter(|r| r.outcome == Outcome::Succeeded)
            .filter_map(|r| Some((r.start, pick(r)?)))
            .collect()
    };
    let phases = Chart {
        title: "WSUS phase and site database phase of each run",
        from,
        to,
        unit: Unit::Minutes,
        layers: vec![
            Layer::Dots { class: "wsus", points: phase(|r| r.wsus_s) },
            Layer::Dots { class: "sitedb", points: phase(|r| r.site_db_s) },
        ],
    };
    let updates = Chart {
        title: "Updates synchronized per run",
        from,
        to,
        unit: Unit::Count,
        layers: vec![Layer::Dots {
            class: "run",
            points: site
                .points
                .iter()
                .filter(|r| r.outcome == Outcome::Succeeded)
                .map(|r| (r.start, r.updates_synchronized as f64))
                .collect(),
        }],
    };
    let weeks = Chart {
        title: "Runs and failures per week",
        from,
        to,
        unit: Unit::Count,
        layers: vec![
            Layer::Bars {
                class: "runs",
                points: site
                    .weekly
                    .iter()
                    .filter_map(|w| Some((w.week.and_hms_opt(0, 0, 0)?.and_utc(), w.runs as f64)))
                    .collect(),
                days: 7.0,
            },
            Layer::Bars {
                class: "failed",
                points: site
                    .weekly
                    .iter()
                    .filter_map(|w| Some((w.week.and_hms_opt(0, 0, 0)?.and_utc(), w.failed as f64)))
                    .collect(),
                days: 7.0,
            },
        ],
    };
    html! {
        article.site id=(site_anchor(site)) {
            h3 { (site.hierarchy) "/" (site.site) @if let Some(p) = &site.parent { span.muted { " child of " (p) } } }
            div.tiles {
                (tile("Runs", &site.runs.to_string(), Some(&format!("{} succeeded, {} failed", site.succeeded, site.failed))))
                (tile("Median duration", &optional(site.median_duration_s, duration), None))
                (tile("95th percentile", &optional(site.p95_duration_s, duration), None))
                (tile("Longest failure streak", &runs(site.longest_failure_streak), None))
                @if let Some(d) = site.days_since_cleanup { (tile("Since the last WSUS clean-up", &format!("{d:.0} days"), None)) }
            }
            p.trend {
                "Trend: "
                @match &site.trend {
                    Some(t) => { strong { (trend_text(t)) } @if let Some(w) = window_text(t, window_minutes) { "; " (w) } "." }
                    None => span.muted { (site.trend_reason.as_deref().unwrap_or("")) "." }
                }
            }
            figure { (durations.render()) figcaption { "Each dot is a successful run; the dark line is the weekly median, the light one the weekly 95th percentile; red ticks above are failed runs, dotted grey lines Patch Tuesdays. A median that climbs week after week is the catalog outgrowing its clean-up." } }
            figure { (phases.render()) figcaption { "Blue: time in the WSUS server phase; orange: time writing the site database. When WSUS dominates and grows, look at SUSDB (re-index, decline superseded updates); when the site database grows, at SQL on the site server." } }
            figure { (updates.render()) figcaption { "Updates each run synchronized. Steps up follow new products, classifications or languages; spikes follow Patch Tuesdays." } }
            figure { (weeks.render()) figcaption { "Runs started per week (grey) and failed (red). A failing streak also stops WSUS clean-up, which ConfigMgr runs only after a successful sync." } }
            @if !site.failure_causes.is_empty() {
                table {
                    caption { "Failure causes" }
                    thead { tr { th { "Message" } th { "HRESULT" } th.n { "Count" } th { "First" } th { "Last" } } }
                    tbody { @for c in &site.failure_causes {
                        tr { td { (c.message) } td { (c.hresult.as_deref().unwrap_or("–")) } td.n { (c.count) } td { (c.first.format("%Y-%m-%d")) } td { (c.last.format("%Y-%m-%d")) } }
                    } }
                }
            }
            @let streaks = longest_streaks(site);
            @if !streaks.is_empty() {
                p { "Longest runs of consecutive failures"
                    @if streaks.len() < site.failure_streaks.iter().filter(|s| s.runs > 1).count() { " (of " (site.failure_streaks.iter().filter(|s| s.runs > 1).count()) ")" }
                    ": "
                    @for (i, s) in streaks.iter().enumerate() {
                        @if i > 0 { "; " } (s.runs) " runs from " (s.from.format("%Y-%m-%d %H:%M")) " to " (s.to.format("%Y-%m-%d %H:%M"))
                    }
                    ". No WSUS clean-up runs during a streak."
                }
            }
            @if !site.children.is_empty() {
                table {
                    caption { "Propagation to its children" }
                    thead { tr { th { "Child" } th.n { "Versions" } th.n { "Median delay" } th.n { "Longest delay" } } }
                    tbody { @for c in &site.children {
                        tr { td { (c.child) } td.n { (c.versions) } td.n { (optional(c.median_delay_s, duration)) } td.n { (optional(c.max_delay_s, duration)) } }
                    } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{figures, Options, RunFacts};

    fn run(site: &str, day: i64, outcome: Outcome, failure: Option<&str>) -> RunFacts {
        let start = DateTime::<Utc>::from_timestamp(1_709_280_000 + day * 86_400, 0).unwrap();
        RunFacts {
            hierarchy: "contoso".into(),
            site: site.into(),
            parent: None,
            start,
            end: Some(start + Duration::minutes(10)),
            outcome,
            duration_s: (outcome == Outcome::Succeeded).then_some(600.0),
            content_version: None,
            wsus_s: Some(400.0),
            site_db_s: Some(100.0),
            updates_synchronized: 40,
            failure: failure.map(str::to_owned),
            hresult: failure.map(|_| "0x80131500".to_owned()),
        }
    }

    #[test]
    fn text_from_a_hostile_log_stays_text() {
        let evil_site = "<img src=x onerror=alert(1)>";
        let evil_failure = "</td></table><script>alert('x')</script>&";
        let runs = vec![
            run(evil_site, 0, Outcome::Succeeded, None),
            run(evil_site, 1, Outcome::Failed, Some(evil_failure)),
        ];
        let figures = figures(&runs, &[], &Options::default());
        let generated = DateTime::<Utc>::from_timestamp(1_733_000_000, 0).unwrap();
        let source = Source { description: "<b>logs</b>", generated, window_minutes: None };
        let page = page(&figures, &source);
        for injected in ["<img", "<script", "</td></table>", "<b>logs"] {
            assert!(!page.contains(injected), "{injected} reached the page unescaped");
        }
        assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt;&amp;"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // An anchor from log text holds only letters, digits and dashes.
        assert!(page.contains("id=\"s-contoso--img-src-x-onerror-alert-1--\""));
        // Self-contained: no script, no request.
        assert!(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"));
    }

    #[test]
    fn durations_read_as_durations() {
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(412.0), "7 min");
        assert_eq!(duration(5400.0), "1.5 h");
    }
}
