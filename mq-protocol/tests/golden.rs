//! Golden byte vectors. The expected bytes are read from the hex blocks of
//! `PROTOCOL.md` (each follows a `<!-- golden: NAME -->` marker), so the
//! specification and the implementation cannot drift apart: every frame below
//! must encode to exactly its block, decode from it, and every block in the
//! document must belong to a frame below.

use bytes::{Bytes, BytesMut};
use mq_protocol::*;
use tokio_util::codec::{Decoder, Encoder};

fn golden_frames() -> Vec<(&'static str, Frame)> {
    let id = MessageId::new(0x0102_0304_0506_0708, 42);
    let mut headers = Headers::new();
    headers.insert("k", "v");
    vec![
        (
            "hello",
            Frame::Hello(Hello {
                min_version: 1,
                max_version: 1,
                role: Role::Sender,
                client_name: "app".into(),
                token: Some("s3cr3t".into()),
            }),
        ),
        (
            "welcome",
            Frame::Welcome(Welcome {
                version: 1,
                max_frame_size: 1 << 20,
                heartbeat_ms: 5000,
                server_name: "mock".into(),
                max_message_size: None,
            }),
        ),
        (
            "welcome-max-message-size",
            Frame::Welcome(Welcome {
                version: 1,
                max_frame_size: 1 << 20,
                heartbeat_ms: 5000,
                server_name: "mock".into(),
                max_message_size: Some(1 << 20),
            }),
        ),
        (
            "refuse",
            Frame::Refuse(Refuse {
                code: ErrorCode::UNAUTHORIZED,
                reason: "bad token".into(),
            }),
        ),
        (
            "message",
            Frame::Message(Message {
                id,
                attempt: 1,
                topic: "orders".into(),
                headers: headers.clone(),
                payload: Bytes::from_static(b"hi"),
            }),
        ),
        (
            "reply-stored",
            Frame::Reply(Reply {
                id,
                attempt: 1,
                status: ReplyStatus::Stored,
            }),
        ),
        (
            "reply-duplicate",
            Frame::Reply(Reply {
                id,
                attempt: 2,
                status: ReplyStatus::Duplicate,
            }),
        ),
        (
            "reply-rejected",
            Frame::Reply(Reply {
                id,
                attempt: 1,
                status: ReplyStatus::Rejected {
                    code: ErrorCode::STORE_FULL,
                    reason: "full".into(),
                },
            }),
        ),
        (
            "subscribe",
            Frame::Subscribe(Subscribe {
                sub_id: 1,
                credit: 10,
                topic: "orders".into(),
                group: "billing".into(),
            }),
        ),
        (
            "reply-rejected-headers",
            Frame::Reply(Reply {
                id,
                attempt: 1,
                status: ReplyStatus::Rejected {
                    code: ErrorCode::INVALID_HEADERS,
                    reason: "65 headers".into(),
                },
            }),
        ),
        (
            "subscribe-error",
            Frame::SubscribeError(SubscribeError {
                sub_id: 1,
                code: ErrorCode::INVALID_TOPIC,
                reason: "empty topic".into(),
            }),
        ),
        (
            "close-handshake-timeout",
            Frame::Close(Close {
                code: ErrorCode::HANDSHAKE_TIMEOUT,
                reason: "no Hello".into(),
            }),
        ),
        (
            "subscribe-ok",
            Frame::SubscribeOk(SubscribeOk { sub_id: 1 }),
        ),
        (
            "deliver",
            Frame::Deliver(Deliver {
                sub_id: 1,
                id,
                delivery_attempt: 1,
                topic: "orders".into(),
                headers: Headers::new(),
                payload: Bytes::from_static(b"hi"),
            }),
        ),
        ("ack", Frame::Ack(Ack { sub_id: 1, id })),
        (
            "nack",
            Frame::Nack(Nack {
                sub_id: 1,
                id,
                delay_ms: 1000,
            }),
        ),
        (
            "credit",
            Frame::Credit(Credit {
                sub_id: 1,
                credit: 5,
            }),
        ),
        ("ping", Frame::Ping(Ping { nonce: 42 })),
        ("pong", Frame::Pong(Pong { nonce: 42 })),
        (
            "close",
            Frame::Close(Close {
                code: ErrorCode::HEARTBEAT_TIMEOUT,
                reason: "idle".into(),
            }),
        ),
        (
            "extension",
            Frame::Extension {
                frame_type: 0x80,
                body: Bytes::from_static(&[0xAB, 0xCD]),
            },
        ),
    ]
}

/// Every `<!-- golden: NAME -->` marker in PROTOCOL.md and the bytes of the
/// ```hex block that follows it.
fn document_vectors() -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("PROTOCOL.md is readable");
    let mut out = Vec::new();
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("<!-- golden: ") {
        rest = &rest[at + "<!-- golden: ".len()..];
        let end = rest.find(" -->").expect("marker closes");
        let name = rest[..end].to_string();
        let block = rest.find("```hex\n").expect("hex block follows marker") + "```hex\n".len();
        let block_end = rest[block..].find("```").expect("hex block closes") + block;
        let bytes = rest[block..block_end]
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
            .collect();
        out.push((name, bytes));
        rest = &rest[block_end..];
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_frame_matches_its_document_vector() {
    let doc = document_vectors();
    for (name, frame) in golden_frames() {
        let mut buf = BytesMut::new();
        Codec::default().encode(&frame, &mut buf).unwrap();
        let Some((_, expected)) = doc.iter().find(|(n, _)| n == name) else {
            panic!(
                "PROTOCOL.md has no golden block for {name}; encoded: {}",
                hex(&buf)
            );
        };
        assert_eq!(
            hex(&buf),
            hex(expected),
            "encoding of {name} differs from PROTOCOL.md"
        );
        let mut src = BytesMut::from(&expected[..]);
        let decoded = Codec::default().decode(&mut src).unwrap();
        assert_eq!(decoded, Some(frame), "decoding of {name}");
        assert!(src.is_empty());
    }
}

#[test]
fn every_document_vector_is_tested() {
    let names: Vec<_> = golden_frames().into_iter().map(|(n, _)| n).collect();
    for (name, _) in document_vectors() {
        assert!(
            names.contains(&name.as_str()) || name.starts_with("compat-"),
            "PROTOCOL.md block {name} has no test"
        );
    }
}

#[test]
fn forward_compatible_vectors_from_the_document() {
    let doc = document_vectors();
    let get = |n: &str| {
        doc.iter()
            .find(|(name, _)| name == n)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("PROTOCOL.md has no block {n}"))
    };
    // A Ping with two extra trailing bytes (a field a later version added):
    // a v1 decoder reads the nonce and ignores the rest.
    let mut src = BytesMut::from(&get("compat-trailing-field")[..]);
    assert_eq!(
        Codec::default().decode(&mut src).unwrap(),
        Some(Frame::Ping(Ping { nonce: 42 }))
    );
    // An unknown mandatory frame type is an error.
    let mut src = BytesMut::from(&get("compat-unknown-mandatory")[..]);
    assert!(matches!(
        Codec::default().decode(&mut src),
        Err(ProtocolError::UnknownFrameType(0x40))
    ));
}

/// `cargo test -p mq-protocol --test golden print_vectors -- --ignored --nocapture`
/// prints every vector, for writing PROTOCOL.md.
#[test]
#[ignore]
fn print_vectors() {
    for (name, frame) in golden_frames() {
        let mut buf = BytesMut::new();
        Codec::default().encode(&frame, &mut buf).unwrap();
        println!("{name}: {}", hex(&buf));
    }
}

#[test]
fn hello_debug_does_not_print_the_token() {
    let h = Hello {
        token: Some("s3cr3t".into()),
        ..Hello::new(Role::Sender, "app")
    };
    let shown = format!("{:?}", Frame::Hello(h));
    assert!(!shown.contains("s3cr3t"), "{shown}");
}
