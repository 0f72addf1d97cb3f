//! [`Sender`], the cloneable handle, and [`PendingSend`], the second stage
//! of a send.
//!
//! A hand-over validates the message, takes its window permits (count and
//! bytes), picks its ID and passes it to the driver over an unbounded
//! channel, which is bounded in practice by the permits. All checks happen
//! before a slot is taken.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use mq_protocol::{MessageId, MAX_TOPIC_LEN};
use tokio::sync::{mpsc, oneshot, Semaphore, TryAcquireError};
use tracing::Instrument;

use mq_conn::Events;

use crate::callback::CallbackOnce;
use crate::completion::{self, CompletionRx, Stopped};
use crate::driver::{window_bytes, Command, Completion, Permits, Ticket};
use crate::message::Wire;
use crate::metrics::Metrics;
use crate::stats::Stats;
use crate::{
    Backpressure, CloseReport, ConnectError, FlushError, OutgoingMessage, Receipt, SendCallback,
    SendError, SenderConfig, SenderStats,
};

/// State shared by every handle and the driver.
pub(crate) struct Shared {
    pub(crate) cfg: Arc<SenderConfig>,
    pub(crate) producer: u64,
    pub(crate) next_seq: AtomicU64,
    pub(crate) count: Arc<Semaphore>,
    pub(crate) bytes: Arc<Semaphore>,
    /// Explicit-sequence IDs accepted and not yet resolved.
    pub(crate) explicit: DashMap<MessageId, ()>,
    pub(crate) stats: Stats,
    pub(crate) metrics: Metrics,
    pub(crate) events: Events,
    pub(crate) closed: AtomicBool,
    /// Set by the driver when it begins its orderly shutdown (every
    /// accepted message is decided from then on).
    pub(crate) finished: AtomicBool,
    /// `min(our max_frame_size, the broker's)` of the latest connection.
    pub(crate) peer_max_frame: AtomicU32,
    /// The broker's `Welcome.max_message_size` (payload plus header bytes);
    /// `u32::MAX` when it did not announce one.
    pub(crate) peer_max_message: AtomicU32,
}

impl Shared {
    /// The latest broker's limits: its frame size (already the smaller of
    /// ours and its) and its announced message size, if any. A broker that
    /// announces `max_message_size` follows PROTOCOL.md §3.2: it stores a
    /// `Message` frame of at most `max_frame_size - 4` bytes.
    pub(crate) fn set_peer_limits(&self, max_frame: u32, max_message: Option<u32>) {
        let max_frame = match max_message {
            Some(_) => max_frame.saturating_sub(4),
            None => max_frame,
        };
        self.peer_max_frame.store(max_frame, Relaxed);
        self.peer_max_message
            .store(max_message.unwrap_or(u32::MAX), Relaxed);
    }

    /// The driver is shutting down in order (not crashed).
    pub(crate) fn set_driver_closed(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn driver_closed(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Removes an explicit ID again if the hand-over does not complete
/// (error or cancellation).
struct ExplicitGuard<'a> {
    shared: &'a Shared,
    id: Option<MessageId>,
}

impl Drop for ExplicitGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.explicit.remove(&id);
        }
    }
}

/// A handle to a connected sender. Cheap to clone (an `Arc` and a channel
/// sender); all clones feed the same driver task, window and counters.
///
/// The driver task runs by itself on the tokio runtime that called
/// [`Sender::connect`]. It stops after [`Sender::close`], or once every
/// handle is dropped and every accepted message has its outcome.
///
/// # Examples
///
/// ```no_run
/// use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let sender = Sender::connect(SenderConfig::new("127.0.0.1:7878")).await?;
/// let receipt = sender.send(OutgoingMessage::new("orders", "hello")).await?;
/// println!("stored as {}", receipt.id);
/// sender.close(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sender {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field(
                "producer_id",
                &format_args!("{:016x}", self.shared.producer),
            )
            .field("stats", &self.shared.stats.snapshot())
            .finish()
    }
}

impl Sender {
    /// Validates `config`, connects to the first address that completes the
    /// handshake (each address tried once, in order, within
    /// `connect_timeout`), and starts the driver task.
    ///
    /// Connecting fails if no broker is reachable now (use
    /// [`crate::SenderBuilder::lazy_connect`] to start disconnected). After this
    /// returns, a lost connection is handled by reconnect rounds over all
    /// addresses with `config.reconnect` backoff between failed rounds.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for an invalid config (its source is a
    /// [`crate::ConfigError`]),
    /// [`ConnectError::Refused`] if a broker refused the handshake,
    /// [`ConnectError::Handshake`] for a broker speaking something else,
    /// [`ConnectError::Unreachable`] if no address answered.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes drops any
    /// half-open connection; no task is left behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mq_client_sender::ConnectError> {
    /// let cfg = mq_client_sender::SenderConfig::default().addresses(vec!["10.0.0.1:7878".into(), "10.0.0.2:7878".into()]);
    /// let sender = mq_client_sender::Sender::connect(cfg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: SenderConfig) -> Result<Sender, ConnectError> {
        Self::builder(config).connect().await
    }

    /// This sender's producer id (the high half of its message IDs).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(sender: mq_client_sender::Sender) {
    /// println!("producer {:016x}", sender.producer_id());
    /// # }
    /// ```
    pub fn producer_id(&self) -> u64 {
        self.shared.producer
    }

    /// Hands `msg` over and waits for its outcome: the broker's confirm, a
    /// rejection, or a failure after the attempts or `send_timeout` ran out.
    ///
    /// # Errors
    ///
    /// Hand-over errors give the message back ([`SendError::Backpressure`],
    /// [`SendError::Closed`], [`SendError::TooLarge`],
    /// [`SendError::InvalidMessage`], [`SendError::AlreadyInFlight`]);
    /// outcome errors name the message ([`SendError::Timeout`],
    /// [`SendError::Rejected`], [`SendError::Abandoned`]).
    ///
    /// # Cancel safety
    ///
    /// Cancelling while waiting for window space drops the message unsent.
    /// Cancelling after the hand-over does not stop the message: it is still
    /// retransmitted until its outcome, which is then only counted. Use
    /// [`Sender::enqueue`] to keep the outcome when you must stop waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) {
    /// use mq_client_sender::{OutgoingMessage, SendError};
    /// match sender.send(OutgoingMessage::new("orders", "hi")).await {
    ///     Ok(r) if r.duplicate => println!("{} was already stored", r.id),
    ///     Ok(r) => println!("{} stored", r.id),
    ///     Err(SendError::Timeout { id, attempts }) => eprintln!("{id}: no confirm after {attempts} attempts"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub async fn send(&self, msg: OutgoingMessage) -> Result<Receipt, SendError> {
        let pending = self.enqueue(msg).await?;
        let span = tracing::debug_span!("mq_send", id = %pending.id());
        pending.instrument(span).await
    }

    /// The first stage of a send: hands `msg` over and returns a
    /// [`PendingSend`] that resolves with its outcome.
    ///
    /// Under `Backpressure::Wait` this waits for a window slot (count and
    /// bytes); under `Backpressure::Fail` it fails at once instead. Once this
    /// returns `Ok`, the message is accepted: it gets exactly one outcome
    /// whether or not the `PendingSend` is awaited or dropped.
    ///
    /// # Errors
    ///
    /// The hand-over errors of [`Sender::send`], each giving the message back.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it returns, the message
    /// was not accepted and is dropped unsent; no slot is leaked.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) -> Result<(), mq_client_sender::SendError> {
    /// use mq_client_sender::OutgoingMessage;
    /// let mut pending = Vec::new();
    /// for i in 0..100 {
    ///     pending.push(sender.enqueue(OutgoingMessage::new("t", format!("{i}"))).await?);
    /// }
    /// for p in pending {
    ///     p.await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn enqueue(&self, msg: OutgoingMessage) -> Result<PendingSend, SendError> {
        let (tx, rx) = completion::channel();
        let id = self.hand_over(msg, move |_| Completion::Future(tx)).await?;
        Ok(PendingSend { id, rx })
    }

    /// Hands `msg` over; `callback` is called exactly once with its outcome,
    /// on the sender's callback thread (see [`SendCallback`]). Returns the
    /// message's ID.
    ///
    /// If the hand-over itself fails, the error is returned here (with the
    /// message) and the callback is dropped without being called.
    ///
    /// # Errors
    ///
    /// The hand-over errors of [`Sender::send`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if dropped before it returns, the message is not sent
    /// and the callback is dropped uncalled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) -> Result<(), mq_client_sender::SendError> {
    /// use mq_client_sender::{OutgoingMessage, Receipt, SendError};
    /// // A closure needs its argument type spelled out (or use a type
    /// // implementing `SendCallback`).
    /// sender
    ///     .send_with_callback(OutgoingMessage::new("t", "x"), |outcome: Result<Receipt, SendError>| match outcome {
    ///         Ok(r) => println!("{} stored", r.id),
    ///         Err(e) => eprintln!("{e}"),
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_with_callback(
        &self,
        msg: OutgoingMessage,
        callback: impl SendCallback,
    ) -> Result<MessageId, SendError> {
        let cb: Box<dyn SendCallback> = Box::new(callback);
        self.hand_over(msg, move |id| {
            Completion::Callback(Box::new(CallbackOnce::new(cb, id)))
        })
        .await
    }

    async fn hand_over(
        &self,
        msg: OutgoingMessage,
        completion: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, SendError> {
        let shared = &*self.shared;
        if shared.closed.load(Relaxed) {
            return Err(SendError::Closed(msg));
        }
        if msg.topic.is_empty() || msg.topic.len() > MAX_TOPIC_LEN {
            let reason = format!(
                "topic is {} bytes; it must be 1..={MAX_TOPIC_LEN}",
                msg.topic.len()
            );
            return Err(SendError::InvalidMessage {
                reason,
                message: msg,
            });
        }
        if let Err(e) = msg.headers.validate() {
            return Err(SendError::InvalidMessage {
                reason: e.to_string(),
                message: msg,
            });
        }
        let explicit = msg.sequence;
        let mut wire = msg.into_wire(MessageId::new(shared.producer, explicit.unwrap_or(0)));
        let give_back = |wire: Wire| OutgoingMessage {
            sequence: explicit,
            ..OutgoingMessage::from_wire(wire, false)
        };
        let size = wire.frame_size();
        let max =
            (shared.peer_max_frame.load(Relaxed) as usize).min(shared.cfg.max_in_flight_bytes - 4);
        if size > max {
            return Err(SendError::TooLarge {
                size,
                max,
                message: give_back(wire),
            });
        }
        // The broker's announced limit on payload plus header bytes.
        let body = wire.payload.len() + wire.headers.payload_bytes();
        let max_body = shared.peer_max_message.load(Relaxed) as usize;
        if body > max_body {
            return Err(SendError::TooLarge {
                size: body,
                max: max_body,
                message: give_back(wire),
            });
        }
        let mut guard = ExplicitGuard { shared, id: None };
        if explicit.is_some() {
            let id = wire.id;
            if shared.explicit.insert(id, ()).is_some() {
                return Err(SendError::AlreadyInFlight {
                    id,
                    message: give_back(wire),
                });
            }
            guard.id = Some(id);
        }
        let bytes = window_bytes(size);
        // Borrowed permits (no `Arc` clone); `forget` below hands them to
        // the driver, which gives them back with `Permits::release` (the
        // byte count computed again from the message, `window_bytes`). Dropped before that point (an error
        // or a cancelled `await`), they go back by themselves.
        let (count, byte_permits) = match shared.cfg.backpressure {
            Backpressure::Fail => {
                let count = shared.count.try_acquire();
                let both = count.and_then(|c| Ok((c, shared.bytes.try_acquire_many(bytes)?)));
                match both {
                    Ok(pair) => pair,
                    Err(TryAcquireError::NoPermits) => {
                        return Err(SendError::Backpressure(give_back(wire)))
                    }
                    Err(TryAcquireError::Closed) => return Err(SendError::Closed(give_back(wire))),
                }
            }
            _ => {
                // The permits are usually there: take them without building
                // an `Acquire` future; wait only when they are not.
                let c = match shared.count.try_acquire() {
                    Ok(c) => Ok(c),
                    Err(TryAcquireError::Closed) => return Err(SendError::Closed(give_back(wire))),
                    Err(TryAcquireError::NoPermits) => shared.count.acquire().await,
                };
                let Ok(c) = c else {
                    return Err(SendError::Closed(give_back(wire)));
                };
                let b = match shared.bytes.try_acquire_many(bytes) {
                    Ok(b) => Ok(b),
                    Err(TryAcquireError::Closed) => return Err(SendError::Closed(give_back(wire))),
                    Err(TryAcquireError::NoPermits) => shared.bytes.acquire_many(bytes).await,
                };
                let Ok(b) = b else {
                    return Err(SendError::Closed(give_back(wire)));
                };
                (c, b)
            }
        };
        if explicit.is_none() {
            wire.id.seq = shared.next_seq.fetch_add(1, Relaxed);
        }
        let id = wire.id;
        let ticket = Ticket::new(completion(id), explicit.is_some());
        count.forget();
        byte_permits.forget();
        // Counted before the driver can resolve it (see `Stats::snapshot`).
        shared.stats.sent.fetch_add(1, Relaxed);
        match self.tx.send(Command::Send { msg: wire, ticket }) {
            Ok(()) => {
                guard.id = None;
                Ok(id)
            }
            Err(mpsc::error::SendError(cmd)) => match cmd {
                Command::Send { msg, ticket } => {
                    shared.stats.sent.fetch_sub(1, Relaxed);
                    Permits::one(bytes).release(shared);
                    if let Completion::Callback(cb) = ticket.into_completion() {
                        (*cb).disarm();
                    }
                    Err(SendError::Closed(give_back(msg)))
                }
                _ => Err(SendError::DriverStopped { id }),
            },
        }
    }

    /// Waits until every message accepted before this call has its outcome
    /// (and, for callbacks, until those callbacks have run).
    ///
    /// Messages accepted by other tasks after this call are not waited for.
    /// `Ok` says every earlier message was *decided*, not that each was
    /// confirmed: look at each outcome (future or callback) for that. After
    /// [`Sender::close`] it returns `Ok` at once (close decided everything).
    ///
    /// # Errors
    ///
    /// [`FlushError::DriverStopped`] if the driver task died (a panic or a
    /// runtime shutting down) before the earlier messages were decided.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// use mq_client_sender::OutgoingMessage;
    /// for i in 0..10 {
    ///     sender.send_with_callback(OutgoingMessage::new("t", format!("{i}")), |_: Result<_, _>| {}).await?;
    /// }
    /// sender.flush().await?; // all 10 callbacks have run
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), FlushError> {
        let (tx, rx) = oneshot::channel();
        let registered = self.tx.send(Command::Flush(tx)).is_ok();
        let answered = registered && rx.await.is_ok();
        // The driver answers every flush, also while shutting down after a
        // close; no answer and no close means it died.
        if answered || self.shared.driver_closed() {
            Ok(())
        } else {
            Err(FlushError::DriverStopped)
        }
    }

    /// Stops accepting messages (further hand-overs fail with
    /// [`SendError::Closed`], and waiting ones are woken with it), waits up to
    /// `deadline` for every accepted message's outcome, resolves the rest
    /// with [`SendError::Abandoned`], says goodbye to the broker and stops
    /// the driver. The report lists the abandoned IDs.
    ///
    /// Calling it again, or from another clone, waits for the same close.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops waiting for the report, not the close.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) {
    /// let report = sender.close(std::time::Duration::from_secs(10)).await;
    /// assert!(report.unresolved.is_empty(), "unconfirmed: {:?}", report.unresolved);
    /// # }
    /// ```
    pub async fn close(&self, deadline: Duration) -> CloseReport {
        self.shared.closed.store(true, Relaxed);
        self.shared.count.close();
        self.shared.bytes.close();
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Close {
                deadline,
                reply: tx,
            })
            .is_err()
        {
            return CloseReport::default();
        }
        rx.await.unwrap_or_default()
    }

    /// True once [`Sender::close`] was called on any clone.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(sender: mq_client_sender::Sender) {
    /// if sender.is_closed() { return; }
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Relaxed)
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(sender: mq_client_sender::Sender) {
    /// let s = sender.stats();
    /// assert!(s.confirmed + s.rejected + s.failed + s.in_flight <= s.sent);
    /// # }
    /// ```
    pub fn stats(&self) -> SenderStats {
        self.shared.stats.snapshot()
    }
}

/// The second stage of a send: resolves with the message's outcome.
///
/// Dropping it does not cancel the message: it keeps its slot until the
/// outcome is decided and is retransmitted as usual; the outcome is then
/// only counted in [`Sender::stats`].
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) -> Result<(), mq_client_sender::SendError> {
/// let pending = sender.enqueue(mq_client_sender::OutgoingMessage::new("t", "x")).await?;
/// println!("accepted as {}", pending.id());
/// let receipt = pending.await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the message is sent either way; await this to learn its outcome"]
pub struct PendingSend {
    id: MessageId,
    rx: CompletionRx,
}

impl PendingSend {
    /// The ID the message was given.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) -> Result<(), mq_client_sender::SendError> {
    /// let p = sender.enqueue(mq_client_sender::OutgoingMessage::new("t", "x")).await?;
    /// assert_eq!(p.id().producer, sender.producer_id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> MessageId {
        self.id
    }
}

impl Future for PendingSend {
    type Output = Result<Receipt, SendError>;

    /// # Cancel safety
    ///
    /// Polling is cancel-safe; dropping only stops observing the outcome.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        self.rx.poll(cx).map(|r| match r {
            Ok(Ok(confirmed)) => Ok(confirmed.receipt(id)),
            Ok(Err(e)) => Err(*e),
            Err(Stopped) => Err(SendError::DriverStopped { id }),
        })
    }
}
