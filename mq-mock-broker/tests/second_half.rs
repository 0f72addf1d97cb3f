//! The second half over real TCP: subscribe, deliver within credit, ack,
//! delete, disconnect.

mod support;

use mq_mock_broker::BrokerConfig;
use mq_protocol::{MessageId, Role};
use support::{broker, Peer, WAIT};

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
    assert!(b.inspect().is_stored(id), "deleted before the ack");
    r.ack(1, id).await;
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
