//! The driver: one task that owns the connection, the in-progress table and
//! the credit, dispatches deliveries, settles them, reconnects.
//!
//! # Layout
//!
//! One `select!` loop; every branch only *computes* (frames to write go to
//! `outbox`), and the writes happen after the `select!`, so no branch is
//! cancelled halfway through a write. Reading a frame, receiving an event,
//! reaping a handler task and polling the connect attempt are cancel safe.
//!
//! # Bookkeeping
//!
//! * `in_progress`: IDs handed to the handler or the stream and not yet
//!   settled, each with the credit it holds on the current connection. A
//!   duplicate of an in-progress ID does not start a second call: it adds
//!   its credit to the entry and is settled with it.
//! * The dedup store: IDs acked. A delivery of one of them is acked at once.
//!   Its calls return a `StoreFuture`: a ready answer is used inline; a
//!   pending one goes to `store_ops` and is polled in the `select!` like
//!   the connection. While an ID's lookup or mark is pending it stays in
//!   `in_progress` (with a token no delivery holds), so a redelivery is
//!   tied to it and the `Ack` leaves only after the mark.
//! * Credit: one per `Deliver` frame, returned when that delivery is
//!   settled (or acked as a duplicate), batched in `Credit` frames of at
//!   least `prefetch / 4` or after [`CREDIT_FLUSH_DELAY`].

use mq_protocol::hash::FastMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use mq_protocol::{Close, Credit, Deliver, ErrorCode, Frame, MessageId, Ping, Pong};
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{AckMode, ReceiverConfig};
use crate::conn::{establish, Conn, Connector, SUB_ID};
use crate::delivery::{Delivery, Event};
use crate::error::{ConnectError, HandlerError, RecvError};
use crate::handler::RecvCallback;
use crate::stats::{bump, Counters};
use crate::store::{DedupStore, StoreError};

mod recent;
mod settle;

/// Owed credit is sent at the latest this long after it became owed.
pub const CREDIT_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// The dedup store's [`DedupStore::expire`] runs at least this often (and at
/// least four times per `idle_expiry`).
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

/// Most ready items (handler results, events, frames) handled after one
/// wake-up before the outbox is written.
const DRAIN_BATCH: usize = 256;

pub(crate) enum Dispatch {
    Handler {
        handler: Arc<dyn RecvCallback>,
        sem: Arc<Semaphore>,
    },
    Stream(Option<mpsc::UnboundedSender<Delivery>>),
}

struct InFlight {
    token: u64,
    /// Connection (epoch) the held credit belongs to.
    epoch: u64,
    /// `Deliver` frames of this ID on that connection, not yet given back.
    credits: u32,
    /// Highest `delivery_attempt` seen on that connection. A frame repeating
    /// it is a transport-level copy (the broker charged no credit for it).
    max_attempt: u32,
}

struct Live {
    conn: Conn,
    epoch: u64,
    last_recv: Instant,
    last_sent: Instant,
    owed: u32,
    flush_at: Option<Instant>,
    nonce: u64,
    recent: recent::Recent,
}

struct Shutdown {
    deadline: Instant,
    reply: Option<oneshot::Sender<Result<(), RecvError>>>,
}

type TaskResult = (MessageId, u64, Result<(), HandlerError>);

/// A dedup store call that did not answer at once, finished.
pub(super) enum StoreDone {
    /// `contains` for a delivery waiting in `in_progress` under `token`.
    Lookup {
        d: Box<Deliver>,
        token: u64,
        result: Result<bool, StoreError>,
    },
    /// `insert` of an acked ID waiting in `in_progress` under [`MARKING`].
    Marked {
        id: MessageId,
        result: Result<(), StoreError>,
    },
    /// `expire`.
    Expired(Result<(), StoreError>),
}

/// The token of an `in_progress` entry whose mark is being written: no
/// delivery holds it (tokens handed out start at 1).
pub(super) const MARKING: u64 = 0;
type Connecting = BoxFuture<'static, Result<Conn, ConnectError>>;

pub(crate) struct Driver {
    pub config: Arc<ReceiverConfig>,
    pub connector: Connector,
    pub store: Arc<dyn DedupStore>,
    pub counters: Arc<Counters>,
    pub events_rx: mpsc::UnboundedReceiver<Event>,
    pub events_tx: mpsc::UnboundedSender<Event>,
    pub dispatch: Dispatch,
    pub mode: AckMode,
    pub rng: SmallRng,
    /// Index of the address the current connection came from.
    pub addr_idx: usize,
}

struct State {
    d: Driver,
    in_progress: FastMap<MessageId, InFlight>,
    tasks: JoinSet<TaskResult>,
    /// Dedup store calls still running (only for a store that does I/O).
    store_ops: FuturesUnordered<BoxFuture<'static, StoreDone>>,
    /// An `expire` is among `store_ops`: do not start another.
    expiring: bool,
    next_token: u64,
    epoch: u64,
    live: Option<Live>,
    connecting: Option<Connecting>,
    reconnect_at: Option<Instant>,
    attempt: u32,
    outbox: Vec<Frame>,
    /// Write the outbox (a `Close`), then drop the connection.
    close_after_write: bool,
    next_expire: Instant,
    shutdown: Option<Shutdown>,
}

impl Driver {
    /// Runs until shutdown, starting from an established connection.
    pub(crate) async fn run(self, first: Conn) {
        let mut s = State {
            d: self,
            in_progress: FastMap::default(),
            tasks: JoinSet::new(),
            store_ops: FuturesUnordered::new(),
            expiring: false,
            next_token: 0,
            epoch: 0,
            live: None,
            connecting: None,
            reconnect_at: None,
            attempt: 0,
            outbox: Vec::new(),
            close_after_write: false,
            next_expire: Instant::now(),
            shutdown: None,
        };
        s.on_connected(first);
        s.write_outbox().await;
        s.run().await;
    }
}

async fn read(live: &mut Option<Live>) -> Option<Result<Frame, mq_protocol::ProtocolError>> {
    match live {
        Some(l) => l.conn.framed.next().await,
        None => std::future::pending().await,
    }
}

async fn connecting(c: &mut Option<Connecting>) -> Result<Conn, ConnectError> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl State {
    async fn run(mut self) {
        loop {
            if let Some(sd) = &self.shutdown {
                let idle = self.in_progress.is_empty() && self.tasks.is_empty();
                if idle || Instant::now() >= sd.deadline {
                    break;
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                r = read(&mut self.live) => self.on_read(r),
                Some(ev) = self.d.events_rx.recv() => self.on_event(ev),
                Some(res) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((id, token, result)) = res {
                        self.on_task(id, token, result);
                    }
                }
                Some(done) = self.store_ops.next(), if !self.store_ops.is_empty() => {
                    self.on_store_done(done);
                }
                r = connecting(&mut self.connecting) => {
                    self.connecting = None;
                    match r {
                        Ok(conn) => self.on_connected(conn),
                        Err(e) => {
                            tracing::warn!(error = %e, "reconnect failed");
                            self.d.addr_idx += 1;
                            self.schedule_reconnect();
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.on_timers(),
            }
            self.drain_ready();
            self.write_outbox().await;
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
            if self.close_after_write {
                return;
            }
            let mut progressed = false;
            if let Some(res) = self.tasks.try_join_next() {
                if let Ok((id, token, result)) = res {
                    self.on_task(id, token, result);
                }
                progressed = true;
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
            if !self.close_after_write {
                if let Some(r) = read(&mut self.live).now_or_never() {
                    self.on_read(r);
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
        if let Some(l) = &self.live {
            at(l.flush_at);
            if let Some(hb) = l.conn.heartbeat {
                at(Some(l.last_sent + hb));
                at(Some(l.last_recv + hb * 3));
            }
        }
        at(self.reconnect_at);
        at(Some(self.next_expire));
        at(self.shutdown.as_ref().map(|s| s.deadline));
        wake
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if let Some(l) = &mut self.live {
            if l.flush_at.is_some_and(|t| t <= now) {
                flush_credit(l, &mut self.outbox);
            }
            if let Some(hb) = l.conn.heartbeat {
                if now >= l.last_recv + hb * 3 {
                    tracing::warn!("no frame from the broker for 3 heartbeats; reconnecting");
                    self.outbox.clear();
                    self.outbox.push(Frame::Close(Close {
                        code: ErrorCode::HEARTBEAT_TIMEOUT,
                        reason: "idle".into(),
                    }));
                    self.close_after_write = true;
                    return;
                }
                if now >= l.last_sent + hb {
                    l.nonce += 1;
                    self.outbox.push(Frame::Ping(Ping { nonce: l.nonce }));
                }
            }
        }
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect_at = None;
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
        let addrs = &self.d.config.addresses;
        let addr = addrs[self.d.addr_idx % addrs.len()].clone();
        tracing::debug!(%addr, attempt = self.attempt, "reconnecting");
        self.connecting = Some(Box::pin(establish(
            self.d.config.clone(),
            self.d.connector.clone(),
            addr,
        )));
    }

    fn schedule_reconnect(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        self.attempt = self.attempt.saturating_add(1);
        let delay = self.d.config.reconnect.delay(self.attempt, &mut self.d.rng);
        self.reconnect_at = Some(Instant::now() + delay);
    }

    fn on_connected(&mut self, mut conn: Conn) {
        if self.shutdown.is_some() {
            return;
        }
        if self.epoch > 0 {
            bump(&self.d.counters.reconnects);
        }
        self.epoch += 1;
        self.attempt = 0;
        let early = std::mem::take(&mut conn.early);
        let now = Instant::now();
        tracing::info!(epoch = self.epoch, "subscribed");
        self.live = Some(Live {
            conn,
            epoch: self.epoch,
            last_recv: now,
            last_sent: now,
            owed: 0,
            flush_at: None,
            nonce: 0,
            recent: recent::Recent::new(4 * self.d.config.prefetch.max(16) as usize),
        });
        for d in early {
            self.on_deliver(d);
        }
    }

    fn disconnect(&mut self) {
        self.live = None;
        self.outbox.clear();
        self.close_after_write = false;
        self.schedule_reconnect();
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
                self.close_after_write = true;
                return;
            }
            None => {
                tracing::warn!("broker closed the connection; reconnecting");
                self.disconnect();
                return;
            }
        };
        if let Some(l) = &mut self.live {
            l.last_recv = Instant::now();
        }
        match frame {
            Frame::Deliver(d) => self.on_deliver(d),
            Frame::Ping(p) => self.outbox.push(Frame::Pong(Pong { nonce: p.nonce })),
            Frame::Close(c) => {
                tracing::warn!(code = %c.code, reason = %c.reason, "broker closed; reconnecting");
                self.disconnect();
            }
            Frame::Pong(_) | Frame::SubscribeOk(_) | Frame::Extension { .. } => {}
            other => {
                tracing::warn!(frame = other.name(), "unexpected frame; reconnecting");
                self.outbox.push(Frame::Close(Close {
                    code: ErrorCode::UNEXPECTED_FRAME,
                    reason: format!("unexpected {} frame", other.name()),
                }));
                self.close_after_write = true;
            }
        }
    }
}

impl State {
    async fn write_outbox(&mut self) {
        let Some(l) = &mut self.live else {
            self.outbox.clear();
            return;
        };
        if self.outbox.is_empty() && !self.close_after_write {
            return;
        }
        let limit = l
            .conn
            .heartbeat
            .map_or(self.d.config.connect_timeout, |hb| {
                (hb * 3).max(self.d.config.connect_timeout)
            });
        let frames = std::mem::take(&mut self.outbox);
        let framed = &mut l.conn.framed;
        let write = async {
            for f in frames {
                framed.feed(f).await?;
            }
            SinkExt::<Frame>::flush(framed).await
        };
        let ok = matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())));
        l.last_sent = Instant::now();
        if !ok || std::mem::take(&mut self.close_after_write) {
            if !ok {
                tracing::warn!("write to the broker failed; reconnecting");
            }
            self.disconnect();
        }
    }

    async fn finish(mut self) {
        // Settle whatever finished in the meantime before giving up on the rest.
        while let Some(res) = self.tasks.try_join_next() {
            if let Ok((id, token, result)) = res {
                self.on_task(id, token, result);
            }
        }
        while let Ok(ev) = self.d.events_rx.try_recv() {
            if matches!(ev, Event::Settle { .. }) {
                self.on_event(ev);
            }
        }
        self.write_outbox().await;
        let abandoned = self.in_progress.len();
        self.tasks.abort_all();
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
            bump(&self.d.counters.store_errors);
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

fn flush_credit(l: &mut Live, outbox: &mut Vec<Frame>) {
    if l.owed > 0 {
        outbox.push(Frame::Credit(Credit {
            sub_id: SUB_ID,
            credit: l.owed,
        }));
    }
    l.owed = 0;
    l.flush_at = None;
}
