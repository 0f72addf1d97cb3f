//! Primitive field encoding: big-endian integers, `u16`-prefixed UTF-8
//! strings, `u16`- and `u32`-prefixed byte strings.
//!
//! [`Reader`] reads from a frame body held as [`Bytes`], so byte fields are
//! zero-copy slices of the read buffer. Every read checks the remaining length
//! first and reports [`ProtocolError::Truncated`] instead of panicking.

use bytes::{Buf, Bytes, BytesMut};

use crate::ProtocolError;

/// Big-endian writes into a [`BytesMut`] that compile to plain stores.
///
/// `bytes`' `BufMut` integer writers go through `BytesMut::put_slice`, which
/// is not `#[inline]`: every `put_u32` was an out-of-line call plus a
/// `memcpy` call (callgrind, mq-bench end to end: about 47 per message,
/// `memcpy` 9 % of all instructions). `extend_from_slice` is `#[inline]`, so
/// with a constant length the copy becomes a store. The bytes written are the
/// same.
pub(crate) trait PutBe {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_slice(&mut self, s: &[u8]);
}

impl PutBe for BytesMut {
    #[inline]
    fn put_u8(&mut self, v: u8) {
        self.extend_from_slice(&[v]);
    }

    #[inline]
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// A bounds-checked cursor over one frame body.
pub(crate) struct Reader {
    buf: Bytes,
    frame: &'static str,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, frame: &'static str) -> Self {
        Self { buf, frame }
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), ProtocolError> {
        if self.buf.remaining() < n {
            Err(ProtocolError::Truncated {
                frame: self.frame,
                field,
            })
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    /// `u16` length, then that many bytes (zero-copy).
    pub(crate) fn bytes16(&mut self, field: &'static str) -> Result<Bytes, ProtocolError> {
        let len = self.u16(field)? as usize;
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    /// `u32` length, then that many bytes (zero-copy).
    pub(crate) fn bytes32(&mut self, field: &'static str) -> Result<Bytes, ProtocolError> {
        let len = self.u32(field)? as usize;
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    /// `u16` length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let raw = self.bytes16(field)?;
        String::from_utf8(raw.to_vec()).map_err(|_| ProtocolError::InvalidUtf8 {
            frame: self.frame,
            field,
        })
    }

    /// `u16` length, then that many bytes of UTF-8, as a zero-copy slice of
    /// the frame (no allocation).
    pub(crate) fn byte_string(
        &mut self,
        field: &'static str,
    ) -> Result<bytestring::ByteString, ProtocolError> {
        let raw = self.bytes16(field)?;
        bytestring::ByteString::try_from(raw).map_err(|_| ProtocolError::InvalidUtf8 {
            frame: self.frame,
            field,
        })
    }

    /// [`Reader::byte_string`] with a protocol length limit.
    pub(crate) fn bounded_byte_string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<bytestring::ByteString, ProtocolError> {
        let s = self.byte_string(field)?;
        check_len(field, s.len(), max)?;
        Ok(s)
    }

    /// A string field with a protocol length limit.
    pub(crate) fn bounded_string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<String, ProtocolError> {
        let s = self.string(field)?;
        check_len(field, s.len(), max)?;
        Ok(s)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    pub(crate) fn frame(&self) -> &'static str {
        self.frame
    }
}

pub(crate) fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), ProtocolError> {
    if len > max {
        Err(ProtocolError::FieldTooLong { field, len, max })
    } else {
        Ok(())
    }
}

/// Encoded size of a `u16`-prefixed string.
pub(crate) fn str_len(s: &str) -> usize {
    2 + s.len()
}

pub(crate) fn put_str(dst: &mut BytesMut, s: &str) {
    // Callers validate lengths before encoding (see `Frame::validate`).
    dst.put_u16(s.len() as u16);
    dst.put_slice(s.as_bytes());
}

pub(crate) fn put_bytes16(dst: &mut BytesMut, b: &[u8]) {
    dst.put_u16(b.len() as u16);
    dst.put_slice(b);
}

pub(crate) fn put_bytes32(dst: &mut BytesMut, b: &[u8]) {
    dst.put_u32(b.len() as u32);
    dst.put_slice(b);
}
