//! The `tokio_util::codec` framing: a `u32` big-endian length prefix, a type
//! byte, a body. The maximum frame size is checked from the length prefix
//! before anything is reserved or allocated, in both directions.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Frame, MessageRef, ProtocolError, DEFAULT_MAX_FRAME_SIZE};

/// Encoder and decoder of [`Frame`]s with a maximum frame size.
///
/// The *frame size* is the value of the length prefix: the type byte plus the
/// body, not counting the 4 prefix bytes. A larger prefix is refused with
/// [`ProtocolError::FrameTooLarge`] as soon as its 4 bytes arrive, so a peer
/// can never make this side allocate more than `max_frame_size + 4` bytes.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use mq_protocol::{Codec, Frame, Ping};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = Codec::default();
/// let mut buf = BytesMut::new();
/// codec.encode(Frame::Ping(Ping { nonce: 1 }), &mut buf).unwrap();
/// assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Ping(Ping { nonce: 1 })));
///
/// // A length prefix of 2 GiB is refused before any allocation.
/// let mut evil = BytesMut::from(&[0x80, 0, 0, 0][..]);
/// assert!(codec.decode(&mut evil).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_frame_size: u32,
}

impl Codec {
    /// A codec that refuses frames larger than `max_frame_size` bytes
    /// (type byte plus body). Values below 64 are raised to 64, enough for
    /// every control frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_protocol::Codec::new(4096);
    /// assert_eq!(c.max_frame_size(), 4096);
    /// ```
    pub fn new(max_frame_size: u32) -> Self {
        Self {
            max_frame_size: max_frame_size.max(64),
        }
    }

    /// The configured maximum frame size.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_protocol::Codec::default().max_frame_size(), mq_protocol::DEFAULT_MAX_FRAME_SIZE);
    /// ```
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Changes the maximum, e.g. to the smaller of both peers' after the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut c = mq_protocol::Codec::default();
    /// c.set_max_frame_size(1024);
    /// assert_eq!(c.max_frame_size(), 1024);
    /// ```
    pub fn set_max_frame_size(&mut self, max: u32) {
        self.max_frame_size = max.max(64);
    }

    fn check(&self, frame_size: u64) -> Result<(), ProtocolError> {
        if frame_size > u64::from(self.max_frame_size) {
            Err(ProtocolError::FrameTooLarge {
                len: frame_size,
                max: self.max_frame_size,
            })
        } else {
            Ok(())
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl Decoder for Codec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len == 0 {
            return Err(ProtocolError::EmptyFrame);
        }
        self.check(u64::from(len))?;
        let total = 4 + len as usize;
        if src.len() < total {
            // Bounded by max_frame_size, checked above.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(4);
        let frame_type = src.get_u8();
        let body = src.split_to(len as usize - 1).freeze();
        Frame::decode(frame_type, body).map(Some)
    }
}

impl Encoder<&Frame> for Codec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.check(frame.frame_size() as u64)?;
        frame.encode(dst)
    }
}

impl Encoder<Frame> for Codec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode(&frame, dst)
    }
}

/// Encodes a `Message` frame from borrowed parts (no [`Frame`] built), with
/// the same maximum-frame-size check as a [`Frame`].
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use mq_protocol::{Codec, Frame, Headers, MessageId, MessageRef};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let h = Headers::new();
/// let m = MessageRef { id: MessageId::new(1, 1), attempt: 1, topic: "t", headers: &h, payload: b"x" };
/// let mut codec = Codec::default();
/// let mut buf = BytesMut::new();
/// codec.encode(m, &mut buf)?;
/// let Some(Frame::Message(back)) = codec.decode(&mut buf)? else { unreachable!() };
/// assert_eq!(back.parts(), m);
///
/// let big = vec![0u8; 100];
/// let m = MessageRef { payload: &big, ..m };
/// assert!(Codec::new(64).encode(m, &mut buf).is_err());
/// # Ok::<(), mq_protocol::ProtocolError>(())
/// ```
impl Encoder<MessageRef<'_>> for Codec {
    type Error = ProtocolError;

    fn encode(&mut self, msg: MessageRef<'_>, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.check(msg.frame_size() as u64)?;
        msg.encode(dst)
    }
}
