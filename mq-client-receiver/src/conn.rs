//! Establishing one connection: a connect round over the addresses with
//! [`mq_conn::Dialer`] (transport, TLS, `Hello`/`Welcome`), then
//! `Subscribe`/`SubscribeOk` for every topic, bounded by `connect_timeout`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use mq_conn::{BoxIo, ConnectError, ConnectionEvent, Dialer, Established, Events};
use mq_protocol::{Codec, Deliver, Frame, Pong, Subscribe};
use tokio_util::codec::{Framed, FramedParts};

use crate::config::ReceiverConfig;

/// The read buffer's capacity (tokio-util's `Framed` default).
const READ_BUF_CAPACITY: usize = 8 * 1024;

/// The subscription id of `all_topics()[i]` is `i + 1`, on every connection.
pub(crate) fn sub_count(config: &ReceiverConfig) -> u32 {
    u32::try_from(config.all_topics().count()).unwrap_or(u32::MAX)
}

/// A connection past the handshake, subscribed.
pub(crate) struct Conn {
    pub framed: Framed<BoxIo, Codec>,
    /// `None` when the broker disabled heartbeats (`heartbeat_ms == 0`).
    pub heartbeat: Option<Duration>,
    /// Deliveries that arrived before the last `SubscribeOk`.
    pub early: Vec<Deliver>,
}

/// One connect round over `config.addresses` (each address once, in
/// order), then the subscriptions on the connection that answered.
pub(crate) async fn connect_round(
    config: Arc<ReceiverConfig>,
    dialer: Dialer,
    events: Events,
) -> Result<Conn, ConnectError> {
    let est = dialer.connect_round(&config.addresses).await?;
    let address = est.address.clone();
    let timeout = config.connect_timeout;
    match tokio::time::timeout(timeout, subscribe(&config, est, &events)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout { address, timeout }),
    }
}

async fn subscribe(
    config: &ReceiverConfig,
    est: Established,
    events: &Events,
) -> Result<Conn, ConnectError> {
    let address = est.address;
    let heartbeat = mq_conn::heartbeat_interval(None, &est.welcome);
    let mut parts = FramedParts::new::<Frame>(est.io, Codec::new(config.max_frame_size));
    // A buffer of Framed's usual size with the bytes read behind the
    // Welcome: the leftover's own capacity may be a few bytes, and a
    // shared (zero-copy payloads) buffer regrows to its original capacity,
    // which would make every later read a tiny one.
    let mut read_buf = BytesMut::with_capacity(READ_BUF_CAPACITY.max(est.leftover.len()));
    read_buf.extend_from_slice(&est.leftover);
    parts.read_buf = read_buf;
    let mut framed = Framed::from_parts(parts);
    let io_err = |e: io::Error| ConnectError::Io {
        address: address.clone(),
        source: e,
    };
    let bad = |reason: String| ConnectError::Handshake {
        address: address.clone(),
        reason,
    };
    let sent = |e: mq_protocol::ProtocolError| bad(format!("writing Subscribe: {e}"));
    let subs = sub_count(config);
    for (sub_id, topic) in (1..).zip(config.all_topics()) {
        framed
            .feed(Frame::Subscribe(Subscribe {
                sub_id,
                credit: config.prefetch,
                topic: topic.to_owned(),
                group: config.group.clone(),
            }))
            .await
            .map_err(sent)?;
    }
    SinkExt::<Frame>::flush(&mut framed).await.map_err(sent)?;
    let refused = |code, reason: String| {
        events.emit(ConnectionEvent::Refused {
            address: address.clone(),
            code,
            reason: reason.clone(),
        });
        ConnectError::Refused {
            address: address.clone(),
            code,
            reason,
        }
    };
    let mut early = Vec::new();
    let mut active = vec![false; subs as usize];
    while active.iter().any(|a| !a) {
        match framed.next().await {
            Some(Ok(Frame::SubscribeOk(ok))) => match (ok.sub_id as usize)
                .checked_sub(1)
                .and_then(|i| active.get_mut(i))
            {
                Some(a) if !*a => *a = true,
                _ => return Err(bad(format!("unexpected SubscribeOk({})", ok.sub_id))),
            },
            // A permanent refusal (bad topic or group, a broker limit).
            Some(Ok(Frame::SubscribeError(e))) if (1..=subs).contains(&e.sub_id) => {
                return Err(refused(e.code, e.reason));
            }
            Some(Ok(Frame::Deliver(d))) => early.push(d),
            Some(Ok(Frame::Ping(p))) => framed
                .send(Frame::Pong(Pong { nonce: p.nonce }))
                .await
                .map_err(sent)?,
            Some(Ok(Frame::Pong(_) | Frame::Extension { .. })) => {}
            Some(Ok(Frame::Close(c))) => return Err(refused(c.code, c.reason)),
            Some(Ok(other)) => {
                return Err(bad(format!(
                    "unexpected {} frame while subscribing",
                    other.name()
                )))
            }
            Some(Err(mq_protocol::ProtocolError::Io(e))) => return Err(io_err(e)),
            Some(Err(e)) => return Err(bad(e.to_string())),
            None => {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection while subscribing",
                )))
            }
        }
    }
    Ok(Conn {
        framed,
        heartbeat,
        early,
    })
}
