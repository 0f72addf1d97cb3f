//! Throughput of one sender against the mock broker over loopback TCP, at a
//! window of 1000 messages. A benchmark, not a test: it prints msgs/s and
//! asserts nothing about speed.
//!
//! `cargo bench -p mq-client-sender --bench throughput [-- <messages> <payload bytes> [fake]]`
//!
//! With `fake`, the broker is a minimal in-process echo of `Reply(Stored)`
//! (no store, no dedup), to measure the sender's own cost.

use std::time::{Duration, Instant};

use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(300_000);
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = args.get(2).is_some_and(|a| a == "fake");
    rt.block_on(run(n, size, fake));
}

/// Answers every `Message` with `Reply(Stored)`, writing replies in batches.
async fn fake_broker() -> std::net::SocketAddr {
    use futures::{SinkExt, StreamExt};
    use mq_protocol::{Codec, Frame, Reply, ReplyStatus, Welcome};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let mut io = tokio_util::codec::Framed::new(tcp, Codec::default());
                while let Some(Ok(frame)) = io.next().await {
                    let out = match frame {
                        Frame::Hello(_) => Frame::Welcome(Welcome {
                            version: 1,
                            max_frame_size: 1 << 20,
                            heartbeat_ms: 0,
                            server_name: "fake".into(),
                            max_message_size: None,
                        }),
                        Frame::Message(m) => Frame::Reply(Reply {
                            id: m.id,
                            attempt: m.attempt,
                            status: ReplyStatus::Stored,
                        }),
                        _ => continue,
                    };
                    if io.feed(out).await.is_err() {
                        return;
                    }
                    // Flush only when no more input is buffered.
                    if io.read_buffer().len() < 4 && SinkExt::<Frame>::flush(&mut io).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn run(n: usize, size: usize, fake: bool) {
    let addr_fake = if fake {
        Some(fake_broker().await)
    } else {
        None
    };
    let broker = MockBroker::start(BrokerConfig {
        record_landings: false,
        max_stored_messages: 10_000_000,
        max_stored_bytes: 1 << 34,
        ..BrokerConfig::default()
    })
    .await
    .expect("broker");
    let cfg = SenderConfig::new(addr_fake.unwrap_or(broker.addr()).to_string())
        .max_in_flight(1000)
        .send_timeout(Some(Duration::from_secs(60)));
    let sender = Sender::connect(cfg).await.expect("connect");
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let waiter = tokio::spawn(async move {
        let mut ok = 0usize;
        while let Some(p) = rx.recv().await {
            let p: mq_client_sender::PendingSend = p;
            if p.await.is_ok() {
                ok += 1;
            }
        }
        ok
    });
    let t0 = Instant::now();
    for _ in 0..n {
        let p = sender
            .enqueue(OutgoingMessage::new("bench", payload.clone()))
            .await
            .expect("enqueue");
        let _ = tx.send(p);
    }
    drop(tx);
    let ok = waiter.await.unwrap_or(0);
    let dt = t0.elapsed();
    println!(
        "{n} messages of {size} B, window 1000: {ok} confirmed in {dt:?} = {:.0} msgs/s",
        n as f64 / dt.as_secs_f64()
    );
    println!("sender {:?}", sender.stats());
    sender.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
}
