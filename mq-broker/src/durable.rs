//! Wiring the disk storage into a running broker: lock the data directory,
//! recover the core from the journal, run the flusher thread, stop it.

use std::fs::{File, TryLockError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::Core;
use crate::journal::disk::{Disk, FsDisk};
use crate::journal::flusher::{self, RUN, STOP_CHECKPOINT, STOP_NOW};
use crate::journal::log::{Log, LogOptions, OpenError, Recovery};
use crate::journal::Appender;
use crate::state::Shared;
use crate::{BrokerConfig, BrokerError, DiskStorage};

/// A core rebuilt from a journal, and the journal, open for appending.
pub(crate) struct Recovered {
    pub(crate) core: Core,
    pub(crate) log: Log,
    pub(crate) report: Recovery,
    pub(crate) took: Duration,
}

/// The journal limit on disk for `d` under `config`.
fn max_disk_bytes(d: &DiskStorage, config: &BrokerConfig) -> u64 {
    d.max_disk_bytes
        .unwrap_or(2 * config.max_stored_bytes as u64 + 4 * d.segment_size)
}

/// Replays the journal on `disk` into `core` (fresh) and attaches the
/// journal's append side.
pub(crate) fn recover(
    disk: Box<dyn Disk>,
    d: &DiskStorage,
    config: &BrokerConfig,
    mut core: Core,
) -> Result<Recovered, OpenError> {
    let started = std::time::Instant::now();
    let now = Instant::now();
    let opts = LogOptions {
        segment_size: d.segment_size,
        repair: d.repair,
        prezero: LogOptions::prezero_for(d.segment_size),
    };
    let (mut log, report) = Log::open(disk, opts, |rec| core.apply(rec, now))?;
    core.finish_recovery();
    if !report.skipped.is_empty() || report.repaired_checkpoint {
        // Repaired: write the state as recovered into a fresh checkpoint
        // at once, so the damaged segments are gone and the next start
        // needs no repair.
        let mut snap = Vec::new();
        core.snapshot(&mut snap);
        log.checkpoint(&snap)
            .and_then(|()| log.seal())
            .map_err(|e| OpenError::Io {
                file: "(checkpoint after repair)".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        tracing::warn!("journal repaired: the recovered state was written as a new checkpoint");
    }
    core.journal = Some(Appender {
        max_disk_bytes: max_disk_bytes(d, config),
        disk_bytes: log.disk_bytes(),
        segments: log.segments() as u64,
        tail_bytes: log.tail_bytes(),
        segment_size: d.segment_size,
        ..Appender::default()
    });
    Ok(Recovered {
        core,
        log,
        report,
        took: started.elapsed(),
    })
}

/// Locks `d.data_dir` (creating it) for this process.
pub(crate) fn lock_dir(d: &DiskStorage) -> Result<File, BrokerError> {
    let dir = &d.data_dir;
    let io = |source| BrokerError::Storage {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(BrokerError::Locked { dir: dir.clone() }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Opens the data directory: lock, recover, log one line about it.
pub(crate) async fn open(
    d: &DiskStorage,
    config: &BrokerConfig,
    core: Core,
) -> Result<(Recovered, File), BrokerError> {
    let lock = lock_dir(d)?;
    let (d2, config2) = (d.clone(), config.clone());
    let rec = tokio::task::spawn_blocking(move || {
        recover(Box::new(FsDisk::new(&d2.data_dir)), &d2, &config2, core)
    })
    .await
    .map_err(|e| BrokerError::Journal {
        dir: d.data_dir.clone(),
        reason: format!("recovery task failed: {e}"),
    })?
    .map_err(|e| BrokerError::Journal {
        dir: d.data_dir.clone(),
        reason: e.to_string(),
    })?;
    let s = rec.core.stats();
    tracing::info!(
        dir = %d.data_dir.display(),
        messages = s.stored_messages,
        bytes = s.stored_bytes,
        groups = rec.core.group_count(),
        segments = rec.report.segments,
        records = rec.report.records,
        journal_bytes = rec.report.bytes,
        torn_tail_bytes = rec.report.truncated.as_ref().map_or(0, |t| t.2),
        skipped_ranges = rec.report.skipped.len(),
        ms = rec.took.as_millis() as u64,
        "recovered the journal"
    );
    Ok((rec, lock))
}

/// The running flusher thread; it owns the directory lock, so the lock is
/// released only once the thread is done with the files.
pub(crate) struct Flusher {
    thread: Option<JoinHandle<(Option<Log>, File)>>,
}

impl Flusher {
    pub(crate) fn spawn(shared: Arc<Shared>, log: Log, lock: File) -> Self {
        *shared.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(log);
        {
            // A flusher that stopped on a failed fdatasync left its batch
            // marked as in flight; the new journal starts with none.
            let mut st = shared.lock();
            st.journal_busy = false;
            st.prezero_due = false;
        }
        shared.journal_stop.store(RUN, Ordering::Release);
        let thread = std::thread::Builder::new()
            .name("mq-journal".into())
            .spawn(move || (flusher::run(shared), lock));
        match thread {
            Ok(t) => Flusher { thread: Some(t) },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the journal thread");
                Flusher { thread: None }
            }
        }
    }

    /// Asks the thread to stop (`checkpoint`: write what is pending and a
    /// checkpoint first; else drop what is pending, as a crash would) and
    /// waits for it.
    pub(crate) async fn stop(
        &mut self,
        shared: &Shared,
        checkpoint: bool,
    ) -> Option<(Option<Log>, File)> {
        let mode = if checkpoint {
            STOP_CHECKPOINT
        } else {
            STOP_NOW
        };
        shared.journal_stop.store(mode, Ordering::Release);
        {
            let _st = shared.lock();
            shared.flush_cv.notify_all();
        }
        let t = self.thread.take()?;
        tokio::task::spawn_blocking(move || t.join().ok())
            .await
            .ok()
            .flatten()
    }

    /// Asks the thread to stop without waiting (the broker was dropped).
    pub(crate) fn abandon(&mut self, shared: &Shared) {
        if self.thread.take().is_some() {
            shared.journal_stop.store(STOP_NOW, Ordering::Release);
            let _st = shared.lock();
            shared.flush_cv.notify_all();
        }
    }
}
