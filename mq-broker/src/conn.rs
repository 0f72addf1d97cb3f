//! One connection: the handshake, then a reader loop (this task) and a
//! writer task.
//!
//! The reader decodes frames, takes every frame already buffered (up to
//! [`MAX_BATCH`]) and hands the batch to the state under one lock. The writer
//! drains its queue, `feed`s many frames and flushes once, and sends `Ping`
//! after a heartbeat interval without writing. A peer silent for three
//! intervals is closed with `HEARTBEAT_TIMEOUT` (a heartbeat of zero turns
//! both off); a decoding error closes the connection with the error's code.
//! Only that connection is affected.
//!
//! Output is bounded (PROTOCOL.md §7.1): every frame queued for the writer
//! is counted in an [`OutQueue`]; while it holds `max_output_bytes` the
//! reader reads nothing (the peer meets TCP backpressure) and the core
//! delivers nothing to it. A writer that makes no progress for three
//! heartbeats (30 s without heartbeats) drops the connection.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use mq_protocol::{
    Close, Codec, ErrorCode, Frame, Hello, Ping, ProtocolError, Refuse, Welcome, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::idle::IdleTimer;
use crate::state::{reason, Flow, OpenError, Out, OutQueue, Shared};

/// Most frames handled under one lock, or written per flush.
pub(crate) const MAX_BATCH: usize = 256;

/// Read buffer size and write flush threshold.
const IO_BUFFER: usize = 64 * 1024;

/// Longest wait for the peer to close after the broker sent `Close`.
const LINGER: Duration = Duration::from_secs(2);

/// How long a writer may make no progress when heartbeats are disabled.
const STALL_WITHOUT_HEARTBEAT: Duration = Duration::from_secs(30);

type Reader<R> = FramedRead<R, Codec>;
type Writer<W> = FramedWrite<W, Codec>;

/// Serves one accepted TCP connection until it ends.
pub(crate) async fn serve_tcp(shared: Arc<Shared>, stream: TcpStream, crash: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let (rd, wr) = stream.into_split();
    serve(shared, rd, wr, peer, crash).await;
}

/// Serves one connection accepted on the TLS listener: the TLS handshake
/// (within `handshake_timeout`, in this connection's task), then the
/// protocol as [`serve`]. A failed or timed-out handshake is logged and
/// counted and closes this connection only.
pub(crate) async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    crash: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let limit = shared.config.handshake_timeout;
    let failed = |why: String| {
        tracing::info!(%peer, "TLS handshake failed, connection closed: {why}");
        shared.count(|s| s.tls_handshake_failures += 1);
    };
    let shaken = tokio::select! {
        _ = crash.cancelled() => return,
        _ = shared.shutdown.cancelled() => return,
        r = crate::tls::handshake(&acceptor, stream, limit, failed) => r,
    };
    if let Some(tls) = shaken {
        shared.count(|s| s.tls_handshakes += 1);
        let (rd, wr) = tokio::io::split(tls);
        serve(shared, rd, wr, Some(peer), crash).await;
    }
}

/// Serves one connection, given as its two halves, until it ends.
pub(crate) async fn serve<R, W>(
    shared: Arc<Shared>,
    rd: R,
    wr: W,
    peer: Option<std::net::SocketAddr>,
    crash: CancellationToken,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let codec = Codec::new(shared.config.max_frame_size);
    // Larger buffers than tokio-util's 8 KiB defaults: more frames per
    // read and per write system call.
    let mut reader = FramedRead::with_capacity(rd, codec, IO_BUFFER);
    let mut writer = FramedWrite::new(wr, codec);
    writer.set_backpressure_boundary(IO_BUFFER);

    let deadline = Instant::now() + shared.config.handshake_timeout;
    let first = loop {
        let r = tokio::select! {
            _ = crash.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            r = tokio::time::timeout_at(deadline, reader.next()) => r,
        };
        // Extension frames are skipped before Hello too (§9), within the
        // same deadline.
        if !matches!(r, Ok(Some(Ok(Frame::Extension { .. })))) {
            break r;
        }
    };
    let hello = match first {
        Err(_) => {
            tracing::debug!(?peer, "no Hello within the handshake timeout");
            shared.count(|s| s.timeouts += 1);
            let why = format!(
                "no Hello within {} ms",
                shared.config.handshake_timeout.as_millis()
            );
            send_close(&mut writer, ErrorCode::HANDSHAKE_TIMEOUT, why).await;
            return;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            shared.count(|s| s.protocol_errors += 1);
            send_close(&mut writer, e.code(), e.to_string()).await;
            return;
        }
        Ok(Some(Ok(Frame::Hello(h)))) => h,
        Ok(Some(Ok(other))) => {
            shared.count(|s| s.protocol_errors += 1);
            let why = format!("expected Hello, got {}", other.name());
            send_close(&mut writer, ErrorCode::UNEXPECTED_FRAME, why).await;
            return;
        }
    };
    if let Some((code, why)) = check_hello(&shared, &hello) {
        refuse(&shared, &mut writer, code, why).await;
        return;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(OutQueue::new(shared.config.max_output_bytes));
    let stop = CancellationToken::new();
    let kill = crash.child_token();
    let opened = shared
        .lock()
        .try_open(hello.role, tx, queue.clone(), stop.clone(), kill.clone());
    let conn = match opened {
        Ok(conn) => conn,
        Err(OpenError::TooManyConnections) => {
            let why = format!(
                "the broker is at its limit of {} connections",
                shared.config.max_connections
            );
            refuse(&shared, &mut writer, ErrorCode::TOO_MANY_CONNECTIONS, why).await;
            return;
        }
        Err(OpenError::ShuttingDown) => {
            let why = "the broker is shutting down".to_owned();
            refuse(&shared, &mut writer, ErrorCode::SHUTTING_DOWN, why).await;
            return;
        }
    };
    tracing::debug!(?peer, conn, role = ?hello.role, client = %hello.client_name, "connected");
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
    let sent = tokio::select! {
        _ = kill.cancelled() => false,
        r = writer.send(Frame::Welcome(welcome)) => r.is_ok(),
    };
    if !sent {
        let mut st = shared.lock();
        st.close_conn(conn, None, Instant::now());
        shared.after_change(&mut st);
        return;
    }
    // A heartbeat of zero disables pings and the silence timeout (§7).
    let heartbeat = Some(shared.config.heartbeat).filter(|h| !h.is_zero());
    let silent = heartbeat.map(|h| h * 3);
    let stuck = silent.unwrap_or(STALL_WITHOUT_HEARTBEAT);
    tokio::spawn(write_loop(
        WriterTask {
            shared: shared.clone(),
            conn,
            queue: queue.clone(),
            kill: kill.clone(),
            stop: stop.clone(),
            heartbeat,
            stuck,
        },
        writer,
        rx,
    ));
    read_loop(&shared, conn, &mut reader, &queue, &kill, &stop, silent).await;
    let mut st = shared.lock();
    st.close_conn(conn, None, Instant::now());
    shared.after_change(&mut st);
    tracing::debug!(?peer, conn, "disconnected");
}

fn check_hello(shared: &Shared, h: &Hello) -> Option<(ErrorCode, String)> {
    if h.min_version > h.max_version
        || h.min_version > PROTOCOL_VERSION
        || h.max_version < PROTOCOL_VERSION
    {
        let why = format!(
            "client speaks versions {}..={}, this broker only {PROTOCOL_VERSION}",
            h.min_version, h.max_version
        );
        return Some((ErrorCode::UNSUPPORTED_VERSION, why));
    }
    if let Some(token) = &shared.config.auth_token {
        let ok = h
            .token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if !ok {
            let why = if h.token.is_some() {
                "wrong token"
            } else {
                "this broker requires a token"
            };
            return Some((ErrorCode::UNAUTHORIZED, why.into()));
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn refuse<W: AsyncWrite + Unpin>(
    shared: &Shared,
    writer: &mut Writer<W>,
    code: ErrorCode,
    why: String,
) {
    tracing::debug!(%code, %why, "refusing connection");
    shared.count(|s| s.connections_refused += 1);
    let refuse = Refuse {
        code,
        reason: reason(why),
    };
    let _ = timeout(Duration::from_secs(5), writer.send(Frame::Refuse(refuse))).await;
}

async fn send_close<W: AsyncWrite + Unpin>(writer: &mut Writer<W>, code: ErrorCode, why: String) {
    let close = Close {
        code,
        reason: reason(why),
    };
    let _ = timeout(Duration::from_secs(5), writer.send(Frame::Close(close))).await;
}

/// How the reader saw its connection end.
enum End {
    Eof,
    Error(ProtocolError),
    Silent,
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    conn: u64,
    reader: &mut Reader<R>,
    queue: &OutQueue,
    kill: &CancellationToken,
    stop: &CancellationToken,
    silent: Option<Duration>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // One registration each for the connection's life, not one per wake-up.
    let killed = kill.cancelled();
    let stopped = stop.cancelled();
    tokio::pin!(killed, stopped);
    let mut idle = IdleTimer::new(silent, Instant::now());
    loop {
        while queue.is_full() {
            tokio::select! {
                biased;
                _ = &mut killed => return,
                _ = &mut stopped => return,
                _ = queue.drained.notified() => {}
            }
        }
        // Silence counts from here, as a `timeout` around the read would.
        idle.touch(Instant::now());
        let first = tokio::select! {
            biased;
            _ = &mut killed => return,
            _ = &mut stopped => return,
            r = reader.next() => Some(r),
            _ = idle.expired() => None,
        };
        let mut end = match first {
            None => Some(End::Silent),
            Some(None) => Some(End::Eof),
            Some(Some(Err(e))) => Some(End::Error(e)),
            Some(Some(Ok(f))) => {
                batch.push(f);
                None
            }
        };
        while end.is_none() && batch.len() < MAX_BATCH {
            match reader.next().now_or_never() {
                None => break,
                Some(None) => end = Some(End::Eof),
                Some(Some(Err(e))) => end = Some(End::Error(e)),
                Some(Some(Ok(f))) => batch.push(f),
            }
        }
        let next = handle_batch(shared, conn, &mut batch, end, silent);
        match next {
            Flow::Continue => {}
            Flow::Closed => return,
            Flow::Closing => {
                linger(reader, kill).await;
                return;
            }
        }
    }
}

/// Processes one batch and how the read ended, under the lock.
fn handle_batch(
    shared: &Shared,
    conn: u64,
    batch: &mut Vec<Frame>,
    end: Option<End>,
    silent: Option<Duration>,
) -> Flow {
    let now = Instant::now();
    let mut st = shared.lock();
    let mut flow = if batch.is_empty() {
        Flow::Continue
    } else {
        st.process(conn, batch.drain(..), now)
    };
    if flow == Flow::Continue {
        if let Some(end) = end {
            flow = match end {
                End::Eof => {
                    st.close_conn(conn, None, now);
                    Flow::Closed
                }
                End::Error(e) => {
                    tracing::debug!(conn, error = %e, "protocol error");
                    st.core.stats_mut().protocol_errors += 1;
                    let close = Close {
                        code: e.code(),
                        reason: reason(e.to_string()),
                    };
                    st.close_conn(conn, Some(close), now);
                    Flow::Closing
                }
                End::Silent => {
                    st.core.stats_mut().timeouts += 1;
                    let close = Close {
                        code: ErrorCode::HEARTBEAT_TIMEOUT,
                        reason: format!(
                            "nothing received for {} ms",
                            silent.unwrap_or_default().as_millis()
                        ),
                    };
                    st.close_conn(conn, Some(close), now);
                    Flow::Closing
                }
            };
        }
    }
    batch.clear();
    // Disk storage: when nobody writes the journal, write what a reply or
    // a delivery waits for here, without a hop to the flusher thread.
    let (mut st, _) = crate::journal::commit::inline(shared, st);
    let wake_flusher = shared.after_change_then_wake(&mut st);
    drop(st);
    if wake_flusher {
        shared.flush_cv.notify_one();
    }
    flow
}

/// After a `Close` was queued: discard whatever the peer still sends, until
/// it closes too (it sees our FIN after the Close) or [`LINGER`] passes, so
/// that closing with unread input does not reset the connection and
/// destroy the `Close` in flight.
async fn linger<R: AsyncRead + Unpin>(reader: &mut Reader<R>, kill: &CancellationToken) {
    let drain = async {
        let mut scratch = [0u8; 4096];
        loop {
            match reader.get_mut().read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = kill.cancelled() => {}
        _ = timeout(LINGER, drain) => {}
    }
}

/// What the writer task of one connection needs besides its socket.
struct WriterTask {
    shared: Arc<Shared>,
    conn: u64,
    queue: Arc<OutQueue>,
    kill: CancellationToken,
    stop: CancellationToken,
    /// `None`: heartbeats disabled, no idle `Ping`.
    heartbeat: Option<Duration>,
    /// Longest a batch may take to write before the peer counts as not
    /// reading.
    stuck: Duration,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    t: WriterTask,
    mut writer: Writer<W>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let mut nonce = 0u64;
    let killed = t.kill.cancelled();
    tokio::pin!(killed);
    let mut idle = IdleTimer::new(t.heartbeat, Instant::now());
    loop {
        // The heartbeat counts from here, as a `timeout` around the wait would.
        idle.touch(Instant::now());
        let first = tokio::select! {
            biased;
            _ = &mut killed => return,
            r = rx.recv() => Next::Out(r),
            _ = idle.expired() => Next::Ping,
        };
        let mut cost = 0;
        let wrote = tokio::select! {
            biased;
            _ = &mut killed => return,
            r = timeout(t.stuck, write_batch(&mut writer, &mut rx, first, &mut nonce, &mut cost)) => r,
        };
        match wrote {
            Ok(Ok(true)) => {
                if t.queue.written(cost) {
                    let mut st = t.shared.lock();
                    st.output_drained(t.conn, Instant::now());
                    t.shared.after_change(&mut st);
                }
            }
            Ok(Ok(false)) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                t.stop.cancel();
                return;
            }
            Err(_) => {
                tracing::debug!(
                    queued = t.queue.queued(),
                    "peer does not read; dropping the connection"
                );
                t.shared.count(|s| s.write_stalls += 1);
                t.stop.cancel();
                return;
            }
        }
    }
}

/// What the writer does next.
enum Next {
    /// Write this (`None`: every sender is gone, flush and end).
    Out(Option<Out>),
    /// Nothing written for a heartbeat interval: write a `Ping`.
    Ping,
}

/// Writes one batch; `Ok(false)` once the connection is done. Adds the
/// queue cost of every frame taken from `rx` to `cost`.
async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut Writer<W>,
    rx: &mut mpsc::UnboundedReceiver<Out>,
    first: Next,
    nonce: &mut u64,
    cost: &mut usize,
) -> Result<bool, ProtocolError> {
    match first {
        Next::Ping => {
            *nonce += 1;
            writer.feed(Frame::Ping(Ping { nonce: *nonce })).await?;
        }
        Next::Out(None) => {
            SinkExt::<Frame>::flush(writer).await?;
            return Ok(false);
        }
        Next::Out(Some(Out::Frames(frames, c))) => {
            *cost += c;
            for f in frames {
                writer.feed(f).await?
            }
        }
        Next::Out(Some(Out::Close(c))) => {
            writer.send(Frame::Close(c)).await?;
            writer.get_mut().shutdown().await?;
            return Ok(false);
        }
    }
    for _ in 0..MAX_BATCH {
        match rx.try_recv() {
            Ok(Out::Frames(frames, c)) => {
                *cost += c;
                for f in frames {
                    writer.feed(f).await?
                }
            }
            Ok(Out::Close(c)) => {
                writer.send(Frame::Close(c)).await?;
                writer.get_mut().shutdown().await?;
                return Ok(false);
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                SinkExt::<Frame>::flush(writer).await?;
                return Ok(false);
            }
        }
    }
    SinkExt::<Frame>::flush(writer).await?;
    Ok(true)
}
