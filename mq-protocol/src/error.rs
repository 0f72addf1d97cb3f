//! The one error type of decoding and encoding.

use crate::ErrorCode;

/// Why bytes could not be decoded into a frame, or a frame could not be encoded.
///
/// Every variant means the connection that produced it can no longer be
/// trusted to be in sync: close it (sending `Close` with [`ProtocolError::code`])
/// and keep every other connection running. Decoding never panics and never
/// allocates more than the configured maximum frame size.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length prefix announces a frame larger than the configured maximum.
    /// Raise `max_frame_size` on both peers, or send smaller messages.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// The announced (or, when encoding, computed) frame length.
        len: u64,
        /// The configured maximum.
        max: u32,
    },
    /// A length prefix of zero: every frame has at least a type byte.
    #[error("frame with length 0 (a frame has at least its type byte)")]
    EmptyFrame,
    /// A frame type below 0x80 that this version does not know. Such types are
    /// mandatory to understand; types 0x80..=0xFF are ignorable extensions.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    /// The frame ended before a field was complete.
    #[error("{frame} frame truncated while reading {field}")]
    Truncated {
        /// The frame being decoded.
        frame: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A string field is not valid UTF-8.
    #[error("{frame} frame: field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The frame being decoded.
        frame: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An enumerated field holds a value this version does not define.
    #[error("{frame} frame: field {field} has invalid value {value}")]
    InvalidValue {
        /// The frame being decoded.
        frame: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A string or byte field is longer than the protocol allows.
    #[error("{field} is {len} bytes; the limit is {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More headers than [`crate::MAX_HEADERS`].
    #[error("{count} headers; the limit is {max}")]
    TooManyHeaders {
        /// Header count found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Header keys and values add up to more than [`crate::MAX_HEADER_BYTES`].
    #[error("headers total {bytes} bytes; the limit is {max}")]
    HeadersTooLarge {
        /// Total key and value bytes.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// The code to put in the `Close` frame sent to the peer that caused this.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{ErrorCode, ProtocolError};
    /// let e = ProtocolError::FrameTooLarge { len: 10, max: 5 };
    /// assert_eq!(e.code(), ErrorCode::FRAME_TOO_LARGE);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }
}
