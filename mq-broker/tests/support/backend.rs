//! The backend a raw-frame suite runs against, chosen by `MQ_TEST_STORAGE`:
//! `memory` (default) or `disk` (the single-node broker, see
//! `support::test_storage`), or `jetstream`: the JetStream gateway
//! (`mq_broker::Gateway`) on a one-node NATS JetStream server started for
//! each test (`tests/src/nats.rs` of mq-e2e; `$NATS_SERVER` or
//! `nats-server` on the `PATH`), stopped when the test's [`TestBroker`] is
//! dropped.
//!
//! Included by path by the suites that run on every backend
//! (`first_half`, `second_half`, `hostile`): one suite, every backend. A
//! test that reads the single node's own state (inspection, counters,
//! landing log), injects its faults, restarts it, or relies on a rule
//! JetStream does not share (store limits, the redelivery schedule) starts
//! with [`skip_on_jetstream!`] and says why; on JetStream it then returns
//! at once, after printing the reason.
#![allow(dead_code)]

#[path = "../../../tests/src/nats.rs"]
mod nats;

use std::net::SocketAddr;

use mq_broker::{Broker, BrokerConfig, Gateway, JetStreamConfig};

/// True when the suites run against the JetStream gateway
/// (`MQ_TEST_STORAGE=jetstream`).
pub fn on_jetstream() -> bool {
    std::env::var("MQ_TEST_STORAGE").as_deref() == Ok("jetstream")
}

/// Returns from the test at once on JetStream, printing why it cannot
/// hold there.
macro_rules! skip_on_jetstream {
    ($why:expr) => {
        if $crate::backend::on_jetstream() {
            eprintln!("skipped on JetStream: {}", $why);
            return;
        }
    };
}
pub(crate) use skip_on_jetstream;

/// A broker under test: the single node, or a gateway with its NATS
/// server. Derefs to the single node's [`Broker`] for its inspection API;
/// on JetStream that panics, naming the fix (a `skip_on_jetstream!`).
pub struct TestBroker {
    local: Option<Broker>,
    gateway: Option<(Gateway, nats::NatsCluster)>,
    addr: SocketAddr,
}

impl TestBroker {
    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Times a connection's output queue reached its bound (the
    /// `output_full` counter of either backend).
    pub fn output_full(&self) -> u64 {
        match (&self.local, &self.gateway) {
            (Some(b), _) => b.stats().output_full,
            (None, Some((g, _))) => g.stats().output_full,
            (None, None) => 0,
        }
    }

    /// `Deliver` frames sent so far (either backend's counter).
    pub fn deliveries(&self) -> u64 {
        match (&self.local, &self.gateway) {
            (Some(b), _) => b.stats().deliveries_sent,
            (None, Some((g, _))) => g.stats().delivered,
            (None, None) => 0,
        }
    }

    /// Waits until a connection's output queue has been full (the
    /// `output_full` counter of either backend) at least `n` times.
    pub async fn wait_output_full(&self, n: u64) {
        if let Some(b) = &self.local {
            b.wait_for(crate::support::WAIT, |s| s.output_full >= n)
                .await
                .expect("the output queue filled");
            return;
        }
        if let Some((g, _)) = &self.gateway {
            // The gateway has no change notification: poll with a deadline.
            let deadline = tokio::time::Instant::now() + crate::support::WAIT;
            while g.stats().output_full < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the output queue never filled: {:?}",
                    g.stats()
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }

    /// The single-node broker, if that is what runs.
    pub fn local(&self) -> Option<&Broker> {
        self.local.as_ref()
    }

    /// Shuts down whichever runs.
    pub async fn shutdown(&self) {
        if let Some(b) = &self.local {
            b.shutdown().await;
        }
        if let Some((g, _)) = &self.gateway {
            g.shutdown().await;
        }
    }
}

impl std::ops::Deref for TestBroker {
    type Target = Broker;

    fn deref(&self) -> &Broker {
        match &self.local {
            Some(b) => b,
            None => panic!(
                "this test reads or drives the single-node broker (inspect, stats, \
                 restart, faults), which the JetStream gateway does not have: start it \
                 with skip_on_jetstream!(\"why\")"
            ),
        }
    }
}

/// Starts the backend `MQ_TEST_STORAGE` names with `config` (seed 1
/// unless set). On JetStream the gateway honours the protocol-level
/// settings (frame and message size, heartbeat, handshake timeout, token,
/// connection limit, max deliveries) and ignores the single node's store,
/// dedup and fault settings.
pub async fn broker(config: BrokerConfig) -> TestBroker {
    if !on_jetstream() {
        let b = crate::support::broker(config).await;
        let addr = b.addr();
        return TestBroker {
            local: Some(b),
            gateway: None,
            addr,
        };
    }
    let cluster = match nats::NatsCluster::start(1).await {
        Ok(c) => c,
        Err(e) => panic!("MQ_TEST_STORAGE=jetstream: {e}"),
    };
    let config = BrokerConfig {
        seed: config.seed.or(Some(1)),
        ..config
    };
    let js = JetStreamConfig::new(cluster.urls()).replicas(1);
    let gw = match Gateway::start(config, js).await {
        Ok(g) => g,
        Err(e) => panic!("gateway did not start: {e}"),
    };
    let addr = gw.addr();
    TestBroker {
        local: None,
        gateway: Some((gw, cluster)),
        addr,
    }
}
