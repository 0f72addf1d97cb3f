//! `mq-broker --check-disk`: what latency can this disk give a durable
//! broker at a given rate?
//!
//! The disk broker replies `Stored` only after an fdatasync covers the
//! message, so no broker on a disk is faster than that disk's fdatasync,
//! and a message that arrives during a slow one waits for it *and* for
//! the next. [`check_disk`] measures exactly that and nothing else: an
//! ideal group commit (no network, no broker, no CPU to speak of) on a
//! file in the directory to check. Messages arrive on a fixed schedule;
//! whenever the writer is free it writes every record that has arrived
//! with one `write` and one `fdatasync`, as the journal does, and each of
//! them is durable when that fdatasync returns. The file is filled with
//! zeros and synced before the clock starts, as the journal keeps zeros
//! ahead of its data, so the syncs only write data blocks.
//!
//! The report's message latencies (arrival to durable) are the floor under
//! the durable broker's `Stored` latency at that rate; `mq-bench` measures
//! it next to the broker (`disk-floor-paced`). Like PostgreSQL's
//! `pg_test_fsync`, run it on the disk you mean to use, before deploying:
//! a virtualised or shared disk whose fdatasync stalls for tens of
//! milliseconds now and then shows it here in seconds.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`check_disk`] offers the disk.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let check = mq_broker::DiskCheck {
///     rate: 1000.0,
///     duration: Duration::from_secs(2),
///     ..Default::default()
/// };
/// assert_eq!(check.messages(), 2000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiskCheck {
    /// Messages arriving per second, evenly spaced. Default 5,000.
    pub rate: f64,
    /// How long messages arrive. Default 5 s.
    pub duration: Duration,
    /// Journal bytes per message. Default 166: a 128-byte payload's
    /// record (its header, ID, topic and checksum add 38 bytes).
    pub record_bytes: usize,
    /// At most this many messages not yet durable: message `i` arrives no
    /// earlier than message `i - 1 - window` became durable, as a sender
    /// with `max_in_flight = window` waits for a slot. Default 1,000.
    pub window: usize,
}

impl Default for DiskCheck {
    fn default() -> Self {
        Self {
            rate: 5000.0,
            duration: Duration::from_secs(5),
            record_bytes: 166,
            window: 1000,
        }
    }
}

impl DiskCheck {
    /// How many messages arrive: `rate × duration`, at least one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let check = mq_broker::DiskCheck {
    ///     duration: Duration::from_millis(1),
    ///     rate: 10.0,
    ///     ..Default::default()
    /// };
    /// assert_eq!(check.messages(), 1);
    /// ```
    pub fn messages(&self) -> usize {
        ((self.rate * self.duration.as_secs_f64()) as usize).max(1)
    }

    /// Bytes of the check's file: a record per message, written with
    /// zeros and synced before the clock starts.
    ///
    /// # Examples
    ///
    /// ```
    /// let check = mq_broker::DiskCheck::default();
    /// assert_eq!(check.file_bytes(), 25_000 * 166);
    /// ```
    pub fn file_bytes(&self) -> usize {
        self.messages().saturating_mul(self.record_bytes)
    }

    fn validate(&self) -> Result<(), DiskCheckError> {
        let bad = |what: &str| Err(DiskCheckError::Config(what.to_string()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("the rate must be a positive number of messages per second");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(3600) {
            return bad("the duration must be more than 0 s and at most an hour");
        }
        if self.record_bytes == 0 || self.record_bytes > 16 << 20 {
            return bad("the record size must be between 1 byte and 16 MiB");
        }
        if self.window == 0 {
            return bad("the window must be at least 1");
        }
        if self.file_bytes() > 8 << 30 {
            return bad("rate × duration × record size must stay under 8 GiB of disk");
        }
        Ok(())
    }
}

/// Why [`check_disk`] could not measure.
///
/// # Examples
///
/// ```
/// let check = mq_broker::DiskCheck { rate: 0.0, ..Default::default() };
/// let e = mq_broker::check_disk(&std::env::temp_dir(), &check).unwrap_err();
/// assert!(e.to_string().contains("rate"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum DiskCheckError {
    /// A setting is out of range; the message says which and what to use.
    #[error("disk check: {0}")]
    Config(String),
    /// Creating, writing or syncing the check's file failed.
    #[error("disk check: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// What [`check_disk`] measured.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let check = mq_broker::DiskCheck {
///     rate: 2000.0,
///     duration: Duration::from_millis(100),
///     ..Default::default()
/// };
/// let dir = std::env::temp_dir();
/// let report = mq_broker::check_disk(&dir, &check).unwrap();
/// assert_eq!(report.latencies_us.len(), 200);
/// assert!(report.syncs_us.len() >= 1 && report.syncs_us.len() <= 200);
/// assert!(report.message_quantile(0.5) <= report.message_quantile(0.99));
/// println!("{report}");
/// ```
#[derive(Debug, Clone)]
pub struct DiskCheckReport {
    /// The check that was run.
    pub check: DiskCheck,
    /// Each message's latency, arrival to durable, in microseconds, in
    /// arrival order.
    pub latencies_us: Vec<u64>,
    /// Each `write` + `fdatasync`'s duration in microseconds, in order.
    pub syncs_us: Vec<u64>,
    /// From the first arrival to the last fdatasync's return.
    pub elapsed: Duration,
    /// Bytes written in the measured batches: a record per message.
    pub bytes_written: u64,
}

impl DiskCheckReport {
    /// The message latency (µs) at quantile `q` (0.5 is the median);
    /// 0 if nothing was measured.
    pub fn message_quantile(&self, q: f64) -> u64 {
        quantile(&self.latencies_us, q)
    }

    /// The write + fdatasync duration (µs) at quantile `q`.
    pub fn sync_quantile(&self, q: f64) -> u64 {
        quantile(&self.syncs_us, q)
    }
}

fn quantile(xs: &[u64], q: f64) -> u64 {
    let mut v = xs.to_vec();
    v.sort_unstable();
    let i = ((v.len() as f64 * q.clamp(0.0, 1.0)) as usize).min(v.len().saturating_sub(1));
    v.get(i).copied().unwrap_or(0)
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} us")
    }
}

impl std::fmt::Display for DiskCheckReport {
    /// Three lines: what ran, the fdatasync durations, the message
    /// latencies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} messages of {} B at {}/s (window {}): {} fdatasyncs in {:.1} s",
            self.latencies_us.len(),
            self.check.record_bytes,
            self.check.rate,
            self.check.window,
            self.syncs_us.len(),
            self.elapsed.as_secs_f64()
        )?;
        for (name, q) in [
            (
                "write+fdatasync",
                &Self::sync_quantile as &dyn Fn(&Self, f64) -> u64,
            ),
            ("message latency", &Self::message_quantile),
        ] {
            write!(f, "{name:<16}")?;
            for (label, x) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)] {
                write!(f, "  {label} {:>8}", micros(q(self, x)))?;
            }
            if name == "message latency" {
                write!(f, "  (arrival to durable: the floor under Stored)")?;
            } else {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// The arrival schedule: message `i` is due at `start + i × period`, and
/// arrives then or when its window slot frees, whichever is later.
struct Schedule {
    start: Instant,
    period: Duration,
    window: usize,
}

impl Schedule {
    /// When message `i` arrives, given when each message before the
    /// current batch became durable (`done`); `None` while the message
    /// holding its slot is not durable yet.
    fn arrival(&self, i: usize, done: &[Instant]) -> Option<Instant> {
        let due = self.start + self.period.mul_f64(i as f64);
        match i.checked_sub(self.window + 1) {
            None => Some(due),
            Some(holder) => done.get(holder).map(|&freed| due.max(freed)),
        }
    }

    /// The batch starting at message `first` that a writer free at `now`
    /// takes: the arrival of each message in it, at most up to message
    /// `n - 1`. The first message must have arrived by `now`.
    fn batch(&self, first: usize, n: usize, now: Instant, done: &[Instant]) -> Vec<Instant> {
        (first..n)
            .map_while(|i| self.arrival(i, done).filter(|&a| a <= now))
            .collect()
    }
}

/// Runs `check` on a file in `dir` (created, then removed) and reports
/// what it measured. Blocking: call it from a thread (or
/// `tokio::task::spawn_blocking`), not from an async task. See the module
/// documentation for what is measured and [`DiskCheckReport`] for an
/// example.
pub fn check_disk(dir: &Path, check: &DiskCheck) -> Result<DiskCheckReport, DiskCheckError> {
    check.validate()?;
    let path = dir.join(format!("mq-disk-check-{}.tmp", std::process::id()));
    let result = run(&path, check);
    let _ = std::fs::remove_file(&path);
    result
}

fn run(path: &Path, check: &DiskCheck) -> Result<DiskCheckReport, DiskCheckError> {
    let io = |source| DiskCheckError::Io {
        path: path.to_path_buf(),
        source,
    };
    let n = check.messages();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    prezero(&file, check.file_bytes()).map_err(io)?;
    let data = vec![0x5au8; (check.record_bytes * (check.window + 1).min(n)).min(1 << 20)];

    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(1),
        period: Duration::from_secs_f64(1.0 / check.rate),
        window: check.window,
    };
    let mut done: Vec<Instant> = Vec::with_capacity(n);
    let mut latencies_us = Vec::with_capacity(n);
    let mut syncs_us = Vec::new();
    let mut offset = 0u64;
    while done.len() < n {
        let first = done.len();
        let due = schedule.arrival(first, &done).unwrap_or_else(Instant::now);
        wait_until(due);
        let batch = schedule.batch(first, n, Instant::now(), &done);
        // The message due first has arrived: a batch is never empty (an
        // empty one would repeat forever).
        assert!(
            !batch.is_empty(),
            "disk check: message {first} due but not taken"
        );
        let began = Instant::now();
        let mut left = batch.len() * check.record_bytes;
        while left > 0 {
            let len = left.min(data.len());
            file.write_all_at(&data[..len], offset).map_err(io)?;
            offset += len as u64;
            left -= len;
        }
        file.sync_data().map_err(io)?;
        let end = Instant::now();
        syncs_us.push(end.duration_since(began).as_micros() as u64);
        for a in &batch {
            latencies_us.push(end.duration_since(*a).as_micros() as u64);
            done.push(end);
        }
    }
    Ok(DiskCheckReport {
        check: check.clone(),
        latencies_us,
        syncs_us,
        bytes_written: offset,
        elapsed: done
            .last()
            .map_or(Duration::ZERO, |d| d.duration_since(schedule.start)),
    })
}

/// Writes `size` bytes of zeros from the start of `file`, then syncs it:
/// the blocks exist before the clock starts, as the journal keeps zeros
/// ahead of its data.
fn prezero(file: &std::fs::File, size: usize) -> std::io::Result<()> {
    let chunk = vec![0u8; (1 << 20).min(size).max(1)];
    for at in (0..size).step_by(chunk.len()) {
        let len = chunk.len().min(size - at);
        file.write_all_at(&chunk[..len], at as u64)?;
    }
    file.sync_all()
}

/// Sleeps to within 100 µs of `t`, then spins: a 5,000 msgs/s schedule's
/// 200 µs period is finer than a sleep's wake-up jitter.
fn wait_until(t: Instant) {
    loop {
        let Some(left) = t.checked_duration_since(Instant::now()) else {
            return;
        };
        if left > Duration::from_micros(100) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn schedule(window: usize) -> Schedule {
        Schedule {
            start: Instant::now(),
            period: ms(1),
            window,
        }
    }

    #[test]
    fn a_free_writer_takes_everything_that_has_arrived() {
        let s = schedule(100);
        let t0 = s.start;
        assert_eq!(s.arrival(0, &[]), Some(t0));
        assert_eq!(s.arrival(3, &[]), Some(t0 + ms(3)));
        // At 3.5 ms messages 0..=3 have arrived; 4 has not.
        let b = s.batch(0, 10, t0 + Duration::from_micros(3500), &[]);
        assert_eq!(b, [t0, t0 + ms(1), t0 + ms(2), t0 + ms(3)]);
        // The batch stops at the last message.
        assert_eq!(s.batch(8, 10, t0 + ms(50), &[t0; 8]).len(), 2);
    }

    #[test]
    fn a_message_waits_for_its_window_slot() {
        // Window 2: message 3 needs message 0 durable, message 4 message 1.
        let s = schedule(2);
        let t0 = s.start;
        assert_eq!(s.arrival(2, &[]), Some(t0 + ms(2)));
        assert_eq!(
            s.arrival(3, &[]),
            None,
            "slot held by a message not durable"
        );
        // Message 0 durable late, at 10 ms: 3 arrives then, not at 3 ms.
        let done = [t0 + ms(10)];
        assert_eq!(s.arrival(3, &done), Some(t0 + ms(10)));
        // Durable early: on schedule.
        let done = [t0 + Duration::from_micros(500)];
        assert_eq!(s.arrival(3, &done), Some(t0 + ms(3)));
        // A writer free at 20 ms with message 0 durable takes 1, 2, 3,
        // and not 4, whose slot (message 1) is in this very batch.
        let b = s.batch(1, 10, t0 + ms(20), &[t0 + ms(10)]);
        assert_eq!(b, [t0 + ms(1), t0 + ms(2), t0 + ms(10)]);
    }

    #[test]
    fn every_message_is_measured_once_in_arrival_order() {
        let dir = std::env::temp_dir().join(format!("mq-disk-check-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let check = DiskCheck {
            rate: 4000.0,
            duration: ms(100),
            record_bytes: 100,
            window: 3,
        };
        // A watchdog: a check that never ends fails here instead of
        // hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        let (d, c) = (dir.clone(), check.clone());
        std::thread::spawn(move || tx.send(check_disk(&d, &c)));
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a 0.1 s check ends within 30 s")
            .expect("runs");
        assert_eq!(r.latencies_us.len(), 400);
        assert_eq!(r.bytes_written, 400 * 100);
        // With a window of 3 no batch is larger than 4.
        assert!(r.syncs_us.len() >= 100, "{} syncs", r.syncs_us.len());
        // The last message is due at 399 × 250 µs.
        assert!(
            r.elapsed >= Duration::from_micros(99_750),
            "{:?}",
            r.elapsed
        );
        // The file is gone.
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        let text = r.to_string();
        assert!(
            text.starts_with("400 messages of 100 B at 4000/s (window 3)"),
            "{text}"
        );
        assert!(text.contains("write+fdatasync") && text.contains("message latency"));
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn bad_settings_say_what_to_change() {
        let dir = std::env::temp_dir();
        for (check, word) in [
            (
                DiskCheck {
                    rate: 0.0,
                    ..Default::default()
                },
                "rate",
            ),
            (
                DiskCheck {
                    rate: -1.0,
                    ..Default::default()
                },
                "rate",
            ),
            (
                DiskCheck {
                    rate: f64::NAN,
                    ..Default::default()
                },
                "rate",
            ),
            (
                DiskCheck {
                    duration: Duration::ZERO,
                    ..Default::default()
                },
                "duration",
            ),
            (
                DiskCheck {
                    record_bytes: 0,
                    ..Default::default()
                },
                "record size",
            ),
            (
                DiskCheck {
                    window: 0,
                    ..Default::default()
                },
                "window",
            ),
            (
                DiskCheck {
                    rate: 1e9,
                    duration: Duration::from_secs(3600),
                    ..Default::default()
                },
                "8 GiB",
            ),
        ] {
            // Checked before any I/O (a check wrongly let through would
            // run, so this asks `validate` and not `check_disk`).
            let e = check.validate().expect_err("refused");
            assert!(matches!(e, DiskCheckError::Config(_)), "{e}");
            assert!(e.to_string().contains(word), "{e} should name {word}");
        }
        // `check_disk` refuses a bad check the same way.
        let bad = DiskCheck {
            window: 0,
            ..Default::default()
        };
        let e = check_disk(&dir, &bad).expect_err("refused");
        assert!(e.to_string().starts_with("disk check: the window"), "{e}");
        // A directory that does not exist: an I/O error naming the file.
        let e =
            check_disk(Path::new("/nonexistent/mq"), &DiskCheck::default()).expect_err("no dir");
        assert!(
            e.to_string().contains("/nonexistent/mq/mq-disk-check-"),
            "{e}"
        );
    }

    #[test]
    fn the_bounds_are_inclusive() {
        let ok = |c: DiskCheck| assert!(c.validate().is_ok(), "{c:?} refused");
        let refused = |c: DiskCheck| assert!(c.validate().is_err(), "{c:?} accepted");
        let hour = Duration::from_secs(3600);
        ok(DiskCheck {
            rate: 1.0,
            duration: hour,
            ..Default::default()
        });
        refused(DiskCheck {
            rate: 1.0,
            duration: hour + Duration::from_nanos(1),
            ..Default::default()
        });
        let mib16 = 16 << 20;
        ok(DiskCheck {
            rate: 1.0,
            record_bytes: mib16,
            ..Default::default()
        });
        refused(DiskCheck {
            rate: 1.0,
            record_bytes: mib16 + 1,
            ..Default::default()
        });
        // 2^22 messages a second for 2048 s: 2^33 messages, 8 GiB at 1 byte.
        let big = DiskCheck {
            rate: (1u64 << 22) as f64,
            duration: Duration::from_secs(2048),
            record_bytes: 1,
            ..Default::default()
        };
        assert_eq!(big.file_bytes(), 8 << 30);
        ok(big.clone());
        refused(DiskCheck {
            record_bytes: 2,
            ..big
        });
    }

    #[test]
    fn prezero_writes_exactly_the_size_in_zeros() {
        let path = std::env::temp_dir().join(format!("mq-prezero-test-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("file");
        let size = (3 << 20) + 5;
        prezero(&file, size).expect("writes");
        let bytes = std::fs::read(&path).expect("reads");
        std::fs::remove_file(&path).expect("removes");
        assert_eq!(bytes.len(), size);
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(
            DiskCheck {
                record_bytes: 7,
                rate: 10.0,
                ..Default::default()
            }
            .file_bytes(),
            350
        );
    }

    #[test]
    fn the_report_reads_its_quantiles_and_prints_three_lines() {
        let r = DiskCheckReport {
            check: DiskCheck {
                rate: 100.0,
                record_bytes: 10,
                window: 5,
                ..Default::default()
            },
            latencies_us: (1..=1000).collect(),
            syncs_us: vec![40, 30, 20_000, 10],
            elapsed: Duration::from_millis(2500),
            bytes_written: 10_000,
        };
        assert_eq!(r.message_quantile(0.5), 501);
        assert_eq!(r.message_quantile(0.99), 991);
        assert_eq!(r.sync_quantile(0.5), 40);
        assert_eq!(r.sync_quantile(1.0), 20_000);
        assert_eq!(
            r.to_string(),
            "1000 messages of 10 B at 100/s (window 5): 4 fdatasyncs in 2.5 s\n\
             write+fdatasync   p50    40 us  p99    20 ms  p99.9    20 ms  max    20 ms\n\
             message latency   p50   501 us  p99   991 us  p99.9   1.0 ms  max   1.0 ms  \
             (arrival to durable: the floor under Stored)"
        );
    }

    #[test]
    fn quantiles_of_few_and_no_values() {
        assert_eq!(quantile(&[], 0.99), 0);
        assert_eq!(quantile(&[5], 0.0), 5);
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 100);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(micros(999), "999 us");
        assert_eq!(micros(1500), "1.5 ms");
        assert_eq!(micros(155_000), "155 ms");
    }
}
