//! Message-level limits seen from the SDK (PROTOCOL.md §2.3, §3.2): an
//! over-limit message fails its send with a permanent error, before it
//! takes a slot, and the sender neither reconnects nor resends it. Real
//! TCP on 127.0.0.1:0 against the broker.

use std::time::Duration;

use mq_client_sender::{OutgoingMessage, SendError, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};

async fn setup(config: BrokerConfig) -> (MockBroker, Sender) {
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(14),
        ..config
    })
    .await
    .expect("broker starts");
    let sender = Sender::connect(
        SenderConfig::new(broker.addr().to_string())
            .seed(Some(14))
            .send_timeout(Some(Duration::from_secs(30))),
    )
    .await
    .expect("sender connects");
    (broker, sender)
}

fn assert_permanent_and_quiet(err: &SendError, broker: &MockBroker, sender: &Sender) {
    assert!(!err.is_retryable(), "permanent: {err}");
    let s = sender.stats();
    assert_eq!((s.reconnects, s.retransmitted), (0, 0), "{s:?}");
    let b = broker.stats();
    assert_eq!(b.protocol_errors, 0, "the connection was not closed");
}

#[tokio::test]
async fn message_above_the_announced_max_message_size_fails_at_once() {
    let (broker, sender) = setup(BrokerConfig {
        max_message_size: 100,
        ..BrokerConfig::default()
    })
    .await;
    // The first send confirms the connection (and with it the Welcome).
    sender
        .send(OutgoingMessage::new("t", vec![0u8; 100]))
        .await
        .expect("100 bytes fit");
    let err = sender
        .send(OutgoingMessage::new("t", vec![0u8; 101]))
        .await
        .expect_err("101 bytes do not");
    assert!(
        matches!(
            err,
            SendError::TooLarge {
                size: 101,
                max: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert_permanent_and_quiet(&err, &broker, &sender);
    assert_eq!(broker.stats().rejected, 0, "refused before it was sent");
    // The sender carries on.
    sender
        .send(OutgoingMessage::new("t", "after"))
        .await
        .expect("later messages are confirmed");
}

#[tokio::test]
async fn message_whose_deliver_would_not_fit_fails_at_once() {
    let (broker, sender) = setup(BrokerConfig {
        max_frame_size: 4096,
        ..BrokerConfig::default()
    })
    .await;
    // A Message frame of exactly max_frame_size - 4 = 4092 bytes is stored:
    // 30 bytes of frame for topic "t" without headers, plus the payload.
    sender
        .send(OutgoingMessage::new("t", vec![1u8; 4092 - 30]))
        .await
        .expect("a 4092-byte frame is stored");
    let err = sender
        .send(OutgoingMessage::new("t", vec![1u8; 4092 - 30 + 1]))
        .await
        .expect_err("a 4093-byte frame is not");
    assert!(
        matches!(err, SendError::TooLarge { max: 4092, .. }),
        "{err:?}"
    );
    assert_permanent_and_quiet(&err, &broker, &sender);
}

#[tokio::test]
async fn topic_and_header_limits_fail_at_once() {
    let (broker, sender) = setup(BrokerConfig::default()).await;
    let err = sender
        .send(OutgoingMessage::new("t".repeat(256), "x"))
        .await
        .expect_err("256-byte topic");
    assert!(matches!(err, SendError::InvalidMessage { .. }), "{err:?}");
    assert_permanent_and_quiet(&err, &broker, &sender);
    let mut m = OutgoingMessage::new("t", "x");
    for i in 0..65 {
        m = m.header(format!("k{i}"), "v");
    }
    let err = sender.send(m).await.expect_err("65 headers");
    assert!(matches!(err, SendError::InvalidMessage { .. }), "{err:?}");
    assert_permanent_and_quiet(&err, &broker, &sender);
}
