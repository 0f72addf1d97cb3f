//! The second half: `Subscribe`, `SubscribeOk`, `Deliver`, `Ack`, `Nack`, `Credit`.

use bytes::{Bytes, BytesMut};

use crate::wire::PutBe;

use super::publish::validate_topic;
use super::{frame_type, Body};
use crate::wire::{check_len, put_bytes32, put_str, str_len, Reader};
use crate::{Headers, MessageId, ProtocolError, MAX_NAME_LEN, MAX_TOPIC_LEN};

/// Receiver asks for the messages of `topic` as a member of `group`.
///
/// Every group gets every message of the topic; members of one group share
/// them. `credit` is how many `Deliver` frames the broker may send on this
/// subscription before the receiver grants more with `Credit`.
///
/// # Examples
///
/// ```
/// let s = mq_protocol::Subscribe { sub_id: 1, credit: 10, topic: "orders".into(), group: "billing".into() };
/// assert_eq!(s.credit, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Chosen by the receiver, unique on its connection.
    pub sub_id: u32,
    /// Initial credit.
    pub credit: u32,
    /// Topic, 1..=[`MAX_TOPIC_LEN`] bytes.
    pub topic: String,
    /// Consumer group, 1..=[`MAX_NAME_LEN`] bytes.
    pub group: String,
}

impl Body for Subscribe {
    const TYPE: u8 = frame_type::SUBSCRIBE;
    const NAME: &'static str = "Subscribe";

    fn body_len(&self) -> usize {
        4 + 4 + str_len(&self.topic) + str_len(&self.group)
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic(&self.topic)?;
        check_len("group", self.group.len(), MAX_NAME_LEN)
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u32(self.credit);
        put_str(dst, &self.topic);
        put_str(dst, &self.group);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            credit: r.u32("credit")?,
            // Lengths are checked by the broker, which refuses the
            // subscription with `SubscribeError` (PROTOCOL.md §6.1).
            topic: r.string("topic")?,
            group: r.string("group")?,
        })
    }
}

/// Broker confirms a subscription; deliveries may follow.
///
/// # Examples
///
/// ```
/// let ok = mq_protocol::SubscribeOk { sub_id: 1 };
/// assert_eq!(ok.sub_id, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOk {
    /// The subscription confirmed.
    pub sub_id: u32,
}

impl Body for SubscribeOk {
    const TYPE: u8 = frame_type::SUBSCRIBE_OK;
    const NAME: &'static str = "SubscribeOk";

    fn body_len(&self) -> usize {
        4
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
        })
    }
}

/// Broker refuses a subscription; the connection stays open and the
/// `sub_id` stays free. The code says why: `INVALID_TOPIC`, `INVALID_GROUP`
/// or `LIMIT_REACHED` (all permanent: the same `Subscribe` again gets the
/// same answer).
///
/// # Examples
///
/// ```
/// use mq_protocol::{ErrorCode, SubscribeError};
/// let e = SubscribeError { sub_id: 1, code: ErrorCode::INVALID_TOPIC, reason: "empty topic".into() };
/// assert!(!e.code.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeError {
    /// The subscription refused.
    pub sub_id: u32,
    /// Why, as a code (see [`crate::ErrorCode`]).
    pub code: crate::ErrorCode,
    /// Why, for a person, at most [`crate::MAX_REASON_LEN`] bytes.
    pub reason: String,
}

impl Body for SubscribeError {
    const TYPE: u8 = frame_type::SUBSCRIBE_ERROR;
    const NAME: &'static str = "SubscribeError";

    fn body_len(&self) -> usize {
        4 + 2 + str_len(&self.reason)
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("reason", self.reason.len(), crate::MAX_REASON_LEN)
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u16(self.code.0);
        put_str(dst, &self.reason);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            code: crate::ErrorCode(r.u16("code")?),
            reason: r.bounded_string("reason", crate::MAX_REASON_LEN)?,
        })
    }
}

/// Broker hands a stored message to a receiver. Uses one credit.
///
/// # Examples
///
/// ```
/// use mq_protocol::{Deliver, Headers, MessageId};
/// let d = Deliver { sub_id: 1, id: MessageId::new(1, 9), delivery_attempt: 1,
///                   topic: "t".into(), headers: Headers::new(), payload: "x".into() };
/// assert_eq!(d.delivery_attempt, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The subscription this delivery is for.
    pub sub_id: u32,
    /// The message's identity (as the sender assigned it).
    pub id: MessageId,
    /// 1 for the first delivery to this group, +1 for each redelivery.
    pub delivery_attempt: u32,
    /// The message's topic: a zero-copy slice of the read buffer when
    /// decoded (see [`ByteString`](crate::ByteString)).
    pub topic: crate::ByteString,
    /// The message's headers.
    pub headers: Headers,
    /// The payload.
    pub payload: Bytes,
}

impl Body for Deliver {
    const TYPE: u8 = frame_type::DELIVER;
    const NAME: &'static str = "Deliver";

    fn body_len(&self) -> usize {
        4 + 16 + 4 + str_len(&self.topic) + self.headers.encoded_len() + 4 + self.payload.len()
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic(&self.topic)?;
        self.headers.validate()
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
        dst.put_u32(self.delivery_attempt);
        put_str(dst, &self.topic);
        self.headers.encode(dst);
        put_bytes32(dst, &self.payload);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            id: MessageId::new(r.u64("producer")?, r.u64("seq")?),
            delivery_attempt: r.u32("delivery attempt")?,
            topic: r.bounded_byte_string("topic", MAX_TOPIC_LEN)?,
            headers: Headers::decode(r)?,
            payload: r.bytes32("payload")?,
        })
    }
}

/// Receiver has processed the message; the broker may delete it for this group.
///
/// # Examples
///
/// ```
/// let a = mq_protocol::Ack { sub_id: 1, id: mq_protocol::MessageId::new(1, 1) };
/// assert_eq!(a.id.seq, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The subscription the delivery came on.
    pub sub_id: u32,
    /// The message acknowledged.
    pub id: MessageId,
}

impl Body for Ack {
    const TYPE: u8 = frame_type::ACK;
    const NAME: &'static str = "Ack";

    fn body_len(&self) -> usize {
        4 + 16
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            id: MessageId::new(r.u64("producer")?, r.u64("seq")?),
        })
    }
}

/// Receiver did not process the message; redeliver it after `delay_ms`
/// (0: the broker's own backoff schedule).
///
/// # Examples
///
/// ```
/// let n = mq_protocol::Nack { sub_id: 1, id: mq_protocol::MessageId::new(1, 1), delay_ms: 500 };
/// assert_eq!(n.delay_ms, 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack {
    /// The subscription the delivery came on.
    pub sub_id: u32,
    /// The message refused.
    pub id: MessageId,
    /// Requested redelivery delay in milliseconds; 0 lets the broker choose.
    pub delay_ms: u32,
}

impl Body for Nack {
    const TYPE: u8 = frame_type::NACK;
    const NAME: &'static str = "Nack";

    fn body_len(&self) -> usize {
        4 + 16 + 4
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u64(self.id.producer);
        dst.put_u64(self.id.seq);
        dst.put_u32(self.delay_ms);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            id: MessageId::new(r.u64("producer")?, r.u64("seq")?),
            delay_ms: r.u32("delay")?,
        })
    }
}

/// Receiver grants `credit` more deliveries on a subscription (added to what
/// remains; the total saturates at `u32::MAX`).
///
/// # Examples
///
/// ```
/// let c = mq_protocol::Credit { sub_id: 1, credit: 5 };
/// assert_eq!(c.credit, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// The subscription.
    pub sub_id: u32,
    /// Additional deliveries allowed.
    pub credit: u32,
}

impl Body for Credit {
    const TYPE: u8 = frame_type::CREDIT;
    const NAME: &'static str = "Credit";

    fn body_len(&self) -> usize {
        8
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u32(self.sub_id);
        dst.put_u32(self.credit);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            sub_id: r.u32("sub id")?,
            credit: r.u32("credit")?,
        })
    }
}
