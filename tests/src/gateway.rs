//! A JetStream gateway (`mq_broker::Gateway`) that can crash like a killed
//! process, for the chaos harness and the failover test.
//!
//! The gateway runs on a tokio runtime of its own. [`CrashableGateway::crash`]
//! shuts that runtime down: every task is dropped where it stands and every
//! socket (its listener, its client connections, its NATS connection) is
//! closed by the OS-level drop, with no `Close` frame written and no
//! delivery returned with a nak. JetStream then redelivers what it held
//! after the consumers' `ack_wait`, as after a SIGKILL. (An orderly
//! [`Gateway::shutdown`] would nak them at once.)
//!
//! # Examples
//!
//! ```no_run
//! # async fn f(urls: Vec<String>) -> Result<(), mq_e2e::HarnessError> {
//! use mq_broker::{BrokerConfig, JetStreamConfig};
//! use mq_e2e::gateway::CrashableGateway;
//! let config = BrokerConfig { listen: ([127, 0, 0, 1], 0).into(), ..BrokerConfig::default() };
//! let gw = CrashableGateway::start(config.clone(), JetStreamConfig::new(urls.clone())).await?;
//! let addr = gw.addr();
//! gw.crash();
//! // A new gateway on the same address, over the same streams.
//! let again = CrashableGateway::start(
//!     BrokerConfig { listen: addr, ..config },
//!     JetStreamConfig::new(urls),
//! )
//! .await?;
//! # drop(again);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use mq_broker::{Gateway, GatewayError, GatewayStats, JetStreamConfig};
use mq_mock_broker::BrokerConfig;

use crate::run::HarnessError;

/// A gateway on its own runtime; see the [module docs](self).
pub struct CrashableGateway {
    rt: Option<tokio::runtime::Runtime>,
    gw: Option<Gateway>,
    addr: SocketAddr,
}

impl CrashableGateway {
    /// Starts a gateway with `config` (its `listen` address: a fixed
    /// address is retried for up to 10 s while a crashed predecessor's
    /// listener is still being closed) on NATS per `js`.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Gateway`] when the runtime or the gateway does not
    /// start.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub async fn start(
        config: BrokerConfig,
        js: JetStreamConfig,
    ) -> Result<CrashableGateway, HarnessError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("mq-e2e-gateway")
                .enable_all()
                .build()
                .map_err(|e| HarnessError::Gateway(format!("runtime: {e}")))?;
            let started = rt
                .spawn(Gateway::start(config.clone(), js.clone()))
                .await
                .map_err(|e| HarnessError::Gateway(format!("start task: {e}")))?;
            match started {
                Ok(gw) => {
                    return Ok(CrashableGateway {
                        addr: gw.addr(),
                        rt: Some(rt),
                        gw: Some(gw),
                    })
                }
                Err(GatewayError::Bind { .. }) if tokio::time::Instant::now() < deadline => {
                    rt.shutdown_background();
                    // The old listener closes when the crashed runtime's
                    // worker drops it; nothing signals that.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    rt.shutdown_background();
                    return Err(HarnessError::Gateway(e.to_string()));
                }
            }
        }
    }

    /// The address clients connect to.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What this gateway did so far.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(gw: &mq_e2e::gateway::CrashableGateway) { println!("{:?}", gw.stats()); }
    /// ```
    pub fn stats(&self) -> GatewayStats {
        self.gw.as_ref().map(Gateway::stats).unwrap_or_default()
    }

    /// Crashes the gateway: see the [module docs](self).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn crash(mut self) {
        self.stop_now();
    }

    /// An orderly shutdown ([`Gateway::shutdown`]), then the runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(gw: mq_e2e::gateway::CrashableGateway) { gw.shutdown().await; }
    /// ```
    pub async fn shutdown(mut self) {
        if let Some(gw) = &self.gw {
            gw.shutdown().await;
        }
        self.stop_now();
    }

    fn stop_now(&mut self) {
        // Stop the tasks first: dropping the `Gateway` alone would start an
        // orderly shutdown (Close frames, deliveries returned).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        self.gw.take();
    }
}

impl Drop for CrashableGateway {
    fn drop(&mut self) {
        self.stop_now();
    }
}
