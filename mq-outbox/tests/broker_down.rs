//! The broker is down for longer than the outbox's attempts: rows become
//! failed (failure table, alert); after the broker is back, requeue
//! delivers them, each landing once. Real sender, real mock broker over TCP.

mod common;

use std::time::Duration;

use mq_client_sender::SenderConfig;
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_outbox::{Outbox, OutboxConfig};

const WAIT: Duration = Duration::from_secs(120);

fn config() -> OutboxConfig {
    let mut c = OutboxConfig::default();
    c.poll_interval = Duration::from_millis(100);
    c.backoff.initial = Duration::from_millis(50);
    c.backoff.max = Duration::from_millis(500);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_down_past_max_attempts_then_requeue_delivers() {
    let seed = common::seed("real_broker_down_past_max_attempts_then_requeue_delivers");
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .expect("broker");
    let addr = broker.addr();
    let (alert_tx, mut alerts) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = config();
    cfg.max_attempts = 3;
    cfg.lease = Duration::from_millis(600);
    cfg.rng_seed = Some(seed);
    let cfg = cfg.with_on_failed(move |row| {
        let _ = alert_tx.send(row);
    });
    let outbox = Outbox::open("sqlite::memory:", cfg).await.expect("open");
    let mut sc = SenderConfig::new(addr.to_string());
    sc.seed = Some(seed);
    sc.reconnect.max = Duration::from_millis(200);
    let sender = mq_outbox::connect_sender(&outbox, sc)
        .await
        .expect("sender");
    let h = outbox.dispatcher(sender).spawn();

    // The broker goes away before anything is enqueued.
    broker.shutdown().await;
    let pool = outbox.sqlite_pool().expect("sqlite").clone();
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        ids.push(
            outbox
                .enqueue(&mut tx, "orders", format!("o{i}"))
                .await
                .expect("enqueue"),
        );
        tx.commit().await.expect("commit");
    }
    outbox.notify();
    outbox
        .wait_for(WAIT, |s| s.failed == 10)
        .await
        .expect("all failed");
    let failed = outbox.list_failed().await.expect("list");
    assert_eq!(failed.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(failed
        .iter()
        .all(|r| r.attempts == 3 && r.last_error.is_some()));
    for _ in 0..10 {
        tokio::time::timeout(WAIT, alerts.recv())
            .await
            .expect("alert")
            .expect("alert");
    }

    // The broker returns on the same address; a person requeues.
    let back = MockBroker::start(BrokerConfig {
        listen: addr,
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .expect("broker back");
    let seqs: Vec<u64> = failed.iter().map(|r| r.seq).collect();
    assert_eq!(outbox.requeue(&seqs).await.expect("requeue"), seqs);
    outbox
        .wait_for(WAIT, |s| s.confirmed == 10)
        .await
        .expect("delivered");
    h.shutdown().await;
    for id in &ids {
        assert_eq!(back.landed_count(*id), 1, "{id}");
    }
    assert!(outbox.list_failed().await.expect("list").is_empty());
    back.shutdown().await;
}
