//! The first half: `Message` (sender to broker) and `Reply` (broker to sender).

use bytes::{Bytes, BytesMut};

use crate::wire::PutBe;

use super::{frame_type, Body};
use crate::wire::{check_len, put_bytes32, put_str, str_len, Reader};
use crate::{ErrorCode, Headers, MessageId, ProtocolError, MAX_REASON_LEN, MAX_TOPIC_LEN};

/// A message handed to the broker. Retransmissions repeat the same `id` with
/// a higher `attempt`.
///
/// Encoding enforces the protocol's message-level limits (topic length,
/// header count and bytes); decoding does not, so that a broker can answer
/// a well-formed `Message` that breaks them with a permanent
/// `Reply(Rejected)` and keep the connection (PROTOCOL.md §2.3).
///
/// # Examples
///
/// ```
/// use mq_protocol::{Message, MessageId, Headers};
/// let m = Message { id: MessageId::new(1, 1), attempt: 1, topic: "orders".into(),
///                   headers: Headers::new(), payload: "hi".into() };
/// assert_eq!(m.payload.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's identity; the same on every attempt.
    pub id: MessageId,
    /// 1 for the first transmission, +1 for each retransmission.
    pub attempt: u32,
    /// Destination topic, 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8. A
    /// [`ByteString`](crate::ByteString): decoded as a zero-copy slice of
    /// the read buffer (no allocation per message); build one from a
    /// `&str` or `String` with `.into()`.
    pub topic: crate::ByteString,
    /// Optional headers.
    pub headers: Headers,
    /// The payload; decoded as a zero-copy slice of the read buffer.
    pub payload: Bytes,
}

pub(crate) fn validate_topic(topic: &str) -> Result<(), ProtocolError> {
    check_len("topic", topic.len(), MAX_TOPIC_LEN)
}

/// A `Message` frame's parts, borrowed: what a sender that keeps its
/// messages in its own form (a shared topic, say) encodes without building
/// a [`Message`] (whose `topic` is an owned `String`). It encodes to exactly
/// the bytes of the equal [`Message`], with the same limits.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use mq_protocol::{Frame, Headers, Message, MessageId, MessageRef};
///
/// static NO_HEADERS: Headers = Headers::new();
/// let topic: std::sync::Arc<str> = "orders".into();
/// let parts = MessageRef { id: MessageId::new(1, 2), attempt: 1, topic: &topic,
///                          headers: &NO_HEADERS, payload: b"hi" };
/// let mut a = BytesMut::new();
/// parts.encode(&mut a)?;
///
/// let owned = Message { id: MessageId::new(1, 2), attempt: 1, topic: "orders".into(),
///                       headers: Headers::new(), payload: "hi".into() };
/// let mut b = BytesMut::new();
/// Frame::Message(owned.clone()).encode(&mut b)?;
/// assert_eq!(a, b);
/// assert_eq!(parts.frame_size(), owned.frame_size());
/// assert_eq!(owned.parts(), parts);
/// # Ok::<(), mq_protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The message's identity; the same on every attempt.
    pub id: MessageId,
    /// 1 for the first transmission, +1 for each retransmission.
    pub attempt: u32,
    /// Destination topic, 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8.
    pub topic: &'a str,
    /// Headers (a `static` [`Headers::new`] for none).
    pub headers: &'a Headers,
    /// The payload.
    pub payload: &'a [u8],
}

impl MessageRef<'_> {
    fn body_len(&self) -> usize {
        16 + 4 + str_len(self.topic) + self.headers.encoded_len() + 4 + self.payload.len()
    }

    /// The frame size (type byte plus body), as [`Message::frame_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{Headers, MessageId, MessageRef, MESSAGE_OVERHEAD};
    /// let h = Headers::new();
    /// let m = MessageRef { id: MessageId::new(1, 1), attempt: 1, topic: "t", headers: &h, payload: &[0; 10] };
    /// assert_eq!(m.frame_size(), MESSAGE_OVERHEAD - 4 + 1 + 10);
    /// ```
    pub fn frame_size(&self) -> usize {
        1 + self.body_len()
    }

    /// Checks the protocol's message limits (topic length, header count
    /// and bytes), as [`crate::Frame::validate`] does for a [`Message`].
    ///
    /// # Errors
    ///
    /// [`ProtocolError::FieldTooLong`] or a header error, naming the field.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{Headers, MessageId, MessageRef};
    /// let h = Headers::new();
    /// let long = "t".repeat(300);
    /// let m = MessageRef { id: MessageId::new(1, 1), attempt: 1, topic: &long, headers: &h, payload: b"" };
    /// assert!(m.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic(self.topic)?;
        self.headers.validate()
    }

    /// Appends the whole `Message` frame (length prefix, type, body) to
    /// `dst`. Does not check a maximum frame size; encoding through the
    /// [`crate::Codec`] does.
    ///
    /// # Errors
    ///
    /// A field breaks a protocol limit (see [`MessageRef::validate`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{Headers, MessageId, MessageRef};
    /// let h = Headers::new();
    /// let m = MessageRef { id: MessageId::new(1, 1), attempt: 1, topic: "t", headers: &h, payload: b"x" };
    /// let mut buf = bytes::BytesMut::new();
    /// m.encode(&mut buf)?;
    /// assert_eq!(buf.len(), m.frame_size() + 4);
    /// # Ok::<(), mq_protocol::ProtocolError>(())
    /// ```
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.validate()?;
        let len = 4 + self.frame_size();
        dst.reserve(len);
        dst.put_u32((len - 4) as u32);
        dst.put_u8(frame_type::MESSAGE);
        self.put(dst);
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
        dst.put_u32(self.attempt);
        put_str(dst, self.topic);
        self.headers.encode(dst);
        put_bytes32(dst, self.payload);
    }
}

impl Message {
    /// This message's parts, borrowed (see [`MessageRef`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{Headers, Message, MessageId};
    /// let m = Message { id: MessageId::new(1, 1), attempt: 1, topic: "t".into(),
    ///                   headers: Headers::new(), payload: "x".into() };
    /// assert_eq!(m.parts().topic, "t");
    /// assert_eq!(m.parts().frame_size(), m.frame_size());
    /// ```
    pub fn parts(&self) -> MessageRef<'_> {
        MessageRef {
            id: self.id,
            attempt: self.attempt,
            topic: &self.topic,
            headers: &self.headers,
            payload: &self.payload,
        }
    }
}

impl<'a> From<&'a Message> for MessageRef<'a> {
    fn from(m: &'a Message) -> Self {
        m.parts()
    }
}

impl Body for Message {
    const TYPE: u8 = frame_type::MESSAGE;
    const NAME: &'static str = "Message";

    fn body_len(&self) -> usize {
        self.parts().body_len()
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        self.parts().validate()
    }

    fn put(&self, dst: &mut BytesMut) {
        self.parts().put(dst);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            id: MessageId::new(r.u64("producer")?, r.u64("seq")?),
            attempt: r.u32("attempt")?,
            // Topic length and header limits are message-level limits
            // (PROTOCOL.md §2.3): a well-formed frame that breaks them still
            // decodes, and the broker answers it `Rejected`.
            topic: r.byte_string("topic")?,
            headers: Headers::decode_unlimited(r)?,
            payload: r.bytes32("payload")?,
        })
    }
}

/// What the broker did with a message.
///
/// # Examples
///
/// ```
/// use mq_protocol::{ErrorCode, ReplyStatus};
/// let s = ReplyStatus::Rejected { code: ErrorCode::STORE_FULL, reason: "full".into() };
/// assert!(!s.is_stored());
/// assert!(ReplyStatus::Duplicate.is_stored());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Stored now; the broker will deliver it.
    Stored,
    /// Already stored by an earlier attempt (whose reply was lost); stored once.
    Duplicate,
    /// Not stored. Codes `100..=199` are transient, `200..=299` permanent.
    Rejected {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, for a person.
        reason: String,
    },
}

impl ReplyStatus {
    /// True for `Stored` and `Duplicate`: the broker holds the message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_protocol::ReplyStatus::Stored.is_stored());
    /// ```
    pub fn is_stored(&self) -> bool {
        matches!(self, ReplyStatus::Stored | ReplyStatus::Duplicate)
    }
}

/// The broker's answer to one `Message` attempt. Sent only after the message
/// is stored (or definitely not stored).
///
/// # Examples
///
/// ```
/// use mq_protocol::{MessageId, Reply, ReplyStatus};
/// let r = Reply { id: MessageId::new(1, 1), attempt: 2, status: ReplyStatus::Duplicate };
/// assert!(r.status.is_stored());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message this answers.
    pub id: MessageId,
    /// The attempt this answers (echoed from the `Message`).
    pub attempt: u32,
    /// The outcome.
    pub status: ReplyStatus,
}

impl Body for Reply {
    const TYPE: u8 = frame_type::REPLY;
    const NAME: &'static str = "Reply";

    fn body_len(&self) -> usize {
        16 + 4
            + 1
            + 2
            + match &self.status {
                ReplyStatus::Rejected { reason, .. } => str_len(reason),
                _ => 2,
            }
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        if let ReplyStatus::Rejected { reason, .. } = &self.status {
            check_len("reason", reason.len(), MAX_REASON_LEN)?;
        }
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
        dst.put_u32(self.attempt);
        match &self.status {
            ReplyStatus::Stored => {
                dst.put_u8(0);
                dst.put_u16(0);
                put_str(dst, "");
            }
            ReplyStatus::Duplicate => {
                dst.put_u8(1);
                dst.put_u16(0);
                put_str(dst, "");
            }
            ReplyStatus::Rejected { code, reason } => {
                dst.put_u8(2);
                dst.put_u16(code.0);
                put_str(dst, reason);
            }
        }
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        let id = MessageId::new(r.u64("producer")?, r.u64("seq")?);
        let attempt = r.u32("attempt")?;
        let status = r.u8("status")?;
        let code = ErrorCode(r.u16("code")?);
        let reason = r.bounded_string("reason", MAX_REASON_LEN)?;
        let status = match status {
            0 => ReplyStatus::Stored,
            1 => ReplyStatus::Duplicate,
            2 => ReplyStatus::Rejected { code, reason },
            v => {
                return Err(ProtocolError::InvalidValue {
                    frame: "Reply",
                    field: "status",
                    value: u64::from(v),
                })
            }
        };
        Ok(Self {
            id,
            attempt,
            status,
        })
    }
}
