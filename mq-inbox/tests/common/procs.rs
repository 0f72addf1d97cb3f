//! Child processes for the kill tests: this test binary re-executed with
//! `MQ_INBOX_CHILD` set runs one consumer (or one outbox producer) until it
//! is killed, printing one line per event on stdout.
//!
//! * consumer, mode `tx`: the transactional handler ([`Inbox::handler`]),
//!   one row in `applied` per message, in the handler's transaction;
//! * consumer, mode `memory`: the receiver's in-memory dedup store and a
//!   handler that inserts the row on its own (what the inbox replaces);
//! * producer: rows in `orders` and the outbox in one transaction each,
//!   up to `MQ_INBOX_CHILD_COUNT` rows in the file (one every
//!   [`PRODUCER_PACE_MS`]), dispatched by the outbox's dispatcher.
//!
//! Lines: `handled <seq>` (a consumer's handler returned), `committed <seq>`
//! (a producer committed a row).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_inbox::{Inbox, InboxConfig};
use mq_protocol::{Backoff, MessageId};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

pub const TOPIC: &str = "orders";
pub const GROUP: &str = "billing";
/// Milliseconds between two commits of the producer child.
pub const PRODUCER_PACE_MS: u64 = 10;

/// The business table: no unique constraint, so a message applied twice
/// shows as two rows.
pub const APPLIED_DDL: &str = "CREATE TABLE IF NOT EXISTS applied \
    (producer BIGINT NOT NULL, seq BIGINT NOT NULL, attempt BIGINT NOT NULL)";

fn hme(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(e.to_string())
}

fn receiver_config(broker: String) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec![broker])
        .topic(TOPIC)
        .group(GROUP)
        .prefetch(64)
        .max_concurrency(8)
        .reconnect(Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(300),
            jitter: 0.2,
        })
}

/// Runs the child named by `MQ_INBOX_CHILD`, if any; returns at once otherwise.
pub fn run_child_if_asked() {
    let Ok(kind) = std::env::var("MQ_INBOX_CHILD") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let (db, broker) = (var("MQ_INBOX_CHILD_DB"), var("MQ_INBOX_CHILD_BROKER"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match kind.as_str() {
            "tx" | "memory" => consumer(&db, broker, &kind).await,
            "producer" => {
                producer(
                    &db,
                    broker,
                    var("MQ_INBOX_CHILD_COUNT").parse().expect("count"),
                )
                .await
            }
            other => panic!("unknown child {other}"),
        }
    });
}

async fn consumer(db: &str, broker: String, mode: &str) {
    let mut ic = InboxConfig::default();
    ic.max_connections = 4;
    let inbox = Inbox::open(db, ic).await.expect("open inbox");
    let config = receiver_config(broker);
    let _receiver = match (mode, inbox.sqlite_pool().cloned(), inbox.pg_pool().cloned()) {
        ("tx", Some(_), _) => {
            let h = inbox
                .handler(
                    |d: Delivery, mut tx: Transaction<'static, Sqlite>| async move {
                        apply_sqlite(&d, &mut tx).await?;
                        println!("handled {}", d.id().seq);
                        Ok(tx)
                    },
                )
                .expect("handler");
            Receiver::connect(config, h).await
        }
        ("tx", None, Some(_)) => {
            let h = inbox
                .handler(
                    |d: Delivery, mut tx: Transaction<'static, Postgres>| async move {
                        apply_pg(&d, &mut tx).await?;
                        println!("handled {}", d.id().seq);
                        Ok(tx)
                    },
                )
                .expect("handler");
            Receiver::connect(config, h).await
        }
        ("memory", Some(pool), _) => {
            Receiver::connect(config, move |d: Delivery| {
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(hme)?;
                    apply_sqlite(&d, &mut tx).await?;
                    tx.commit().await.map_err(hme)?;
                    println!("handled {}", d.id().seq);
                    Ok(())
                }
            })
            .await
        }
        _ => panic!("mode {mode} on {}", inbox.kind()),
    }
    .expect("receiver");
    std::future::pending::<()>().await;
}

async fn apply_sqlite(
    d: &Delivery,
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<(), HandlerError> {
    sqlx::query("INSERT INTO applied (producer, seq, attempt) VALUES ($1, $2, $3)")
        .bind(d.id().producer as i64)
        .bind(d.id().seq as i64)
        .bind(i64::from(d.delivery_attempt()))
        .execute(&mut **tx)
        .await
        .map_err(hme)?;
    Ok(())
}

async fn apply_pg(
    d: &Delivery,
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(), HandlerError> {
    sqlx::query("INSERT INTO applied (producer, seq, attempt) VALUES ($1, $2, $3)")
        .bind(d.id().producer as i64)
        .bind(d.id().seq as i64)
        .bind(i64::from(d.delivery_attempt()))
        .execute(&mut **tx)
        .await
        .map_err(hme)?;
    Ok(())
}

async fn producer(db: &str, broker: String, count: i64) {
    let mut c = mq_outbox::OutboxConfig::default();
    c.lease = Duration::from_secs(1);
    c.max_attempts = 1000;
    c.poll_interval = Duration::from_millis(100);
    c.backoff.initial = Duration::from_millis(50);
    c.backoff.max = Duration::from_millis(300);
    let outbox = mq_outbox::Outbox::open(db, c).await.expect("open outbox");
    let sender = mq_outbox::connect_sender(&outbox, mq_client_sender::SenderConfig::new(broker))
        .await
        .expect("sender");
    let _dispatcher = outbox.dispatcher(sender).spawn();
    let pool = outbox.sqlite_pool().expect("sqlite").clone();
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await
        .expect("count");
    for i in have..count {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        sqlx::query("INSERT INTO orders (note) VALUES ($1)")
            .bind(format!("order {i}"))
            .execute(&mut *tx)
            .await
            .expect("order");
        let id = outbox
            .enqueue(&mut tx, TOPIC, format!("order {i}"))
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        outbox.notify();
        println!("committed {}", id.seq);
        // An order every few milliseconds (a paced workload, so that the
        // parent's kills land mid-stream rather than after the last row).
        tokio::time::sleep(Duration::from_millis(PRODUCER_PACE_MS)).await;
    }
    std::future::pending::<()>().await;
}

/// A running child and the numbers it printed.
pub struct Child {
    pub name: String,
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<u64>,
    pub seen: u64,
}

/// Starts `kind` (`tx`, `memory` or `producer`) against `db` and `broker`.
pub fn spawn(name: &str, kind: &str, db: &str, broker: &str, count: u64) -> Child {
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env("MQ_INBOX_CHILD", kind)
        .env("MQ_INBOX_CHILD_DB", db)
        .env("MQ_INBOX_CHILD_BROKER", broker)
        .env("MQ_INBOX_CHILD_COUNT", count.to_string())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (tx, lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            let n = line
                .strip_prefix("handled ")
                .or_else(|| line.strip_prefix("committed "))
                .and_then(|n| n.trim().parse::<u64>().ok());
            if let Some(n) = n {
                let _ = tx.send(n);
            }
        }
    });
    Child {
        name: name.into(),
        child,
        lines,
        seen: 0,
    }
}

impl Child {
    /// Waits until the child printed `n` more events (panics if it exits).
    pub async fn wait_events(&mut self, n: u64) {
        let target = self.seen + n;
        let wait = async {
            while self.seen < target {
                match self.lines.recv().await {
                    Some(_) => self.seen += 1,
                    None => panic!("{} exited early", self.name),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), wait)
            .await
            .unwrap_or_else(|_| panic!("{} made no progress", self.name));
    }

    /// SIGKILL, then reap.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("wait");
        println!("{} killed after {} events ({status})", self.name, self.seen);
    }
}

/// Every ID of `expected` applied exactly once and nothing else: the
/// business table's verdict.
pub async fn check_exactly_once(
    inbox: &Inbox,
    expected: &BTreeSet<MessageId>,
) -> Result<(), String> {
    const Q: &str = "SELECT producer, seq, COUNT(*) FROM applied GROUP BY producer, seq";
    let rows: Vec<(i64, i64, i64)> = match (inbox.sqlite_pool(), inbox.pg_pool()) {
        (Some(p), _) => sqlx::query_as(Q).fetch_all(p).await,
        (_, Some(p)) => sqlx::query_as(Q).fetch_all(p).await,
        _ => unreachable!("an inbox has a pool"),
    }
    .map_err(|e| e.to_string())?;
    let applied: BTreeMap<MessageId, i64> = rows
        .into_iter()
        .map(|(p, s, n)| (MessageId::new(p as u64, s as u64), n))
        .collect();
    let twice: Vec<_> = applied.iter().filter(|(_, &n)| n > 1).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !applied.contains_key(id))
        .collect();
    let extra: Vec<_> = applied.keys().filter(|id| !expected.contains(id)).collect();
    if twice.is_empty() && missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} applied more than once (first {:?}), {} missing (first {:?}), {} unexpected",
            twice.len(),
            twice.first(),
            missing.len(),
            missing.first(),
            extra.len()
        ))
    }
}
