//! Establishing one connection: transport, `Hello`/`Welcome`, then
//! `Subscribe`/`SubscribeOk`, all bounded by `connect_timeout`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use mq_protocol::{Codec, Deliver, Frame, Hello, Pong, Role, Subscribe};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::config::ReceiverConfig;
use crate::error::ConnectError;

/// Any byte stream the driver can speak the protocol over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;

/// Opens a transport to an address. TCP in production; tests inject
/// in-memory duplex pipes.
pub(crate) type Connector =
    Arc<dyn Fn(String) -> BoxFuture<'static, io::Result<BoxIo>> + Send + Sync>;

pub(crate) fn tcp_connector() -> Connector {
    Arc::new(|addr: String| {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxIo)
        })
    })
}

/// The subscription id of `topics[i]` is `i + 1`, on every connection.
pub(crate) fn sub_count(config: &ReceiverConfig) -> u32 {
    u32::try_from(config.all_topics().count()).unwrap_or(u32::MAX)
}

/// A connection past the handshake, subscribed.
pub(crate) struct Conn {
    pub framed: Framed<BoxIo, Codec>,
    /// `None` when the broker disabled heartbeats (`heartbeat_ms == 0`).
    pub heartbeat: Option<Duration>,
    /// Deliveries that arrived before `SubscribeOk`.
    pub early: Vec<Deliver>,
}

/// Connects to `addr`, says hello and subscribes to every topic with credit
/// `prefetch` each.
pub(crate) async fn establish(
    config: Arc<ReceiverConfig>,
    connector: Connector,
    addr: String,
) -> Result<Conn, ConnectError> {
    let timeout = config.connect_timeout;
    match tokio::time::timeout(timeout, handshake(&config, connector, addr.clone())).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout { addr, timeout }),
    }
}

async fn handshake(
    config: &ReceiverConfig,
    connector: Connector,
    addr: String,
) -> Result<Conn, ConnectError> {
    let io = connector(addr.clone())
        .await
        .map_err(|source| ConnectError::Io { addr, source })?;
    let mut framed = Framed::new(io, Codec::new(config.max_frame_size));
    let mut hello = Hello::new(Role::Receiver, config.client_name.clone());
    hello.token = config.auth_token.clone();
    framed.send(Frame::Hello(hello)).await?;
    let heartbeat = match framed.next().await {
        Some(Ok(Frame::Welcome(w))) => {
            (w.heartbeat_ms > 0).then(|| Duration::from_millis(u64::from(w.heartbeat_ms)))
        }
        Some(Ok(Frame::Refuse(r))) => {
            return Err(ConnectError::Refused {
                code: r.code,
                reason: r.reason,
            })
        }
        Some(Ok(Frame::Close(c))) => {
            return Err(ConnectError::Refused {
                code: c.code,
                reason: c.reason,
            })
        }
        Some(Ok(other)) => return Err(ConnectError::UnexpectedFrame(other.name())),
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ConnectError::Closed),
    };
    let subs = sub_count(config);
    for (sub_id, topic) in (1..).zip(config.all_topics()) {
        framed
            .feed(Frame::Subscribe(Subscribe {
                sub_id,
                credit: config.prefetch,
                topic: topic.to_owned(),
                group: config.group.clone(),
            }))
            .await?;
    }
    SinkExt::<Frame>::flush(&mut framed).await?;
    let mut early = Vec::new();
    let mut active = vec![false; subs as usize];
    while active.iter().any(|a| !a) {
        match framed.next().await {
            Some(Ok(Frame::SubscribeOk(ok))) => match (ok.sub_id as usize)
                .checked_sub(1)
                .and_then(|i| active.get_mut(i))
            {
                Some(a) if !*a => *a = true,
                _ => return Err(ConnectError::UnexpectedFrame("SubscribeOk")),
            },
            // A permanent refusal (bad topic or group, a broker limit).
            Some(Ok(Frame::SubscribeError(e))) if (1..=subs).contains(&e.sub_id) => {
                return Err(ConnectError::Refused {
                    code: e.code,
                    reason: e.reason,
                })
            }
            Some(Ok(Frame::Deliver(d))) => early.push(d),
            Some(Ok(Frame::Ping(p))) => framed.send(Frame::Pong(Pong { nonce: p.nonce })).await?,
            Some(Ok(Frame::Pong(_) | Frame::Extension { .. })) => {}
            Some(Ok(Frame::Close(c))) => {
                return Err(ConnectError::Refused {
                    code: c.code,
                    reason: c.reason,
                })
            }
            Some(Ok(other)) => return Err(ConnectError::UnexpectedFrame(other.name())),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ConnectError::Closed),
        }
    }
    Ok(Conn {
        framed,
        heartbeat,
        early,
    })
}
