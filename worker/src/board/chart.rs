//! Inline SVG charts of the last hour, drawn on the server: no script, and nothing in them
//! but numbers and times (so no text from the queue needs escaping inside the markup).
//! Colours are presentation attributes, not `style`, which the board's policy refuses.

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};

/// One minute of the chart: jobs finished and attempts failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    pub done: i64,
    pub failed: i64,
}

const DONE_COLOUR: &str = "#2f7d4f";
const FAILED_COLOUR: &str = "#c0392b";

/// The last hour's chart: the SVG of its bars and what its axes say, which the page prints
/// as text around it (text inside a stretched SVG would be stretched too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chart {
    pub svg: String,
    /// The tallest bar above the axis: finished jobs in one minute.
    pub max_done: i64,
    /// The tallest bar below it: failed attempts in one minute.
    pub max_failed: i64,
    /// The first and the last minute, `HH:MM` UTC.
    pub first: String,
    pub last: String,
}

/// Bars per minute, finished jobs above the axis and failed attempts below it (each half on
/// its own scale, so a few failures stay visible beside thousands of jobs), with a tooltip
/// per minute.
pub fn minutes(from: DateTime<Utc>, series: &[Minute]) -> Chart {
    const WIDTH: f64 = 720.0;
    const HALF: f64 = 80.0;
    let axis = HALF;
    let height = 2.0 * HALF;
    let slots = series.len().max(1);
    let slot = WIDTH / slots as f64;
    let bar = (slot - 2.0).max(1.0);
    let max_done = series.iter().map(|m| m.done).max().unwrap_or(0);
    let max_failed = series.iter().map(|m| m.failed).max().unwrap_or(0);
    let total_done: i64 = series.iter().map(|m| m.done).sum();
    let total_failed: i64 = series.iter().map(|m| m.failed).sum();

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" preserveAspectRatio="none" aria-label="Last {slots} minutes: {total_done} jobs done, {total_failed} attempts failed">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="0" y1="{axis}" x2="{WIDTH}" y2="{axis}" stroke="#999" stroke-width="1" vector-effect="non-scaling-stroke"/>"##
    );
    for (i, minute) in series.iter().enumerate() {
        let x = i as f64 * slot;
        let at = from + Duration::minutes(i64::try_from(i).unwrap_or(0));
        let _ = write!(
            svg,
            r#"<g><title>{} UTC: {} done, {} failed</title>"#,
            at.format("%H:%M"),
            minute.done,
            minute.failed
        );
        // A transparent full-height target, so the tooltip shows over quiet minutes too.
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="0" width="{slot:.1}" height="{height}" fill="transparent"/>"#
        );
        if minute.done > 0 {
            let h = (minute.done as f64 / max_done.max(1) as f64 * HALF).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="{DONE_COLOUR}"/>"#,
                axis - h
            );
        }
        if minute.failed > 0 {
            let h = (minute.failed as f64 / max_failed.max(1) as f64 * HALF).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{axis}" width="{bar:.1}" height="{h:.1}" fill="{FAILED_COLOUR}"/>"#
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    let last = from + Duration::minutes(i64::try_from(slots).unwrap_or(1) - 1);
    Chart {
        svg,
        max_done,
        max_failed,
        first: from.format("%H:%M").to_string(),
        last: last.format("%H:%M").to_string(),
    }
}

/// A small line of finished jobs (and failed attempts, when any) per minute, for a table row.
pub fn sparkline(series: &[Minute]) -> String {
    const WIDTH: f64 = 120.0;
    const HEIGHT: f64 = 24.0;
    let slots = series.len().max(2);
    let step = WIDTH / (slots - 1) as f64;
    let max = series
        .iter()
        .map(|m| m.done.max(m.failed))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let points = |value: fn(&Minute) -> i64| {
        let mut out = String::new();
        for (i, minute) in series.iter().enumerate() {
            let y = HEIGHT - 1.0 - value(minute) as f64 / max * (HEIGHT - 2.0);
            let _ = write!(out, "{:.1},{y:.1} ", i as f64 * step);
        }
        out
    };
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" aria-hidden="true">"#
    );
    let _ = write!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{DONE_COLOUR}" stroke-width="1.5"/>"#,
        points(|m| m.done).trim_end()
    );
    if series.iter().any(|m| m.failed > 0) {
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{FAILED_COLOUR}" stroke-width="1.5"/>"#,
            points(|m| m.failed).trim_end()
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_chart_has_a_bar_and_a_tooltip_per_busy_minute() {
        let mut series = vec![Minute::default(); 60];
        series[0] = Minute {
            done: 10,
            failed: 0,
        };
        series[59] = Minute { done: 5, failed: 2 };
        let chart = minutes(at("2026-12-08T10:00:00Z"), &series);
        assert_eq!((chart.max_done, chart.max_failed), (10, 2));
        assert_eq!(
            (chart.first.as_str(), chart.last.as_str()),
            ("10:00", "10:59")
        );
        let svg = chart.svg;
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 60);
        assert!(svg.contains("<title>10:00 UTC: 10 done, 0 failed</title>"));
        assert!(svg.contains("<title>10:59 UTC: 5 done, 2 failed</title>"));
        assert_eq!(svg.matches(&format!("fill=\"{DONE_COLOUR}\"/>")).count(), 2);
        assert_eq!(
            svg.matches(&format!("fill=\"{FAILED_COLOUR}\"/>")).count(),
            1
        );
        assert!(svg.contains("15 jobs done, 2 attempts failed"));
        assert!(!svg.contains("style="), "the policy refuses inline styles");
    }

    #[test]
    fn the_sparkline_draws_failures_only_when_there_are_some() {
        let quiet = sparkline(&[Minute { done: 1, failed: 0 }; 60]);
        assert_eq!(quiet.matches("<polyline").count(), 1);
        let failing = sparkline(&[Minute { done: 1, failed: 1 }; 60]);
        assert_eq!(failing.matches("<polyline").count(), 2);
    }
}
