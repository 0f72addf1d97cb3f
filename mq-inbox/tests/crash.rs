//! Real consumer processes killed with SIGKILL at seeded moments: the
//! business table holds every confirmed message exactly once, on SQLite
//! and on Postgres, with one consumer at a time or two sharing a Postgres
//! inbox. The consumers are this test binary re-executed (`child` below);
//! see `common/procs.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::procs::{self, check_exactly_once, spawn, TOPIC};
use futures::future::join_all;
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_inbox::{Inbox, InboxConfig};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RoleFilter};
use mq_protocol::{Backoff, MessageId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WAIT: Duration = Duration::from_secs(120);
const MESSAGES: u64 = 300;

#[test]
fn child() {
    procs::run_child_if_asked();
}

/// A broker that loses a fifth of the consumers' acks (so commits whose
/// ack never arrives are common at every kill) and never dead-letters.
pub async fn lossy_broker(seed: u64) -> MockBroker {
    let config = BrokerConfig {
        seed: Some(seed),
        max_deliveries: 10_000,
        redelivery: Backoff {
            initial: Duration::from_millis(500),
            multiplier: 2.0,
            max: Duration::from_secs(2),
            jitter: 0.2,
        },
        faults: Faults {
            to_broker: DirectionFaults {
                drop: 0.2,
                ..DirectionFaults::default()
            },
            roles: RoleFilter::Receiver,
            ..Faults::default()
        },
        ..BrokerConfig::default()
    };
    MockBroker::start(config).await.expect("broker")
}

/// Publishes `n` messages and returns the IDs the broker confirmed.
async fn publish(broker: &MockBroker, n: u64) -> BTreeSet<MessageId> {
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string()))
        .await
        .expect("sender");
    let sends = (0..n).map(|i| sender.send(OutgoingMessage::new(TOPIC, format!("m{i}"))));
    let confirmed: BTreeSet<MessageId> = join_all(sends)
        .await
        .into_iter()
        .filter_map(|r| r.ok().map(|receipt| receipt.id))
        .collect();
    sender.close(Duration::from_secs(5)).await;
    assert_eq!(
        confirmed.len() as u64,
        n,
        "the broker confirmed every message"
    );
    confirmed
}

async fn open(db: &str) -> Inbox {
    let inbox = Inbox::open(db, InboxConfig::default()).await.expect("open");
    match (inbox.sqlite_pool(), inbox.pg_pool()) {
        (Some(p), _) => sqlx::query(procs::APPLIED_DDL).execute(p).await.map(|_| ()),
        (_, Some(p)) => sqlx::query(procs::APPLIED_DDL).execute(p).await.map(|_| ()),
        _ => unreachable!(),
    }
    .expect("business table");
    inbox
}

/// Kills the consumer `kills` times after a seeded number of handled
/// messages each, then lets a last one finish; checks exactly once.
async fn kill_repeatedly(db: &str, seed: u64, kills: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let broker = lossy_broker(seed).await;
    let inbox = open(db).await;
    let confirmed = publish(&broker, MESSAGES).await;
    let addr = broker.addr().to_string();
    for k in 0..kills {
        let mut c = spawn(&format!("consumer {k}"), "tx", db, &addr, 0);
        c.wait_events(rng.gen_range(10..70)).await;
        c.kill().await;
    }
    let last = spawn("last consumer", "tx", db, &addr, 0);
    let s = broker
        .wait_for(WAIT, |s| s.stored_messages == 0)
        .await
        .expect("every message acked");
    last.kill().await;
    println!(
        "broker: {} deliveries, {} redeliveries, {} acks",
        s.deliveries_sent, s.redeliveries_sent, s.acks_received
    );
    check_exactly_once(&inbox, &confirmed)
        .await
        .expect("exactly once");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_consumer_sqlite_applies_each_message_once() {
    let seed = common::seed("sigkill_consumer_sqlite_applies_each_message_once");
    let dir = common::temp_dir("kill-sqlite", seed);
    let db = format!("sqlite:{}", dir.join("consumer.db").display());
    kill_repeatedly(&db, seed, 4).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_consumer_postgres_applies_each_message_once() {
    let test = "sigkill_consumer_postgres_applies_each_message_once";
    let Some(url) = common::postgres_url(test) else {
        return;
    };
    let seed = common::seed(test);
    let schema = "mq_inbox_kill";
    let db = common::fresh_schema(&url, schema).await;
    kill_repeatedly(&db, seed, 4).await;
    common::drop_schema(&url, schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_a_postgres_inbox_one_killed_mid_stream() {
    let test = "two_consumers_share_a_postgres_inbox_one_killed_mid_stream";
    let Some(url) = common::postgres_url(test) else {
        return;
    };
    let seed = common::seed(test);
    let mut rng = StdRng::seed_from_u64(seed);
    let schema = "mq_inbox_pair";
    let db = common::fresh_schema(&url, schema).await;
    let broker = lossy_broker(seed).await;
    let inbox = open(&db).await;
    let confirmed = publish(&broker, MESSAGES).await;
    let addr = broker.addr().to_string();
    let mut a = spawn("member a", "tx", &db, &addr, 0);
    let mut b = spawn("member b", "tx", &db, &addr, 0);
    a.wait_events(rng.gen_range(20..80)).await;
    a.kill().await;
    b.wait_events(1).await;
    let s = broker
        .wait_for(WAIT, |s| s.stored_messages == 0)
        .await
        .expect("every message acked");
    b.kill().await;
    println!("broker: {} redeliveries", s.redeliveries_sent);
    check_exactly_once(&inbox, &confirmed)
        .await
        .expect("exactly once");
    broker.shutdown().await;
    common::drop_schema(&url, schema).await;
}
