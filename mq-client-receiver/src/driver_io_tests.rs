//! Writes never block reads: a broker that stops reading stalls only the
//! receiver's writes.

use tokio::time::Instant;

use super::*;

/// A connector over duplex pipes of only `buf` bytes each way, so a peer
/// that stops reading fills the receiver's direction quickly.
fn tiny_pipe_connector(buf: usize) -> (Connector, mpsc::UnboundedReceiver<Peer>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let c: Connector = Arc::new(mq_conn::from_fn(move |_addr: String| {
        let (client, server) = tokio::io::duplex(buf);
        let _ = tx.send(Framed::new(server, Codec::default()));
        async move { Ok(Box::new(client) as BoxIo) }
    }));
    (c, rx)
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_stops_reading_does_not_stop_deliveries() {
    const N: u64 = 200;
    let (c, mut conns) = tiny_pipe_connector(256);
    let calls = Arc::new(AtomicUsize::new(0));
    let cfg = config(256, 256, AckMode::Auto);
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .connector(c)
            .connect(counting_ok(calls.clone())),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    // The broker writes N deliveries and a ping and reads nothing: the
    // receiver's acks (about 25 bytes each) fill the 256-byte pipe after a
    // dozen, yet it must keep reading, or these sends would block too.
    let sent = tokio::time::timeout(Duration::from_secs(1), async {
        for seq in 1..=N {
            peer.send(deliver(seq, 1)).await.unwrap();
        }
        peer.send(Frame::Ping(mq_protocol::Ping { nonce: 7 }))
            .await
            .unwrap();
        while calls.load(Ordering::SeqCst) < N as usize {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(sent.is_ok(), "reads stalled behind a blocked write");
    assert_eq!(calls.load(Ordering::SeqCst), N as usize);
    // Once the broker reads again, everything queued arrives, in order.
    let mut acks = 0;
    let mut pong = false;
    while acks < N || !pong {
        match next(&mut peer).await {
            Frame::Ack(_) => acks += 1,
            Frame::Pong(p) => {
                assert_eq!(p.nonce, 7);
                pong = true;
            }
            Frame::Credit(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(r.stats().reconnects, 0, "the connection was kept");
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn writes_stalled_past_the_write_limit_drop_the_connection() {
    let (c, mut conns) = tiny_pipe_connector(64);
    let calls = Arc::new(AtomicUsize::new(0));
    let cfg = config(64, 64, AckMode::Auto).connect_timeout(Duration::from_secs(2));
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .connector(c)
            .connect(counting_ok(calls.clone())),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    for seq in 1..=10 {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    let stalled_at = Instant::now();
    // Never read: the receiver gives the connection up after the limit.
    let (_again, _) = accept(&mut conns, 0).await;
    assert!(
        stalled_at.elapsed() >= Duration::from_secs(2),
        "dropped before the write limit: {:?}",
        stalled_at.elapsed()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    drop(peer);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_is_not_a_stuck_one() {
    const N: u64 = 40;
    let (c, mut conns) = tiny_pipe_connector(64);
    let cfg = config(64, 64, AckMode::Auto).connect_timeout(Duration::from_secs(2));
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .connector(c)
            .connect(counting_ok(Default::default())),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    for seq in 1..=N {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    // The broker takes one frame every 500 ms (a read of the 64-byte pipe
    // every 1.5 s at most, an ack being 25 bytes): the acks need ten times
    // the 2 s write limit in all, but the writes keep making progress.
    let started = Instant::now();
    let mut acks = 0;
    while acks < N {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Frame::Ack(_) = next(&mut peer).await {
            acks += 1;
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(N / 2));
    assert!(conns.try_recv().is_err(), "the slow connection was dropped");
    assert_eq!(r.stats().reconnects, 0);
    r.close(Duration::from_secs(1)).await.unwrap();
}
