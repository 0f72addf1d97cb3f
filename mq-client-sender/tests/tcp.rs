//! End to end over real TCP on 127.0.0.1:0 against `mq-mock-broker`, real
//! time, generous bounds, seeds printed. No speed assertions: elapsed times
//! are only checked against the configured retry schedule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq_client_sender::{Backoff, OutgoingMessage, Receipt, SendError, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RestartMode, RoleFilter};
use mq_protocol::MessageId;

const MS: Duration = Duration::from_millis(1);

fn retry(initial_ms: u64, jitter: f64) -> Backoff {
    Backoff {
        initial: Duration::from_millis(initial_ms),
        multiplier: 2.0,
        max: 1000 * MS,
        jitter,
    }
}

fn sender_config(broker: &MockBroker, seed: u64) -> SenderConfig {
    eprintln!("sender seed = {seed}");
    SenderConfig::new(broker.addr().to_string())
        .retry(retry(100, 0.0))
        .max_attempts(10)
        .send_timeout(None)
        .reconnect(Backoff {
            initial: 20 * MS,
            multiplier: 2.0,
            max: 200 * MS,
            jitter: 0.2,
        })
        .connect_timeout(Duration::from_secs(2))
        .seed(Some(seed))
}

async fn broker(seed: u64, faults: Faults) -> MockBroker {
    let cfg = BrokerConfig {
        seed: Some(seed),
        faults,
        ..BrokerConfig::default()
    };
    MockBroker::start(cfg).await.expect("broker starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_then_duplicate_then_exactly_one_success() {
    let flash = Faults {
        drop_reply_after_store: 1.0,
        roles: RoleFilter::Sender,
        ..Faults::default()
    };
    let broker = broker(1, flash).await;
    let sender = Sender::connect(sender_config(&broker, 1)).await.unwrap();
    let pending = sender
        .enqueue(OutgoingMessage::new("orders", "flash"))
        .await
        .unwrap();
    let id = pending.id();
    // Landed, reply lost; keep losing replies until a retransmit arrived.
    broker
        .wait_for(Duration::from_secs(10), |s| {
            s.messages_stored == 1 && s.retransmits_received >= 1
        })
        .await
        .unwrap();
    broker.set_faults(Faults::default());
    let receipt: Receipt = pending.await.unwrap();
    assert!(receipt.duplicate, "{receipt:?}");
    assert!(receipt.attempts >= 2, "{receipt:?}");
    assert_eq!(broker.landed_count(id), 1);
    let st = sender.stats();
    assert_eq!(
        (st.sent, st.confirmed, st.failed, st.duplicates),
        (1, 1, 0, 1)
    );
    assert!(broker.stats().duplicates_answered >= 1);
    assert!(sender
        .close(Duration::from_secs(5))
        .await
        .unresolved
        .is_empty());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_longer_than_the_attempts_fails_on_schedule() {
    let broker = broker(2, Faults::default()).await;
    let cfg = sender_config(&broker, 2)
        .retry(retry(100, 0.0))
        .max_attempts(4);
    let sender = Sender::connect(cfg).await.unwrap();
    broker.shutdown().await;
    let t0 = Instant::now();
    let outcome = sender.send(OutgoingMessage::new("t", "x")).await;
    let elapsed = t0.elapsed();
    match outcome {
        Err(SendError::Timeout { attempts: 4, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Schedule: 100 + 200 + 400 + 800 ms = 1.5 s. Generous upper bound.
    assert!(elapsed >= 1500 * MS, "{elapsed:?}");
    assert!(elapsed < 1500 * MS + Duration::from_secs(5), "{elapsed:?}");
    assert!(sender.stats().reconnects == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_every_message_confirmed_once() {
    let broker = broker(3, Faults::default()).await;
    let cfg = sender_config(&broker, 3).max_in_flight(256);
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
        .wait_for(Duration::from_secs(20), |s| s.messages_stored >= 500)
        .await
        .unwrap();
    broker.restart(RestartMode::KeepStore).await.unwrap();
    let pending = producer.await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for p in pending {
        ids.push(p.await.expect("confirmed").id);
    }
    for id in ids {
        assert_eq!(broker.landed_count(id), 1, "{id}");
    }
    let st = sender.stats();
    assert_eq!((st.confirmed, st.failed, st.in_flight), (n as u64, 0, 0));
    assert!(st.reconnects >= 1, "{st:?}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_address_is_used_when_the_first_is_down() {
    let broker = broker(4, Faults::default()).await;
    // A port that was just free: bind, read the port, drop the listener.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let cfg = sender_config(&broker, 4).addresses(vec![dead_addr, broker.addr().to_string()]);
    let sender = Sender::connect(cfg).await.unwrap();
    assert!(sender.send(OutgoingMessage::new("t", "x")).await.is_ok());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_under_faults_one_outcome_each() {
    let seed: u64 = std::env::var("MQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed = {seed} (set MQ_TEST_SEED={seed} to replay)");
    let lossy = DirectionFaults {
        drop: 0.002,
        duplicate: 0.002,
        delay: 0.002,
        max_delay: 20 * MS,
    };
    let faults = Faults {
        to_broker: lossy,
        from_broker: lossy,
        drop_reply_after_store: 0.002,
        cut_probability: 0.00002,
        roles: RoleFilter::Sender,
        ..Faults::default()
    };
    let broker = broker(seed, faults).await;
    let cfg = sender_config(&broker, seed)
        .retry(retry(200, 0.2))
        .max_attempts(30)
        .max_in_flight(1000);
    let sender = Sender::connect(cfg).await.unwrap();
    let n: u64 = 100_000;
    type Outcomes = Arc<Mutex<HashMap<MessageId, Vec<Result<Receipt, String>>>>>;
    let outcomes: Outcomes = Arc::new(Mutex::new(HashMap::new()));
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let out = outcomes.clone();
        let msg = OutgoingMessage::new("load", i.to_be_bytes().to_vec());
        let id = sender
            .send_with_callback(msg, move |o: Result<Receipt, SendError>| {
                let key = match &o {
                    Ok(r) => Some(r.id),
                    Err(e) => e.id(),
                };
                if let Some(key) = key {
                    if let Ok(mut map) = out.lock() {
                        map.entry(key)
                            .or_default()
                            .push(o.map_err(|e| e.to_string()));
                    }
                }
            })
            .await
            .unwrap();
        ids.push(id);
    }
    sender.flush().await.expect("flush");
    let map = std::mem::take(&mut *outcomes.lock().unwrap());
    assert_eq!(map.len(), n as usize, "every message has an outcome");
    let mut failed = 0;
    for id in &ids {
        let got = &map[id];
        assert_eq!(got.len(), 1, "{id}: exactly one outcome, got {got:?}");
        match &got[0] {
            Ok(_) => assert_eq!(broker.landed_count(*id), 1, "{id} landed once"),
            Err(e) => {
                failed += 1;
                eprintln!("{id}: {e}");
            }
        }
    }
    let st = sender.stats();
    eprintln!("sender {st:?}\nbroker {:?}", broker.stats());
    assert_eq!(st.confirmed + st.failed + st.rejected, n);
    assert_eq!(st.failed, failed);
    assert_eq!(
        failed, 0,
        "with 30 attempts no message should fail (seed {seed})"
    );
    assert!(sender
        .close(Duration::from_secs(5))
        .await
        .unresolved
        .is_empty());
    broker.shutdown().await;
}
