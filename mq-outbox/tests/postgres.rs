//! Outbox behaviour on Postgres. Runs when `MQ_TEST_DATABASE_URL` is set
//! (see `.ci/postgres.sh`); each test works in its own schema.
//!
//! Without the variable at build time the tests are marked ignored with
//! the reason (`build.rs` sets `mq_no_test_database`), so `cargo test`
//! says "ignored" rather than "passed". With `CI` set they always run.

mod common;

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fast_config, seed, FakeDispatch};
use mq_outbox::{Outbox, OutboxConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

fn database_url(test: &str) -> Option<String> {
    match std::env::var("MQ_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // CI always runs these (.ci/run starts PostgreSQL): never skip there.
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false"),
                "{test}: CI is set but MQ_TEST_DATABASE_URL is not; .ci/run must start PostgreSQL"
            );
            // Built with the variable, run without it.
            eprintln!(
                "{test}: SKIPPED; set MQ_TEST_DATABASE_URL (eval \"$(bash .ci/postgres.sh)\")"
            );
            None
        }
    }
}

/// A fresh schema and a pool whose connections use it.
async fn schema_pool(url: &str, schema: &str) -> PgPool {
    let admin = PgPool::connect(url).await.expect("connect");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&admin)
    .await
    .expect("create schema");
    admin.close().await;
    pool_in(url, schema).await
}

async fn pool_in(url: &str, schema: &str) -> PgPool {
    let opts = PgConnectOptions::from_str(url)
        .expect("url")
        .options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .expect("pool")
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok(admin) = PgPool::connect(url).await {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await;
    }
}

async fn enqueue_committed(outbox: &Outbox, n: usize) -> Vec<mq_protocol::MessageId> {
    let pool = outbox.pg_pool().expect("pg").clone();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut tx = pool.begin().await.expect("begin");
        ids.push(
            outbox
                .enqueue(&mut tx, "orders", format!("order {i}"))
                .await
                .expect("enqueue"),
        );
        tx.commit().await.expect("commit");
    }
    outbox.notify();
    ids
}

#[tokio::test]
#[cfg_attr(
    mq_no_test_database,
    ignore = "needs PostgreSQL: eval \"$(bash .ci/postgres.sh)\" then cargo test again"
)]
async fn pg_rollback_sends_nothing_and_commit_is_confirmed() {
    let Some(url) = database_url("pg_rollback_sends_nothing_and_commit_is_confirmed") else {
        return;
    };
    let seed = seed("pg_rollback_sends_nothing_and_commit_is_confirmed");
    let schema = format!("mq_outbox_t{}", seed % 1_000_000_007);
    let pool = schema_pool(&url, &schema).await;
    let outbox = Outbox::open(pool.clone(), fast_config(seed)).await.unwrap();
    let fake = FakeDispatch::new(seed);
    let h = outbox.dispatcher(fake.clone()).spawn();

    let mut tx = pool.begin().await.unwrap();
    let lost = outbox.enqueue(&mut tx, "orders", "never").await.unwrap();
    tx.rollback().await.unwrap();
    let ids = enqueue_committed(&outbox, 5).await;
    outbox.wait_for(WAIT, |s| s.confirmed == 5).await.unwrap();
    h.shutdown().await;
    assert_eq!(fake.attempts_of(lost), 0);
    for id in &ids {
        assert_eq!(fake.confirmed.lock().unwrap().get(id), Some(&1));
    }

    // A second open (another process) sees the same producer id.
    let again = Outbox::open(pool_in(&url, &schema).await, OutboxConfig::default())
        .await
        .unwrap();
    assert_eq!(again.producer_id(), outbox.producer_id());
    drop_schema(&url, &schema).await;
}

#[tokio::test]
#[cfg_attr(
    mq_no_test_database,
    ignore = "needs PostgreSQL: eval \"$(bash .ci/postgres.sh)\" then cargo test again"
)]
async fn pg_two_dispatchers_never_send_a_row_concurrently() {
    let Some(url) = database_url("pg_two_dispatchers_never_send_a_row_concurrently") else {
        return;
    };
    let seed = seed("pg_two_dispatchers_never_send_a_row_concurrently");
    let schema = format!("mq_outbox_t{}", seed % 1_000_000_009);
    let mut config = fast_config(seed);
    config.lease = Duration::from_millis(300);
    config.max_attempts = 1000;
    config.batch_size = 16;
    config.poll_interval = Duration::from_millis(20);

    // Two "processes": separate pools and Outbox handles on one table.
    let a = Outbox::open(schema_pool(&url, &schema).await, config.clone())
        .await
        .unwrap();
    let mut cb = config.clone();
    cb.rng_seed = Some(seed ^ 1);
    let b = Outbox::open(pool_in(&url, &schema).await, cb)
        .await
        .unwrap();
    assert_eq!(a.producer_id(), b.producer_id());

    let mut fake = FakeDispatch::new(seed);
    fake.max_delay_ms = 10;
    fake.fail_ratio = 0.2;
    fake.hang_ratio = 0.05;
    let ha = a.dispatcher(fake.clone()).spawn();
    let hb = b.dispatcher(fake.clone()).spawn();

    const N: usize = 400;
    let (ia, ib) = tokio::join!(enqueue_committed(&a, N / 2), enqueue_committed(&b, N / 2));
    a.wait_for(WAIT, |s| s.confirmed == N as u64).await.unwrap();
    ha.shutdown().await;
    hb.shutdown().await;

    assert_eq!(
        fake.overlaps.load(Ordering::SeqCst),
        0,
        "a row was sent twice at once"
    );
    for id in ia.iter().chain(&ib) {
        assert_eq!(fake.confirmed.lock().unwrap().get(id), Some(&1), "{id}");
    }
    println!("{N} rows, {} attempts", fake.total_attempts());
    drop_schema(&url, &schema).await;
}

#[tokio::test]
#[cfg_attr(
    mq_no_test_database,
    ignore = "needs PostgreSQL: eval \"$(bash .ci/postgres.sh)\" then cargo test again"
)]
async fn pg_broker_down_then_requeue() {
    let Some(url) = database_url("pg_broker_down_then_requeue") else {
        return;
    };
    let seed = seed("pg_broker_down_then_requeue");
    let schema = format!("mq_outbox_t{}", seed % 1_000_000_021);
    let (alert_tx, mut alerts) = tokio::sync::mpsc::unbounded_channel();
    let config = fast_config(seed).with_on_failed(move |row| {
        let _ = alert_tx.send(row.seq);
    });
    let outbox = Outbox::open(schema_pool(&url, &schema).await, config)
        .await
        .unwrap();
    let fake = FakeDispatch::new(seed);
    fake.down.store(true, Ordering::SeqCst);
    let h = outbox.dispatcher(fake.clone()).spawn();
    let ids = enqueue_committed(&outbox, 10).await;
    outbox.wait_for(WAIT, |s| s.failed == 10).await.unwrap();
    for _ in 0..10 {
        tokio::time::timeout(WAIT, alerts.recv())
            .await
            .unwrap()
            .unwrap();
    }
    fake.down.store(false, Ordering::SeqCst);
    let seqs: Vec<u64> = outbox
        .list_failed()
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs.len(), 10);
    outbox.requeue(&seqs).await.unwrap();
    outbox.wait_for(WAIT, |s| s.confirmed == 10).await.unwrap();
    h.shutdown().await;
    for id in &ids {
        assert_eq!(fake.attempts_of(*id), 4);
    }
    drop_schema(&url, &schema).await;
}

#[tokio::test]
#[cfg_attr(
    mq_no_test_database,
    ignore = "needs PostgreSQL: eval \"$(bash .ci/postgres.sh)\" then cargo test again"
)]
async fn pg_restart_with_an_owner_takes_back_its_leases_at_once() {
    let Some(url) = database_url("pg_restart_with_an_owner_takes_back_its_leases_at_once") else {
        return;
    };
    let seed = seed("pg_restart_with_an_owner_takes_back_its_leases_at_once");
    let schema = format!("mq_outbox_t{}", seed % 1_000_000_033);
    // Default 30 s lease; the owner names this producer across restarts.
    let mut config = OutboxConfig::default();
    config.owner = Some("orders-producer-0".into());
    const ROWS: usize = 20;

    let first = Outbox::open(schema_pool(&url, &schema).await, config.clone())
        .await
        .unwrap();
    let ids = enqueue_committed(&first, ROWS).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let h = first
        .dispatcher(common::Announce { tx, hang: true })
        .spawn();
    for _ in 0..ROWS {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    h.abort(); // the crash: every row stays leased for 30 s
    drop(first);

    let second = Outbox::open(pool_in(&url, &schema).await, config)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    let h = second
        .dispatcher(common::Announce { tx, hang: false })
        .spawn();
    let first_sent = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("sent well before the 30 s lease")
        .unwrap();
    let resumed = started.elapsed();
    assert!(ids.contains(&first_sent));
    second
        .wait_for(Duration::from_secs(10), |s| s.confirmed == ROWS as u64)
        .await
        .unwrap();
    h.shutdown().await;
    println!("pg restart: first row sent after {resumed:?}");
    assert!(
        resumed < Duration::from_secs(1),
        "resumed after {resumed:?}"
    );
    drop_schema(&url, &schema).await;
}
