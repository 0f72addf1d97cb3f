//! End-to-end outbox throughput: an in-process mock broker, an outbox on
//! SQLite (temp dir) or Postgres, producers writing business rows plus
//! outbox rows in one transaction each, and one dispatcher.
//!
//! ```text
//! cargo run --release --example outbox -- --rows 5000
//! cargo run --release --example outbox -- --database-url postgres://u:pw@127.0.0.1/db
//! ```
//!
//! Prints rows/s from the first enqueue to the last confirm.

use std::time::{Duration, Instant};

use clap::Parser;
use mq_client_sender::SenderConfig;
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_outbox::{Outbox, OutboxConfig};

#[derive(Parser, Debug)]
struct Args {
    /// Rows to enqueue in total.
    #[arg(long, default_value_t = 5000)]
    rows: usize,
    /// Concurrent producer tasks, each committing one business transaction per row.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Payload bytes per row.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// `postgres://...` to use Postgres; default: SQLite in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let broker = MockBroker::start(BrokerConfig::default()).await?;
    let dir = std::env::temp_dir().join(format!("mq-outbox-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite:{}", dir.join("outbox.db").display()),
    };
    let mut config = OutboxConfig::default();
    config.max_connections = (args.producers as u32 + 4).max(8);
    let outbox = Outbox::open(url.as_str(), config).await?;
    let sender =
        mq_outbox::connect_sender(&outbox, SenderConfig::new(broker.addr().to_string())).await?;
    let dispatcher = outbox.dispatcher(sender).spawn();

    let create =
        "CREATE TABLE IF NOT EXISTS example_orders (id BIGINT PRIMARY KEY, note TEXT NOT NULL)";
    let base = match (outbox.sqlite_pool(), outbox.pg_pool()) {
        (Some(p), _) => {
            sqlx::query(create).execute(p).await?;
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM example_orders")
                .fetch_one(p)
                .await?
        }
        (_, Some(p)) => {
            sqlx::query(create).execute(p).await?;
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM example_orders")
                .fetch_one(p)
                .await?
        }
        _ => return Err("unknown database".into()),
    }
    .unwrap_or(0);
    let before = outbox.stats().await?.confirmed;
    let payload = bytes::Bytes::from(vec![b'x'; args.payload]);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..args.producers {
        let outbox = outbox.clone();
        let payload = payload.clone();
        let rows = args.rows;
        let producers = args.producers;
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < rows {
                let order = base + 1 + i as i64;
                produce(&outbox, order, payload.clone()).await?;
                outbox.notify();
                i += producers;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| e.to_string())?;
    }
    let enqueued = start.elapsed();
    let target = before + args.rows as u64;
    outbox
        .wait_for(Duration::from_secs(600), |s| {
            s.confirmed >= target && s.pending == 0
        })
        .await?;
    let elapsed = start.elapsed();
    dispatcher.shutdown().await;
    let kind = if args.database_url.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    println!(
        "{kind}: {} rows enqueued in {:.2?}, all confirmed after {:.2?}: {:.0} rows/s (broker stored {})",
        args.rows,
        enqueued,
        elapsed,
        args.rows as f64 / elapsed.as_secs_f64(),
        broker.stats().messages_stored
    );
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One business transaction: the order row and its outbox message commit
/// or roll back together.
async fn produce(
    outbox: &Outbox,
    order: i64,
    payload: bytes::Bytes,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let insert = "INSERT INTO example_orders (id, note) VALUES ($1, 'created')";
    if let Some(pool) = outbox.sqlite_pool() {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(insert).bind(order).execute(&mut *tx).await?;
        outbox.enqueue(&mut tx, "orders.created", payload).await?;
        tx.commit().await?;
    } else if let Some(pool) = outbox.pg_pool() {
        let mut tx = pool.begin().await?;
        sqlx::query(insert).bind(order).execute(&mut *tx).await?;
        outbox.enqueue(&mut tx, "orders.created", payload).await?;
        tx.commit().await?;
    }
    Ok(())
}
