//! Establishing a connection: the transport abstraction (TCP in production,
//! `tokio::io::duplex` in tests), the handshake, and one connect round over
//! every configured address.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mq_protocol::{Codec, ErrorCode, Frame, Hello, Role, Welcome, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::{ConnectError, SenderConfig};

/// A byte stream to a broker.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed transport.
pub(crate) type BoxIo = Box<dyn Transport>;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Opens a transport to an address.
pub(crate) type Connector = Arc<dyn Fn(String) -> BoxFuture<io::Result<BoxIo>> + Send + Sync>;

/// The production connector: TCP with Nagle disabled (the driver coalesces
/// writes itself).
pub(crate) fn tcp_connector() -> Connector {
    Arc::new(|addr: String| {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxIo)
        })
    })
}

/// A connection that completed the handshake, and bytes that arrived after
/// the `Welcome` (already read, not yet decoded).
pub(crate) struct Established {
    pub(crate) io: BoxIo,
    pub(crate) welcome: Welcome,
    pub(crate) leftover: BytesMut,
    pub(crate) address: String,
}

/// Why one address failed.
pub(crate) enum AttemptError {
    Io(io::Error),
    Refused { code: ErrorCode, reason: String },
    Handshake(String),
}

/// Connects to `addr` and completes the handshake.
async fn connect_one(
    connector: &Connector,
    cfg: &SenderConfig,
    addr: &str,
) -> Result<Established, AttemptError> {
    let mut io = connector(addr.to_owned()).await.map_err(AttemptError::Io)?;
    let hello = Hello {
        token: cfg.auth_token.clone(),
        ..Hello::new(Role::Sender, cfg.client_name.clone())
    };
    let mut codec = Codec::new(cfg.max_frame_size);
    let mut buf = BytesMut::new();
    Frame::Hello(hello)
        .encode(&mut buf)
        .map_err(|e| AttemptError::Handshake(e.to_string()))?;
    io.write_all(&buf).await.map_err(AttemptError::Io)?;
    io.flush().await.map_err(AttemptError::Io)?;
    buf.clear();
    let frame = loop {
        match codec.decode(&mut buf) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) => return Err(AttemptError::Handshake(e.to_string())),
        }
        let n = io.read_buf(&mut buf).await.map_err(AttemptError::Io)?;
        if n == 0 {
            return Err(AttemptError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "broker closed the connection during the handshake",
            )));
        }
    };
    match frame {
        Frame::Welcome(w) if w.version == PROTOCOL_VERSION => Ok(Established {
            io,
            welcome: w,
            leftover: buf,
            address: addr.to_owned(),
        }),
        Frame::Welcome(w) => Err(AttemptError::Handshake(format!(
            "broker chose protocol version {}, this client speaks {PROTOCOL_VERSION}",
            w.version
        ))),
        Frame::Refuse(r) => Err(AttemptError::Refused {
            code: r.code,
            reason: r.reason,
        }),
        Frame::Close(c) => Err(AttemptError::Refused {
            code: c.code,
            reason: c.reason,
        }),
        other => Err(AttemptError::Handshake(format!(
            "expected Welcome, got {}",
            other.name()
        ))),
    }
}

/// Tries every address once, in order, each bounded by `connect_timeout`.
/// Returns the first that completes the handshake.
pub(crate) async fn connect_round(
    connector: Connector,
    cfg: Arc<SenderConfig>,
) -> Result<Established, ConnectError> {
    let mut last: Option<ConnectError> = None;
    let mut last_io = io::Error::new(io::ErrorKind::NotFound, "no address configured");
    for addr in &cfg.addresses {
        let attempt =
            tokio::time::timeout(cfg.connect_timeout, connect_one(&connector, &cfg, addr)).await;
        match attempt {
            Ok(Ok(est)) => return Ok(est),
            Ok(Err(AttemptError::Io(e))) => {
                tracing::debug!(address = %addr, error = %e, "connect failed");
                last_io = e;
            }
            Ok(Err(AttemptError::Refused { code, reason })) => {
                tracing::warn!(address = %addr, %code, %reason, "broker refused the handshake");
                last = Some(ConnectError::Refused {
                    address: addr.clone(),
                    code,
                    reason,
                });
            }
            Ok(Err(AttemptError::Handshake(reason))) => {
                tracing::warn!(address = %addr, %reason, "handshake failed");
                last = Some(ConnectError::Handshake {
                    address: addr.clone(),
                    reason,
                });
            }
            Err(_) => {
                tracing::debug!(address = %addr, "connect timed out");
                last_io = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no Welcome within connect_timeout ({:?})",
                        cfg.connect_timeout
                    ),
                );
            }
        }
    }
    Err(last.unwrap_or(ConnectError::Unreachable {
        addresses: cfg.addresses.clone(),
        last: last_io,
    }))
}

/// The heartbeat interval to use: the config's, else the broker's (0 = off).
pub(crate) fn heartbeat(cfg: &SenderConfig, welcome: &Welcome) -> Option<Duration> {
    match cfg.heartbeat {
        Some(h) => Some(h),
        None if welcome.heartbeat_ms == 0 => None,
        None => Some(Duration::from_millis(u64::from(welcome.heartbeat_ms))),
    }
}
