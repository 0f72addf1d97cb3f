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
    /// Destination topic, 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8.
    pub topic: String,
    /// Optional headers.
    pub headers: Headers,
    /// The payload; decoded as a zero-copy slice of the read buffer.
    pub payload: Bytes,
}

pub(crate) fn validate_topic(topic: &str) -> Result<(), ProtocolError> {
    check_len("topic", topic.len(), MAX_TOPIC_LEN)
}

impl Body for Message {
    const TYPE: u8 = frame_type::MESSAGE;
    const NAME: &'static str = "Message";

    fn body_len(&self) -> usize {
        16 + 4 + str_len(&self.topic) + self.headers.encoded_len() + 4 + self.payload.len()
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic(&self.topic)?;
        self.headers.validate()
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
        dst.put_u32(self.attempt);
        put_str(dst, &self.topic);
        self.headers.encode(dst);
        put_bytes32(dst, &self.payload);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            id: MessageId::new(r.u64("producer")?, r.u64("seq")?),
            attempt: r.u32("attempt")?,
            // Topic length and header limits are message-level limits
            // (PROTOCOL.md §2.3): a well-formed frame that breaks them still
            // decodes, and the broker answers it `Rejected`.
            topic: r.string("topic")?,
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
