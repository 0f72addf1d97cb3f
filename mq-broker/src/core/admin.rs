//! The core's side of the operator's views and actions: counts by role,
//! topic and group, dead letters with their kept bodies, requeue and
//! purge.
//!
//! # Dead-letter bodies
//!
//! A message is deleted from the store once every group acked or
//! dead-lettered it, but a dead letter can be requeued, so its body is kept
//! apart in [`DeadBodies`], shared by every dead-letter entry of the same
//! message and bounded by `max_dead_letter_bytes` (payload plus header
//! bytes): past it the bodies of the oldest dead letters are dropped (their
//! entries stay, to be purged). A checkpoint writes a `DeadBody` record for
//! every kept body whose message is no longer stored; `Requeued` and
//! `Purged` records replay the actions through the same methods.

use crate::topic::Topic;

use bytes::Bytes;
use mq_protocol::hash::FastMap;
use mq_protocol::{Headers, Message, MessageId, Role};
use tokio::time::Instant;

use super::Core;
use crate::groups::PendingState;
use crate::journal::record::Record;
use crate::views::{
    millis, DeadLetterError, DeadLetterView, GroupView, MemberView, ProducerView, TopicSummary,
    TopicView, PREVIEW_BYTES,
};

/// A dead-lettered message's body, kept for requeue.
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) topic: Topic,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
    /// Dead-letter entries that refer to it.
    refs: u32,
    size: usize,
}

/// Kept bodies, bounded in bytes.
#[derive(Debug, Default)]
pub(crate) struct DeadBodies {
    pub(crate) map: FastMap<MessageId, Body>,
    bytes: usize,
}

impl DeadBodies {
    fn insert(&mut self, id: MessageId, body: Body) {
        self.bytes += body.size;
        if let Some(old) = self.map.insert(id, body) {
            self.bytes -= old.size;
        }
    }

    fn remove(&mut self, id: &MessageId) -> Option<Body> {
        let b = self.map.remove(id)?;
        self.bytes -= b.size;
        Some(b)
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

fn key(id: MessageId, g: usize) -> String {
    format!("{id}/{g}")
}

impl Core {
    /// Open connections by role: (senders, receivers).
    pub(crate) fn roles(&self) -> (usize, usize) {
        let senders = self
            .conns
            .values()
            .filter(|c| c.role == Role::Sender)
            .count();
        (senders, self.conns.len() - senders)
    }

    pub(crate) fn dead_count(&self) -> usize {
        self.dead.len()
    }

    pub(crate) fn dead_body_bytes(&self) -> usize {
        self.dead_bodies.bytes()
    }

    pub(crate) fn dedup_producers(&self) -> usize {
        self.dedup.producers()
    }

    /// Every topic with stored messages or groups, by name.
    pub(crate) fn topic_summaries(&self, now: Instant) -> Vec<TopicSummary> {
        let mut by: std::collections::BTreeMap<&str, TopicSummary> = Default::default();
        let blank = |name: &str| TopicSummary {
            name: name.to_owned(),
            stored: 0,
            stored_bytes: 0,
            groups: 0,
            oldest_age_ms: None,
        };
        for (_, m) in self.store.iter() {
            let t = by.entry(&m.topic).or_insert_with(|| blank(&m.topic));
            t.stored += 1;
            t.stored_bytes += m.size;
            let age = millis(now.saturating_duration_since(m.landed_at));
            t.oldest_age_ms = Some(t.oldest_age_ms.map_or(age, |a| a.max(age)));
        }
        for g in &self.groups {
            by.entry(&g.topic).or_insert_with(|| blank(&g.topic)).groups += 1;
        }
        by.into_values().collect()
    }

    /// One topic in detail.
    pub(crate) fn topic_view(&self, name: &str, now: Instant) -> Option<TopicView> {
        let summary = self
            .topic_summaries(now)
            .into_iter()
            .find(|t| t.name == name)?;
        let mut groups: Vec<GroupView> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| &*g.topic == name)
            .map(|(_, g)| {
                let (mut ready, mut unacked, mut redelivering) = (0, 0, 0);
                let mut oldest = None;
                for (id, p) in &g.pending {
                    match p.state {
                        PendingState::Outstanding { .. } => unacked += 1,
                        PendingState::Ready if p.deliveries == 0 => ready += 1,
                        PendingState::Ready | PendingState::Waiting => redelivering += 1,
                    }
                    if let Some(m) = self.store.get(id) {
                        let age = millis(now.saturating_duration_since(m.landed_at));
                        oldest = Some(oldest.map_or(age, |a: u64| a.max(age)));
                    }
                }
                let members = g
                    .members
                    .iter()
                    .filter_map(|sk| self.subs.get(sk))
                    .map(|s| MemberView {
                        connection: s.conn,
                        sub_id: s.sub_id,
                        credit: s.credit,
                        unacked: s.unacked,
                    })
                    .collect();
                GroupView {
                    name: g.name.clone(),
                    ready,
                    unacked,
                    redelivering,
                    dead_lettered: self
                        .dead
                        .iter()
                        .filter(|d| *d.topic == *g.topic && d.group == g.name)
                        .count(),
                    acked_total: g.acked_total,
                    oldest_age_ms: oldest,
                    members,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Some(TopicView { summary, groups })
    }

    /// The dead letters with their bodies, oldest first.
    pub(crate) fn dead_views(&self) -> Vec<DeadLetterView> {
        self.dead
            .iter()
            .map(|d| {
                let g = self
                    .group_index
                    .get(&(Topic::from(d.topic.as_str()), d.group.clone()))
                    .copied()
                    .unwrap_or(usize::MAX);
                let body = self.dead_bodies.map.get(&d.id);
                let (headers, payload) = match body {
                    Some(b) => (
                        b.headers
                            .iter()
                            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                            .collect(),
                        b.payload.clone(),
                    ),
                    None => (Vec::new(), Bytes::new()),
                };
                let cut = payload.len().min(PREVIEW_BYTES);
                DeadLetterView {
                    key: key(d.id, g),
                    id: d.id.to_string(),
                    topic: d.topic.clone(),
                    group: d.group.clone(),
                    deliveries: d.deliveries,
                    body_kept: body.is_some(),
                    headers,
                    payload_len: payload.len(),
                    payload_preview: String::from_utf8_lossy(&payload[..cut]).into_owned(),
                }
            })
            .collect()
    }

    /// Dedup memory per producer, most ranges first.
    pub(crate) fn producer_views(&self) -> Vec<ProducerView> {
        let mut v: Vec<ProducerView> = self
            .dedup
            .export()
            .map(|(p, ranges)| ProducerView {
                producer: format!("{p:016x}"),
                ranges: ranges.len(),
                sequences: ranges
                    .iter()
                    .map(|(a, b)| b.saturating_sub(*a).saturating_add(1))
                    .fold(0u64, u64::saturating_add),
                highest_seq: ranges.iter().map(|r| r.1).max().unwrap_or(0),
                memory_bytes: ranges.len() * 16,
            })
            .collect();
        v.sort_by(|a, b| b.ranges.cmp(&a.ranges).then(a.producer.cmp(&b.producer)));
        v
    }

    /// A dead-letter entry for `id` was added: keep its body (from the
    /// store, or the one already kept), within the byte bound.
    pub(super) fn retain_dead_body(&mut self, id: MessageId) {
        if let Some(b) = self.dead_bodies.map.get_mut(&id) {
            b.refs += 1;
            return;
        }
        let Some(m) = self.store.get(&id) else {
            return;
        };
        let body = Body {
            topic: m.topic.clone(),
            headers: m.headers.clone(),
            payload: m.payload.clone(),
            refs: 1,
            size: m.size,
        };
        if body.size > self.limits.max_dead_letter_bytes {
            return;
        }
        self.dead_bodies.insert(id, body);
        // Over the bound: drop the bodies of the oldest dead letters.
        let mut i = 0;
        while self.dead_bodies.bytes > self.limits.max_dead_letter_bytes && i < self.dead.len() {
            let old = self.dead[i].id;
            if old != id {
                self.dead_bodies.remove(&old);
            }
            i += 1;
        }
    }

    /// A dead-letter entry for `id` went away.
    pub(super) fn release_dead_body(&mut self, id: MessageId) {
        if let Some(b) = self.dead_bodies.map.get_mut(&id) {
            b.refs = b.refs.saturating_sub(1);
            if b.refs == 0 {
                self.dead_bodies.remove(&id);
            }
        }
    }

    /// Replay of a checkpoint's `DeadBody`: kept until its `DeadInfo`
    /// entries refer to it.
    pub(super) fn restore_dead_body(
        &mut self,
        id: MessageId,
        topic: String,
        headers: Headers,
        payload: Bytes,
    ) {
        let size = payload.len() + headers.payload_bytes();
        let body = Body {
            topic: Topic::from(topic.as_str()),
            headers,
            payload,
            refs: 0,
            size,
        };
        self.dead_bodies.insert(id, body);
    }

    /// After recovery: bodies no entry refers to are dropped.
    pub(super) fn drop_unreferenced_bodies(&mut self) {
        let gone: Vec<_> = self
            .dead_bodies
            .map
            .iter()
            .filter(|(_, b)| b.refs == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.dead_bodies.remove(&id);
        }
    }

    /// Position of group `g`'s dead letter for `id`.
    fn find_dead(&self, g: usize, id: MessageId) -> Option<usize> {
        let group = self.groups.get(g)?;
        self.dead
            .iter()
            .position(|d| d.id == id && d.group == group.name && *d.topic == *group.topic)
    }

    /// Gives group `g`'s dead letter `id` back to the group.
    pub(crate) fn requeue_dead(
        &mut self,
        g: usize,
        id: MessageId,
        now: Instant,
    ) -> Result<(), DeadLetterError> {
        let k = key(id, g);
        let pos = self
            .find_dead(g, id)
            .ok_or_else(|| DeadLetterError::NotFound(k.clone()))?;
        if let Some(m) = self.store.get_mut(&id) {
            if !self.groups[g].pending.contains_key(&id) {
                m.remaining += 1;
                self.groups[g].enqueue(id);
            }
        } else {
            let b = self
                .dead_bodies
                .map
                .get(&id)
                .ok_or_else(|| DeadLetterError::BodyNotKept(k.clone()))?;
            self.store
                .check_room(b.size)
                .map_err(|r| DeadLetterError::StoreFull {
                    key: k.clone(),
                    reason: r.reason,
                })?;
            let m = Message {
                id,
                attempt: 1,
                topic: (*b.topic).into(),
                headers: b.headers.clone(),
                payload: b.payload.clone(),
            };
            let topic = self.groups[g].topic.clone();
            self.store.land(m, topic, 1, 0, now);
            self.groups[g].enqueue(id);
        }
        self.dead.remove(pos);
        self.release_dead_body(id);
        self.journal(Record::Requeued {
            group: g as u32,
            id,
        });
        self.pump(g, now);
        Ok(())
    }

    /// Deletes group `g`'s dead letter `id` and, if no other entry needs
    /// it, its body.
    pub(crate) fn purge_dead(&mut self, g: usize, id: MessageId) -> Result<(), DeadLetterError> {
        let pos = self
            .find_dead(g, id)
            .ok_or_else(|| DeadLetterError::NotFound(key(id, g)))?;
        self.dead.remove(pos);
        self.release_dead_body(id);
        self.journal(Record::Purged {
            group: g as u32,
            id,
        });
        Ok(())
    }

    /// Checkpoint: the kept bodies whose message is no longer stored.
    pub(super) fn snapshot_dead_bodies(&self, dst: &mut Vec<u8>) {
        for (id, b) in &self.dead_bodies.map {
            if self.store.get(id).is_none() {
                crate::journal::record::encode_dead_body(
                    dst, *id, &b.topic, &b.headers, &b.payload,
                );
            }
        }
    }
}
