//! Writing a batch inline, on the connection task that appended it.
//!
//! At low rates every message is a batch of its own, and handing it to the
//! flusher thread costs two thread hops: the connection wakes the flusher
//! (on a busy 2-core machine it may wait for a time slice behind the
//! runtime's workers), and the flusher, done, wakes the writer tasks from
//! outside the runtime. Measured with the data directory on tmpfs, those
//! hops were most of the durable p99. So when no batch is being written
//! and the flusher sleeps, the connection task that appended a record
//! someone waits for writes and syncs the batch itself, then releases what
//! waited for it, with no thread hop at all.
//!
//! Group commit is kept: while any batch is being written
//! (`State::journal_busy`, by the flusher or inline), records pile up and
//! the next writer takes them all at once; only one batch is in flight at a
//! time, so batches reach the log in the order of their positions and a
//! position is reported durable only once everything before it was synced.
//! A batch that wants a checkpoint, a retry after a failed write, zeros
//! ahead of the data and stopping stay with the flusher thread.
//!
//! So does a batch larger than [`INLINE_MAX_BYTES`]: a batch that big means
//! records arrive faster than one at a time, and a connection task that
//! writes inline does not read its socket until the fdatasync returns, so
//! under load reading and syncing would take turns instead of overlapping.
//! Handed to the flusher, the sync runs while the connection reads the
//! next batch (docs/BENCHMARKS.md, round 8: durable publish+confirm went
//! from 47 % to 78 % of the in-memory broker's rate in the same run,
//! medians of 5 alternated pairs).

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use tokio::time::Instant;

use super::flusher::RUN;
use super::log::WriteError;
use super::trace;
use crate::state::{Shared, State};

/// What an inline write did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inline {
    /// Nothing written: no urgent records, or another writer is busy (it
    /// or the flusher takes them next).
    Skipped,
    /// A batch was written, synced and reported durable.
    Durable,
    /// The write failed (a full disk): the batch is back in the buffer and
    /// the flusher retries it.
    Failed,
    /// fdatasync failed: the broker stops.
    Fatal,
}

/// The largest batch a connection task writes inline: one 4 KiB page, about
/// 24 records of 128-byte messages. At 5,000 msgs/s a batch is one or two
/// records; a batch past this is left to the flusher (see the module doc).
/// A single message larger than this always goes to the flusher, whose
/// thread hop is small next to the sync of that many bytes.
pub(crate) const INLINE_MAX_BYTES: usize = 4096;

/// True if the caller may write the pending batch inline now.
fn ready(shared: &Shared, st: &State) -> bool {
    if st.journal_busy
        || !st.flusher_idle
        || shared.journal_stop.load(Ordering::Acquire) != RUN
        || !st.core.waits_for_journal()
    {
        return false;
    }
    st.core.journal.as_ref().is_some_and(|j| {
        !j.buf.is_empty()
            && j.buf.len() <= INLINE_MAX_BYTES
            && !j.full
            && !j.wants_checkpoint(st.core.live_estimate())
    })
}

/// Writes the pending batch inline if nobody else writes one and a reply
/// or delivery waits for it (see the module doc). Called with the state
/// lock held, after a connection's frames were processed; returns the lock
/// (released and taken again around the write) and what happened. The
/// caller then wakes the flusher as usual (`Shared::after_change_then_wake`):
/// records appended meanwhile, zeros ahead of the data.
pub(crate) fn inline<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
) -> (MutexGuard<'a, State>, Inline) {
    if !ready(shared, &st) {
        return (st, Inline::Skipped);
    }
    let Some(j) = st.core.journal.as_mut() else {
        return (st, Inline::Skipped);
    };
    let batch = std::mem::take(&mut j.buf);
    let target = j.appended;
    let traced = j.urgent_at.take().map(|a| (a, std::time::Instant::now()));
    st.journal_busy = true;
    drop(st);

    let started = std::time::Instant::now();
    let mut guard = shared.log.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = guard.as_mut().map(|log| {
        let r = log.write(&batch);
        (r, log.needs_prezero(), log.counters())
    });
    drop(guard);
    let took = started.elapsed();
    let io_done = std::time::Instant::now();

    let mut st = shared.lock();
    let relocked = std::time::Instant::now();
    st.journal_busy = false;
    let result = match outcome {
        Some((Ok(()), prezero, counters)) => {
            if let Some(j) = st.core.journal.as_mut() {
                j.wrote(counters);
                j.write_micros += took.as_micros() as u64;
                j.writes += 1;
            }
            st.prezero_due |= prezero;
            st.on_durable(target, Instant::now());
            if let Some((a, w)) = traced {
                let r = std::time::Instant::now();
                trace::record([
                    trace::us(a, w),
                    trace::us(started, io_done),
                    trace::us(io_done, relocked),
                    trace::us(relocked, r),
                    trace::us(a, r),
                ]);
            }
            Inline::Durable
        }
        Some((Err(WriteError::Write(e)), ..)) => {
            tracing::error!(error = %e, "journal write failed; refusing new messages with STORE_FULL and retrying");
            restore(&mut st, batch, true);
            Inline::Failed
        }
        None => {
            // The flusher stopped and took the log: nothing was written.
            restore(&mut st, batch, false);
            Inline::Skipped
        }
        Some((Err(e @ WriteError::Sync(_)), ..)) => {
            drop(st);
            shared.fatal(e.to_string());
            return (shared.lock(), Inline::Fatal);
        }
    };
    (st, result)
}

/// Puts a batch that was not written back in front of what was appended
/// since (`full`: the write failed, refuse new messages until the flusher's
/// retry succeeds).
fn restore(st: &mut State, mut batch: Vec<u8>, full: bool) {
    if let Some(j) = st.core.journal.as_mut() {
        batch.append(&mut j.buf);
        j.buf = batch;
        j.full |= full;
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
pub(crate) mod tests;
