//! The disk's floor for the durable broker's fixed-rate latency: what a
//! broker that costs no CPU at all would get from this disk at the same
//! offered rate, measured in the same run right before `e2e-paced-disk`.
//!
//! One thread plays an ideal group commit on a file in the same directory
//! the disk broker uses (`MQ_BENCH_DIR`): messages arrive on the paced
//! schedule; whenever the writer is free it writes every record that has
//! arrived (the journal's bytes per message) with one `write` and one
//! `fdatasync`, and each of them is durable when that fdatasync returns.
//! The file is written with zeros and synced before the clock starts, as
//! the journal keeps zeros ahead of its data, so the syncs only write data
//! blocks. The sender's window is modelled as the e2e run has it: message
//! `i` is timestamped no earlier than message `i - 1 - window` was durable
//! (its `Stored` frees the slot the sender waits for).
//!
//! Latency is from arrival to the fdatasync's return: no network, no
//! broker, no handler. `e2e-paced-disk`'s p99 over this row's p99 is the
//! broker's share; the rest is the disk.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

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
    tokio::task::spawn_blocking(move || measure(load, rate))
        .await
        .map_err(|e| format!("disk floor thread: {e}"))?
}

fn measure(load: Load, rate: f64) -> BenchResult<Row> {
    let dir = crate::publish::bench_dir();
    std::fs::create_dir_all(&dir)?;
    let result = measure_in(&dir, load, rate);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_in(dir: &std::path::Path, load: Load, rate: f64) -> BenchResult<Row> {
    let n = load.count as usize;
    let record = load.payload + RECORD_OVERHEAD;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("floor.dat"))?;
    // Zeros ahead of the data, synced, before the clock starts.
    let size = n * record + (1 << 20);
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        file.write_all_at(&zeros, at as u64)?;
        at += zeros.len();
    }
    file.sync_all()?;
    let data = vec![0x5au8; (load.window + 1) * record];

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut done: Vec<Instant> = Vec::with_capacity(n);
    let mut arrival: Vec<Instant> = Vec::with_capacity(n);
    let start = Instant::now() + Duration::from_millis(1);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut offset = 0u64;
    let mut syncs = 0u64;
    // When message `i` arrives: on schedule, or when its window slot frees
    // (`None`: not known yet, the message holding the slot is not durable).
    let arrives = |i: usize, done: &[Instant]| -> Option<Instant> {
        let scheduled = start + period.mul_f64(i as f64);
        match i.checked_sub(load.window + 1) {
            None => Some(scheduled),
            Some(holder) => done.get(holder).map(|&freed| scheduled.max(freed)),
        }
    };
    while done.len() < n {
        let first = done.len();
        let Some(t) = arrives(first, &done) else {
            return Err("disk floor: window bookkeeping".into());
        };
        wait_until(t);
        let now = Instant::now();
        arrival.push(t);
        let mut last = first + 1;
        while last < n {
            match arrives(last, &done) {
                Some(a) if a <= now => {
                    arrival.push(a);
                    last += 1;
                }
                _ => break,
            }
        }
        let bytes = (last - first) * record;
        file.write_all_at(&data[..bytes.min(data.len())], offset)?;
        file.sync_data()?;
        syncs += 1;
        offset += bytes as u64;
        let end = Instant::now();
        for a in &arrival[first..last] {
            hist.record(end.duration_since(*a).as_micros().max(1) as u64)?;
            done.push(end);
        }
    }
    let elapsed = done
        .last()
        .map_or(Duration::from_nanos(1), |d| d.duration_since(start))
        .max(Duration::from_nanos(1));
    let mut row = Row::new(
        "disk-floor-paced",
        load.payload,
        load.window,
        load.count,
        elapsed,
    )
    .with_latency(&hist);
    row.extra.push(("offered_rate".into(), rate.into()));
    row.extra.push(("fdatasyncs".into(), syncs.into()));
    Ok(row)
}

/// Sleeps to within 100 µs of `t`, then spins: the schedule's 200 µs
/// period is finer than a sleep's wake-up jitter.
fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        let Some(left) = t.checked_duration_since(now) else {
            return;
        };
        if left > Duration::from_micros(100) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}
