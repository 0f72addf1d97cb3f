//! Hostile and careless peers over raw TCP (issue 14, PROTOCOL.md §2.3,
//! §3.7a, §4, §6.3, §7.1).
//!
//! Every case checks three things: the documented answer, that a
//! well-behaved peer on another connection is served meanwhile, and that
//! the process's live heap (a counting global allocator) stays under a
//! stated bound. The tests of this binary run one at a time (one lock) so
//! that the heap measured is theirs.

#[path = "support/backend.rs"]
mod backend;
mod support;

use std::time::Duration;

use backend::{broker, skip_on_jetstream, TestBroker};
use bytes::Bytes;
use futures::StreamExt;
use mq_broker::BrokerConfig;
use mq_protocol::{
    ErrorCode, Frame, Headers, Message, MessageId, Nack, ReplyStatus, Role, Subscribe,
};
use support::{Peer, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[global_allocator]
static ALLOC: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;

/// One test at a time, so the heap measured is the running test's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts measuring: resets the high-water mark to the live heap now.
fn heap_baseline() -> usize {
    usize::try_from(mq_test_alloc::reset_peak()).unwrap_or(0)
}

/// Asserts the heap grew by at most `bound` bytes above `base` at any time
/// since [`heap_baseline`].
fn assert_heap_within(base: usize, bound: usize, what: &str) {
    let grew = usize::try_from(mq_test_alloc::peak())
        .unwrap_or(0)
        .saturating_sub(base);
    eprintln!("{what}: peak heap growth {grew} bytes (bound {bound})");
    assert!(
        grew <= bound,
        "{what}: heap grew by {grew} bytes, more than the bound of {bound}"
    );
}

/// A well-behaved sender on its own connection stores a message.
async fn served(b: &TestBroker, seq: u64) {
    let mut good = Peer::connect(b.addr(), Role::Sender).await;
    let r = good
        .publish(MessageId::new(0xfeed, seq), 1, "good", b"ok")
        .await;
    assert_eq!(r.status, ReplyStatus::Stored, "well-behaved peer served");
}

/// Bytes of a `Message` frame, built by hand so that it can break the
/// limits the encoder enforces.
fn raw_message(
    id: MessageId,
    topic: &str,
    headers: &[(String, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = vec![0x10];
    body.extend_from_slice(&id.producer.to_be_bytes());
    body.extend_from_slice(&id.seq.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    for (k, v) in headers {
        body.extend_from_slice(&(k.len() as u16).to_be_bytes());
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(payload);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

async fn send_raw(p: &mut Peer, bytes: &[u8]) {
    p.io.get_mut().write_all(bytes).await.expect("write");
}

async fn expect_rejected(p: &mut Peer, id: MessageId, code: ErrorCode) {
    match p.recv().await {
        Some(Frame::Reply(r)) => {
            assert_eq!(r.id, id);
            match r.status {
                ReplyStatus::Rejected { code: c, .. } => assert_eq!(c, code),
                other => panic!("expected Rejected({code}), got {other:?}"),
            }
        }
        other => panic!("expected a Reply, got {other:?}"),
    }
}

/// Issue 14 item 1: a peer that sends Pings but never reads. The broker
/// stops reading from it once its output queue holds `max_output_bytes`;
/// the heap stays within that bound plus buffers, not 6x what was sent.
#[tokio::test]
async fn ping_flood_without_reading_is_backpressured() {
    skip_on_jetstream!(
        "the heap bound is calibrated for the single node (the gateway's NATS client \
         allocates in the background); the gateway's output bound is checked by \
         slow_readers_are_bounded_on_every_backend"
    );
    let _serial = SERIAL.lock().await;
    const OUTPUT: usize = 256 * 1024;
    let b = broker(BrokerConfig {
        max_output_bytes: OUTPUT,
        max_frame_size: 64 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    let base = heap_baseline();
    let bad = Peer::connect(b.addr(), Role::Sender).await;
    let mut sock = bad.io.into_inner();
    // 32 MiB of Pings (2.5 million frames), written without ever reading.
    let ping = [0u8, 0, 0, 9, 0x30, 0, 0, 0, 0, 0, 0, 0, 1];
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(13 * 4096).collect();
    let flood = tokio::spawn(async move {
        let mut sent = 0usize;
        for _ in 0..(32 << 20) / chunk.len() {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        (sock, sent)
    });
    b.wait_for(WAIT, |s| s.output_full >= 1)
        .await
        .expect("the broker reports the full output queue");
    served(&b, 1).await;
    // The flood is blocked by TCP backpressure, not finished.
    assert!(!flood.is_finished(), "the flood should be blocked");
    flood.abort();
    // Queue bound + one batch of answers + read/write buffers + the good peer.
    assert_heap_within(base, OUTPUT + 2 * 1024 * 1024, "ping flood");
}

/// A receiver that grants a huge credit and does not read: the broker stops
/// delivering to it at `max_output_bytes`, other groups go on.
#[tokio::test]
async fn receiver_that_does_not_read_gets_no_more_deliveries() {
    skip_on_jetstream!(
        "the heap bound is calibrated for the single node (the gateway's NATS client \
         allocates in the background); the gateway's output bound is checked by \
         slow_readers_are_bounded_on_every_backend"
    );
    let _serial = SERIAL.lock().await;
    const OUTPUT: usize = 256 * 1024;
    let b = broker(BrokerConfig {
        max_output_bytes: OUTPUT,
        max_frame_size: 64 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    let mut sender = Peer::connect(b.addr(), Role::Sender).await;
    static PAYLOAD: [u8; 60_000] = [7u8; 60_000];
    for seq in 1..=100 {
        let r = sender
            .publish(MessageId::new(1, seq), 1, "big", &PAYLOAD)
            .await;
        assert_eq!(r.status, ReplyStatus::Stored);
    }
    let base = heap_baseline();
    let mut lazy = Peer::connect(b.addr(), Role::Receiver).await;
    lazy.subscribe(1, u32::MAX, "big", "lazy").await;
    b.wait_for(WAIT, |s| s.output_full >= 1)
        .await
        .expect("output queue full");
    // A second group on the same topic is still served, in full.
    let mut good = Peer::connect(b.addr(), Role::Receiver).await;
    good.subscribe(1, 10, "big", "good").await;
    let d = good.deliver().await;
    assert_eq!(d.payload.len(), PAYLOAD.len());
    let sent = b.stats().deliveries_sent;
    assert!(
        sent < 100 + 10,
        "deliveries to the lazy receiver were held back ({sent} sent)"
    );
    // Payloads are shared with the store; the bound covers frames in
    // flight, socket-side buffers and the good receiver.
    assert_heap_within(base, OUTPUT + 4 * 1024 * 1024, "lazy receiver");
    // Reading again resumes deliveries.
    let mut got = 0;
    while got < 100 {
        let d = lazy.deliver().await;
        lazy.ack(1, d.id).await;
        got += 1;
    }
}

/// The output bound of PROTOCOL.md §7.1 on every backend (without the
/// single node's heap measure): a peer that floods Pings and never reads
/// meets TCP backpressure once its queue is full, others are served; a
/// receiver that grants a huge credit and does not read gets nothing more
/// once its queue is full, another group is served, and reading again
/// resumes its deliveries.
#[tokio::test]
async fn slow_readers_are_bounded_on_every_backend() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        max_output_bytes: 256 * 1024,
        max_frame_size: 64 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    let bad = Peer::connect(b.addr(), Role::Sender).await;
    let mut sock = bad.io.into_inner();
    // 32 MiB of Pings, written without ever reading.
    let ping = [0u8, 0, 0, 9, 0x30, 0, 0, 0, 0, 0, 0, 0, 1];
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(13 * 4096).collect();
    let flood = tokio::spawn(async move {
        for _ in 0..(32 << 20) / chunk.len() {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
        }
        sock
    });
    b.wait_output_full(1).await;
    served(&b, 11).await;
    assert!(!flood.is_finished(), "the flood should be blocked");

    let mut sender = Peer::connect(b.addr(), Role::Sender).await;
    static PAYLOAD: [u8; 60_000] = [7u8; 60_000];
    for seq in 1..=100 {
        let r = sender
            .publish(MessageId::new(12, seq), 1, "big", &PAYLOAD)
            .await;
        assert_eq!(r.status, ReplyStatus::Stored);
    }
    let full = b.output_full();
    let mut lazy = Peer::connect(b.addr(), Role::Receiver).await;
    lazy.subscribe(1, u32::MAX, "big", "lazy").await;
    b.wait_output_full(full + 1).await;
    let mut good = Peer::connect(b.addr(), Role::Receiver).await;
    good.subscribe(1, 10, "big", "good").await;
    assert_eq!(good.deliver().await.payload.len(), PAYLOAD.len());
    // The good group's 10 plus what the lazy one's queue and socket
    // buffers hold: not all 100 of the lazy group's.
    let sent = b.deliveries();
    assert!(
        sent < 100 + 10,
        "deliveries to the lazy receiver were held back ({sent} sent)"
    );
    assert!(!flood.is_finished(), "the flood is still blocked");
    flood.abort();
    for _ in 0..100 {
        let d = lazy.deliver().await;
        lazy.ack(1, d.id).await;
    }
}

/// Items 2 and 3: message-level limits get a permanent Rejected and the
/// connection lives; the exact size rule of PROTOCOL.md §3.2.
#[tokio::test]
async fn message_level_limits_are_rejected_and_the_connection_lives() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        max_frame_size: 4096,
        max_message_size: 4096,
        ..BrokerConfig::default()
    })
    .await;
    let base = heap_baseline();
    let (mut p, welcome) = Peer::hello(b.addr(), mq_protocol::Hello::new(Role::Sender, "t")).await;
    match welcome {
        Frame::Welcome(w) => assert_eq!(w.max_message_size, Some(4096)),
        other => panic!("expected Welcome, got {other:?}"),
    }
    // 256-byte topic.
    let id = MessageId::new(2, 1);
    send_raw(&mut p, &raw_message(id, &"t".repeat(256), &[], b"x")).await;
    expect_rejected(&mut p, id, ErrorCode::INVALID_TOPIC).await;
    // Empty topic.
    let id = MessageId::new(2, 2);
    send_raw(&mut p, &raw_message(id, "", &[], b"x")).await;
    expect_rejected(&mut p, id, ErrorCode::INVALID_TOPIC).await;
    // 65 headers.
    let id = MessageId::new(2, 3);
    let many: Vec<_> = (0..65).map(|i| (format!("k{i}"), b"v".to_vec())).collect();
    send_raw(&mut p, &raw_message(id, "t", &many, b"x")).await;
    expect_rejected(&mut p, id, ErrorCode::INVALID_HEADERS).await;
    // Header bytes above 16 384 (needs a larger frame: its own broker).
    // Frame size: a Message frame of max_frame_size - 4 is stored, one
    // byte more is MESSAGE_TOO_LARGE (its Deliver would not fit).
    let fixed = 29 + 1; // frame size of a Message with topic "t", no headers, empty payload
    let id = MessageId::new(2, 4);
    let fits = vec![1u8; 4096 - 4 - fixed];
    send_raw(&mut p, &raw_message(id, "t", &[], &fits)).await;
    match p.recv().await {
        Some(Frame::Reply(r)) => assert_eq!(r.status, ReplyStatus::Stored, "{r:?}"),
        other => panic!("expected Reply, got {other:?}"),
    }
    let id = MessageId::new(2, 5);
    let over = vec![1u8; 4096 - 4 - fixed + 1];
    send_raw(&mut p, &raw_message(id, "t", &[], &over)).await;
    expect_rejected(&mut p, id, ErrorCode::MESSAGE_TOO_LARGE).await;
    // The same connection still stores a good message.
    let r = p.publish(MessageId::new(2, 6), 1, "t", b"fine").await;
    assert_eq!(r.status, ReplyStatus::Stored);
    served(&b, 2).await;
    if let Some(b) = b.local() {
        assert_eq!(b.stats().protocol_errors, 0);
    }
    assert_heap_within(base, 1024 * 1024, "message limits");
}

#[tokio::test]
async fn header_bytes_over_the_limit_are_rejected() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig::default()).await;
    let mut p = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(3, 1);
    let big = vec![(String::from("k"), vec![0u8; 16 * 1024])];
    send_raw(&mut p, &raw_message(id, "t", &big, b"x")).await;
    expect_rejected(&mut p, id, ErrorCode::INVALID_HEADERS).await;
    let r = p.publish(MessageId::new(3, 2), 1, "t", b"x").await;
    assert_eq!(r.status, ReplyStatus::Stored);
}

/// Item 4 and the per-connection bounds: SubscribeError, connection lives.
#[tokio::test]
async fn bad_or_excess_subscriptions_get_subscribe_error() {
    skip_on_jetstream!(
        "reads the single node's counters (subscriptions_refused, protocol_errors) and heap; \
         the same limits run on every backend in second_half's \
         group_and_topic_limits_get_subscribe_error and \
         invalid_names_and_the_connection_limit_get_subscribe_error"
    );
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        max_subscriptions_per_connection: 3,
        max_groups_per_topic: 2,
        max_topics: 2,
        ..BrokerConfig::default()
    })
    .await;
    let base = heap_baseline();
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    let refused = |f: Option<Frame>, sub: u32, code: ErrorCode| match f {
        Some(Frame::SubscribeError(e)) => {
            assert_eq!((e.sub_id, e.code), (sub, code), "{e:?}");
        }
        other => panic!("expected SubscribeError({code}), got {other:?}"),
    };
    let sub = |sub_id, topic: &str, group: &str| {
        Frame::Subscribe(Subscribe {
            sub_id,
            credit: 1,
            topic: topic.into(),
            group: group.into(),
        })
    };
    r.send(sub(1, "", "g")).await;
    refused(r.recv().await, 1, ErrorCode::INVALID_TOPIC);
    // The sub_id stays free.
    r.subscribe(1, 1, "a", "g1").await;
    r.subscribe(2, 1, "a", "g2").await;
    // Third group of topic a.
    r.send(sub(3, "a", "g3")).await;
    refused(r.recv().await, 3, ErrorCode::LIMIT_REACHED);
    r.subscribe(3, 1, "b", "g1").await;
    // Fourth subscription on this connection.
    r.send(sub(4, "a", "g1")).await;
    refused(r.recv().await, 4, ErrorCode::LIMIT_REACHED);
    // Third topic with groups, from another connection.
    let mut r2 = Peer::connect(b.addr(), Role::Receiver).await;
    r2.send(sub(1, "c", "g1")).await;
    refused(r2.recv().await, 1, ErrorCode::LIMIT_REACHED);
    // A group name above 255 bytes (the encoder refuses it: raw bytes).
    let mut body = vec![0x20, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, b'a'];
    body.extend_from_slice(&256u16.to_be_bytes());
    body.extend_from_slice(&[b'g'; 256]);
    let mut raw = (body.len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(&body);
    send_raw(&mut r2, &raw).await;
    refused(r2.recv().await, 2, ErrorCode::INVALID_GROUP);
    r2.subscribe(2, 1, "a", "g1").await;
    served(&b, 3).await;
    assert_eq!(b.stats().subscriptions_refused, 5);
    assert_eq!(b.stats().protocol_errors, 0);
    assert_heap_within(base, 1024 * 1024, "subscriptions");
}

/// The part of the subscription rules every backend keeps: names out of
/// the protocol's limits and one subscription past the connection's get
/// `SubscribeError`, the sub_id stays free, the connection lives.
#[tokio::test]
async fn invalid_names_and_the_connection_limit_get_subscribe_error() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        max_subscriptions_per_connection: 2,
        ..BrokerConfig::default()
    })
    .await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    let refused = |f: Option<Frame>, sub: u32, code: ErrorCode| match f {
        Some(Frame::SubscribeError(e)) => {
            assert_eq!((e.sub_id, e.code), (sub, code), "{e:?}");
        }
        other => panic!("expected SubscribeError({code}), got {other:?}"),
    };
    r.send(Frame::Subscribe(Subscribe {
        sub_id: 1,
        credit: 1,
        topic: String::new(),
        group: "g".into(),
    }))
    .await;
    refused(r.recv().await, 1, ErrorCode::INVALID_TOPIC);
    // A group name above 255 bytes (the encoder refuses it: raw bytes).
    let mut body = vec![0x20, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, b'a'];
    body.extend_from_slice(&256u16.to_be_bytes());
    body.extend_from_slice(&[b'g'; 256]);
    let mut raw = (body.len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(&body);
    send_raw(&mut r, &raw).await;
    refused(r.recv().await, 1, ErrorCode::INVALID_GROUP);
    // The sub_id stays free; the third subscription is one too many.
    r.subscribe(1, 1, "a", "g1").await;
    r.subscribe(2, 1, "b", "g1").await;
    r.send(Frame::Subscribe(Subscribe {
        sub_id: 3,
        credit: 1,
        topic: "c".into(),
        group: "g1".into(),
    }))
    .await;
    refused(r.recv().await, 3, ErrorCode::LIMIT_REACHED);
    // The connection lives: its subscription 1 gets a message.
    served(&b, 6).await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(7, 1);
    assert_eq!(
        s.publish(id, 1, "a", b"x").await.status,
        ReplyStatus::Stored
    );
    assert_eq!(r.deliver().await.id, id);
}

/// Item 5: a nack delay of 0xFFFFFFFF ms waits `max_nack_delay`, and the
/// message comes back even after the nacking receiver reconnected.
#[tokio::test]
async fn nack_delay_is_capped_and_outlives_a_reconnect() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        max_nack_delay: Duration::from_millis(100),
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(4, 1);
    assert_eq!(
        s.publish(id, 1, "n", b"x").await.status,
        ReplyStatus::Stored
    );
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "n", "g").await;
    let d = r.deliver().await;
    r.send(Frame::Nack(Nack {
        sub_id: 1,
        id: d.id,
        delay_ms: u32::MAX,
    }))
    .await;
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.nack_delays_capped == 1)
            .await
            .expect("nack seen and capped");
    }
    drop(r);
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "n", "g").await;
    let again = r.deliver().await;
    assert_eq!(again.id, id);
    if b.local().is_some() {
        assert_eq!(again.delivery_attempt, 2);
    } else {
        // JetStream counts its deliveries to the gateway: one that reached
        // the closing connection's pull counts too (PROTOCOL.md §11).
        assert!(again.delivery_attempt >= 2, "{again:?}");
    }
    r.ack(1, id).await;
    served(&b, 4).await;
}

/// Item 7: extension frames before Hello are skipped (§9).
#[tokio::test]
async fn extension_frames_before_hello_are_skipped() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig::default()).await;
    let mut p = Peer::raw(b.addr()).await;
    send_raw(&mut p, &[0, 0, 0, 3, 0x80, 0xab, 0xcd, 0, 0, 0, 1, 0xff]).await;
    p.send(Frame::Hello(mq_protocol::Hello::new(Role::Sender, "x")))
        .await;
    assert!(matches!(p.recv().await, Some(Frame::Welcome(_))));
    let r = p.publish(MessageId::new(5, 1), 1, "t", b"x").await;
    assert_eq!(r.status, ReplyStatus::Stored);
}

/// Item 6: heartbeat 0 is accepted and announced as 0.
#[tokio::test]
async fn heartbeat_zero_is_announced_and_pings_are_still_answered() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        heartbeat: Duration::ZERO,
        ..BrokerConfig::default()
    })
    .await;
    let (mut p, w) = Peer::hello(b.addr(), mq_protocol::Hello::new(Role::Sender, "x")).await;
    match w {
        Frame::Welcome(w) => assert_eq!(w.heartbeat_ms, 0),
        other => panic!("expected Welcome, got {other:?}"),
    }
    p.send(Frame::Ping(mq_protocol::Ping { nonce: 9 })).await;
    match tokio::time::timeout(WAIT, p.io.next()).await {
        Ok(Some(Ok(Frame::Pong(pong)))) => assert_eq!(pong.nonce, 9),
        other => panic!("expected Pong, got {other:?}"),
    }
}

/// Item 8: a retransmission with another payload of an ID that dedup
/// forgot but that is still stored never replaces the original.
#[tokio::test]
async fn stored_message_is_never_overwritten_after_dedup_forgot() {
    skip_on_jetstream!(
        "dedup bounds (dedup_max_ranges_per_producer) are the single node's; JetStream \
         dedups by Nats-Msg-Id within its duplicate_window (PROTOCOL.md §11)"
    );
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        dedup_max_ranges_per_producer: 2,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let first = MessageId::new(6, 1);
    assert_eq!(
        s.publish(first, 1, "o", b"original").await.status,
        ReplyStatus::Stored
    );
    // Gaps: every odd sequence, so each is its own range; the lowest range
    // (seq 1) is forgotten.
    for seq in (3..40).step_by(2) {
        let r = s.publish(MessageId::new(6, seq), 1, "o", b"filler").await;
        assert_eq!(r.status, ReplyStatus::Stored);
    }
    assert!(b.stats().dedup_evictions > 0, "dedup forgot some IDs");
    let retransmit = Message {
        id: first,
        attempt: 2,
        topic: "o".into(),
        headers: Headers::new(),
        payload: Bytes::from_static(b"REPLACED-with-a-longer-payload"),
    };
    s.send(Frame::Message(retransmit)).await;
    match s.recv().await {
        Some(Frame::Reply(r)) => assert_eq!(r.status, ReplyStatus::Duplicate),
        other => panic!("expected Reply, got {other:?}"),
    }
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 1, "o", "g").await;
    let d = r.deliver().await;
    assert_eq!((d.id, &d.payload[..]), (first, &b"original"[..]));
}

/// A connection that never reads and is never answered: memory stays
/// bounded and other peers are served. (Slowloris on the handshake: a
/// partial frame, then nothing; the handshake timeout closes it.)
#[tokio::test]
async fn partial_hello_is_closed_at_the_handshake_timeout() {
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig {
        handshake_timeout: Duration::from_millis(100),
        ..BrokerConfig::default()
    })
    .await;
    let base = heap_baseline();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..50 {
        let mut t = TcpStream::connect(b.addr()).await.expect("connect");
        t.write_all(&[0, 0, 0, 40, 0x01, 0]).await.expect("write");
        slow.push(t);
    }
    served(&b, 5).await;
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.timeouts >= 50)
            .await
            .expect("every slow handshake timed out");
    }
    assert_heap_within(base, 8 * 1024 * 1024, "slow handshakes");
}

/// Opens and closes `n` connections, each through the handshake.
async fn churn(b: &TestBroker, n: usize) {
    for i in 0..n {
        let role = if i % 2 == 0 {
            Role::Sender
        } else {
            Role::Receiver
        };
        let p = Peer::connect(b.addr(), role).await;
        drop(p);
    }
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.connections_open == 0)
            .await
            .expect("every connection closed");
    }
}

/// Issue 14 #9: RSS rose by about 0.6 kB per connection over 10 000
/// connections opened and closed. The live heap (what the broker and this
/// test asked the allocator for, not what the allocator keeps) does not
/// grow with the number of connections: after a first round (tables grow
/// to the most connections open at once, and keep that capacity), a second
/// round of 10 000 leaves it where it was. So that RSS rise is the
/// allocator's retention, not a leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaks_nothing() {
    skip_on_jetstream!(
        "the live-heap bound is calibrated for the single node's connection tables; the \
         gateway's NATS client allocates in the background, so the figure would not be \
         the connections'"
    );
    let _serial = SERIAL.lock().await;
    let b = broker(BrokerConfig::default()).await;
    churn(&b, 1_000).await;
    let start = mq_test_alloc::live();
    churn(&b, 10_000).await;
    served(&b, 8).await;
    let mid = mq_test_alloc::live();
    churn(&b, 20_000).await;
    served(&b, 9).await;
    let end = mq_test_alloc::live();
    eprintln!(
        "live heap: {start} B after warm-up, {mid} B after 10 000 connections, \
         {end} B after 20 000 more ({:+.2} B per connection in the second round)",
        (end as f64 - mid as f64) / 20_000.0
    );
    // A connection whose task is still finishing holds its 64 KiB read
    // buffer: allow three of those, which is under 10 B per connection of
    // the round; a leak of one small allocation per connection is above.
    assert!(
        end < mid + 3 * 64 * 1024,
        "live heap grew {} bytes over the second round of 20 000 connections: a per-connection leak",
        end - mid
    );
    assert_eq!(b.stats().connections_accepted, 31_002);
}
