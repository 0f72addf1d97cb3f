//! A producer process: sends messages to a broker and reports each outcome.
//!
//! ```text
//! # terminal 1: the broker
//! cargo run -p mq-mock-broker -- --listen 127.0.0.1:7878
//! # terminal 2: a consumer
//! cargo run --example consumer -- --broker 127.0.0.1:7878
//! # terminal 3: this producer
//! cargo run --example producer -- --broker 127.0.0.1:7878 --count 1000
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};

/// Sends `count` messages and waits for every confirm.
#[derive(Parser, Debug)]
#[command(name = "producer")]
struct Args {
    /// Broker address (repeat for fail-over).
    #[arg(long, default_value = "127.0.0.1:7878")]
    broker: Vec<String>,
    /// Topic.
    #[arg(long, default_value = "orders")]
    topic: String,
    /// Messages to send.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Auth token, if the broker requires one.
    #[arg(long)]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = SenderConfig::default()
        .addresses(args.broker.clone())
        .auth_token(args.token.clone())
        .client_name("example-producer");
    let sender = Sender::connect(config).await?;
    println!("producer {:016x} connected", sender.producer_id());
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..args.count {
        let msg = OutgoingMessage::new(args.topic.clone(), format!("order #{i}"));
        // The first await hands over (and waits when the window is full);
        // the returned future resolves on the broker's confirm.
        pending.push(sender.enqueue(msg).await?);
    }
    let (mut ok, mut failed) = (0, 0);
    for p in pending {
        match p.await {
            Ok(r) if r.attempts > 1 => {
                ok += 1;
                println!("{} confirmed after {} attempts", r.id, r.attempts);
            }
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                println!("failed: {e}");
            }
        }
    }
    let report = sender.close(Duration::from_secs(5)).await;
    println!(
        "{ok} confirmed, {failed} failed, {} unresolved, in {:.2?}; {:?}",
        report.unresolved.len(),
        start.elapsed(),
        sender.stats()
    );
    Ok(())
}
