//! One client connection to the gateway: handshake, a writer task fed by a
//! channel (heartbeat pings when idle), and a reader loop that hands
//! `Message`s to `publish` and subscription frames to `consume`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_protocol::{
    Close, Codec, ErrorCode, Frame, Hello, Pong, Refuse, Role, SubscribeError, SubscribeOk,
    Welcome, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::consume::{self, SubCmd};
use super::{bump, publish, Shared};
use crate::state::reason;

/// Frames written per flush.
const MAX_BATCH: usize = 256;

pub(crate) use super::out::Out;
use super::out::Queue;

pub(crate) fn close_frame(code: ErrorCode, why: impl Into<String>) -> Frame {
    Frame::Close(Close {
        code,
        reason: reason(why.into()),
    })
}

/// The read half of a connection, plain TCP or TLS.
type ReadHalf = Box<dyn AsyncRead + Unpin + Send>;
/// The write half of a connection, plain TCP or TLS.
type WriteHalf = Box<dyn AsyncWrite + Unpin + Send>;

/// Serves one connection accepted on the plaintext listener.
pub(crate) async fn serve_tcp(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let (rd, wr) = tcp.into_split();
    serve(shared, Box::new(rd), Box::new(wr), peer).await;
}

/// Serves one connection accepted on the TLS listener: the TLS handshake
/// in this connection's task, within `handshake_timeout`, then the
/// protocol. A failed handshake is logged and counted and closes this
/// connection only.
pub(crate) async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let _ = tcp.set_nodelay(true);
    let limit = shared.config.handshake_timeout;
    let failed = |why: String| {
        tracing::info!(%peer, "TLS handshake failed, connection closed: {why}");
        bump(&shared.counters.tls_handshake_failures);
    };
    let shaken = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        r = crate::tls::handshake(&acceptor, tcp, limit, failed) => r,
    };
    if let Some(tls) = shaken {
        bump(&shared.counters.tls_handshakes);
        let (rd, wr) = tokio::io::split(tls);
        serve(shared, Box::new(rd), Box::new(wr), peer).await;
    }
}

async fn serve(shared: Arc<Shared>, rd: ReadHalf, wr: WriteHalf, peer: SocketAddr) {
    let codec = Codec::new(shared.config.max_frame_size);
    let mut reader = FramedRead::new(rd, codec);
    let mut writer = FramedWrite::new(wr, codec);

    // Extension frames before Hello are skipped (PROTOCOL.md §9), within
    // the same deadline.
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let first = loop {
        let r = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = tokio::time::timeout_at(deadline, reader.next()) => r,
        };
        if !matches!(r, Ok(Some(Ok(Frame::Extension { .. })))) {
            break r;
        }
    };
    let hello = match first {
        Err(_) => {
            let why = format!(
                "no Hello within {} ms",
                shared.config.handshake_timeout.as_millis()
            );
            let close = close_frame(ErrorCode::HANDSHAKE_TIMEOUT, why);
            let _ = timeout(Duration::from_secs(5), writer.send(close)).await;
            return;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            let _ = writer.send(close_frame(e.code(), e.to_string())).await;
            return;
        }
        Ok(Some(Ok(Frame::Hello(h)))) => h,
        Ok(Some(Ok(other))) => {
            let why = format!("expected Hello, got {}", other.name());
            let _ = writer
                .send(close_frame(ErrorCode::UNEXPECTED_FRAME, why))
                .await;
            return;
        }
    };
    if let Some((code, why)) = check_hello(&shared, &hello) {
        let refuse = Frame::Refuse(Refuse {
            code,
            reason: reason(why),
        });
        let _ = timeout(Duration::from_secs(5), writer.send(refuse)).await;
        return;
    }
    // Count the connection; the guard gives the slot back however we leave.
    let open = shared.open.fetch_add(1, Ordering::AcqRel) + 1;
    let _slot = Slot(shared.clone());
    if open > shared.config.max_connections {
        let why = format!(
            "the gateway is at its limit of {} connections",
            shared.config.max_connections
        );
        let refuse = Frame::Refuse(Refuse {
            code: ErrorCode::TOO_MANY_CONNECTIONS,
            reason: reason(why),
        });
        let _ = timeout(Duration::from_secs(5), writer.send(refuse)).await;
        return;
    }
    bump(&shared.counters.connections);
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        max_frame_size: shared.config.max_frame_size,
        heartbeat_ms: shared
            .config
            .heartbeat
            .as_millis()
            .min(u128::from(u32::MAX)) as u32,
        server_name: shared.config.server_name.clone(),
        max_message_size: Some(shared.config.max_message_size.min(u32::MAX as usize) as u32),
    };
    if writer.send(Frame::Welcome(welcome)).await.is_err() {
        return;
    }
    tracing::debug!(%peer, role = ?hello.role, client = %hello.client_name, "connected");
    let (tx, rx, queue) = Out::new(shared.clone(), shared.config.max_output_bytes);
    let kill = CancellationToken::new();
    let heartbeat = shared.config.heartbeat;
    let wtask = tokio::spawn(write_loop(writer, rx, kill.clone(), heartbeat, queue));
    let why = match hello.role {
        Role::Sender => sender_loop(&shared, &mut reader, &tx, &kill).await,
        Role::Receiver => receiver_loop(&shared, &mut reader, &tx, &kill).await,
        _ => Some(close_frame(ErrorCode::UNEXPECTED_FRAME, "unknown role")),
    };
    if let Some(close) = why {
        let _ = tx.send(close);
    }
    drop(tx);
    // The writer ends once it wrote everything queued (the Close last), or
    // when killed.
    let _ = timeout(Duration::from_secs(2), wtask).await;
    kill.cancel();
    tracing::debug!(%peer, "disconnected");
}

struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn check_hello(shared: &Shared, h: &Hello) -> Option<(ErrorCode, String)> {
    if h.min_version > h.max_version
        || h.min_version > PROTOCOL_VERSION
        || h.max_version < PROTOCOL_VERSION
    {
        let why = format!(
            "client speaks versions {}..={}, this gateway only {PROTOCOL_VERSION}",
            h.min_version, h.max_version
        );
        return Some((ErrorCode::UNSUPPORTED_VERSION, why));
    }
    if let Some(token) = &shared.config.auth_token {
        let ok = h.token.as_deref().is_some_and(|t| {
            t.len() == token.len()
                && t.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0
        });
        if !ok {
            return Some((ErrorCode::UNAUTHORIZED, "wrong or missing token".into()));
        }
    }
    None
}

type Reader = FramedRead<ReadHalf, Codec>;

/// Next frame, answering pings; `Err(close)` to end the connection with
/// that frame, `Ok(None)` at EOF, shutdown or a `Close` from the peer.
async fn next(
    shared: &Shared,
    reader: &mut Reader,
    out: &Out,
    kill: &CancellationToken,
) -> Result<Option<Frame>, Frame> {
    let silent = shared.config.heartbeat * 3;
    loop {
        // Output full (§7.1): read nothing until the writer drained it.
        if out.is_full() {
            tokio::select! {
                _ = kill.cancelled() => return Ok(None),
                _ = shared.shutdown.cancelled() => {
                    return Err(close_frame(ErrorCode::SHUTTING_DOWN, "the gateway is shutting down"));
                }
                _ = out.room() => {}
            }
            continue;
        }
        let read = async {
            if silent.is_zero() {
                Ok(reader.next().await)
            } else {
                timeout(silent, reader.next()).await
            }
        };
        let got = tokio::select! {
            _ = kill.cancelled() => return Ok(None),
            _ = shared.shutdown.cancelled() => {
                return Err(close_frame(ErrorCode::SHUTTING_DOWN, "the gateway is shutting down"));
            }
            r = read => r,
        };
        match got {
            Err(_) => {
                return Err(close_frame(
                    ErrorCode::HEARTBEAT_TIMEOUT,
                    format!("nothing received for {silent:?}"),
                ))
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(close_frame(e.code(), e.to_string())),
            Ok(Some(Ok(Frame::Ping(p)))) => {
                let _ = out.send(Frame::Pong(Pong { nonce: p.nonce }));
            }
            Ok(Some(Ok(Frame::Pong(_)))) => {}
            Ok(Some(Ok(Frame::Close(_)))) => return Ok(None),
            Ok(Some(Ok(f))) => return Ok(Some(f)),
        }
    }
}

fn unexpected(f: &Frame, role: &str) -> Frame {
    close_frame(
        ErrorCode::UNEXPECTED_FRAME,
        format!("{} is not allowed on a {role} connection", f.name()),
    )
}

async fn sender_loop(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    out: &Out,
    kill: &CancellationToken,
) -> Option<Frame> {
    let mut publisher = publish::Publisher::new(shared.clone(), out.clone(), kill.clone());
    loop {
        let f = match next(shared, reader, out, kill).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(close) => return Some(close),
        };
        let Frame::Message(m) = f else {
            return Some(unexpected(&f, "sender"));
        };
        publisher.publish(m, kill).await?;
    }
}

async fn receiver_loop(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    out: &Out,
    kill: &CancellationToken,
) -> Option<Frame> {
    let mut subs: HashMap<u32, mpsc::UnboundedSender<SubCmd>> = HashMap::new();
    let stop = CancellationToken::new();
    let _stop_guard = stop.clone().drop_guard();
    loop {
        let f = match next(shared, reader, out, kill).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(close) => return Some(close),
        };
        let (sub_id, cmd) = match f {
            Frame::Subscribe(s) => {
                if subs.contains_key(&s.sub_id) {
                    let why = format!("sub_id {} is already in use on this connection", s.sub_id);
                    return Some(close_frame(ErrorCode::UNEXPECTED_FRAME, why));
                }
                // Names out of the protocol's limits, or one subscription
                // past the connection's: SubscribeError, the connection
                // lives and the sub_id stays free (PROTOCOL.md §3.7a).
                let max = shared.config.max_subscriptions_per_connection;
                let refused = crate::limits::check_subscribe_names(&s.topic, &s.group)
                    .err()
                    .or_else(|| {
                        (subs.len() >= max).then(|| {
                            let why =
                                format!("this connection holds its limit of {max} subscriptions");
                            (ErrorCode::LIMIT_REACHED, why)
                        })
                    });
                if let Some((code, why)) = refused {
                    let _ = out.send(Frame::SubscribeError(SubscribeError {
                        sub_id: s.sub_id,
                        code,
                        reason: reason(why),
                    }));
                    continue;
                }
                // The single node's group and topic counts, over the
                // stream's group consumers.
                let limits = tokio::select! {
                    _ = kill.cancelled() => return None,
                    r = consume::check_limits(shared, &s.topic, &s.group) => r,
                };
                match limits {
                    Ok(None) => {}
                    Ok(Some((code, why))) => {
                        let _ = out.send(Frame::SubscribeError(SubscribeError {
                            sub_id: s.sub_id,
                            code,
                            reason: reason(why),
                        }));
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %s.topic, group = %s.group, "cannot count the stream's consumers: {e}");
                        return Some(close_frame(
                            ErrorCode::SHUTTING_DOWN,
                            format!("the gateway cannot reach JetStream: {e}"),
                        ));
                    }
                }
                // The consumer must exist before SubscribeOk: a message
                // published after SubscribeOk is then the group's.
                let (tx, rx) = mpsc::unbounded_channel();
                let made = tokio::select! {
                    _ = kill.cancelled() => return None,
                    r = consume::group_consumer(shared, &s.topic, &s.group) => r,
                };
                let consumer = match made {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(topic = %s.topic, group = %s.group, "cannot create the group's consumer: {e}");
                        return Some(close_frame(
                            ErrorCode::SHUTTING_DOWN,
                            format!("the gateway cannot reach JetStream: {e}"),
                        ));
                    }
                };
                let sub_id = s.sub_id;
                let _ = out.send(Frame::SubscribeOk(SubscribeOk { sub_id }));
                tokio::spawn(consume::run(
                    shared.clone(),
                    consumer,
                    s,
                    rx,
                    out.clone(),
                    stop.child_token(),
                ));
                subs.insert(sub_id, tx);
                continue;
            }
            Frame::Ack(a) => (a.sub_id, SubCmd::Ack(a.id)),
            Frame::Nack(n) => (n.sub_id, SubCmd::Nack(n.id, n.delay_ms)),
            Frame::Credit(c) => (c.sub_id, SubCmd::Credit(c.credit)),
            other => return Some(unexpected(&other, "receiver")),
        };
        match subs.get(&sub_id) {
            Some(tx) => {
                let _ = tx.send(cmd);
            }
            None => {
                return Some(close_frame(
                    ErrorCode::UNKNOWN_SUBSCRIPTION,
                    format!("no subscription {sub_id} on this connection"),
                ))
            }
        }
    }
}

async fn write_loop(
    mut writer: FramedWrite<WriteHalf, Codec>,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    kill: CancellationToken,
    heartbeat: Duration,
    queue: Arc<Queue>,
) {
    // A write that makes no progress this long drops the connection (a
    // peer that does not read): three heartbeats, 30 s without them.
    let stall = if heartbeat.is_zero() {
        Duration::from_secs(30)
    } else {
        heartbeat * 3
    };
    let mut nonce = 0u64;
    loop {
        let idle = async {
            if heartbeat.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(heartbeat).await
            }
        };
        let first = tokio::select! {
            _ = kill.cancelled() => return,
            f = rx.recv() => f,
            _ = idle => {
                nonce += 1;
                Some(Frame::Ping(mq_protocol::Ping { nonce }))
            }
        };
        let Some(first) = first else {
            let _ = SinkExt::<Frame>::flush(&mut writer).await;
            return;
        };
        // What this batch takes off the queue (the writer's own Ping was
        // never on it).
        let mut cost = match &first {
            Frame::Ping(_) => 0,
            f => crate::core::out_cost(f),
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    cost += crate::core::out_cost(&f);
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let closing = batch.iter().any(|f| matches!(f, Frame::Close(_)));
        let wrote = async {
            for f in batch {
                writer.feed(f).await?;
            }
            SinkExt::<Frame>::flush(&mut writer).await
        };
        let ok = tokio::select! {
            _ = kill.cancelled() => return,
            r = timeout(stall, wrote) => matches!(r, Ok(Ok(()))),
        };
        queue.written(cost);
        if !ok {
            // Failed or stalled: end the connection (the reader may be
            // waiting for the queue to drain).
            tracing::debug!("write failed or made no progress for {stall:?}: connection dropped");
            kill.cancel();
            return;
        }
        if closing {
            return;
        }
    }
}
