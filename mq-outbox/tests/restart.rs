//! A restarted producer takes back its previous run's leases at once.
//!
//! The first run's dispatcher claims every row and never hears back (its
//! `Dispatch` hangs, as a process killed mid-attempt would), then it is
//! aborted and its `Outbox` dropped: the rows stay leased for the default
//! 30 s lease. A new `Outbox::open` on the same SQLite file (the restart)
//! must send them within a second, not after the lease.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Announce as Report;
use mq_outbox::{Outbox, OutboxConfig};
use mq_protocol::MessageId;
use tokio::sync::mpsc;
use tokio::time::Instant;

const ROWS: usize = 50;

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mq-outbox-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

async fn open(dir: &std::path::Path, config: OutboxConfig) -> Outbox {
    let url = format!("sqlite:{}", dir.join("outbox.db").display());
    Outbox::open(&url, config).await.expect("open outbox")
}

async fn enqueue(outbox: &Outbox, n: usize) -> Vec<MessageId> {
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

/// The first run: claims every row, hangs in every attempt, then "dies".
async fn crashed_run(dir: &std::path::Path, config: OutboxConfig) -> Vec<MessageId> {
    let first = open(dir, config).await;
    let ids = enqueue(&first, ROWS).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = first.dispatcher(Report { tx, hang: true }).spawn();
    let mut claimed = HashSet::new();
    while claimed.len() < ROWS {
        let id = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("first run dispatches every row")
            .expect("channel open");
        claimed.insert(id);
    }
    h.abort();
    drop(first);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_single_producer_sqlite_outbox_resumes_within_a_second() {
    let dir = tempdir("restart");
    let config = OutboxConfig::default();
    assert_eq!(config.lease, Duration::from_secs(30), "the default lease");
    let ids = crashed_run(&dir, config.clone()).await;

    let second = open(&dir, config).await;
    assert_eq!(second.stats().await.expect("stats").pending, ROWS as u64);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let h = second.dispatcher(Report { tx, hang: false }).spawn();
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the restarted outbox sends within 5 s (the lease is 30 s)")
        .expect("channel open");
    let resumed = started.elapsed();
    assert!(ids.contains(&first));
    second
        .wait_for(Duration::from_secs(10), |s| s.confirmed == ROWS as u64)
        .await
        .expect("every row confirmed well before the 30 s lease");
    let drained = started.elapsed();
    h.shutdown().await;
    println!("restart: first row sent after {resumed:?}, all {ROWS} confirmed after {drained:?}");
    assert!(
        resumed < Duration::from_secs(1),
        "resumed after {resumed:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_does_not_take_live_leases() {
    let dir = tempdir("owners");
    let mut a = OutboxConfig::default();
    a.owner = Some("producer-a".into());
    let leased = crashed_run(&dir, a).await;

    let mut b = OutboxConfig::default();
    b.owner = Some("producer-b".into());
    let other = open(&dir, b).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = other.dispatcher(Report { tx, hang: false }).spawn();
    // A new row is sent: the dispatcher has run its start-up and a claim.
    let fresh = enqueue(&other, 1).await;
    let sent = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the new row is sent")
        .expect("channel open");
    assert_eq!(sent, fresh[0], "only the new row; a's leases are live");
    other
        .wait_for(Duration::from_secs(10), |s| s.confirmed == 1)
        .await
        .expect("new row confirmed");
    h.shutdown().await;
    assert!(
        rx.try_recv().is_err(),
        "a row leased by producer-a was sent"
    );
    assert_eq!(
        other.stats().await.expect("stats").pending,
        leased.len() as u64
    );
    let _ = std::fs::remove_dir_all(dir);
}
