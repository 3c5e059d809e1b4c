//! Small inline SVG charts over time, written with `maud` (attributes escaped like the rest of
//! the page; the data only ever becomes numbers). Dots are one path of zero-length segments with
//! round caps, so a year of daily runs costs a few kilobytes per chart: a year of 50 sites
//! stays under 2 MB.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use maud::{html, Markup};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 24.0;

/// What a chart draws: each kind has its CSS class (colours in the page's stylesheet).
#[derive(Debug)]
pub enum Layer {
    /// One dot per value.
    Dots { class: &'static str, points: Vec<(DateTime<Utc>, f64)> },
    /// A polyline through the values (gaps where consecutive points are more than `gap_days`
    /// apart).
    Line { class: &'static str, points: Vec<(DateTime<Utc>, f64)>, gap_days: i64 },
    /// Bars from zero, `days` wide.
    Bars { class: &'static str, points: Vec<(DateTime<Utc>, f64)>, days: f64 },
    /// Marks on the time axis across the whole height (Patch Tuesdays).
    Rules { class: &'static str, at: Vec<DateTime<Utc>> },
    /// Short marks above the plot (failed runs).
    Ticks { class: &'static str, at: Vec<DateTime<Utc>> },
}

#[derive(Debug)]
pub struct Chart {
    pub title: &'static str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The value axis: its unit's name and how a value reads.
    pub unit: Unit,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Minutes,
    Count,
}

impl Unit {
    fn scale(self) -> f64 {
        match self {
            Unit::Minutes => 60.0,
            Unit::Count => 1.0,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Unit::Minutes => "min",
            Unit::Count => "",
        }
    }
}

struct Frame {
    x0: f64,
    x1: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.x1 - self.x0).max(1.0);
        LEFT + (t.timestamp() as f64 - self.x0) / span * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - v / self.y1.max(f64::MIN_POSITIVE) * (HEIGHT - TOP - BOTTOM)
    }
}

/// A "nice" step (1, 2 or 5 times a power of ten) for about `ticks` ticks up to `max`.
pub fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

impl Chart {
    pub fn render(&self) -> Markup {
        let scale = self.unit.scale();
        let max = self
            .layers
            .iter()
            .flat_map(|l| match l {
                Layer::Dots { points, .. } | Layer::Line { points, .. } | Layer::Bars { points, .. } => {
                    points.iter().map(|p| p.1 / scale).max_by(f64::total_cmp)
                }
                Layer::Rules { .. } | Layer::Ticks { .. } => None,
            })
            .max_by(f64::total_cmp)
            .unwrap_or(0.0);
        let step = nice_step(max, 4.0);
        let y1 = ((max / step).ceil() * step).max(step);
        let frame = Frame { x0: self.from.timestamp() as f64, x1: self.to.timestamp() as f64, y1 };
        let y_ticks: Vec<f64> = (0..=((y1 / step).round() as usize)).map(|i| i as f64 * step).collect();
        html! {
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(self.title) {
                title { (self.title) }
                @for v in &y_ticks {
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(r(frame.y(*v))) y2=(r(frame.y(*v))) {}
                    text.tick x=(LEFT - 4.0) y=(r(frame.y(*v) + 3.5)) text-anchor="end" { (tick_label(*v)) (self.unit.label()) }
                }
                @for (x, label) in month_ticks(self.from, self.to) {
                    text.tick x=(r(frame.x(x))) y=(HEIGHT - 8.0) text-anchor="middle" { (label) }
                }
                @for layer in &self.layers {
                    (draw(layer, &frame, scale))
                }
                line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(r(frame.y(0.0))) y2=(r(frame.y(0.0))) {}
            }
        }
    }
}

fn draw(layer: &Layer, frame: &Frame, scale: f64) -> Markup {
    let mut d = String::new();
    match layer {
        Layer::Dots { class, points } => {
            for (t, v) in points {
                let _ = write!(d, "M{} {}h0", r(frame.x(*t)), r(frame.y(v / scale)));
            }
            html! { path class={ "data " (class) } d=(d) {} }
        }
        Layer::Line { class, points, gap_days } => {
            let mut previous: Option<DateTime<Utc>> = None;
            for (t, v) in points {
                let jump = previous.map_or(true, |p| (*t - p).num_days() > *gap_days);
                let _ =
                    write!(d, "{}{} {}", if jump { "M" } else { "L" }, r(frame.x(*t)), r(frame.y(v / scale)));
                previous = Some(*t);
            }
            html! { path class={ "data " (class) } d=(d) {} }
        }
        Layer::Bars { class, points, days } => {
            let width = (frame
                .x(DateTime::from_timestamp(frame.x0 as i64 + (*days * 86400.0) as i64, 0)
                    .unwrap_or_default())
                - LEFT)
                .max(1.0)
                * 0.8;
            for (t, v) in points {
                let (x, y) = (frame.x(*t), frame.y(v / scale));
                let _ = write!(d, "M{} {}V{}h{}V{}Z", r(x), r(frame.y(0.0)), r(y), r(width), r(frame.y(0.0)));
            }
            html! { path class={ "data " (class) } d=(d) {} }
        }
        Layer::Rules { class, at } => {
            for t in at {
                let _ = write!(d, "M{} {}V{}", r(frame.x(*t)), TOP, r(frame.y(0.0)));
            }
            html! { path class=(class) d=(d) {} }
        }
        Layer::Ticks { class, at } => {
            // Short marks above the plot: many failures stay readable.
            for t in at {
                let _ = write!(d, "M{} {}v{}", r(frame.x(*t)), TOP - 8.0, 7);
            }
            html! { path class=(class) d=(d) {} }
        }
    }
}

/// One decimal: enough on a 720-unit canvas.
fn r(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The first of each month inside the period (every third month over a long one), labelled.
fn month_ticks(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let months = (to - from).num_days() / 30;
    let every = if months > 8 { 3 } else { 1 };
    let mut out = Vec::new();
    let (mut year, mut month) = (from.year(), from.month());
    loop {
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let Some(t) = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single() else { break };
        if t > to {
            break;
        }
        if (month - 1) % every == 0 {
            out.push((t, t.format("%b %Y").to_string()));
        }
    }
    out
}

/// The second Tuesday of every month between `from` and `to`: Microsoft's update release day.
pub fn patch_tuesdays(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let (mut year, mut month) = (from.year(), from.month());
    while let Some(first) = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single() {
        if first > to {
            break;
        }
        let to_tuesday = (7 + 1 - i64::from(first.weekday().num_days_from_monday())) % 7;
        let tuesday = first + chrono::Duration::days(to_tuesday + 7);
        if tuesday >= from && tuesday <= to {
            out.push(tuesday);
        }
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tuesday_is_the_second_tuesday() {
        let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2024, 12, 31, 0, 0, 0).unwrap();
        let days: Vec<String> =
            patch_tuesdays(from, to).iter().map(|t| t.format("%m-%d").to_string()).collect();
        // Microsoft's 2024 release days.
        assert_eq!(
            days,
            [
                "01-09", "02-13", "03-12", "04-09", "05-14", "06-11", "07-09", "08-13", "09-10", "10-08",
                "11-12", "12-10"
            ]
        );
    }

    #[test]
    fn steps_are_one_two_or_five() {
        assert_eq!(nice_step(37.0, 4.0), 10.0);
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(1800.0, 4.0), 500.0);
    }
}
