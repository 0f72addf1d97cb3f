//! The transactional handler in one process, against the mock broker: a
//! handler error rolls back and nacks; an ID committed before a "crash"
//! is acked without calling the handler; and on Postgres two transactions
//! marking one ID are settled by the producer row's lock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_inbox::{Inbox, InboxConfig, Marked};
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_protocol::{Backoff, MessageId};
use sqlx::{Sqlite, Transaction};

const WAIT: Duration = Duration::from_secs(60);

fn config(broker: &MockBroker) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic("t")
        .group("g")
}

async fn fast_broker() -> MockBroker {
    MockBroker::start(BrokerConfig {
        redelivery: Backoff {
            initial: Duration::from_millis(50),
            multiplier: 2.0,
            max: Duration::from_millis(200),
            jitter: 0.2,
        },
        ..BrokerConfig::default()
    })
    .await
    .expect("broker")
}

async fn sqlite_inbox() -> Inbox {
    let inbox = Inbox::open("sqlite::memory:", InboxConfig::default())
        .await
        .expect("open");
    sqlx::query("CREATE TABLE applied (seq BIGINT NOT NULL)")
        .execute(inbox.sqlite_pool().expect("sqlite"))
        .await
        .expect("table");
    inbox
}

async fn applied(inbox: &Inbox) -> Vec<i64> {
    sqlx::query_scalar("SELECT seq FROM applied ORDER BY seq")
        .fetch_all(inbox.sqlite_pool().expect("sqlite"))
        .await
        .expect("rows")
}

#[tokio::test]
async fn a_handler_error_rolls_back_and_the_redelivery_applies_once() {
    let broker = fast_broker().await;
    let inbox = sqlite_inbox().await;
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let h = inbox
        .handler(move |d: Delivery, mut tx: Transaction<'static, Sqlite>| {
            let c = c.clone();
            async move {
                sqlx::query("INSERT INTO applied (seq) VALUES ($1)")
                    .bind(d.id().seq as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::new("first attempt fails after its write"));
                }
                Ok(tx)
            }
        })
        .expect("handler");
    let r = Receiver::connect(config(&broker), h)
        .await
        .expect("receiver");
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string()))
        .await
        .expect("sender");
    let id = sender
        .send(OutgoingMessage::new("t", "x"))
        .await
        .expect("confirmed")
        .id;
    broker
        .wait_for(WAIT, |s| s.acks_received >= 1 && s.stored_messages == 0)
        .await
        .expect("acked");
    r.close(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        applied(&inbox).await,
        vec![id.seq as i64],
        "the failed write was rolled back"
    );
    let c = inbox.counters();
    assert_eq!((c.applied, c.rolled_back), (1, 1));
    assert!(inbox.contains(id).await.expect("contains"));
    broker.shutdown().await;
}

#[tokio::test]
async fn an_id_committed_before_a_crash_is_acked_without_the_handler() {
    let broker = fast_broker().await;
    let inbox = sqlite_inbox().await;
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string()))
        .await
        .expect("sender");
    let first = sender
        .send(OutgoingMessage::new("t", "a"))
        .await
        .expect("a")
        .id;
    let second = sender
        .send(OutgoingMessage::new("t", "b"))
        .await
        .expect("b")
        .id;
    // What a consumer that committed `first` and died before acking left.
    let pool = inbox.sqlite_pool().expect("sqlite").clone();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    sqlx::query("INSERT INTO applied (seq) VALUES ($1)")
        .bind(first.seq as i64)
        .execute(&mut *tx)
        .await
        .expect("row");
    assert_eq!(inbox.mark(&mut tx, first).await.expect("mark"), Marked::New);
    tx.commit().await.expect("commit");

    let seen = Arc::new(std::sync::Mutex::new(Vec::<MessageId>::new()));
    let s2 = seen.clone();
    let h = inbox
        .handler(move |d: Delivery, mut tx: Transaction<'static, Sqlite>| {
            let seen = s2.clone();
            async move {
                seen.lock().expect("lock").push(d.id());
                sqlx::query("INSERT INTO applied (seq) VALUES ($1)")
                    .bind(d.id().seq as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                Ok(tx)
            }
        })
        .expect("handler");
    let r = Receiver::connect(config(&broker), h)
        .await
        .expect("receiver");
    broker
        .wait_for(WAIT, |s| s.acks_received >= 2 && s.stored_messages == 0)
        .await
        .expect("both acked");
    r.close(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![second],
        "the handler saw only the new one"
    );
    let mut want = vec![first.seq as i64, second.seq as i64];
    want.sort_unstable();
    assert_eq!(applied(&inbox).await, want);
    assert_eq!(inbox.counters().found, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn on_postgres_two_transactions_marking_one_id_are_settled_by_the_row_lock() {
    let test = "on_postgres_two_transactions_marking_one_id_are_settled_by_the_row_lock";
    let Some(url) = common::postgres_url(test) else {
        return;
    };
    let schema = "mq_inbox_race";
    let db = common::fresh_schema(&url, schema).await;
    let inbox = Inbox::open(db.as_str(), InboxConfig::default())
        .await
        .expect("open");
    let pool = inbox.pg_pool().expect("pg").clone();
    let id = MessageId::new(11, 5);
    let mut first = pool.begin().await.expect("begin");
    assert_eq!(inbox.mark(&mut first, id).await.expect("mark"), Marked::New);
    // The second transaction's mark must wait for the first's row lock.
    let (i2, p2) = (inbox.clone(), pool.clone());
    let second = tokio::spawn(async move {
        let mut tx = p2.begin().await.expect("begin");
        let m = i2.mark(&mut tx, id).await.expect("mark");
        tx.rollback().await.expect("rollback");
        m
    });
    // Event, not time: wait until Postgres reports a backend blocked on a lock.
    let blocked = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'INSERT INTO mq_inbox_producers%'",
            )
            .fetch_one(&pool)
            .await
            .expect("activity");
            if n > 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, blocked)
        .await
        .expect("second mark blocked on the lock");
    assert!(!second.is_finished());
    first.commit().await.expect("commit");
    assert_eq!(second.await.expect("task"), Marked::Already);
    assert_eq!(inbox.ranges(11).await.expect("ranges"), vec![(5, 5)]);
    pool.close().await;
    common::drop_schema(&url, schema).await;
}
