//! The wire protocol shared by `mq-client-sender`, `mq-client-receiver` and
//! `mq-mock-broker`: frames, a `tokio_util` codec, message IDs, error codes,
//! and the backoff schedule every retransmission timer uses.
//!
//! The complete specification, with a hex dump of every frame, is
//! `PROTOCOL.md` at the repository root; the golden tests of this crate use
//! the same bytes.
//!
//! # Layout
//!
//! * [`id`]: [`MessageId`], 128 bits: producer id and per-producer sequence.
//! * [`frame`]: one struct per frame type and the [`Frame`] enum.
//! * [`codec`]: [`Codec`], length-prefixed framing with a maximum frame size.
//! * [`codes`]: [`ErrorCode`] values and which rejections are retryable.
//! * [`backoff`]: [`Backoff`], exponential backoff with seedable jitter.
//! * [`hash`]: the fast seeded hashers of every side's ID-keyed tables.
//!
//! # Guarantees
//!
//! * Decoding never panics and never allocates more than the configured
//!   maximum frame size (default [`DEFAULT_MAX_FRAME_SIZE`], 1 MiB) plus the
//!   4-byte prefix: the length prefix is checked before anything is reserved.
//! * Payloads are decoded as zero-copy slices of the read buffer.
//! * Every malformed input is a typed [`ProtocolError`]; the connection that
//!   sent it should be closed with [`ProtocolError::code`], nothing else.
//! * Forward compatibility: bytes after the known fields of a frame are
//!   ignored, frame types `0x80..=0xFF` are ignorable extensions, unknown
//!   types below `0x80` are an error.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use mq_protocol::{Codec, Frame, Headers, Message, MessageId};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let msg = Message {
//!     id: MessageId::new(1, 1),
//!     attempt: 1,
//!     topic: "orders".into(),
//!     headers: Headers::new(),
//!     payload: "hello".into(),
//! };
//! let mut codec = Codec::default();
//! let mut buf = BytesMut::new();
//! codec.encode(Frame::Message(msg.clone()), &mut buf)?;
//! assert_eq!(codec.decode(&mut buf)?, Some(Frame::Message(msg)));
//! # Ok::<(), mq_protocol::ProtocolError>(())
//! ```
#![warn(missing_docs)]

pub mod backoff;
pub mod codec;
pub mod codes;
mod error;
pub mod frame;
pub mod hash;
mod headers;
pub mod id;
mod wire;

pub use backoff::{Backoff, BackoffError};
/// An immutable UTF-8 string backed by [`bytes::Bytes`] (from the
/// `bytestring` crate): the type of [`Message::topic`], so decoding a
/// `Message` slices its topic out of the read buffer instead of allocating.
/// It derefs to `&str` and converts from `&str` and `String`.
///
/// # Examples
///
/// ```
/// let t: mq_protocol::ByteString = "orders".into();
/// assert_eq!(&*t, "orders");
/// assert_eq!(t, "orders");
/// ```
pub use bytestring::ByteString;
pub use codec::Codec;
pub use codes::ErrorCode;
pub use error::ProtocolError;
pub use frame::{
    Ack, Close, Credit, Deliver, Frame, Hello, Message, MessageRef, Nack, Ping, Pong, Refuse,
    Reply, ReplyStatus, Role, Subscribe, SubscribeError, SubscribeOk, Welcome,
};
pub use headers::Headers;
pub use id::{MessageId, ParseIdError};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Default maximum frame size (type byte plus body): 1 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 20;
/// Maximum topic length in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Maximum length of client, server and group names in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Maximum length of a `reason` string in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Maximum length of an auth token in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Maximum number of headers on one message.
pub const MAX_HEADERS: usize = 64;
/// Maximum total bytes of header keys and values on one message.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Fixed bytes of a `Message` frame besides topic, headers and payload:
/// length prefix 4, type 1, id 16, attempt 4, topic length 2, header count 2,
/// payload length 4.
pub const MESSAGE_OVERHEAD: usize = 33;
