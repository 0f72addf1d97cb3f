//! The JetStream backend: `mq-broker --backend jetstream` as a stateless
//! gateway in front of a NATS JetStream cluster.
//!
//! The gateway speaks PROTOCOL.md to senders and receivers and keeps no
//! state of its own: every message, every group's progress and every dedup
//! ID lives in JetStream, which replicates them with Raft. Any number of
//! gateways can serve the same stream side by side; clients list them all
//! (the SDKs' multi-address failover).
//!
//! # The mapping
//!
//! | our protocol | JetStream |
//! |---|---|
//! | `Message` on topic `T` | publish on `mq.t.{token(T)}` with header `Nats-Msg-Id` = the message ID's text form; body = topic, headers and payload (`envelope.rs`) |
//! | `Reply(Stored)` | a PubAck with `duplicate: false`, and only then |
//! | `Reply(Duplicate)` | a PubAck with `duplicate: true` (the ID is in the stream's dedup window) |
//! | no PubAck (timeout, connection loss, any error) | `Reply(Rejected, BUSY)`: transient, the sender retransmits. An ID whose first publish is still being replicated is answered by JetStream with an error, not `duplicate`; it lands here too. |
//! | stream at `max_messages` / `max_bytes`, or a server out of storage | `Reply(Rejected, STORE_FULL)` (transient) |
//! | group `G` on topic `T` | durable pull consumer `G__{token(G)}__{token(T)}`, filter `mq.t.{token(T)}`, explicit ack, deliver all, `ack_wait`, `max_ack_pending` |
//! | `Subscribe` creating a group past `max_groups_per_topic` / `max_topics` | `SubscribeError(LIMIT_REACHED)`, counted over the stream's `G__` consumers |
//! | `Subscribe(credit)`, `Credit(n)` | pull requests of at most the subscription's remaining credit (≤ 256 at a time); a pulled message uses one credit |
//! | `Deliver.delivery_attempt` | the delivery count of the message's JetStream metadata |
//! | `Ack` | `+ACK` |
//! | `Nack(delay_ms)` | `-NAK` with that delay, or with `redelivery.delay(n)` when 0 |
//! | receiver connection closed | `-NAK` (no delay) of its outstanding deliveries: they return at once |
//! | gateway crash | JetStream redelivers the deliveries it held after `ack_wait` |
//! | dead letter after `max_deliveries` | the `(max_deliveries + 1)`-th delivery is not sent: the gateway publishes a copy to `mq.dlq.{group}.{topic}` (stream `MQ_DLQ`, limits retention) with `Nats-Msg-Id` = `dlq:{consumer}:{id}`, waits for its PubAck, then `+TERM`s it |
//! | delete once every group acked | interest retention |
//!
//! **Streams.** `MQ` (interest retention, file storage, `replicas`,
//! `duplicate_window`, discard new) and `MQ_DLQ` (limits retention). Both
//! are created at start if missing; an existing `MQ` without interest
//! retention, or with a `duplicate_window` not longer than the senders'
//! `send_timeout`, refuses to start.
//!
//! **No group yet.** PROTOCOL.md keeps a message published before its
//! topic has any group for the first group; an interest stream with no
//! consumer on the subject would drop it while still acknowledging the
//! publish. So before its first publish to a topic, a gateway makes sure
//! the topic has a consumer: if no group consumer exists, it creates a
//! *holding consumer* `H__{token(T)}` (durable, explicit ack, never pulled),
//! then looks again and deletes it if a group appeared meanwhile. A new
//! group's consumer (deliver all) is created *before* the holding consumer
//! is deleted, so the held messages always have an interested consumer.
//!
//! **Durability.** `Stored` means JetStream acknowledged the publish: the
//! message is in the stream leader's log and replicated to a majority. On
//! disk only if the NATS servers run with `jetstream { sync_interval:
//! always }`; by default they fsync every two minutes, and a coordinated
//! power loss of a majority can lose acknowledged messages.
//!
//! # Layout
//!
//! * `config`: [`JetStreamConfig`].
//! * `setup`: connection, `max_payload` check, streams.
//! * `names`: topic and group names as subject tokens and consumer names.
//! * `envelope`: the body of a JetStream message.
//! * `conn`: one client connection: handshake, heartbeat, writer.
//! * `out`: a connection's output queue, bounded by `max_output_bytes`.
//! * `publish`: the first half (Message → publish → Reply) and the
//!   holding consumers.
//! * `consume`: the second half (a subscription's consumer, pulls,
//!   ack/nack, dead letters).

mod config;
mod conn;
mod consume;
mod envelope;
mod names;
mod out;
mod publish;
mod setup;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::JetStreamConfig;

use crate::BrokerConfig;

/// Why a gateway could not start.
///
/// # Examples
///
/// ```
/// let e = mq_broker::GatewayError::Config("bad".into());
/// assert!(e.to_string().contains("bad"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A setting is invalid, or the cluster does not fit it (a too small
    /// `max_payload`, a stream with other retention): fix the setting.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// NATS could not be reached or JetStream did not answer: check the
    /// URLs and that the cluster has JetStream enabled and a meta leader.
    #[error("NATS: {0}")]
    Nats(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What a gateway did since it started (this process only: the cluster's
/// own counters are in JetStream).
///
/// # Examples
///
/// ```
/// let s = mq_broker::GatewayStats::default();
/// assert_eq!(s.stored, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Messages answered `Stored`.
    pub stored: u64,
    /// Messages answered `Duplicate`.
    pub duplicates: u64,
    /// Messages answered `Rejected` (any code).
    pub rejected: u64,
    /// `Deliver` frames sent.
    pub delivered: u64,
    /// Acks passed on to JetStream.
    pub acked: u64,
    /// Nacks passed on (and outstanding deliveries returned at a close).
    pub nacked: u64,
    /// Acks and nacks of IDs not outstanding on their subscription.
    pub acks_ignored: u64,
    /// Messages copied to the dead-letter stream and terminated.
    pub dead_lettered: u64,
    /// Connections accepted past the handshake.
    pub connections: u64,
    /// Times a connection's output queue reached `max_output_bytes`, so the
    /// gateway stopped reading from it and delivering to it until it
    /// drained (PROTOCOL.md §7.1).
    pub output_full: u64,
    /// TLS handshakes completed on the TLS listener.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out (each closed its
    /// connection only).
    pub tls_handshake_failures: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    delivered: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    acks_ignored: AtomicU64,
    dead_lettered: AtomicU64,
    connections: AtomicU64,
    output_full: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// State shared by a gateway's connections.
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub js: JetStreamConfig,
    pub ctx: jetstream::Context,
    pub stream: jetstream::stream::Stream,
    pub shutdown: CancellationToken,
    pub open: AtomicUsize,
    counters: Counters,
    /// Topics this gateway knows to have a consumer (a group or a holding
    /// consumer): publishing to them needs no check.
    pub kept: Mutex<std::collections::HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
    pub seed: u64,
}

/// A running gateway: a listener serving PROTOCOL.md, backed by JetStream.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::GatewayError> {
/// use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
/// let js = JetStreamConfig::new(["nats://127.0.0.1:4222"]).replicas(1);
/// let gw = Gateway::start(BrokerConfig::default(), js).await?;
/// println!("listening on {}", gw.addr());
/// gw.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Gateway {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    accept: Mutex<Vec<JoinHandle<()>>>,
}

impl Gateway {
    /// Connects to NATS, creates or checks the streams, binds
    /// `config.listen` (and the TLS listener of `config.tls`; only that
    /// one in TLS-only mode) and serves. Of `config` the gateway uses
    /// `listen`, `tls`, `server_name`, `max_frame_size`,
    /// `max_message_size`, `heartbeat`, `handshake_timeout`, `auth_token`,
    /// `max_connections`, `max_deliveries`, `redelivery`, `max_output_bytes`,
    /// `max_subscriptions_per_connection`, `max_groups_per_topic`,
    /// `max_topics` (counted over the stream's group consumers, shared by
    /// every gateway), `max_nack_delay` and `seed`; the storage, store
    /// limits, dedup bounds and faults are the single node's and are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`GatewayError`]: a bad setting, NATS unreachable, a stream that
    /// does not fit, or the address in use.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it returns leaves the streams (created
    /// or not) and binds nothing.
    ///
    /// # Examples
    ///
    /// See [`Gateway`].
    pub async fn start(config: BrokerConfig, js: JetStreamConfig) -> Result<Gateway, GatewayError> {
        config
            .validate()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        js.validate().map_err(GatewayError::Config)?;
        let (_client, ctx) =
            setup::connect(&js, &config.server_name, config.max_frame_size).await?;
        let stream = setup::streams(&ctx, &js).await?;
        let tls_only = config.tls.as_ref().is_some_and(|t| t.is_tls_only());
        let plain = match tls_only {
            true => None,
            false => Some(bind(config.listen).await?),
        };
        let tls = match &config.tls {
            Some(t) => Some((bind(t.listen_addr()).await?, t.acceptor())),
            None => None,
        };
        let tls_addr = tls.as_ref().map(|((_, a), _)| *a);
        let addr = plain
            .as_ref()
            .map(|(_, a)| *a)
            .or(tls_addr)
            .unwrap_or(config.listen);
        let seed = config.seed.unwrap_or_else(rand::random);
        let tls_at = tls_addr.map_or("off".to_owned(), |a| a.to_string());
        tracing::info!(%addr, tls = %tls_at, stream = %js.stream, seed, "JetStream gateway serving");
        let shared = Arc::new(Shared {
            config,
            js,
            ctx,
            stream,
            shutdown: CancellationToken::new(),
            open: AtomicUsize::new(0),
            counters: Counters::default(),
            kept: Mutex::new(Default::default()),
            seed,
        });
        let mut accept = Vec::new();
        if let Some((l, _)) = plain {
            accept.push(tokio::spawn(accept_loop(shared.clone(), l, None)));
        }
        if let Some(((l, _), acceptor)) = tls {
            accept.push(tokio::spawn(accept_loop(shared.clone(), l, Some(acceptor))));
        }
        Ok(Gateway {
            shared,
            addr,
            tls_addr,
            accept: Mutex::new(accept),
        })
    }

    /// The address the gateway listens on (the TLS listener's in TLS-only
    /// mode).
    ///
    /// # Examples
    ///
    /// See [`Gateway`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS listener's address, if `BrokerConfig::tls` is set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(gw: mq_broker::Gateway) { println!("{:?}", gw.tls_addr()); }
    /// ```
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The seed of the gateway's RNG (jitter of `Nack(0)` delays).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(gw: mq_broker::Gateway) { println!("seed {}", gw.seed()); }
    /// ```
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// What this gateway did so far.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(gw: mq_broker::Gateway) { assert_eq!(gw.stats().dead_lettered, 0); }
    /// ```
    pub fn stats(&self) -> GatewayStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GatewayStats {
            stored: l(&c.stored),
            duplicates: l(&c.duplicates),
            rejected: l(&c.rejected),
            delivered: l(&c.delivered),
            acked: l(&c.acked),
            nacked: l(&c.nacked),
            acks_ignored: l(&c.acks_ignored),
            dead_lettered: l(&c.dead_lettered),
            connections: l(&c.connections),
            output_full: l(&c.output_full),
            tls_handshakes: l(&c.tls_handshakes),
            tls_handshake_failures: l(&c.tls_handshake_failures),
        }
    }

    /// Stops accepting, closes every connection with `Close(SHUTTING_DOWN)`
    /// (outstanding deliveries are returned to JetStream with a nak), and
    /// waits for the accept loop to end.
    ///
    /// # Cancel safety
    ///
    /// Once called the shutdown proceeds even if this future is dropped.
    ///
    /// # Examples
    ///
    /// See [`Gateway`].
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let handles = self
            .accept
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for h in handles {
            let _ = h.await;
        }
        // Let connections write their Close and return their deliveries.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.shared.open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| GatewayError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Accepts until shutdown; with `tls`, each connection's TLS handshake
/// runs in its own task, so a stalled peer cannot hold up the next accept.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => match &tls {
                None => {
                    tokio::spawn(conn::serve_tcp(shared.clone(), tcp, peer));
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(conn::serve_tls(shared.clone(), acceptor, tcp, peer));
                }
            },
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
