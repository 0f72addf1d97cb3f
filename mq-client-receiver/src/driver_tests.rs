//! Driver tests: paused time over `tokio::io::duplex`, against a scripted
//! fake broker that speaks raw frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_protocol::{Codec, Deliver, Frame, Headers, MessageId, Pong, SubscribeOk, Welcome};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::Framed;

use crate::{
    AckMode, Delivery, HandlerError, MemoryDedupStore, ReceiverBuilder, ReceiverConfig,
    RecvCallback,
};
use mq_conn::{BoxIo, SharedConnector as Connector};

type Peer = Framed<DuplexStream, Codec>;
const WAIT: Duration = Duration::from_secs(60);

/// A connector whose every connection's far end is handed to the test.
fn pipe_connector() -> (Connector, mpsc::UnboundedReceiver<Peer>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let c: Connector = Arc::new(mq_conn::from_fn(move |_addr: String| {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let _ = tx.send(Framed::new(server, Codec::default()));
        async move { Ok(Box::new(client) as BoxIo) }
    }));
    (c, rx)
}

fn config(prefetch: u32, concurrency: usize, mode: AckMode) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec!["fake:1".into()])
        .topic("t")
        .group("g")
        .prefetch(prefetch)
        .max_concurrency(concurrency)
        .ack_mode(mode)
        .seed(Some(7))
}

async fn next(peer: &mut Peer) -> Frame {
    match tokio::time::timeout(WAIT, peer.next()).await {
        Ok(Some(Ok(f))) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Accepts the next connection and completes hello and subscribe.
async fn accept(conns: &mut mpsc::UnboundedReceiver<Peer>, heartbeat_ms: u32) -> (Peer, u32) {
    let mut peer = tokio::time::timeout(WAIT, conns.recv())
        .await
        .ok()
        .flatten()
        .expect("a connection");
    assert!(matches!(next(&mut peer).await, Frame::Hello(_)));
    peer.send(Frame::Welcome(Welcome {
        version: 1,
        max_frame_size: 1 << 20,
        heartbeat_ms,
        server_name: "fake".into(),
        max_message_size: None,
    }))
    .await
    .unwrap();
    let Frame::Subscribe(s) = next(&mut peer).await else {
        panic!("expected Subscribe")
    };
    peer.send(Frame::SubscribeOk(SubscribeOk { sub_id: s.sub_id }))
        .await
        .unwrap();
    (peer, s.credit)
}

fn deliver(seq: u64, attempt: u32) -> Frame {
    Frame::Deliver(Deliver {
        sub_id: 1,
        id: MessageId::new(9, seq),
        delivery_attempt: attempt,
        topic: "t".into(),
        headers: Headers::new(),
        payload: format!("m{seq}").into(),
    })
}

/// Reads frames until `want` settlements (Ack/Nack) arrived; returns them
/// and the credit granted meanwhile. Pings are answered.
async fn settlements(peer: &mut Peer, want: usize) -> (Vec<Frame>, u32) {
    let mut got = Vec::new();
    let mut credit = 0;
    while got.len() < want {
        match next(peer).await {
            f @ (Frame::Ack(_) | Frame::Nack(_)) => got.push(f),
            Frame::Credit(c) => credit += c.credit,
            Frame::Ping(p) => peer
                .send(Frame::Pong(Pong { nonce: p.nonce }))
                .await
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    (got, credit)
}

/// Reads until `want` credit arrived (settlements are not expected).
async fn credit(peer: &mut Peer, want: u32) {
    let mut got = 0;
    while got < want {
        match next(peer).await {
            Frame::Credit(c) => got += c.credit,
            Frame::Ping(p) => peer
                .send(Frame::Pong(Pong { nonce: p.nonce }))
                .await
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, want);
}

async fn start<H: RecvCallback>(
    cfg: ReceiverConfig,
    h: H,
    hb: u32,
) -> (crate::Receiver, Peer, mpsc::UnboundedReceiver<Peer>) {
    let (c, mut conns) = pipe_connector();
    let (r, (peer, credit)) = tokio::join!(
        ReceiverBuilder::new(cfg.clone()).connector(c).connect(h),
        accept(&mut conns, hb)
    );
    assert_eq!(credit, cfg.prefetch);
    (r.unwrap(), peer, conns)
}

fn counting_ok(calls: Arc<AtomicUsize>) -> impl RecvCallback {
    move |_d: Delivery| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn credit_is_granted_back_as_deliveries_finish() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, mut peer, _conns) =
        start(config(8, 4, AckMode::Auto), counting_ok(calls.clone()), 0).await;
    for seq in 1..=8 {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    let (acks, mut granted) = settlements(&mut peer, 8).await;
    assert!(acks.iter().all(|f| matches!(f, Frame::Ack(_))));
    // Whatever is still owed is flushed within CREDIT_FLUSH_DELAY.
    if granted < 8 {
        credit(&mut peer, 8 - granted).await;
        granted = 8;
    }
    assert_eq!(granted, 8);
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    let s = r.stats();
    assert_eq!((s.delivered, s.handled, s.acked), (8, 8, 8));
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn handler_error_nacks_and_never_acks() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let h = move |d: Delivery| {
        let calls = c2.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if d.delivery_attempt() == 1 {
                Err(HandlerError::new("first try fails").retry_after(Duration::from_millis(250)))
            } else {
                Ok(())
            }
        }
    };
    let (r, mut peer, _conns) = start(config(4, 1, AckMode::Auto), h, 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    match &f[0] {
        Frame::Nack(n) => {
            assert_eq!(n.id, MessageId::new(9, 1));
            assert_eq!(n.delay_ms, 250);
        }
        other => panic!("expected Nack, got {other:?}"),
    }
    // The broker redelivers; this time it succeeds and is acked.
    peer.send(deliver(1, 2)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 1)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let s = r.stats();
    assert_eq!((s.handler_errors, s.nacked, s.acked), (1, 1, 1));
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn panicking_handler_is_nacked() {
    let h = |d: Delivery| async move {
        if d.delivery_attempt() < 10 {
            panic!("boom");
        }
        Ok::<(), HandlerError>(())
    };
    let (r, mut peer, _conns) = start(config(4, 1, AckMode::Auto), h, 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Nack(n) if n.delay_ms == 0));
    assert_eq!(r.stats().handler_errors, 1);
    r.close(Duration::from_secs(1)).await.unwrap();
}

/// A handler that blocks until released, counting calls and the most
/// calls running at once.
struct Gated {
    calls: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    started: Notify,
    release: Notify,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            started: Notify::new(),
            release: Notify::new(),
        })
    }

    fn handler(self: &Arc<Self>) -> impl RecvCallback {
        let g = self.clone();
        move |_d: Delivery| {
            let g = g.clone();
            async move {
                g.calls.fetch_add(1, Ordering::SeqCst);
                let now = g.running.fetch_add(1, Ordering::SeqCst) + 1;
                g.max_running.fetch_max(now, Ordering::SeqCst);
                g.started.notify_one();
                g.release.notified().await;
                g.running.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_during_running_handler_is_one_call_acked_once() {
    let g = Gated::new();
    let (r, mut peer, _conns) = start(config(4, 2, AckMode::Auto), g.handler(), 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    g.started.notified().await;
    peer.send(deliver(1, 2)).await.unwrap(); // e.g. the broker's redelivery timer
    peer.send(deliver(1, 2)).await.unwrap(); // and a duplicated frame
                                             // Let the driver read them while the handler is still blocked.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(g.calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.stats().duplicates_suppressed, 2);
    g.release.notify_one();
    let (f, granted) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 1)));
    // Credit comes back for the two deliveries the broker charged (attempts
    // 1 and 2), not for the transport copy of attempt 2; nothing else is
    // settled.
    credit(&mut peer, 2 - granted).await;
    // After success, a later copy is acked without reaching the handler.
    peer.send(deliver(1, 3)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    assert_eq!(g.calls.load(Ordering::SeqCst), 1);
    let s = r.stats();
    assert_eq!((s.delivered, s.handled, s.duplicates_suppressed), (4, 1, 3));
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_by_the_semaphore() {
    let g = Gated::new();
    let (r, mut peer, _conns) = start(config(8, 2, AckMode::Auto), g.handler(), 0).await;
    for seq in 1..=6 {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    for _ in 0..6 {
        g.started.notified().await;
        assert!(g.running.load(Ordering::SeqCst) <= 2);
        g.release.notify_one();
    }
    let (acks, _) = settlements(&mut peer, 6).await;
    assert_eq!(acks.len(), 6);
    assert_eq!(g.max_running.load(Ordering::SeqCst), 2);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reconnect_dedupes_what_comes_back() {
    let g = Gated::new();
    let store = Arc::new(MemoryDedupStore::default());
    let (c, mut conns) = pipe_connector();
    let cfg = config(4, 2, AckMode::Auto);
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .dedup_store(store.clone())
            .connector(c)
            .connect(g.handler()),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    // Message 1 is processed and acked; message 2's handler is still running
    // when the connection drops.
    peer.send(deliver(1, 1)).await.unwrap();
    g.started.notified().await;
    g.release.notify_one();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    peer.send(deliver(2, 1)).await.unwrap();
    g.started.notified().await;
    drop(peer);
    // The receiver reconnects and resubscribes; the broker redelivers both.
    let (mut peer, credit_given) = accept(&mut conns, 0).await;
    assert_eq!(credit_given, 4);
    peer.send(deliver(1, 2)).await.unwrap();
    peer.send(deliver(2, 2)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 1)));
    g.release.notify_one();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 2)));
    assert_eq!(g.calls.load(Ordering::SeqCst), 2);
    let s = r.stats();
    assert_eq!((s.reconnects, s.duplicates_suppressed, s.acked), (1, 2, 3));
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeat_pings_when_idle_and_reconnects_after_silence() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, mut peer, mut conns) =
        start(config(4, 1, AckMode::Auto), counting_ok(calls), 1000).await;
    let t0 = tokio::time::Instant::now();
    assert!(matches!(next(&mut peer).await, Frame::Ping(_)));
    assert!(t0.elapsed() >= Duration::from_millis(1000));
    // Stay silent: after three intervals the receiver says why and gives up.
    loop {
        match next(&mut peer).await {
            Frame::Ping(_) => {}
            Frame::Close(c) => {
                assert_eq!(c.code, mq_protocol::ErrorCode::HEARTBEAT_TIMEOUT);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(3000));
    let (mut peer2, _) = accept(&mut conns, 1000).await;
    assert!(t0.elapsed() >= Duration::from_millis(3000));
    // The new connection works: a delivery on it is handled and acked.
    peer2.send(deliver(1, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer2, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    assert_eq!(r.stats().reconnects, 1);
    drop(peer);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stream_manual_ack_nack_and_drop() {
    let (c, mut conns) = pipe_connector();
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(config(4, 1, AckMode::Auto))
            .connector(c)
            .connect_stream(),
        accept(&mut conns, 0)
    );
    let (r, mut deliveries) = r.unwrap();
    for seq in 1..=3 {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    let d1 = deliveries.next().await.unwrap();
    let d2 = deliveries.next().await.unwrap();
    let d3 = deliveries.next().await.unwrap();
    assert_eq!(d1.payload().as_ref(), b"m1");
    d1.ack().await.unwrap();
    d2.nack(Some(Duration::from_secs(2))).await.unwrap();
    drop(d3);
    let (f, _) = settlements(&mut peer, 3).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id.seq == 1));
    assert!(matches!(&f[1], Frame::Nack(n) if n.id.seq == 2 && n.delay_ms == 2000));
    assert!(matches!(&f[2], Frame::Nack(n) if n.id.seq == 3 && n.delay_ms == 0));
    let s = r.stats();
    assert_eq!((s.acked, s.nacked), (1, 2));
    r.close(Duration::from_secs(1)).await.unwrap();
    assert!(deliveries.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn auto_mode_refuses_manual_ack_and_shutdown_waits_for_handlers() {
    let g = Gated::new();
    let (r, mut peer, _conns) = start(config(4, 2, AckMode::Auto), g.handler(), 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    g.started.notified().await;
    let g2 = g.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        g2.release.notify_one();
    });
    // Shutdown waits for the running handler and acks its success.
    let stop = tokio::spawn(r.close(Duration::from_secs(5)));
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    assert!(matches!(next(&mut peer).await, Frame::Close(_)));
    stop.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_abandons_without_acking() {
    let g = Gated::new();
    let (r, mut peer, _conns) = start(config(4, 2, AckMode::Auto), g.handler(), 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    g.started.notified().await;
    let res = r.close(Duration::from_secs(1)).await;
    assert_eq!(res, Err(crate::RecvError::ShutdownTimeout { abandoned: 1 }));
    // Only the Close; never an Ack.
    assert!(matches!(next(&mut peer).await, Frame::Close(_)));
}

#[tokio::test(start_paused = true)]
async fn garbage_from_the_broker_closes_and_reconnects() {
    use tokio::io::AsyncWriteExt;
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, mut peer, mut conns) =
        start(config(4, 1, AckMode::Auto), counting_ok(calls.clone()), 0).await;
    // Length 1, type 0x7f: an unknown mandatory frame type.
    peer.get_mut().write_all(&[0, 0, 0, 1, 0x7f]).await.unwrap();
    match next(&mut peer).await {
        Frame::Close(c) => assert_eq!(c.code, mq_protocol::ErrorCode::PROTOCOL_ERROR),
        other => panic!("expected Close, got {other:?}"),
    }
    let (mut peer2, _) = accept(&mut conns, 0).await;
    peer2.send(deliver(1, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer2, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn manual_mode_handler_error_nacks_an_unsettled_delivery() {
    // The handler keeps the delivery alive (as if handing it to another
    // task) and fails: the Err nacks with its delay, never acks.
    let kept: Arc<std::sync::Mutex<Vec<Delivery>>> = Arc::default();
    let k = kept.clone();
    let h = move |d: Delivery| {
        let k = k.clone();
        async move {
            k.lock().unwrap().push(d);
            Err::<(), _>(HandlerError::new("no").retry_after(Duration::from_millis(40)))
        }
    };
    let (r, mut peer, _conns) = start(config(4, 1, AckMode::Manual), h, 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Nack(n) if n.delay_ms == 40));
    // A late ack of the already-nacked delivery is refused, not sent.
    let d = kept.lock().unwrap().pop().unwrap();
    assert_eq!(d.ack().await, Err(crate::AckError::AlreadySettled));
    assert_eq!(r.stats().acked, 0);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wire_copy_of_a_settled_delivery_costs_no_credit_and_no_ack() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, mut peer, _conns) =
        start(config(4, 1, AckMode::Auto), counting_ok(calls.clone()), 0).await;
    peer.send(deliver(1, 1)).await.unwrap();
    let (f, granted) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    credit(&mut peer, 1 - granted).await;
    // The same attempt again: a copy. A real redelivery (attempt 2) is
    // acked from dedup with its credit. Only the latter produces frames.
    peer.send(deliver(1, 1)).await.unwrap();
    peer.send(deliver(1, 2)).await.unwrap();
    let (f, granted) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(_)));
    credit(&mut peer, 1 - granted).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let s = r.stats();
    assert_eq!((s.delivered, s.duplicates_suppressed, s.acked), (3, 2, 2));
    r.close(Duration::from_secs(1)).await.unwrap();
    // Nothing else was sent before the Close.
    assert!(matches!(next(&mut peer).await, Frame::Close(_)));
}

#[path = "driver_store_tests.rs"]
mod store_tests;

#[path = "driver_io_tests.rs"]
mod io_tests;

#[path = "driver_conn_tests.rs"]
mod conn_tests;

#[path = "driver_write_tests.rs"]
mod write_tests;
