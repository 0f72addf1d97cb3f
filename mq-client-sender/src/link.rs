//! One live connection as the driver sees it: a read side (buffer and
//! decoder) and a write side (coalescing buffer and encoder), each with a
//! cancel-safe async step for the driver's `select!`.

use std::future::pending;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use mq_protocol::{Codec, Frame, MessageRef, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::{Decoder, Encoder};

use mq_conn::{BoxIo, Established};

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// The driver stops encoding queued messages into the write buffer above
/// this many bytes and writes first (bounds the copy held in user space).
pub(crate) const WRITE_HIGH_WATER: usize = 256 * 1024;

pub(crate) struct ReadSide {
    rd: ReadHalf<BoxIo>,
    buf: BytesMut,
    dec: Codec,
}

pub(crate) struct WriteSide {
    wr: WriteHalf<BoxIo>,
    pub(crate) buf: BytesMut,
    enc: Codec,
}

/// Splits an established connection into its two sides.
pub(crate) fn split(est: Established, our_max_frame: u32) -> (ReadSide, WriteSide) {
    let (rd, wr) = tokio::io::split(est.io);
    let send_max = our_max_frame.min(est.welcome.max_frame_size);
    let mut buf = est.leftover;
    buf.reserve(READ_CHUNK);
    (
        ReadSide {
            rd,
            buf,
            dec: Codec::new(our_max_frame),
        },
        WriteSide {
            wr,
            buf: BytesMut::with_capacity(WRITE_HIGH_WATER + READ_CHUNK),
            enc: Codec::new(send_max),
        },
    )
}

impl ReadSide {
    /// The next complete frame already buffered.
    pub(crate) fn decode(&mut self) -> Result<Option<Frame>, ProtocolError> {
        self.dec.decode(&mut self.buf)
    }
}

impl WriteSide {
    /// The largest frame the broker accepts.
    pub(crate) fn max_frame(&self) -> usize {
        self.enc.max_frame_size() as usize
    }

    /// Appends a frame to the write buffer.
    pub(crate) fn push(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        self.enc.encode(frame, &mut self.buf)
    }

    /// Appends a `Message` frame from its borrowed parts.
    pub(crate) fn push_message(&mut self, m: MessageRef<'_>) -> Result<(), ProtocolError> {
        self.enc.encode(m, &mut self.buf)
    }

    /// Writes what is buffered, bounded by `limit`, ignoring errors (used for
    /// a goodbye `Close`).
    pub(crate) async fn drain(mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            self.wr.write_all_buf(&mut self.buf).await?;
            self.wr.shutdown().await
        })
        .await;
    }
}

/// Reads more bytes. Cancel-safe: `read_buf` either reads into the buffer or
/// does nothing. Never completes without a read side.
pub(crate) async fn read_some(side: Option<&mut ReadSide>) -> io::Result<usize> {
    match side {
        Some(s) => {
            if s.buf.capacity() - s.buf.len() < READ_CHUNK / 4 {
                s.buf.reserve(READ_CHUNK);
            }
            s.rd.read_buf(&mut s.buf).await
        }
        None => pending().await,
    }
}

/// Writes some buffered bytes. Cancel-safe: `write_buf` advances the buffer
/// only by what was written. Never completes with nothing to write.
pub(crate) async fn write_some(side: Option<&mut WriteSide>) -> io::Result<usize> {
    match side {
        Some(s) if !s.buf.is_empty() => s.wr.write_buf(&mut s.buf).await,
        _ => pending().await,
    }
}
