//! Connection control: `Ping`, `Pong`, `Close`.

use bytes::BytesMut;

use crate::wire::PutBe;

use super::{frame_type, Body};
use crate::wire::Reader;
use crate::{ErrorCode, ProtocolError};

/// Heartbeat probe; the peer answers `Pong` with the same nonce.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_protocol::Ping { nonce: 3 }.nonce, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Echoed in the `Pong`.
    pub nonce: u64,
}

/// Answer to a `Ping`.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_protocol::Pong { nonce: 3 }.nonce, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The `Ping`'s nonce.
    pub nonce: u64,
}

macro_rules! nonce_frame {
    ($t:ident, $ty:expr) => {
        impl Body for $t {
            const TYPE: u8 = $ty;
            const NAME: &'static str = stringify!($t);

            fn body_len(&self) -> usize {
                8
            }

            fn validate(&self) -> Result<(), ProtocolError> {
                Ok(())
            }

            fn put(&self, dst: &mut BytesMut) {
                dst.put_u64(self.nonce);
            }

            fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
                Ok(Self {
                    nonce: r.u64("nonce")?,
                })
            }
        }
    };
}

nonce_frame!(Ping, frame_type::PING);
nonce_frame!(Pong, frame_type::PONG);

/// The sender of this frame is closing the connection, and says why. Either
/// side may send it; the receiver of it closes too.
///
/// # Examples
///
/// ```
/// let c = mq_protocol::Close { code: mq_protocol::ErrorCode::NORMAL, reason: String::new() };
/// assert_eq!(c.code.0, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Why, as a code.
    pub code: ErrorCode,
    /// Why, for a person.
    pub reason: String,
}

/// `code: u16`, then `reason: str`: the body of both `Refuse` and `Close`.
macro_rules! code_reason_frame {
    ($t:ident, $ty:expr) => {
        impl $crate::frame::Body for $t {
            const TYPE: u8 = $ty;
            const NAME: &'static str = stringify!($t);

            fn body_len(&self) -> usize {
                2 + $crate::wire::str_len(&self.reason)
            }

            fn validate(&self) -> Result<(), $crate::ProtocolError> {
                $crate::wire::check_len("reason", self.reason.len(), $crate::MAX_REASON_LEN)
            }

            fn put(&self, dst: &mut bytes::BytesMut) {
                $crate::wire::PutBe::put_u16(dst, self.code.0);
                $crate::wire::put_str(dst, &self.reason);
            }

            fn get(r: &mut $crate::wire::Reader) -> Result<Self, $crate::ProtocolError> {
                Ok(Self {
                    code: $crate::ErrorCode(r.u16("code")?),
                    reason: r.bounded_string("reason", $crate::MAX_REASON_LEN)?,
                })
            }
        }
    };
}
pub(crate) use code_reason_frame;

code_reason_frame!(Close, frame_type::CLOSE);
