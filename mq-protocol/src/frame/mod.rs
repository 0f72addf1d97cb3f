//! Frames: one type per exchange of the protocol, each in the file of its
//! exchange, each with its own `encode`/`decode` of the body.
//!
//! # Layout
//!
//! * [`handshake`]: `Hello`, `Welcome`, `Refuse`.
//! * [`publish`]: the first half, `Message` and `Reply`.
//! * [`consume`]: the second half, `Subscribe`, `SubscribeOk`, `Deliver`,
//!   `Ack`, `Nack`, `Credit`, `SubscribeError`.
//! * [`control`]: `Ping`, `Pong`, `Close`.
//!
//! On the wire a frame is `length: u32 BE | type: u8 | body`, where `length`
//! counts the type byte and the body. See PROTOCOL.md for every byte.

use bytes::{Bytes, BytesMut};

use crate::wire::PutBe;

use crate::wire::Reader;
use crate::ProtocolError;

pub mod consume;
pub mod control;
pub mod handshake;
pub mod publish;

pub use consume::{Ack, Credit, Deliver, Nack, Subscribe, SubscribeError, SubscribeOk};
pub use control::{Close, Ping, Pong};
pub use handshake::{Hello, Refuse, Role, Welcome};
pub use publish::{Message, MessageRef, Reply, ReplyStatus};

/// Frame type bytes. Types `0x80..=0xFF` are ignorable extensions.
pub mod frame_type {
    #![allow(missing_docs)]
    pub const HELLO: u8 = 0x01;
    pub const WELCOME: u8 = 0x02;
    pub const REFUSE: u8 = 0x03;
    pub const MESSAGE: u8 = 0x10;
    pub const REPLY: u8 = 0x11;
    pub const SUBSCRIBE: u8 = 0x20;
    pub const SUBSCRIBE_OK: u8 = 0x21;
    pub const DELIVER: u8 = 0x22;
    pub const ACK: u8 = 0x23;
    pub const NACK: u8 = 0x24;
    pub const CREDIT: u8 = 0x25;
    pub const SUBSCRIBE_ERROR: u8 = 0x26;
    pub const PING: u8 = 0x30;
    pub const PONG: u8 = 0x31;
    pub const CLOSE: u8 = 0x3f;
    /// First type of the ignorable extension range.
    pub const FIRST_EXTENSION: u8 = 0x80;
}

/// The body codec every frame struct implements.
pub(crate) trait Body: Sized {
    const TYPE: u8;
    const NAME: &'static str;
    /// Encoded body length, excluding the length prefix and type byte.
    fn body_len(&self) -> usize;
    /// Checks protocol limits (string lengths, header bounds) before encoding.
    fn validate(&self) -> Result<(), ProtocolError>;
    fn put(&self, dst: &mut BytesMut);
    fn get(r: &mut Reader) -> Result<Self, ProtocolError>;
}

macro_rules! frames {
    ($($variant:ident),* $(,)?) => {
        /// One protocol frame.
        ///
        /// # Examples
        ///
        /// ```
        /// use bytes::BytesMut;
        /// use mq_protocol::{Frame, Ping};
        ///
        /// let frame = Frame::Ping(Ping { nonce: 7 });
        /// let mut buf = BytesMut::new();
        /// frame.encode(&mut buf).unwrap();
        /// assert_eq!(&buf[..], &[0, 0, 0, 9, 0x30, 0, 0, 0, 0, 0, 0, 0, 7]);
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Frame {
            $(
                #[doc = concat!("A `", stringify!($variant), "` frame.")]
                $variant($variant),
            )*
            /// A frame in the extension range `0x80..=0xFF`. A v1 peer that
            /// receives one ignores it; it is surfaced so that tools can log it.
            Extension {
                /// The type byte, `0x80..=0xFF`.
                frame_type: u8,
                /// The raw body.
                body: Bytes,
            },
        }

        impl Frame {
            /// The type byte of this frame.
            ///
            /// # Examples
            ///
            /// ```
            /// let f = mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 1 });
            /// assert_eq!(f.frame_type(), mq_protocol::frame::frame_type::PING);
            /// ```
            pub fn frame_type(&self) -> u8 {
                match self {
                    $(Frame::$variant(_) => <$variant as Body>::TYPE,)*
                    Frame::Extension { frame_type, .. } => *frame_type,
                }
            }

            /// A short name for logs.
            ///
            /// # Examples
            ///
            /// ```
            /// let f = mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 1 });
            /// assert_eq!(f.name(), "Ping");
            /// ```
            pub fn name(&self) -> &'static str {
                match self {
                    $(Frame::$variant(_) => <$variant as Body>::NAME,)*
                    Frame::Extension { .. } => "Extension",
                }
            }

            /// Length on the wire, including the 4-byte length prefix.
            ///
            /// # Examples
            ///
            /// ```
            /// let f = mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 1 });
            /// assert_eq!(f.wire_len(), 13);
            /// ```
            pub fn wire_len(&self) -> usize {
                5 + match self {
                    $(Frame::$variant(b) => b.body_len(),)*
                    Frame::Extension { body, .. } => body.len(),
                }
            }

            /// Checks the protocol's field limits (string lengths, header
            /// bounds, extension type range) without encoding.
            ///
            /// # Errors
            ///
            /// The [`ProtocolError`] the encoder would report.
            ///
            /// # Examples
            ///
            /// ```
            /// use mq_protocol::{Frame, Subscribe};
            /// let long = "t".repeat(300);
            /// let f = Frame::Subscribe(Subscribe { sub_id: 1, credit: 1, topic: long, group: "g".into() });
            /// assert!(f.validate().is_err());
            /// ```
            pub fn validate(&self) -> Result<(), ProtocolError> {
                match self {
                    $(Frame::$variant(b) => b.validate(),)*
                    Frame::Extension { frame_type, body } => {
                        if *frame_type < frame_type::FIRST_EXTENSION {
                            return Err(ProtocolError::InvalidValue {
                                frame: "Extension",
                                field: "frame type",
                                value: u64::from(*frame_type),
                            });
                        }
                        crate::wire::check_len("extension body", body.len(), u32::MAX as usize - 1)
                    }
                }
            }

            /// Appends the whole frame (length prefix, type, body) to `dst`.
            /// Does not check a maximum frame size; the [`crate::Codec`] does.
            ///
            /// # Errors
            ///
            /// A field breaks a protocol limit (see [`Frame::validate`]).
            ///
            /// # Examples
            ///
            /// ```
            /// let mut buf = bytes::BytesMut::new();
            /// mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 1 }).encode(&mut buf).unwrap();
            /// assert_eq!(buf.len(), 13);
            /// ```
            pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
                self.validate()?;
                let len = self.wire_len();
                dst.reserve(len);
                dst.put_u32((len - 4) as u32);
                dst.put_u8(self.frame_type());
                match self {
                    $(Frame::$variant(b) => b.put(dst),)*
                    Frame::Extension { body, .. } => dst.put_slice(body),
                }
                Ok(())
            }

            /// Decodes a frame from its type byte and body. Bytes after the
            /// fields this version knows are ignored (forward compatibility).
            ///
            /// # Errors
            ///
            /// [`ProtocolError`] for an unknown mandatory type, a truncated or
            /// invalid field.
            ///
            /// # Examples
            ///
            /// ```
            /// use mq_protocol::{Frame, Ping};
            /// let body = bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 7, 0xEE]);
            /// assert_eq!(Frame::decode(0x30, body).unwrap(), Frame::Ping(Ping { nonce: 7 }));
            /// ```
            pub fn decode(frame_type: u8, body: Bytes) -> Result<Frame, ProtocolError> {
                match frame_type {
                    $(<$variant as Body>::TYPE => {
                        let mut r = Reader::new(body, <$variant as Body>::NAME);
                        Ok(Frame::$variant(<$variant as Body>::get(&mut r)?))
                    })*
                    t if t >= frame_type::FIRST_EXTENSION => Ok(Frame::Extension { frame_type: t, body }),
                    t => Err(ProtocolError::UnknownFrameType(t)),
                }
            }
        }

        $(
            impl From<$variant> for Frame {
                fn from(f: $variant) -> Frame {
                    Frame::$variant(f)
                }
            }
        )*
    };
}

frames!(
    Hello,
    Welcome,
    Refuse,
    Message,
    Reply,
    Subscribe,
    SubscribeOk,
    SubscribeError,
    Deliver,
    Ack,
    Nack,
    Credit,
    Ping,
    Pong,
    Close,
);

impl Frame {
    /// The frame size as the length prefix states it: type byte plus body
    /// (what [`crate::Codec`]'s maximum bounds).
    ///
    /// # Examples
    ///
    /// ```
    /// let f = mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 1 });
    /// assert_eq!(f.frame_size(), 9);
    /// ```
    pub fn frame_size(&self) -> usize {
        self.wire_len() - 4
    }
}

impl Message {
    /// The frame size this message will have on the wire (type byte plus
    /// body), so a sender can refuse an oversized message before sending.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::{Headers, Message, MessageId};
    /// let m = Message { id: MessageId::new(1, 1), attempt: 1, topic: "t".into(),
    ///                   headers: Headers::new(), payload: vec![0u8; 100].into() };
    /// assert_eq!(m.frame_size(), mq_protocol::MESSAGE_OVERHEAD - 4 + 1 + 100);
    /// ```
    pub fn frame_size(&self) -> usize {
        1 + self.body_len()
    }
}
