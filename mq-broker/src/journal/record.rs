//! The journal's records and their byte format.
//!
//! A record on disk is `len: u32 LE | crc: u32 LE | kind: u8 | body`, where
//! `len` counts `kind` and `body` and `crc` is CRC-32 (IEEE, `crc32fast`) of
//! the same bytes. A `len` of 0 marks the end of the written part of a
//! segment (segments are preallocated, so the rest is zeros). Integers in
//! bodies are little-endian; strings and byte strings carry a length
//! prefix (`u16` for names, header keys and values, `u32` for payloads).
//!
//! Decoding never trusts a length: every read is checked against the
//! bytes at hand, so a torn or corrupt record is an error, not a panic or
//! an allocation of a peer-chosen size.

use bytes::{BufMut, Bytes};
use mq_protocol::{Headers, MessageId};

/// Bytes before a record's body: `len`, `crc` and `kind`.
pub(crate) const HEADER: usize = 9;
/// Largest record accepted when reading (a message record is bounded by
/// the broker's frame size; snapshot records by the dedup bounds).
pub(crate) const MAX_RECORD: usize = 64 << 20;

/// One journal record. Live operation writes `Land`, `Group`,
/// `Delivered`, `Ack` and `Dead` (and `Requeued`, `Purged` for operator
/// actions); a checkpoint (the first records of a base segment) writes the
/// whole state with `Base`, `Group`, `Dedup`, `Land`, `Delivered`,
/// `Forget`, `DeadBody`, `DeadInfo` and `BaseEnd`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// A message stored.
    Land {
        id: MessageId,
        topic: String,
        headers: Headers,
        payload: Bytes,
    },
    /// A consumer group created (its index is its position among groups).
    Group {
        topic: String,
        name: String,
        acked_total: u64,
    },
    /// Group `group` delivered `id` for the `count`-th time.
    Delivered {
        group: u32,
        id: MessageId,
        count: u32,
    },
    /// Group `group` acked `id`.
    Ack { group: u32, id: MessageId },
    /// Group `group` gave up on `id` after `deliveries` deliveries.
    Dead {
        group: u32,
        id: MessageId,
        deliveries: u32,
    },
    /// Checkpoint: group `group` no longer holds `id` (acked or
    /// dead-lettered before the checkpoint).
    Forget { group: u32, id: MessageId },
    /// Checkpoint: one entry of the dead-letter history.
    DeadInfo {
        id: MessageId,
        topic: String,
        group: String,
        deliveries: u32,
    },
    /// Checkpoint: a producer's remembered sequences, as inclusive ranges.
    Dedup {
        producer: u64,
        ranges: Vec<(u64, u64)>,
    },
    /// First record of a base segment: the state follows.
    Base,
    /// Last record of a checkpoint; live records follow.
    BaseEnd,
    /// First record of every write: the write's number. Tells a torn
    /// last write from corruption of an earlier, synced one.
    Batch { epoch: u64 },
    /// Checkpoint: the body of a dead letter kept for requeue whose
    /// message is no longer stored (same layout as `Land`).
    DeadBody {
        id: MessageId,
        topic: String,
        headers: Headers,
        payload: Bytes,
    },
    /// An operator gave group `group`'s dead letter `id` back to it.
    Requeued { group: u32, id: MessageId },
    /// An operator deleted group `group`'s dead letter `id`.
    Purged { group: u32, id: MessageId },
}

const LAND: u8 = 1;
const GROUP: u8 = 2;
const DELIVERED: u8 = 3;
const ACK: u8 = 4;
const DEAD: u8 = 5;
const FORGET: u8 = 6;
const DEAD_INFO: u8 = 7;
const DEDUP: u8 = 8;
const BASE: u8 = 9;
const BASE_END: u8 = 10;
const BATCH: u8 = 11;
const DEAD_BODY: u8 = 12;
const REQUEUED: u8 = 13;
const PURGED: u8 = 14;
/// Encoded length of a `Batch` record.
pub(crate) const BATCH_LEN: usize = HEADER + 8;

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Fewer bytes than the header or the length announce (a torn write).
    #[error("record truncated")]
    Truncated,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// A length or kind no writer produces.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

fn put_str16(dst: &mut Vec<u8>, s: &[u8]) {
    // Names, topics and header entries are bounded by the protocol far
    // below 64 KiB; a longer one cannot reach the journal.
    let n = s.len().min(usize::from(u16::MAX));
    dst.put_u16_le(n as u16);
    dst.extend_from_slice(&s[..n]);
}

fn put_id(dst: &mut Vec<u8>, id: MessageId) {
    dst.put_u64_le(id.producer);
    dst.put_u64_le(id.seq);
}

/// Appends a `Land` record built from borrowed parts (no copy of the
/// message into a [`Record`] first); returns its length.
pub(crate) fn encode_land(
    dst: &mut Vec<u8>,
    id: MessageId,
    topic: &str,
    headers: &Headers,
    payload: &[u8],
) -> usize {
    encode_message(dst, LAND, id, topic, headers, payload)
}

/// Appends a `DeadBody` record built from borrowed parts; returns its
/// length.
pub(crate) fn encode_dead_body(
    dst: &mut Vec<u8>,
    id: MessageId,
    topic: &str,
    headers: &Headers,
    payload: &[u8],
) -> usize {
    encode_message(dst, DEAD_BODY, id, topic, headers, payload)
}

fn encode_message(
    dst: &mut Vec<u8>,
    kind: u8,
    id: MessageId,
    topic: &str,
    headers: &Headers,
    payload: &[u8],
) -> usize {
    let start = dst.len();
    dst.extend_from_slice(&[0; HEADER]);
    dst[start + 8] = kind;
    put_id(dst, id);
    put_str16(dst, topic.as_bytes());
    dst.put_u16_le(headers.len() as u16);
    for (k, v) in headers.iter() {
        put_str16(dst, k.as_bytes());
        put_str16(dst, v);
    }
    dst.put_u32_le(payload.len() as u32);
    dst.extend_from_slice(payload);
    seal(dst, start)
}

/// Fills in the length and checksum of the record starting at `start`.
fn seal(dst: &mut [u8], start: usize) -> usize {
    let len = dst.len() - start - 8;
    let crc = crc32fast::hash(&dst[start + 8..]);
    dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    dst[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    dst.len() - start
}

impl Record {
    /// Appends this record, header included, to `dst`; returns its length.
    pub(crate) fn encode(&self, dst: &mut Vec<u8>) -> usize {
        let start = dst.len();
        dst.extend_from_slice(&[0; HEADER]);
        match self {
            Record::Land {
                id,
                topic,
                headers,
                payload,
            } => {
                dst.truncate(start);
                return encode_land(dst, *id, topic, headers, payload);
            }
            Record::Group {
                topic,
                name,
                acked_total,
            } => {
                dst[start + 8] = GROUP;
                put_str16(dst, topic.as_bytes());
                put_str16(dst, name.as_bytes());
                dst.put_u64_le(*acked_total);
            }
            Record::Delivered { group, id, count } => {
                dst[start + 8] = DELIVERED;
                dst.put_u32_le(*group);
                put_id(dst, *id);
                dst.put_u32_le(*count);
            }
            Record::Ack { group, id } => {
                dst[start + 8] = ACK;
                dst.put_u32_le(*group);
                put_id(dst, *id);
            }
            Record::Dead {
                group,
                id,
                deliveries,
            } => {
                dst[start + 8] = DEAD;
                dst.put_u32_le(*group);
                put_id(dst, *id);
                dst.put_u32_le(*deliveries);
            }
            Record::Forget { group, id } => {
                dst[start + 8] = FORGET;
                dst.put_u32_le(*group);
                put_id(dst, *id);
            }
            Record::DeadInfo {
                id,
                topic,
                group,
                deliveries,
            } => {
                dst[start + 8] = DEAD_INFO;
                put_id(dst, *id);
                put_str16(dst, topic.as_bytes());
                put_str16(dst, group.as_bytes());
                dst.put_u32_le(*deliveries);
            }
            Record::Dedup { producer, ranges } => {
                dst[start + 8] = DEDUP;
                dst.put_u64_le(*producer);
                dst.put_u32_le(ranges.len() as u32);
                for &(a, b) in ranges {
                    dst.put_u64_le(a);
                    dst.put_u64_le(b);
                }
            }
            Record::Base => dst[start + 8] = BASE,
            Record::BaseEnd => dst[start + 8] = BASE_END,
            Record::Batch { epoch } => {
                dst[start + 8] = BATCH;
                dst.put_u64_le(*epoch);
            }
            Record::DeadBody {
                id,
                topic,
                headers,
                payload,
            } => {
                dst.truncate(start);
                return encode_dead_body(dst, *id, topic, headers, payload);
            }
            Record::Requeued { group, id } => {
                dst[start + 8] = REQUEUED;
                dst.put_u32_le(*group);
                put_id(dst, *id);
            }
            Record::Purged { group, id } => {
                dst[start + 8] = PURGED;
                dst.put_u32_le(*group);
                put_id(dst, *id);
            }
        }
        seal(dst, start)
    }

    /// Decodes the record at the start of `src`. `Ok(None)` is the end
    /// marker (a zero length); `Ok(Some((record, bytes used)))` otherwise.
    pub(crate) fn decode(src: &[u8]) -> Result<Option<(Record, usize)>, DecodeError> {
        if src.len() < 4 {
            // Fewer than 4 bytes left in a segment: only zeros are a clean end.
            return if src.iter().all(|&b| b == 0) {
                Ok(None)
            } else {
                Err(DecodeError::Truncated)
            };
        }
        let len = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len == 0 {
            return Ok(None);
        }
        if len > MAX_RECORD {
            return Err(DecodeError::Malformed("length beyond the record limit"));
        }
        if src.len() < 8 + len {
            return Err(DecodeError::Truncated);
        }
        let crc = u32::from_le_bytes([src[4], src[5], src[6], src[7]]);
        let body = &src[8..8 + len];
        if crc32fast::hash(body) != crc {
            return Err(DecodeError::Checksum);
        }
        let mut r = Cursor { buf: &body[1..] };
        let rec = match body[0] {
            LAND | DEAD_BODY => {
                let id = r.id()?;
                let topic = r.string()?;
                let n = r.u16()?;
                let mut headers = Headers::new();
                for _ in 0..n {
                    let k = r.string()?;
                    let v = r.bytes16()?;
                    headers.insert(k, Bytes::copy_from_slice(v));
                }
                let plen = r.u32()? as usize;
                let payload = Bytes::copy_from_slice(r.take(plen)?);
                if body[0] == LAND {
                    Record::Land {
                        id,
                        topic,
                        headers,
                        payload,
                    }
                } else {
                    Record::DeadBody {
                        id,
                        topic,
                        headers,
                        payload,
                    }
                }
            }
            GROUP => Record::Group {
                topic: r.string()?,
                name: r.string()?,
                acked_total: r.u64()?,
            },
            DELIVERED => Record::Delivered {
                group: r.u32()?,
                id: r.id()?,
                count: r.u32()?,
            },
            ACK => Record::Ack {
                group: r.u32()?,
                id: r.id()?,
            },
            DEAD => Record::Dead {
                group: r.u32()?,
                id: r.id()?,
                deliveries: r.u32()?,
            },
            FORGET => Record::Forget {
                group: r.u32()?,
                id: r.id()?,
            },
            DEAD_INFO => Record::DeadInfo {
                id: r.id()?,
                topic: r.string()?,
                group: r.string()?,
                deliveries: r.u32()?,
            },
            DEDUP => {
                let producer = r.u64()?;
                let n = r.u32()? as usize;
                if n > r.buf.len() / 16 {
                    return Err(DecodeError::Malformed("range count beyond the record"));
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    ranges.push((r.u64()?, r.u64()?));
                }
                Record::Dedup { producer, ranges }
            }
            BASE => Record::Base,
            BASE_END => Record::BaseEnd,
            BATCH => Record::Batch { epoch: r.u64()? },
            REQUEUED => Record::Requeued {
                group: r.u32()?,
                id: r.id()?,
            },
            PURGED => Record::Purged {
                group: r.u32()?,
                id: r.id()?,
            },
            _ => return Err(DecodeError::Malformed("unknown record kind")),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError::Malformed("bytes after the record's fields"));
        }
        Ok(Some((rec, 8 + len)))
    }
}

/// The highest epoch of any intact `Batch` record in `src`, at any byte
/// offset (a scan for writes that follow a damaged record). Linear: only
/// offsets that look like a `Batch` header are checksummed.
pub(crate) fn max_batch_epoch(src: &[u8]) -> Option<u64> {
    let mut best = None;
    if src.len() < BATCH_LEN {
        return None;
    }
    for i in 0..=src.len() - BATCH_LEN {
        if src[i..i + 4] == [9, 0, 0, 0] && src[i + 8] == BATCH {
            if let Ok(Some((Record::Batch { epoch }, _))) = Record::decode(&src[i..i + BATCH_LEN]) {
                best = best.max(Some(epoch));
            }
        }
    }
    best
}

/// The offset of the first intact `Batch` record in `src`, if any.
pub(crate) fn next_batch(src: &[u8]) -> Option<usize> {
    if src.len() < BATCH_LEN {
        return None;
    }
    (0..=src.len() - BATCH_LEN).find(|&i| {
        src[i..i + 4] == [9, 0, 0, 0]
            && src[i + 8] == BATCH
            && matches!(
                Record::decode(&src[i..i + BATCH_LEN]),
                Ok(Some((Record::Batch { .. }, _)))
            )
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed("field beyond the record"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn id(&mut self) -> Result<MessageId, DecodeError> {
        Ok(MessageId::new(self.u64()?, self.u64()?))
    }
    fn bytes16(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes16()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Malformed("invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Record> {
        let mut headers = Headers::new();
        headers.insert("k", Bytes::from_static(b"v"));
        vec![
            Record::Land {
                id: MessageId::new(7, 9),
                topic: "orders".into(),
                headers,
                payload: Bytes::from_static(b"hello"),
            },
            Record::Group {
                topic: "orders".into(),
                name: "billing".into(),
                acked_total: 3,
            },
            Record::Delivered {
                group: 1,
                id: MessageId::new(7, 9),
                count: 2,
            },
            Record::Ack {
                group: 1,
                id: MessageId::new(7, 9),
            },
            Record::Dead {
                group: 0,
                id: MessageId::new(1, 2),
                deliveries: 10,
            },
            Record::Forget {
                group: 2,
                id: MessageId::new(1, 3),
            },
            Record::DeadInfo {
                id: MessageId::new(1, 2),
                topic: "t".into(),
                group: "g".into(),
                deliveries: 10,
            },
            Record::Dedup {
                producer: 5,
                ranges: vec![(1, 10), (12, 12)],
            },
            Record::Base,
            Record::BaseEnd,
            Record::Batch { epoch: 77 },
            Record::DeadBody {
                id: MessageId::new(3, 4),
                topic: "orders".into(),
                headers: Headers::new(),
                payload: Bytes::from_static(b"kept"),
            },
            Record::Requeued {
                group: 1,
                id: MessageId::new(3, 4),
            },
            Record::Purged {
                group: 2,
                id: MessageId::new(3, 5),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_ends_at_zeros() {
        let mut buf = Vec::new();
        for r in samples() {
            r.encode(&mut buf);
        }
        buf.extend_from_slice(&[0; 16]);
        let mut at = 0;
        for want in samples() {
            let (got, n) = Record::decode(&buf[at..]).unwrap().unwrap();
            assert_eq!(got, want);
            at += n;
        }
        assert_eq!(Record::decode(&buf[at..]), Ok(None));
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error() {
        let mut buf = Vec::new();
        samples()[0].encode(&mut buf);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(Record::decode(&buf), Err(DecodeError::Checksum));
    }

    #[test]
    fn a_cut_record_is_truncated() {
        let mut buf = Vec::new();
        let n = samples()[0].encode(&mut buf);
        for cut in 4..n {
            assert_eq!(Record::decode(&buf[..cut]), Err(DecodeError::Truncated));
        }
        assert_eq!(Record::decode(&buf[..2]), Err(DecodeError::Truncated));
    }

    #[test]
    fn batch_records_are_found_at_any_offset() {
        let mut buf = vec![0xAB; 3];
        samples()[0].encode(&mut buf);
        Record::Batch { epoch: 4 }.encode(&mut buf);
        Record::Batch { epoch: 9 }.encode(&mut buf);
        Record::Batch { epoch: 5 }.encode(&mut buf);
        assert_eq!(max_batch_epoch(&buf), Some(9));
        let first = next_batch(&buf).unwrap();
        assert_eq!(
            Record::decode(&buf[first..]).unwrap().unwrap().0,
            Record::Batch { epoch: 4 }
        );
        assert_eq!(max_batch_epoch(&buf[..first + BATCH_LEN - 1]), None);
    }

    proptest! {
        /// Arbitrary bytes never panic and never decode past their end.
        #[test]
        fn garbage_is_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((_, n))) = Record::decode(&bytes) {
                prop_assert!(n <= bytes.len());
            }
        }

        #[test]
        fn land_round_trips(p in any::<u64>(), s in any::<u64>(), topic in "[a-z]{1,20}",
                            payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let r = Record::Land { id: MessageId::new(p, s), topic, headers: Headers::new(),
                                   payload: Bytes::from(payload) };
            let mut buf = Vec::new();
            let n = r.encode(&mut buf);
            prop_assert_eq!(Record::decode(&buf), Ok(Some((r, n))));
        }
    }
}
