//! The shared vocabulary and API promises against the mock broker over real
//! TCP: `connect`/`close`, several topics on one connection, `?` in a
//! handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_protocol::{Backoff, Codec, Frame, Hello, Message, MessageId, ReplyStatus, Role};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(30);

async fn broker() -> MockBroker {
    let config = BrokerConfig {
        seed: Some(5),
        redelivery: Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(200),
            jitter: 0.2,
        },
        ..Default::default()
    };
    MockBroker::start(config).await.expect("broker starts")
}

fn config(broker: &MockBroker, topic: &str) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic(topic)
        .group("g")
        .seed(Some(1))
}

/// Publishes `(id, topic, payload)` with raw frames; waits until stored.
async fn publish(broker: &MockBroker, msgs: &[(MessageId, &str, &str)]) {
    let tcp = TcpStream::connect(broker.addr()).await.unwrap();
    let mut conn = Framed::new(tcp, Codec::default());
    conn.send(Frame::Hello(Hello::new(Role::Sender, "test-publisher")))
        .await
        .unwrap();
    assert!(matches!(conn.next().await, Some(Ok(Frame::Welcome(_)))));
    for (id, topic, payload) in msgs {
        conn.feed(Frame::Message(Message {
            id: *id,
            attempt: 1,
            topic: (*topic).into(),
            headers: Default::default(),
            payload: payload.to_string().into(),
        }))
        .await
        .unwrap();
    }
    SinkExt::<Frame>::flush(&mut conn).await.unwrap();
    let mut stored = 0;
    while stored < msgs.len() {
        match tokio::time::timeout(WAIT, conn.next()).await {
            Ok(Some(Ok(Frame::Reply(r)))) => {
                assert_eq!(r.status, ReplyStatus::Stored);
                stored += 1;
            }
            Ok(Some(Ok(Frame::Ping(_)))) => {}
            other => panic!("publish: unexpected {other:?}"),
        }
    }
}

async fn wait_acked(broker: &MockBroker, n: u64) {
    if let Err(e) = broker
        .wait_for(WAIT, |s| s.acks_received - s.acks_ignored >= n)
        .await
    {
        panic!("not all {n} acked: {e:?}");
    }
}

#[tokio::test]
async fn several_topics_share_one_connection_and_each_delivery_names_its_topic() {
    let broker = broker().await;
    let seen: Arc<Mutex<HashMap<MessageId, (String, u32)>>> = Arc::default();
    let s = seen.clone();
    let r = Receiver::builder(config(&broker, "orders"))
        .topic("refunds")
        .connect(move |d: Delivery| {
            let s = s.clone();
            async move {
                let mut s = s.lock().unwrap();
                let e = s.entry(d.id()).or_insert((d.topic().to_owned(), 0));
                e.1 += 1;
                Ok::<(), HandlerError>(())
            }
        })
        .await
        .expect("connects");
    let subs = broker.inspect().subscriptions;
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(subs[0].connection, subs[1].connection, "one connection");
    assert_eq!(
        subs.iter()
            .map(|s| (s.sub_id, s.topic.as_str()))
            .collect::<Vec<_>>(),
        [(1, "orders"), (2, "refunds")]
    );
    let mut msgs = Vec::new();
    for seq in 1..=5 {
        msgs.push((MessageId::new(0xa, seq), "orders", "o"));
        msgs.push((MessageId::new(0xb, seq), "refunds", "r"));
    }
    publish(&broker, &msgs).await;
    wait_acked(&broker, 10).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    for (id, topic, _) in msgs {
        assert_eq!(seen.get(&id), Some(&(topic.to_owned(), 1)), "{id}");
    }
    let stats = r.stats();
    assert_eq!((stats.handled, stats.acked), (10, 10));
    r.close(Duration::from_secs(5))
        .await
        .expect("closes cleanly");
}

#[tokio::test]
async fn question_mark_in_a_handler_nacks_and_the_message_comes_back() {
    let broker = broker().await;
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let e = errors.clone();
    let r = Receiver::connect(config(&broker, "numbers"), move |d: Delivery| {
        let e = e.clone();
        async move {
            let text = std::str::from_utf8(d.payload())?;
            // Not a number on the first attempt: `?` turns the parse error
            // into a HandlerError, which nacks.
            let parsed: Result<u64, _> = if d.delivery_attempt() == 1 {
                text.parse::<u64>()
            } else {
                Ok(0)
            };
            if let Err(err) = &parsed {
                e.lock()
                    .unwrap()
                    .push(HandlerError::from(err.clone()).to_string());
            }
            parsed?;
            Ok(())
        }
    })
    .await
    .expect("connects");
    publish(&broker, &[(MessageId::new(1, 1), "numbers", "seven")]).await;
    wait_acked(&broker, 1).await;
    let s = r.stats();
    assert_eq!((s.handler_errors, s.nacked, s.acked), (1, 1, 1));
    assert_eq!(
        *errors.lock().unwrap(),
        ["handler failed: invalid digit found in string"]
    );
    r.close(Duration::from_secs(5))
        .await
        .expect("closes cleanly");
}

#[tokio::test]
async fn a_topic_named_twice_is_a_config_error() {
    let broker = broker().await;
    let err = Receiver::builder(config(&broker, "orders"))
        .topic("orders")
        .connect_stream()
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("\"orders\""), "{err}");
}

#[test]
fn debug_hides_the_auth_token_in_the_config_and_the_builder() {
    let c = ReceiverConfig::default().auth_token(Some("s3cr3t-token".into()));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cr3t-token") && shown.contains("<redacted>"),
        "{shown}"
    );
    let shown = format!("{:?}", Receiver::builder(c).topic("more"));
    assert!(
        !shown.contains("s3cr3t-token") && shown.contains("<redacted>"),
        "{shown}"
    );
}
