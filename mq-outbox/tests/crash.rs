//! A producer process killed with SIGKILL mid-stream, then restarted:
//! every committed row ends confirmed and landed at the broker exactly once.
//!
//! The producer is this test binary re-executed with `MQ_OUTBOX_CHILD_DB`
//! set: `child_producer` is then a real producer process (outbox on a temp
//! SQLite file, a real sender to the in-test mock broker, a dispatcher)
//! that prints `committed <seq>` after each commit. Without the variable
//! `child_producer` returns at once.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use mq_client_sender::SenderConfig;
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_outbox::{Outbox, OutboxConfig};
use mq_protocol::MessageId;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(120);

/// The default 30 s lease: the restart must not wait for it (the restarted
/// single-producer SQLite outbox takes its previous run's leases back).
fn config() -> OutboxConfig {
    let mut c = OutboxConfig::default();
    c.max_attempts = 20;
    c.poll_interval = Duration::from_millis(100);
    c.backoff.initial = Duration::from_millis(50);
    c.backoff.max = Duration::from_millis(500);
    c
}

#[test]
fn child_producer() {
    let (Ok(db), Ok(broker)) = (
        std::env::var("MQ_OUTBOX_CHILD_DB"),
        std::env::var("MQ_OUTBOX_CHILD_BROKER"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let outbox = Outbox::open(format!("sqlite:{db}"), config())
            .await
            .expect("open");
        let sender = mq_outbox::connect_sender(&outbox, SenderConfig::new(broker))
            .await
            .expect("sender");
        let _dispatcher = outbox.dispatcher(sender).spawn();
        let pool = outbox.sqlite_pool().expect("sqlite").clone();
        sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, note TEXT)")
            .execute(&pool)
            .await
            .expect("orders");
        for i in 0u64.. {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
            sqlx::query("INSERT INTO orders (note) VALUES ($1)")
                .bind(format!("order {i}"))
                .execute(&mut *tx)
                .await
                .expect("order");
            let id = outbox
                .enqueue(&mut tx, "orders", format!("order {i}"))
                .await
                .expect("enqueue");
            tx.commit().await.expect("commit");
            outbox.notify();
            println!("committed {}", id.seq);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_delivers_every_row_once() {
    let seed = common::seed("sigkill_mid_stream_then_restart_delivers_every_row_once");
    let bc = BrokerConfig {
        seed: Some(seed),
        ..Default::default()
    };
    let broker = MockBroker::start(bc).await.expect("broker");
    let dir = std::env::temp_dir().join(format!("mq-outbox-crash-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");

    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "child_producer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MQ_OUTBOX_CHILD_DB", &db)
        .env("MQ_OUTBOX_CHILD_BROKER", broker.addr().to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn producer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (seq_tx, mut seq_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(seq) = line.strip_prefix("committed ") {
                if let Ok(seq) = seq.trim().parse::<u64>() {
                    let _ = seq_tx.send(seq);
                }
            }
        }
    });
    let mut committed = BTreeSet::new();
    // Let it commit a good number of rows, then kill it at a moment when
    // the broker holds rows whose confirm the producer has not recorded
    // yet (the case a restart must re-send with the same ID).
    let run = async {
        while committed.len() < 300 {
            committed.insert(seq_rx.recv().await.expect("producer exited early"));
        }
        let reader_pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .expect("reader pool");
        for _ in 0..200 {
            let stored = broker.stats().messages_stored;
            let recorded: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM mq_outbox WHERE status = 1")
                    .fetch_one(&reader_pool)
                    .await
                    .expect("count");
            if stored >= recorded as u64 + 3 {
                println!("killing with {stored} stored and {recorded} recorded");
                return;
            }
            // Event-driven: wait for the broker to store more.
            let _ = broker
                .wait_for(Duration::from_secs(5), |s| s.messages_stored > stored)
                .await;
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .expect("producer progress");
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait");
    let _ = reader.await;
    while let Ok(seq) = seq_rx.try_recv() {
        committed.insert(seq);
    }
    println!(
        "producer killed ({status:?}) after {} reported commits; broker stored {}",
        committed.len(),
        broker.stats().messages_stored
    );

    // Restart: reopen the same file, same producer id, dispatch to completion.
    let outbox = Outbox::open(format!("sqlite:{}", db.display()), config())
        .await
        .expect("reopen");
    let before = outbox.stats().await.expect("stats");
    println!("after the kill: {before:?}");
    assert!(before.pending > 0, "kill was not mid-stream: {before:?}");
    let sender = mq_outbox::connect_sender(&outbox, SenderConfig::new(broker.addr().to_string()))
        .await
        .expect("sender");
    let restarted = tokio::time::Instant::now();
    let h = outbox.dispatcher(sender).spawn();
    let s = outbox
        .wait_for(WAIT, |s| s.pending == 0)
        .await
        .expect("drained");
    let drained = restarted.elapsed();
    h.shutdown().await;
    println!(
        "restart drained {} pending rows in {drained:?}",
        before.pending
    );
    assert!(
        drained < outbox.config().lease / 3,
        "the restart waited {drained:?}, as if for the {:?} lease",
        outbox.config().lease
    );

    let pool = outbox.sqlite_pool().expect("sqlite");
    let rows: Vec<(i64, i16, i32)> =
        sqlx::query_as("SELECT seq, status, attempts FROM mq_outbox ORDER BY seq")
            .fetch_all(pool)
            .await
            .expect("rows");
    let in_db: BTreeSet<u64> = rows.iter().map(|r| r.0 as u64).collect();
    assert!(
        committed.is_subset(&in_db),
        "a reported commit is missing from the table"
    );
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(pool)
        .await
        .expect("orders");
    assert_eq!(
        orders as usize,
        rows.len(),
        "business rows and outbox rows differ"
    );
    let mut resent = 0;
    for (seq, status, attempts) in &rows {
        let id = MessageId::new(outbox.producer_id(), *seq as u64);
        assert_eq!(*status, 1, "row {seq} not confirmed");
        assert_eq!(
            broker.landed_count(id),
            1,
            "{id} landed {} times",
            broker.landed_count(id)
        );
        if *attempts > 1 {
            resent += 1;
        }
    }
    println!(
        "{} rows confirmed, each landed once; {resent} re-sent after the restart; {s:?}",
        rows.len()
    );
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
