//! Rough end-to-end rate through the broker over loopback TCP: one sender
//! publishing, one receiver acking every delivery and granting credit back
//! in batches.
//! `cargo run --release -p mq-broker --example deliver_rate -- [messages] [credit]`.
//! A sanity check of the broker's hot paths, not a benchmark with statistics.

use std::time::Instant;

use futures::{SinkExt, StreamExt};
use mq_broker::{Broker, BrokerConfig};
use mq_protocol::{Ack, Codec, Credit, Frame, Headers, Hello, Message, MessageId, Role, Subscribe};
use tokio_util::codec::Framed;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let credit: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let broker = Broker::start(BrokerConfig {
        record_landings: false,
        ..BrokerConfig::default()
    })
    .await?;

    let tcp = tokio::net::TcpStream::connect(broker.addr()).await?;
    tcp.set_nodelay(true)?;
    let mut recv = Framed::new(tcp, Codec::default());
    recv.send(Frame::Hello(Hello::new(Role::Receiver, "rate")))
        .await?;
    let _welcome = recv.next().await;
    let sub = Subscribe {
        sub_id: 1,
        credit,
        topic: "bench".into(),
        group: "g".into(),
    };
    recv.send(Frame::Subscribe(sub)).await?;
    let _ok = recv.next().await;

    let tcp = tokio::net::TcpStream::connect(broker.addr()).await?;
    tcp.set_nodelay(true)?;
    let (mut tx, mut rx) = Framed::new(tcp, Codec::default()).split();
    tx.send(Frame::Hello(Hello::new(Role::Sender, "rate")))
        .await?;
    let _welcome = rx.next().await;

    let start = Instant::now();
    let payload = bytes::Bytes::from(vec![7u8; 100]);
    tokio::spawn(async move {
        for seq in 0..total {
            let m = Message {
                id: MessageId::new(1, seq),
                attempt: 1,
                topic: "bench".into(),
                headers: Headers::new(),
                payload: payload.clone(),
            };
            tx.feed(Frame::Message(m)).await?;
            if seq % 64 == 63 {
                tx.flush().await?;
            }
        }
        tx.flush().await?;
        Ok::<_, mq_protocol::ProtocolError>(())
    });
    tokio::spawn(async move {
        let mut replies = 0;
        while replies < total {
            match rx.next().await {
                Some(Ok(Frame::Reply(_))) => replies += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    });
    let (mut rtx, mut rrx) = recv.split();
    let mut got = 0u64;
    let mut unreturned = 0u32;
    while got < total {
        match rrx.next().await {
            Some(Ok(Frame::Deliver(d))) => {
                got += 1;
                rtx.feed(Frame::Ack(Ack {
                    sub_id: 1,
                    id: d.id,
                }))
                .await?;
                unreturned += 1;
                if unreturned >= credit / 4 {
                    rtx.feed(Frame::Credit(Credit {
                        sub_id: 1,
                        credit: unreturned,
                    }))
                    .await?;
                    rtx.flush().await?;
                    unreturned = 0;
                }
            }
            Some(Ok(_)) => {}
            other => return Err(format!("receiver ended: {other:?}").into()),
        }
    }
    rtx.flush().await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} messages published, delivered and acked in {secs:.2} s: {:.0} msgs/s",
        total as f64 / secs
    );
    let s = broker
        .wait_for(std::time::Duration::from_secs(10), |s| {
            s.messages_deleted == total
        })
        .await;
    println!(
        "{:?}",
        s.map(|s| (s.messages_deleted, s.stored_messages, s.redeliveries_sent))
    );
    Ok(())
}
