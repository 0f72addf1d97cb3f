//! The second half over real TCP: subscribe, deliver within credit, ack,
//! delete, disconnect.

#[path = "support/backend.rs"]
mod backend;
mod support;

use backend::{broker, skip_on_jetstream};
use mq_broker::BrokerConfig;
use mq_protocol::{MessageId, Role};
use support::{Peer, WAIT};

#[tokio::test]
async fn deliver_then_ack_deletes() {
    let b = broker(BrokerConfig::default()).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "orders", "billing").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(3, 1);
    s.publish(id, 1, "orders", b"pay").await;
    let d = r.deliver().await;
    assert_eq!(
        (d.sub_id, d.id, d.delivery_attempt, &d.payload[..]),
        (1, id, 1, &b"pay"[..])
    );
    // Deletion is the single node's to show (on JetStream, interest
    // retention deletes; mq-e2e's jetstream suite counts the stream).
    if let Some(b) = b.local() {
        assert!(b.inspect().is_stored(id), "deleted before the ack");
    }
    r.ack(1, id).await;
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.messages_deleted == 1)
            .await
            .expect("deleted after ack");
        let snap = b.inspect();
        assert!(!snap.is_stored(id));
        assert_eq!(
            snap.group("orders", "billing").map(|g| g.acked_ids.clone()),
            Some(vec![id])
        );
    }
}

fn slow_redelivery() -> BrokerConfig {
    // Redelivery far beyond the wait bound: anything delivered again within
    // the test came from another rule.
    let mut c = BrokerConfig::default();
    c.redelivery.initial = std::time::Duration::from_secs(600);
    c.redelivery.max = c.redelivery.initial;
    c
}

#[tokio::test]
async fn credit_is_never_exceeded() {
    let b = broker(slow_redelivery()).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 3, "t", "g").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    for seq in 1..=10 {
        s.publish(MessageId::new(1, seq), 1, "t", b"x").await;
    }
    for _ in 0..3 {
        r.deliver().await;
    }
    // Deliveries are produced while the Message is handled, before its Reply;
    // a Pong now is queued behind every Deliver the broker produced.
    r.send(mq_protocol::Frame::Ping(mq_protocol::Ping { nonce: 7 }))
        .await;
    match r.io.next().await {
        Some(Ok(mq_protocol::Frame::Pong(p))) => assert_eq!(p.nonce, 7),
        other => panic!("expected Pong (no 4th Deliver), got {other:?}"),
    }
    r.credit(1, 2).await;
    for _ in 0..2 {
        r.deliver().await;
    }
    if let Some(b) = b.local() {
        let snap = b.inspect();
        assert_eq!(snap.subscriptions[0].max_unacked, 5);
        assert_eq!(b.stats().deliveries_sent, 5);
    }
}

use futures::StreamExt;

#[tokio::test]
async fn disconnect_returns_unacked_to_another_member_at_once() {
    let b = broker(slow_redelivery()).await;
    let mut r1 = Peer::connect(b.addr(), Role::Receiver).await;
    r1.subscribe(1, 10, "t", "g").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    for seq in 1..=3 {
        s.publish(MessageId::new(1, seq), 1, "t", b"x").await;
    }
    for _ in 0..3 {
        assert_eq!(r1.deliver().await.delivery_attempt, 1);
    }
    let mut r2 = Peer::connect(b.addr(), Role::Receiver).await;
    r2.subscribe(2, 10, "t", "g").await;
    drop(r1);
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = r2.deliver().await;
        assert_eq!((d.sub_id, d.delivery_attempt), (2, 2));
        got.push(d.id.seq);
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 2, 3]);
}

#[tokio::test]
async fn unacked_is_dead_lettered_after_max_deliveries() {
    skip_on_jetstream!(
        "an unacked delivery comes back after the consumer's ack_wait (30 s), not the \
         broker's redelivery backoff; mq-e2e's jetstream suite covers dead letters \
         (dead_letter_after_max_deliveries_is_copied_then_terminated)"
    );
    let mut config = BrokerConfig {
        max_deliveries: 2,
        ..BrokerConfig::default()
    };
    config.redelivery.initial = std::time::Duration::from_millis(10);
    config.redelivery.max = config.redelivery.initial;
    let b = broker(config).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "t", "g").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(4, 4);
    s.publish(id, 1, "t", b"poison").await;
    assert_eq!(r.deliver().await.delivery_attempt, 1);
    assert_eq!(r.deliver().await.delivery_attempt, 2);
    b.wait_for(WAIT, |s| s.dead_lettered == 1)
        .await
        .expect("dead-lettered");
    let snap = b.inspect();
    assert_eq!(snap.dead_letters.len(), 1);
    assert_eq!(
        (snap.dead_letters[0].id, snap.dead_letters[0].deliveries),
        (id, 2)
    );
    assert_eq!(&snap.dead_letters[0].group, "g");
    assert!(!snap.is_stored(id));
    assert_eq!(b.stats().deliveries_sent, 2);
}

#[tokio::test]
async fn ack_for_unknown_subscription_closes() {
    let b = broker(BrokerConfig::default()).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.ack(42, MessageId::new(1, 1)).await;
    assert_eq!(
        r.expect_close().await.code,
        mq_protocol::ErrorCode::UNKNOWN_SUBSCRIPTION
    );
}

#[tokio::test]
async fn every_group_gets_every_message() {
    let b = broker(slow_redelivery()).await;
    let mut a = Peer::connect(b.addr(), Role::Receiver).await;
    a.subscribe(1, 10, "t", "a").await;
    let mut c = Peer::connect(b.addr(), Role::Receiver).await;
    c.subscribe(1, 10, "t", "c").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(2, 1);
    s.publish(id, 1, "t", b"x").await;
    assert_eq!(a.deliver().await.id, id);
    assert_eq!(c.deliver().await.id, id);
    a.ack(1, id).await;
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.acks_received == 1)
            .await
            .expect("ack seen");
        assert!(b.inspect().is_stored(id), "group c has not acked");
    }
    c.ack(1, id).await;
    if let Some(b) = b.local() {
        b.wait_for(WAIT, |s| s.messages_deleted == 1)
            .await
            .expect("deleted");
    }
}

#[tokio::test]
async fn acks_sent_just_before_a_close_are_kept() {
    let b = broker(slow_redelivery()).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 100, "t", "g").await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    for seq in 1..=20 {
        s.publish(MessageId::new(5, seq), 1, "t", b"x").await;
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(r.deliver().await.id);
    }
    // Every ack and then Close in one write: the acks must not be lost to
    // the close (which returns the connection's outstanding deliveries).
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::Encoder;
    let mut bytes = bytes::BytesMut::new();
    let mut codec = mq_protocol::Codec::default();
    for id in ids {
        let ack = mq_protocol::Frame::Ack(mq_protocol::Ack { sub_id: 1, id });
        codec.encode(ack, &mut bytes).expect("encode");
    }
    let close = mq_protocol::Frame::Close(mq_protocol::Close {
        code: mq_protocol::ErrorCode::NORMAL,
        reason: "bye".into(),
    });
    codec.encode(close, &mut bytes).expect("encode");
    r.io.get_mut().write_all(&bytes).await.expect("write");
    drop(r);
    let marker = MessageId::new(5, 100);
    s.publish(marker, 1, "t", b"marker").await;
    let mut r2 = Peer::connect(b.addr(), Role::Receiver).await;
    r2.subscribe(1, 100, "t", "g").await;
    let d = r2.deliver().await;
    assert_eq!(d.id, marker, "an acked message came back: {d:?}");
    if b.local().is_some() {
        assert_eq!(d.delivery_attempt, 1);
    }
    // On JetStream the marker's delivery count may include deliveries to
    // the closed connection's pull requests (PROTOCOL.md §11).
}

/// `max_groups_per_topic` and `max_topics` on every backend (the gateway
/// counts the stream's group consumers): a `Subscribe` creating one group
/// too many gets `SubscribeError(LIMIT_REACHED)`, the connection lives and
/// the sub_id stays free; joining an existing group is never refused; a
/// group stays counted after its receiver left.
#[tokio::test]
async fn group_and_topic_limits_get_subscribe_error() {
    use mq_protocol::{ErrorCode, Frame, Subscribe};
    let b = broker(BrokerConfig {
        max_groups_per_topic: 2,
        max_topics: 2,
        ..BrokerConfig::default()
    })
    .await;
    let sub = |sub_id, topic: &str, group: &str| {
        Frame::Subscribe(Subscribe {
            sub_id,
            credit: 1,
            topic: topic.into(),
            group: group.into(),
        })
    };
    let refused = |f: Option<Frame>, sub: u32, why: &str| match f {
        Some(Frame::SubscribeError(e)) => {
            assert_eq!((e.sub_id, e.code), (sub, ErrorCode::LIMIT_REACHED), "{e:?}");
            assert!(e.reason.contains(why), "{e:?}");
        }
        other => panic!("expected SubscribeError(LIMIT_REACHED), got {other:?}"),
    };
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 1, "a", "g1").await;
    r.subscribe(2, 1, "a", "g2").await;
    // A third group of topic a.
    r.send(sub(3, "a", "g3")).await;
    refused(r.recv().await, 3, "2 consumer groups");
    // The connection lives, sub_id 3 is free: a second topic.
    r.subscribe(3, 1, "b", "g1").await;
    // A third topic with groups, from another connection.
    let mut r2 = Peer::connect(b.addr(), Role::Receiver).await;
    r2.send(sub(1, "c", "g1")).await;
    refused(r2.recv().await, 1, "2 topics");
    // Joining existing groups is not creating one.
    r2.subscribe(1, 1, "a", "g2").await;
    r2.subscribe(2, 1, "b", "g1").await;
    // Groups outlive their members: still at the limit after r leaves.
    drop(r);
    r2.send(sub(3, "a", "g4")).await;
    refused(r2.recv().await, 3, "2 consumer groups");
    // Still served: a message published now reaches group a/g2 on r2.
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(9, 1);
    s.publish(id, 1, "a", b"x").await;
    let d = r2.deliver().await;
    assert_eq!((d.sub_id, d.id), (1, id));
}
