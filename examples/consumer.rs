//! A consumer process: prints every message once and acks it after the
//! handler returns `Ok`. Stop it with Ctrl-C; start it again and nothing is
//! lost (unacked messages come back).
//!
//! ```text
//! cargo run --example consumer -- --broker 127.0.0.1:7878 --topic orders --group billing
//! ```

use std::time::Duration;

use clap::Parser;
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};

/// Subscribes and prints each message.
#[derive(Parser, Debug)]
#[command(name = "consumer")]
struct Args {
    /// Broker address (repeat for fail-over).
    #[arg(long, default_value = "127.0.0.1:7878")]
    broker: Vec<String>,
    /// Topic.
    #[arg(long, default_value = "orders")]
    topic: String,
    /// Consumer group.
    #[arg(long, default_value = "billing")]
    group: String,
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
    let config = ReceiverConfig::default()
        .addresses(args.broker.clone())
        .auth_token(args.token.clone())
        .topic(args.topic.clone())
        .group(args.group.clone())
        .client_name("example-consumer");
    // The RecvCallback: called once per message (duplicates are acked
    // without reaching it); Ok acks, Err brings the message back later.
    let handler = |d: Delivery| async move {
        println!(
            "{} (delivery {}): {}",
            d.id(),
            d.delivery_attempt(),
            String::from_utf8_lossy(d.payload())
        );
        Ok::<(), HandlerError>(())
    };
    let receiver = Receiver::connect(config, handler).await?;
    println!(
        "subscribed to {} as {}; Ctrl-C to stop",
        args.topic, args.group
    );
    tokio::signal::ctrl_c().await?;
    let stats = receiver.stats();
    receiver.close(Duration::from_secs(5)).await?;
    println!("{stats:?}");
    Ok(())
}
