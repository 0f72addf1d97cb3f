//! The whole loop: an outbox producer process -> the mock broker with
//! faults and restarts (`RestartMode::KeepStore`, recovering from its disk
//! journal) -> an inbox consumer
//! process, with SIGKILLs of the producer and the consumer and broker
//! crashes at seeded moments. Every row the producer committed is applied
//! by the consumer exactly once. The same scenario with the inbox replaced
//! by the receiver's in-memory dedup store fails the same check.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::procs::{self, check_exactly_once, spawn};
use mq_inbox::{Inbox, InboxConfig};
use mq_mock_broker::{
    BrokerConfig, DirectionFaults, DiskStorage, Faults, MockBroker, RestartMode, RoleFilter,
    Storage,
};
use mq_protocol::{Backoff, MessageId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WAIT: Duration = Duration::from_secs(120);
const ROWS: u64 = 300;

#[test]
fn child() {
    procs::run_child_if_asked();
}

/// The durable broker (its journal in `dir`): its restarts below recover
/// from disk, as a restarted `mq-broker` would.
async fn broker(seed: u64, dir: &std::path::Path) -> MockBroker {
    let config = BrokerConfig {
        seed: Some(seed),
        storage: Storage::Disk(DiskStorage::new(dir.join("broker"))),
        max_deliveries: 10_000,
        redelivery: Backoff {
            initial: Duration::from_secs(2),
            multiplier: 2.0,
            max: Duration::from_secs(4),
            jitter: 0.2,
        },
        // Consumers' acks are lost now and then (the duplicates a consumer
        // crash turns into double effects without a durable inbox).
        faults: Faults {
            to_broker: DirectionFaults {
                drop: 0.3,
                ..DirectionFaults::default()
            },
            roles: RoleFilter::Receiver,
            ..Faults::default()
        },
        ..BrokerConfig::default()
    };
    MockBroker::start(config).await.expect("broker")
}

/// Runs the scenario with consumers of `mode` (`tx`: the inbox's
/// transactional handler; `memory`: the in-memory store) and returns the
/// exactly-once verdict.
async fn run_loop(seed: u64, mode: &str) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = common::temp_dir(&format!("loop-{mode}"), seed);
    let producer_db = format!("sqlite:{}", dir.join("producer.db").display());
    let consumer_db = format!("sqlite:{}", dir.join("consumer.db").display());
    let outbox = mq_outbox::Outbox::open(producer_db.as_str(), Default::default())
        .await
        .expect("outbox");
    let opool = outbox.sqlite_pool().expect("sqlite").clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, note TEXT)")
        .execute(&opool)
        .await
        .expect("orders");
    let inbox = Inbox::open(consumer_db.as_str(), InboxConfig::default())
        .await
        .expect("inbox");
    sqlx::query(procs::APPLIED_DDL)
        .execute(inbox.sqlite_pool().expect("sqlite"))
        .await
        .expect("applied");
    let broker = broker(seed, &dir).await;
    let addr = broker.addr().to_string();
    let producer = |n: u32| {
        spawn(
            &format!("producer {n}"),
            "producer",
            &producer_db,
            &addr,
            ROWS,
        )
    };
    let consumer = |n: u32| spawn(&format!("consumer {n}"), mode, &consumer_db, &addr, 0);

    // 1: both run; the consumer dies, the producer dies, the broker crashes.
    let (mut p, mut c) = (producer(1), consumer(1));
    c.wait_events(rng.gen_range(20..40)).await;
    c.kill().await;
    p.wait_events(rng.gen_range(1..30)).await;
    p.kill().await;
    broker
        .restart(RestartMode::KeepStore)
        .await
        .expect("restart");
    // 2: the broker crashes under both; then the consumer dies again, and
    // the producer.
    let (mut p, mut c) = (producer(2), consumer(2));
    c.wait_events(rng.gen_range(5..20)).await;
    broker
        .restart(RestartMode::KeepStore)
        .await
        .expect("restart");
    c.wait_events(rng.gen_range(20..40)).await;
    c.kill().await;
    let mut c = consumer(3);
    p.wait_events(rng.gen_range(1..30)).await;
    p.kill().await;
    // 3: a producer finishes the rows; everything drains.
    let p = producer(4);
    let s = broker
        .wait_for(WAIT, |s| {
            s.messages_stored >= ROWS && s.stored_messages == 0
        })
        .await
        .expect("every row landed and was acked");
    c.wait_events(0).await;
    p.kill().await;
    c.kill().await;
    println!(
        "{mode}: broker stored {}, {} deliveries, {} redeliveries, {} crashes",
        s.messages_stored, s.deliveries_sent, s.redeliveries_sent, s.crashes
    );
    let producer_id: i64 =
        sqlx::query_scalar("SELECT value FROM mq_outbox_meta WHERE name = 'producer_id'")
            .fetch_one(&opool)
            .await
            .expect("producer id");
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM mq_outbox")
        .fetch_all(&opool)
        .await
        .expect("rows");
    let expected: BTreeSet<MessageId> = seqs
        .into_iter()
        .map(|s| MessageId::new(producer_id as u64, s as u64))
        .collect();
    assert_eq!(
        expected.len() as u64,
        ROWS,
        "the producer committed every row"
    );
    let verdict = check_exactly_once(&inbox, &expected).await;
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_broker_inbox_with_crashes_applies_every_row_once() {
    let seed = common::seed("outbox_broker_inbox_with_crashes_applies_every_row_once");
    run_loop(seed, "tx").await.expect("exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_loop_with_the_in_memory_store_applies_some_rows_twice() {
    let seed = common::seed("the_same_loop_with_the_in_memory_store_applies_some_rows_twice");
    let verdict = run_loop(seed, "memory").await;
    println!("in-memory store: {verdict:?}");
    assert!(
        verdict
            .as_ref()
            .is_err_and(|e| e.contains("more than once")),
        "the exactly-once check must catch the in-memory store: {verdict:?}"
    );
}
