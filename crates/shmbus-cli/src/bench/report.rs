//! The table, the JSON rows and the SVG plot of a benchmark run.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use super::Pin;

/// One line of results.
pub(crate) struct Row {
    pub name: String,
    pub metric: &'static str,
    pub size: usize,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
    pub msgs_per_s: Option<f64>,
    pub gib_per_s: Option<f64>,
    pub histogram: Option<Histogram<u64>>,
}

/// The row each row is compared with: shmbus busy-poll for latency (shmbus blocking for the
/// WaitSet row, which blocks too), shmbus send (copy) of
/// the same size for throughput, one subscriber for fan-out, shmbus busy-poll for the
/// adaptive rows. The ratio is "this row / that row", for latency (lower is better) and
/// rates (higher is better) alike.
fn reference<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    if row.name.starts_with("shmbus WaitSet") {
        return rows.iter().find(|r| r.name == "shmbus blocking (futex)");
    }
    rows.iter().find(|r| match row.metric {
        "latency" | "adaptive" => r.name == "shmbus busy-poll",
        "throughput" => r.name == "shmbus send (copy)" && r.size == row.size,
        "fanout" => r.name.ends_with(", 1 subscriber"),
        _ => false,
    })
}

fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let base = reference(rows, row)?;
    match (row.p50_ns, base.p50_ns, row.msgs_per_s, base.msgs_per_s) {
        (Some(a), Some(b), _, _) => Some(a as f64 / b.max(1) as f64),
        (_, _, Some(a), Some(b)) => Some(a / b),
        _ => None,
    }
}

fn size_str(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else {
        format!("{size} B")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub(crate) fn print(
    rows: &[Row],
    json_rows: bool,
    took: Duration,
    pin: Pin,
    cores: usize,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json_rows {
        for r in rows {
            let v = json!({
                "name": r.name,
                "metric": r.metric,
                "p50_ns": r.p50_ns,
                "p99_ns": r.p99_ns,
                "p999_ns": r.p999_ns,
                "max_ns": r.max_ns,
                "msgs_per_s": r.msgs_per_s,
                "gib_per_s": r.gib_per_s,
                "size": r.size,
                "ratio": ratio(rows, r),
            });
            writeln!(out, "{v}")?;
        }
        return out.flush();
    }
    writeln!(
        out,
        "{:<42} {:>7} {:>8} {:>8} {:>8} {:>9} {:>12} {:>8} {:>7}",
        "case", "size", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "msgs/s", "GiB/s", "ratio"
    )?;
    let mut last_metric = "";
    for r in rows {
        if r.metric != last_metric {
            writeln!(out, "-- {}", r.metric)?;
            last_metric = r.metric;
        }
        writeln!(
            out,
            "{:<42} {:>7} {:>8} {:>8} {:>8} {:>9} {:>12} {:>8} {:>7}",
            r.name,
            size_str(r.size),
            opt(r.p50_ns),
            opt(r.p99_ns),
            opt(r.p999_ns),
            opt(r.max_ns),
            r.msgs_per_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            r.gib_per_s
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            ratio(rows, r).map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
        )?;
    }
    writeln!(
        out,
        "ratio: latency rows / shmbus busy-poll p50 (the WaitSet row / shmbus blocking); \
         throughput rows / shmbus send (copy) of the same size; fan-out / 1 subscriber. \
         {cores} cores, --pin {pin:?}, {:.1} s.",
        took.as_secs_f64()
    )?;
    out.flush()
}

/// Draws the latency distributions (percentile on a log "nines" axis, latency on a log
/// axis), one line per latency row, into an SVG file.
pub(crate) fn plot(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let (w, h, left, bottom, top, right) = (1040.0, 560.0, 70.0, 50.0, 30.0, 340.0);
    let quantiles: Vec<f64> = (0..=40)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 10.0))
        .collect();
    let lines: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .filter_map(|r| {
            let hist = r.histogram.as_ref()?;
            let pts = quantiles
                .iter()
                .map(|&q| {
                    (
                        -(1.0 - q).max(1e-4).log10(),
                        (hist.value_at_quantile(q).max(1) as f64).log10(),
                    )
                })
                .collect();
            Some((r.name.as_str(), pts))
        })
        .collect();
    let ymax = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(1.0f64, f64::max)
        .ceil();
    let xmax = 4.0;
    let px = |x: f64| left + x / xmax * (w - left - right);
    let py = |y: f64| top + (1.0 - y / ymax) * (h - top - bottom);
    let colors = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    writeln!(
        svg,
        r#"<text x="{}" y="18" font-size="14">shmbus bench: one-way latency distribution</text>"#,
        left
    )?;
    for d in 0..=(ymax as i32) {
        let y = py(f64::from(d));
        writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            w - right,
            left - 6.0,
            y + 4.0,
            format_ns(10f64.powi(d))
        )?;
    }
    for (x, label) in [
        (0.0, "0"),
        (1.0, "90"),
        (2.0, "99"),
        (3.0, "99.9"),
        (4.0, "99.99"),
    ] {
        let xx = px(x);
        writeln!(
            svg,
            r##"<line x1="{xx}" x2="{xx}" y1="{top}" y2="{}" stroke="#ddd"/><text x="{xx}" y="{}" text-anchor="middle">{label}</text>"##,
            h - bottom,
            h - bottom + 16.0
        )?;
    }
    writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        px(2.0),
        h - 12.0
    )?;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = colors[i % colors.len()];
        let d: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            d.join(" ")
        )?;
        let ly = top + 16.0 * i as f64 + 10.0;
        writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            w - right + 12.0,
            ly - 4.0,
            w - right + 32.0,
            ly,
            xml_escape(name)
        )?;
    }
    writeln!(svg, "</svg>")?;
    std::fs::write(path, svg)?;
    Ok(())
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{} µs", ns / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
