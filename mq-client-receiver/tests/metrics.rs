//! The `metrics` facade agrees with `stats()` after a chaos run: a mock
//! broker that duplicates deliveries and cuts connections, a handler that
//! fails first attempts. One test per binary: it installs the process-wide
//! recorder.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mq_client_receiver::{stats, Delivery, HandlerError, Receiver, ReceiverConfig, ReceiverStats};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RoleFilter};
use mq_protocol::{Backoff, Codec, Frame, Hello, Message, MessageId, ReplyStatus, Role};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(60);
const N: u64 = 150;

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        multiplier: 2.0,
        max: Duration::from_millis(100),
        jitter: 0.2,
    }
}

async fn publish(broker: &MockBroker) {
    let tcp = TcpStream::connect(broker.addr()).await.unwrap();
    let mut conn = Framed::new(tcp, Codec::default());
    conn.send(Frame::Hello(Hello::new(Role::Sender, "p")))
        .await
        .unwrap();
    assert!(matches!(conn.next().await, Some(Ok(Frame::Welcome(_)))));
    for seq in 1..=N {
        conn.feed(Frame::Message(Message {
            id: MessageId::new(3, seq),
            attempt: 1,
            topic: "t".into(),
            headers: Default::default(),
            payload: "x".into(),
        }))
        .await
        .unwrap();
    }
    SinkExt::<Frame>::flush(&mut conn).await.unwrap();
    let mut stored = 0;
    while stored < N {
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

fn values(snapshot: Vec<(metrics_util::CompositeKey, DebugValue)>) -> HashMap<String, DebugValue> {
    snapshot
        .into_iter()
        .map(|(k, v)| (k.key().name().to_owned(), v))
        .collect()
}

fn counter(m: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match m.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_agree_with_stats_after_a_chaos_run() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this binary");

    let broker = MockBroker::start(BrokerConfig {
        seed: Some(11),
        redelivery: quick(),
        max_deliveries: 1000,
        faults: Faults {
            from_broker: DirectionFaults {
                duplicate: 0.3,
                ..Default::default()
            },
            cut_probability: 0.05,
            roles: RoleFilter::Receiver,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("broker starts");
    publish(&broker).await;
    let config = ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic("t")
        .group("g")
        .prefetch(16)
        .max_concurrency(4)
        .reconnect(quick())
        .seed(Some(2));
    let r = Receiver::connect(config, |d: Delivery| async move {
        if d.id().seq % 4 == 0 && d.delivery_attempt() == 1 {
            return Err(HandlerError::new("first attempts of every fourth fail"));
        }
        Ok(())
    })
    .await
    .expect("connects");
    broker
        .wait_for(WAIT, |s| s.acks_received - s.acks_ignored >= N)
        .await
        .expect("all acked");

    // One thread: nothing runs between these two reads.
    let s: ReceiverStats = r.stats();
    let m = values(
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect(),
    );
    assert!(s.acked >= N && s.handled > N && s.nacked > 0, "{s:?}");
    assert!(
        s.duplicates_suppressed > 0 && s.redeliveries > 0 && s.reconnects > 0,
        "{s:?}"
    );
    for (name, want) in [
        (stats::DELIVERED_TOTAL, s.delivered),
        (stats::HANDLED_TOTAL, s.handled),
        (stats::DUPLICATES_SUPPRESSED_TOTAL, s.duplicates_suppressed),
        (stats::REDELIVERIES_TOTAL, s.redeliveries),
        (stats::ACKED_TOTAL, s.acked),
        (stats::NACKS_TOTAL, s.nacked),
        (stats::HANDLER_ERRORS_TOTAL, s.handler_errors),
        (stats::RECONNECTS_TOTAL, s.reconnects),
        (stats::STORE_ERRORS_TOTAL, s.store_errors),
    ] {
        assert_eq!(counter(&m, name), want, "{name}");
    }
    match m.get(stats::UNSETTLED) {
        Some(DebugValue::Gauge(g)) => assert_eq!(g.0, s.unsettled as f64),
        other => panic!("unsettled: {other:?}"),
    }
    // Every finished handler call was timed.
    match m.get(stats::HANDLER_LATENCY_SECONDS) {
        Some(DebugValue::Histogram(h)) => {
            let calls = h.len() as u64;
            assert!(
                calls <= s.handled && calls + s.unsettled >= s.handled,
                "{calls} timings for {s:?}"
            );
            assert!(h.iter().all(|v| v.0 >= 0.0));
        }
        other => panic!("latency: {other:?}"),
    }
    r.close(Duration::from_secs(5)).await.ok();
}
