//! The one task that owns the connection and the in-flight core.
//!
//! # Layout of the loop
//!
//! Each turn: fire due timers (core deadlines, heartbeat, reconnect, close
//! deadline), hand decided outcomes to their futures or the callback thread,
//! encode queued frames into the write buffer, then wait in ONE `select!` on:
//! a batch of commands, bytes to read, room to write, a connect attempt, the
//! single sleep until the next deadline. Every branch is cancel-safe
//! (`recv_many`, `read_buf`, `write_buf`, a pinned connect future that is
//! kept, a pinned `Sleep`); all work happens after the `select!` returns.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use mq_conn::{
    ConnectError, ConnectionEvent, Dialer, Established, Heartbeat, HeartbeatAction, Reconnect,
};
use mq_protocol::{Close, ErrorCode, Frame, MessageId, Ping, Pong};
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::callback::{CallbackOnce, Callbacks};
use crate::completion::CompletionTx;
use crate::flush::FlushTracker;
use crate::inflight::{CoreConfig, Inflight};
use crate::link::{self, ReadSide, WriteSide, WRITE_HIGH_WATER};
use crate::message::Wire;
use crate::sender::Shared;
use crate::{CloseReport, Receipt, SendError, SenderConfig};

mod finish;
mod ticket;

pub(crate) use ticket::{window_bytes, Ticket};

/// Commands taken from the channel per turn.
const BATCH: usize = 512;
/// Longest a goodbye `Close` to a broker we give up on may take to write.
const GOODBYE_LIMIT: Duration = Duration::from_millis(200);

/// Where an outcome goes. Both variants are one pointer: a [`Ticket`]
/// keeps either in one word.
pub(crate) enum Completion {
    Future(CompletionTx),
    Callback(Box<CallbackOnce>),
}

/// What travels over a [`PendingSend`](crate::PendingSend)'s channel: a
/// compact confirm (the ID is in the `PendingSend`) or a boxed error. It is
/// 16 bytes where `Result<Receipt, SendError>` is well over 100, and every
/// in-flight message's channel allocation holds one.
pub(crate) type Done = Result<Confirmed, Box<SendError>>;

/// A [`Receipt`] without its ID (see [`Done`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirmed {
    /// [`Receipt::elapsed`] in nanoseconds (saturating; 584 years).
    elapsed_ns: u64,
    attempts: u32,
    duplicate: bool,
}

impl Confirmed {
    pub(crate) fn new(r: &Receipt) -> Self {
        Self {
            elapsed_ns: u64::try_from(r.elapsed.as_nanos()).unwrap_or(u64::MAX),
            attempts: r.attempts,
            duplicate: r.duplicate,
        }
    }

    /// The receipt of message `id`.
    pub(crate) fn receipt(self, id: MessageId) -> Receipt {
        Receipt {
            id,
            attempts: self.attempts,
            elapsed: Duration::from_nanos(self.elapsed_ns),
            duplicate: self.duplicate,
        }
    }
}

/// Turns an outcome into what its channel carries.
pub(crate) fn done(result: Result<Receipt, Box<SendError>>) -> Done {
    result.map(|r| Confirmed::new(&r))
}

/// Window permits taken by accepted messages and not yet given back. The
/// hand-over `forget`s its permits and the driver gives back one count and
/// the message's [`window_bytes`]: no semaphore `Arc` per message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permits {
    pub(crate) count: usize,
    pub(crate) bytes: usize,
}

impl Permits {
    /// The permits of one message whose window share is `bytes`.
    pub(crate) fn one(bytes: u32) -> Self {
        Self {
            count: 1,
            bytes: bytes as usize,
        }
    }

    /// Adds `other`'s permits to these, to release them in one go.
    pub(crate) fn merge(&mut self, other: Permits) {
        self.count += other.count;
        self.bytes += other.bytes;
    }

    /// Gives the permits back to the window.
    pub(crate) fn release(self, shared: &Shared) {
        if self.count > 0 {
            shared.count.add_permits(self.count);
        }
        if self.bytes > 0 {
            shared.bytes.add_permits(self.bytes);
        }
    }
}

/// Releases permits when dropped: a callback's permits go back after the
/// callback returns, on the callback thread.
pub(crate) struct ReleaseOnDrop {
    pub(crate) shared: Arc<Shared>,
    pub(crate) permits: Permits,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        std::mem::take(&mut self.permits).release(&self.shared);
    }
}

/// What a handle asks of the driver.
pub(crate) enum Command {
    Send {
        msg: Wire,
        ticket: Ticket,
    },
    Flush(oneshot::Sender<()>),
    Close {
        deadline: Duration,
        reply: oneshot::Sender<CloseReport>,
    },
}

struct Closing {
    started: Instant,
    abandoned: Vec<MessageId>,
    deadline: Option<Instant>,
    replies: Vec<oneshot::Sender<CloseReport>>,
}

enum Event {
    Commands(usize),
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Connected(Result<Established, ConnectError>),
    Timer,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    cfg: Arc<SenderConfig>,
    core: Inflight<Ticket, SmallRng>,
    rx: mpsc::UnboundedReceiver<Command>,
    rx_open: bool,
    batch: Vec<Command>,
    callbacks: Callbacks,
    dialer: Dialer,
    rng: SmallRng,
    reader: Option<ReadSide>,
    writer: Option<WriteSide>,
    /// The live connection's heartbeat rule (`None` while disconnected).
    heartbeat: Option<Heartbeat>,
    connecting: Option<BoxFuture<'static, Result<Established, ConnectError>>>,
    reconnect: Reconnect,
    /// A connection was established before (the next is a reconnect).
    ever_connected: bool,
    flush: FlushTracker<oneshot::Sender<()>>,
    closing: Option<Closing>,
    /// Permits of the outcomes resolved this turn, released together at the
    /// end of [`Driver::deliver_outcomes`]: one semaphore update (and one
    /// lock) per turn instead of two per message.
    released: Permits,
}

fn std_now(t: Instant) -> std::time::Instant {
    t.into_std()
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        cfg: Arc<SenderConfig>,
        rx: mpsc::UnboundedReceiver<Command>,
        callbacks: Callbacks,
        dialer: Dialer,
        core_rng: SmallRng,
        rng: SmallRng,
        est: Option<Established>,
    ) -> Self {
        let core_cfg = CoreConfig {
            retry: cfg.retry,
            max_attempts: cfg.max_attempts,
            send_timeout: cfg.send_timeout,
            window: cfg.max_in_flight,
        };
        let cfg_reconnect = cfg.reconnect;
        let mut d = Self {
            shared,
            core: Inflight::new(core_cfg, core_rng),
            cfg,
            rx,
            rx_open: true,
            batch: Vec::with_capacity(BATCH),
            callbacks,
            dialer,
            rng,
            reader: None,
            writer: None,
            heartbeat: None,
            connecting: None,
            reconnect: Reconnect::new(cfg_reconnect),
            ever_connected: false,
            flush: FlushTracker::default(),
            closing: None,
            released: Permits::default(),
        };
        let now = Instant::now();
        match est {
            Some(est) => d.install(now, est),
            // Lazy connect: the first round starts at once, in the loop.
            None => d.reconnect.on_lost(now.into_std()),
        }
        d
    }

    /// Runs until closed (by `close` or by dropping every handle) and every
    /// accepted message has its outcome.
    pub(crate) async fn run(mut self) {
        let mut sleep = pin!(tokio::time::sleep_until(Instant::now()));
        loop {
            let now = Instant::now();
            self.on_time(now);
            self.fill_writes();
            self.deliver_outcomes();
            if self.close_finished(now) {
                break;
            }
            let wake = self.next_wake();
            if let Some(w) = wake {
                sleep.as_mut().reset(w);
            }
            let event = tokio::select! {
                n = self.rx.recv_many(&mut self.batch, BATCH), if self.rx_open => Event::Commands(n),
                r = link::read_some(self.reader.as_mut()) => Event::Read(r),
                w = link::write_some(self.writer.as_mut()) => Event::Wrote(w),
                c = connect_step(self.connecting.as_mut()) => Event::Connected(c),
                () = &mut sleep, if wake.is_some() => Event::Timer,
            };
            let now = Instant::now();
            match event {
                Event::Commands(0) => self.on_handles_gone(now),
                Event::Commands(_) => self.on_commands(now),
                Event::Read(Ok(0)) => self.lost(now, "broker closed the connection"),
                Event::Read(Ok(_)) => self.on_readable(now),
                Event::Read(Err(e)) => self.lost(now, &format!("read failed: {e}")),
                Event::Wrote(Ok(0)) => self.lost(now, "write returned 0"),
                Event::Wrote(Ok(_)) => {
                    if let Some(hb) = self.heartbeat.as_mut() {
                        hb.on_write(now.into_std());
                    }
                }
                Event::Wrote(Err(e)) => self.lost(now, &format!("write failed: {e}")),
                Event::Connected(r) => self.on_connect_result(now, r),
                Event::Timer => {}
            }
        }
        self.shutdown().await;
    }

    // ----- time -----

    fn on_time(&mut self, now: Instant) {
        self.core.handle_timeout(std_now(now));
        let write_idle = self.writer.as_ref().is_some_and(|w| w.buf.is_empty());
        let beat = match self.heartbeat.as_mut() {
            Some(hb) => hb.poll(std_now(now), write_idle),
            None => HeartbeatAction::Idle,
        };
        match beat {
            HeartbeatAction::PeerDead => self.abort_link(
                now,
                ErrorCode::HEARTBEAT_TIMEOUT,
                "no frame for 3 heartbeat intervals",
            ),
            HeartbeatAction::SendPing { nonce } => {
                if let Some(w) = self.writer.as_mut() {
                    let _ = w.push(&Frame::Ping(Ping { nonce }));
                }
            }
            HeartbeatAction::Idle => {}
        }
        if self.reconnect.poll_start(std_now(now)) {
            self.connecting = Some(self.dialer.connect_round(&self.cfg.addresses));
        }
        if let Some(c) = &self.closing {
            if c.deadline.is_some_and(|d| d <= now) && !self.core.is_empty() {
                tracing::info!(unresolved = self.core.len(), "close deadline reached");
                let ids = self.core.abandon_all();
                if let Some(c) = self.closing.as_mut() {
                    c.abandoned.extend(ids);
                }
            }
        }
    }

    fn next_wake(&mut self) -> Option<Instant> {
        let mut wake = self.core.poll_timeout().map(Instant::from_std);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if let Some(hb) = &self.heartbeat {
            // With bytes pending, the write branch wakes us; a ping is only
            // due on an idle writer (else a stuck socket would spin here).
            let write_idle = self.writer.as_ref().is_some_and(|w| w.buf.is_empty());
            consider(hb.next_wake(write_idle).map(Instant::from_std));
        }
        consider(self.reconnect.next_wake().map(Instant::from_std));
        consider(self.closing.as_ref().and_then(|c| c.deadline));
        wake
    }

    // ----- connection -----

    fn install(&mut self, now: Instant, est: Established) {
        let reconnect = self.ever_connected;
        self.ever_connected = true;
        self.heartbeat = Some(Heartbeat::new(
            mq_conn::heartbeat_interval(self.cfg.heartbeat, &est.welcome),
            std_now(now),
        ));
        // The codec never goes below 64 bytes; neither does the size check.
        let peer_max = self
            .cfg
            .max_frame_size
            .min(est.welcome.max_frame_size)
            .max(64);
        self.shared
            .set_peer_limits(peer_max, est.welcome.max_message_size);
        if reconnect {
            tracing::info!(address = %est.address, server = %est.welcome.server_name,
                resending = self.core.len(), "reconnected; re-sending every unconfirmed message");
        } else {
            tracing::info!(address = %est.address, server = %est.welcome.server_name, "connected");
        }
        let (r, w) = link::split(est, self.cfg.max_frame_size);
        self.reader = Some(r);
        self.writer = Some(w);
        self.reconnect.on_connected();
        if reconnect {
            self.shared
                .stats
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.metrics.reconnects.increment(1);
        }
        self.core.on_connected(std_now(now));
        // Frames that arrived right behind the Welcome.
        self.on_readable(now);
    }

    fn on_connect_result(&mut self, now: Instant, r: Result<Established, ConnectError>) {
        self.connecting = None;
        match r {
            Ok(est) => self.install(now, est),
            Err(e) => {
                let (attempt, delay) = self
                    .reconnect
                    .on_failed(std_now(now), rand::Rng::gen(&mut self.rng));
                tracing::warn!(error = %e, round = attempt, retry_in = ?delay, "reconnect failed");
                self.shared
                    .events
                    .emit(ConnectionEvent::Reconnecting { attempt, delay });
            }
        }
    }

    /// Queues a `Close` for the broker behind whatever is buffered.
    fn goodbye(&mut self, code: ErrorCode, reason: &str) {
        if let Some(w) = self.writer.as_mut() {
            let _ = w.push(&Frame::Close(Close {
                code,
                reason: reason.into(),
            }));
        }
    }

    /// Says why we give up on this connection, then drops it: the write
    /// side goes to a short-lived task that writes the `Close` (for at most
    /// `GOODBYE_LIMIT`), so the driver never waits on a broken peer.
    fn abort_link(&mut self, now: Instant, code: ErrorCode, why: &str) {
        self.goodbye(code, why);
        if let Some(w) = self.writer.take() {
            tokio::spawn(w.drain(GOODBYE_LIMIT));
        }
        self.lost(now, why);
    }

    fn lost(&mut self, now: Instant, why: &str) {
        if self.reader.is_none() && self.writer.is_none() {
            return;
        }
        tracing::warn!(
            reason = why,
            in_flight = self.core.len(),
            "connection lost; reconnecting"
        );
        self.reader = None;
        self.writer = None;
        self.heartbeat = None;
        self.core.on_disconnect();
        self.shared.events.emit(ConnectionEvent::Lost {
            reason: why.to_owned(),
        });
        self.reconnect.on_lost(std_now(now));
    }

    fn on_readable(&mut self, now: Instant) {
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.on_read(std_now(now));
        }
        loop {
            let Some(r) = self.reader.as_mut() else {
                return;
            };
            match r.decode() {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => return,
                Err(e) => {
                    self.abort_link(now, e.code(), &format!("protocol error from broker: {e}"));
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Reply(reply) => {
                self.core.handle_reply(std_now(now), reply);
            }
            Frame::Ping(p) => {
                if let Some(w) = self.writer.as_mut() {
                    let _ = w.push(&Frame::Pong(Pong { nonce: p.nonce }));
                }
            }
            Frame::Pong(_) | Frame::Extension { .. } => {}
            Frame::Close(c) => {
                let why = format!("broker sent Close: {}: {}", c.code, c.reason);
                self.lost(now, &why);
            }
            other => {
                let why = format!("unexpected {} frame from broker", other.name());
                self.abort_link(now, ErrorCode::UNEXPECTED_FRAME, &why);
            }
        }
    }

    /// Encodes queued messages into the write buffer, up to the high-water mark.
    fn fill_writes(&mut self) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let mut too_large: Vec<MessageId> = Vec::new();
        while w.buf.len() < WRITE_HIGH_WATER {
            let written = self.core.poll_transmit(|m| {
                if m.frame_size() > w.max_frame() || w.push_message(m).is_err() {
                    too_large.push(m.id);
                }
            });
            if written.is_none() {
                break;
            }
        }
        let max = w.max_frame();
        for id in too_large {
            self.core.fail_too_large(id, max);
        }
    }

    // ----- commands -----

    fn on_commands(&mut self, now: Instant) {
        let mut batch = std::mem::take(&mut self.batch);
        for cmd in batch.drain(..) {
            self.on_command(now, cmd);
        }
        self.batch = batch;
    }

    fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Send { msg, mut ticket } => {
                let _span = tracing::trace_span!("mq_send", id = %msg.id).entered();
                self.shared.metrics.accepted();
                ticket.set_index(self.flush.next_index());
                if let Err((msg, mut ticket)) = self.core.insert(std_now(now), msg, ticket) {
                    let id = msg.id;
                    let bytes = window_bytes(msg.frame_size());
                    let err = SendError::AlreadyInFlight {
                        id,
                        message: crate::OutgoingMessage::from_wire(msg, ticket.explicit()),
                    };
                    // The ID stays in flight for the earlier copy.
                    ticket.clear_explicit();
                    self.complete(id, ticket, bytes, Err(Box::new(err)));
                }
            }
            Command::Flush(tx) => self.flush.wait(tx),
            Command::Close { deadline, reply } => {
                let d = now.checked_add(deadline);
                let c = self.closing.get_or_insert(Closing {
                    started: now,
                    abandoned: Vec::new(),
                    deadline: d,
                    replies: Vec::new(),
                });
                c.deadline = match (c.deadline, d) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                c.replies.push(reply);
                tracing::info!(in_flight = self.core.len(), ?deadline, "closing");
            }
        }
    }

    /// Every handle is dropped: finish what is in flight, then stop.
    fn on_handles_gone(&mut self, now: Instant) {
        self.rx_open = false;
        self.closing.get_or_insert(Closing {
            started: now,
            abandoned: Vec::new(),
            deadline: None,
            replies: Vec::new(),
        });
    }
}

/// Polls the connect attempt in progress. Cancel-safe: the future is kept
/// in the driver and polled again next turn. Never completes without one.
async fn connect_step(
    c: Option<&mut BoxFuture<'static, Result<Established, ConnectError>>>,
) -> Result<Established, ConnectError> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
