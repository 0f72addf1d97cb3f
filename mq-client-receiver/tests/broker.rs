//! End to end against the mock broker over real TCP on 127.0.0.1:0, real
//! time, generous bounds. Messages are published with raw frames. Every
//! test prints the broker seed; set `MQ_SEED` to replay one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_client_receiver::{
    AckMode, Delivery, HandlerError, MemoryDedupStore, Receiver, ReceiverBuilder, ReceiverConfig,
};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RoleFilter};
use mq_protocol::{Backoff, Codec, Frame, Hello, Message, MessageId, ReplyStatus, Role};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(30);
const TOPIC: &str = "orders";
const GROUP: &str = "billing";

fn seed() -> u64 {
    let seed = std::env::var("MQ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("MQ_SEED={seed}");
    seed
}

async fn broker(faults: Faults) -> MockBroker {
    let config = BrokerConfig {
        seed: Some(seed()),
        redelivery: Backoff {
            initial: Duration::from_millis(50),
            multiplier: 2.0,
            max: Duration::from_millis(500),
            jitter: 0.2,
        },
        max_deliveries: 1000,
        faults,
        ..Default::default()
    };
    MockBroker::start(config).await.expect("broker starts")
}

fn config(broker: &MockBroker) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic(TOPIC)
        .group(GROUP)
        .reconnect(Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(200),
            jitter: 0.2,
        })
        .seed(Some(1))
}

fn id(seq: u64) -> MessageId {
    MessageId::new(0xabc, seq)
}

/// Publishes messages `1..=n` with raw frames and waits until all are stored.
async fn publish(broker: &MockBroker, n: u64) {
    let tcp = TcpStream::connect(broker.addr()).await.unwrap();
    let mut conn = Framed::new(tcp, Codec::default());
    conn.send(Frame::Hello(Hello::new(Role::Sender, "test-publisher")))
        .await
        .unwrap();
    assert!(matches!(conn.next().await, Some(Ok(Frame::Welcome(_)))));
    for seq in 1..=n {
        conn.feed(Frame::Message(Message {
            id: id(seq),
            attempt: 1,
            topic: TOPIC.into(),
            headers: Default::default(),
            payload: format!("payload {seq}").into(),
        }))
        .await
        .unwrap();
    }
    SinkExt::<Frame>::flush(&mut conn).await.unwrap();
    let mut stored = 0;
    while stored < n {
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

/// Waits (on the broker's change notifications) until `n` acks were
/// accepted, then checks the group agrees.
async fn wait_acked(broker: &MockBroker, n: u64) {
    if let Err(e) = broker
        .wait_for(WAIT, |s| s.acks_received - s.acks_ignored >= n)
        .await
    {
        panic!("not all {n} acked: {e:?}");
    }
    let acked = broker
        .inspect()
        .group(TOPIC, GROUP)
        .map_or(0, |g| g.acked_total);
    assert!(acked >= n, "group acked {acked} of {n}");
}

/// Successful handler calls per message ID.
#[derive(Default, Clone)]
struct Ledger(Arc<Mutex<HashMap<MessageId, u32>>>);

impl Ledger {
    fn record(&self, id: MessageId) {
        *self.0.lock().unwrap().entry(id).or_default() += 1;
    }
    fn counts(&self) -> HashMap<MessageId, u32> {
        self.0.lock().unwrap().clone()
    }
    fn assert_each_once(&self, n: u64) {
        let c = self.counts();
        for seq in 1..=n {
            assert_eq!(c.get(&id(seq)), Some(&1), "message {seq}: {c:?}");
        }
        assert_eq!(c.len() as u64, n);
    }
}

#[tokio::test]
async fn injected_duplicate_deliveries_reach_the_handler_once() {
    let faults = Faults {
        from_broker: DirectionFaults {
            duplicate: 0.5,
            ..Default::default()
        },
        roles: RoleFilter::Receiver,
        ..Default::default()
    };
    let broker = broker(faults).await;
    let n = 200;
    publish(&broker, n).await;
    let ledger = Ledger::default();
    let l = ledger.clone();
    let cfg = config(&broker).prefetch(8).max_concurrency(4);
    let r = Receiver::connect(cfg, move |d: Delivery| {
        let l = l.clone();
        async move {
            l.record(d.id());
            Ok::<(), HandlerError>(())
        }
    })
    .await
    .unwrap();
    wait_acked(&broker, n).await;
    ledger.assert_each_once(n);
    // Copies on the wire were not charged credit, so none was given back
    // for them: the broker never had more than prefetch outstanding.
    let snap = broker.inspect();
    let sub = snap
        .subscriptions
        .iter()
        .find(|s| s.group == GROUP)
        .unwrap();
    assert!(sub.max_unacked <= 8, "{sub:?}");
    assert!(sub.credit <= 8, "{sub:?}");
    let bs = broker.stats();
    let rs = r.stats();
    println!("broker {bs:?}\nreceiver {rs:?}");
    assert!(bs.frames_duplicated_by_faults > 0);
    assert!(rs.duplicates_suppressed > 0);
    assert_eq!(rs.handled, n);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn handler_error_is_redelivered_and_processed_once() {
    let broker = broker(Faults::default()).await;
    let n = 30;
    publish(&broker, n).await;
    let ledger = Ledger::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (l, c) = (ledger.clone(), calls.clone());
    let r = Receiver::connect(config(&broker), move |d: Delivery| {
        let (l, c) = (l.clone(), c.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if d.delivery_attempt() == 1 {
                return Err(HandlerError::new("transient"));
            }
            l.record(d.id());
            Ok(())
        }
    })
    .await
    .unwrap();
    wait_acked(&broker, n).await;
    ledger.assert_each_once(n);
    assert_eq!(calls.load(Ordering::SeqCst) as u64, 2 * n);
    let bs = broker.stats();
    assert_eq!(bs.nacks_received, n);
    let rs = r.stats();
    assert_eq!((rs.handler_errors, rs.nacked, rs.acked), (n, n, n));
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn manual_ack_through_the_stream() {
    let broker = broker(Faults::default()).await;
    let n = 20;
    publish(&broker, n).await;
    let (r, mut deliveries) = Receiver::connect_stream(config(&broker)).await.unwrap();
    let mut seen = 0;
    while seen < n {
        let d = tokio::time::timeout(WAIT, deliveries.next())
            .await
            .unwrap()
            .unwrap();
        d.ack().await.unwrap();
        seen += 1;
    }
    wait_acked(&broker, n).await;
    assert_eq!(broker.inspect().stored.len(), 0);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn manual_mode_handler_acks_explicitly() {
    let broker = broker(Faults::default()).await;
    publish(&broker, 2).await;
    let cfg = config(&broker).ack_mode(AckMode::Manual);
    let ledger = Ledger::default();
    let l = ledger.clone();
    let r = Receiver::connect(cfg, move |d: Delivery| {
        let l = l.clone();
        async move {
            l.record(d.id());
            d.ack().await.map_err(|e| HandlerError::new(e.to_string()))
        }
    })
    .await
    .unwrap();
    wait_acked(&broker, 2).await;
    ledger.assert_each_once(2);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

fn slow_recording_handler(
    ledger: Ledger,
    work: Duration,
) -> impl Fn(Delivery) -> futures::future::BoxFuture<'static, Result<(), HandlerError>>
       + Send
       + Sync
       + 'static {
    move |d: Delivery| {
        let l = ledger.clone();
        Box::pin(async move {
            // The handler's work, not synchronisation.
            tokio::time::sleep(work).await;
            l.record(d.id());
            Ok(())
        })
    }
}

#[tokio::test]
async fn receiver_stopped_mid_stream_and_restarted_loses_nothing() {
    let broker = broker(Faults::default()).await;
    let n = 100;
    publish(&broker, n).await;
    let store = Arc::new(MemoryDedupStore::default());
    let ledger = Ledger::default();
    let cfg = config(&broker).prefetch(8).max_concurrency(4);
    let first = ReceiverBuilder::new(cfg.clone())
        .dedup_store(store.clone())
        .connect(slow_recording_handler(
            ledger.clone(),
            Duration::from_millis(5),
        ))
        .await
        .unwrap();
    // Stop once part of the stream is processed.
    wait_acked(&broker, n / 4).await;
    first.close(WAIT).await.unwrap();
    let after_first = ledger.counts().len() as u64;
    println!("first receiver handled {after_first}");
    assert!(after_first < n, "stopped too late to test a restart");
    let second = ReceiverBuilder::new(cfg)
        .dedup_store(store.clone())
        .connect(slow_recording_handler(
            ledger.clone(),
            Duration::from_millis(1),
        ))
        .await
        .unwrap();
    wait_acked(&broker, n).await;
    // With the store shared across the restart, nothing is handled twice.
    ledger.assert_each_once(n);
    assert_eq!(broker.inspect().stored.len(), 0);
    second.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn broker_crash_mid_stream_loses_nothing_and_dedupes_redeliveries() {
    let broker = broker(Faults::default()).await;
    let n = 100;
    publish(&broker, n).await;
    let ledger = Ledger::default();
    let cfg = config(&broker).prefetch(8).max_concurrency(4);
    let r = Receiver::connect(
        cfg,
        slow_recording_handler(ledger.clone(), Duration::from_millis(5)),
    )
    .await
    .unwrap();
    wait_acked(&broker, n / 4).await;
    broker.crash();
    wait_acked(&broker, n).await;
    // Every message handled; the same receiver's dedup window absorbed
    // the redeliveries of what it had already processed.
    ledger.assert_each_once(n);
    let rs = r.stats();
    println!("receiver {rs:?}");
    assert!(rs.reconnects >= 1);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn restart_with_a_fresh_store_handles_everything_at_least_once() {
    let broker = broker(Faults::default()).await;
    let n = 60;
    publish(&broker, n).await;
    let ledger = Ledger::default();
    let cfg = config(&broker).prefetch(8).max_concurrency(4);
    let first = Receiver::connect(
        cfg.clone(),
        slow_recording_handler(ledger.clone(), Duration::from_millis(5)),
    )
    .await
    .unwrap();
    wait_acked(&broker, n / 4).await;
    // Dropped, not shut down: handlers are aborted and nothing is acked.
    drop(first);
    let second = Receiver::connect(
        cfg,
        slow_recording_handler(ledger.clone(), Duration::from_millis(1)),
    )
    .await
    .unwrap();
    wait_acked(&broker, n).await;
    let c = ledger.counts();
    for seq in 1..=n {
        assert!(
            c.get(&id(seq)).is_some_and(|&k| k >= 1),
            "message {seq} never handled"
        );
    }
    assert_eq!(broker.inspect().stored.len(), 0);
    second.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn slow_handler_with_prefetch_10_never_has_more_than_10_unacked() {
    let mut b = BrokerConfig {
        seed: Some(seed()),
        ..Default::default()
    };
    // Redeliveries only after the slow handler would long be done.
    b.redelivery.initial = Duration::from_secs(20);
    b.redelivery.max = Duration::from_secs(20);
    let broker = MockBroker::start(b).await.unwrap();
    let n = 60;
    publish(&broker, n).await;
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let ledger = Ledger::default();
    let (run, maxr, l) = (running.clone(), max_running.clone(), ledger.clone());
    let cfg = config(&broker).prefetch(10).max_concurrency(10);
    let r = Receiver::connect(cfg, move |d: Delivery| {
        let (run, maxr, l) = (run.clone(), maxr.clone(), l.clone());
        async move {
            let now = run.fetch_add(1, Ordering::SeqCst) + 1;
            maxr.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await; // the slow work
            l.record(d.id());
            run.fetch_sub(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    })
    .await
    .unwrap();
    wait_acked(&broker, n).await;
    let snap = broker.inspect();
    let sub = snap
        .subscriptions
        .iter()
        .find(|s| s.topic == TOPIC && s.group == GROUP)
        .expect("our subscription");
    println!("broker subscription {sub:?}");
    assert!(
        sub.max_unacked <= 10,
        "broker saw {} unacked",
        sub.max_unacked
    );
    let rs = r.stats();
    assert!(
        rs.max_unsettled <= 10,
        "receiver had {} unsettled",
        rs.max_unsettled
    );
    assert!(max_running.load(Ordering::SeqCst) <= 10);
    ledger.assert_each_once(n);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn fails_over_to_the_next_address() {
    let broker = broker(Faults::default()).await;
    publish(&broker, 5).await;
    // An address nobody listens on: bind an ephemeral port, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = config(&broker).addresses(vec![dead.to_string(), broker.addr().to_string()]);
    let ledger = Ledger::default();
    let r = Receiver::connect(cfg, slow_recording_handler(ledger.clone(), Duration::ZERO))
        .await
        .unwrap();
    wait_acked(&broker, 5).await;
    ledger.assert_each_once(5);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_a_refusal_not_a_retry_loop() {
    let b = BrokerConfig {
        seed: Some(seed()),
        auth_token: Some("secret".into()),
        ..Default::default()
    };
    let broker = MockBroker::start(b).await.unwrap();
    let cfg = config(&broker).auth_token(Some("wrong".into()));
    let err = Receiver::connect(
        cfg,
        slow_recording_handler(Ledger::default(), Duration::ZERO),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, mq_client_receiver::ConnectError::Refused { .. }),
        "{err:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn broker_restart_keeping_its_store_loses_nothing() {
    let broker = broker(Faults::default()).await;
    let n = 60;
    publish(&broker, n).await;
    let ledger = Ledger::default();
    let cfg = config(&broker).prefetch(8).max_concurrency(4);
    let r = Receiver::connect(
        cfg,
        slow_recording_handler(ledger.clone(), Duration::from_millis(5)),
    )
    .await
    .unwrap();
    wait_acked(&broker, n / 3).await;
    broker
        .restart(mq_mock_broker::RestartMode::KeepStore)
        .await
        .unwrap();
    // Wait on what is left to deliver rather than on ack counters.
    if let Err(e) = broker.wait_for(WAIT, |s| s.stored_messages == 0).await {
        panic!("messages left after the restart: {e:?}");
    }
    let c = ledger.counts();
    for seq in 1..=n {
        assert!(c.contains_key(&id(seq)), "message {seq} never handled");
    }
    // Same receiver, same dedup window: nothing handled twice.
    ledger.assert_each_once(n);
    assert!(r.stats().reconnects >= 1);
    r.close(WAIT).await.unwrap();
    broker.shutdown().await;
}
