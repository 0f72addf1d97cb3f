//! [`Delivery`]: one message handed to the handler or the stream, with its
//! `ack` (the seed's `SendAck`) and `nack`; and [`DeliveryStream`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use mq_protocol::{Deliver, Headers, MessageId};
use tokio::sync::{mpsc, oneshot};

use crate::config::AckMode;
use crate::error::{AckError, RecvError};

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    Nack { delay_ms: u32 },
}

/// What handles tell the driver.
#[derive(Debug)]
pub(crate) enum Event {
    Settle {
        id: MessageId,
        token: u64,
        outcome: Outcome,
        reply: Option<oneshot::Sender<Result<(), AckError>>>,
    },
    Shutdown {
        deadline: Duration,
        reply: oneshot::Sender<Result<(), RecvError>>,
    },
}

pub(crate) fn delay_ms(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
}

/// One message from the broker.
///
/// In [`AckMode::Manual`] settle it with [`Delivery::ack`] or
/// [`Delivery::nack`]; **dropping it without either nacks it** (the broker
/// redelivers it with its own backoff). In [`AckMode::Auto`] the receiver
/// settles it from the handler's result and both methods are refused.
///
/// # Examples
///
/// ```no_run
/// # async fn f(d: mq_client_receiver::Delivery) -> Result<(), mq_client_receiver::AckError> {
/// println!("{} attempt {}: {:?}", d.id(), d.delivery_attempt(), d.payload());
/// d.ack().await?;
/// # Ok(()) }
/// ```
pub struct Delivery {
    id: MessageId,
    delivery_attempt: u32,
    // A slice of the read buffer, as decoded: no allocation per delivery.
    topic: mq_protocol::ByteString,
    headers: Headers,
    payload: Bytes,
    mode: AckMode,
    token: u64,
    tx: mpsc::UnboundedSender<Event>,
    settled: bool,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("delivery_attempt", &self.delivery_attempt)
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("mode", &self.mode)
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(
        d: Deliver,
        mode: AckMode,
        token: u64,
        tx: mpsc::UnboundedSender<Event>,
    ) -> Self {
        Self {
            id: d.id,
            delivery_attempt: d.delivery_attempt,
            topic: d.topic,
            headers: d.headers,
            payload: d.payload,
            mode,
            token,
            tx,
            settled: false,
        }
    }

    /// The message's ID (producer id and sequence), the dedup key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(d: &mq_client_receiver::Delivery) { println!("{}", d.id()); }
    /// ```
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The topic the message was published to.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(d: &mq_client_receiver::Delivery) { assert!(!d.topic().is_empty()); }
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The message's headers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(d: &mq_client_receiver::Delivery) { let _ = d.headers().get("trace"); }
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The payload (a zero-copy slice of the read buffer; clone it cheaply).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(d: &mq_client_receiver::Delivery) { let _copy: bytes::Bytes = d.payload().clone(); }
    /// ```
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// 1 for the broker's first delivery to this group, +1 per redelivery.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(d: &mq_client_receiver::Delivery) { assert!(d.delivery_attempt() >= 1); }
    /// ```
    pub fn delivery_attempt(&self) -> u32 {
        self.delivery_attempt
    }

    /// Marks the message processed (`SendAck`): it is recorded in the dedup
    /// store and an `Ack` is written to the broker. If the connection is down
    /// at that moment, the ack cannot be written; the broker redelivers and the
    /// receiver acks the redelivery from dedup without calling the handler.
    ///
    /// # Errors
    ///
    /// [`AckError::AutoMode`] in automatic mode; [`AckError::Closed`] after
    /// shutdown (nothing recorded, the broker redelivers);
    /// [`AckError::AlreadySettled`] if the shutdown deadline already gave
    /// the delivery up.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before its first poll nacks (like dropping the
    /// delivery); after that the ack happens whether or not it is awaited.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(d: mq_client_receiver::Delivery) {
    /// if let Err(e) = d.ack().await { eprintln!("not acked: {e}"); }
    /// # }
    /// ```
    pub async fn ack(self) -> Result<(), AckError> {
        self.settle(Outcome::Ack).await
    }

    /// Refuses the message: it is not recorded and the broker redelivers it
    /// after `delay` (`None`: the broker's own backoff schedule).
    ///
    /// # Errors
    ///
    /// As [`Delivery::ack`].
    ///
    /// # Cancel safety
    ///
    /// As [`Delivery::ack`]; either way the message is nacked.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(d: mq_client_receiver::Delivery) {
    /// let _ = d.nack(Some(std::time::Duration::from_secs(1))).await;
    /// # }
    /// ```
    pub async fn nack(self, delay: Option<Duration>) -> Result<(), AckError> {
        self.settle(Outcome::Nack {
            delay_ms: delay_ms(delay),
        })
        .await
    }

    async fn settle(mut self, outcome: Outcome) -> Result<(), AckError> {
        if self.mode == AckMode::Auto {
            return Err(AckError::AutoMode);
        }
        self.settled = true;
        let (reply, rx) = oneshot::channel();
        let ev = Event::Settle {
            id: self.id,
            token: self.token,
            outcome,
            reply: Some(reply),
        };
        if self.tx.send(ev).is_err() {
            return Err(AckError::Closed);
        }
        rx.await.unwrap_or(Err(AckError::Closed))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.mode == AckMode::Manual && !self.settled {
            let _ = self.tx.send(Event::Settle {
                id: self.id,
                token: self.token,
                outcome: Outcome::Nack { delay_ms: 0 },
                reply: None,
            });
        }
    }
}

/// The deliveries of a receiver started with [`crate::Receiver::stream`],
/// always in [`AckMode::Manual`]. Ends after [`crate::Receiver::shutdown`].
///
/// At most `prefetch` deliveries are unsettled at once: the broker gets
/// credit back only as deliveries are acked, nacked or dropped.
///
/// # Examples
///
/// ```no_run
/// use futures::StreamExt;
/// use mq_client_receiver::{Receiver, ReceiverConfig};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ReceiverConfig::default().addresses(vec!["127.0.0.1:7000".into()]).topic("orders").group("billing");
/// let (receiver, mut deliveries) = Receiver::stream(config).await?;
/// while let Some(d) = deliveries.next().await {
///     d.ack().await?;
/// }
/// # drop(receiver); Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeliveryStream {
    pub(crate) rx: mpsc::UnboundedReceiver<Delivery>,
}

impl DeliveryStream {
    /// The next delivery, or `None` once the receiver has shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a delivery is never lost by dropping this future.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(mut s: mq_client_receiver::DeliveryStream) {
    /// while let Some(d) = s.recv().await { let _ = d.ack().await; }
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

impl Stream for DeliveryStream {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.rx.poll_recv(cx)
    }
}
