//! Outbox behaviour on SQLite with a fake dispatcher.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fast_config, seed, FakeDispatch};
use mq_outbox::{AdminError, OpenError, Outbox, Retention};
use mq_protocol::MessageId;

const WAIT: Duration = Duration::from_secs(30);

async fn temp_outbox(dir: &std::path::Path, config: mq_outbox::OutboxConfig) -> Outbox {
    let url = format!("sqlite:{}", dir.join("outbox.db").display());
    Outbox::open(url.as_str(), config)
        .await
        .expect("open outbox")
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mq-outbox-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

async fn enqueue_committed(outbox: &Outbox, n: usize) -> Vec<MessageId> {
    let pool = outbox.sqlite_pool().expect("sqlite").clone();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
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
async fn rolled_back_transaction_sends_nothing() {
    let seed = seed("rolled_back_transaction_sends_nothing");
    let outbox = Outbox::open("sqlite::memory:", fast_config(seed))
        .await
        .unwrap();
    let fake = FakeDispatch::new(seed);
    let handle = outbox.dispatcher(fake.clone()).spawn();

    let pool = outbox.sqlite_pool().unwrap().clone();
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO orders (id) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let lost = outbox.enqueue(&mut tx, "orders", "never").await.unwrap();
    tx.rollback().await.unwrap();
    outbox.notify();

    // A later committed row: once it is confirmed, the dispatcher has
    // claimed everything committed before it (claims go in seq order).
    let ids = enqueue_committed(&outbox, 1).await;
    outbox.wait_for(WAIT, |s| s.confirmed == 1).await.unwrap();
    handle.shutdown().await;

    // SQLite rolls the AUTOINCREMENT counter back too, so the committed
    // row may reuse the never-committed row's seq; compare payloads.
    assert!(lost.seq <= ids[0].seq);
    assert_eq!(
        *fake.payloads.lock().unwrap(),
        vec![bytes::Bytes::from("order 0")]
    );
    let s = outbox.stats().await.unwrap();
    assert_eq!((s.pending, s.confirmed, s.failed), (0, 1, 0));
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn committed_rows_are_confirmed_once_with_their_ids() {
    let seed = seed("committed_rows_are_confirmed_once_with_their_ids");
    let dir = tempdir("happy");
    let outbox = temp_outbox(&dir, fast_config(seed)).await;
    let mut fake = FakeDispatch::new(seed);
    fake.max_delay_ms = 3;
    let handle = outbox.dispatcher(fake.clone()).spawn();
    let ids = enqueue_committed(&outbox, 200).await;
    outbox.wait_for(WAIT, |s| s.confirmed == 200).await.unwrap();
    handle.shutdown().await;
    for id in &ids {
        assert_eq!(id.producer, outbox.producer_id());
        assert_eq!(fake.confirmed.lock().unwrap().get(id), Some(&1), "{id}");
    }
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn broker_down_fails_rows_then_requeue_delivers() {
    let seed = seed("broker_down_fails_rows_then_requeue_delivers");
    let (alert_tx, mut alerts) = tokio::sync::mpsc::unbounded_channel();
    let config = fast_config(seed).with_on_failed(move |row| {
        let _ = alert_tx.send(row);
    });
    let outbox = Outbox::open("sqlite::memory:", config).await.unwrap();
    let fake = FakeDispatch::new(seed);
    fake.down.store(true, Ordering::SeqCst);
    let handle = outbox.dispatcher(fake.clone()).spawn();
    let ids = enqueue_committed(&outbox, 20).await;

    outbox.wait_for(WAIT, |s| s.failed == 20).await.unwrap();
    let failed = outbox.list_failed().await.unwrap();
    assert_eq!(failed.len(), 20);
    for (row, id) in failed.iter().zip(&ids) {
        assert_eq!(row.id, *id);
        assert_eq!(row.attempts, 3);
        assert_eq!(row.topic, "orders");
        assert!(row
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"));
        assert_eq!(fake.attempts_of(*id), 3);
    }
    let mut alerted = Vec::new();
    for _ in 0..20 {
        let row = tokio::time::timeout(WAIT, alerts.recv())
            .await
            .unwrap()
            .unwrap();
        alerted.push(row.id);
    }
    alerted.sort();
    assert_eq!(alerted, ids);

    // The broker comes back; a person requeues.
    fake.down.store(false, Ordering::SeqCst);
    let seqs: Vec<u64> = failed.iter().map(|r| r.seq).collect();
    assert_eq!(outbox.requeue(&seqs).await.unwrap(), seqs);
    outbox.wait_for(WAIT, |s| s.confirmed == 20).await.unwrap();
    assert!(outbox.list_failed().await.unwrap().is_empty());
    for id in &ids {
        assert_eq!(fake.confirmed.lock().unwrap().get(id), Some(&1));
    }
    // Requeueing again is a no-op.
    assert!(outbox.requeue(&seqs).await.unwrap().is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn permanent_rejection_fails_at_once() {
    let seed = seed("permanent_rejection_fails_at_once");
    let outbox = Outbox::open("sqlite::memory:", fast_config(seed))
        .await
        .unwrap();
    let fake = FakeDispatch::new(seed);
    fake.permanent.lock().unwrap().insert(2);
    let handle = outbox.dispatcher(fake.clone()).spawn();
    let ids = enqueue_committed(&outbox, 3).await;
    let s = outbox
        .wait_for(WAIT, |s| s.confirmed == 2 && s.failed == 1)
        .await
        .unwrap();
    assert_eq!(s.pending, 0);
    handle.shutdown().await;
    assert_eq!(fake.attempts_of(ids[1]), 1);
    let failed = outbox.list_failed().await.unwrap();
    assert_eq!(failed[0].id, ids[1]);
}

#[tokio::test]
async fn flaky_broker_retries_with_same_id_until_confirmed() {
    let seed = seed("flaky_broker_retries_with_same_id_until_confirmed");
    let mut config = fast_config(seed);
    config.max_attempts = 50;
    let outbox = Outbox::open("sqlite::memory:", config).await.unwrap();
    let mut fake = FakeDispatch::new(seed);
    fake.fail_ratio = 0.5;
    let handle = outbox.dispatcher(fake.clone()).spawn();
    let ids = enqueue_committed(&outbox, 50).await;
    outbox.wait_for(WAIT, |s| s.confirmed == 50).await.unwrap();
    handle.shutdown().await;
    for id in &ids {
        assert_eq!(fake.confirmed.lock().unwrap().get(id), Some(&1));
    }
    println!("attempts for 50 rows: {}", fake.total_attempts());
}

#[tokio::test]
async fn producer_id_is_stable_across_reopen_and_retention_delete() {
    let seed = seed("producer_id_is_stable_across_reopen_and_retention_delete");
    let dir = tempdir("reopen");
    let mut config = fast_config(seed);
    config.retention = Retention::Delete;
    let first = temp_outbox(&dir, config.clone()).await;
    let pid = first.producer_id();
    let a = enqueue_committed(&first, 2).await;
    let fake = FakeDispatch::new(seed);
    let h = first.dispatcher(fake.clone()).spawn();
    first.wait_for(WAIT, |s| s.pending == 0).await.unwrap();
    h.shutdown().await;
    assert_eq!(
        first.stats().await.unwrap(),
        mq_outbox::OutboxStats::default()
    );
    drop(first);

    let second = temp_outbox(&dir, config).await;
    assert_eq!(second.producer_id(), pid);
    let b = enqueue_committed(&second, 1).await;
    // AUTOINCREMENT: sequences are not reused after deletes.
    assert!(b[0].seq > a[1].seq, "{:?} vs {:?}", b, a);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn purge_removes_only_old_confirmed_rows() {
    let seed = seed("purge_removes_only_old_confirmed_rows");
    let outbox = Outbox::open("sqlite::memory:", fast_config(seed))
        .await
        .unwrap();
    enqueue_committed(&outbox, 3).await;
    let h = outbox.dispatcher(FakeDispatch::new(seed)).spawn();
    outbox.wait_for(WAIT, |s| s.confirmed == 3).await.unwrap();
    h.shutdown().await;
    enqueue_committed(&outbox, 1).await; // pending, never purged
    assert_eq!(
        outbox
            .purge_confirmed(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(outbox.purge_confirmed(Duration::ZERO).await.unwrap(), 3);
    let s = outbox.stats().await.unwrap();
    assert_eq!((s.pending, s.confirmed), (1, 0));
}

#[tokio::test]
async fn newer_schema_is_refused_with_a_clear_error() {
    let dir = tempdir("schema");
    let url = format!("sqlite:{}", dir.join("outbox.db").display());
    let outbox = Outbox::open(url.as_str(), Default::default())
        .await
        .unwrap();
    sqlx::query("UPDATE mq_outbox_meta SET value = 99 WHERE name = 'schema_version'")
        .execute(outbox.sqlite_pool().unwrap())
        .await
        .unwrap();
    drop(outbox);
    let err = Outbox::open(url.as_str(), Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::SchemaTooNew {
                found: 99,
                supported: mq_outbox::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version 99 is newer than this library's {}; upgrade mq-outbox",
            mq_outbox::SCHEMA_VERSION
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn pool_without_wal_is_refused() {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let dir = tempdir("pragma");
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("x.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete);
    let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
    let err = Outbox::open(pool, Default::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Pragma {
                name: "journal_mode",
                ..
            }
        ),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn enqueue_validates_before_inserting() {
    let outbox = Outbox::open("sqlite::memory:", Default::default())
        .await
        .unwrap();
    let mut tx = outbox.sqlite_pool().unwrap().begin().await.unwrap();
    assert!(matches!(
        outbox.enqueue(&mut tx, "", "x").await,
        Err(mq_outbox::EnqueueError::InvalidTopic(0))
    ));
    let big = vec![0u8; 2 << 20];
    assert!(matches!(
        outbox.enqueue(&mut tx, "t", big).await,
        Err(mq_outbox::EnqueueError::TooLarge { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(outbox.stats().await.unwrap().pending, 0);
    assert!(matches!(
        outbox
            .wait_for(Duration::from_millis(1), |s| s.pending == 1)
            .await,
        Err(AdminError::Timeout)
    ));
}

#[tokio::test]
async fn admin_binary_lists_and_requeues_failed_rows() {
    let seed = seed("admin_binary_lists_and_requeues_failed_rows");
    let dir = tempdir("cli");
    let url = format!("sqlite:{}", dir.join("outbox.db").display());
    let outbox = Outbox::open(url.as_str(), fast_config(seed)).await.unwrap();
    let fake = FakeDispatch::new(seed);
    fake.down.store(true, Ordering::SeqCst);
    let h = outbox.dispatcher(fake.clone()).spawn();
    enqueue_committed(&outbox, 2).await;
    outbox.wait_for(WAIT, |s| s.failed == 2).await.unwrap();
    h.shutdown().await;

    let bin = env!("CARGO_BIN_EXE_mq-outbox");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("--database-url")
            .arg(&url)
            .args(args)
            .output()
            .expect("run mq-outbox");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["list-failed"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("broker unreachable"), "{out}");
    let (code, out) = run(&["requeue", "1", "2", "99"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("requeued 2"), "{out}");
    let (code, out) = run(&["stats"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("pending 2") && out.contains("failed 0"),
        "{out}"
    );
    let (code, _) = run(&["purge-confirmed", "--older-than", "7d"]);
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn headers_and_payload_reach_the_dispatcher_intact() {
    use mq_outbox::{Dispatch, DispatchError};
    use mq_protocol::{Headers, Message};
    struct Capture(tokio::sync::mpsc::UnboundedSender<Message>);
    impl Dispatch for Capture {
        async fn dispatch(&self, m: Message) -> Result<(), DispatchError> {
            let _ = self.0.send(m);
            Ok(())
        }
    }
    let outbox = Outbox::open("sqlite::memory:", Default::default())
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let h = outbox.dispatcher(Capture(tx)).spawn();
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("trace", vec![0u8, 255, 7]);
    let mut t = outbox.sqlite_pool().unwrap().begin().await.unwrap();
    let id = outbox
        .enqueue_with_headers(&mut t, "orders.created", &headers, vec![1u8, 2, 3])
        .await
        .unwrap();
    t.commit().await.unwrap();
    outbox.notify();
    let m = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.id, m.attempt, &*m.topic), (id, 1, "orders.created"));
    assert_eq!(m.headers, headers);
    assert_eq!(&m.payload[..], &[1, 2, 3]);
    outbox.wait_for(WAIT, |s| s.confirmed == 1).await.unwrap();
    h.shutdown().await;
}

#[tokio::test]
async fn pool_with_synchronous_off_is_refused() {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let dir = tempdir("sync");
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("x.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
    let err = Outbox::open(pool, Default::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Pragma {
                name: "synchronous",
                ..
            }
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
