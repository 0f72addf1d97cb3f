//! SVG charts of a run (`--charts DIR`), drawn with plotters:
//!
//! * `throughput-<payload>B.svg`: publish with confirm by in-flight window
//!   (log-log), next to the TCP echo ceiling measured in the same run;
//! * `latency-<payload>B-w<window>[-paced].svg`: the latency distribution
//!   of every scenario measured at that payload and window (full speed, or
//!   at the fixed rate) as a percentile plot (x: percentile on a log scale of 1/(1-q), so
//!   50 %, 90 %, 99 %, 99.9 %, 99.99 % are evenly spaced; y: microseconds,
//!   log scale), the echo ceiling among them.
//!
//! Each chart uses the median run of each scenario (the one the table
//! shows).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Row;
use crate::BenchResult;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Writes every chart the rows allow into `dir`; returns the files written.
pub fn write_all(dir: &Path, medians: &[Row]) -> BenchResult<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut payloads: Vec<usize> = medians.iter().map(|r| r.payload).collect();
    payloads.sort_unstable();
    payloads.dedup();
    for p in payloads {
        let rows: Vec<&Row> = medians.iter().filter(|r| r.payload == p).collect();
        let t = dir.join(format!("throughput-{p}B.svg"));
        if throughput(&t, p, &rows)? {
            written.push(t.display().to_string());
        }
        let mut groups: Vec<(usize, bool)> = rows
            .iter()
            .map(|r| (r.window, r.scenario.contains("paced")))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for (w, paced) in groups {
            let same: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| r.window == w && r.scenario.contains("paced") == paced)
                .collect();
            let tag = if paced { "-paced" } else { "" };
            let l = dir.join(format!("latency-{p}B-w{w}{tag}.svg"));
            let what = format!(
                "{p} B payload, window {w}{}",
                if paced { ", fixed rate" } else { "" }
            );
            if latency(&l, &what, &same)? {
                written.push(l.display().to_string());
            }
        }
    }
    Ok(written)
}

/// Msgs/s by window for the scenarios measured at several windows.
fn throughput(path: &Path, payload: usize, rows: &[&Row]) -> BenchResult<bool> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows {
        let point = ((r.window.max(1)) as f64, r.rate().max(1.0));
        match series.iter_mut().find(|(n, _)| *n == r.scenario) {
            Some((_, pts)) => pts.push(point),
            None => series.push((r.scenario.clone(), vec![point])),
        }
    }
    series.retain(|(_, pts)| pts.len() > 1);
    if series.is_empty() {
        return Ok(false);
    }
    for (_, pts) in &mut series {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, 1.0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput by in-flight window, {payload} B payload"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (0.8f64..x_max * 1.25).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("messages in flight (window)")
        .y_desc("messages per second")
        .y_label_formatter(&|y| si(*y))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

/// The x coordinate of quantile `q`: `1 / (1 - q)`, so 0.9 → 10, 0.99 → 100.
fn x_of(q: f64) -> f64 {
    1.0 / (1.0 - q).max(1e-9)
}

/// Percentile curves of every scenario with a latency distribution.
fn latency(path: &Path, what: &str, rows: &[&Row]) -> BenchResult<bool> {
    let curves: Vec<(String, &Vec<(f64, u64)>)> = rows
        .iter()
        .filter(|r| !r.curve.is_empty())
        .map(|r| (r.scenario.clone(), &r.curve))
        .collect();
    if curves.is_empty() {
        return Ok(false);
    }
    let (mut y_min, mut y_max, mut q_max) = (u64::MAX, 1u64, 0.5f64);
    for (_, c) in &curves {
        for &(q, v) in c.iter() {
            y_min = y_min.min(v.max(1));
            y_max = y_max.max(v);
            q_max = q_max.max(q);
        }
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency by percentile, {what} (log scales)"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1.5f64..x_of(q_max) * 1.5).log_scale(),
            ((y_min as f64 / 2.0).max(0.5)..y_max as f64 * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| pct_label(*x))
        .y_label_formatter(&|y| si(*y))
        .draw()?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let col = color(i);
        let pts: Vec<(f64, f64)> = c.iter().map(|&(q, v)| (x_of(q), v.max(1) as f64)).collect();
        let style = if name.starts_with("ceiling") {
            BLACK.stroke_width(2)
        } else {
            col.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(pts, style))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

/// The percentile at x = 1/(1-q): 100 → "99%", 1000 → "99.9%".
fn pct_label(x: f64) -> String {
    let q = format!("{:.4}", 100.0 * (1.0 - 1.0 / x));
    format!("{}%", q.trim_end_matches('0').trim_end_matches('.'))
}

/// 1234567 → "1.2M".
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quantiles_map_to_decades() {
        assert!((x_of(0.9) - 10.0).abs() < 1e-9);
        assert!((x_of(0.999) - 1000.0).abs() < 1e-6);
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(2500.0), "2k");
        assert_eq!(pct_label(100.0), "99%");
        assert_eq!(pct_label(2.0), "50%");
        assert_eq!(pct_label(1000.0), "99.9%");
    }

    #[test]
    fn writes_both_charts_with_every_series() {
        let dir = std::env::temp_dir().join(format!("mq-bench-charts-{}", std::process::id()));
        let mut rows = Vec::new();
        for (s, w, n) in [
            ("ceiling-echo", 1, 1000),
            ("ceiling-echo", 100, 5000),
            ("publish-confirm", 1, 400),
            ("publish-confirm", 100, 3000),
        ] {
            let mut r = Row::new(s, 128, w, n, Duration::from_secs(1));
            r.curve = vec![(0.5, 100), (0.99, 900), (0.999, 2000)];
            rows.push(r);
        }
        let files = write_all(&dir, &rows).expect("charts");
        assert_eq!(files.len(), 3, "{files:?}");
        let t = std::fs::read_to_string(dir.join("throughput-128B.svg")).expect("svg");
        assert!(t.contains("<svg") && t.contains("publish-confirm") && t.contains("ceiling-echo"));
        let l = std::fs::read_to_string(dir.join("latency-128B-w100.svg")).expect("svg");
        assert!(l.contains("publish-confirm") && l.contains("ceiling-echo") && l.contains("99.9%"));
        assert!(l.contains("window 100"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
