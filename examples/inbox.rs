//! The whole chain, once each: a producer writes orders and their messages
//! in one transaction (the outbox), the in-process mock broker stores and
//! delivers them, and a consumer writes a charge row and the inbox mark in
//! one transaction per message (the inbox), then acks.
//!
//! ```text
//! cargo run --example inbox                                   # SQLite files in a temp dir
//! cargo run --example inbox -- --database-url postgres://u:pw@127.0.0.1/db
//! ```
//!
//! Halfway through, the consumer is dropped without a clean shutdown and
//! a new one starts on the same inbox: deliveries that were committed but
//! not acked come back and are acked from the inbox without a second
//! charge. At the end it prints the counts and checks each order was
//! charged exactly once.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::SenderConfig;
use mq_inbox::{Inbox, InboxConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};
use mq_outbox::{Outbox, OutboxConfig};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::Notify;

#[derive(Parser, Debug)]
struct Args {
    /// Orders to create.
    #[arg(long, default_value_t = 500)]
    orders: i64,
    /// `postgres://...` for the consumer's database; default: SQLite in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
}

const CHARGES: &str = "CREATE TABLE IF NOT EXISTS example_charges \
    (order_ref TEXT NOT NULL, producer BIGINT NOT NULL, seq BIGINT NOT NULL)";
const CHARGE: &str = "INSERT INTO example_charges (order_ref, producer, seq) VALUES ($1, $2, $3)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let broker = MockBroker::start(BrokerConfig::default()).await?;
    let dir = std::env::temp_dir().join(format!("mq-inbox-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // Producer side: orders + outbox rows, one transaction per order.
    let outbox_url = format!("sqlite:{}", dir.join("orders.db").display());
    let outbox = Outbox::open(outbox_url.as_str(), OutboxConfig::default()).await?;
    let sender =
        mq_outbox::connect_sender(&outbox, SenderConfig::new(broker.addr().to_string())).await?;
    let dispatcher = outbox.dispatcher(sender).spawn();
    let opool = outbox.sqlite_pool().ok_or("outbox on sqlite")?.clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS example_orders (id INTEGER PRIMARY KEY, note TEXT)")
        .execute(&opool)
        .await?;
    for i in 0..args.orders {
        let mut tx = opool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO example_orders (note) VALUES ($1)")
            .bind(format!("order {i}"))
            .execute(&mut *tx)
            .await?;
        outbox
            .enqueue(&mut tx, "orders.created", format!("order {i}"))
            .await?;
        tx.commit().await?;
        outbox.notify();
    }

    // Consumer side: charges + inbox mark, one transaction per delivery.
    let inbox_url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite:{}", dir.join("billing.db").display()),
    };
    let inbox = Inbox::open(inbox_url.as_str(), InboxConfig::default()).await?;
    match (inbox.sqlite_pool(), inbox.pg_pool()) {
        (Some(p), _) => sqlx::query(CHARGES).execute(p).await.map(|_| ())?,
        (_, Some(p)) => sqlx::query(CHARGES).execute(p).await.map(|_| ())?,
        _ => return Err("unknown database".into()),
    }
    let config = ReceiverConfig::default()
        .addresses(vec![broker.addr().to_string()])
        .topic("orders.created")
        .group("billing");
    let progress = Arc::new(Notify::new());

    let first = start_consumer(&inbox, config.clone(), progress.clone()).await?;
    // Let it charge some, then drop it abruptly (no graceful shutdown):
    // its unacked deliveries go back to the broker.
    while first.stats().handled < (args.orders as u64) / 2 {
        progress.notified().await;
    }
    drop(first);
    let second = start_consumer(&inbox, config, progress.clone()).await?;
    broker
        .wait_for(Duration::from_secs(120), |s| {
            s.messages_stored >= args.orders as u64 && s.stored_messages == 0
        })
        .await?;
    let s = second.stats();
    second.close(Duration::from_secs(5)).await?;
    dispatcher.shutdown().await;

    let (rows, distinct): (i64, i64) = {
        let q = "SELECT COUNT(*), COUNT(DISTINCT seq) FROM example_charges";
        match (inbox.sqlite_pool(), inbox.pg_pool()) {
            (Some(p), _) => sqlx::query_as(q).fetch_one(p).await?,
            (_, Some(p)) => sqlx::query_as(q).fetch_one(p).await?,
            _ => return Err("unknown database".into()),
        }
    };
    let c = inbox.counters();
    println!(
        "{}: {} orders, {rows} charges ({distinct} distinct); second consumer: {} handler calls, \
         {} duplicates acked; inbox: {} applied, {} found already applied, {} raced",
        inbox.kind(),
        args.orders,
        s.handled,
        s.duplicates_suppressed,
        c.applied,
        c.found,
        c.raced
    );
    println!("inbox tables: {:?}", inbox.stats().await?);
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if rows != args.orders || distinct != args.orders {
        return Err(format!("expected {} charges, found {rows}", args.orders).into());
    }
    Ok(())
}

async fn start_consumer(
    inbox: &Inbox,
    config: ReceiverConfig,
    progress: Arc<Notify>,
) -> Result<Receiver, Box<dyn std::error::Error>> {
    let r = if inbox.sqlite_pool().is_some() {
        let h = inbox.handler(move |d: Delivery, mut tx: Transaction<'static, Sqlite>| {
            let progress = progress.clone();
            async move {
                sqlx::query(CHARGE)
                    .bind(String::from_utf8_lossy(d.payload()).into_owned())
                    .bind(d.id().producer as i64)
                    .bind(d.id().seq as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                progress.notify_one();
                Ok(tx)
            }
        })?;
        Receiver::connect(config, h).await?
    } else {
        let h = inbox.handler(move |d: Delivery, mut tx: Transaction<'static, Postgres>| {
            let progress = progress.clone();
            async move {
                sqlx::query(CHARGE)
                    .bind(String::from_utf8_lossy(d.payload()).into_owned())
                    .bind(d.id().producer as i64)
                    .bind(d.id().seq as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| HandlerError::new(e.to_string()))?;
                progress.notify_one();
                Ok(tx)
            }
        })?;
        Receiver::connect(config, h).await?
    };
    Ok(r)
}
