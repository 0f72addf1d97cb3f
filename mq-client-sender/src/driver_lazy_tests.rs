//! Lazy connect and connection events, over duplex pipes with paused time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mq_conn::{ConnectionEvent, Events};
use mq_protocol::{ErrorCode, Frame, Refuse};
use tokio::time::Instant;

use super::*;
use crate::{OutgoingMessage, SendError};

const S: Duration = Duration::from_secs(1);

/// `config()` with a 5 s total deadline per message and no attempt count.
fn lazy_config() -> SenderConfig {
    config()
        .send_timeout(Some(5 * S))
        .max_attempts(SenderConfig::UNLIMITED_ATTEMPTS)
}

async fn lazy_sender(cfg: SenderConfig, events: Events) -> (Sender, Net) {
    let (connector, net) = net();
    net.down.store(true, Ordering::SeqCst);
    let mut b = Sender::builder(cfg).lazy_connect(true).events(events);
    b = b.connector(connector);
    (
        b.connect()
            .await
            .expect("lazy connect never waits for a broker"),
        net,
    )
}

#[tokio::test(start_paused = true)]
async fn lazy_sender_accepts_while_down_and_deadlines_keep_running() {
    let events = Events::new(64);
    let mut rx = events.subscribe();
    let t0 = Instant::now();
    let (sender, _net) = lazy_sender(lazy_config(), events).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "created without a broker");
    let pending = sender
        .enqueue(OutgoingMessage::new("t", "a"))
        .await
        .unwrap();
    let id = pending.id();
    // The broker never comes: the documented Timeout at send_timeout.
    match pending.await {
        Err(SendError::Timeout { id: got, attempts }) => {
            assert_eq!(got, id);
            // Attempts start on the sender's own timer, connected or not
            // (retry 1 s, 2 s: attempts at 0 s, 1 s, 3 s).
            assert_eq!(attempts, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed(), 5 * S);
    let st = sender.stats();
    assert_eq!((st.sent, st.failed, st.in_flight), (1, 1, 0));
    // Meanwhile the driver kept trying, with backoff, and said so.
    let mut reconnecting = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let ConnectionEvent::Reconnecting { attempt, delay } = e {
            reconnecting.push((attempt, delay));
        }
    }
    assert!(reconnecting.len() >= 3, "{reconnecting:?}");
    assert_eq!(reconnecting[0], (1, Duration::from_millis(100)));
    assert_eq!(reconnecting[1], (2, Duration::from_millis(200)));
    sender.close(Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn lazy_sender_delivers_once_the_broker_comes_up() {
    let events = Events::new(64);
    let mut rx = events.subscribe();
    let (sender, mut net) = lazy_sender(lazy_config(), events).await;
    let pending = sender
        .enqueue(OutgoingMessage::new("t", "a"))
        .await
        .unwrap();
    tokio::time::sleep(2 * S).await;
    net.down.store(false, Ordering::SeqCst);
    let mut peer = net.accept(welcome(0, 1 << 20)).await;
    let m = peer.recv_msg().await;
    // The attempt in progress when the broker came up (2 started at 1 s).
    assert_eq!((m.id, m.attempt), (pending.id(), 2));
    peer.reply(&m, stored()).await;
    let r = pending.await.expect("confirmed after the broker came up");
    assert!(r.elapsed >= 2 * S && r.elapsed < 5 * S, "{:?}", r.elapsed);
    // The first connection of a lazy sender is not a reconnect.
    assert_eq!(sender.stats().reconnects, 0);
    let mut connected = false;
    while let Ok(e) = rx.try_recv() {
        connected |= matches!(e, ConnectionEvent::Connected { .. });
    }
    assert!(connected, "a Connected event");
    sender.close(S).await;
}

#[tokio::test(start_paused = true)]
async fn lost_connection_and_refusals_are_events() {
    let (sender, mut net, peer) = start(config(), welcome(0, 1 << 20)).await;
    let mut rx = sender.events();
    drop(peer);
    match rx.recv().await.unwrap() {
        ConnectionEvent::Lost { reason } => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    net.accept_with(Frame::Refuse(Refuse {
        code: ErrorCode::UNAUTHORIZED,
        reason: "token".into(),
    }))
    .await;
    assert_eq!(
        rx.recv().await.unwrap(),
        ConnectionEvent::Refused {
            address: "fake:1".into(),
            code: ErrorCode::UNAUTHORIZED,
            reason: "token".into()
        }
    );
    assert_eq!(
        rx.recv().await.unwrap(),
        ConnectionEvent::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(100)
        }
    );
    let _peer = net.accept(welcome(0, 1 << 20)).await;
    assert_eq!(
        rx.recv().await.unwrap(),
        ConnectionEvent::Connected {
            address: "fake:1".into()
        }
    );
    sender.close(S).await;
    assert_eq!(sender.stats().reconnects, 1);
}

#[test]
fn debug_hides_the_auth_token() {
    let cfg = SenderConfig::new("127.0.0.1:7878").auth_token(Some("s3cr3t-token".into()));
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cr3t-token"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let builder = format!("{:?}", Sender::builder(cfg));
    assert!(!builder.contains("s3cr3t-token"), "{builder}");
}
