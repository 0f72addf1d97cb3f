//! The journal's writer thread: group commit. (At low rates a connection
//! task writes a lone batch itself, see `commit`; one batch is in flight
//! at a time either way.)
//!
//! Connection tasks append records to the core's [`Appender`](super::Appender)
//! under the broker's lock and wake this thread. It takes *everything*
//! appended so far in one swap, writes it with one `write` and one
//! fdatasync outside the lock, then tells the core the new durable
//! position, which releases every reply and delivery of the batch at once.
//! While it syncs, new records pile up for the next batch, so under load
//! many messages share one fdatasync (RocketMQ's `GroupCommitService`, with
//! the lock-free swap done under the broker's existing lock).
//!
//! Records nothing waits for (acks, delivery counts, dead letters, group
//! creations) do not wake the thread: they ride with the next message's
//! batch, or are written after [`LAZY`] (20 ms) or [`LAZY_BYTES`] on their
//! own. A crash in that window loses them, which costs a redelivery, never
//! a message.
//!
//! After each batch's hand-off, if nothing waits for the journal yet, the
//! thread keeps zeros written ahead of the data ([`Log::prezero`]), so a
//! batch's fdatasync overwrites blocks instead of growing the file.
//!
//! A failed write (a full disk) keeps the batch and retries every
//! [`RETRY`]; meanwhile new messages are refused with `STORE_FULL`. A
//! failed fdatasync stops the broker: the kernel may have dropped the
//! pages, so retrying could report data durable that is not.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::log::{Log, WriteError};
use super::trace;
use crate::state::Shared;

/// Wait between attempts after a failed write.
pub(crate) const RETRY: Duration = Duration::from_millis(100);
/// Longest a record nobody waits for (an ack, a delivery count, a group)
/// stays in memory before it is written on its own.
pub(crate) const LAZY: Duration = Duration::from_millis(20);
/// Records nobody waits for are written at once past this many bytes.
pub(crate) const LAZY_BYTES: usize = 1 << 20;

/// What the flusher is asked to do (`Shared::journal_stop`).
pub(crate) const RUN: u8 = 0;
/// Write what is pending, write a checkpoint, return the log.
pub(crate) const STOP_CHECKPOINT: u8 = 1;
/// Return the log at once, dropping what is not yet written (a simulated
/// crash: nothing pending was acknowledged).
pub(crate) const STOP_NOW: u8 = 2;

/// What the flusher does next.
enum Job {
    /// Write the pending records (and a checkpoint if due, or when
    /// stopping with a checkpoint).
    Batch,
    /// Keep zeros ahead of the data (`Log::prezero`).
    Zeros,
    /// Stop at once, dropping what is pending.
    Stop,
}

/// Runs the flusher until asked to stop or the journal fails; returns the
/// log (taken out of `Shared::log`) so that a restart can reuse the
/// directory.
pub(crate) fn run(shared: Arc<Shared>) -> Option<Log> {
    let mut retry = false;
    let mut warned = false;
    loop {
        let mut st = shared.lock();
        let mut lazy_waited = false;
        let job = loop {
            let stop = shared.journal_stop.load(Ordering::Acquire);
            // Nothing starts while a connection writes a batch inline; it
            // wakes this thread when it is done.
            if !st.journal_busy {
                if stop != RUN {
                    trace::report();
                }
                if stop == STOP_NOW {
                    break Job::Stop;
                }
                if stop == STOP_CHECKPOINT {
                    break Job::Batch;
                }
                let pending = st.core.journal.as_ref().map_or(0, |j| j.buf.len());
                // Urgent: a reply or a delivery waits for these records, or
                // the buffer is large. Acks, deliveries and the like alone
                // wait up to LAZY for company (losing them costs a
                // redelivery only).
                let urgent = st.core.waits_for_journal() || pending >= LAZY_BYTES;
                if pending > 0 && !retry && (urgent || lazy_waited) {
                    break Job::Batch;
                }
                if st.prezero_due && !retry {
                    break Job::Zeros;
                }
            }
            let pending = st.core.journal.as_ref().map_or(0, |j| j.buf.len());
            st.flusher_idle = true;
            let timeout = if retry {
                Some(RETRY)
            } else if pending > 0 {
                Some(LAZY)
            } else {
                None
            };
            st.flusher_timed = timeout.is_some();
            st = match timeout {
                Some(t) => {
                    let (g, r) = shared
                        .flush_cv
                        .wait_timeout(st, t)
                        .unwrap_or_else(|e| e.into_inner());
                    if r.timed_out() {
                        retry = false;
                        lazy_waited = true;
                    }
                    g
                }
                None => shared.flush_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
            st.flusher_idle = false;
        };
        match job {
            Job::Stop => {
                if let Some(j) = st.core.journal.as_mut() {
                    j.buf.clear();
                }
                drop(st);
                return take_log(&shared);
            }
            Job::Zeros => {
                st.prezero_due = false;
                st.journal_busy = true;
                drop(st);
                let r = with_log(&shared, |log| (log.prezero(), log.counters()));
                let mut st = shared.lock();
                st.journal_busy = false;
                match r {
                    None => {}
                    Some((r, counters)) => {
                        if let Some(j) = st.core.journal.as_mut() {
                            j.zero_fills = counters.zero_fills;
                        }
                        match r {
                            Ok(_) => {}
                            Err(e @ WriteError::Write(_)) => {
                                tracing::warn!(error = %e, "journal: zeros ahead of the data not written");
                            }
                            Err(e @ WriteError::Sync(_)) => {
                                drop(st);
                                shared.fatal(e.to_string());
                                return take_log(&shared);
                            }
                        }
                    }
                }
                shared.after_change(&mut st);
                continue;
            }
            Job::Batch => {}
        }
        let stop = shared.journal_stop.load(Ordering::Acquire) == STOP_CHECKPOINT;
        let live = st.core.live_estimate();
        let Some(j) = st.core.journal.as_mut() else {
            drop(st);
            return take_log(&shared);
        };
        let want_checkpoint = stop || j.wants_checkpoint(live);
        let batch = std::mem::take(&mut j.buf);
        let target = j.appended;
        let traced = j.urgent_at.take().map(|a| (a, std::time::Instant::now()));
        let snapshot = want_checkpoint.then(|| {
            let mut s = Vec::with_capacity(live as usize + 64);
            st.core.snapshot(&mut s);
            s
        });
        st.journal_busy = true;
        drop(st);

        let started = std::time::Instant::now();
        let mut guard = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        // (Only this thread takes the log out, on its way out.)
        let log = guard.as_mut()?;
        match log.write(&batch) {
            Ok(()) => warned = false,
            Err(WriteError::Write(e)) => {
                drop(guard);
                if !warned {
                    tracing::error!(error = %e, "journal write failed; refusing new messages with STORE_FULL and retrying");
                    warned = true;
                }
                let mut st = shared.lock();
                st.journal_busy = false;
                if let Some(j) = st.core.journal.as_mut() {
                    let mut rest = std::mem::take(&mut j.buf);
                    j.buf = batch;
                    j.buf.append(&mut rest);
                    j.full = true;
                }
                drop(st);
                if stop {
                    return take_log(&shared);
                }
                retry = true;
                continue;
            }
            Err(e @ WriteError::Sync(_)) => {
                drop(guard);
                shared.fatal(e.to_string());
                return take_log(&shared);
            }
        }
        let took = started.elapsed();
        let io_done = std::time::Instant::now();
        let mut checkpointed = false;
        if let Some(s) = snapshot {
            match log
                .checkpoint(&s)
                .and_then(|()| if stop { log.seal() } else { Ok(()) })
            {
                Ok(()) => checkpointed = true,
                Err(e @ WriteError::Write(_)) => {
                    tracing::warn!(error = %e, "checkpoint not written; old segments kept")
                }
                Err(e @ WriteError::Sync(_)) => {
                    drop(guard);
                    shared.fatal(e.to_string());
                    return take_log(&shared);
                }
            }
        }
        let counters = log.counters();
        let prezero = log.needs_prezero();
        drop(guard);
        let mut st = shared.lock();
        let relocked = std::time::Instant::now();
        st.journal_busy = false;
        if let Some(j) = st.core.journal.as_mut() {
            j.wrote(counters);
            j.checkpoints += u64::from(checkpointed);
            j.write_micros += took.as_micros() as u64;
            j.writes += 1;
        }
        // The batch is handed off; zeros ahead of the data come next,
        // unless a reply already waits for the next batch (see
        // `Log::prezero`).
        st.prezero_due |= prezero;
        st.on_durable(target, Instant::now());
        shared.after_change(&mut st);
        if let Some((a, w)) = traced {
            use super::trace::us;
            let r = std::time::Instant::now();
            trace::record([
                us(a, w),
                us(started, io_done),
                us(io_done, relocked),
                us(relocked, r),
                us(a, r),
            ]);
        }
        if stop {
            drop(st);
            return take_log(&shared);
        }
    }
}

/// Runs `f` on the open log, if there still is one.
fn with_log<T>(shared: &Shared, f: impl FnOnce(&mut Log) -> T) -> Option<T> {
    let mut guard = shared.log.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_mut().map(f)
}

/// Takes the log out of `Shared::log` (the flusher is done with it).
fn take_log(shared: &Shared) -> Option<Log> {
    shared.log.lock().unwrap_or_else(|e| e.into_inner()).take()
}
