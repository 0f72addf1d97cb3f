//! The body of a JetStream message: our topic, headers and payload.
//!
//! NATS headers are text lines, ours are arbitrary bytes; so only
//! `Nats-Msg-Id` goes into NATS headers and everything else into the body,
//! encoded with PROTOCOL.md's field types:
//!
//! ```text
//! version: u8 (= 1) | topic: str | headers: headers | payload: the rest
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mq_protocol::Headers;

const VERSION: u8 = 1;

/// Bytes the envelope adds to the topic, headers and payload.
pub(crate) fn overhead(topic: &str, headers: &Headers) -> usize {
    1 + 2
        + topic.len()
        + 2
        + headers
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
}

/// Encodes a message's body.
pub(crate) fn encode(topic: &str, headers: &Headers, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(overhead(topic, headers) + payload.len());
    b.put_u8(VERSION);
    put_str(&mut b, topic.as_bytes());
    // Headers were validated by the codec: at most 64, each key and value
    // within u16 lengths.
    b.put_u16(headers.len() as u16);
    for (k, v) in headers.iter() {
        put_str(&mut b, k.as_bytes());
        put_str(&mut b, v);
    }
    b.put_slice(payload);
    b.freeze()
}

fn put_str(b: &mut BytesMut, s: &[u8]) {
    b.put_u16(s.len() as u16);
    b.put_slice(s);
}

/// A decoded body.
#[derive(Debug, PartialEq)]
pub(crate) struct Envelope {
    pub topic: String,
    pub headers: Headers,
    pub payload: Bytes,
}

/// Decodes a body written by [`encode`]; `None` for anything else (a
/// message published into the stream by someone other than a gateway).
pub(crate) fn decode(mut body: Bytes) -> Option<Envelope> {
    if body.remaining() < 1 || body.get_u8() != VERSION {
        return None;
    }
    let topic = String::from_utf8(take_str(&mut body)?.to_vec()).ok()?;
    if body.remaining() < 2 {
        return None;
    }
    let n = body.get_u16();
    let mut headers = Headers::new();
    for _ in 0..n {
        let k = String::from_utf8(take_str(&mut body)?.to_vec()).ok()?;
        let v = take_str(&mut body)?;
        headers.insert(k, v);
    }
    Some(Envelope {
        topic,
        headers,
        payload: body,
    })
}

fn take_str(body: &mut Bytes) -> Option<Bytes> {
    if body.remaining() < 2 {
        return None;
    }
    let n = usize::from(body.get_u16());
    if body.remaining() < n {
        return None;
    }
    Some(body.split_to(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut h = Headers::new();
        h.insert("k", Bytes::from_static(b"\r\n\0"));
        let b = encode("orders.eu", &h, b"hi");
        assert_eq!(b.len(), overhead("orders.eu", &h) + 2);
        let e = decode(b).expect("decodes");
        assert_eq!(e.topic, "orders.eu");
        assert_eq!(e.headers, h);
        assert_eq!(&e.payload[..], b"hi");
    }

    #[test]
    fn foreign_bodies_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"\x02",
            b"\x01\x00",
            b"\x01\x00\x05ab",
            b"\x01\x00\x01a\x00\x01",
        ] {
            assert!(decode(Bytes::copy_from_slice(bad)).is_none(), "{bad:?}");
        }
    }
}
