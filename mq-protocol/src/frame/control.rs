//! Connection control: `Ping`, `Pong`, `Close`.

use bytes::{BufMut, BytesMut};

use super::{frame_type, Body};
use crate::wire::{check_len, put_str, str_len, Reader};
use crate::{ErrorCode, ProtocolError, MAX_REASON_LEN};

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

impl Body for Close {
    const TYPE: u8 = frame_type::CLOSE;
    const NAME: &'static str = "Close";

    fn body_len(&self) -> usize {
        2 + str_len(&self.reason)
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        check_len("reason", self.reason.len(), MAX_REASON_LEN)
    }

    fn put(&self, dst: &mut BytesMut) {
        dst.put_u16(self.code.0);
        put_str(dst, &self.reason);
    }

    fn get(r: &mut Reader) -> Result<Self, ProtocolError> {
        Ok(Self {
            code: ErrorCode(r.u16("code")?),
            reason: r.bounded_string("reason", MAX_REASON_LEN)?,
        })
    }
}
