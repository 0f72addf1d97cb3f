//! The first half over real TCP: handshake, landing, dedup, limits.

mod support;

use mq_mock_broker::BrokerConfig;
use mq_protocol::{ErrorCode, Frame, Hello, MessageId, ReplyStatus, Role};
use support::{broker, Peer};

#[tokio::test]
async fn stored_reply_comes_after_landing() {
    let b = broker(BrokerConfig::default()).await;
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let id = MessageId::new(9, 1);
    let r = s.publish(id, 1, "orders", b"hello").await;
    assert_eq!((r.id, r.attempt, r.status), (id, 1, ReplyStatus::Stored));
    let snap = b.inspect();
    assert!(
        snap.is_stored(id),
        "Stored replied but not in the store: {snap:?}"
    );
    assert_eq!(snap.stored[0].payload_len, 5);
    assert_eq!(b.landed_count(id), 1);
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
