//! Shared by the JetStream suites (`jetstream.rs`, `jetstream_differences.rs`):
//! a 3-node NATS cluster with a gateway on it, and a raw-frame peer.

#![allow(dead_code)] // each suite uses its own part

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_e2e::nats::NatsCluster;
use mq_protocol::{
    Codec, Frame, Headers, Hello, Message, MessageId, Reply, ReplyStatus, Role, Subscribe,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Fixture {
    pub gateway: Gateway,
    pub js: async_nats::jetstream::Context,
    pub stream: String,
    pub _cluster: NatsCluster,
}

pub fn config() -> BrokerConfig {
    let mut c = BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        seed: Some(1),
        ..BrokerConfig::default()
    };
    c.redelivery.initial = Duration::from_millis(50);
    c.redelivery.max = Duration::from_millis(200);
    c
}

pub fn js_config(cluster: &NatsCluster) -> JetStreamConfig {
    // ack_wait long: every redelivery a test sees must come from a nak
    // (nack, close), not from the ack timer, unless the test says so.
    JetStreamConfig::new(cluster.urls()).ack_wait(Duration::from_secs(60))
}

pub async fn fixture_with(
    broker: BrokerConfig,
    tune: impl FnOnce(JetStreamConfig) -> JetStreamConfig,
) -> Fixture {
    let cluster = match NatsCluster::start(3).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let js = tune(js_config(&cluster));
    let stream = js.stream.clone();
    let gateway = match Gateway::start(broker, js).await {
        Ok(g) => g,
        Err(e) => panic!("gateway did not start: {e}"),
    };
    let client = cluster.client().await.expect("test client connects");
    Fixture {
        gateway,
        js: async_nats::jetstream::new(client),
        stream,
        _cluster: cluster,
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(config(), |j| j).await
}

impl Fixture {
    pub async fn stored(&self, stream: &str) -> u64 {
        let mut s = self.js.get_stream(stream).await.expect("stream");
        s.info().await.expect("stream info").state.messages
    }

    /// Polls the stream's message count until it is `n` (deadline WAIT).
    pub async fn wait_stored(&self, stream: &str, n: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.stored(stream).await;
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stream {stream} holds {now} messages, expected {n}"
            );
            // Interest-based removal is asynchronous in JetStream: there is
            // no event to wait on, only its state to poll.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub struct Peer {
    pub io: Framed<TcpStream, Codec>,
}

impl Peer {
    pub async fn connect(addr: SocketAddr, role: Role) -> Peer {
        let (p, f) = Peer::hello(addr, Hello::new(role, "test")).await;
        assert!(
            matches!(f, Frame::Welcome(_)),
            "expected Welcome, got {f:?}"
        );
        p
    }

    pub async fn hello(addr: SocketAddr, hello: Hello) -> (Peer, Frame) {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut p = Peer {
            io: Framed::new(tcp, Codec::default()),
        };
        p.send(Frame::Hello(hello)).await;
        let f = p.recv().await.expect("answer to Hello");
        (p, f)
    }

    pub async fn send(&mut self, f: Frame) {
        self.io.send(f).await.expect("send");
    }

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

pub fn stored(r: &Reply) -> bool {
    r.status == ReplyStatus::Stored
}
