//! PROTOCOL.md §11 ("Brokers on JetStream: what differs"), demonstrated:
//! one test per documented difference that the other JetStream suites do
//! not already show.
//!
//! * **Dedup is time-bounded**: a retransmission after the stream's
//!   `duplicate_window` is stored and delivered a second time.
//! * **Redelivery timing**: a delivery neither acked nor nacked comes back
//!   after the consumer's `ack_wait`, not after the redelivery backoff.
//! * **A gateway crash** loses nothing stored: its deliveries come back
//!   (through another gateway) after `ack_wait`, and a landed message
//!   retransmitted through another gateway is answered `Duplicate`.
//!
//! (The other §11 points have their tests in `jetstream.rs`: a closed
//! receiver's deliveries return at once, dead letters are copied then
//! terminated, the holding consumer keeps messages published before any
//! group, credit bounds the pulls, `STORE_FULL`.)
//!
//! The lower bounds on elapsed time below can only fail if JetStream
//! redelivered or forgot *early*; the upper bounds are the suites' generous
//! `WAIT`.

mod js_support;

use std::time::{Duration, Instant};

use js_support::{config, fixture_with, stored, Peer, WAIT};
use mq_broker::{BrokerConfig, JetStreamConfig};
use mq_e2e::gateway::CrashableGateway;
use mq_protocol::{Ack, Frame, MessageId, ReplyStatus, Role};

/// JetStream's clocks and ours differ by scheduling only; this much slack
/// on a lower bound keeps a loaded 2-core machine from failing it.
const SLACK: Duration = Duration::from_millis(300);

#[tokio::test]
async fn dedup_is_time_bounded_a_retransmission_after_the_window_is_stored_again() {
    let window = Duration::from_secs(2);
    let f = fixture_with(config(), |mut j| {
        j.sender_send_timeout = Duration::from_secs(1);
        j.duplicate_window(window)
    })
    .await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "w", "g").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(11, 1);
    let first = Instant::now();
    assert!(stored(&s.publish(id, 1, "w", b"once").await));
    let d = r.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id, 1));
    r.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    // Within the window: a duplicate, as on the single node.
    assert_eq!(
        s.publish(id, 2, "w", b"once").await.status,
        ReplyStatus::Duplicate
    );
    // Retransmit until JetStream has forgotten the ID (its window expiry
    // signals nothing; a publish is the only way to ask).
    let mut attempt = 3;
    let again = loop {
        let r = s.publish(id, attempt, "w", b"once").await;
        match r.status {
            ReplyStatus::Duplicate => {}
            ReplyStatus::Stored => break first.elapsed(),
            other => panic!("unexpected answer {other:?}"),
        }
        assert!(
            first.elapsed() < WAIT,
            "still a duplicate after {:?}",
            first.elapsed()
        );
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        again + SLACK >= window,
        "stored again after {again:?}, before the {window:?} window ended"
    );
    // Stored twice, so delivered twice: a new message to JetStream
    // (delivery attempt 1 again). Receivers must dedupe it (§6.4).
    let d = r.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id, 1));
    r.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
}

#[tokio::test]
async fn an_unacked_delivery_returns_after_ack_wait_not_after_the_backoff() {
    let ack_wait = Duration::from_secs(2);
    // config(): the redelivery backoff is 50 ms doubling to 200 ms, which
    // is what the single node would wait.
    let f = fixture_with(config(), |j| j.ack_wait(ack_wait)).await;
    let mut r = Peer::connect(f.gateway.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "aw", "g").await;
    let mut s = Peer::connect(f.gateway.addr(), Role::Sender).await;
    let id = MessageId::new(12, 1);
    assert!(stored(&s.publish(id, 1, "aw", b"x").await));
    let d = r.deliver().await;
    let delivered = Instant::now();
    assert_eq!((d.id, d.delivery_attempt), (id, 1));
    // Neither ack nor nack: the next frame is the redelivery.
    let d = r.deliver().await;
    let after = delivered.elapsed();
    assert_eq!((d.id, d.delivery_attempt), (id, 2));
    assert!(
        after + SLACK >= ack_wait,
        "redelivered after {after:?}: sooner than ack_wait {ack_wait:?}"
    );
    r.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
}

#[tokio::test]
async fn a_gateway_crash_costs_a_pause_of_ack_wait_and_loses_nothing() {
    let ack_wait = Duration::from_secs(2);
    let f = fixture_with(config(), |j| j.ack_wait(ack_wait)).await;
    let js = JetStreamConfig::new(f._cluster.urls()).ack_wait(ack_wait);
    let broker = || BrokerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..config()
    };
    let doomed = CrashableGateway::start(broker(), js.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = CrashableGateway::start(broker(), js)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut r = Peer::connect(doomed.addr(), Role::Receiver).await;
    r.subscribe(1, 10, "crash", "g").await;
    let mut s = Peer::connect(doomed.addr(), Role::Sender).await;
    let id = MessageId::new(13, 1);
    assert!(stored(&s.publish(id, 1, "crash", b"x").await));
    assert_eq!(r.deliver().await.id, id);
    let delivered = Instant::now();

    doomed.crash();
    // A crash writes nothing: both connections end without a Close.
    assert!(r.recv().await.is_none(), "a crashed gateway wrote a frame");
    assert!(s.recv().await.is_none(), "a crashed gateway wrote a frame");

    // The sender's retransmission through the other gateway: the message
    // had landed, so Duplicate.
    let mut s2 = Peer::connect(other.addr(), Role::Sender).await;
    assert_eq!(
        s2.publish(id, 2, "crash", b"x").await.status,
        ReplyStatus::Duplicate
    );
    // The receiver fails over too; the delivery the crashed gateway held
    // comes back only after ack_wait (nobody returned it).
    let mut r2 = Peer::connect(other.addr(), Role::Receiver).await;
    r2.subscribe(1, 10, "crash", "g").await;
    let d = r2.deliver().await;
    let pause = delivered.elapsed();
    // 2, or more if JetStream also tried the crashed gateway's pull request.
    assert_eq!(d.id, id);
    assert!(d.delivery_attempt >= 2, "{d:?}");
    assert!(
        pause + SLACK >= ack_wait,
        "back after {pause:?}: sooner than ack_wait {ack_wait:?}, so it was not held"
    );
    r2.send(Frame::Ack(Ack { sub_id: 1, id })).await;
    f.wait_stored(&f.stream, 0).await;
    other.shutdown().await;
}
