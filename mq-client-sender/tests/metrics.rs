//! The `metrics` facade: after a chaos run (lost frames and replies, a
//! broker restart) the counters a recorder saw agree with `stats()`.
//! One test in this binary: it installs the process-wide recorder.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mq_client_sender::{Backoff, OutgoingMessage, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RestartMode, RoleFilter};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_metrics_agree_with_stats_after_a_chaos_run() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let lossy = DirectionFaults {
        drop: 0.01,
        duplicate: 0.01,
        delay: 0.01,
        max_delay: 10 * MS,
    };
    let faults = Faults {
        to_broker: lossy,
        from_broker: lossy,
        drop_reply_after_store: 0.02,
        roles: RoleFilter::Sender,
        ..Faults::default()
    };
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(7),
        faults,
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    let cfg = SenderConfig::new(broker.addr().to_string())
        .retry(Backoff {
            initial: 50 * MS,
            multiplier: 2.0,
            max: 200 * MS,
            jitter: 0.2,
        })
        .reconnect(Backoff {
            initial: 10 * MS,
            multiplier: 2.0,
            max: 100 * MS,
            jitter: 0.2,
        })
        .max_in_flight(256)
        .seed(Some(7));
    let sender = Sender::connect(cfg).await.unwrap();
    let n = 3000;
    let producer = {
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(n);
            for i in 0..n {
                let msg = OutgoingMessage::new("t", format!("m{i}"));
                pending.push(sender.enqueue(msg).await.unwrap());
            }
            pending
        })
    };
    broker
        .wait_for(Duration::from_secs(20), |s| s.messages_stored >= 1000)
        .await
        .unwrap();
    broker.restart(RestartMode::KeepStore).await.unwrap();
    for p in producer.await.unwrap() {
        p.await.expect("confirmed");
    }
    let report = sender.close(Duration::from_secs(5)).await;
    assert!(report.unresolved.is_empty());
    let st = sender.stats();
    broker.shutdown().await;

    let mut counters = HashMap::new();
    let mut gauges = HashMap::new();
    let mut histograms = HashMap::new();
    for (key, _unit, _desc, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        match value {
            DebugValue::Counter(v) => {
                counters.insert(name, v);
            }
            DebugValue::Gauge(v) => {
                gauges.insert(name, v.0);
            }
            DebugValue::Histogram(v) => {
                histograms.insert(name, v.len() as u64);
            }
        }
    }
    let c = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(c("mq_sender_sent_total"), st.sent);
    assert_eq!(c("mq_sender_confirmed_total"), st.confirmed);
    assert_eq!(c("mq_sender_duplicates_total"), st.duplicates);
    assert_eq!(c("mq_sender_retransmitted_total"), st.retransmitted);
    assert_eq!(c("mq_sender_failed_total"), st.failed);
    assert_eq!(c("mq_sender_rejected_total"), st.rejected);
    assert_eq!(c("mq_sender_reconnects_total"), st.reconnects);
    assert_eq!(gauges.get("mq_sender_in_flight").copied(), Some(0.0));
    assert_eq!(
        histograms.get("mq_sender_confirm_latency_seconds").copied(),
        Some(st.confirmed)
    );
    // The run exercised what it claims to.
    assert_eq!(st.sent, n as u64);
    assert_eq!(st.confirmed, n as u64);
    assert!(st.retransmitted > 0, "{st:?}");
    assert!(st.duplicates > 0, "{st:?}");
    assert!(st.reconnects >= 1, "{st:?}");
}
