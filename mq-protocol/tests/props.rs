//! Property tests of the codec: round trips, incremental decoding at
//! arbitrary split points, and hostile input.

use bytes::{Bytes, BytesMut};
use mq_protocol::*;
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9._ é-]{{0,{max}}}"))
        .unwrap()
        .prop_filter("fits", move |s| s.len() <= max)
}

fn id() -> impl Strategy<Value = MessageId> {
    (any::<u64>(), any::<u64>()).prop_map(|(p, s)| MessageId::new(p, s))
}

fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn headers() -> impl Strategy<Value = Headers> {
    vec((name(20), vec(any::<u8>(), 0..40)), 0..6)
        .prop_map(|v| v.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect())
}

fn code() -> impl Strategy<Value = ErrorCode> {
    any::<u16>().prop_map(ErrorCode)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<bool>(),
            name(50),
            proptest::option::of(name(50))
        )
            .prop_map(|(a, b, r, n, t)| Frame::Hello(Hello {
                min_version: a,
                max_version: b,
                role: if r { Role::Sender } else { Role::Receiver },
                client_name: n,
                token: t,
            })),
        (any::<u16>(), any::<u32>(), any::<u32>(), name(40)).prop_map(|(v, m, h, n)| {
            Frame::Welcome(Welcome {
                version: v,
                max_frame_size: m,
                heartbeat_ms: h,
                server_name: n,
                max_message_size: None,
            })
        }),
        (code(), name(100)).prop_map(|(code, reason)| Frame::Refuse(Refuse { code, reason })),
        (id(), any::<u32>(), name(60), headers(), payload()).prop_map(|(id, a, t, h, p)| {
            Frame::Message(Message {
                id,
                attempt: a,
                topic: t.into(),
                headers: h,
                payload: p,
            })
        }),
        (id(), any::<u32>(), 0u8..3, code(), name(50)).prop_map(|(id, a, s, code, reason)| {
            Frame::Reply(Reply {
                id,
                attempt: a,
                status: match s {
                    0 => ReplyStatus::Stored,
                    1 => ReplyStatus::Duplicate,
                    _ => ReplyStatus::Rejected { code, reason },
                },
            })
        }),
        (any::<u32>(), any::<u32>(), name(60), name(60)).prop_map(|(s, c, t, g)| {
            Frame::Subscribe(Subscribe {
                sub_id: s,
                credit: c,
                topic: t,
                group: g,
            })
        }),
        any::<u32>().prop_map(|s| Frame::SubscribeOk(SubscribeOk { sub_id: s })),
        (
            any::<u32>(),
            id(),
            any::<u32>(),
            name(60),
            headers(),
            payload()
        )
            .prop_map(|(s, id, a, t, h, p)| Frame::Deliver(Deliver {
                sub_id: s,
                id,
                delivery_attempt: a,
                topic: t.into(),
                headers: h,
                payload: p,
            })),
        (any::<u32>(), id()).prop_map(|(s, id)| Frame::Ack(Ack { sub_id: s, id })),
        (any::<u32>(), id(), any::<u32>()).prop_map(|(s, id, d)| Frame::Nack(Nack {
            sub_id: s,
            id,
            delay_ms: d
        })),
        (any::<u32>(), any::<u32>()).prop_map(|(s, c)| Frame::Credit(Credit {
            sub_id: s,
            credit: c
        })),
        any::<u64>().prop_map(|n| Frame::Ping(Ping { nonce: n })),
        any::<u64>().prop_map(|n| Frame::Pong(Pong { nonce: n })),
        (code(), name(100)).prop_map(|(code, reason)| Frame::Close(Close { code, reason })),
        (0x80u8..=0xff, payload()).prop_map(|(t, body)| Frame::Extension {
            frame_type: t,
            body
        }),
    ]
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut codec = Codec::default();
    let mut buf = BytesMut::new();
    for f in frames {
        codec.encode(f, &mut buf).unwrap();
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_frame_round_trips(f in frame()) {
        let mut buf = encode_all(std::slice::from_ref(&f));
        prop_assert_eq!(buf.len(), f.wire_len());
        let got = Codec::default().decode(&mut buf).unwrap();
        prop_assert_eq!(got, Some(f));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn split_stream_decodes_to_the_same_frames(
        frames in vec(frame(), 1..8),
        cuts in vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let wire = encode_all(&frames).freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut codec = Codec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&wire[w[0]..w[1]]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..2048), max in 64u32..4096) {
        let mut codec = Codec::new(max);
        let mut buf = BytesMut::from(&data[..]);
        // Either frames, a clean "need more", or an error: never a panic.
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    #[test]
    fn oversized_prefix_refused_without_reserving(len in 4097u32.., tail in vec(any::<u8>(), 0..64)) {
        let mut codec = Codec::new(4096);
        let mut buf = BytesMut::with_capacity(128);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&tail);
        let cap = buf.capacity();
        let err = codec.decode(&mut buf).unwrap_err();
        let is_too_large = matches!(err, ProtocolError::FrameTooLarge { .. });
        prop_assert!(is_too_large);
        prop_assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn truncated_frames_wait_or_fail_cleanly(f in frame(), cut in any::<prop::sample::Index>()) {
        let wire = encode_all(std::slice::from_ref(&f));
        let n = cut.index(wire.len());
        // A prefix of a frame is "need more", never an error or a frame.
        let mut buf = BytesMut::from(&wire[..n]);
        prop_assert!(matches!(Codec::default().decode(&mut buf), Ok(None)));
        // A frame whose length prefix claims fewer bytes than its fields need
        // is a typed error, never a panic.
        if wire.len() > 6 {
            let body = &wire[5..];
            let short = &body[..cut.index(body.len())];
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&((short.len() + 1) as u32).to_be_bytes());
            buf.extend_from_slice(&wire[4..5]);
            buf.extend_from_slice(short);
            let _ = Codec::default().decode(&mut buf);
        }
    }

    /// A `Message` encoded from its borrowed parts (`MessageRef`, what the
    /// sender writes) is byte for byte the `Frame::Message` encoding, under
    /// the same frame-size limit and message limits.
    #[test]
    fn borrowed_parts_encode_like_the_frame(
        id in id(), attempt in any::<u32>(), topic in name(300), headers in headers(),
        payload in payload(), max in 64u32..600,
    ) {
        let m = Message { id, attempt, topic: topic.into(), headers, payload };
        let parts = m.parts();
        prop_assert_eq!(parts.frame_size(), m.frame_size());
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        let ra = Codec::new(max).encode(parts, &mut a);
        let rb = Codec::new(max).encode(&Frame::Message(m.clone()), &mut b);
        prop_assert_eq!(ra.is_ok(), rb.is_ok());
        if let (Err(x), Err(y)) = (&ra, &rb) {
            prop_assert_eq!(x.to_string(), y.to_string());
        }
        prop_assert_eq!(a, b);
    }

    #[test]
    fn encoder_refuses_frames_above_the_maximum(size in 0usize..3000) {
        let f = Frame::Message(Message {
            id: MessageId::new(1, 1),
            attempt: 1,
            topic: "t".into(),
            headers: Headers::new(),
            payload: Bytes::from(vec![0u8; size]),
        });
        let mut codec = Codec::new(1024);
        let mut buf = BytesMut::new();
        let res = codec.encode(&f, &mut buf);
        if f.frame_size() > 1024 {
            let is_too_large = matches!(res, Err(ProtocolError::FrameTooLarge { .. }));
            prop_assert!(is_too_large);
            prop_assert!(buf.is_empty());
        } else {
            prop_assert!(res.is_ok());
        }
    }
}

#[test]
fn invalid_fields_are_typed_errors() {
    // Hello with role 7.
    let mut b = BytesMut::from(&[0, 0, 0, 9, 0x01, 0, 1, 0, 1, 7, 0, 0, 0][..]);
    assert!(matches!(
        Codec::default().decode(&mut b),
        Err(ProtocolError::InvalidValue { field: "role", .. })
    ));
    // Close with a reason that is not UTF-8.
    let mut b = BytesMut::from(&[0, 0, 0, 7, 0x3f, 0, 1, 0, 2, 0xff, 0xfe][..]);
    assert!(matches!(
        Codec::default().decode(&mut b),
        Err(ProtocolError::InvalidUtf8 { .. })
    ));
    // Message claiming 60000 headers in a tiny body: refused before
    // allocating (each header needs 4 bytes of the frame).
    let mut body = vec![0x10];
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0xea, 0x60]);
    let mut b = BytesMut::new();
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(&body);
    assert!(matches!(
        Codec::default().decode(&mut b),
        Err(ProtocolError::Truncated {
            field: "headers",
            ..
        })
    ));
    // The same count in a Deliver is over the limit: the broker never sends it.
    let mut body = vec![0x22];
    body.extend_from_slice(&[0; 20]);
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0xea, 0x60]);
    let mut b = BytesMut::new();
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(&body);
    assert!(matches!(
        Codec::default().decode(&mut b),
        Err(ProtocolError::TooManyHeaders { count: 60000, .. })
    ));
    // Zero length.
    let mut b = BytesMut::from(&[0, 0, 0, 0][..]);
    assert!(matches!(
        Codec::default().decode(&mut b),
        Err(ProtocolError::EmptyFrame)
    ));
}

#[test]
fn payload_is_not_copied_out_of_the_read_buffer() {
    let f = Frame::Message(Message {
        id: MessageId::new(1, 1),
        attempt: 1,
        topic: "t".into(),
        headers: Headers::new(),
        payload: Bytes::from(vec![7u8; 1000]),
    });
    let mut buf = encode_all(&[f]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Some(Frame::Message(m)) = Codec::default().decode(&mut buf).unwrap() else {
        panic!("expected a message");
    };
    let p = m.payload.as_ptr() as usize;
    assert!(
        p >= start && p + m.payload.len() <= end,
        "payload points into the read buffer"
    );
}

/// Message-level limits (topic length, header count and bytes) are not
/// decoding errors: a well-formed `Message` that breaks them decodes, so the
/// broker can answer it `Rejected` and keep the connection (PROTOCOL.md
/// §2.3). Encoding still refuses them.
#[test]
fn over_limit_messages_decode_but_do_not_encode() {
    let mut headers = Headers::new();
    for i in 0..(MAX_HEADERS + 1) {
        headers.insert(format!("k{i}"), "v");
    }
    let m = Message {
        id: MessageId::new(1, 1),
        attempt: 1,
        topic: "t".repeat(MAX_TOPIC_LEN + 1).into(),
        headers,
        payload: Bytes::from_static(b"x"),
    };
    let f = Frame::Message(m.clone());
    assert!(f.validate().is_err(), "encoding refuses the limits");
    // Encode by hand: the codec would refuse.
    let mut body = BytesMut::new();
    body.extend_from_slice(&[0x10]);
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&(m.topic.len() as u16).to_be_bytes());
    body.extend_from_slice(m.topic.as_bytes());
    body.extend_from_slice(&(m.headers.len() as u16).to_be_bytes());
    for (k, v) in m.headers.iter() {
        body.extend_from_slice(&(k.len() as u16).to_be_bytes());
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(b"x");
    let mut b = BytesMut::new();
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(&body);
    assert_eq!(Codec::default().decode(&mut b).unwrap(), Some(f));
}
