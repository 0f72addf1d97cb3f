//! The flusher thread on the simulated disk: an urgent batch is written at
//! once and zeros follow it, records nobody waits for wait for company (or
//! the lazy timer), a full disk is retried on the retry timer, and both
//! ways of stopping return the log.
//!
//! The thread runs on real time (its timers are a `Condvar`'s, which
//! tokio's paused clock does not drive), so a test never sleeps: it waits
//! for a state of `State` under the lock (the flusher asleep, and what it
//! did), with a deadline that turns a hang into a failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use mq_protocol::{Frame, Role, Subscribe};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::commit::tests::{check, connect, message, payload, shared_on};
use super::commit::{self, Inline};
use super::flusher::{self, STOP_CHECKPOINT, STOP_NOW};
use super::log::Log;
use super::sim::SimDisk;
use super::trace;
use crate::core::Core;
use crate::durable::{recover, Recovered};
use crate::state::{Out, Shared, State};
use crate::{BrokerConfig, DiskStorage};

/// How long a test waits for the flusher to get somewhere. It takes
/// microseconds (or a timer of 20 or 100 ms): the deadline only turns a
/// flusher that never sleeps, or never wakes, into a failure.
const DEADLINE: Duration = Duration::from_secs(10);

/// Held by every test that runs a flusher thread: a flusher prints and
/// clears the (process-wide) trace samples when it stops, which the trace
/// test below counts.
static ONE_FLUSHER: Mutex<()> = Mutex::new(());

/// Takes [`ONE_FLUSHER`] (also for `commit_tests`' threads).
pub(super) fn one_flusher() -> MutexGuard<'static, ()> {
    ONE_FLUSHER.lock().unwrap_or_else(|e| e.into_inner())
}

/// A flusher thread over `Shared`, and what it returns when it ends.
struct Running {
    _one: MutexGuard<'static, ()>,
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
    done: mpsc::Receiver<Option<Log>>,
}

impl Running {
    fn spawn(shared: &Arc<Shared>) -> Self {
        Self::spawn_logged(shared, tracing::Dispatch::none())
    }

    /// [`spawn`](Self::spawn), the thread logging to `log`.
    fn spawn_logged(shared: &Arc<Shared>, log: tracing::Dispatch) -> Self {
        let one = one_flusher();
        let (tx, done) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let returned = tracing::dispatcher::with_default(&log, || flusher::run(s));
            let _ = tx.send(returned);
        });
        Running {
            _one: one,
            shared: shared.clone(),
            thread,
            done,
        }
    }

    /// Waits until the flusher sleeps on its condition variable with `f`
    /// true, and returns the state, locked (so the flusher stays where it
    /// is until the caller lets go). Fails if the thread ended (returned
    /// or panicked) or at the deadline.
    fn asleep(&self, what: &str, f: impl Fn(&State) -> bool) -> MutexGuard<'_, State> {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let st = self.shared.lock();
            if st.flusher_idle && f(&st) {
                return st;
            }
            drop(st);
            assert!(
                !self.thread.is_finished(),
                "the flusher ended; it should be asleep: {what}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the flusher never went to sleep: {what}"
            );
            std::thread::yield_now();
        }
    }

    /// Asks the flusher to stop (`STOP_NOW` or `STOP_CHECKPOINT`) as
    /// `Flusher::stop` does and returns what it returned.
    fn stop(self, mode: u8) -> Option<Log> {
        self.shared.journal_stop.store(mode, Ordering::Release);
        {
            let _st = self.shared.lock();
            self.shared.flush_cv.notify_all();
        }
        self.done
            .recv_timeout(DEADLINE)
            .expect("the flusher stops (and does not panic)")
    }
}

/// A new group `g<n>` (on a topic of its own, so that no message is
/// delivered to it: deliveries would add records of their own).
/// Counts the ERROR events logged where it is the default subscriber.
struct Errors(Arc<AtomicUsize>);

impl tracing::Subscriber for Errors {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn subscribe(n: u32) -> Frame {
    Frame::Subscribe(Subscribe {
        sub_id: n,
        topic: "groups".into(),
        group: format!("g{n}"),
        credit: 10,
    })
}

/// The broker state a restart after a power loss now would recover.
fn recovered(disk: &SimDisk) -> Core {
    let d = DiskStorage::new("sim").segment_size(4 << 20);
    let config = BrokerConfig::default();
    let core = Core::new(&config, StdRng::seed_from_u64(1));
    let crashed = disk.crash(&mut StdRng::seed_from_u64(2));
    let Recovered { core, .. } = recover(Box::new(crashed), &d, &config, core).expect("recovers");
    core
}

#[test]
fn an_urgent_batch_is_written_at_once_then_zeros_ahead_then_the_flusher_sleeps_untimed() {
    let disk = SimDisk::default();
    // A device whose fdatasync takes 1 ms: the write's duration counts.
    disk.set_sync_delay(Duration::from_millis(1));
    let shared = shared_on(&disk);
    let (conn, mut rx) = connect(&shared, Role::Sender);
    let f = Running::spawn(&shared);
    let st = f.asleep("nothing to do", |_| true);
    assert!(!st.flusher_timed, "nothing pending: no timer");
    drop(st);

    // A message waits for its record: the flusher is woken and writes it
    // without waiting for company.
    let mut st = shared.lock();
    st.process(conn, [message(1, 0)], Instant::now());
    assert!(st.core.waits_for_journal());
    shared.after_change(&mut st);
    drop(st);
    let st = f.asleep("the batch written", |_| true);
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.buf.is_empty());
    assert_eq!(j.durable, j.appended);
    assert_eq!((j.writes, j.checkpoints), (1, 0));
    assert!(
        j.write_micros >= 1000,
        "{} us counted for a write of 1 ms",
        j.write_micros
    );
    // Then, off the critical path, zeros ahead of the data (the fresh
    // segment had none), and a sleep with no timer.
    assert_eq!(j.zero_fills, 1, "zeros written ahead once");
    assert!(!st.prezero_due);
    assert!(!st.flusher_timed);
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);
    assert!(f.stop(STOP_NOW).is_some(), "the log comes back");
}

#[test]
fn records_nobody_waits_for_wait_for_company_or_the_lazy_timer() {
    let disk = SimDisk::default();
    let shared = shared_on(&disk);
    let (sender, mut rx) = connect(&shared, Role::Sender);
    let (recv, _recv_rx) = connect(&shared, Role::Receiver);
    let f = Running::spawn(&shared);
    drop(f.asleep("nothing to do", |_| true));

    // A group created: nobody waits for its record. The flusher, woken,
    // sleeps on its lazy timer with the record pending. (Were this thread
    // slow to look, 20 ms, the timer wrote it meanwhile: try again.)
    let mut company = None;
    let mut groups = 0;
    for n in 0..5 {
        groups += 1;
        let mut st = shared.lock();
        let writes = st.core.journal.as_ref().unwrap().writes;
        st.process(recv, [subscribe(n)], Instant::now());
        assert!(!st.core.waits_for_journal());
        assert!(!st.core.journal.as_ref().unwrap().buf.is_empty());
        shared.after_change(&mut st);
        drop(st);
        let st = f.asleep("after the group's record", |_| true);
        let j = st.core.journal.as_ref().unwrap();
        if j.buf.is_empty() {
            assert_eq!(j.writes, writes + 1, "written alone, by the timer");
            continue;
        }
        assert_eq!(j.writes, writes, "not written yet");
        assert!(st.flusher_timed, "a pending record starts the lazy timer");
        company = Some(st);
        break;
    }
    let mut st = company.expect("the flusher never waited for company: it wrote at once");

    // A message now: its connection writes it inline, the group's record
    // with it, while the flusher sleeps; the lazy timer then finds
    // nothing left and writes no (empty) batch.
    let writes = st.core.journal.as_ref().unwrap().writes;
    st.process(sender, [message(1, 0)], Instant::now());
    let (st, r) = commit::inline(&shared, st);
    assert_eq!(r, Inline::Durable);
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);
    let st = f.asleep("the lazy timer's end", |st| !st.flusher_timed);
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.buf.is_empty());
    assert_eq!(j.writes, writes + 1, "the inline write only");
    drop(st);

    // A group record alone, nothing else coming: the lazy timer writes it.
    let mut st = shared.lock();
    st.process(recv, [subscribe(9)], Instant::now());
    groups += 1;
    shared.after_change(&mut st);
    drop(st);
    let st = f.asleep("the lazy write", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.buf.is_empty())
    });
    let j = st.core.journal.as_ref().unwrap();
    assert_eq!(j.writes, writes + 2);
    assert_eq!(j.durable, j.appended);
    assert!(!st.flusher_timed);
    drop(st);
    assert!(f.stop(STOP_NOW).is_some());
    assert_eq!(recovered(&disk).group_count(), groups);
}

#[test]
fn a_failed_write_keeps_the_batch_and_is_retried_on_the_retry_timer() {
    let disk = SimDisk::default();
    let shared = shared_on(&disk);
    let (conn, mut rx) = connect(&shared, Role::Sender);
    let errors = Arc::new(AtomicUsize::new(0));
    let f = Running::spawn_logged(&shared, tracing::Dispatch::new(Errors(errors.clone())));
    drop(f.asleep("nothing to do", |_| true));

    disk.set_full(true);
    let mut st = shared.lock();
    st.process(conn, [message(1, 0)], Instant::now());
    shared.after_change(&mut st);
    drop(st);
    // The write fails: the batch is kept, new messages are refused, and
    // the flusher sleeps until its retry timer (no busy retrying).
    let st = f.asleep("the failed write", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.full)
    });
    let j = st.core.journal.as_ref().unwrap();
    assert!(!j.buf.is_empty(), "kept for the retry");
    assert_eq!(j.writes, 0);
    assert!(st.flusher_timed, "the retry timer");
    drop(st);
    assert_eq!(check(&disk, &mut rx), 0);
    assert_eq!(errors.load(Ordering::SeqCst), 1, "the failure logged");

    // Room again: the retry writes the batch and releases the reply.
    disk.set_full(false);
    let st = f.asleep("the retried write", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.buf.is_empty())
    });
    let j = st.core.journal.as_ref().unwrap();
    assert!(!j.full);
    assert_eq!(j.writes, 1);
    assert_eq!(j.durable, j.appended);
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);

    // The disk fills again: a new run of failures is logged again.
    disk.set_full(true);
    let mut st = shared.lock();
    st.process(conn, [message(1, 1)], Instant::now());
    shared.after_change(&mut st);
    drop(st);
    drop(f.asleep("the second failed write", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.full)
    }));
    assert_eq!(errors.load(Ordering::SeqCst), 2, "the new failure logged");
    disk.set_full(false);
    drop(f.asleep("the second retried write", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.buf.is_empty())
    }));
    assert_eq!(check(&disk, &mut rx), 1);
    assert!(f.stop(STOP_NOW).is_some());
}

/// What both ways of stopping are tested on: a sender, the flusher asleep
/// with nothing to do, one message appended without waking it, then the
/// stop with `mode`. Returns the disk, the state, what the sender was sent
/// and the log the flusher gave back.
fn stop_with_one_pending(mode: u8) -> (SimDisk, Arc<Shared>, UnboundedReceiver<Out>, Log) {
    let disk = SimDisk::default();
    let shared = shared_on(&disk);
    let (conn, rx) = connect(&shared, Role::Sender);
    let f = Running::spawn(&shared);
    drop(f.asleep("nothing to do", |_| true));
    let mut st = shared.lock();
    st.process(conn, [message(1, 0)], Instant::now());
    drop(st);
    let log = f.stop(mode).expect("the log comes back");
    (disk, shared, rx, log)
}

#[test]
fn stopping_with_a_checkpoint_writes_what_is_pending_and_a_checkpoint() {
    // Appended, the flusher not woken: the stop writes it.
    let (disk, shared, mut rx, log) = stop_with_one_pending(STOP_CHECKPOINT);
    assert_eq!(log.segments(), 1, "the checkpoint's segment alone");
    assert_eq!(log.tail_bytes(), 0, "nothing written after the checkpoint");
    drop(log);
    let st = shared.lock();
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.buf.is_empty());
    assert_eq!(j.durable, j.appended);
    assert_eq!((j.writes, j.checkpoints), (1, 1));
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);
    assert!(disk.synced_contains(&payload(1, 0)));
    assert_eq!(recovered(&disk).stats().stored_messages, 1);
}

#[test]
fn stopping_now_drops_what_is_pending() {
    let (disk, shared, mut rx, log) = stop_with_one_pending(STOP_NOW);
    assert_eq!(log.segments(), 1);
    drop(log);
    let st = shared.lock();
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.buf.is_empty(), "dropped");
    assert!(j.durable < j.appended);
    assert_eq!((j.writes, j.checkpoints), (0, 0));
    drop(st);
    assert_eq!(check(&disk, &mut rx), 0);
    assert!(!disk.synced_contains(&payload(1, 0)));
    assert_eq!(recovered(&disk).stats().stored_messages, 0);
}

#[test]
fn the_trace_is_reported_when_the_flusher_stops_not_while_it_runs() {
    if trace::on() {
        // MQ_JOURNAL_TRACE is set: every batch of every test records a
        // sample, so none can be counted here.
        return;
    }
    let disk = SimDisk::default();
    let shared = shared_on(&disk);
    let (conn, mut rx) = connect(&shared, Role::Sender);
    let f = Running::spawn(&shared);
    drop(f.asleep("nothing to do", |_| true));
    // A traced batch's sample (tracing is off in tests: recorded by hand).
    trace::record([1, 2, 3, 4, 5]);
    let mut st = shared.lock();
    st.process(conn, [message(1, 0)], Instant::now());
    shared.after_change(&mut st);
    drop(st);
    drop(f.asleep("the batch written", |st| {
        st.core.journal.as_ref().is_some_and(|j| j.buf.is_empty())
    }));
    assert_eq!(check(&disk, &mut rx), 1);
    assert_eq!(trace::samples(), 1, "kept while the flusher runs");
    assert!(f.stop(STOP_NOW).is_some());
    assert_eq!(trace::samples(), 0, "printed (and cleared) at the stop");
}
