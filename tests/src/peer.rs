//! A raw-frame test peer over real TCP: speaks `mq-protocol` directly, not
//! through the SDK crates, for the suites that check a broker's answers
//! frame by frame. Shared by this crate's JetStream suites
//! (`tests/js_support`) and mq-broker's behaviour suites
//! (`mq-broker/tests/support`, which includes this file by path, as it does
//! `nats.rs`).
//!
//! # Examples
//!
//! ```no_run
//! # async fn f(addr: std::net::SocketAddr) {
//! use mq_e2e::peer::{msg, Peer};
//! use mq_protocol::{MessageId, ReplyStatus, Role};
//!
//! let mut p = Peer::connect(addr, Role::Sender).await;
//! let reply = p.publish(MessageId::new(1, 1), 1, "orders", b"hi").await;
//! assert_eq!(reply.status, ReplyStatus::Stored);
//! # let _ = msg; }
//! ```
#![allow(dead_code)] // each suite uses its own part

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_protocol::{
    Ack, Codec, Credit, Frame, Headers, Hello, Message, MessageId, Reply, Role, Subscribe,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Longest [`Peer::recv`] waits for a frame before it fails the test: a
/// bound for a broken broker, never reached when the frame comes.
pub const RECV_WAIT: Duration = Duration::from_secs(20);

/// One raw-frame connection.
pub struct Peer {
    /// The framed socket, for tests that need to write or read around the
    /// helpers below.
    pub io: Framed<TcpStream, Codec>,
}

impl Peer {
    /// Connects without a handshake.
    pub async fn raw(addr: SocketAddr) -> Peer {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Peer {
            io: Framed::new(tcp, Codec::default()),
        }
    }

    /// Connects, sends `hello`, returns the peer and the answer.
    pub async fn hello(addr: SocketAddr, hello: Hello) -> (Peer, Frame) {
        let mut p = Peer::raw(addr).await;
        p.send(Frame::Hello(hello)).await;
        let f = p.recv().await.expect("answer to Hello");
        (p, f)
    }

    /// Connects as `role` and expects a `Welcome`.
    pub async fn connect(addr: SocketAddr, role: Role) -> Peer {
        let (p, f) = Peer::hello(addr, Hello::new(role, "test")).await;
        assert!(
            matches!(f, Frame::Welcome(_)),
            "expected Welcome, got {f:?}"
        );
        p
    }

    /// Sends one frame.
    pub async fn send(&mut self, f: Frame) {
        self.io.send(f).await.expect("send");
    }

    /// Next frame other than Ping (answered) or Pong; None at EOF or error.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            let f = tokio::time::timeout(RECV_WAIT, self.io.next())
                .await
                .expect("no frame within the wait bound")?
                .ok()?;
            match f {
                Frame::Ping(p) => {
                    let _ = self
                        .io
                        .send(Frame::Pong(mq_protocol::Pong { nonce: p.nonce }))
                        .await;
                }
                Frame::Pong(_) => {}
                f => return Some(f),
            }
        }
    }

    /// Sends a message and returns the broker's `Reply`.
    pub async fn publish(
        &mut self,
        id: MessageId,
        attempt: u32,
        topic: &str,
        payload: &'static [u8],
    ) -> Reply {
        self.send(Frame::Message(msg(id, attempt, topic, payload)))
            .await;
        match self.recv().await {
            Some(Frame::Reply(r)) => r,
            other => panic!("expected Reply, got {other:?}"),
        }
    }

    /// Subscribes and expects `SubscribeOk`.
    pub async fn subscribe(&mut self, sub_id: u32, credit: u32, topic: &str, group: &str) {
        self.send(Frame::Subscribe(Subscribe {
            sub_id,
            credit,
            topic: topic.into(),
            group: group.into(),
        }))
        .await;
        match self.recv().await {
            Some(Frame::SubscribeOk(ok)) => assert_eq!(ok.sub_id, sub_id),
            other => panic!("expected SubscribeOk, got {other:?}"),
        }
    }

    /// Expects the next frame to be a `Deliver`.
    pub async fn deliver(&mut self) -> mq_protocol::Deliver {
        match self.recv().await {
            Some(Frame::Deliver(d)) => d,
            other => panic!("expected Deliver, got {other:?}"),
        }
    }

    /// Acks `id` on `sub_id`.
    pub async fn ack(&mut self, sub_id: u32, id: MessageId) {
        self.send(Frame::Ack(Ack { sub_id, id })).await;
    }

    /// Grants `credit` more deliveries on `sub_id`.
    pub async fn credit(&mut self, sub_id: u32, credit: u32) {
        self.send(Frame::Credit(Credit { sub_id, credit })).await;
    }

    /// Expects the broker to close: a Close frame (returned) then EOF.
    pub async fn expect_close(&mut self) -> mq_protocol::Close {
        match self.recv().await {
            Some(Frame::Close(c)) => c,
            other => panic!("expected Close, got {other:?}"),
        }
    }
}

/// A message without headers.
pub fn msg(id: MessageId, attempt: u32, topic: &str, payload: &'static [u8]) -> Message {
    Message {
        id,
        attempt,
        topic: topic.into(),
        headers: Headers::new(),
        payload: bytes::Bytes::from_static(payload),
    }
}
