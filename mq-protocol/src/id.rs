//! Message identifiers: a producer id and a per-producer sequence.

use std::fmt;
use std::str::FromStr;

/// The 128-bit identity of a message: who produced it and its sequence number
/// within that producer.
///
/// Every retransmission of a message carries the same `MessageId`; the broker
/// and the receiver dedupe on it. Because sequences of one producer are dense
/// and increasing, both sides can remember "seen" IDs exactly as ranges per
/// producer instead of a lossy structure.
///
/// The text form (for logs and admin tools) is the producer id as 16 lowercase
/// hex digits, a `-`, and the sequence in decimal: `00000000000000ff-42`.
///
/// # Examples
///
/// ```
/// use mq_protocol::MessageId;
///
/// let id = MessageId::new(255, 42);
/// assert_eq!(id.to_string(), "00000000000000ff-42");
/// assert_eq!("00000000000000ff-42".parse::<MessageId>().unwrap(), id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Identifies the producer (one sender instance, or one durable outbox).
    pub producer: u64,
    /// Sequence number within the producer; never reused by that producer.
    pub seq: u64,
}

impl MessageId {
    /// Builds an ID from its two halves.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mq_protocol::MessageId::new(7, 1);
    /// assert_eq!((id.producer, id.seq), (7, 1));
    /// ```
    pub const fn new(producer: u64, seq: u64) -> Self {
        Self { producer, seq }
    }

    /// The ID as one 128-bit number (producer in the high half).
    ///
    /// # Examples
    ///
    /// ```
    /// let id = mq_protocol::MessageId::new(1, 2);
    /// assert_eq!(id.as_u128(), (1u128 << 64) | 2);
    /// ```
    pub const fn as_u128(self) -> u128 {
        ((self.producer as u128) << 64) | self.seq as u128
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.producer, self.seq)
    }
}

/// Why a string is not a valid [`MessageId`] text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// The text has no `-` between producer and sequence; expected `<16 hex>-<decimal>`.
    #[error("message id {0:?} has no '-' separator; expected <16 hex digits>-<decimal seq>")]
    MissingSeparator(String),
    /// The producer part is not exactly 16 hex digits.
    #[error("message id {0:?}: producer must be exactly 16 hex digits")]
    BadProducer(String),
    /// The sequence part is not a decimal `u64`.
    #[error("message id {0:?}: sequence must be a decimal u64")]
    BadSeq(String),
}

impl FromStr for MessageId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (p, q) = s
            .split_once('-')
            .ok_or_else(|| ParseIdError::MissingSeparator(s.to_owned()))?;
        if p.len() != 16 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseIdError::BadProducer(s.to_owned()));
        }
        let producer =
            u64::from_str_radix(p, 16).map_err(|_| ParseIdError::BadProducer(s.to_owned()))?;
        if q.is_empty() || !q.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseIdError::BadSeq(s.to_owned()));
        }
        let seq = q.parse().map_err(|_| ParseIdError::BadSeq(s.to_owned()))?;
        Ok(Self { producer, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_extremes() {
        for id in [
            MessageId::new(0, 0),
            MessageId::new(u64::MAX, u64::MAX),
            MessageId::new(0xdead_beef, 1),
        ] {
            assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
        }
    }

    #[test]
    fn bad_text_is_refused() {
        assert!(matches!(
            "abc".parse::<MessageId>(),
            Err(ParseIdError::MissingSeparator(_))
        ));
        assert!(matches!(
            "ff-1".parse::<MessageId>(),
            Err(ParseIdError::BadProducer(_))
        ));
        assert!(matches!(
            "00000000000000ff-".parse::<MessageId>(),
            Err(ParseIdError::BadSeq(_))
        ));
        assert!(matches!(
            "00000000000000ff-+1".parse::<MessageId>(),
            Err(ParseIdError::BadSeq(_))
        ));
        assert!(matches!(
            "00000000000000ff-99999999999999999999".parse::<MessageId>(),
            Err(ParseIdError::BadSeq(_))
        ));
    }
}
