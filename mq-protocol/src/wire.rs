//! Primitive field encoding: big-endian integers, `u16`-prefixed UTF-8
//! strings, `u16`- and `u32`-prefixed byte strings.
//!
//! [`Reader`] reads from a frame body held as [`Bytes`], so byte fields are
//! zero-copy slices of the read buffer. Every read checks the remaining length
//! first and reports [`ProtocolError::Truncated`] instead of panicking.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ProtocolError;

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
