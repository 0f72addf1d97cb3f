//! Acks, nacks and credit that are ready together leave in one write (one
//! system call), and a slow handler holds back no other delivery's ack.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Decoder;

use super::*;

/// Every write the receiver made, as the bytes the transport took.
type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

/// The receiver's end of a duplex pipe, recording each write.
struct Recording {
    io: DuplexStream,
    writes: Writes,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.writes.lock().unwrap().push(buf[..*n].to_vec());
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn recording_connector() -> (Connector, mpsc::UnboundedReceiver<Peer>, Writes) {
    let (tx, rx) = mpsc::unbounded_channel();
    let writes = Writes::default();
    let w = writes.clone();
    let c: Connector = Arc::new(mq_conn::from_fn(move |_addr: String| {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let _ = tx.send(Framed::new(server, Codec::default()));
        let io = Recording {
            io: client,
            writes: w.clone(),
        };
        async move { Ok(Box::new(io) as BoxIo) }
    }));
    (c, rx, writes)
}

/// The frames of one write (a write holds whole frames here: the pipe
/// has room for all of them).
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut codec = Codec::default();
    let mut out = Vec::new();
    while let Ok(Some(f)) = codec.decode(&mut buf) {
        out.push(f);
    }
    assert!(buf.is_empty(), "a write ended inside a frame");
    out
}

async fn until(what: impl Fn() -> bool) {
    while !what() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn acks_ready_together_leave_in_one_write() {
    const N: u64 = 10;
    let (c, mut conns, writes) = recording_connector();
    let g = Gated::new();
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(config(16, 16, AckMode::Auto))
            .connector(c)
            .connect(g.handler()),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    for seq in 1..=N {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    until(|| g.running.load(Ordering::SeqCst) == N as usize).await;
    let before = writes.lock().unwrap().len();
    // Every handler finishes at once: one wake-up of the driver.
    g.release.notify_waiters();
    let (acks, _) = settlements(&mut peer, N as usize).await;
    assert!(acks.iter().all(|f| matches!(f, Frame::Ack(_))));
    let first = frames(&writes.lock().unwrap()[before]);
    let acked = first.iter().filter(|f| matches!(f, Frame::Ack(_))).count();
    assert_eq!(
        acked, N as usize,
        "the first write after the release: {first:?}"
    );
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn manual_acks_sent_together_leave_in_one_write() {
    const N: u64 = 8;
    let (c, mut conns, writes) = recording_connector();
    let (r, (mut peer, _)) = tokio::join!(
        ReceiverBuilder::new(config(16, 16, AckMode::Manual))
            .connector(c)
            .connect_stream(),
        accept(&mut conns, 0)
    );
    let (r, mut stream) = r.unwrap();
    for seq in 1..=N {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..N {
        held.push(stream.recv().await.expect("a delivery"));
    }
    let before = writes.lock().unwrap().len();
    // Settled one after another without yielding: the driver finds them
    // all queued when it next runs.
    let mut settles = Vec::new();
    for (i, d) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            settles.push(tokio::spawn(d.ack()));
        } else {
            settles.push(tokio::spawn(d.nack(None)));
        }
    }
    let (got, _) = settlements(&mut peer, N as usize).await;
    assert_eq!(got.len(), N as usize);
    let first = frames(&writes.lock().unwrap()[before]);
    let settled = first
        .iter()
        .filter(|f| matches!(f, Frame::Ack(_) | Frame::Nack(_)))
        .count();
    assert_eq!(
        settled, N as usize,
        "the first write after settling: {first:?}"
    );
    for s in settles {
        s.await.unwrap().unwrap();
    }
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_holds_back_no_other_ack() {
    let release = Arc::new(Notify::new());
    let r2 = release.clone();
    let h = move |d: Delivery| {
        let release = r2.clone();
        async move {
            if d.id().seq == 1 {
                release.notified().await;
            }
            Ok::<(), HandlerError>(())
        }
    };
    let (r, mut peer, _conns) = start(config(8, 8, AckMode::Auto), h, 0).await;
    for seq in 1..=5 {
        peer.send(deliver(seq, 1)).await.unwrap();
    }
    // 2..=5 are acked while 1 is still running.
    let (acks, _) = settlements(&mut peer, 4).await;
    let ids: Vec<u64> = acks
        .iter()
        .map(|f| match f {
            Frame::Ack(a) => a.id.seq,
            other => panic!("expected Ack, got {other:?}"),
        })
        .collect();
    assert!(!ids.contains(&1), "{ids:?}");
    release.notify_one();
    let (acks, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&acks[0], Frame::Ack(a) if a.id.seq == 1));
    r.close(Duration::from_secs(1)).await.unwrap();
}
