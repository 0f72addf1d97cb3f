//! The driver: one task that owns the connection, runs the handler calls
//! and the dedup store calls, and feeds the sans-IO [`RecvCore`] (credit,
//! in-progress table, settling, dedup decision) with what they produce.
//!
//! # Layout
//!
//! One `select!` loop; every branch only *computes* (frames to write go to
//! `outbox`). After each wake-up the outbox is encoded into the
//! connection's write buffer, which is written *inside* the `select!` by
//! the same branch that reads ([`io`]): a socket whose peer stops reading
//! stalls only the writes, never the reads (nor events, handler results and
//! timers). A write buffer that makes no progress for the write limit
//! (three heartbeats, at least `connect_timeout`) drops the connection.
//! Reading a frame, writing buffered bytes, receiving an event, reaping a
//! handler call and polling the connect attempt are cancel safe.
//!
//! The driver keeps only what needs I/O or a clock: the connection and its
//! heartbeat, reconnecting, the handler calls (polled in this task, see
//! `handlers`), the store calls (a ready answer is given to the core
//! inline; a pending one goes to `store_ops`
//! and is polled in the `select!` like the connection) and the shutdown.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use mq_conn::{ConnectionEvent, Dialer, Events, Heartbeat, HeartbeatAction, Reconnect};
use mq_protocol::{Close, ErrorCode, Frame, MessageId, Ping, Pong};
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{AckMode, ReceiverConfig};
use crate::conn::{connect_round, Conn};
use crate::delivery::Event;
use crate::error::{ConnectError, RecvError};
use crate::handler::RecvCallback;
use crate::recv_core::RecvCore;
use crate::stats::Counters;
use crate::store::{DedupStore, StoreError};

mod handlers;
mod settle;

use handlers::Handlers;

pub use crate::recv_core::CREDIT_FLUSH_DELAY;

/// The dedup store's [`DedupStore::expire`] runs at least this often (and at
/// least four times per `idle_expiry`).
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

/// Most ready items (handler results, events, frames) handled after one
/// wake-up before the outbox is written.
const DRAIN_BATCH: usize = 256;

pub(crate) enum Dispatch {
    Handler {
        handler: Arc<dyn RecvCallback>,
        /// At most this many calls at a time.
        max_concurrency: usize,
    },
    Stream(Option<mpsc::UnboundedSender<crate::delivery::Delivery>>),
}

struct Live {
    conn: Conn,
    /// When to ping, when the broker is dead (mq-conn's rule).
    heartbeat: Heartbeat,
    /// The write buffer holds bytes (or the transport a flush) to push.
    flushing: bool,
    /// Queued bytes must make progress by then (each write that takes
    /// some pushes it `write_limit` further).
    write_deadline: Option<Instant>,
    /// How long queued bytes may make no progress: three heartbeats, at
    /// least `connect_timeout`.
    write_limit: Duration,
    /// A `Close` is queued: read nothing more, drop once it is written
    /// (the reason, for the `Lost` event).
    closing: Option<String>,
}

/// What the connection did.
enum IoEvent {
    Read(Option<Result<Frame, mq_protocol::ProtocolError>>),
    /// The write buffer holding a `Close` is empty and flushed.
    Flushed,
    WriteFailed(mq_protocol::ProtocolError),
}

struct Shutdown {
    deadline: Instant,
    reply: Option<oneshot::Sender<Result<(), RecvError>>>,
}

/// A dedup store call that did not answer at once, finished.
pub(super) enum StoreDone {
    /// `contains` for the core's lookup `token` of `d`.
    Lookup {
        d: Box<mq_protocol::Deliver>,
        token: u64,
        result: Result<bool, StoreError>,
    },
    /// `insert` of an acked ID.
    Marked {
        id: MessageId,
        result: Result<(), StoreError>,
    },
    /// `expire`.
    Expired(Result<(), StoreError>),
}

type Connecting = BoxFuture<'static, Result<Conn, ConnectError>>;

pub(crate) struct Driver {
    pub config: Arc<ReceiverConfig>,
    pub dialer: Dialer,
    pub events: Events,
    pub store: Arc<dyn DedupStore>,
    pub counters: Arc<Counters>,
    pub events_rx: mpsc::UnboundedReceiver<Event>,
    pub events_tx: mpsc::UnboundedSender<Event>,
    pub dispatch: Dispatch,
    pub mode: AckMode,
    pub rng: SmallRng,
}

struct State {
    d: Driver,
    core: RecvCore,
    /// The handler calls (handler mode only), polled in this task.
    handlers: Option<Handlers>,
    /// Dedup store calls still running (only for a store that does I/O).
    store_ops: FuturesUnordered<BoxFuture<'static, StoreDone>>,
    /// An `expire` is among `store_ops`: do not start another.
    expiring: bool,
    live: Option<Live>,
    connecting: Option<Connecting>,
    /// When the next connect round starts (mq-conn's rule).
    reconnect: Reconnect,
    outbox: Vec<Frame>,
    /// Write the outbox (a `Close`), then drop the connection (why).
    close_after_write: Option<String>,
    next_expire: Instant,
    shutdown: Option<Shutdown>,
}

impl Driver {
    /// Runs until shutdown, starting from an established connection.
    pub(crate) async fn run(self, first: Conn) {
        let core = RecvCore::new(
            crate::recv_core::CoreConfig {
                prefetch: self.config.prefetch,
                mode: self.mode,
                subs: crate::conn::sub_count(&self.config),
            },
            self.counters.clone(),
        );
        let reconnect = Reconnect::new(self.config.reconnect);
        let handlers = match &self.dispatch {
            Dispatch::Handler {
                handler,
                max_concurrency,
            } => Some(Handlers::new(
                handler.clone(),
                *max_concurrency,
                self.counters.clone(),
            )),
            Dispatch::Stream(_) => None,
        };
        let mut s = State {
            d: self,
            core,
            handlers,
            store_ops: FuturesUnordered::new(),
            expiring: false,
            live: None,
            connecting: None,
            reconnect,
            outbox: Vec::new(),
            close_after_write: None,
            next_expire: Instant::now(),
            shutdown: None,
        };
        s.on_connected(first);
        s.pump();
        s.queue_outbox();
        s.run().await;
    }
}

/// Writes what is buffered and reads the next frame, whichever is ready
/// first; pending forever without a connection. Cancel safe: a write
/// that did not complete leaves its bytes in the buffer.
async fn io(live: &mut Option<Live>) -> IoEvent {
    let Some(l) = live else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        if l.flushing {
            let queued = l.conn.framed.write_buffer().len();
            match SinkExt::<Frame>::poll_flush_unpin(&mut l.conn.framed, cx) {
                Poll::Ready(Ok(())) => {
                    l.flushing = false;
                    l.write_deadline = None;
                    // Only a written `Close` needs a turn of the loop; else
                    // go on reading (one wake-up less per write).
                    if l.closing.is_some() {
                        return Poll::Ready(IoEvent::Flushed);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(IoEvent::WriteFailed(e)),
                Poll::Pending => {
                    if l.conn.framed.write_buffer().len() < queued {
                        // Slow, not stuck.
                        l.write_deadline = Some(Instant::now() + l.write_limit);
                    }
                }
            }
        }
        if l.closing.is_some() {
            return Poll::Pending;
        }
        l.conn.framed.poll_next_unpin(cx).map(IoEvent::Read)
    })
    .await
}

/// The next finished handler call; `None` at once without handlers or
/// calls. Cancel safe.
async fn next_done(h: &mut Option<Handlers>) -> Option<handlers::Done> {
    match h {
        Some(h) => std::future::poll_fn(|cx| h.poll_next(cx)).await,
        None => None,
    }
}

async fn connecting(c: &mut Option<Connecting>) -> Result<Conn, ConnectError> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl State {
    /// No handler call running or waiting.
    fn handlers_idle(&self) -> bool {
        self.handlers.as_ref().is_none_or(Handlers::is_empty)
    }

    async fn run(mut self) {
        loop {
            if let Some(sd) = &self.shutdown {
                let idle = self.core.in_progress() == 0 && self.handlers_idle();
                if idle || Instant::now() >= sd.deadline {
                    break;
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                ev = io(&mut self.live) => self.on_io(ev),
                Some(ev) = self.d.events_rx.recv() => self.on_event(ev),
                Some((id, token, result)) = next_done(&mut self.handlers), if !self.handlers_idle() => {
                    self.on_task(id, token, result);
                }
                Some(done) = self.store_ops.next(), if !self.store_ops.is_empty() => {
                    self.on_store_done(done);
                }
                r = connecting(&mut self.connecting) => {
                    self.connecting = None;
                    match r {
                        Ok(conn) => self.on_connected(conn),
                        Err(e) => {
                            let now = Instant::now().into_std();
                            let (attempt, delay) = self.reconnect.on_failed(now, rand::Rng::gen(&mut self.d.rng));
                            tracing::warn!(error = %e, attempt, ?delay, "reconnect round failed");
                            self.d.events.emit(ConnectionEvent::Reconnecting { attempt, delay });
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.on_timers(),
            }
            self.drain_ready();
            self.pump();
            self.queue_outbox();
        }
        self.finish().await;
    }

    /// Handles, without waiting, what is already there (finished handler
    /// tasks, events, frames already read), up to [`DRAIN_BATCH`] items, so
    /// their acks and credit leave in one write instead of one write (and
    /// one system call) per frame. Every step is non-blocking and
    /// cancel-safe; the `select!` polls each source again before sleeping.
    fn drain_ready(&mut self) {
        for _ in 0..DRAIN_BATCH {
            // A `Close` is queued: it must be the last frame written.
            if self.close_after_write.is_some() {
                return;
            }
            let mut progressed = false;
            if !self.handlers_idle() {
                if let Some(Some((id, token, result))) =
                    next_done(&mut self.handlers).now_or_never()
                {
                    self.on_task(id, token, result);
                    progressed = true;
                }
            }
            if let Ok(ev) = self.d.events_rx.try_recv() {
                self.on_event(ev);
                progressed = true;
            }
            if !self.store_ops.is_empty() {
                if let Some(Some(done)) = self.store_ops.next().now_or_never() {
                    self.on_store_done(done);
                    progressed = true;
                }
            }
            if self.close_after_write.is_none() {
                if let Some(ev) = io(&mut self.live).now_or_never() {
                    self.on_io(ev);
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        at(self.core.poll_timeout().map(Instant::from_std));
        if let Some(l) = &self.live {
            at(l.write_deadline);
            // A ping is due an interval after the last frames were queued,
            // written yet or not (a stuck socket is the write deadline's
            // business; a ping queued behind it costs a few bytes). Sending
            // one moves the next, so this never spins.
            at(l.heartbeat.next_wake(true).map(Instant::from_std));
        }
        at(self.reconnect.next_wake().map(Instant::from_std));
        at(Some(self.next_expire));
        at(self.shutdown.as_ref().map(|s| s.deadline));
        wake
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if self
            .core
            .poll_timeout()
            .is_some_and(|t| t <= now.into_std())
        {
            self.core.handle_timeout(now.into_std());
        }
        if self
            .live
            .as_ref()
            .and_then(|l| l.write_deadline)
            .is_some_and(|t| t <= now)
        {
            self.disconnect("writes to the broker stalled");
        }
        if let Some(l) = &mut self.live {
            match l.heartbeat.poll(now.into_std(), true) {
                HeartbeatAction::PeerDead => {
                    tracing::warn!("no frame from the broker for 3 heartbeats; reconnecting");
                    self.outbox.clear();
                    self.outbox.push(Frame::Close(Close {
                        code: ErrorCode::HEARTBEAT_TIMEOUT,
                        reason: "idle".into(),
                    }));
                    self.close_after_write = Some("no frame for 3 heartbeat intervals".into());
                    return;
                }
                HeartbeatAction::SendPing { nonce } => {
                    self.outbox.push(Frame::Ping(Ping { nonce }));
                }
                HeartbeatAction::Idle => {}
            }
        }
        if self.reconnect.poll_start(now.into_std()) {
            self.start_connecting();
        }
        if self.next_expire <= now {
            let every = EXPIRE_INTERVAL.min(self.d.config.dedup.idle_expiry / 4);
            self.next_expire = now + every.max(Duration::from_millis(1));
            if !self.expiring {
                match self.d.store.expire(now.into_std()).into_ready() {
                    Ok(r) => self.on_store_done(StoreDone::Expired(r)),
                    Err(fut) => {
                        self.expiring = true;
                        self.store_ops.push(Box::pin(fut.map(StoreDone::Expired)));
                    }
                }
            }
        }
    }

    fn start_connecting(&mut self) {
        if self.shutdown.is_some() || self.connecting.is_some() {
            return;
        }
        tracing::debug!(
            failed_rounds = self.reconnect.failed_rounds(),
            "reconnecting"
        );
        self.connecting = Some(Box::pin(connect_round(
            self.d.config.clone(),
            self.d.dialer.clone(),
            self.d.events.clone(),
        )));
    }

    fn on_connected(&mut self, mut conn: Conn) {
        if self.shutdown.is_some() {
            return;
        }
        self.reconnect.on_connected();
        let early = std::mem::take(&mut conn.early);
        let now = Instant::now().into_std();
        let epoch = self.core.on_connected(now);
        tracing::info!(epoch, "subscribed");
        self.live = Some(Live {
            heartbeat: Heartbeat::new(conn.heartbeat, now),
            write_limit: self.write_limit(conn.heartbeat),
            conn,
            flushing: false,
            write_deadline: None,
            closing: None,
        });
        for d in early {
            self.on_deliver(d, now);
        }
    }

    /// Drops the connection and starts a reconnect round (unless shutting
    /// down).
    fn disconnect(&mut self, reason: &str) {
        let was_live = self.live.take().is_some();
        self.outbox.clear();
        self.core.on_disconnected();
        self.close_after_write = None;
        if was_live {
            tracing::warn!(
                reason,
                in_progress = self.core.in_progress(),
                "connection lost"
            );
            self.d.events.emit(ConnectionEvent::Lost {
                reason: reason.to_owned(),
            });
        }
        if self.shutdown.is_none() {
            self.reconnect.on_lost(Instant::now().into_std());
        }
    }

    fn on_io(&mut self, ev: IoEvent) {
        match ev {
            IoEvent::Read(r) => self.on_read(r),
            IoEvent::Flushed => {
                if let Some(why) = self.live.as_mut().and_then(|l| l.closing.take()) {
                    self.disconnect(&why);
                }
            }
            IoEvent::WriteFailed(e) => {
                self.disconnect(&format!("write to the broker failed: {e}"));
            }
        }
    }

    fn on_read(&mut self, r: Option<Result<Frame, mq_protocol::ProtocolError>>) {
        let frame = match r {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "bad frame from the broker; reconnecting");
                self.outbox.clear();
                self.outbox.push(Frame::Close(Close {
                    code: e.code(),
                    reason: e.to_string().chars().take(200).collect(),
                }));
                self.close_after_write = Some(format!("protocol error from the broker: {e}"));
                return;
            }
            None => {
                self.disconnect("the broker closed the connection");
                return;
            }
        };
        let now = Instant::now().into_std();
        if let Some(l) = &mut self.live {
            l.heartbeat.on_read(now);
        }
        match frame {
            Frame::Deliver(d) => self.on_deliver(d, now),
            Frame::Ping(p) => self.outbox.push(Frame::Pong(Pong { nonce: p.nonce })),
            Frame::Close(c) => {
                self.disconnect(&format!("the broker sent Close: {} {}", c.code, c.reason));
            }
            Frame::Pong(_) | Frame::SubscribeOk(_) | Frame::Extension { .. } => {}
            other => {
                tracing::warn!(frame = other.name(), "unexpected frame; reconnecting");
                self.outbox.push(Frame::Close(Close {
                    code: ErrorCode::UNEXPECTED_FRAME,
                    reason: format!("unexpected {} frame", other.name()),
                }));
                self.close_after_write = Some(format!("unexpected {} frame", other.name()));
            }
        }
    }
}

impl State {
    /// The write limit: how long queued bytes may make no progress.
    fn write_limit(&self, heartbeat: Option<Duration>) -> Duration {
        let t = self.d.config.connect_timeout;
        heartbeat.map_or(t, |hb| (hb * 3).max(t))
    }

    /// Encodes the outbox into the connection's write buffer; [`io`]
    /// writes it.
    fn queue_outbox(&mut self) {
        if self.live.is_none() {
            self.outbox.clear();
            return;
        }
        if self.outbox.is_empty() && self.close_after_write.is_none() {
            return;
        }
        let Some(l) = &mut self.live else {
            return;
        };
        let limit = l.write_limit;
        let now = Instant::now();
        let mut failed = None;
        for f in self.outbox.drain(..) {
            if let Err(e) = f.encode(l.conn.framed.write_buffer_mut()) {
                failed = Some(e);
                break;
            }
        }
        l.heartbeat.on_write(now.into_std());
        l.flushing = true;
        l.write_deadline.get_or_insert(now + limit);
        if let Some(why) = self.close_after_write.take() {
            l.closing = Some(why);
        }
        if let Some(e) = failed {
            self.disconnect(&format!("could not encode a frame: {e}"));
        }
    }

    /// Writes what is queued, bounded by the write limit (shutdown only).
    async fn write_outbox(&mut self) {
        self.queue_outbox();
        let Some(l) = &mut self.live else {
            return;
        };
        let deadline = l.write_deadline.unwrap_or_else(Instant::now);
        let framed = &mut l.conn.framed;
        let ok = matches!(
            tokio::time::timeout_at(deadline, SinkExt::<Frame>::flush(framed)).await,
            Ok(Ok(()))
        );
        l.flushing = false;
        l.write_deadline = None;
        if !ok {
            self.disconnect("writes to the broker stalled");
        } else if let Some(why) = l.closing.take() {
            self.disconnect(&why);
        }
    }

    async fn finish(mut self) {
        // Settle whatever finished in the meantime before giving up on the rest.
        while let Some(Some((id, token, result))) = next_done(&mut self.handlers).now_or_never() {
            self.on_task(id, token, result);
        }
        while let Ok(ev) = self.d.events_rx.try_recv() {
            if matches!(ev, Event::Settle { .. }) {
                self.on_event(ev);
            }
        }
        self.pump();
        self.write_outbox().await;
        let abandoned = self.core.in_progress();
        if let Some(h) = &mut self.handlers {
            h.abort_all();
        }
        if let Some(mut l) = self.live.take() {
            let close = Frame::Close(Close {
                code: ErrorCode::NORMAL,
                reason: "receiver shutting down".into(),
            });
            let framed = &mut l.conn.framed;
            let _ = tokio::time::timeout(self.d.config.connect_timeout, async {
                framed.send(close).await?;
                SinkExt::<Frame>::close(framed).await
            })
            .await;
        }
        if let Err(e) = self.d.store.flush().await {
            self.d.counters.store_error();
            tracing::warn!(error = %e, "dedup store flush failed");
        }
        let result = if abandoned == 0 {
            Ok(())
        } else {
            Err(RecvError::ShutdownTimeout { abandoned })
        };
        tracing::info!(abandoned, "receiver stopped");
        if let Some(reply) = self.shutdown.and_then(|mut s| s.reply.take()) {
            let _ = reply.send(result);
        }
    }
}
