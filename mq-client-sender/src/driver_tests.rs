//! Driver tests: the real driver over `tokio::io::duplex`, paused tokio time,
//! and a fake broker scripted with raw frames through `mq_protocol::Codec`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_protocol::{Backoff, Codec, Frame, Message, MessageId, Pong, Reply, ReplyStatus, Welcome};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::{Sender, SenderConfig};
use mq_conn::{BoxIo, SharedConnector};

#[path = "driver_lazy_tests.rs"]
mod lazy_tests;
#[path = "driver_send_tests.rs"]
mod send_tests;
#[path = "driver_window_tests.rs"]
mod window_tests;

/// The test's side of the fake network: each connect of the sender hands
/// the broker end of a fresh duplex pipe to `accept`.
pub(crate) struct Net {
    rx: mpsc::UnboundedReceiver<DuplexStream>,
    /// While true, connects fail with `ConnectionRefused` (broker down).
    pub(crate) down: Arc<AtomicBool>,
}

pub(crate) fn net() -> (SharedConnector, Net) {
    let (tx, rx) = mpsc::unbounded_channel();
    let down = Arc::new(AtomicBool::new(false));
    let down2 = down.clone();
    let connector: SharedConnector = Arc::new(mq_conn::from_fn(move |_addr: String| {
        let tx = tx.clone();
        let down = down2.clone();
        async move {
            if down.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "fake broker down",
                ));
            }
            let (client, server) = tokio::io::duplex(256 * 1024);
            tx.send(server)
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "test over"))?;
            Ok(Box::new(client) as BoxIo)
        }
    }));
    (connector, Net { rx, down })
}

impl Net {
    /// Accepts the next connection: reads its `Hello`, answers `welcome`.
    pub(crate) async fn accept(&mut self, welcome: Welcome) -> Peer {
        let stream = self.rx.recv().await.expect("sender connects");
        let mut peer = Peer {
            io: Framed::new(stream, Codec::default()),
        };
        match peer.recv().await {
            Some(Frame::Hello(h)) => assert_eq!(h.role, mq_protocol::Role::Sender),
            other => panic!("expected Hello, got {other:?}"),
        }
        peer.send(Frame::Welcome(welcome)).await;
        peer
    }

    /// Accepts the next connection and answers the `Hello` with `frame`.
    pub(crate) async fn accept_with(&mut self, frame: Frame) {
        let stream = self.rx.recv().await.expect("sender connects");
        let mut peer = Peer {
            io: Framed::new(stream, Codec::default()),
        };
        assert!(matches!(peer.recv().await, Some(Frame::Hello(_))));
        peer.send(frame).await;
    }
}

/// The fake broker's end of one connection.
pub(crate) struct Peer {
    io: Framed<DuplexStream, Codec>,
}

impl Peer {
    /// The next frame, `None` at EOF.
    pub(crate) async fn recv(&mut self) -> Option<Frame> {
        match self.io.next().await {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => panic!("sender wrote an invalid frame: {e}"),
            None => None,
        }
    }

    /// The next `Message`, answering any `Ping` on the way.
    pub(crate) async fn recv_msg(&mut self) -> Message {
        loop {
            match self.recv().await {
                Some(Frame::Message(m)) => return m,
                Some(Frame::Ping(p)) => self.send(Frame::Pong(Pong { nonce: p.nonce })).await,
                other => panic!("expected Message, got {other:?}"),
            }
        }
    }

    pub(crate) async fn send(&mut self, frame: Frame) {
        self.io.send(frame).await.expect("write to sender");
    }

    pub(crate) async fn reply(&mut self, m: &Message, status: ReplyStatus) {
        self.reply_id(m.id, m.attempt, status).await;
    }

    pub(crate) async fn reply_id(&mut self, id: MessageId, attempt: u32, status: ReplyStatus) {
        self.send(Frame::Reply(Reply {
            id,
            attempt,
            status,
        }))
        .await;
    }
}

pub(crate) fn welcome(heartbeat_ms: u32, max_frame_size: u32) -> Welcome {
    Welcome {
        version: mq_protocol::PROTOCOL_VERSION,
        max_frame_size,
        heartbeat_ms,
        server_name: "fake".into(),
        max_message_size: None,
    }
}

/// Retry 1 s, 2 s, 4 s (no jitter), 3 attempts, no total deadline;
/// reconnect 100 ms ×2 up to 1 s (no jitter).
pub(crate) fn config() -> SenderConfig {
    SenderConfig::default()
        .addresses(vec!["fake:1".into()])
        .producer_id(Some(0xabc))
        .retry(Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.0,
        })
        .max_attempts(3)
        .send_timeout(None)
        .reconnect(Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            jitter: 0.0,
        })
        .seed(Some(1))
}

/// Connects a sender to a fresh fake broker.
pub(crate) async fn start(cfg: SenderConfig, w: Welcome) -> (Sender, Net, Peer) {
    let (connector, mut net) = net();
    let (sender, peer) = tokio::join!(Sender::connect_with(cfg, connector), net.accept(w));
    (sender.expect("connect"), net, peer)
}

pub(crate) fn stored() -> ReplyStatus {
    ReplyStatus::Stored
}

/// The driver task dropped mid-flight (its runtime shut down, so it never
/// runs its shutdown): every awaited message sees `DriverStopped` with its
/// own ID, every callback is called once with it, and the one outcome sent
/// before went to its own future.
#[test]
fn a_dropped_driver_stops_every_future_and_callback_with_its_own_id() {
    use crate::{OutgoingMessage, Receipt, SendError};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (tx, callbacks) = std::sync::mpsc::channel();
    let (pending, first) = rt.block_on(async {
        let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
        let mut pending = Vec::new();
        for i in 0..10u8 {
            let msg = OutgoingMessage::new("t", vec![i]);
            pending.push(sender.enqueue(msg).await.expect("accepted"));
        }
        for _ in 0..3 {
            let tx = tx.clone();
            sender
                .send_with_callback(
                    OutgoingMessage::new("t", "cb"),
                    move |o: Result<Receipt, SendError>| {
                        let _ = tx.send(o);
                    },
                )
                .await
                .expect("accepted");
        }
        let m = peer.recv_msg().await;
        peer.reply(&m, stored()).await;
        let first = pending.remove(0);
        let id = first.id();
        let r = first.await.expect("the first is confirmed");
        assert_eq!(r.id, id);
        (pending, r)
    });
    drop(tx);
    drop(rt);
    assert_eq!(first.attempts, 1);
    for p in pending {
        let id = p.id();
        match futures::executor::block_on(p) {
            Err(SendError::DriverStopped { id: got }) => assert_eq!(got, id),
            other => panic!("{id}: {other:?}"),
        }
    }
    let outcomes: Vec<_> = callbacks.iter().collect();
    assert_eq!(outcomes.len(), 3, "each callback called once");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(SendError::DriverStopped { .. }))),
        "{outcomes:?}"
    );
}
