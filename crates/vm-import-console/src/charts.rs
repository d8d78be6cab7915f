//! Charts as server-side SVG, pure functions of the points [`crate::metrics`] read: axes
//! with units, a legend with the latest values, a readout on hover (each time slot's
//! `<title>`, so it needs no script), and colours from the page's CSS variables, so
//! light and dark both read. What cannot be drawn is said in the chart's place: no
//! endpoint, an endpoint that fails or times out, a VM with no data in the period, and
//! gaps in the data.
//!
//! Drawn by hand with maud rather than a plotting crate: the readout (`<title>` per slot)
//! and theme colours (CSS classes, not fixed colours) are what these charts need, and
//! a plotting crate's SVG backend writes neither.

use k8s_openapi::jiff::Timestamp;
use maud::{Markup, html};

use crate::metrics::{MetricsError, Points, Range, Unit};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// One chart's data.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The title.
    pub title: &'static str,
    /// The unit of every series.
    pub unit: Unit,
    /// Each series: its legend and its points, or why there are none.
    pub series: Vec<(&'static str, Result<Points, MetricsError>)>,
    /// A constant reference line (e.g. the vCPUs allotted), with its legend.
    pub reference: Option<(String, f64)>,
    /// The period shown.
    pub range: Range,
    /// Its end, unix seconds.
    pub end: u64,
}

/// Why a chart shows a message instead of lines; `None` when it has lines to draw.
pub fn message(plot: &Plot) -> Option<String> {
    if let Some((_, Err(e @ MetricsError::NotConfigured))) = plot.series.first() {
        return Some(format!("No metrics: {e}."));
    }
    let errors: Vec<&MetricsError> = plot.series.iter().filter_map(|(_, s)| s.as_ref().err()).collect();
    if errors.len() == plot.series.len() {
        return errors.first().map(|e| format!("Metrics unavailable: {e}."));
    }
    let empty = plot.series.iter().all(|(_, s)| s.as_ref().map_or(true, Vec::is_empty));
    empty.then(|| "No data in this period: the VM did not run, or its metrics were not collected.".to_owned())
}

/// Whether any series misses samples inside the period (more than two steps apart, or
/// starting late or ending early).
pub fn has_gaps(plot: &Plot) -> bool {
    let step = plot.range.step() as f64;
    let start = (plot.end - plot.range.seconds()) as f64;
    let end = plot.end as f64;
    plot.series.iter().any(|(_, s)| match s {
        Ok(points) if !points.is_empty() => {
            points.windows(2).any(|w| w[1].0 - w[0].0 > 2.0 * step)
                || points.first().is_some_and(|p| p.0 - start > 2.0 * step)
                || points.last().is_some_and(|p| end - p.0 > 2.0 * step)
        }
        _ => false,
    })
}

/// A round axis maximum above `max` in `unit`, and its tick step (4 ticks): bytes are
/// rounded in their binary unit (2 GiB, not 1.9 GiB).
fn axis_in(unit: Unit, max: f64) -> (f64, f64) {
    let scale = match unit {
        Unit::Cores => 1.0,
        Unit::Bytes | Unit::BytesPerSecond if max >= 1024.0 => 1024f64.powf(max.log(1024.0).floor()),
        Unit::Bytes | Unit::BytesPerSecond => 1.0,
    };
    let (top, tick) = axis(max / scale);
    (top * scale, tick * scale)
}

/// A round axis maximum above `max`, and its tick step (4 ticks).
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step * 4.0, step)
}

fn time_label(t: f64, range: Range) -> String {
    let Ok(ts) = Timestamp::from_second(t as i64) else {
        return String::new();
    };
    match range {
        Range::Week => ts.strftime("%b %d").to_string(),
        _ => ts.strftime("%H:%M").to_string(),
    }
}

/// The chart, or its message.
pub fn chart(plot: &Plot) -> Markup {
    let label = format!("{}, last {}", plot.title, plot.range.as_str());
    if let Some(message) = message(plot) {
        return html! {
            figure.chart aria-label=(label) {
                figcaption { (plot.title) }
                p.chart-message role="note" { (message) }
            }
        };
    }
    let start = (plot.end - plot.range.seconds()) as f64;
    let span = plot.range.seconds() as f64;
    let step = plot.range.step() as f64;
    let max = plot
        .series
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .flatten()
        .map(|p| p.1)
        .chain(plot.reference.as_ref().map(|r| r.1))
        .fold(0.0_f64, f64::max);
    let (top, tick) = axis_in(plot.unit, max * 1.05);
    let x = |t: f64| LEFT + (t - start) / span * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| HEIGHT - BOTTOM - v / top * (HEIGHT - TOP - BOTTOM);
    let paths: Vec<String> = plot
        .series
        .iter()
        .map(|(_, s)| {
            let mut d = String::new();
            let mut last: Option<f64> = None;
            for (t, v) in s.as_ref().map(Vec::as_slice).unwrap_or_default() {
                let command = match last {
                    Some(prev) if t - prev <= 2.0 * step => 'L',
                    _ => 'M',
                };
                d.push_str(&format!("{command}{:.1},{:.1} ", x(*t), y(*v)));
                last = Some(*t);
            }
            d
        })
        .collect();
    // The readout: one hover slot per step, listing every series' value there.
    let slots: Vec<(f64, String)> = (0..=(span / step) as u64)
        .filter_map(|i| {
            let t = start + i as f64 * step;
            let values: Vec<String> = plot
                .series
                .iter()
                .filter_map(|(name, s)| {
                    let points = s.as_ref().ok()?;
                    let (_, v) = points.iter().find(|(pt, _)| (pt - t).abs() < step / 2.0)?;
                    Some(format!("{name}: {}", plot.unit.format(*v)))
                })
                .collect();
            (!values.is_empty()).then(|| {
                (
                    x(t),
                    format!("{} UTC: {}", time_label(t, Range::Hour), values.join(", ")),
                )
            })
        })
        .collect();
    let slot_width = step / span * (WIDTH - LEFT - RIGHT);
    html! {
        figure.chart aria-label=(label) {
            figcaption { (plot.title) span.muted { " (" (plot.unit.caption()) ", UTC)" } }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                @for i in 0..=4 {
                    @let v = tick * f64::from(i);
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) {}
                    text.tick x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (plot.unit.format(v)) }
                }
                @for i in 0..=4 {
                    @let t = start + span * f64::from(i) / 4.0;
                    text.tick x=(format!("{:.1}", x(t))) y=(HEIGHT - 8.0)
                        text-anchor=(if i == 0 { "start" } else if i == 4 { "end" } else { "middle" }) {
                        (time_label(t, plot.range))
                    }
                }
                @if let Some((_, value)) = &plot.reference {
                    line.reference x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", y(*value))) y2=(format!("{:.1}", y(*value))) {}
                }
                @for (i, d) in paths.iter().enumerate() {
                    path class={ "line s" (i) } d=(d) {}
                }
                @for (sx, readout) in &slots {
                    rect.slot x=(format!("{:.1}", sx - slot_width / 2.0)) y=(TOP) width=(format!("{:.1}", slot_width)) height=(HEIGHT - TOP - BOTTOM) {
                        title { (readout) }
                    }
                }
            }
            ul.legend {
                @for (i, (name, s)) in plot.series.iter().enumerate() {
                    li {
                        span class={ "swatch s" (i) } {}
                        (name) ": "
                        @match s {
                            Ok(points) => @match points.last() {
                                Some((_, v)) => { (plot.unit.format(*v)) }
                                None => { "no data" }
                            },
                            Err(e) => { span.error { (e.to_string()) } }
                        }
                    }
                }
                @if let Some((name, value)) = &plot.reference {
                    li { span.swatch.reference {} (name) ": " (plot.unit.format(*value)) }
                }
            }
            @if has_gaps(plot) {
                p.chart-note role="note" { "Gaps: no samples for part of this period (the VM was stopped, or its metrics were not collected)." }
            }
        }
    }
}

/// A small trend line for the list, with its latest value as the readout.
pub fn sparkline(name: &str, unit: Unit, points: &Result<Points, MetricsError>) -> Markup {
    let points = match points {
        Ok(points) if points.len() >= 2 => points,
        Ok(_) => return html! { span.spark.muted title={ (name) ": no data in the last hour" } { "–" } },
        Err(e) => return html! { span.spark.muted title={ (name) ": " (e.to_string()) } { "–" } },
    };
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let max = points
        .iter()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let d: String = points
        .iter()
        .enumerate()
        .map(|(i, (t, v))| {
            let x = if t1 > t0 { (t - t0) / (t1 - t0) * 80.0 } else { 0.0 };
            let y = 18.0 - v / max * 16.0;
            format!("{}{x:.1},{y:.1} ", if i == 0 { 'M' } else { 'L' })
        })
        .collect();
    let latest = unit.format(points[points.len() - 1].1);
    html! {
        svg.spark viewBox="0 0 80 20" width="80" height="20" role="img" aria-label={ (name) " over the last hour, now " (latest) } {
            title { (name) ", last hour: now " (latest) }
            path.line.s0 d=(d) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(series: Vec<(&'static str, Result<Points, MetricsError>)>) -> Plot {
        Plot {
            title: "Network",
            unit: Unit::BytesPerSecond,
            series,
            reference: None,
            range: Range::Hour,
            end: 3600 * 1000,
        }
    }

    fn steady(from: u64, to: u64) -> Points {
        (from..=to)
            .step_by(30)
            .map(|t| (t as f64, 2048.0 + (t % 300) as f64))
            .collect()
    }

    #[test]
    fn a_chart_has_axes_units_a_legend_and_a_readout() {
        let end = 3600 * 1000;
        let html = chart(&plot(vec![
            ("in", Ok(steady(end - 3600, end))),
            ("out", Ok(steady(end - 3600, end))),
        ]))
        .into_string();
        assert!(html.contains("<svg"), "{html}");
        assert!(html.contains("KiB/s"), "units on the axis: {html}");
        assert!(html.contains("class=\"line s0\"") && html.contains("class=\"line s1\""));
        assert!(html.contains("<title>"), "a readout");
        assert!(
            html.contains("in: 2.0 KiB/s") || html.contains("in: 2.1 KiB/s"),
            "{html}"
        );
        assert!(!html.contains("Gaps"), "{html}");
    }

    #[test]
    fn what_cannot_be_drawn_is_said() {
        let not_configured = chart(&plot(vec![("in", Err(MetricsError::NotConfigured))])).into_string();
        assert!(
            not_configured.contains("No metrics: metrics are not configured"),
            "{not_configured}"
        );
        let failing = chart(&plot(vec![
            ("in", Err(MetricsError::Timeout(5))),
            ("out", Err(MetricsError::Timeout(5))),
        ]))
        .into_string();
        assert!(failing.contains("did not answer within 5 s"), "{failing}");
        assert!(!failing.contains("<svg"));
        let never_ran = chart(&plot(vec![("in", Ok(vec![])), ("out", Ok(vec![]))])).into_string();
        assert!(never_ran.contains("No data in this period"), "{never_ran}");
        let end = 3600 * 1000;
        let mut gappy = steady(end - 3600, end - 2400);
        gappy.extend(steady(end - 1200, end));
        let gaps = chart(&plot(vec![
            ("in", Ok(gappy)),
            ("out", Err(MetricsError::Failed("500".into()))),
        ]))
        .into_string();
        assert!(gaps.contains("Gaps: no samples"), "{gaps}");
        assert!(gaps.contains("the metrics endpoint failed: 500"), "{gaps}");
        assert_eq!(
            gaps.matches(" M").count() + gaps.matches("\"M").count(),
            2,
            "the line breaks at the gap"
        );
    }

    #[test]
    fn axes_are_round() {
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(axis_in(Unit::Bytes, 3.7 * gib), (4.0 * gib, gib));
        assert_eq!(axis_in(Unit::Cores, 1.5), (2.0, 0.5));
        assert_eq!(axis(3.3), (4.0, 1.0));
        assert_eq!(axis(0.0), (1.0, 0.25));
        assert_eq!(axis(900.0), (1000.0, 250.0));
    }

    #[test]
    fn a_sparkline_reads_its_latest_value() {
        let html = sparkline("CPU", Unit::Cores, &Ok(vec![(0.0, 0.5), (60.0, 1.25)])).into_string();
        assert!(html.contains("now 1.25 cores"), "{html}");
        assert!(
            sparkline("CPU", Unit::Cores, &Ok(vec![]))
                .into_string()
                .contains("no data")
        );
    }
}
