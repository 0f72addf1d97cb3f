//! Numeric codes carried by `Refuse`, `Close` and rejected `Reply` frames.

use std::fmt;

/// A 16-bit code explaining a refusal, a close or a rejected message.
///
/// Codes `100..=199` on a rejected reply are *transient*: the same message may
/// succeed if sent again later, so senders retry them with backoff. Codes
/// `200..=299` are *permanent*: sending the same bytes again cannot help.
/// Codes below 100 describe the connection (they appear in `Refuse` and
/// `Close`). Unknown codes must be accepted and treated by range.
///
/// # Examples
///
/// ```
/// use mq_protocol::ErrorCode;
///
/// assert!(ErrorCode::STORE_FULL.is_retryable());
/// assert!(!ErrorCode::MESSAGE_TOO_LARGE.is_retryable());
/// assert_eq!(ErrorCode::STORE_FULL.name(), "STORE_FULL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $val:expr; )*) => {
        impl ErrorCode {
            $( $(#[$doc])* pub const $name: ErrorCode = ErrorCode($val); )*

            /// The symbolic name of a known code, `"UNKNOWN"` otherwise.
            ///
            /// # Examples
            ///
            /// ```
            /// assert_eq!(mq_protocol::ErrorCode(4).name(), "UNAUTHORIZED");
            /// assert_eq!(mq_protocol::ErrorCode(999).name(), "UNKNOWN");
            /// ```
            pub fn name(self) -> &'static str {
                match self.0 {
                    $( $val => stringify!($name), )*
                    _ => "UNKNOWN",
                }
            }
        }
    };
}

codes! {
    /// Normal close; no error.
    NORMAL = 0;
    /// The peer sent bytes that are not a valid frame (see the reason).
    PROTOCOL_ERROR = 1;
    /// A frame's length prefix exceeded the receiver's maximum frame size.
    FRAME_TOO_LARGE = 2;
    /// No protocol version in the client's range is supported by the server.
    UNSUPPORTED_VERSION = 3;
    /// The hello carried no token or the wrong token.
    UNAUTHORIZED = 4;
    /// A valid frame arrived that is not allowed in this state or role.
    UNEXPECTED_FRAME = 5;
    /// Nothing was received from the peer within the heartbeat timeout.
    HEARTBEAT_TIMEOUT = 6;
    /// The server is at its connection limit.
    TOO_MANY_CONNECTIONS = 7;
    /// The server is shutting down or restarting.
    SHUTTING_DOWN = 8;
    /// An ack, nack or credit named a subscription this connection does not have.
    UNKNOWN_SUBSCRIPTION = 9;
    /// No `Hello` arrived within the broker's handshake timeout.
    HANDSHAKE_TIMEOUT = 10;
    /// Transient: the broker's store is at its message-count or byte limit.
    STORE_FULL = 100;
    /// Transient: the broker cannot take the message right now.
    BUSY = 101;
    /// Permanent: the message is larger than the broker accepts.
    MESSAGE_TOO_LARGE = 200;
    /// Permanent: the topic is empty or longer than allowed.
    INVALID_TOPIC = 201;
    /// Permanent: the headers break the broker's limits.
    INVALID_HEADERS = 202;
    /// Permanent (`SubscribeError`): the group name is longer than allowed.
    INVALID_GROUP = 203;
    /// Permanent (`SubscribeError`): the subscription would break a broker
    /// limit (subscriptions per connection, groups per topic, topics).
    LIMIT_REACHED = 204;
}

impl ErrorCode {
    /// True for transient rejection codes (`100..=199`): a later retry may succeed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_protocol::ErrorCode::BUSY.is_retryable());
    /// ```
    pub fn is_retryable(self) -> bool {
        (100..200).contains(&self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
