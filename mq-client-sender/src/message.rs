//! What a caller hands over ([`OutgoingMessage`]) and what it gets back on
//! success ([`Receipt`]).

use std::time::Duration;

use bytes::Bytes;
use mq_protocol::{Headers, MessageId, MessageRef};

use crate::Topic;

/// A message to send: topic, payload, optional headers, optional explicit
/// sequence number.
///
/// Building one copies nothing: the payload is a [`Bytes`] handle that is
/// reference-counted all the way to the socket write, and the topic is a
/// [`Topic`] (a literal is kept as a reference, a `String` is moved, an
/// `Arc<str>` is shared).
///
/// # Examples
///
/// ```
/// use mq_client_sender::OutgoingMessage;
///
/// let msg = OutgoingMessage::new("orders", "{\"id\":1}")
///     .header("content-type", "application/json");
/// assert_eq!(msg.topic(), "orders");
/// assert_eq!(msg.headers().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub(crate) topic: Topic,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
    pub(crate) sequence: Option<u64>,
}

impl OutgoingMessage {
    /// A message for `topic` with `payload` and no headers. The sender picks
    /// the next automatic sequence number unless [`OutgoingMessage::sequence`]
    /// is called.
    ///
    /// `topic` is anything that converts into a [`Topic`]: a `&'static str`
    /// (no allocation), a `String`, an `Arc<str>` or a [`Topic`]. A borrowed
    /// `&str` that is not `'static` needs `.to_owned()`, or
    /// [`Topic::shared`] once for many messages.
    ///
    /// # Examples
    ///
    /// ```
    /// let msg = mq_client_sender::OutgoingMessage::new("t", vec![1u8, 2, 3]);
    /// assert_eq!(msg.payload().len(), 3);
    /// let name = String::from("t");
    /// let msg = mq_client_sender::OutgoingMessage::new(name.as_str().to_owned(), "x");
    /// assert_eq!(msg.topic(), "t");
    /// ```
    pub fn new(topic: impl Into<Topic>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            headers: Headers::new(),
            payload: payload.into(),
            sequence: None,
        }
    }

    /// Appends a header (keys may repeat). The protocol allows at most
    /// [`mq_protocol::MAX_HEADERS`] headers and [`mq_protocol::MAX_HEADER_BYTES`]
    /// bytes; a message over either limit is refused by `send` with
    /// [`crate::SendError::InvalidMessage`] before it takes a slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let msg = mq_client_sender::OutgoingMessage::new("t", "x").header("k", "v");
    /// assert!(msg.headers().get("k").is_some());
    /// ```
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Replaces all headers.
    ///
    /// # Examples
    ///
    /// ```
    /// let h: mq_protocol::Headers = [("a", "1")].into_iter().collect();
    /// let msg = mq_client_sender::OutgoingMessage::new("t", "x").headers_from(h);
    /// assert_eq!(msg.headers().len(), 1);
    /// ```
    pub fn headers_from(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Uses `seq` as the message's sequence number instead of the sender's
    /// automatic counter, so its [`MessageId`] is `(producer id, seq)`.
    ///
    /// This is for callers that own a durable numbering, such as the outbox
    /// using its row id, together with a stable
    /// [`crate::SenderConfig::producer_id`]. Do **not** mix explicit and
    /// automatic sequences on one producer id: the automatic counter starts at
    /// 1 and would reuse your numbers, and the broker would answer
    /// `Duplicate` for a different message. While a message with this ID is
    /// still unresolved in the same sender, sending it again fails with
    /// [`crate::SendError::AlreadyInFlight`].
    ///
    /// # Examples
    ///
    /// ```
    /// let msg = mq_client_sender::OutgoingMessage::new("t", "x").sequence(42);
    /// assert_eq!(msg.explicit_sequence(), Some(42));
    /// ```
    pub fn sequence(mut self, seq: u64) -> Self {
        self.sequence = Some(seq);
        self
    }

    /// The topic.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_sender::OutgoingMessage::new("t", "x").topic(), "t");
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The headers.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_client_sender::OutgoingMessage::new("t", "x").headers().is_empty());
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The payload.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(&mq_client_sender::OutgoingMessage::new("t", "x").payload()[..], b"x");
    /// ```
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The explicit sequence number, if one was set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_sender::OutgoingMessage::new("t", "x").explicit_sequence(), None);
    /// ```
    pub fn explicit_sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// The message under `id`, as the driver and the core keep it.
    pub(crate) fn into_wire(self, id: MessageId) -> Wire {
        Wire {
            id,
            topic: self.topic,
            headers: self.headers,
            payload: self.payload,
        }
    }

    /// Gives a wire message back to the caller (e.g. when a hand-over fails
    /// after the ID was chosen); the sequence is kept so a retry keeps the ID
    /// only if the caller asked for explicit sequences.
    pub(crate) fn from_wire(msg: Wire, explicit: bool) -> Self {
        Self {
            topic: msg.topic,
            headers: msg.headers,
            payload: msg.payload,
            sequence: explicit.then_some(msg.id.seq),
        }
    }
}

/// A message with its ID: what the hand-over passes to the driver and the
/// core keeps. Written with [`Wire::parts`] (borrowed, so the topic is never
/// copied into a `String`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) id: MessageId,
    pub(crate) topic: Topic,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
}

impl Wire {
    /// The `Message` frame of attempt `attempt`, borrowed.
    pub(crate) fn parts(&self, attempt: u32) -> MessageRef<'_> {
        MessageRef {
            id: self.id,
            attempt,
            topic: &self.topic,
            headers: &self.headers,
            payload: &self.payload,
        }
    }

    /// The frame size (type byte plus body); the same for every attempt.
    pub(crate) fn frame_size(&self) -> usize {
        self.parts(1).frame_size()
    }
}

/// Proof that the broker holds a message: its reply said `Stored` or
/// `Duplicate` (stored by an earlier attempt whose reply was lost).
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) -> Result<(), mq_client_sender::SendError> {
/// let receipt = sender.send(mq_client_sender::OutgoingMessage::new("t", "x")).await?;
/// println!("{} confirmed after {} attempt(s) in {:?}", receipt.id, receipt.attempts, receipt.elapsed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The message's ID (producer id and sequence).
    pub id: MessageId,
    /// Attempts counted when the confirm arrived (1 = no retransmission).
    pub attempts: u32,
    /// Time from acceptance by the sender to the confirm.
    pub elapsed: Duration,
    /// True when the broker answered `Duplicate`: an earlier attempt had
    /// already stored the message and its reply was lost. The message is
    /// stored once either way.
    pub duplicate: bool,
}
