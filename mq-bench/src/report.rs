//! One measured result: printed as a table row and as a JSON line.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A measurement of one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub payload: usize,
    pub window: usize,
    pub messages: u64,
    pub elapsed: Duration,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub latency_us: Option<(u64, u64, u64)>,
    /// The ceiling's msgs/s for the same payload and window, when measured.
    pub ceiling: Option<f64>,
    /// The ceiling's p99 latency (µs) in the same conditions.
    pub ceiling_p99_us: Option<u64>,
    /// The disk floor's p99 latency (µs) in the same run (`floor.rs`), for
    /// the durable fixed-rate row.
    pub floor_p99_us: Option<u64>,
    /// The latency distribution as (quantile, µs) points, for the charts.
    pub curve: Vec<(f64, u64)>,
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Row {
    pub fn new(
        scenario: &str,
        payload: usize,
        window: usize,
        messages: u64,
        elapsed: Duration,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            payload,
            window,
            messages,
            elapsed,
            latency_us: None,
            ceiling: None,
            ceiling_p99_us: None,
            floor_p99_us: None,
            curve: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn with_latency(mut self, h: &Histogram<u64>) -> Self {
        if !h.is_empty() {
            self.latency_us = Some((
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
            ));
            self.curve = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999]
                .iter()
                .map(|&q| (q, h.value_at_quantile(q)))
                .collect();
        }
        self
    }

    /// Takes the ceiling figures from `c`, measured in the same run.
    pub fn set_ceiling(&mut self, c: &Row) {
        self.ceiling = Some(c.rate());
        self.ceiling_p99_us = c.latency_us.map(|l| l.1);
    }

    /// Takes the disk floor's p99 from `f`, measured in the same run.
    pub fn set_floor(&mut self, f: &Row) {
        self.floor_p99_us = f.latency_us.map(|l| l.1);
    }

    fn key(&self) -> (String, usize, usize) {
        (self.scenario.clone(), self.payload, self.window)
    }

    fn p99_ratio(&self) -> Option<f64> {
        Some(self.latency_us?.1 as f64 / self.ceiling_p99_us?.max(1) as f64)
    }

    fn floor_ratio(&self) -> Option<f64> {
        Some(self.latency_us?.1 as f64 / self.floor_p99_us?.max(1) as f64)
    }

    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> String {
        let mut v = serde_json::json!({
            "scenario": self.scenario,
            "payload": self.payload,
            "window": self.window,
            "messages": self.messages,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "msgs_per_s": self.rate().round(),
            "mb_per_s": (self.rate() * self.payload as f64 / 1e6 * 100.0).round() / 100.0,
        });
        if let Some((p50, p99, p999)) = self.latency_us {
            v["p50_us"] = p50.into();
            v["p99_us"] = p99.into();
            v["p999_us"] = p999.into();
        }
        if let Some(c) = self.ceiling {
            v["ceiling_msgs_per_s"] = c.round().into();
            v["fraction_of_ceiling"] = ((self.rate() / c * 1000.0).round() / 1000.0).into();
        }
        if let (Some(c), Some(x)) = (self.ceiling_p99_us, self.p99_ratio()) {
            v["ceiling_p99_us"] = c.into();
            v["p99_over_ceiling_p99"] = ((x * 100.0).round() / 100.0).into();
        }
        if let (Some(f), Some(x)) = (self.floor_p99_us, self.floor_ratio()) {
            v["floor_p99_us"] = f.into();
            v["p99_over_floor_p99"] = ((x * 100.0).round() / 100.0).into();
        }
        for (k, x) in &self.extra {
            v[k.as_str()] = x.clone();
        }
        v.to_string()
    }
}

/// The median run of each (scenario, payload, window): by msgs/s, or by p99
/// for fixed-rate runs. Its fraction of the ceiling is replaced by the
/// median of the per-run fractions (each against the ceiling measured in
/// the same run), and likewise its p99 ratios to the
/// ceiling and to the disk floor.
pub fn medians(rows: &[Row]) -> Vec<Row> {
    let mut keys: Vec<(String, usize, usize)> = Vec::new();
    for r in rows {
        if !keys.contains(&r.key()) {
            keys.push(r.key());
        }
    }
    keys.into_iter()
        .map(|k| {
            let mut group: Vec<&Row> = rows.iter().filter(|r| r.key() == k).collect();
            let runs: Vec<f64> = group.iter().map(|r| r.rate().round()).collect();
            let fractions = median(group.iter().filter_map(|r| Some(r.rate() / r.ceiling?)));
            let p99_ratios = median(group.iter().filter_map(|r| r.p99_ratio()));
            let floor_ratios = median(group.iter().filter_map(|r| r.floor_ratio()));
            if k.0.ends_with("-paced") {
                group.sort_by_key(|r| r.latency_us.map_or(0, |l| l.1));
            } else {
                group.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            }
            let mut m = group[group.len() / 2].clone();
            // Stored so that `rate() / ceiling` and `p99_ratio()` give the medians.
            if let Some(f) = fractions {
                m.ceiling = Some(m.rate() / f.max(1e-12));
            }
            if let (Some(x), Some((_, p99, _))) = (p99_ratios, m.latency_us) {
                m.ceiling_p99_us = Some((p99 as f64 / x.max(1e-12)).round() as u64);
            }
            if let (Some(x), Some((_, p99, _))) = (floor_ratios, m.latency_us) {
                m.floor_p99_us = Some((p99 as f64 / x.max(1e-12)).round() as u64);
            }
            m.extra.push(("runs".into(), runs.len().into()));
            m.extra.push(("msgs_per_s_each_run".into(), runs.into()));
            m
        })
        .collect()
}

fn median(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Every run as a JSON line, then the table of medians and the memory
/// figures; the charts into `charts` when given.
pub fn print(
    rows: &[Row],
    memory: &[serde_json::Value],
    runs: usize,
    charts: Option<&std::path::Path>,
) {
    println!("\n# every run");
    for r in rows {
        println!("{}", r.json());
    }
    let med = medians(rows);
    println!(
        "\n# medians of {runs} run(s); ceil % and p99/ceil are medians of per-run ratios to the ceiling of the same run"
    );
    print_table(&med);
    for r in med.iter().filter(|r| r.floor_p99_us.is_some()) {
        if let Some(x) = r.floor_ratio() {
            println!(
                "{} {}B: p99 / the disk floor's p99 in the same run (median of per-run ratios): {x:.2}x",
                r.scenario, r.payload
            );
        }
    }
    println!("\n# medians as JSON");
    for r in &med {
        println!("{}", r.json());
    }
    if let Some(dir) = charts {
        match crate::charts::write_all(dir, &med) {
            Ok(files) => {
                println!("\n# charts");
                for f in files {
                    println!("{f}");
                }
            }
            Err(e) => eprintln!("charts not written: {e}"),
        }
    }
    if !memory.is_empty() {
        println!("\n# memory (each in a fresh child process)");
        for v in memory {
            println!("{v}");
        }
    }
}

pub fn print_table(rows: &[Row]) {
    println!(
        "{:<20} {:>7} {:>6} {:>9} {:>10} {:>8} {:>8} {:>9} {:>7} {:>9}",
        "scenario",
        "payload",
        "window",
        "messages",
        "msgs/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "ceil %",
        "p99/ceil"
    );
    for r in rows {
        let (p50, p99, p999) = r
            .latency_us
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .unwrap_or_default();
        let frac = r
            .ceiling
            .map(|c| format!("{:.1}", 100.0 * r.rate() / c))
            .unwrap_or_default();
        let lat = r
            .p99_ratio()
            .map(|x| format!("{x:.2}x"))
            .unwrap_or_default();
        println!(
            "{:<20} {:>7} {:>6} {:>9} {:>10.0} {:>8} {:>8} {:>9} {:>7} {:>9}",
            r.scenario,
            r.payload,
            r.window,
            r.messages,
            r.rate(),
            p50,
            p99,
            p999,
            frac,
            lat
        );
    }
}
