//! Printing a [`Report`]: a table per hierarchy (colour on a terminal), or JSON lines.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Report;
use statmsg_track::{human, SiteView};

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";

/// JSON lines: `site` objects (with `propagation` for child sites), then `sync_run`s, then
/// `alert`s, each with its `type`.
pub fn write_json(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    for site in &report.sites {
        let mut object = serde_json::to_value(site).map_err(std::io::Error::other)?;
        let key = (site.hierarchy.clone(), site.site.clone());
        if let (Some(map), Some(summary)) = (object.as_object_mut(), report.propagation.get(&key)) {
            map.insert("propagation".into(), serde_json::to_value(summary).map_err(std::io::Error::other)?);
        }
        line(out, "site", &object)?;
    }
    for run in &report.runs {
        line(out, "sync_run", run)?;
    }
    for alert in &report.alerts {
        line(out, "alert", alert)?;
    }
    Ok(())
}

fn line(out: &mut impl Write, kind: &str, value: &impl Serialize) -> std::io::Result<()> {
    let mut object = serde_json::to_value(value).map_err(std::io::Error::other)?;
    if let Some(map) = object.as_object_mut() {
        let mut with_type = serde_json::Map::with_capacity(map.len() + 1);
        with_type.insert("type".into(), kind.into());
        with_type.extend(std::mem::take(map));
        object = with_type.into();
    }
    serde_json::to_writer(&mut *out, &object).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// A table per hierarchy, then the alerts with what to look at.
pub fn write_table(report: &Report, colour: bool, out: &mut impl Write) -> std::io::Result<()> {
    let paint = |code: &str, text: String| if colour { format!("{code}{text}{RESET}") } else { text };
    writeln!(
        out,
        "statmsg analyze: {} files, {:.1} MB, {} records; as of {} ({})",
        report.files,
        report.bytes as f64 / 1e6,
        report.records,
        report.now.format("%Y-%m-%d %H:%M:%S UTC"),
        if report.now_given { "--now; later records ignored" } else { "the newest record; --now to change" }
    )?;
    let mut hierarchies: Vec<&str> = report.sites.iter().map(|s| s.hierarchy.as_str()).collect();
    hierarchies.dedup();
    for hierarchy in hierarchies {
        writeln!(out)?;
        writeln!(out, "{}", paint(BOLD, format!("hierarchy {hierarchy}")))?;
        let header = format!(
            "{:<7} {:<7} {:<10} {:<17} {:>8} {:>9} {:>8} {:>12}  {}",
            "SITE", "PARENT", "STATUS", "LAST SUCCESS", "AGE", "DURATION", "VERSION", "LAG", "ALERTS"
        );
        writeln!(out, "{}", paint(BOLD, header))?;
        let mut sites: Vec<&SiteView> = report.sites.iter().filter(|s| s.hierarchy == hierarchy).collect();
        sites.sort_by_key(|s| (depth(report, s), s.parent.clone(), s.site.clone()));
        for s in sites {
            let status_colour = match s.status.as_str() {
                "succeeded" => GREEN,
                "failed" => RED,
                _ => YELLOW,
            };
            let status = format!("{:<10}", s.status);
            let lag = match (s.version_lag, s.parent.is_some()) {
                (_, false) => "-".to_owned(),
                (0, true) => "0".to_owned(),
                (n, true) => format!("{n} ({})", human(s.lag_s)),
            };
            let alerts: Vec<&str> = s.alerts.iter().map(|a| a.as_str()).collect();
            let alerts = if alerts.is_empty() { "-".to_owned() } else { alerts.join(",") };
            let indent = "  ".repeat(depth(report, s)).chars().take(4).collect::<String>();
            writeln!(
                out,
                "{:<7} {:<7} {} {:<17} {:>8} {:>9} {:>8} {:>12}  {}",
                format!("{indent}{}", s.site),
                s.parent.as_deref().unwrap_or("-"),
                paint(status_colour, status),
                when(s.last_success),
                s.last_success_age_s.map_or("-".into(), human),
                s.last_duration_s.map_or("-".into(), human),
                s.content_version.map_or("-".into(), |v| v.to_string()),
                lag,
                if s.alerts.is_empty() { alerts } else { paint(RED, alerts) },
            )?;
        }
    }
    if !report.propagation.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint(BOLD, "content versions from parent to child".to_owned()))?;
        for ((hierarchy, child), p) in &report.propagation {
            let delays = match (p.median_delay_s, p.max_delay_s) {
                (Some(m), Some(x)) => format!(", delay median {} max {}", human(m), human(x)),
                _ => String::new(),
            };
            let last = match &p.last {
                Some(l) => match l.delay_s {
                    Some(d) => format!("; {} reached after {}", l.version, human(d)),
                    None => format!(
                        "; {} not reached (parent has it since {})",
                        l.version,
                        when(Some(l.parent_reached))
                    ),
                },
                None => String::new(),
            };
            writeln!(
                out,
                "{hierarchy}/{child} <- {}: {} of {} versions{delays}{last}",
                p.parent, p.reached, p.versions
            )?;
        }
    }
    if !report.alerts.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint(BOLD, format!("{} active alert(s)", report.alerts.len())))?;
        for a in &report.alerts {
            writeln!(
                out,
                "{} {}/{} since {}: {}",
                paint(RED, format!("{:<15}", a.kind.as_str())),
                a.hierarchy,
                a.site,
                a.since.format("%Y-%m-%d %H:%M UTC"),
                a.detail
            )?;
        }
    }
    let (ok, failed) = report.runs.iter().fold((0, 0), |(ok, failed), r| match r.outcome {
        statmsg_track::Outcome::Succeeded => (ok + 1, failed),
        statmsg_track::Outcome::Failed => (ok, failed + 1),
        _ => (ok, failed),
    });
    writeln!(out)?;
    writeln!(
        out,
        "{} sync runs: {ok} succeeded, {failed} failed (statmsg analyze --json for every run)",
        report.runs.len()
    )?;
    // Log folders hold no collector heartbeats: whether a collector is alive is the consumer's
    // to say, and an administrator must not read "no silent alert" as "collectors are fine".
    writeln!(
        out,
        "`silent` (a collector that stopped sending heartbeats) does not apply offline: only the consumer sees heartbeats"
    )?;
    Ok(())
}

/// 0 for a top site, 1 for its children, ...
fn depth(report: &Report, site: &SiteView) -> usize {
    let mut depth = 0;
    let mut parent = site.parent.clone();
    while let Some(p) = parent {
        depth += 1;
        if depth > 8 {
            break;
        }
        parent = report
            .sites
            .iter()
            .find(|s| s.hierarchy == site.hierarchy && s.site == p)
            .and_then(|s| s.parent.clone());
    }
    depth
}
