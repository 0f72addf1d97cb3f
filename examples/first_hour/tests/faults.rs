//! The first hour's in-process fault test: the order and billing services
//! against the mock broker with the README's suggested faults (5 % of data
//! frames dropped and 5 % duplicated each way, 10 % of replies lost after
//! the broker stored the message), everything else at its defaults.
//!
//! The seed is printed; `FIRST_HOUR_SEED=<seed>` replays a run.

use std::collections::HashSet;
use std::time::Duration;

use first_hour::{Billed, Shop};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker};

const ORDERS: u32 = 1_000;
/// Generous bound for the whole flow: the sender's deadline is 120 s.
const WAIT: Duration = Duration::from_secs(150);

fn seed(test: &str) -> u64 {
    let seed = std::env::var("FIRST_HOUR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (replay with FIRST_HOUR_SEED={seed})");
    seed
}

/// The README's `--drop 0.05 --duplicate 0.05 --drop-reply-after-store 0.1`.
fn readme_faults() -> Faults {
    let lossy = DirectionFaults {
        drop: 0.05,
        duplicate: 0.05,
        ..DirectionFaults::default()
    };
    Faults {
        to_broker: lossy,
        from_broker: lossy,
        drop_reply_after_store: 0.1,
        ..Faults::default()
    }
}

async fn faulty_broker(seed: u64) -> MockBroker {
    MockBroker::start(BrokerConfig {
        seed: Some(seed),
        faults: readme_faults(),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker")
}

/// Waits until every expected order was billed (the broker holds nothing
/// more to deliver), then checks each was billed exactly once.
async fn assert_billed_once(broker: &MockBroker, billed: &Billed, expected: &HashSet<String>) {
    broker
        .wait_for(WAIT, |s| s.stored_messages == 0)
        .await
        .expect("every stored order delivered and acked");
    let billed = billed.lock().expect("ledger");
    let got: HashSet<String> = billed.keys().cloned().collect();
    assert_eq!(&got, expected, "billed orders differ from the placed ones");
    let twice: Vec<_> = billed.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "billed more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_is_confirmed_and_billed_once_under_the_readme_faults() {
    let seed = seed("every_order_is_confirmed_and_billed_once_under_the_readme_faults");
    let broker = faulty_broker(seed).await;
    let addr = broker.addr().to_string();
    let billed = Billed::default();
    let receiver = first_hour::start_billing(&addr, billed.clone())
        .await
        .expect("consumer");
    let sender = first_hour::connect_sender(&addr).await.expect("producer");

    let report = tokio::time::timeout(WAIT, first_hour::place_orders(&sender, ORDERS))
        .await
        .expect("every order has an outcome")
        .expect("hand-over");
    assert!(
        report.failed.is_empty(),
        "{} of {ORDERS} orders reported failed (seed {seed}), e.g. {:?}",
        report.failed.len(),
        report.failed.first()
    );
    sender.flush().await.expect("flush");
    let expected = (0..ORDERS).map(|n| format!("order {n}")).collect();
    assert_billed_once(&broker, &billed, &expected).await;

    let retransmitted = sender.stats().retransmitted;
    println!("{ORDERS} orders confirmed and billed once; {retransmitted} retransmissions");
    assert!(retransmitted > 0, "the faults did not bite");
    assert!(sender
        .close(Duration::from_secs(5))
        .await
        .unresolved
        .is_empty());
    receiver
        .close(Duration::from_secs(5))
        .await
        .expect("shutdown");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_orders_placed_before_the_dispatcher_starts_are_sent_and_billed_once() {
    let seed = seed("outbox_orders_placed_before_the_dispatcher_starts_are_sent_and_billed_once");
    let broker = faulty_broker(seed).await;
    let addr = broker.addr().to_string();
    let dir = std::env::temp_dir().join(format!("first-hour-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("shop.db").display());

    // The shop takes orders while nothing sends them (as if the process
    // died right after each commit).
    let shop = Shop::open(&url).await.expect("shop");
    for id in 0..100 {
        shop.place_order(id).await.expect("order");
    }
    drop(shop);

    // Restarted: the rows are sent from the database.
    let billed = Billed::default();
    let receiver = first_hour::start_billing(&addr, billed.clone())
        .await
        .expect("consumer");
    let shop = Shop::open(&url).await.expect("reopen");
    let dispatcher = shop.start_dispatching(&addr).await.expect("dispatcher");
    let counts = shop
        .outbox()
        .wait_for(WAIT, |s| s.pending == 0)
        .await
        .expect("outbox drained");
    assert_eq!((counts.confirmed, counts.failed), (100, 0));
    let expected = (0..100).map(|n| format!("order {n}")).collect();
    assert_billed_once(&broker, &billed, &expected).await;

    dispatcher.shutdown().await;
    receiver
        .close(Duration::from_secs(5))
        .await
        .expect("shutdown");
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
