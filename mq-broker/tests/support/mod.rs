//! Raw-frame test client over real TCP: speaks `mq-protocol` directly, not
//! through the SDK crates.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_broker::{Broker, BrokerConfig};
use mq_protocol::{
    Ack, Codec, Credit, Frame, Headers, Hello, Message, MessageId, Reply, Role, Subscribe,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Generous bound for anything that should happen "at once" on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Peer {
    pub io: Framed<TcpStream, Codec>,
}

/// The storage the behaviour suites run against: memory, or the journal
/// on disk when `MQ_TEST_STORAGE=disk` (CI runs the suites both ways).
pub fn test_storage() -> mq_broker::Storage {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    match std::env::var("MQ_TEST_STORAGE").as_deref() {
        Ok("disk") => {
            let dir = std::env::temp_dir().join(format!(
                "mq-broker-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            mq_broker::Storage::Disk(mq_broker::DiskStorage::new(dir))
        }
        Ok("memory") | Err(_) => mq_broker::Storage::Memory,
        Ok("jetstream") => panic!(
            "MQ_TEST_STORAGE=jetstream: this suite runs on the single-node broker only \
             (first_half, second_half and hostile run on the gateway too)"
        ),
        Ok(other) => panic!("MQ_TEST_STORAGE={other}: use memory, disk or jetstream"),
    }
}

/// True when the suites run on the disk journal (`MQ_TEST_STORAGE=disk`).
pub fn on_disk() -> bool {
    std::env::var("MQ_TEST_STORAGE").as_deref() == Ok("disk")
}

pub async fn broker(config: BrokerConfig) -> Broker {
    let config = BrokerConfig {
        seed: config.seed.or(Some(1)),
        storage: test_storage(),
        ..config
    };
    match Broker::start(config).await {
        Ok(b) => b,
        Err(e) => panic!("broker did not start: {e}"),
    }
}

impl Peer {
    pub async fn raw(addr: SocketAddr) -> Peer {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Peer {
            io: Framed::new(tcp, Codec::default()),
        }
    }

    pub async fn hello(addr: SocketAddr, hello: Hello) -> (Peer, Frame) {
        let mut p = Peer::raw(addr).await;
        p.send(Frame::Hello(hello)).await;
        let f = p.recv().await.expect("answer to Hello");
        (p, f)
    }

    pub async fn connect(addr: SocketAddr, role: Role) -> Peer {
        let (p, f) = Peer::hello(addr, Hello::new(role, "test")).await;
        assert!(
            matches!(f, Frame::Welcome(_)),
            "expected Welcome, got {f:?}"
        );
        p
    }

    pub async fn send(&mut self, f: Frame) {
        self.io.send(f).await.expect("send");
    }

    /// Next frame other than Ping (answered) or Pong; None at EOF or error.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            let f = tokio::time::timeout(WAIT, self.io.next())
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

    pub async fn deliver(&mut self) -> mq_protocol::Deliver {
        match self.recv().await {
            Some(Frame::Deliver(d)) => d,
            other => panic!("expected Deliver, got {other:?}"),
        }
    }

    pub async fn ack(&mut self, sub_id: u32, id: MessageId) {
        self.send(Frame::Ack(Ack { sub_id, id })).await;
    }

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

pub fn msg(id: MessageId, attempt: u32, topic: &str, payload: &'static [u8]) -> Message {
    Message {
        id,
        attempt,
        topic: topic.into(),
        headers: Headers::new(),
        payload: bytes::Bytes::from_static(payload),
    }
}
