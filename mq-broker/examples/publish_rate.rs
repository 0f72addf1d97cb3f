//! Rough publish-with-confirm rate through the broker over loopback TCP:
//! `cargo run --release -p mq-broker --example publish_rate -- [messages] [window]`.
//! A sanity check of the broker's hot path, not a benchmark with statistics.

use std::time::Instant;

use futures::{SinkExt, StreamExt};
use mq_broker::{Broker, BrokerConfig};
use mq_protocol::{Codec, Frame, Headers, Hello, Message, MessageId, Role};
use tokio_util::codec::Framed;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let window: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let broker = Broker::start(BrokerConfig {
        record_landings: false,
        max_stored_messages: usize::MAX,
        max_stored_bytes: usize::MAX,
        ..BrokerConfig::default()
    })
    .await?;
    let tcp = tokio::net::TcpStream::connect(broker.addr()).await?;
    tcp.set_nodelay(true)?;
    let (mut tx, mut rx) = Framed::new(tcp, Codec::default()).split();
    tx.send(Frame::Hello(Hello::new(Role::Sender, "rate")))
        .await?;
    let _welcome = rx.next().await;
    let payload = bytes::Bytes::from(vec![7u8; 100]);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while sent < total {
            let m = Message {
                id: MessageId::new(1, sent),
                attempt: 1,
                topic: "bench".into(),
                headers: Headers::new(),
                payload: payload.clone(),
            };
            tx.feed(Frame::Message(m)).await?;
            sent += 1;
            if sent.is_multiple_of(64) {
                tx.flush().await?;
            }
        }
        tx.flush().await?;
        Ok::<_, mq_protocol::ProtocolError>(tx)
    });
    let _ = window; // the writer runs free; TCP buffers bound the window
    let mut replies = 0u64;
    while replies < total {
        match rx.next().await {
            Some(Ok(Frame::Reply(_))) => replies += 1,
            Some(Ok(_)) => {}
            other => return Err(format!("connection ended: {other:?}").into()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _tx = writer.await??;
    println!(
        "{total} messages confirmed in {secs:.2} s: {:.0} msgs/s",
        total as f64 / secs
    );
    println!("{:?}", broker.stats());
    Ok(())
}
