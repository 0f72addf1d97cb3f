//! The second half on JetStream: one subscription of a receiver connection
//! served from its group's durable pull consumer.
//!
//! Two tasks per subscription: the *puller* turns credit into pull requests
//! (never more messages than credit left), the *subscription task* sends
//! `Deliver`s, passes acks and nacks on, and dead-letters a message pulled
//! for the `(max_deliveries + 1)`-th time. When the connection closes, every
//! delivery still outstanding, and every message pulled but not yet
//! delivered, is nak'ed at once so that another member gets it without
//! waiting for `ack_wait`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{AckKind, Message as JsMessage};
use futures::StreamExt;
use mq_protocol::{Deliver, Frame, MessageId, Subscribe};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::conn::Out;
use super::{bump, envelope, names, publish, Shared};

/// Most messages asked for in one pull request.
const MAX_PULL: usize = 256;

/// A frame of the receiver for one subscription.
pub(crate) enum SubCmd {
    Ack(MessageId),
    Nack(MessageId, u32),
    Credit(u32),
}

/// Applies the single node's `max_groups_per_topic` and `max_topics` to a
/// `Subscribe` of `group` on `topic`, counting the stream's group consumers
/// (one per group, whichever gateway made it): `Ok(Some((code, why)))` for
/// a `SubscribeError` with the single node's code and reason, `Ok(None)`
/// when the group exists already or fits, `Err` when JetStream could not
/// be asked. Two gateways creating groups at the same instant can both pass
/// the check (the count is read, not reserved): the limits are exact for
/// one gateway and can be exceeded by at most one group per concurrent
/// gateway.
pub(crate) async fn check_limits(
    shared: &Shared,
    topic: &str,
    group: &str,
) -> Result<Option<(mq_protocol::ErrorCode, String)>, String> {
    let name = names::group_consumer(group, topic);
    let subject = names::topic_subject(&shared.js.subject_prefix, topic);
    let mut topics = std::collections::HashSet::new();
    let mut groups = 0usize;
    let mut infos = shared.stream.consumers();
    while let Some(info) = futures::TryStreamExt::try_next(&mut infos)
        .await
        .map_err(|e| e.to_string())?
    {
        if !info.name.starts_with("G__") {
            continue;
        }
        if info.name == name {
            return Ok(None);
        }
        if info.config.filter_subject == subject {
            groups += 1;
        }
        topics.insert(info.config.filter_subject);
    }
    let (max_groups, max_topics) = (shared.config.max_groups_per_topic, shared.config.max_topics);
    let refused = if groups > 0 && groups >= max_groups {
        Some(format!(
            "topic has its limit of {max_groups} consumer groups"
        ))
    } else if groups == 0 && topics.len() >= max_topics {
        Some(format!(
            "the broker has its limit of {max_topics} topics with consumer groups"
        ))
    } else {
        None
    };
    Ok(refused.map(|why| (mq_protocol::ErrorCode::LIMIT_REACHED, why)))
}

/// Creates (or finds) the group's durable consumer, then drops the topic's
/// holding consumer: the group now keeps the topic's messages.
pub(crate) async fn group_consumer(
    shared: &Shared,
    topic: &str,
    group: &str,
) -> Result<PullConsumer, String> {
    let name = names::group_consumer(group, topic);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("group {group:?} of topic {topic:?}")),
        filter_subject: names::topic_subject(&shared.js.subject_prefix, topic),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: shared.js.ack_wait,
        max_deliver: -1,
        max_ack_pending: shared.js.max_ack_pending,
        ..Default::default()
    };
    let consumer = shared
        .stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| e.to_string())?;
    match shared
        .stream
        .delete_consumer(&names::holding_consumer(topic))
        .await
    {
        Ok(_) => tracing::debug!(%topic, %group, "first group: holding consumer removed"),
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => return Err(format!("cannot remove the holding consumer: {e}")),
    }
    let _ = publish::kept_cell(shared, topic).set(());
    Ok(consumer)
}

struct Outstanding {
    acker: Acker,
    attempt: u32,
}

/// Serves one subscription until `stop` (the connection closed).
pub(crate) async fn run(
    shared: Arc<Shared>,
    consumer: PullConsumer,
    sub: Subscribe,
    mut cmds: mpsc::UnboundedReceiver<SubCmd>,
    out: Out,
    stop: CancellationToken,
) {
    let credit = Arc::new(Semaphore::new(0));
    add_credit(&credit, sub.credit);
    let (tx, mut pulled) = mpsc::channel::<JsMessage>(MAX_PULL);
    let puller = tokio::spawn(pull_loop(
        shared.clone(),
        consumer,
        credit.clone(),
        tx,
        stop.clone(),
    ));
    let consumer_name = names::group_consumer(&sub.group, &sub.topic);
    let mut rng = SmallRng::seed_from_u64(shared.seed ^ u64::from(sub.sub_id));
    let mut outstanding: HashMap<MessageId, Outstanding> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            c = cmds.recv() => match c {
                None => break,
                Some(SubCmd::Credit(n)) => add_credit(&credit, n),
                Some(SubCmd::Ack(id)) => match outstanding.remove(&id) {
                    Some(o) => {
                        bump(&shared.counters.acked);
                        let _ = o.acker.ack().await;
                    }
                    None => bump(&shared.counters.acks_ignored),
                },
                Some(SubCmd::Nack(id, ms)) => match outstanding.remove(&id) {
                    Some(o) => {
                        // Capped like the single node's (max_nack_delay).
                        let delay = if ms == 0 {
                            shared.config.redelivery.delay_with(o.attempt, rand::Rng::gen(&mut rng))
                        } else {
                            Duration::from_millis(u64::from(ms))
                                .min(shared.config.max_nack_delay)
                        };
                        bump(&shared.counters.nacked);
                        let _ = o.acker.ack_with(AckKind::Nak(Some(delay))).await;
                    }
                    None => bump(&shared.counters.acks_ignored),
                },
            },
            // Output full (PROTOCOL.md §7.1): deliver nothing until the
            // writer drained it; acks and nacks go on.
            _ = out.room(), if out.is_full() => {}
            m = pulled.recv(), if !out.is_full() => match m {
                None => break,
                Some(m) => {
                    if let Some((id, o, d)) = take(&shared, &sub, &consumer_name, m, &credit).await {
                        outstanding.insert(id, o);
                        bump(&shared.counters.delivered);
                        let _ = out.send(Frame::Deliver(d));
                    }
                }
            },
        }
    }
    // Acks the receiver sent before it closed are still queued (the reader
    // hands every frame over before it ends the connection): honour them,
    // or those messages would come back as redeliveries.
    while let Ok(c) = cmds.try_recv() {
        if let SubCmd::Ack(id) = c {
            if let Some(o) = outstanding.remove(&id) {
                bump(&shared.counters.acked);
                let _ = o.acker.ack().await;
            }
        }
    }
    // The connection is gone: every delivery it held goes back at once.
    // First let the puller finish its open pull request (naking what it
    // still brings): a nak'ed message must not land in that request and be
    // counted as one more delivery.
    stop.cancel();
    pulled.close();
    while let Some(m) = pulled.recv().await {
        let _ = m.ack_with(AckKind::Nak(None)).await;
    }
    let _ = puller.await;
    for (_, o) in outstanding.drain() {
        bump(&shared.counters.nacked);
        let _ = o.acker.ack_with(AckKind::Nak(None)).await;
    }
}

fn add_credit(credit: &Semaphore, n: u32) {
    let room = Semaphore::MAX_PERMITS - credit.available_permits();
    credit.add_permits((n as usize).min(room));
}

/// Turns a pulled message into a `Deliver`, or dead-letters it, or drops
/// a message no gateway wrote (terminated, logged). Gives the credit back
/// when nothing is delivered.
async fn take(
    shared: &Shared,
    sub: &Subscribe,
    consumer: &str,
    m: JsMessage,
    credit: &Semaphore,
) -> Option<(MessageId, Outstanding, Deliver)> {
    let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
    let attempt = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
    let id = m
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .and_then(|v| v.as_str().parse::<MessageId>().ok());
    let env = envelope::decode(m.payload.clone());
    let (Some(id), Some(env)) = (id, env) else {
        tracing::warn!(subject = %m.subject, "a message not written by a gateway: terminated");
        let _ = m.ack_with(AckKind::Term).await;
        add_credit(credit, 1);
        return None;
    };
    if attempt > shared.config.max_deliveries {
        match dead_letter(shared, sub, consumer, id, &m).await {
            Ok(()) => {
                bump(&shared.counters.dead_lettered);
                tracing::info!(%id, topic = %sub.topic, group = %sub.group, "dead-lettered");
            }
            Err(e) => {
                tracing::warn!(%id, "dead-lettering failed, retrying later: {e}");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
        add_credit(credit, 1);
        return None;
    }
    let (_, acker) = m.split();
    let deliver = Deliver {
        sub_id: sub.sub_id,
        id,
        delivery_attempt: attempt,
        topic: env.topic.into(),
        headers: env.headers,
        payload: env.payload,
    };
    Some((id, Outstanding { acker, attempt }, deliver))
}

/// Copies the message to the dead-letter stream (deduplicated by consumer
/// and message ID, so a retry after a lost PubAck is not copied twice),
/// then terminates it: the group is done with it.
async fn dead_letter(
    shared: &Shared,
    sub: &Subscribe,
    consumer: &str,
    id: MessageId,
    m: &JsMessage,
) -> Result<(), String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dlq:{consumer}:{id}").as_str(),
    );
    headers.insert("Mq-Id", id.to_string().as_str());
    headers.insert("Mq-Group", names::token(&sub.group).as_str());
    let subject = names::dead_letter_subject(&shared.js.subject_prefix, &sub.group, &sub.topic);
    shared
        .ctx
        .publish_with_headers(subject, headers, m.payload.clone())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    m.ack_with(AckKind::Term).await.map_err(|e| e.to_string())
}

async fn pull_loop(
    shared: Arc<Shared>,
    consumer: PullConsumer,
    credit: Arc<Semaphore>,
    tx: mpsc::Sender<JsMessage>,
    stop: CancellationToken,
) {
    let expires = shared.js.pull_expires;
    let mut pause = Duration::from_millis(50);
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            p = credit.acquire() => match p { Ok(p) => p, Err(_) => return },
        };
        first.forget();
        let extra = credit.available_permits().min(MAX_PULL - 1);
        if let Ok(p) = credit.try_acquire_many(extra as u32) {
            p.forget();
        }
        let want = 1 + extra;
        let mut got = 0;
        match consumer
            .batch()
            .max_messages(want)
            .expires(expires)
            .messages()
            .await
        {
            Err(e) => {
                tracing::debug!("pull request failed: {e}");
                credit.add_permits(want);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
            Ok(mut batch) => {
                // Past the request's expiry plus a margin the server is
                // gone; the request's messages come back after ack_wait.
                let deadline = tokio::time::sleep(expires + Duration::from_secs(3));
                tokio::pin!(deadline);
                loop {
                    let next = tokio::select! {
                        _ = &mut deadline => break,
                        n = batch.next() => n,
                    };
                    match next {
                        None => break,
                        Some(Err(e)) => {
                            tracing::debug!("pull ended: {e}");
                            break;
                        }
                        Some(Ok(m)) => {
                            got += 1;
                            pause = Duration::from_millis(50);
                            if stop.is_cancelled() {
                                // The subscription is closing: give it
                                // back at once rather than after ack_wait.
                                let _ = m.ack_with(AckKind::Nak(None)).await;
                            } else if let Err(back) = tx.send(m).await {
                                let _ = back.0.ack_with(AckKind::Nak(None)).await;
                            }
                        }
                    }
                }
            }
        }
        credit.add_permits(want.saturating_sub(got));
        if stop.is_cancelled() {
            return;
        }
    }
}
