//! Shared by the JetStream suites (`jetstream.rs`, `jetstream_differences.rs`):
//! a 3-node NATS cluster with a gateway on it, and a raw-frame peer.

#![allow(dead_code)] // each suite uses its own part

use std::time::Duration;

use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_e2e::nats::NatsCluster;
#[allow(unused_imports)] // each suite uses its own part
pub use mq_e2e::peer::{msg, Peer};
use mq_protocol::{Reply, ReplyStatus};

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

pub fn stored(r: &Reply) -> bool {
    r.status == ReplyStatus::Stored
}
