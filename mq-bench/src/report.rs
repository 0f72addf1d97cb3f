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
        }
        self
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
        for (k, x) in &self.extra {
            v[k.as_str()] = x.clone();
        }
        v.to_string()
    }
}

pub fn print_table(rows: &[Row]) {
    println!(
        "\n{:<22} {:>7} {:>6} {:>10} {:>12} {:>9} {:>9} {:>9} {:>8}",
        "scenario",
        "payload",
        "window",
        "messages",
        "msgs/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "ceil %"
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
        println!(
            "{:<22} {:>7} {:>6} {:>10} {:>12.0} {:>9} {:>9} {:>9} {:>8}",
            r.scenario,
            r.payload,
            r.window,
            r.messages,
            r.rate(),
            p50,
            p99,
            p999,
            frac
        );
    }
    println!();
    for r in rows {
        println!("{}", r.json());
    }
}
