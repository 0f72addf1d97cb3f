//! The disk's floor for the durable broker's fixed-rate latency, measured
//! in the same run right before `e2e-paced-disk`: `mq_broker::check_disk`
//! (the same measurement as `mq-broker --check-disk`) on a fresh directory
//! where the disk broker keeps its journal (`MQ_BENCH_DIR`), at the same
//! rate, with the e2e run's window and the journal's record size.
//!
//! It is what a broker that costs no CPU at all would get from this disk:
//! an ideal group commit, one `write` and one `fdatasync` of whatever has
//! arrived whenever the writer is free; latency from arrival to the
//! fdatasync's return. `e2e-paced-disk`'s p99 over this row's p99 is the
//! broker's share; the rest is the disk.

use std::time::Duration;

use hdrhistogram::Histogram;
use mq_broker::DiskCheck;

use crate::report::Row;
use crate::{BenchResult, Load};

/// Journal bytes per stored message beyond its payload (the `durable`
/// group measures 166 bytes on disk per 128-byte message: the record's
/// header, ID, topic and checksum).
pub const RECORD_OVERHEAD: usize = 38;

/// Runs the floor for `load` (its payload, window, count and rate) in a
/// blocking thread.
pub async fn run(load: Load) -> BenchResult<Row> {
    let rate = load.rate.ok_or("the disk floor needs a rate")?;
    let check = DiskCheck {
        rate,
        duration: Duration::from_secs_f64(load.count as f64 / rate),
        record_bytes: load.payload + RECORD_OVERHEAD,
        window: load.window,
    };
    let dir = crate::publish::bench_dir();
    std::fs::create_dir_all(&dir)?;
    let measured = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || mq_broker::check_disk(&dir, &check)).await
    };
    let _ = std::fs::remove_dir_all(&dir);
    let report = measured.map_err(|e| format!("disk floor thread: {e}"))??;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for &us in &report.latencies_us {
        hist.record(us.clamp(1, 60_000_000))?;
    }
    let mut row = Row::new(
        "disk-floor-paced",
        load.payload,
        load.window,
        report.latencies_us.len() as u64,
        report.elapsed.max(Duration::from_nanos(1)),
    )
    .with_latency(&hist);
    row.extra.push(("offered_rate".into(), rate.into()));
    row.extra
        .push(("fdatasyncs".into(), report.syncs_us.len().into()));
    Ok(row)
}
