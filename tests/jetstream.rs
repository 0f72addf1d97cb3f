//! The broker behaviour suite against the JetStream gateway: raw frames
//! and the SDK, through `mq_broker::Gateway` on a real 3-node NATS
//! JetStream cluster (R3) started by the test (see `mq_e2e::nats`).
//!
//! Each test starts its own cluster and gateway (with its own stream), so
//! tests are independent. Waiting is on observable events (a frame, a
//! stream's message count polled with a deadline), never a bare sleep.
//!
//! The single-node suites' tests that cannot hold here are the `#[ignore]`d
//! stubs at the end, each with its reason.

mod js_support;

use std::time::Duration;

use js_support::{config, fixture, fixture_with, msg, stored, Peer, WAIT};
use mq_broker::{BrokerConfig, Gateway, GatewayError, JetStreamConfig};
use mq_e2e::nats::NatsCluster;
use mq_protocol::{Ack, Credit, ErrorCode, Frame, Hello, MessageId, Nack, ReplyStatus, Role};

#[tokio::test]
async fn stored_then_retransmit_is_duplicate() {
    let f = fixture().await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(7, 1);
    let r = s.publish(id, 1, "orders", b"a").await;
    assert!(stored(&r), "{r:?}");
    let r = s.publish(id, 2, "orders", b"a").await;
    assert_eq!(r.status, ReplyStatus::Duplicate);
    assert_eq!(r.attempt, 2, "the attempt answered is echoed");
    // Stored once: the holding consumer keeps it (no group yet).
    assert_eq!(f.stored(&f.stream).await, 1);
    assert_eq!(f.gateway.stats().stored, 1);
    assert_eq!(f.gateway.stats().duplicates, 1);
}

#[tokio::test]
async fn message_before_any_group_is_kept_for_the_first_group() {
    let f = fixture().await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    for seq in 1..=3 {
        assert!(stored(
            &s.publish(MessageId::new(1, seq), 1, "early", b"x").await
        ));
    }
    // An interest stream without a consumer would have dropped them by now
    // while acknowledging the publish; the holding consumer keeps them.
    assert_eq!(f.stored(&f.stream).await, 3);
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "early", "g1").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = r.deliver().await;
        assert_eq!(d.delivery_attempt, 1);
        assert_eq!(d.topic, "early");
        seen.push(d.id.seq);
        r.send(Frame::Ack(Ack {
            sub_id: 1,
            id: d.id,
        }))
        .await;
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3]);
    // Acked by the only group and the holding consumer is gone: deleted.
    f.wait_stored(&f.stream, 0).await;
}

/// Why the holding consumer exists: JetStream itself, on an interest stream
/// with no consumer for the subject, acknowledges a publish and keeps
/// nothing. (Checked here so a server change in that behaviour shows.)
#[tokio::test]
async fn jetstream_alone_drops_an_acknowledged_message_without_a_consumer() {
    let f = fixture().await;
    let mut st = f.js.get_stream(&f.stream).await.expect("stream");
    let ack =
        f.js.publish("mq.t.nobody", "x".into())
            .await
            .expect("sent")
            .await
            .expect("JetStream acknowledged the publish");
    assert!(!ack.duplicate);
    let info = st.info().await.expect("info");
    assert_eq!(
        info.state.messages, 0,
        "kept without any consumer: {info:?}"
    );
}

#[tokio::test]
async fn acked_and_deleted_id_is_still_a_duplicate_within_the_window() {
    let f = fixture().await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "t", "g").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(3, 9);
    assert!(stored(&s.publish(id, 1, "t", b"p").await));
    let d = r.deliver().await;
    assert_eq!((d.id, &d.payload[..]), (id, &b"p"[..]));
    r.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
    let again = s.publish(id, 2, "t", b"p").await;
    assert_eq!(again.status, ReplyStatus::Duplicate);
}

#[tokio::test]
async fn headers_and_binary_payloads_round_trip() {
    let f = fixture().await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "a.b c*>", "g.1").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let mut m = msg(MessageId::new(1, 1), 1, "a.b c*>", b"\0\r\n\xff");
    m.headers
        .insert("trace", bytes::Bytes::from_static(b"\r\nNats-Msg-Id: x"));
    s.send(Frame::Message(m.clone())).await;
    assert!(matches!(s.recv().await, Some(Frame::Reply(r)) if r.status == ReplyStatus::Stored));
    let d = r.deliver().await;
    assert_eq!(d.topic, &*m.topic);
    assert_eq!(d.headers, m.headers);
    assert_eq!(d.payload, m.payload);
}

#[tokio::test]
async fn invalid_messages_are_rejected_permanently() {
    let broker = BrokerConfig {
        max_message_size: 16,
        ..config()
    };
    let f = fixture_with(broker, |j| j).await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let r = s.publish(MessageId::new(1, 1), 1, "", b"x").await;
    assert!(
        matches!(r.status, ReplyStatus::Rejected { code, .. } if code == ErrorCode::INVALID_TOPIC)
    );
    let r = s.publish(MessageId::new(1, 2), 1, "t", &[7u8; 17]).await;
    assert!(
        matches!(r.status, ReplyStatus::Rejected { code, .. } if code == ErrorCode::MESSAGE_TOO_LARGE)
    );
    // Not remembered: the same ID judged afresh later.
    assert!(stored(
        &s.publish(MessageId::new(1, 2), 2, "t", b"ok").await
    ));
}

#[tokio::test]
async fn full_stream_answers_store_full() {
    let f = fixture_with(config(), |mut j| {
        j.max_messages = 2;
        j
    })
    .await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    assert!(stored(&s.publish(MessageId::new(1, 1), 1, "t", b"1").await));
    assert!(stored(&s.publish(MessageId::new(1, 2), 1, "t", b"2").await));
    let r = s.publish(MessageId::new(1, 3), 1, "t", b"3").await;
    match r.status {
        ReplyStatus::Rejected { code, .. } => {
            assert_eq!(code, ErrorCode::STORE_FULL);
            assert!(code.is_retryable());
        }
        other => panic!("expected STORE_FULL, got {other:?}"),
    }
}

#[tokio::test]
async fn credit_bounds_deliveries() {
    let f = fixture().await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    for seq in 1..=5 {
        assert!(stored(
            &s.publish(MessageId::new(1, seq), 1, "c", b"x").await
        ));
    }
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 2, "c", "g").await;
    let a = r.deliver().await;
    let b = r.deliver().await;
    // The gateway pulled exactly the credit: two outstanding in JetStream.
    let mut c =
        f.js.get_stream(&f.stream)
            .await
            .expect("stream")
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("G__g__c")
            .await
            .expect("the group's consumer");
    let info = c.info().await.expect("consumer info");
    assert_eq!(info.num_ack_pending, 2, "{info:?}");
    r.send(Frame::Ack(Ack {
        sub_id: 1,
        id: a.id,
    }))
    .await;
    r.send(Frame::Ack(Ack {
        sub_id: 1,
        id: b.id,
    }))
    .await;
    r.send(Frame::Credit(Credit {
        sub_id: 1,
        credit: 3,
    }))
    .await;
    let mut rest = Vec::new();
    for _ in 0..3 {
        let d = r.deliver().await;
        rest.push(d.id);
        r.send(Frame::Ack(Ack {
            sub_id: 1,
            id: d.id,
        }))
        .await;
    }
    assert_eq!(rest.len(), 3);
    f.wait_stored(&f.stream, 0).await;
}

#[tokio::test]
async fn nack_redelivers_with_the_next_attempt_then_ack_deletes() {
    let f = fixture().await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "n", "g").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(2, 1);
    assert!(stored(&s.publish(id, 1, "n", b"x").await));
    let d = r.deliver().await;
    assert_eq!(d.delivery_attempt, 1);
    r.send(Frame::Nack(Nack {
        sub_id: 1,
        id,
        delay_ms: 0,
    }))
    .await;
    r.send(Frame::Credit(Credit {
        sub_id: 1,
        credit: 1,
    }))
    .await;
    let d = r.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id, 2));
    r.send(Frame::Nack(Nack {
        sub_id: 1,
        id,
        delay_ms: 100,
    }))
    .await;
    r.send(Frame::Credit(Credit {
        sub_id: 1,
        credit: 1,
    }))
    .await;
    let d = r.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id, 3));
    r.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
    assert_eq!(f.gateway.stats().nacked, 2);
}

#[tokio::test]
async fn closed_receiver_returns_its_deliveries_at_once() {
    let f = fixture().await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(4, 1);
    assert!(stored(&s.publish(id, 1, "x", b"x").await));
    let mut a = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    a.subscribe(1, 10, "x", "g").await;
    assert_eq!(a.deliver().await.id, id);
    drop(a);
    // ack_wait is 60 s and WAIT 20 s: only the nak at close can bring it
    // back this soon.
    let mut b = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    b.subscribe(1, 10, "x", "g").await;
    let d = b.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id, 2));
}

#[tokio::test]
async fn every_group_gets_every_message_and_deletion_waits_for_all() {
    let f = fixture().await;
    let mut g1 = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    g1.subscribe(1, 10, "m", "one").await;
    let mut g2 = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    g2.subscribe(1, 10, "m", "two").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(5, 1);
    assert!(stored(&s.publish(id, 1, "m", b"x").await));
    assert_eq!(g1.deliver().await.id, id);
    assert_eq!(g2.deliver().await.id, id);
    g1.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    // Group two has not acked: still stored. (Its ack below is what
    // deletes it; wait_stored(0) proves the order.)
    assert_eq!(f.stored(&f.stream).await, 1);
    g2.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
}

#[tokio::test]
async fn dead_letter_after_max_deliveries_is_copied_then_terminated() {
    let broker = BrokerConfig {
        max_deliveries: 2,
        ..config()
    };
    let f = fixture_with(broker, |j| j).await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "d", "g").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(6, 1);
    assert!(stored(&s.publish(id, 1, "d", b"poison").await));
    for attempt in 1..=2 {
        let d = r.deliver().await;
        assert_eq!((d.id, d.delivery_attempt), (id, attempt));
        r.send(Frame::Nack(Nack {
            sub_id: 1,
            id,
            delay_ms: 1,
        }))
        .await;
        r.send(Frame::Credit(Credit {
            sub_id: 1,
            credit: 1,
        }))
        .await;
    }
    let dlq = format!("{}_DLQ", f.stream);
    f.wait_stored(&dlq, 1).await;
    f.wait_stored(&f.stream, 0).await;
    let copy =
        f.js.get_stream(&dlq)
            .await
            .expect("dlq")
            .get_raw_message(1)
            .await
            .expect("the dead letter");
    assert_eq!(
        copy.headers.get("Mq-Id").map(|v| v.as_str().to_owned()),
        Some(id.to_string())
    );
    assert_eq!(f.gateway.stats().dead_lettered, 1);
}

#[tokio::test]
async fn a_second_gateway_serves_the_same_messages() {
    let f = fixture().await;
    let js = JetStreamConfig::new(f._cluster.urls()).ack_wait(Duration::from_secs(2));
    let other = Gateway::start(config(), js).await.expect("second gateway");
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(8, 1);
    assert!(stored(&s.publish(id, 1, "two", b"x").await));
    // A retransmission through the other gateway is a duplicate.
    let mut s2 = Peer::connect(other.addr(), Role::Sender).await;
    assert_eq!(
        s2.publish(id, 2, "two", b"x").await.status,
        ReplyStatus::Duplicate
    );
    let mut r = Peer::connect(other.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "two", "g").await;
    assert_eq!(r.deliver().await.id, id);
    other.shutdown().await;
}

#[tokio::test]
async fn start_refuses_a_dedup_window_within_the_send_timeout() {
    let cluster = NatsCluster::start(1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let short = JetStreamConfig::new(cluster.urls())
        .replicas(1)
        .duplicate_window(Duration::from_secs(60));
    match Gateway::start(config(), short).await {
        Err(GatewayError::Config(why)) => assert!(why.contains("duplicate_window"), "{why}"),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("a 60 s window was accepted with a 120 s send_timeout"),
    }
    // An existing stream with a short window is refused too.
    let client = cluster.client().await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MQ".into(),
        subjects: vec!["mq.t.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::Interest,
        duplicate_window: Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .expect("create");
    match Gateway::start(config(), JetStreamConfig::new(cluster.urls()).replicas(1)).await {
        Err(GatewayError::Config(why)) => assert!(why.contains("duplicate_window"), "{why}"),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("an existing 30 s window was accepted"),
    }
}

#[tokio::test]
async fn handshake_and_unknown_subscription_errors() {
    let f = fixture().await;
    let mut h = Hello::new(Role::Sender, "old");
    h.min_version = 2;
    h.max_version = 3;
    let (_p, frame) = Peer::hello(f.gateway.addr(), h).await;
    assert!(matches!(frame, Frame::Refuse(r) if r.code == ErrorCode::UNSUPPORTED_VERSION));
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.send(Frame::Ack(Ack {
        sub_id: 9,
        id: MessageId::new(1, 1),
    }))
    .await;
    assert!(
        matches!(r.recv().await, Some(Frame::Close(c)) if c.code == ErrorCode::UNKNOWN_SUBSCRIPTION)
    );
}

#[tokio::test]
async fn sdk_sender_and_receiver_through_the_gateway() {
    use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
    use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
    let f = fixture().await;
    let addr = f.gateway.addr().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let receiver = Receiver::connect(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .topic("sdk")
            .group("g"),
        move |d: Delivery| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(d.id());
                Ok::<(), HandlerError>(())
            }
        },
    )
    .await
    .expect("receiver");
    let sender = Sender::connect(SenderConfig::new(addr))
        .await
        .expect("sender");
    let n = 200;
    let mut ids = std::collections::HashSet::new();
    for i in 0..n {
        let r = sender
            .send(OutgoingMessage::new("sdk", format!("m{i}")))
            .await
            .expect("confirmed");
        ids.insert(r.id);
    }
    let mut handled = std::collections::HashSet::new();
    while handled.len() < n {
        let id = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("handled in time")
            .expect("handler alive");
        assert!(handled.insert(id), "{id} handled twice");
    }
    assert_eq!(handled, ids);
    f.wait_stored(&f.stream, 0).await;
    receiver
        .close(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test]
#[ignore = "does not hold on JetStream: dedup is time-bounded (duplicate_window, default 10 min), the single node's per-producer ranges are not; jetstream_differences.rs shows a retransmission after the window stored again"]
async fn dedup_outlives_any_time() {}

#[tokio::test]
#[ignore = "does not hold on JetStream: an unacked delivery comes back after the consumer's ack_wait, not after redelivery.delay(n); jetstream_differences.rs shows it"]
async fn timeout_redelivery_follows_the_backoff_schedule() {}

#[tokio::test]
#[ignore = "does not hold on JetStream: fault injection, inspect(), paused time and RestartMode belong to the in-process broker; the gateway is tested with real processes (mq-broker's jetstream_failover), through a fault proxy (chaos.rs with MQ_TEST_STORAGE=jetstream) and crashed in process (failover.rs)"]
async fn faults_inspection_and_simulated_restarts() {}
