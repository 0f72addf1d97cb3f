//! The SQL range store against the receiver's in-memory `DedupWindow`: the
//! same answers for the same operation sequences (proptest), on SQLite and,
//! when `MQ_TEST_DATABASE_URL` is set, on Postgres. Plus the edges.

mod common;

use std::time::Instant;

use mq_client_receiver::{DedupConfig, DedupWindow};
use mq_inbox::{Inbox, InboxConfig, Marked};
use mq_protocol::MessageId;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Mark(u64, u64),
    Contains(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Few producers and a small sequence space, so ranges touch, merge,
    // split and hit the per-producer cap; u64 edges included.
    let seq = prop_oneof![
        8 => 0u64..48,
        1 => prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(1u64 << 63), Just((1u64 << 63) - 1)],
    ];
    (0u64..3, seq, any::<bool>()).prop_map(|(p, s, mark)| {
        let p = [1u64, 2, u64::MAX][p as usize];
        if mark {
            Op::Mark(p, s)
        } else {
            Op::Contains(p, s)
        }
    })
}

const MAX_RANGES: usize = 4;

fn config() -> InboxConfig {
    let mut c = InboxConfig::default();
    c.retention.max_ranges_per_producer = MAX_RANGES as u64;
    c
}

fn window() -> DedupWindow {
    DedupWindow::new(
        DedupConfig::default()
            .max_producers(1000)
            .max_ranges_per_producer(MAX_RANGES)
            .max_ranges(1_000_000),
    )
}

/// Runs `ops` against both and compares every answer and the final ranges.
async fn same_answers(inbox: &Inbox, ops: &[Op]) -> Result<(), String> {
    let mut w = window();
    let now = Instant::now();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Mark(p, s) => {
                let id = MessageId::new(p, s);
                let new_in_window = w.insert(now, id);
                let marked = match inbox.sqlite_pool() {
                    Some(pool) => {
                        let mut tx = pool
                            .begin_with("BEGIN IMMEDIATE")
                            .await
                            .map_err(|e| e.to_string())?;
                        let m = inbox.mark(&mut tx, id).await.map_err(|e| e.to_string())?;
                        tx.commit().await.map_err(|e| e.to_string())?;
                        m
                    }
                    None => {
                        let pool = inbox.pg_pool().ok_or("no pool")?;
                        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
                        let m = inbox.mark(&mut tx, id).await.map_err(|e| e.to_string())?;
                        tx.commit().await.map_err(|e| e.to_string())?;
                        m
                    }
                };
                let new_in_sql = marked == Marked::New;
                if new_in_window != new_in_sql {
                    return Err(format!(
                        "op {i} {op:?}: window new={new_in_window}, sql new={new_in_sql}"
                    ));
                }
            }
            Op::Contains(p, s) => {
                let id = MessageId::new(p, s);
                let a = w.contains(id);
                let b = inbox.contains(id).await.map_err(|e| e.to_string())?;
                if a != b {
                    return Err(format!("op {i} {op:?}: window {a}, sql {b}"));
                }
            }
        }
    }
    for p in [1u64, 2, u64::MAX] {
        let sql = inbox.ranges(p).await.map_err(|e| e.to_string())?;
        if sql.len() != w.range_count(p) {
            return Err(format!(
                "producer {p}: sql ranges {sql:?}, window holds {}",
                w.range_count(p)
            ));
        }
        // Every stored range is exactly covered by the window, and its
        // neighbours are not (ranges are maximal, never merged over a gap).
        for &(a, b) in &sql {
            for s in [a, b] {
                if !w.contains(MessageId::new(p, s)) {
                    return Err(format!(
                        "producer {p}: sql range ({a}, {b}) not in the window"
                    ));
                }
            }
            if a > 0 && w.contains(MessageId::new(p, a - 1)) {
                return Err(format!("producer {p}: range ({a}, {b}) not merged below"));
            }
            if b < u64::MAX && w.contains(MessageId::new(p, b + 1)) {
                return Err(format!("producer {p}: range ({a}, {b}) not merged above"));
            }
        }
    }
    Ok(())
}

async fn sqlite_inbox() -> Inbox {
    Inbox::open("sqlite::memory:", config())
        .await
        .expect("open")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_ranges_answer_like_the_window(ops in proptest::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let r = rt.block_on(async {
            let inbox = sqlite_inbox().await;
            same_answers(&inbox, &ops).await
        });
        prop_assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
    }
}

#[test]
fn postgres_ranges_answer_like_the_window() {
    let Some(url) = common::postgres_url("postgres_ranges_answer_like_the_window") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let url = rt.block_on(common::fresh_schema(&url, "mq_inbox_prop"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |ops| {
        let r = rt.block_on(async {
            let inbox = Inbox::open(url.as_str(), config())
                .await
                .map_err(|e| e.to_string())?;
            let pool = inbox.pg_pool().ok_or("pg")?.clone();
            sqlx::raw_sql("DELETE FROM mq_inbox_ranges; DELETE FROM mq_inbox_producers")
                .execute(&pool)
                .await
                .map_err(|e| e.to_string())?;
            let r = same_answers(&inbox, &ops).await;
            pool.close().await;
            r
        });
        prop_assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[tokio::test]
async fn a_rolled_back_mark_is_not_seen() {
    let inbox = sqlite_inbox().await;
    let pool = inbox.sqlite_pool().expect("sqlite").clone();
    let id = MessageId::new(5, 10);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    assert_eq!(inbox.mark(&mut tx, id).await.expect("mark"), Marked::New);
    tx.rollback().await.expect("rollback");
    assert!(!inbox.contains(id).await.expect("contains"));
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    assert_eq!(inbox.mark(&mut tx, id).await.expect("mark"), Marked::New);
    tx.commit().await.expect("commit");
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    assert_eq!(
        inbox.mark(&mut tx, id).await.expect("mark"),
        Marked::Already
    );
    tx.rollback().await.expect("rollback");
}

#[tokio::test]
async fn a_contiguous_producer_is_one_row_and_gaps_merge_when_filled() {
    let inbox = sqlite_inbox().await;
    let store = inbox.dedup_store();
    use mq_client_receiver::DedupStore;
    for seq in (1..=1000).filter(|s| s % 100 != 0) {
        store
            .insert(Instant::now(), MessageId::new(7, seq))
            .await
            .expect("insert");
    }
    // 1..=99, 101..=199, ..., 901..=999: 10 ranges, capped at 4 (lowest go).
    let r = inbox.ranges(7).await.expect("ranges");
    assert_eq!(r, vec![(601, 699), (701, 799), (801, 899), (901, 999)]);
    assert!(
        !inbox
            .contains(MessageId::new(7, 5))
            .await
            .expect("contains"),
        "forgotten, never invented"
    );
    for seq in [700, 800, 900] {
        store
            .insert(Instant::now(), MessageId::new(7, seq))
            .await
            .expect("insert");
    }
    assert_eq!(inbox.ranges(7).await.expect("ranges"), vec![(601, 999)]);
    let s = inbox.stats().await.expect("stats");
    assert_eq!((s.producers, s.ranges, s.forgotten), (1, 1, 6));
}

#[tokio::test]
async fn retention_forgets_idle_producers_and_the_cap_keeps_the_most_recent() {
    let mut c = config();
    c.retention.max_producers = 2;
    let inbox = Inbox::open("sqlite::memory:", c).await.expect("open");
    let store = inbox.dedup_store();
    use mq_client_receiver::DedupStore;
    for p in 1..=3u64 {
        store
            .insert(Instant::now(), MessageId::new(p, 1))
            .await
            .expect("insert");
        // last_active is in milliseconds: make the order unambiguous.
        let pool = inbox.sqlite_pool().expect("sqlite");
        sqlx::query("UPDATE mq_inbox_producers SET last_active = $2 WHERE producer = $1")
            .bind(p as i64)
            .bind(p as i64 * 1_000_000_000)
            .execute(pool)
            .await
            .expect("age");
    }
    let purged = inbox.compact().await.expect("compact");
    // All three are idle since 1970 + n*11 days: forgotten by idle expiry.
    assert_eq!((purged.producers, purged.ranges), (3, 3));
    assert_eq!(inbox.stats().await.expect("stats").producers, 0);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for p in 1..=3u64 {
        store
            .insert(Instant::now(), MessageId::new(p, 1))
            .await
            .expect("insert");
        sqlx::query("UPDATE mq_inbox_producers SET last_active = $2 WHERE producer = $1")
            .bind(p as i64)
            .bind(now_ms + p as i64)
            .execute(inbox.sqlite_pool().expect("sqlite"))
            .await
            .expect("age");
    }
    let purged = inbox.compact().await.expect("compact");
    assert_eq!(purged.producers, 1);
    assert!(!inbox
        .contains(MessageId::new(1, 1))
        .await
        .expect("contains"));
    assert!(inbox
        .contains(MessageId::new(3, 1))
        .await
        .expect("contains"));
    assert_eq!(inbox.purge_producer(3).await.expect("purge").producers, 1);
    assert!(!inbox
        .contains(MessageId::new(3, 1))
        .await
        .expect("contains"));
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_a_bad_url_is_unreachable() {
    let dir = common::temp_dir("schema", 0);
    let url = format!("sqlite:{}", dir.join("i.db").display());
    let inbox = Inbox::open(url.as_str(), config()).await.expect("open");
    sqlx::query("UPDATE mq_inbox_meta SET value = 99 WHERE name = 'schema_version'")
        .execute(inbox.sqlite_pool().expect("sqlite"))
        .await
        .expect("bump");
    drop(inbox);
    let e = Inbox::open(url.as_str(), config())
        .await
        .expect_err("too new");
    assert!(
        matches!(
            e,
            mq_inbox::OpenError::SchemaTooNew {
                found: 99,
                supported: 1
            }
        ),
        "{e}"
    );
    let e = Inbox::open("postgres://nobody@127.0.0.1:1/x", config())
        .await
        .expect_err("unreachable");
    assert!(matches!(e, mq_inbox::OpenError::Unreachable(_)), "{e}");
    let e = Inbox::open("mysql://x", config())
        .await
        .expect_err("unsupported");
    assert!(matches!(e, mq_inbox::OpenError::UnsupportedUrl(_)), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
