//! Message headers: a small, bounded list of key/value pairs.

use bytes::{Bytes, BytesMut};

use crate::wire::PutBe;

use crate::wire::{self, Reader};
use crate::{ProtocolError, MAX_HEADERS, MAX_HEADER_BYTES};

/// Optional metadata carried with a message and its deliveries.
///
/// Keys are UTF-8 strings, values are bytes. Order is preserved and keys may
/// repeat. The protocol bounds them: at most [`MAX_HEADERS`] entries, and at
/// most [`MAX_HEADER_BYTES`] bytes of keys and values together.
///
/// # Examples
///
/// ```
/// use mq_protocol::Headers;
///
/// let mut h = Headers::new();
/// h.insert("content-type", "application/json");
/// assert_eq!(h.get("content-type").map(|v| &v[..]), Some(&b"application/json"[..]));
/// assert!(h.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Bytes)>,
}

impl Headers {
    /// No headers. A `const fn`, so an empty set can be a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// static NONE: mq_protocol::Headers = mq_protocol::Headers::new();
    /// assert!(NONE.is_empty());
    /// ```
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Appends a header (keys may repeat).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = mq_protocol::Headers::new();
    /// h.insert("trace", "abc");
    /// assert_eq!(h.len(), 1);
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        self.entries.push((key.into(), value.into()));
    }

    /// The first value for `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = mq_protocol::Headers::new();
    /// h.insert("k", "v");
    /// assert!(h.get("k").is_some() && h.get("x").is_none());
    /// ```
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All entries in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = mq_protocol::Headers::new();
    /// h.insert("a", "1");
    /// assert_eq!(h.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_protocol::Headers::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_protocol::Headers::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of keys and values (what [`MAX_HEADER_BYTES`] bounds).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = mq_protocol::Headers::new();
    /// h.insert("ab", "cde");
    /// assert_eq!(h.payload_bytes(), 5);
    /// ```
    pub fn payload_bytes(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Checks the protocol bounds; a sender calls this before taking a slot.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::TooManyHeaders`] or [`ProtocolError::HeadersTooLarge`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = mq_protocol::Headers::new();
    /// for i in 0..=mq_protocol::MAX_HEADERS { h.insert(i.to_string(), "x"); }
    /// assert!(h.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.entries.len() > MAX_HEADERS {
            return Err(ProtocolError::TooManyHeaders {
                count: self.entries.len(),
                max: MAX_HEADERS,
            });
        }
        let bytes = self.payload_bytes();
        if bytes > MAX_HEADER_BYTES {
            return Err(ProtocolError::HeadersTooLarge {
                bytes,
                max: MAX_HEADER_BYTES,
            });
        }
        Ok(())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self
            .entries
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.entries.len() as u16);
        for (k, v) in &self.entries {
            wire::put_str(dst, k);
            wire::put_bytes16(dst, v);
        }
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, ProtocolError> {
        Self::decode_with(r, true)
    }

    /// Decodes headers without the count and byte limits (a `Message`:
    /// breaking them is a message-level limit the broker answers with
    /// `Rejected(INVALID_HEADERS)`, not a malformed frame). Memory stays
    /// bounded by the frame: every header takes at least 4 bytes of it.
    pub(crate) fn decode_unlimited(r: &mut Reader) -> Result<Self, ProtocolError> {
        Self::decode_with(r, false)
    }

    fn decode_with(r: &mut Reader, strict: bool) -> Result<Self, ProtocolError> {
        let count = r.u16("header count")? as usize;
        if strict && count > MAX_HEADERS {
            return Err(ProtocolError::TooManyHeaders {
                count,
                max: MAX_HEADERS,
            });
        }
        // Each header takes at least 4 bytes; refuse impossible counts before
        // allocating the vector.
        if count * 4 > r.remaining() {
            return Err(ProtocolError::Truncated {
                frame: r.frame(),
                field: "headers",
            });
        }
        let mut entries = Vec::with_capacity(count);
        let mut bytes = 0usize;
        for _ in 0..count {
            let k = r.string("header key")?;
            let v = r.bytes16("header value")?;
            bytes += k.len() + v.len();
            if strict && bytes > MAX_HEADER_BYTES {
                return Err(ProtocolError::HeadersTooLarge {
                    bytes,
                    max: MAX_HEADER_BYTES,
                });
            }
            entries.push((k, v));
        }
        Ok(Self { entries })
    }
}

impl<K: Into<String>, V: Into<Bytes>> FromIterator<(K, V)> for Headers {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}
