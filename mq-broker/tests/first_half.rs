//! The first half over real TCP: handshake, landing, dedup, limits.

#[path = "support/backend.rs"]
mod backend;
mod support;

use backend::{broker, skip_on_jetstream};
use mq_broker::BrokerConfig;
use mq_protocol::{ErrorCode, Frame, Hello, MessageId, ReplyStatus, Role};
use support::Peer;

#[tokio::test]
async fn stored_reply_comes_after_landing() {
    let b = broker(BrokerConfig::default()).await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(9, 1);
    let r = s.publish(id, 1, "orders", b"hello").await;
    assert_eq!((r.id, r.attempt, r.status), (id, 1, ReplyStatus::Stored));
    // The single node's own view (the gateway's store is JetStream's).
    if let Some(b) = b.local() {
        let snap = b.inspect();
        assert!(
            snap.is_stored(id),
            "Stored replied but not in the store: {snap:?}"
        );
        assert_eq!(snap.stored[0].payload_len, 5);
        assert_eq!(b.landed_count(id), 1);
    }
}

#[tokio::test]
async fn retransmit_is_answered_duplicate_and_landed_once() {
    let b = broker(BrokerConfig::default()).await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(9, 7);
    assert_eq!(
        s.publish(id, 1, "t", b"x").await.status,
        ReplyStatus::Stored
    );
    let r = s.publish(id, 2, "t", b"x").await;
    assert_eq!((r.attempt, r.status), (2, ReplyStatus::Duplicate));
    // From another connection too: dedup is per message ID, not per connection.
    let mut s2 = Peer::connect(b.addr(), Role::Sender).await;
    assert_eq!(
        s2.publish(id, 3, "t", b"x").await.status,
        ReplyStatus::Duplicate
    );
    if let Some(b) = b.local() {
        assert_eq!(b.landed_count(id), 1);
        let st = b.stats();
        assert_eq!(
            (
                st.messages_stored,
                st.duplicates_answered,
                st.retransmits_received
            ),
            (1, 2, 2)
        );
        assert_eq!(b.inspect().stored.len(), 1);
    }
}

#[tokio::test]
async fn frame_before_hello_is_unexpected() {
    let b = broker(BrokerConfig::default()).await;
    let mut p = Peer::raw(b.addr()).await;
    p.send(Frame::Message(support::msg(
        MessageId::new(1, 1),
        1,
        "t",
        b"x",
    )))
    .await;
    assert_eq!(p.expect_close().await.code, ErrorCode::UNEXPECTED_FRAME);
    assert!(p.recv().await.is_none());
}

#[tokio::test]
async fn second_hello_is_unexpected() {
    let b = broker(BrokerConfig::default()).await;
    let mut p = Peer::connect(b.addr(), Role::Sender).await;
    p.send(Frame::Hello(Hello::new(Role::Sender, "again")))
        .await;
    assert_eq!(p.expect_close().await.code, ErrorCode::UNEXPECTED_FRAME);
}

#[tokio::test]
async fn store_message_limit_rejects_store_full() {
    skip_on_jetstream!(
        "the store limits are the single node's (max_stored_messages, max_stored_bytes); \
         a JetStream stream's are its max_messages/max_bytes (mq-e2e's jetstream suite: \
         full_stream_answers_store_full)"
    );
    let b = broker(BrokerConfig {
        max_stored_messages: 1,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    s.publish(MessageId::new(1, 1), 1, "t", b"a").await;
    let r = s.publish(MessageId::new(1, 2), 1, "t", b"b").await;
    assert!(
        matches!(&r.status, ReplyStatus::Rejected { code, .. } if *code == ErrorCode::STORE_FULL),
        "{r:?}"
    );
    assert_eq!(b.landed_count(MessageId::new(1, 2)), 0);
    assert_eq!(b.stats().rejected, 1);
}

#[tokio::test]
async fn store_byte_limit_rejects_store_full_and_huge_message_too_large() {
    skip_on_jetstream!(
        "the store limits are the single node's (max_stored_messages, max_stored_bytes); \
         a JetStream stream's are its max_messages/max_bytes (mq-e2e's jetstream suite: \
         full_stream_answers_store_full)"
    );
    let b = broker(BrokerConfig {
        max_stored_bytes: 8,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    assert_eq!(
        s.publish(MessageId::new(1, 1), 1, "t", b"12345")
            .await
            .status,
        ReplyStatus::Stored
    );
    let r = s.publish(MessageId::new(1, 2), 1, "t", b"12345").await;
    assert!(
        matches!(&r.status, ReplyStatus::Rejected { code, .. } if *code == ErrorCode::STORE_FULL)
    );
    let r = s.publish(MessageId::new(1, 3), 1, "t", b"123456789").await;
    assert!(
        matches!(&r.status, ReplyStatus::Rejected { code, .. } if *code == ErrorCode::MESSAGE_TOO_LARGE),
        "larger than the whole store can never fit: {r:?}"
    );
    assert_eq!(b.inspect().stored.len(), 1);
}

#[tokio::test]
async fn message_size_limit_rejects_permanently() {
    let b = broker(BrokerConfig {
        max_message_size: 4,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let r = s.publish(MessageId::new(1, 1), 1, "t", b"12345").await;
    assert!(
        matches!(&r.status, ReplyStatus::Rejected { code, .. } if *code == ErrorCode::MESSAGE_TOO_LARGE && !code.is_retryable())
    );
    let r = s.publish(MessageId::new(1, 2), 1, "", b"1").await;
    assert!(
        matches!(&r.status, ReplyStatus::Rejected { code, .. } if *code == ErrorCode::INVALID_TOPIC)
    );
}

#[tokio::test]
async fn too_many_connections_are_refused() {
    let b = broker(BrokerConfig {
        max_connections: 1,
        ..BrokerConfig::default()
    })
    .await;
    let mut first = Peer::connect(b.addr(), Role::Sender).await;
    let (_, f) = Peer::hello(b.addr(), Hello::new(Role::Receiver, "second")).await;
    assert!(
        matches!(&f, Frame::Refuse(r) if r.code == ErrorCode::TOO_MANY_CONNECTIONS),
        "{f:?}"
    );
    if let Some(b) = b.local() {
        assert_eq!(b.stats().connections_refused, 1);
    }
    // The first one is unaffected.
    assert_eq!(
        first
            .publish(MessageId::new(1, 1), 1, "t", b"x")
            .await
            .status,
        ReplyStatus::Stored
    );
}

#[tokio::test]
async fn token_is_required_and_checked() {
    let b = broker(BrokerConfig {
        auth_token: Some("s3cret".into()),
        ..BrokerConfig::default()
    })
    .await;
    for token in [None, Some("wrong".to_owned())] {
        let hello = Hello {
            token: token.clone(),
            ..Hello::new(Role::Sender, "t")
        };
        let (mut p, f) = Peer::hello(b.addr(), hello).await;
        assert!(
            matches!(&f, Frame::Refuse(r) if r.code == ErrorCode::UNAUTHORIZED),
            "{token:?}: {f:?}"
        );
        assert!(p.recv().await.is_none(), "closed after Refuse");
    }
    let hello = Hello {
        token: Some("s3cret".into()),
        ..Hello::new(Role::Sender, "t")
    };
    let (_, f) = Peer::hello(b.addr(), hello).await;
    assert!(matches!(f, Frame::Welcome(_)), "{f:?}");
    if let Some(b) = b.local() {
        assert_eq!(b.stats().connections_refused, 2);
    }
}

#[tokio::test]
async fn unsupported_version_is_refused() {
    let b = broker(BrokerConfig::default()).await;
    let hello = Hello {
        min_version: 2,
        max_version: 5,
        ..Hello::new(Role::Sender, "future")
    };
    let (_, f) = Peer::hello(b.addr(), hello).await;
    assert!(
        matches!(&f, Frame::Refuse(r) if r.code == ErrorCode::UNSUPPORTED_VERSION),
        "{f:?}"
    );
}

#[tokio::test]
async fn welcome_advertises_limits_and_heartbeat() {
    let b = broker(BrokerConfig {
        max_frame_size: 4096,
        heartbeat: std::time::Duration::from_millis(1500),
        server_name: "unit".into(),
        ..BrokerConfig::default()
    })
    .await;
    let (_, f) = Peer::hello(b.addr(), Hello::new(Role::Sender, "t")).await;
    match f {
        Frame::Welcome(w) => {
            assert_eq!(
                (w.version, w.max_frame_size, w.heartbeat_ms),
                (1, 4096, 1500)
            );
            assert_eq!(w.server_name, "unit");
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
}

async fn write_raw(p: &mut Peer, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    p.io.get_mut().write_all(bytes).await.expect("raw write");
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let b = broker(BrokerConfig::default()).await;
    let mut good = Peer::connect(b.addr(), Role::Sender).await;
    let mut bad = Peer::connect(b.addr(), Role::Sender).await;
    // Length 2, unknown mandatory frame type 0x7e.
    write_raw(&mut bad, &[0, 0, 0, 2, 0x7e, 0xff]).await;
    assert_eq!(bad.expect_close().await.code, ErrorCode::PROTOCOL_ERROR);
    assert!(bad.recv().await.is_none());
    assert_eq!(
        good.publish(MessageId::new(1, 1), 1, "t", b"x")
            .await
            .status,
        ReplyStatus::Stored
    );
    if let Some(b) = b.local() {
        assert_eq!(b.stats().protocol_errors, 1);
    }
}

#[tokio::test]
async fn oversized_length_prefix_closes_only_that_connection() {
    let b = broker(BrokerConfig {
        max_frame_size: 1024,
        ..BrokerConfig::default()
    })
    .await;
    let mut good = Peer::connect(b.addr(), Role::Receiver).await;
    let mut bad = Peer::connect(b.addr(), Role::Sender).await;
    write_raw(&mut bad, &[0xff, 0xff, 0xff, 0xff]).await;
    let close = bad.expect_close().await;
    assert_eq!(close.code, ErrorCode::FRAME_TOO_LARGE, "{close:?}");
    good.subscribe(1, 1, "t", "g").await;
}

#[tokio::test]
async fn silent_peer_is_dropped_with_heartbeat_timeout() {
    use futures::StreamExt;
    let b = broker(BrokerConfig {
        heartbeat: std::time::Duration::from_millis(50),
        ..BrokerConfig::default()
    })
    .await;
    let mut p = Peer::connect(b.addr(), Role::Receiver).await;
    // Read without answering: the broker pings, then gives up.
    let mut pings = 0;
    loop {
        match p.io.next().await {
            Some(Ok(Frame::Ping(_))) => pings += 1,
            Some(Ok(Frame::Close(c))) => {
                assert_eq!(c.code, ErrorCode::HEARTBEAT_TIMEOUT);
                break;
            }
            other => panic!("expected Ping or Close, got {other:?}"),
        }
    }
    // How many Pings came first depends on scheduling under real time; the
    // exact schedule is checked under paused time in tests/paused.rs.
    eprintln!("{pings} pings before the timeout");
    assert!(p.io.next().await.is_none());
    if let Some(b) = b.local() {
        b.wait_for(support::WAIT, |s| s.connections_open == 0)
            .await
            .expect("connection gone");
    }
}

#[tokio::test]
async fn handshake_must_come_in_time() {
    let b = broker(BrokerConfig {
        handshake_timeout: std::time::Duration::from_millis(50),
        ..BrokerConfig::default()
    })
    .await;
    let mut p = Peer::raw(b.addr()).await;
    match p.recv().await {
        Some(Frame::Close(c)) => assert_eq!(c.code, ErrorCode::HANDSHAKE_TIMEOUT),
        other => panic!("expected Close(HANDSHAKE_TIMEOUT), got {other:?}"),
    }
    assert!(p.recv().await.is_none(), "closed after the Close");
    if let Some(b) = b.local() {
        assert_eq!(b.stats().timeouts, 1);
    }
}

#[tokio::test]
async fn close_survives_a_peer_that_keeps_sending() {
    let b = broker(BrokerConfig {
        max_frame_size: 1024,
        ..BrokerConfig::default()
    })
    .await;
    let mut bad = Peer::connect(b.addr(), Role::Sender).await;
    // An oversized frame whose body is actually sent: the broker must not
    // reset the connection with that body unread and lose its Close.
    let mut bytes = vec![0, 1, 0, 0, 0x10];
    bytes.resize(64 * 1024, 0xab);
    write_raw(&mut bad, &bytes).await;
    assert_eq!(bad.expect_close().await.code, ErrorCode::FRAME_TOO_LARGE);
}
