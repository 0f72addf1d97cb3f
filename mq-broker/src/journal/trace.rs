//! Stage timings of the journal's hand-off, for diagnosis only: set
//! `MQ_JOURNAL_TRACE=1` and the flusher prints, when it stops, the
//! percentiles of each stage of its batches to stderr. Off (one relaxed
//! load per batch) otherwise.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ON: AtomicU8 = AtomicU8::new(2);
static SAMPLES: Mutex<Vec<[u32; 5]>> = Mutex::new(Vec::new());

/// True if stage timings are being recorded.
pub(crate) fn on() -> bool {
    match ON.load(Ordering::Relaxed) {
        0 => false,
        1 => true,
        _ => {
            let on = std::env::var_os("MQ_JOURNAL_TRACE").is_some_and(|v| v != "0");
            ON.store(u8::from(on), Ordering::Relaxed);
            on
        }
    }
}

/// Microseconds from `a` to `b`.
pub(crate) fn us(a: Instant, b: Instant) -> u32 {
    b.saturating_duration_since(a)
        .as_micros()
        .min(u32::MAX as u128) as u32
}

/// Records one batch: wake, io, relock, release, by (stage microseconds).
pub(crate) fn record(s: [u32; 5]) {
    if let Ok(mut v) = SAMPLES.lock() {
        v.push(s);
    }
}

/// Batches recorded and not yet reported.
#[cfg(test)]
pub(crate) fn samples() -> usize {
    SAMPLES.lock().map_or(0, |v| v.len())
}

/// Prints and clears what was recorded.
pub(crate) fn report() {
    let Ok(mut v) = SAMPLES.lock() else { return };
    if v.is_empty() {
        return;
    }
    let names = [
        "append->flusher",
        "write+sync",
        "relock",
        "release",
        "total",
    ];
    eprintln!(
        "journal trace: {} batches (us: p50 p90 p99 p99.9 max)",
        v.len()
    );
    for (i, n) in names.iter().enumerate() {
        let mut c: Vec<u32> = v.iter().map(|s| s[i]).collect();
        c.sort_unstable();
        let q = |p: f64| c[((c.len() as f64 * p) as usize).min(c.len() - 1)];
        eprintln!(
            "  {n:16} {:6} {:6} {:6} {:6} {:6}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            c[c.len() - 1]
        );
    }
    v.clear();
}
