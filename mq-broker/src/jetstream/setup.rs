//! Start of a gateway: connect to NATS, check `max_payload`, create or
//! check the message and dead-letter streams.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::config::JetStreamConfig;
use super::GatewayError;

/// Bytes a message needs on top of the largest frame: NATS headers
/// (`Nats-Msg-Id` and framing) and the envelope's topic and header framing.
pub(crate) const NATS_OVERHEAD: usize = 4096;

pub(crate) async fn connect(
    js: &JetStreamConfig,
    name: &str,
    max_frame_size: u32,
) -> Result<(async_nats::Client, jetstream::Context), GatewayError> {
    let opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(js.connect_timeout)
        // Unlimited reconnects: a gateway outlives any NATS node.
        .max_reconnects(None);
    let servers: Vec<async_nats::ServerAddr> = js
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Nats(format!("bad NATS server URL: {e}")))?;
    let client = tokio::time::timeout(js.connect_timeout, opts.connect(servers))
        .await
        .map_err(|_| {
            GatewayError::Nats(format!(
                "no NATS server answered within {:?}",
                js.connect_timeout
            ))
        })?
        .map_err(|e| GatewayError::Nats(format!("cannot connect to NATS: {e}")))?;
    let need = max_frame_size as usize + NATS_OVERHEAD;
    let have = client.server_info().max_payload;
    if have < need {
        return Err(GatewayError::Config(format!(
            "the NATS server's max_payload is {have} bytes; a frame of max_frame_size {max_frame_size} \
             needs {need}: set `max_payload: {}` in every nats-server's config (or lower max_frame_size)",
            need.next_power_of_two()
        )));
    }
    let mut ctx = jetstream::new(client.clone());
    ctx.set_timeout(js.publish_timeout);
    Ok((client, ctx))
}

/// Creates the streams if missing, then checks what must hold of them.
pub(crate) async fn streams(
    ctx: &jetstream::Context,
    js: &JetStreamConfig,
) -> Result<stream::Stream, GatewayError> {
    let messages = stream::Config {
        name: js.stream.clone(),
        subjects: vec![format!("{}.t.>", js.subject_prefix)],
        retention: stream::RetentionPolicy::Interest,
        storage: stream::StorageType::File,
        num_replicas: js.replicas,
        duplicate_window: js.duplicate_window,
        discard: stream::DiscardPolicy::New,
        max_messages: js.max_messages,
        max_bytes: js.max_bytes,
        ..Default::default()
    };
    let dead = stream::Config {
        name: js.dead_letter_stream(),
        subjects: vec![format!("{}.dlq.>", js.subject_prefix)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: js.replicas,
        duplicate_window: js.duplicate_window,
        ..Default::default()
    };
    let mut s = retry(|| ctx.get_or_create_stream(messages.clone())).await?;
    retry(|| ctx.get_or_create_stream(dead.clone())).await?;
    let info = s
        .info()
        .await
        .map_err(|e| GatewayError::Nats(format!("stream {}: {e}", js.stream)))?;
    let c = &info.config;
    if c.retention != stream::RetentionPolicy::Interest {
        return Err(GatewayError::Config(format!(
            "stream {} exists with retention {:?}; the gateway needs interest retention \
             (delete it or choose another --stream)",
            js.stream, c.retention
        )));
    }
    if c.duplicate_window <= js.sender_send_timeout {
        return Err(GatewayError::Config(format!(
            "stream {} has duplicate_window {:?}, not longer than the senders' send_timeout {:?}: \
             raise it (nats stream edit {} --dupe-window=...)",
            js.stream, c.duplicate_window, js.sender_send_timeout, js.stream
        )));
    }
    if c.num_replicas != js.replicas || c.storage != stream::StorageType::File {
        tracing::warn!(
            stream = %js.stream,
            replicas = c.num_replicas,
            storage = ?c.storage,
            "the existing stream's replicas or storage differ from this gateway's settings; using the stream as it is"
        );
    }
    Ok(s)
}

/// JetStream answers API requests only once its meta leader is elected:
/// right after a cluster starts, retry for a while.
async fn retry<T, E: std::fmt::Display, F, Fut>(mut f: F) -> Result<T, GatewayError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut last = String::new();
    for _ in 0..50 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(GatewayError::Nats(format!(
        "JetStream did not answer: {last}"
    )))
}
