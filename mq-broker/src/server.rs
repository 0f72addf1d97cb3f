//! The embeddable broker: [`Broker`], its accept loop and its one timer
//! task.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::MessageId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::durable::{self, Flusher};
use crate::state::Shared;
use crate::{BrokerConfig, BrokerError, BrokerStats, Faults, Inspection, Storage, WaitTimeout};

/// How [`Broker::restart`] treats the broker's state.
///
/// # Examples
///
/// ```
/// use mq_broker::RestartMode;
/// let durable = RestartMode::KeepStore;
/// assert_ne!(durable, RestartMode::LoseStore);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartMode {
    /// Simulates a durable broker: stored messages (unacked deliveries become
    /// ready again), groups, the dedup table and dead letters survive.
    KeepStore,
    /// Simulates a broker that lost its disk: everything is forgotten
    /// (messages, groups, dedup table, dead letters, landing log). Counters
    /// carry on.
    LoseStore,
}

/// A running in-memory broker. Cheap to clone; every clone controls the same
/// broker. Dropping the last clone stops it (like [`Broker::shutdown`],
/// without waiting).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// use mq_broker::{BrokerConfig, Broker};
///
/// let broker = Broker::start(BrokerConfig::default()).await?;
/// assert!(broker.addr().ip().is_loopback());
/// assert_eq!(broker.stats().messages_stored, 0);
/// broker.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// When the broker started: the admin pages' uptime.
    pub(crate) started: std::time::Instant,
    /// The plaintext listener's address (`None` in TLS-only mode, or the
    /// configured `listen` without a listener).
    plain_addr: Option<SocketAddr>,
    /// The TLS listener's address, if TLS is on.
    tls_addr: Option<SocketAddr>,
    /// False for [`Broker::start_in_memory`]: no listener to restart.
    listening: bool,
    seed: u64,
    /// The accept loops (one per listener).
    accept: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The journal's writer thread (disk storage only).
    flusher: tokio::sync::Mutex<Option<Flusher>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.shared.cancel_connections();
        if let Some(f) = self.flusher.get_mut() {
            f.abandon(&self.shared);
        }
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.addr())
            .field("tls_addr", &self.inner.tls_addr)
            .field("seed", &self.inner.seed)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Validates `config`, binds its `listen` address and starts serving.
    /// The seed of the fault and jitter RNG is logged and printed to stderr.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Config`] for an invalid configuration,
    /// [`BrokerError::Bind`] if the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing runs until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let config = mq_broker::BrokerConfig { seed: Some(7), ..Default::default() };
    /// let broker = mq_broker::Broker::start(config).await?;
    /// assert_eq!(broker.seed(), 7);
    /// # Ok(()) }
    /// ```
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        config.validate()?;
        let listeners = bind_all(&config, None, None).await?;
        Self::launch(config, Some(listeners)).await
    }

    /// Starts a broker without a listener. Connections are handed to it
    /// with [`Broker::serve_io`] or [`Broker::connect_duplex`], so a
    /// test can run it under `#[tokio::test(start_paused = true)]` with no
    /// socket at all. [`Broker::addr`] returns the configured (unbound)
    /// `listen` address; [`Broker::restart`] rebinds nothing.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Config`] for an invalid configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start_in_memory(Default::default()).await?;
    /// let _client_end = broker.connect_duplex();
    /// # Ok(()) }
    /// ```
    pub async fn start_in_memory(config: BrokerConfig) -> Result<Broker, BrokerError> {
        config.validate()?;
        Self::launch(config, None).await
    }

    async fn launch(
        config: BrokerConfig,
        listeners: Option<Listeners>,
    ) -> Result<Self, BrokerError> {
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut core = Core::new(&config, StdRng::seed_from_u64(seed));
        let mut journal = None;
        if let Storage::Disk(d) = &config.storage {
            let (rec, lock) = durable::open(d, &config, core).await?;
            core = rec.core;
            journal = Some((rec.log, lock));
        }
        let listening = listeners.is_some();
        let storage = match &config.storage {
            Storage::Disk(d) => d.data_dir.display().to_string(),
            _ => "memory".to_owned(),
        };
        let (plain_addr, tls_addr) = match &listeners {
            Some(l) => (l.plain_addr(), l.tls_addr()),
            None => (Some(config.listen), None),
        };
        if let Some(l) = &listeners {
            let plain = plain_addr.map_or("none (TLS only)".to_owned(), |a| a.to_string());
            let tls = tls_addr.map_or("off".to_owned(), |a| a.to_string());
            tracing::info!(addr = %plain, %tls, mutual_tls = l.mutual_tls, seed, %storage, "broker listening");
        } else {
            tracing::info!(seed, %storage, "broker started without a listener");
        }
        let shared = Arc::new(Shared::new(config, core));
        let flusher = journal.map(|(log, lock)| Flusher::spawn(shared.clone(), log, lock));
        tokio::spawn(timer_loop(shared.clone()));
        let accept = listeners.map_or_else(Vec::new, |l| l.spawn(&shared));
        Ok(Broker {
            inner: Arc::new(Inner {
                shared,
                started: std::time::Instant::now(),
                plain_addr,
                tls_addr,
                listening,
                seed,
                accept: tokio::sync::Mutex::new(accept),
                flusher: tokio::sync::Mutex::new(flusher),
            }),
        })
    }

    /// Serves an already-connected byte stream as if it had been accepted
    /// (handshake first). Works on any broker; with
    /// [`Broker::start_in_memory`] it is the only way in.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start_in_memory(Default::default()).await?;
    /// let (client, server) = tokio::io::duplex(64 * 1024);
    /// broker.serve_io(server);
    /// # drop(client);
    /// # Ok(()) }
    /// ```
    pub fn serve_io<S>(&self, io: S)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let shared = self.inner.shared.clone();
        let crash = shared.crash_token();
        let (rd, wr) = tokio::io::split(io);
        tokio::spawn(crate::conn::serve(shared, rd, wr, None, crash));
    }

    /// Returns the client end of an in-memory connection whose other end
    /// the broker serves (see [`Broker::serve_io`]). Its buffer holds
    /// two maximum-size frames.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::{SinkExt, StreamExt};
    /// use mq_protocol::{Codec, Frame, Hello, Role};
    /// let broker = mq_broker::Broker::start_in_memory(Default::default()).await?;
    /// let mut conn = tokio_util::codec::Framed::new(broker.connect_duplex(), Codec::default());
    /// conn.send(Frame::Hello(Hello::new(Role::Sender, "doc"))).await?;
    /// assert!(matches!(conn.next().await, Some(Ok(Frame::Welcome(_)))));
    /// # Ok(()) }
    /// ```
    pub fn connect_duplex(&self) -> DuplexStream {
        let size = (self.inner.shared.config.max_frame_size as usize + 4) * 2;
        let (client, server) = tokio::io::duplex(size);
        self.serve_io(server);
        client
    }

    /// The bound address (the real port when `listen` had port 0). It stays
    /// the same across restarts. In TLS-only mode (no plaintext listener)
    /// it is the TLS listener's, as [`Broker::tls_addr`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_ne!(broker.addr().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        match (self.inner.plain_addr, self.inner.tls_addr) {
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => self.inner.shared.config.listen,
        }
    }

    /// The TLS listener's bound address, if `BrokerConfig::tls` is set.
    /// Connections there start with a TLS handshake (see
    /// [`TlsConfig`](crate::TlsConfig)); it stays the same across restarts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_eq!(broker.tls_addr(), None);
    /// # Ok(()) }
    /// ```
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.inner.tls_addr
    }

    /// The seed of the RNG behind every fault and the redelivery jitter:
    /// pass it back as `BrokerConfig::seed` to replay a run.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// println!("replay with seed {}", broker.seed());
    /// # Ok(()) }
    /// ```
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Replaces the faults, effective for the next frame of every
    /// connection. Probabilities outside `0.0..=1.0` behave as clamped (use
    /// [`Faults::validate`] to catch them).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// use mq_broker::{Faults, Broker};
    /// let broker = Broker::start(Default::default()).await?;
    /// broker.set_faults(Faults { drop_reply_after_store: 1.0, ..Faults::default() });
    /// broker.set_faults(Faults::default());
    /// # Ok(()) }
    /// ```
    pub fn set_faults(&self, faults: Faults) {
        if let Err(e) = faults.validate() {
            tracing::warn!(error = %e, "faults out of range; probabilities are clamped");
        }
        self.inner.shared.lock().faults = faults;
    }

    /// Closes every connection at once, without a `Close` frame, as a crashed
    /// broker would; unacked deliveries become ready again. The listener stays
    /// up, so clients can reconnect at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// broker.crash();
    /// assert_eq!(broker.stats().crashes, 1);
    /// # Ok(()) }
    /// ```
    pub fn crash(&self) {
        let shared = &self.inner.shared;
        shared.cancel_connections();
        let mut st = shared.lock();
        st.crash(Instant::now());
        shared.after_change(&mut st);
    }

    /// Crashes (every connection cut), stops listening, applies `mode` to the
    /// stored state and listens again on the same address.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Bind`] if the address was taken meanwhile,
    /// [`BrokerError::ShutDown`] after [`Broker::shutdown`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: cancelled between stopping and rebinding, the broker
    /// stays without a listener until the next `restart`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// use mq_broker::{Broker, RestartMode};
    /// let broker = Broker::start(Default::default()).await?;
    /// let addr = broker.addr();
    /// broker.restart(RestartMode::KeepStore).await?;
    /// assert_eq!(broker.addr(), addr);
    /// # Ok(()) }
    /// ```
    pub async fn restart(&self, mode: RestartMode) -> Result<(), BrokerError> {
        let shared = &self.inner.shared;
        let mut accept = self.inner.accept.lock().await;
        if shared.shutdown.is_cancelled() {
            return Err(BrokerError::ShutDown);
        }
        for task in accept.drain(..) {
            task.abort();
            let _ = task.await; // the listener is dropped once this returns
        }
        self.crash();
        if let Storage::Disk(d) = &shared.config.storage {
            self.reopen_journal(d, mode).await?;
        } else if mode == RestartMode::LoseStore {
            let mut st = shared.lock();
            st.core.lose_store(Instant::now());
            shared.after_change(&mut st);
        }
        if !self.inner.listening {
            return Ok(());
        }
        let listeners =
            bind_all(&shared.config, self.inner.plain_addr, self.inner.tls_addr).await?;
        tracing::info!(addr = %self.addr(), ?mode, "broker restarted");
        *accept = listeners.spawn(shared);
        Ok(())
    }

    /// Closes every connection with `Close { SHUTTING_DOWN }`, stops
    /// listening and stops the timer. Later `restart` calls fail.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the broker is shut down once the first poll returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// broker.shutdown().await;
    /// assert!(tokio::net::TcpStream::connect(broker.addr()).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        let shared = &self.inner.shared;
        shared.shutdown.cancel();
        {
            let mut st = shared.lock();
            st.shutdown(Instant::now());
            shared.after_change(&mut st);
        }
        let mut accept = self.inner.accept.lock().await;
        for task in accept.drain(..) {
            task.abort();
            let _ = task.await;
        }
        // Disk storage: write what is pending and a checkpoint, then
        // release the data directory.
        let mut flusher = self.inner.flusher.lock().await;
        if let Some(f) = flusher.as_mut() {
            f.stop(shared, true).await;
        }
        *flusher = None;
    }

    /// Why the broker stopped by itself, if it did: the journal's
    /// fdatasync failed (the kernel may have dropped the data, so the broker
    /// refuses to go on and report anything durable). `None` while it runs
    /// or after a requested shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_eq!(broker.fatal_error(), None);
    /// # Ok(()) }
    /// ```
    pub fn fatal_error(&self) -> Option<String> {
        self.inner.shared.fatal_error()
    }

    /// Resolves once the broker stopped, by [`Broker::shutdown`] or by
    /// itself (see [`Broker::fatal_error`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// broker.shutdown().await;
    /// broker.stopped().await;
    /// # Ok(()) }
    /// ```
    pub async fn stopped(&self) {
        self.inner.shared.shutdown.cancelled().await;
    }

    /// Disk storage: simulates a crash of the process (what was not yet
    /// written is dropped, unanswered) and recovers a new core from the
    /// journal, as a restarted `mq-broker` would. `LoseStore` deletes the
    /// journal first.
    async fn reopen_journal(
        &self,
        d: &crate::DiskStorage,
        mode: RestartMode,
    ) -> Result<(), BrokerError> {
        let shared = &self.inner.shared;
        let mut flusher = self.inner.flusher.lock().await;
        let lock = match flusher.as_mut() {
            Some(f) => f.stop(shared, false).await.map(|(_, lock)| lock),
            None => None,
        };
        *flusher = None;
        drop(lock);
        if mode == RestartMode::LoseStore {
            remove_segments(&d.data_dir).map_err(|source| BrokerError::Storage {
                dir: d.data_dir.clone(),
                source,
            })?;
        }
        let fresh = Core::new(&shared.config, StdRng::seed_from_u64(0));
        let (rec, lock) = durable::open(d, &shared.config, fresh).await?;
        let mut core = rec.core;
        {
            let mut st = shared.lock();
            core.carry_over(&mut st.core);
            st.core = core;
            shared.after_change(&mut st);
        }
        *flusher = Some(Flusher::spawn(shared.clone(), rec.log, lock));
        Ok(())
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_eq!(broker.stats().connections_open, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> BrokerStats {
        self.inner.shared.lock().core.stats()
    }

    /// Waits until `pred` holds for the counters, re-checking on every
    /// change of the broker's state (no polling).
    ///
    /// # Errors
    ///
    /// [`WaitTimeout`] with the last counters if `pred` still fails after
    /// `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// let s = broker.wait_for(Duration::from_secs(1), |s| s.messages_stored == 0).await?;
    /// assert_eq!(s.messages_stored, 0);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&BrokerStats) -> bool,
    ) -> Result<BrokerStats, WaitTimeout> {
        let mut rx = self.inner.shared.changed.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if pred(&stats) {
                return Ok(stats);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    let last = self.stats();
                    if pred(&last) {
                        return Ok(last);
                    }
                    return Err(WaitTimeout {
                        waited: timeout,
                        last,
                    });
                }
            }
        }
    }

    /// A snapshot of stored messages, groups, subscriptions and dead letters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert!(broker.inspect().groups.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn inspect(&self) -> Inspection {
        self.inner.shared.lock().core.inspect()
    }

    /// How many times `id` was landed: 0 or 1 unless dedup forgot it (see
    /// the crate docs). For tests; kept only while
    /// `BrokerConfig::record_landings` is on (else always 0), reset by
    /// `restart(LoseStore)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_eq!(broker.landed_count(mq_protocol::MessageId::new(1, 1)), 0);
    /// # Ok(()) }
    /// ```
    pub fn landed_count(&self, id: MessageId) -> u32 {
        self.inner.shared.lock().core.landed_count(id)
    }
}

/// Removes every journal segment in `dir` (a `LoseStore` restart).
fn remove_segments(dir: &std::path::Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "log") {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BrokerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// The bound listeners of a broker: plaintext unless TLS-only, TLS if
/// configured.
struct Listeners {
    plain: Option<(TcpListener, SocketAddr)>,
    tls: Option<(TcpListener, SocketAddr, TlsAcceptor)>,
    mutual_tls: bool,
}

impl Listeners {
    fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().map(|p| p.1)
    }

    fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.1)
    }

    fn spawn(self, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some((l, _)) = self.plain {
            tasks.push(tokio::spawn(accept_loop(shared.clone(), l, None)));
        }
        if let Some((l, _, acceptor)) = self.tls {
            tasks.push(tokio::spawn(accept_loop(shared.clone(), l, Some(acceptor))));
        }
        tasks
    }
}

/// Binds the configured listeners, or (on restart) the addresses they had.
async fn bind_all(
    config: &BrokerConfig,
    plain_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
) -> Result<Listeners, BrokerError> {
    let tls_only = config.tls.as_ref().is_some_and(|t| t.is_tls_only());
    let plain = if tls_only {
        None
    } else {
        Some(bind(plain_addr.unwrap_or(config.listen)).await?)
    };
    let tls = match &config.tls {
        Some(t) => {
            let (l, a) = bind(tls_addr.unwrap_or(t.listen_addr())).await?;
            Some((l, a, t.acceptor()))
        }
        None => None,
    };
    Ok(Listeners {
        plain,
        tls,
        mutual_tls: config
            .tls
            .as_ref()
            .is_some_and(|t| t.requires_client_cert()),
    })
}

/// Accepts connections until shutdown. With `tls`, each connection's TLS
/// handshake runs in its own task (bounded by `handshake_timeout`), so a
/// peer that stalls it cannot hold up the next accept.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let crash: CancellationToken = shared.crash_token();
                match &tls {
                    None => {
                        tokio::spawn(crate::conn::serve_tcp(shared.clone(), stream, crash));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let shared = shared.clone();
                        tokio::spawn(crate::conn::serve_tls(
                            shared, acceptor, stream, peer, crash,
                        ));
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off a little
                // instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The broker's one timer: sleeps until the core's or the fault layer's
/// next deadline, or until woken because a nearer one appeared.
async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut st = shared.lock();
            let next = st.poll_timeout();
            st.armed = next;
            next
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            _ = shared.timer_wake.notified() => {}
            _ = sleep => {}
        }
        let mut st = shared.lock();
        st.handle_timeout(Instant::now());
        shared.after_change(&mut st);
    }
}
