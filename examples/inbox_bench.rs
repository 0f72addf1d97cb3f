//! Handled messages per second through the receiver with each dedup
//! choice, in the same run: the in-memory store (no database), the inbox's
//! transactional handler on SQLite and on Postgres (one transaction per
//! message: a business row and the mark), and the inbox as a plain
//! `DedupStore` on SQLite (a mark transaction after each handler call).
//!
//! ```text
//! cargo run --release --example inbox_bench -- --messages 5000 --runs 5 \
//!     [--database-url postgres://u:pw@127.0.0.1/db]
//! ```
//!
//! Each run publishes `--messages` to a fresh in-process mock broker first,
//! then starts one receiver (prefetch 256, 16 handler calls at once) and
//! times from its start to the last ack the broker received. Prints every
//! run and the median per variant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::future::join_all;
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverBuilder, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_inbox::{Inbox, InboxConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};
use sqlx::{Postgres, Sqlite, Transaction};

#[derive(Parser, Debug)]
struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 5000)]
    messages: u64,
    /// Runs per variant; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Postgres for the `postgres-tx` variant (skipped without it).
    #[arg(long, env = "MQ_TEST_DATABASE_URL")]
    database_url: Option<String>,
}

const BUSINESS: &str = "CREATE TABLE IF NOT EXISTS bench_applied (producer BIGINT, seq BIGINT)";
const APPLY: &str = "INSERT INTO bench_applied (producer, seq) VALUES ($1, $2)";

fn he(e: sqlx::Error) -> HandlerError {
    HandlerError::new(e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut variants = vec!["memory", "sqlite-tx", "sqlite-store"];
    if args.database_url.is_some() {
        variants.push("postgres-tx");
    }
    let mut table = Vec::new();
    for v in &variants {
        let mut rates = Vec::new();
        for run in 0..args.runs {
            let r = one_run(v, &args, run).await?;
            println!("{v} run {run}: {r:.0} msgs/s");
            rates.push(r);
        }
        rates.sort_by(f64::total_cmp);
        table.push((v, rates[rates.len() / 2]));
    }
    println!(
        "\nvariant        median msgs/s ({} messages, {} runs)",
        args.messages, args.runs
    );
    for (v, m) in table {
        println!("{v:<14} {m:>10.0}");
    }
    Ok(())
}

async fn one_run(
    variant: &str,
    args: &Args,
    run: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let broker = MockBroker::start(BrokerConfig {
        record_landings: false,
        ..BrokerConfig::default()
    })
    .await?;
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string())).await?;
    let sends =
        (0..args.messages).map(|i| sender.send(OutgoingMessage::new("bench", format!("m{i}"))));
    for r in join_all(sends).await {
        r?;
    }
    sender.close(Duration::from_secs(5)).await;

    let dir = std::env::temp_dir().join(format!("mq-inbox-bench-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sqlite_url = format!("sqlite:{}", dir.join("bench.db").display());
    let config = ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic("bench")
        .group("g")
        .prefetch(256)
        .max_concurrency(16);
    let mut ic = InboxConfig::default();
    ic.max_connections = 16;
    let inbox = match variant {
        "memory" => None,
        "postgres-tx" => {
            let url = args.database_url.clone().ok_or("no postgres url")?;
            let inbox = Inbox::open(url.as_str(), ic).await?;
            let pool = inbox.pg_pool().ok_or("pg")?;
            sqlx::raw_sql(
                "DROP TABLE IF EXISTS bench_applied; DELETE FROM mq_inbox_ranges; DELETE FROM mq_inbox_producers",
            )
            .execute(pool)
            .await?;
            sqlx::query(BUSINESS).execute(pool).await?;
            Some(inbox)
        }
        _ => {
            let inbox = Inbox::open(sqlite_url.as_str(), ic).await?;
            sqlx::query(BUSINESS)
                .execute(inbox.sqlite_pool().ok_or("sqlite")?)
                .await?;
            Some(inbox)
        }
    };
    let start = Instant::now();
    let receiver: Receiver = match (variant, &inbox) {
        ("memory", _) => {
            Receiver::connect(config, |_d: Delivery| async { Ok::<(), HandlerError>(()) }).await?
        }
        ("sqlite-tx", Some(inbox)) => {
            let h = inbox.handler(
                |d: Delivery, mut tx: Transaction<'static, Sqlite>| async move {
                    sqlx::query(APPLY)
                        .bind(d.id().producer as i64)
                        .bind(d.id().seq as i64)
                        .execute(&mut *tx)
                        .await
                        .map_err(he)?;
                    Ok(tx)
                },
            )?;
            Receiver::connect(config, h).await?
        }
        ("postgres-tx", Some(inbox)) => {
            let h = inbox.handler(
                |d: Delivery, mut tx: Transaction<'static, Postgres>| async move {
                    sqlx::query(APPLY)
                        .bind(d.id().producer as i64)
                        .bind(d.id().seq as i64)
                        .execute(&mut *tx)
                        .await
                        .map_err(he)?;
                    Ok(tx)
                },
            )?;
            Receiver::connect(config, h).await?
        }
        ("sqlite-store", Some(inbox)) => {
            ReceiverBuilder::new(config)
                .dedup_store(Arc::new(inbox.dedup_store()))
                .connect(|_d: Delivery| async { Ok::<(), HandlerError>(()) })
                .await?
        }
        _ => return Err(format!("unknown variant {variant}").into()),
    };
    let n = args.messages;
    broker
        .wait_for(Duration::from_secs(600), |s| {
            s.acks_received >= n && s.stored_messages == 0
        })
        .await?;
    let elapsed = start.elapsed();
    receiver.close(Duration::from_secs(5)).await?;
    broker.shutdown().await;
    if let Some(inbox) = inbox {
        if let Some(p) = inbox.pg_pool() {
            p.close().await;
        }
        if let Some(p) = inbox.sqlite_pool() {
            p.close().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(n as f64 / elapsed.as_secs_f64())
}
