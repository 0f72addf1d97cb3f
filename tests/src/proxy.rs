//! A fault-injecting frame proxy between the clients and a broker that has
//! no fault injection of its own (the JetStream gateway).
//!
//! It decodes PROTOCOL.md frames in both directions and applies the same
//! [`Faults`] as the in-process broker, with the same rules, so the chaos
//! scenarios mean the same thing on both backends:
//!
//! * only data frames (`Message`, `Reply`, `Deliver`, `Ack`, `Nack`) are
//!   dropped, duplicated or delayed, and only on connections whose role (from
//!   their `Hello`) the [`RoleFilter`](mq_mock_broker::RoleFilter) selects;
//! * `drop_reply_after_store` drops a `Reply` whose status is `Stored` or
//!   `Duplicate` (the message stays landed);
//! * a dropped `Deliver` gives its credit back (the proxy sends
//!   `Credit(sub_id, 1)` to the broker in its place), as the broker does for
//!   the `Deliver`s its own faults drop: on a live TCP connection a
//!   `Deliver` cannot be lost, so without that the simulated loss would leak
//!   credit, which no real network does;
//! * `cut_probability` / `cut_after_frames` cut a connection (both sides,
//!   no `Close`) after a frame from the client.
//!
//! One RNG seeded from the scenario's seed decides every fault. The proxy
//! listens on one address for the whole run; the broker behind it can be
//! replaced ([`FaultProxy::set_backend`]), so a restarted gateway may listen
//! anywhere.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_conn::{BoxIo, SharedConnector};
use mq_mock_broker::{DirectionFaults, Faults};
use mq_protocol::{Codec, Credit, Frame, Role};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Frames up to this size pass (the endpoints enforce their own limits).
const MAX_FRAME: u32 = 64 << 20;

/// What the proxy's faults did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProxyStats {
    pub dropped: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub replies_dropped: u64,
    pub cuts: u64,
}

impl std::fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fault proxy: {} data frames dropped, {} duplicated, {} delayed; \
             {} replies dropped after landing; {} connections cut",
            self.dropped, self.duplicated, self.delayed, self.replies_dropped, self.cuts
        )
    }
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    replies_dropped: AtomicU64,
    cuts: AtomicU64,
}

struct Shared {
    /// How to reach the broker (TLS or plain TCP).
    connector: SharedConnector,
    /// TLS towards the clients, when the run is over TLS.
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    backend: Mutex<Option<SocketAddr>>,
    /// Cancelled to cut every connection at once; replaced afterwards.
    cut: Mutex<CancellationToken>,
    counters: Counters,
}

impl Shared {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen::<f64>()
                < p
    }

    fn fate(&self, d: &DirectionFaults) -> Fate {
        if self.chance(d.drop) {
            bump(&self.counters.dropped);
            Fate::Drop
        } else if self.chance(d.duplicate) {
            bump(&self.counters.duplicated);
            Fate::Duplicate
        } else if self.chance(d.delay) {
            bump(&self.counters.delayed);
            let max = d.max_delay.as_micros().min(u128::from(u32::MAX)) as u64;
            let us = self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen_range(0..=max);
            Fate::Delay(Duration::from_micros(us))
        } else {
            Fate::Pass
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Fate {
    Pass,
    Drop,
    Duplicate,
    Delay(Duration),
}

fn is_data(f: &Frame) -> bool {
    matches!(
        f,
        Frame::Message(_) | Frame::Reply(_) | Frame::Deliver(_) | Frame::Ack(_) | Frame::Nack(_)
    )
}

/// TLS on both legs of the proxy.
pub(crate) struct ProxyTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: SharedConnector,
}

impl ProxyTls {
    /// Accepts with the run's server certificate; connects to the broker
    /// trusting the run's CA.
    pub(crate) fn new(pki: &crate::run::Pki) -> Result<ProxyTls, String> {
        Ok(ProxyTls {
            acceptor: tokio_rustls::TlsAcceptor::from(pki.proxy.clone()),
            connector: mq_conn::client_transport(None, Some(&pki.client))
                .map_err(|e| e.to_string())?,
        })
    }
}

/// The proxy: one listener, a task per connection.
pub(crate) struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `backend`.
    pub(crate) async fn start(
        backend: SocketAddr,
        faults: Faults,
        seed: u64,
        tls: Option<ProxyTls>,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (acceptor, connector) = match tls {
            Some(t) => (Some(t.acceptor), t.connector),
            None => (
                None,
                Arc::new(mq_conn::TcpConnector::new()) as SharedConnector,
            ),
        };
        let shared = Arc::new(Shared {
            connector,
            acceptor,
            faults: Mutex::new(faults),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15)),
            backend: Mutex::new(Some(backend)),
            cut: Mutex::new(CancellationToken::new()),
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the faults (new frames only).
    pub(crate) fn set_faults(&self, f: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// Where new connections go; `None`: accepted and closed at once (the
    /// broker is down).
    pub(crate) fn set_backend(&self, a: Option<SocketAddr>) {
        *self
            .shared
            .backend
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = a;
    }

    /// Cuts every open connection, both sides, without `Close`.
    pub(crate) fn cut_all(&self) {
        let old = std::mem::take(&mut *self.shared.cut.lock().unwrap_or_else(|p| p.into_inner()));
        old.cancel();
    }

    pub(crate) fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            dropped: l(&c.dropped),
            duplicated: l(&c.duplicated),
            delayed: l(&c.delayed),
            replies_dropped: l(&c.replies_dropped),
            cuts: l(&c.cuts),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(serve(tcp, shared.clone()));
            }
            // Out of descriptors or similar: try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Why one direction stopped.
enum End {
    /// End of stream or an error: let the other side finish writing.
    Eof,
    /// A fault cut the connection.
    Cut,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let cut = shared.cut.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let backend = *shared.backend.lock().unwrap_or_else(|p| p.into_inner());
    let Some(backend) = backend else { return };
    let _ = client.set_nodelay(true);
    let client: BoxIo = match &shared.acceptor {
        None => Box::new(client),
        Some(a) => match tokio::time::timeout(Duration::from_secs(10), a.accept(client)).await {
            Ok(Ok(tls)) => Box::new(tls),
            _ => return,
        },
    };
    let Ok(server) = shared.connector.connect(&backend.to_string()).await else {
        return;
    };
    let codec = Codec::new(MAX_FRAME);
    let (cr, cw) = tokio::io::split(client);
    let (sr, sw) = tokio::io::split(server);
    let (to_server, server_rx) = mpsc::unbounded_channel::<Frame>();
    let (to_client, client_rx) = mpsc::unbounded_channel::<Frame>();
    let w_server = tokio::spawn(write_all(FramedWrite::new(sw, codec), server_rx));
    let w_client = tokio::spawn(write_all(FramedWrite::new(cw, codec), client_rx));
    let role: Arc<Mutex<Option<Role>>> = Arc::default();

    let up = upstream(
        FramedRead::new(cr, codec),
        shared.clone(),
        role.clone(),
        to_server.clone(),
    );
    let down = downstream(
        FramedRead::new(sr, codec),
        shared.clone(),
        role,
        to_client,
        to_server,
    );
    let end = tokio::select! {
        _ = cut.cancelled() => End::Cut,
        e = up => e,
        e = down => e,
    };
    match end {
        End::Cut => {
            w_server.abort();
            w_client.abort();
        }
        End::Eof => {
            // The readers (and with them their senders) are gone: the
            // writers end once they wrote what was queued; delayed frames
            // still pending hold a sender for at most `max_delay`.
            let grace = Duration::from_secs(1);
            let _ = tokio::time::timeout(grace, w_server).await;
            let _ = tokio::time::timeout(grace, w_client).await;
        }
    }
}

async fn write_all<W>(mut w: FramedWrite<W, Codec>, mut rx: mpsc::UnboundedReceiver<Frame>)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    while let Some(f) = rx.recv().await {
        if w.send(f).await.is_err() {
            return;
        }
    }
}

/// Sends `f` now, twice, later or never, as `fate` says.
fn forward(fate: Fate, f: Frame, tx: &mpsc::UnboundedSender<Frame>) {
    match fate {
        Fate::Pass => {
            let _ = tx.send(f);
        }
        Fate::Drop => {}
        Fate::Duplicate => {
            let _ = tx.send(f.clone());
            let _ = tx.send(f);
        }
        Fate::Delay(d) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let _ = tx.send(f);
            });
        }
    }
}

fn active(shared: &Shared, role: &Mutex<Option<Role>>) -> Option<Faults> {
    let role = (*role.lock().unwrap_or_else(|p| p.into_inner()))?;
    let f = shared.faults();
    f.roles.matches(role).then_some(f)
}

/// Client → broker: `to_broker` faults and cuts.
async fn upstream<R>(
    mut rd: FramedRead<R, Codec>,
    shared: Arc<Shared>,
    role: Arc<Mutex<Option<Role>>>,
    tx: mpsc::UnboundedSender<Frame>,
) -> End
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut frames: u64 = 0;
    while let Some(Ok(f)) = rd.next().await {
        if let Frame::Hello(h) = &f {
            *role.lock().unwrap_or_else(|p| p.into_inner()) = Some(h.role);
            let _ = tx.send(f);
            continue;
        }
        let Some(faults) = active(&shared, &role) else {
            let _ = tx.send(f);
            continue;
        };
        let fate = match is_data(&f) {
            true => shared.fate(&faults.to_broker),
            false => Fate::Pass,
        };
        forward(fate, f, &tx);
        frames += 1;
        if faults.cut_after_frames.is_some_and(|n| frames >= n)
            || shared.chance(faults.cut_probability)
        {
            bump(&shared.counters.cuts);
            return End::Cut;
        }
    }
    End::Eof
}

/// Broker → client: `from_broker` faults and lost replies.
async fn downstream<R>(
    mut rd: FramedRead<R, Codec>,
    shared: Arc<Shared>,
    role: Arc<Mutex<Option<Role>>>,
    tx: mpsc::UnboundedSender<Frame>,
    to_server: mpsc::UnboundedSender<Frame>,
) -> End
where
    R: tokio::io::AsyncRead + Unpin,
{
    while let Some(Ok(f)) = rd.next().await {
        let faults = match is_data(&f) {
            true => active(&shared, &role),
            false => None,
        };
        let Some(faults) = faults else {
            let _ = tx.send(f);
            continue;
        };
        if let Frame::Reply(r) = &f {
            if r.status.is_stored() && shared.chance(faults.drop_reply_after_store) {
                bump(&shared.counters.replies_dropped);
                continue;
            }
        }
        let fate = shared.fate(&faults.from_broker);
        if let (Fate::Drop, Frame::Deliver(d)) = (&fate, &f) {
            let _ = to_server.send(Frame::Credit(Credit {
                sub_id: d.sub_id,
                credit: 1,
            }));
        }
        forward(fate, f, &tx);
    }
    End::Eof
}
