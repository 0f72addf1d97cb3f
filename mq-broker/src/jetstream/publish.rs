//! The first half on JetStream: `Message` → publish with `Nats-Msg-Id` →
//! `Reply` from the PubAck, and the holding consumers that keep a topic's
//! messages until its first group exists.

use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::ErrorCode as JsCode;
use futures::TryStreamExt;
use mq_protocol::{ErrorCode, Frame, Message, Reply, ReplyStatus};
use tokio::sync::OwnedSemaphorePermit;

use super::conn::Out;
use super::{bump, envelope, names, Shared};
use crate::state::reason;

/// Checks `m`, publishes it and answers on `out`; the permit bounds the
/// connection's publishes waiting for a PubAck.
pub(crate) fn start(shared: Arc<Shared>, m: Message, out: Out, permit: OwnedSemaphorePermit) {
    if let Err((code, why)) = check(&shared, &m) {
        bump(&shared.counters.rejected);
        let _ = out.send(reply(
            &m,
            ReplyStatus::Rejected {
                code,
                reason: reason(why),
            },
        ));
        return;
    }
    tokio::spawn(async move {
        let status = match publish(&shared, &m).await {
            Ok(false) => {
                bump(&shared.counters.stored);
                ReplyStatus::Stored
            }
            Ok(true) => {
                bump(&shared.counters.duplicates);
                ReplyStatus::Duplicate
            }
            Err((code, why)) => {
                tracing::debug!(id = %m.id, %code, %why, "publish not acknowledged");
                bump(&shared.counters.rejected);
                ReplyStatus::Rejected {
                    code,
                    reason: reason(why),
                }
            }
        };
        let _ = out.send(reply(&m, status));
        drop(permit);
    });
}

fn reply(m: &Message, status: ReplyStatus) -> Frame {
    Frame::Reply(Reply {
        id: m.id,
        attempt: m.attempt,
        status,
    })
}

fn check(shared: &Shared, m: &Message) -> Result<(), (ErrorCode, String)> {
    crate::limits::check_message(
        m,
        shared.config.max_message_size,
        shared.config.max_frame_size as usize,
    )
}

/// `Ok(duplicate)` once JetStream acknowledged; never `Ok` without a PubAck.
async fn publish(shared: &Shared, m: &Message) -> Result<bool, (ErrorCode, String)> {
    ensure_kept(shared, &m.topic).await.map_err(|e| {
        (
            ErrorCode::BUSY,
            format!("cannot prepare topic in JetStream: {e}"),
        )
    })?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        m.id.to_string().as_str(),
    );
    let body = envelope::encode(&m.topic, &m.headers, &m.payload);
    let subject = names::topic_subject(&shared.js.subject_prefix, &m.topic);
    let ack = shared
        .ctx
        .publish_with_headers(subject, headers, body)
        .await
        .map_err(|e| classify(&e))?
        .await
        .map_err(|e| classify(&e))?;
    Ok(ack.duplicate)
}

/// A publish without a PubAck is transient: `STORE_FULL` when the stream
/// or the servers are at a storage limit, `BUSY` otherwise (timeout,
/// connection loss, no leader, an ID still being replicated).
fn classify(e: &PublishError) -> (ErrorCode, String) {
    let full = [
        JsCode::STREAM_STORE_FAILED,
        JsCode::INSUFFICIENT_RESOURCES,
        JsCode::STORAGE_RESOURCES_EXCEEDED,
        JsCode::MEMORY_RESOURCES_EXCEEDED,
        JsCode::ACCOUNT_RESOURCES_EXCEEDED,
        JsCode::STREAM_MAX_STREAM_BYTES_EXCEEDED,
    ];
    let js_code = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .map(|j| j.error_code());
    let code = match (e.kind(), js_code) {
        (PublishErrorKind::Other, Some(c)) if full.contains(&c) => ErrorCode::STORE_FULL,
        _ => ErrorCode::BUSY,
    };
    (code, format!("JetStream did not acknowledge: {e}"))
}

/// Makes sure `topic` has a consumer in the stream before this gateway
/// first publishes to it (see the module docs: holding consumers).
pub(crate) async fn ensure_kept(shared: &Shared, topic: &str) -> Result<(), String> {
    let cell = kept_cell(shared, topic);
    cell.get_or_try_init(|| hold(shared, topic))
        .await
        .map(|_| ())
}

pub(crate) fn kept_cell(shared: &Shared, topic: &str) -> Arc<tokio::sync::OnceCell<()>> {
    let mut kept = shared.kept.lock().unwrap_or_else(|p| p.into_inner());
    kept.entry(topic.to_owned()).or_default().clone()
}

async fn hold(shared: &Shared, topic: &str) -> Result<(), String> {
    if has_group(shared, topic).await? {
        return Ok(());
    }
    let name = names::holding_consumer(topic);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("holds {topic:?} until its first group exists")),
        filter_subject: names::topic_subject(&shared.js.subject_prefix, topic),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    };
    shared
        .stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| e.to_string())?;
    // A group created meanwhile by another gateway deleted the holding
    // consumer before this one made it, or will after: look again.
    if has_group(shared, topic).await? {
        let _ = shared.stream.delete_consumer(&name).await;
    }
    Ok(())
}

async fn has_group(shared: &Shared, topic: &str) -> Result<bool, String> {
    let subject = names::topic_subject(&shared.js.subject_prefix, topic);
    let mut infos = shared.stream.consumers();
    while let Some(info) = infos.try_next().await.map_err(|e| e.to_string())? {
        if info.name.starts_with("G__") && info.config.filter_subject == subject {
            return Ok(true);
        }
    }
    Ok(false)
}
