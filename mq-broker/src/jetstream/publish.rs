//! The first half on JetStream: `Message` → publish with `Nats-Msg-Id` →
//! `Reply` from the PubAck, and the holding consumers that keep a topic's
//! messages until its first group exists.
//!
//! **Pipelined.** A sender connection's reader hands each message to
//! [`Publisher::publish`], which sends it to NATS at once (async-nats
//! queues it on the NATS connection, whose writer batches whatever is
//! queued into one write) and does not wait for its PubAck: the PubAck
//! future goes to the connection's *acker* task, which waits for any number
//! of them at once and answers each as it lands. No task per message, no
//! PubAck awaited before the next publish; at most [`MAX_PUBLISHING`]
//! messages of one connection wait for their PubAck (past it the reader
//! stops reading: backpressure), and async-nats bounds the whole gateway's
//! outstanding PubAcks (5 000 by default) the same way.
//!
//! A topic's first message takes the slow path (a task that makes sure the
//! topic has a consumer, see [`ensure_kept`], then publishes); once the
//! topic is known to be kept, the connection caches its NATS subject and
//! every later message of it takes the fast path.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::ErrorCode as JsCode;
use async_nats::Subject;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use mq_protocol::{ErrorCode, Frame, Message, MessageId, Reply, ReplyStatus};
use tokio::sync::{mpsc, OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::conn::Out;
use super::{bump, envelope, names, Shared};
use crate::state::reason;

/// Messages of one sender connection waiting for their PubAck at once;
/// past it the gateway stops reading that connection (backpressure).
pub(crate) const MAX_PUBLISHING: usize = 4096;

/// Topics a connection caches the subject of; past it the cache starts
/// over (a sender publishing to ever new topics pays the slow lookup
/// again, nothing else).
const MAX_CACHED_TOPICS: usize = 4096;

/// A topic as one connection publishes to it.
struct Topic {
    subject: Subject,
    kept: Arc<OnceCell<()>>,
}

/// A message sent to NATS, waiting for its PubAck.
struct Waiting {
    ack: PublishAckFuture,
    id: MessageId,
    attempt: u32,
    _permit: OwnedSemaphorePermit,
}

/// One sender connection's side of publishing: its window, its topics, and
/// the channel to its acker task.
pub(crate) struct Publisher {
    shared: Arc<Shared>,
    out: Out,
    window: Arc<Semaphore>,
    topics: HashMap<String, Topic>,
    acks: mpsc::UnboundedSender<Waiting>,
}

impl Publisher {
    /// A publisher answering on `out`; its acker task ends once the
    /// publisher is dropped and every PubAck it waits for landed or timed
    /// out (or at once on `kill`).
    pub(crate) fn new(shared: Arc<Shared>, out: Out, kill: CancellationToken) -> Publisher {
        let (acks, rx) = mpsc::unbounded_channel();
        tokio::spawn(acker(shared.clone(), rx, out.clone(), kill));
        Publisher {
            shared,
            out,
            window: Arc::new(Semaphore::new(MAX_PUBLISHING)),
            topics: HashMap::new(),
            acks,
        }
    }

    /// Checks `m`, sends it to NATS and hands its PubAck to the acker.
    /// Waits only for room: a slot of the connection's window, and room in
    /// async-nats's queue. `None` when `kill` fired meanwhile.
    pub(crate) async fn publish(&mut self, m: Message, kill: &CancellationToken) -> Option<()> {
        if let Err((code, why)) = check(&self.shared, &m) {
            self.answer(&m, rejected(&self.shared, code, why));
            return Some(());
        }
        let permit = tokio::select! {
            _ = kill.cancelled() => return None,
            p = self.window.clone().acquire_owned() => p.ok()?,
        };
        let topic = self.topic(&m.topic);
        let (subject, kept) = (topic.subject.clone(), topic.kept.initialized());
        if !kept {
            // The topic's first message (for this gateway): make sure it
            // has a consumer, off the reader's path.
            let (shared, out) = (self.shared.clone(), self.out.clone());
            tokio::spawn(async move {
                let status = match ensure_kept(&shared, &m.topic).await {
                    Ok(()) => match send(&shared, subject, &m).await {
                        Ok(ack) => status(&shared, m.id, ack.await),
                        Err(e) => failed(&shared, m.id, &e),
                    },
                    Err(e) => {
                        let why = format!("cannot prepare topic in JetStream: {e}");
                        rejected(&shared, ErrorCode::BUSY, why)
                    }
                };
                let _ = out.send(reply(m.id, m.attempt, status));
                drop(permit);
            });
            return Some(());
        }
        let sent = tokio::select! {
            _ = kill.cancelled() => return None,
            r = send(&self.shared, subject, &m) => r,
        };
        match sent {
            Ok(ack) => {
                let _ = self.acks.send(Waiting {
                    ack,
                    id: m.id,
                    attempt: m.attempt,
                    _permit: permit,
                });
            }
            Err(e) => {
                let status = failed(&self.shared, m.id, &e);
                self.answer(&m, status);
            }
        }
        Some(())
    }

    fn topic(&mut self, topic: &str) -> &Topic {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= MAX_CACHED_TOPICS {
                self.topics.clear();
            }
            let t = Topic {
                subject: Subject::from(names::topic_subject(&self.shared.js.subject_prefix, topic)),
                kept: kept_cell(&self.shared, topic),
            };
            self.topics.insert(topic.to_owned(), t);
        }
        &self.topics[topic]
    }

    fn answer(&self, m: &Message, status: ReplyStatus) {
        let _ = self.out.send(reply(m.id, m.attempt, status));
    }
}

/// Waits for every PubAck handed over, any number at once, and answers
/// each as it lands.
async fn acker(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Waiting>,
    out: Out,
    kill: CancellationToken,
) {
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        tokio::select! {
            _ = kill.cancelled() => return,
            w = rx.recv(), if open => match w {
                Some(w) => {
                    let shared = shared.clone();
                    waiting.push(async move {
                        let r = w.ack.await;
                        let status = status(&shared, w.id, r);
                        drop(w._permit);
                        reply(w.id, w.attempt, status)
                    });
                }
                None => open = false,
            },
            Some(frame) = waiting.next(), if !waiting.is_empty() => {
                let _ = out.send(frame);
            }
        }
    }
}

/// Sends `m` to NATS; the PubAck future, or why it was not sent.
async fn send(
    shared: &Shared,
    subject: Subject,
    m: &Message,
) -> Result<PublishAckFuture, PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        m.id.to_string().as_str(),
    );
    let body = envelope::encode(&m.topic, &m.headers, &m.payload);
    shared
        .ctx
        .publish_with_headers(subject, headers, body)
        .await
}

/// The answer for a PubAck (or its failure).
fn status(
    shared: &Shared,
    id: MessageId,
    r: Result<async_nats::jetstream::publish::PublishAck, PublishError>,
) -> ReplyStatus {
    match r {
        Ok(ack) if ack.duplicate => {
            bump(&shared.counters.duplicates);
            ReplyStatus::Duplicate
        }
        Ok(_) => {
            bump(&shared.counters.stored);
            ReplyStatus::Stored
        }
        Err(e) => failed(shared, id, &e),
    }
}

/// Never `Stored` without a PubAck: a failed publish is transient.
fn failed(shared: &Shared, id: MessageId, e: &PublishError) -> ReplyStatus {
    let (code, why) = classify(e);
    tracing::debug!(%id, %code, %why, "publish not acknowledged");
    rejected(shared, code, why)
}

fn rejected(shared: &Shared, code: ErrorCode, why: String) -> ReplyStatus {
    bump(&shared.counters.rejected);
    ReplyStatus::Rejected {
        code,
        reason: reason(why),
    }
}

fn reply(id: MessageId, attempt: u32, status: ReplyStatus) -> Frame {
    Frame::Reply(Reply {
        id,
        attempt,
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
