//! The broker a run talks to: the in-process broker (memory or disk
//! journal, its own fault injection), or a JetStream gateway on a NATS
//! server the run starts, behind the fault proxy (`proxy.rs`).

use std::time::Duration;

use mq_broker::JetStreamConfig;
use mq_mock_broker::{BrokerConfig, Faults, MockBroker, RestartMode};

use crate::gateway::CrashableGateway;
use crate::nats::NatsCluster;
use crate::proxy::{FaultProxy, ProxyTls};
use crate::report::BrokerEnd;
use crate::run::{HarnessError, Pki};
use crate::scenario::{Backend, JetStreamBackend};

/// What the run sees of the broker, whichever it is.
pub(crate) enum UnderTest {
    Broker(MockBroker),
    JetStream(Box<JsGateway>),
}

/// Counters of the gateways that ran before the current one.
#[derive(Default, Clone, Copy)]
struct Sums {
    duplicates: u64,
    delivered: u64,
    dead_lettered: u64,
}

impl Sums {
    fn add(&mut self, gw: &CrashableGateway) {
        let s = gw.stats();
        self.duplicates += s.duplicates;
        self.delivered += s.delivered;
        self.dead_lettered += s.dead_lettered;
    }
}

pub(crate) struct JsGateway {
    // Dropped last (fields drop in order): the gateway and the proxy first.
    running: Option<CrashableGateway>,
    proxy: FaultProxy,
    broker: BrokerConfig,
    js: JetStreamConfig,
    past: Sums,
    restarts: u64,
    ctx: async_nats::jetstream::Context,
    cluster: NatsCluster,
}

fn nats_err(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Nats(e.to_string())
}

impl UnderTest {
    pub(crate) async fn start(
        backend: &Backend,
        config: BrokerConfig,
        faults: Faults,
        seed: u64,
        pki: Option<&Pki>,
    ) -> Result<UnderTest, HarnessError> {
        match backend {
            Backend::Broker => Ok(UnderTest::Broker(MockBroker::start(config).await?)),
            Backend::JetStream(j) => Ok(UnderTest::JetStream(Box::new(
                JsGateway::start(j, config, faults, seed, pki).await?,
            ))),
        }
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> String {
        match self {
            UnderTest::Broker(b) => b.addr().to_string(),
            UnderTest::JetStream(j) => j.proxy.addr().to_string(),
        }
    }

    /// A crash and restart keeping the store: the in-process broker's
    /// `RestartMode::KeepStore`, or a new gateway over the same NATS.
    pub(crate) async fn restart(&mut self) -> Result<(), HarnessError> {
        match self {
            UnderTest::Broker(b) => Ok(b.restart(RestartMode::KeepStore).await?),
            UnderTest::JetStream(j) => j.restart().await,
        }
    }

    pub(crate) fn set_faults(&self, f: Faults) {
        match self {
            UnderTest::Broker(b) => b.set_faults(f),
            UnderTest::JetStream(j) => j.proxy.set_faults(f),
        }
    }

    /// Waits until the broker stores nothing (every message acked).
    pub(crate) async fn settle(&self, within: Duration) -> bool {
        match self {
            UnderTest::Broker(b) => b.wait_for(within, |s| s.stored_messages == 0).await.is_ok(),
            UnderTest::JetStream(j) => j.settle(within).await,
        }
    }

    /// What is left at the broker, and what it counted.
    pub(crate) async fn observe(&self) -> BrokerEnd {
        match self {
            UnderTest::Broker(b) => {
                let stats = b.stats();
                let leftovers = b
                    .inspect()
                    .groups
                    .iter()
                    .filter(|g| g.unacked + g.ready + g.waiting != 0)
                    .map(|g| {
                        format!(
                            "group {}/{}: {} ready, {} unacked, {} waiting after the run",
                            g.topic, g.group, g.ready, g.unacked, g.waiting
                        )
                    })
                    .collect();
                BrokerEnd {
                    stored: stats.stored_messages,
                    dead_lettered: stats.dead_lettered,
                    redeliveries: stats.redeliveries_sent,
                    deliveries_sent: None,
                    duplicates_answered: stats.duplicates_answered,
                    leftovers,
                    notes: Vec::new(),
                }
            }
            UnderTest::JetStream(j) => j.observe().await,
        }
    }

    pub(crate) async fn shutdown(self) {
        match self {
            UnderTest::Broker(b) => b.shutdown().await,
            UnderTest::JetStream(mut j) => {
                if let Some(r) = j.running.take() {
                    r.shutdown().await;
                }
            }
        }
    }
}

impl JsGateway {
    async fn start(
        j: &JetStreamBackend,
        broker: BrokerConfig,
        faults: Faults,
        seed: u64,
        pki: Option<&Pki>,
    ) -> Result<JsGateway, HarnessError> {
        let cluster = NatsCluster::start(j.nodes).await.map_err(nats_err)?;
        let js = JetStreamConfig::new(cluster.urls())
            .replicas(j.nodes.min(3))
            .ack_wait(j.ack_wait);
        let broker = BrokerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..broker
        };
        let running = CrashableGateway::start(broker.clone(), js.clone()).await?;
        // Over TLS both legs are TLS: clients to the proxy (which must read
        // the frames to apply faults), the proxy to the gateway's TLS-only
        // listener (every reconnect a new handshake with the gateway).
        let tls = match pki {
            Some(p) => Some(ProxyTls::new(p).map_err(HarnessError::Tls)?),
            None => None,
        };
        let proxy = FaultProxy::start(running.addr(), faults, seed, tls)
            .await
            .map_err(|e| HarnessError::Gateway(format!("fault proxy: {e}")))?;
        let ctx = async_nats::jetstream::new(cluster.client().await.map_err(nats_err)?);
        Ok(JsGateway {
            running: Some(running),
            proxy,
            broker,
            js,
            past: Sums::default(),
            restarts: 0,
            ctx,
            cluster,
        })
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        self.proxy.set_backend(None);
        if let Some(r) = self.running.take() {
            self.past.add(&r);
            r.crash();
        }
        self.proxy.cut_all();
        let r = CrashableGateway::start(self.broker.clone(), self.js.clone()).await?;
        self.proxy.set_backend(Some(r.addr()));
        self.running = Some(r);
        self.restarts += 1;
        Ok(())
    }

    async fn stream_messages(&self, name: &str) -> Result<u64, String> {
        let mut s = self.ctx.get_stream(name).await.map_err(|e| e.to_string())?;
        Ok(s.info().await.map_err(|e| e.to_string())?.state.messages)
    }

    async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.stream_messages(&self.js.stream).await == Ok(0) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // Interest-based removal happens inside JetStream, which
            // signals nothing: its state can only be polled.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sums(&self) -> Sums {
        let mut s = self.past;
        if let Some(r) = &self.running {
            s.add(r);
        }
        s
    }

    async fn observe(&self) -> BrokerEnd {
        let sums = self.sums();
        let mut leftovers = Vec::new();
        let stored = match self.stream_messages(&self.js.stream).await {
            Ok(n) => n,
            Err(e) => {
                leftovers.push(format!("stream {}: no info: {e}", self.js.stream));
                0
            }
        };
        let dlq = format!("{}_DLQ", self.js.stream);
        let dead_in_stream = self.stream_messages(&dlq).await.unwrap_or(0);
        match self.ctx.get_stream(&self.js.stream).await {
            Ok(stream) => {
                let mut consumers = stream.consumers();
                while let Some(c) = futures::StreamExt::next(&mut consumers).await {
                    match c {
                        Ok(c) if c.num_pending + c.num_ack_pending as u64 != 0 => {
                            leftovers.push(format!(
                                "consumer {}: {} pending, {} unacked after the run",
                                c.name, c.num_pending, c.num_ack_pending
                            ))
                        }
                        Ok(_) => {}
                        Err(e) => leftovers.push(format!("consumer list: {e}")),
                    }
                }
            }
            Err(e) => leftovers.push(format!("stream {}: {e}", self.js.stream)),
        }
        let notes = vec![
            format!(
                "JetStream gateway on {} NATS node(s), R{}, ack_wait {:?}; {} gateway restart(s); NATS files in {}",
                self.cluster.urls().len(),
                self.js.replicas,
                self.js.ack_wait,
                self.restarts,
                self.cluster.dir().display()
            ),
            self.proxy.stats().to_string(),
        ];
        BrokerEnd {
            stored,
            dead_lettered: sums.dead_lettered.max(dead_in_stream),
            redeliveries: 0,
            deliveries_sent: Some(sums.delivered),
            duplicates_answered: sums.duplicates,
            leftovers,
            notes,
        }
    }
}
