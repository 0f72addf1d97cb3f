//! The shared state behind one lock: the sans-IO core, the writer queue of
//! every connection, and the fault layer between them.
//!
//! Connection tasks hand whole batches of decoded frames to
//! [`State::process`]; the frames the core produces are routed to the
//! writers (through the `from_broker` faults) before the lock is released.
//! No `.await` ever happens under the lock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::sync::{Condvar, Mutex, MutexGuard};

use mq_protocol::{Close, ErrorCode, Frame, Role, MAX_REASON_LEN};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::{out_cost, Core};
use crate::faults::{self, Delayed, Direction, Fate};
use crate::groups::ConnId;
use crate::{BrokerConfig, Faults};
use mq_protocol::hash::FastMap;

/// What a connection's writer task is asked to write.
#[derive(Debug)]
pub(crate) enum Out {
    /// Frames to write in this order, and what they cost against the
    /// queue's bound ([`out_cost`] summed). One dispatch hands a
    /// connection all its frames in one of these, so a batch of replies
    /// crosses to the writer task in one channel send, not one per frame.
    Frames(Vec<Frame>, usize),
    /// Write this, flush, and end the connection.
    Close(Close),
}

/// Whether a connection goes on after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Ended without a word (peer's Close, a cut, already gone).
    Closed,
    /// Ended with a `Close` frame to the peer: drain its input a little so
    /// the Close is not lost to a TCP reset.
    Closing,
}

/// Why a handshake is refused by the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    TooManyConnections,
    ShuttingDown,
}

/// One connection's output queue bound (PROTOCOL.md §7.1): the bytes queued
/// for its writer, shared by the state (adds), the writer (subtracts once
/// written) and the reader (waits while full).
#[derive(Debug)]
pub(crate) struct OutQueue {
    bytes: AtomicUsize,
    limit: usize,
    /// Deliveries to this connection were held back for want of room: the
    /// writer reports to the state once the queue drained below half.
    starved: AtomicBool,
    /// Wakes the reader waiting for the queue to drain below half.
    pub(crate) drained: Notify,
}

impl OutQueue {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            limit,
            starved: AtomicBool::new(false),
            drained: Notify::new(),
        }
    }

    /// True if the reader must wait before reading more.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes.load(SeqCst) >= self.limit
    }

    fn below_half(&self) -> bool {
        self.bytes.load(SeqCst) < self.limit / 2
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.bytes.load(SeqCst))
    }

    /// The writer wrote frames costing `n`. True if the state must be told
    /// (deliveries were held back and the queue is now below half).
    pub(crate) fn written(&self, n: usize) -> bool {
        let before = self.bytes.fetch_sub(n, SeqCst);
        let left = before.saturating_sub(n);
        if left < self.limit / 2 {
            // The reader waits only after it saw the queue full, so only a
            // write that crosses below half can be the one it waits for (a
            // stored permit covers a reader not yet parked). Not notifying
            // on every write saves a `Notify` round per wake-up.
            if before >= self.limit / 2 {
                self.drained.notify_one();
            }
            return self.starved.swap(false, SeqCst);
        }
        false
    }

    /// Bytes queued now.
    pub(crate) fn queued(&self) -> usize {
        self.bytes.load(SeqCst)
    }
}

#[derive(Debug)]
struct Writer {
    tx: mpsc::UnboundedSender<Out>,
    queue: Arc<OutQueue>,
    role: Role,
    /// Stops the reader (graceful close: the writer still flushes).
    stop: CancellationToken,
    /// Stops reader and writer at once, nothing more is written.
    kill: CancellationToken,
    frames_in: u64,
}

impl Writer {
    /// Queues one frame for the writer task, counting it against the bound.
    fn send(&self, frame: Frame) {
        let cost = out_cost(&frame);
        self.send_all(vec![frame], cost);
    }

    /// Queues `frames` (costing `cost`) for the writer task in one send.
    fn send_all(&self, frames: Vec<Frame>, cost: usize) {
        // Counted before the writer can see (and subtract) it.
        self.queue.bytes.fetch_add(cost, SeqCst);
        if self.tx.send(Out::Frames(frames, cost)).is_err() {
            self.queue.bytes.fetch_sub(cost, SeqCst);
        }
    }
}

/// Connections one dispatch gathers frames for at once; with more, the
/// gathered ones are handed over first (each connection's order holds).
const MAX_RUNS: usize = 16;

/// The frames of one dispatch, gathered per connection for a single
/// [`Writer::send_all`] each: in memory a message's `Reply` and its
/// `Deliver`s come out interleaved, and each connection still gets one
/// send per dispatch.
#[derive(Debug, Default)]
struct Runs(Vec<(ConnId, Vec<Frame>, usize)>);

impl Runs {
    fn push(&mut self, conn: ConnId, frame: Frame, writers: &FastMap<ConnId, Writer>) {
        let i = match self.0.iter().rposition(|r| r.0 == conn) {
            Some(i) => i,
            None => {
                if self.0.len() == MAX_RUNS {
                    self.flush(writers);
                }
                self.0.push((conn, Vec::new(), 0));
                self.0.len() - 1
            }
        };
        let run = &mut self.0[i];
        run.2 += out_cost(&frame);
        run.1.push(frame);
    }

    /// Hands the gathered frames to their writers (those still there).
    fn flush(&mut self, writers: &FastMap<ConnId, Writer>) {
        for (conn, frames, cost) in self.0.drain(..) {
            if let Some(w) = writers.get(&conn) {
                w.send_all(frames, cost);
            }
        }
    }
}

/// Truncates a reason to the protocol's limit on a char boundary.
pub(crate) fn reason(mut s: String) -> String {
    if s.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Everything mutable, behind [`Shared::lock`].
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) core: Core,
    pub(crate) faults: Faults,
    writers: FastMap<ConnId, Writer>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    delayed_seq: u64,
    /// Reused list of connections `dispatch` queued frames for.
    touched: Vec<ConnId>,
    /// The deadline the timer task sleeps until (None: no deadline).
    pub(crate) armed: Option<Instant>,
    max_connections: usize,
    next_conn: ConnId,
    shutting_down: bool,
    /// The journal's flusher waits on `Shared::flush_cv` (wake it when
    /// records are appended).
    pub(crate) flusher_idle: bool,
    /// The idle flusher wakes by itself soon (a lazy or retry timer).
    pub(crate) flusher_timed: bool,
    /// A batch (or a zero fill) is being written, by the flusher or inline
    /// by a connection task (`journal::commit`): nobody else may take the
    /// next one until it is reported durable, so batches reach the log in
    /// the order of their positions.
    pub(crate) journal_busy: bool,
    /// The current segment wants zeros written ahead of its data
    /// (`Log::prezero`), which the flusher does off the critical path.
    pub(crate) prezero_due: bool,
}

impl State {
    pub(crate) fn new(config: &BrokerConfig, core: Core) -> Self {
        Self {
            core,
            faults: config.faults,
            writers: FastMap::default(),
            delayed: BinaryHeap::new(),
            delayed_seq: 0,
            touched: Vec::new(),
            armed: None,
            max_connections: config.max_connections,
            next_conn: 0,
            shutting_down: false,
            flusher_idle: false,
            flusher_timed: false,
            journal_busy: false,
            prezero_due: false,
        }
    }

    /// Registers a connection past a valid `Hello`, within the limit.
    pub(crate) fn try_open(
        &mut self,
        role: Role,
        tx: mpsc::UnboundedSender<Out>,
        queue: Arc<OutQueue>,
        stop: CancellationToken,
        kill: CancellationToken,
    ) -> Result<ConnId, OpenError> {
        if self.shutting_down {
            return Err(OpenError::ShuttingDown);
        }
        if self.core.connections() >= self.max_connections {
            return Err(OpenError::TooManyConnections);
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.writers.insert(
            conn,
            Writer {
                tx,
                queue,
                role,
                stop,
                kill,
                frames_in: 0,
            },
        );
        self.core.open(conn, role);
        Ok(conn)
    }

    /// Processes a batch of frames read from `conn`.
    pub(crate) fn process(
        &mut self,
        conn: ConnId,
        frames: impl IntoIterator<Item = Frame>,
        now: Instant,
    ) -> Flow {
        let Some(role) = self.writers.get(&conn).map(|w| w.role) else {
            return Flow::Closed;
        };
        let active = !self.faults.is_none() && self.faults.roles.matches(role);
        for frame in frames {
            if let Frame::Close(c) = &frame {
                tracing::debug!(conn, code = %c.code, reason = %c.reason, "peer closed");
                self.close_conn(conn, None, now);
                return Flow::Closed;
            }
            let mut copies = 1;
            if active && faults::is_data(&frame) {
                match faults::decide(&self.faults.to_broker, self.core.rng()) {
                    Fate::Pass => {}
                    Fate::Drop => {
                        self.core.stats_mut().frames_dropped_by_faults += 1;
                        copies = 0;
                    }
                    Fate::Duplicate => {
                        self.core.stats_mut().frames_duplicated_by_faults += 1;
                        copies = 2;
                    }
                    Fate::Delay(d) => {
                        self.core.stats_mut().frames_delayed_by_faults += 1;
                        self.hold(now + d, conn, Direction::ToBroker, frame.clone());
                        copies = 0;
                    }
                }
            }
            let mut result = Ok(());
            if copies == 2 {
                result = self.core.handle_frame(conn, frame.clone(), now);
            }
            if copies > 0 && result.is_ok() {
                result = self.core.handle_frame(conn, frame, now);
            }
            if let Err(close) = result {
                tracing::debug!(conn, code = %close.code, reason = %close.reason, "closing");
                self.core.stats_mut().protocol_errors += 1;
                self.close_conn(conn, Some(close), now);
                return Flow::Closing;
            }
            if active && self.should_cut(conn) {
                self.core.stats_mut().connections_cut_by_faults += 1;
                self.kill_conn(conn, now);
                return Flow::Closed;
            }
        }
        self.dispatch(now);
        Flow::Continue
    }

    fn should_cut(&mut self, conn: ConnId) -> bool {
        let Some(w) = self.writers.get_mut(&conn) else {
            return false;
        };
        w.frames_in += 1;
        let after = self
            .faults
            .cut_after_frames
            .is_some_and(|n| w.frames_in >= n);
        after || faults::chance(self.faults.cut_probability, self.core.rng())
    }

    fn hold(&mut self, at: Instant, conn: ConnId, dir: Direction, frame: Frame) {
        self.delayed.push(Reverse(Delayed {
            at,
            seq: self.delayed_seq,
            conn,
            dir,
            frame,
        }));
        self.delayed_seq += 1;
    }

    /// Ends a connection: optionally writes `close` first; the core returns
    /// its unacked deliveries at once. Idempotent.
    pub(crate) fn close_conn(&mut self, conn: ConnId, close: Option<Close>, now: Instant) {
        self.dispatch(now);
        if let Some(w) = self.writers.remove(&conn) {
            if let Some(c) = close {
                let _ = w.tx.send(Out::Close(c));
            }
            w.stop.cancel();
        }
        self.core.close(conn, now);
        self.dispatch(now);
    }

    /// Cuts a connection abruptly: nothing more is written.
    fn kill_conn(&mut self, conn: ConnId, now: Instant) {
        if let Some(w) = self.writers.remove(&conn) {
            w.kill.cancel();
        }
        self.core.close(conn, now);
        self.dispatch(now);
    }

    /// Cuts every connection (crash); delayed frames are lost with them.
    pub(crate) fn crash(&mut self, now: Instant) {
        self.core.stats_mut().crashes += 1;
        for (_, w) in self.writers.drain() {
            w.kill.cancel();
        }
        self.delayed.clear();
        self.core.close_all(now);
        self.core.out.clear();
    }

    /// Closes every connection with `SHUTTING_DOWN` and refuses new ones.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        self.dispatch(now);
        for (_, w) in self.writers.drain() {
            let _ = w.tx.send(Out::Close(Close {
                code: ErrorCode::SHUTTING_DOWN,
                reason: "broker shutting down".into(),
            }));
            w.stop.cancel();
        }
        self.delayed.clear();
        self.core.close_all(now);
        self.core.out.clear();
    }

    /// Routes the core's output frames to the writers through the
    /// `from_broker` faults.
    fn dispatch(&mut self, now: Instant) {
        // Returning the credit of a dropped `Deliver` can release more
        // deliveries: keep going until the core has nothing more to send.
        while !self.core.out.is_empty() {
            self.dispatch_once(now);
        }
    }

    fn dispatch_once(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.core.out);
        let mut touched = std::mem::take(&mut self.touched);
        let faults_on = !self.faults.is_none();
        let mut runs = Runs::default();
        for (conn, frame) in out.drain(..) {
            let Some(w) = self.writers.get(&conn) else {
                continue;
            };
            if faults_on && self.faults.roles.matches(w.role) && faults::is_data(&frame) {
                if let Frame::Reply(r) = &frame {
                    if r.status.is_stored()
                        && faults::chance(self.faults.drop_reply_after_store, self.core.rng())
                    {
                        self.core.stats_mut().replies_dropped_after_store += 1;
                        continue;
                    }
                }
                match faults::decide(&self.faults.from_broker, self.core.rng()) {
                    Fate::Pass => {}
                    Fate::Drop => {
                        self.core.stats_mut().frames_dropped_by_faults += 1;
                        if let Frame::Deliver(d) = &frame {
                            self.core.return_credit(conn, d.sub_id, now);
                        }
                        continue;
                    }
                    Fate::Duplicate => {
                        self.core.stats_mut().frames_duplicated_by_faults += 1;
                        runs.push(conn, frame.clone(), &self.writers);
                    }
                    Fate::Delay(d) => {
                        self.core.stats_mut().frames_delayed_by_faults += 1;
                        self.delayed.push(Reverse(Delayed {
                            at: now + d,
                            seq: self.delayed_seq,
                            conn,
                            dir: Direction::FromBroker,
                            frame,
                        }));
                        self.delayed_seq += 1;
                        continue;
                    }
                }
            }
            runs.push(conn, frame, &self.writers);
            if touched.last() != Some(&conn) {
                touched.push(conn);
            }
        }
        runs.flush(&self.writers);
        if self.core.out.is_empty() {
            self.core.out = out; // keep the allocation
        }
        self.sync_rooms(touched, now);
    }

    /// Tells the core how much room the output queues that just received
    /// frames have left; marks the full ones so that their writers report
    /// when they drained.
    fn sync_rooms(&mut self, mut touched: Vec<ConnId>, now: Instant) {
        touched.sort_unstable();
        touched.dedup();
        for &conn in &touched {
            let Some(q) = self.writers.get(&conn).map(|w| w.queue.clone()) else {
                continue;
            };
            self.core.set_output_room(conn, q.room(), now);
            if self.core.output_full(conn) && !q.starved.swap(true, SeqCst) {
                self.core.stats_mut().output_full += 1;
                // The writer may have drained in between and missed the flag.
                if q.below_half() && q.starved.swap(false, SeqCst) {
                    self.core.set_output_room(conn, q.room(), now);
                }
            }
        }
        touched.clear();
        self.touched = touched; // keep the allocation
    }

    /// A writer drained its queue below half after deliveries to it were
    /// held back: deliver again.
    pub(crate) fn output_drained(&mut self, conn: ConnId, now: Instant) {
        if let Some(q) = self.writers.get(&conn).map(|w| w.queue.clone()) {
            self.core.set_output_room(conn, q.room(), now);
            self.dispatch(now);
        }
    }

    /// The journal made everything up to `lsn` durable: release the replies
    /// and deliveries that waited for it.
    pub(crate) fn on_durable(&mut self, lsn: u64, now: Instant) {
        self.core.on_durable(lsn, now);
        self.dispatch(now);
    }

    /// The next deadline of the core or of a delayed frame.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let d = self.delayed.peek().map(|Reverse(d)| d.at);
        match (self.core.poll_timeout(), d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due redeliveries and releases due delayed frames.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.dispatch(now);
        while self.delayed.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(d)) = self.delayed.pop() else {
                break;
            };
            match d.dir {
                Direction::ToBroker => {
                    if let Err(close) = self.core.handle_frame(d.conn, d.frame, now) {
                        self.core.stats_mut().protocol_errors += 1;
                        self.close_conn(d.conn, Some(close), now);
                    }
                }
                Direction::FromBroker => {
                    if let Some(w) = self.writers.get(&d.conn) {
                        w.send(d.frame);
                    }
                }
            }
        }
        self.dispatch(now);
    }

    /// True if the timer task must wake up because a deadline earlier than
    /// the one it sleeps on appeared.
    fn needs_wake(&mut self) -> bool {
        let next = self.poll_timeout();
        match (next, self.armed) {
            (Some(n), Some(a)) if n < a => {
                self.armed = Some(n);
                true
            }
            (Some(n), None) => {
                self.armed = Some(n);
                true
            }
            _ => false,
        }
    }
}

/// What every task of one broker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: BrokerConfig,
    state: Mutex<State>,
    pub(crate) timer_wake: Notify,
    pub(crate) changed: watch::Sender<()>,
    /// Cancelled by `crash`; every connection holds a child of the current one.
    crash: Mutex<CancellationToken>,
    /// Cancelled by `shutdown` or when the last handle is dropped.
    pub(crate) shutdown: CancellationToken,
    /// Wakes the journal's flusher thread.
    pub(crate) flush_cv: Condvar,
    /// The open journal (disk storage), written by the flusher thread or
    /// inline by a connection task; whoever writes holds
    /// `State::journal_busy` first, so this lock is never contended for
    /// long and never taken with the state lock held.
    pub(crate) log: Mutex<Option<crate::journal::log::Log>>,
    /// What the flusher is asked to do (`journal::flusher::RUN`, ...).
    pub(crate) journal_stop: AtomicU8,
    /// Why the broker stopped itself (a journal fdatasync failed).
    fatal: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(config: BrokerConfig, core: Core) -> Self {
        let state = State::new(&config, core);
        Self {
            config,
            state: Mutex::new(state),
            timer_wake: Notify::new(),
            changed: watch::Sender::new(()),
            crash: Mutex::new(CancellationToken::new()),
            shutdown: CancellationToken::new(),
            flush_cv: Condvar::new(),
            log: Mutex::new(None),
            journal_stop: AtomicU8::new(0),
            fatal: Mutex::new(None),
        }
    }

    /// Stops the broker for an error it cannot survive (the journal's
    /// fdatasync failed): logged, every connection closed, and the reason
    /// kept for [`Broker::fatal_error`](crate::Broker::fatal_error).
    pub(crate) fn fatal(&self, why: String) {
        tracing::error!(reason = %why, "broker stopping");
        *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.shutdown.cancel();
        self.cancel_connections();
        let mut st = self.lock();
        st.shutdown(Instant::now());
        self.after_change(&mut st);
    }

    /// The reason the broker stopped itself, if it did.
    pub(crate) fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Locks the state. A panic under the lock cannot leave the core
    /// half-updated in a way that matters more than the panic, so a poisoned
    /// lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token connections accepted now must watch.
    pub(crate) fn crash_token(&self) -> CancellationToken {
        self.crash.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Cancels every connection's token and starts a fresh one.
    pub(crate) fn cancel_connections(&self) {
        let mut t = self.crash.lock().unwrap_or_else(|e| e.into_inner());
        t.cancel();
        *t = CancellationToken::new();
    }

    /// Updates a counter outside of frame processing and wakes `wait_for`.
    pub(crate) fn count(&self, f: impl FnOnce(&mut crate::BrokerStats)) {
        let mut st = self.lock();
        f(st.core.stats_mut());
        self.after_change(&mut st);
    }

    /// Call after every change under the lock: wakes the timer task if a
    /// nearer deadline appeared and wakes `wait_for` callers.
    pub(crate) fn after_change(&self, st: &mut State) {
        if self.after_change_then_wake(st) {
            self.flush_cv.notify_one();
        }
    }

    /// [`after_change`](Self::after_change), except that the journal's
    /// flusher is not woken here: true if the caller must call
    /// `flush_cv.notify_one()` once it released the lock. The hot path
    /// (a connection's batch of frames) uses it so that the flusher thread,
    /// woken, does not run straight into the lock still held and sleep a
    /// second time (std's `Condvar` does not move waiters to the mutex): one
    /// futex wait and wake fewer per message at low rates, where every
    /// message wakes an idle flusher. Safe because the flusher re-checks
    /// under the lock: it cannot miss the wake-up of records appended
    /// before it waited.
    pub(crate) fn after_change_then_wake(&self, st: &mut State) -> bool {
        // Wake the flusher for urgent records, or to start the lazy timer
        // when it sleeps with nothing pending, or for zeros ahead of the
        // data, unless a batch is being written (its writer wakes the
        // flusher when it is done); and always when it is asked to stop.
        let stopping = self.journal_stop.load(std::sync::atomic::Ordering::Acquire)
            != crate::journal::flusher::RUN;
        let wake = st.flusher_idle
            && (stopping
                || (!st.journal_busy
                    && st.core.journal.as_ref().is_some_and(|j| {
                        st.prezero_due
                            || (!j.buf.is_empty()
                                && (!st.flusher_timed
                                    || j.buf.len() >= crate::journal::flusher::LAZY_BYTES
                                    || st.core.waits_for_journal()))
                    })));
        if wake {
            st.flusher_idle = false;
        }
        if st.needs_wake() {
            self.timer_wake.notify_one();
        }
        if self.changed.receiver_count() > 0 {
            self.changed.send_replace(());
        }
        wake
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
