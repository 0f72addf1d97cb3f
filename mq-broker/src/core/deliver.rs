//! The second half: subscriptions, delivery within credit, acks, nacks,
//! the redelivery timer and dead letters.

use crate::topic::Topic;
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::{
    Close, Deliver, ErrorCode, MessageId, Subscribe, SubscribeError, SubscribeOk, MAX_REASON_LEN,
};
use tokio::time::Instant;

use super::{close, Core};
use crate::groups::{ConnId, Group, Pending, PendingState, Sub};
use crate::inspect::DeadLetter;
use crate::journal::record::Record;
use crate::timers::Entry;

impl Core {
    pub(super) fn on_subscribe(
        &mut self,
        conn: ConnId,
        s: Subscribe,
        now: Instant,
    ) -> Result<(), Close> {
        let in_use = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.subs.contains_key(&s.sub_id));
        if in_use {
            return Err(close(
                ErrorCode::UNEXPECTED_FRAME,
                format!("sub_id {} is already in use on this connection", s.sub_id),
            ));
        }
        if let Err((code, mut reason)) = self.check_subscribe(conn, &s) {
            self.stats.subscriptions_refused += 1;
            reason.truncate(MAX_REASON_LEN); // ASCII only: a char boundary
            let refusal = SubscribeError {
                sub_id: s.sub_id,
                code,
                reason,
            };
            self.out.push((conn, refusal.into()));
            return Ok(());
        }
        let g = self.group_for(&s.topic, &s.group);
        let sk = self.next_sub;
        self.next_sub += 1;
        self.subs.insert(
            sk,
            Sub {
                conn,
                sub_id: s.sub_id,
                group: g,
                credit: s.credit,
                unacked: 0,
                max_unacked: 0,
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subs.insert(s.sub_id, sk);
        }
        self.groups[g].members.push(sk);
        self.out
            .push((conn, SubscribeOk { sub_id: s.sub_id }.into()));
        self.pump(g, now);
        Ok(())
    }

    /// Why a `Subscribe` is refused with `SubscribeError`, if it is: names
    /// outside the protocol's limits, or a subscription, group or topic past
    /// the broker's.
    fn check_subscribe(&self, conn: ConnId, s: &Subscribe) -> Result<(), (ErrorCode, String)> {
        crate::limits::check_subscribe_names(&s.topic, &s.group)?;
        let held = self.conns.get(&conn).map_or(0, |c| c.subs.len());
        if held >= self.limits.max_subs_per_conn {
            let why = format!(
                "this connection holds its limit of {} subscriptions",
                self.limits.max_subs_per_conn
            );
            return Err((ErrorCode::LIMIT_REACHED, why));
        }
        let groups = self.topic_groups.get(s.topic.as_str()).map(|g| g.len());
        let exists = groups.is_some()
            && self
                .group_index
                .contains_key(&(Topic::from(s.topic.as_str()), s.group.clone()));
        if !exists {
            match groups {
                Some(n) if n >= self.limits.max_groups_per_topic => {
                    let why = format!(
                        "topic has its limit of {} consumer groups",
                        self.limits.max_groups_per_topic
                    );
                    return Err((ErrorCode::LIMIT_REACHED, why));
                }
                None if self.topic_groups.len() >= self.limits.max_topics => {
                    let why = format!(
                        "the broker has its limit of {} topics with consumer groups",
                        self.limits.max_topics
                    );
                    return Err((ErrorCode::LIMIT_REACHED, why));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Finds or creates a group. A new group adopts every message still
    /// stored on its topic, then receives every later one.
    pub(super) fn group_for(&mut self, topic: &str, name: &str) -> usize {
        let topic: Topic = match self.topic_groups.get_key_value(topic) {
            Some((t, _)) => t.clone(),
            None => Topic::from(topic),
        };
        let key = (topic.clone(), name.to_owned());
        if let Some(&g) = self.group_index.get(&key) {
            return g;
        }
        let g = self.groups.len();
        let mut group = Group::new(topic.clone(), name.to_owned());
        let durable = self.journal.as_ref().map_or(0, |j| j.durable);
        for id in self.store.topic_ids(&topic, durable) {
            if let Some(m) = self.store.get_mut(&id) {
                m.remaining += 1;
                group.enqueue(id);
            }
        }
        self.groups.push(group);
        self.group_index.insert(key, g);
        let mut list = self
            .topic_groups
            .get(&topic)
            .map(|l| l.to_vec())
            .unwrap_or_default();
        list.push(g);
        self.topic_groups.insert(topic.clone(), Arc::from(list));
        self.journal(Record::Group {
            topic: topic.to_string(),
            name: name.to_owned(),
            acked_total: 0,
        });
        g
    }

    pub(super) fn on_ack(&mut self, conn: ConnId, sub_id: u32, id: MessageId) -> Result<(), Close> {
        let sk = self.sub_key(conn, sub_id)?;
        self.stats.acks_received += 1;
        let Some(sub) = self.subs.get_mut(&sk) else {
            return Ok(());
        };
        let group = &mut self.groups[sub.group];
        // One hash lookup for the check and the removal.
        match group.pending.entry(id) {
            std::collections::hash_map::Entry::Occupied(e)
                if e.get().state == (PendingState::Outstanding { sub: sk }) =>
            {
                e.remove();
            }
            _ => {
                self.stats.acks_ignored += 1;
                return Ok(());
            }
        }
        group.record_ack(id, self.limits.max_acked_ids);
        sub.unacked = sub.unacked.saturating_sub(1);
        let g = sub.group as u32;
        self.journal(Record::Ack { group: g, id });
        self.group_done(id);
        Ok(())
    }

    pub(super) fn on_nack(
        &mut self,
        conn: ConnId,
        sub_id: u32,
        id: MessageId,
        delay_ms: u32,
        now: Instant,
    ) -> Result<(), Close> {
        let sk = self.sub_key(conn, sub_id)?;
        self.stats.nacks_received += 1;
        let Some(sub) = self.subs.get_mut(&sk) else {
            return Ok(());
        };
        let g = sub.group;
        let Some(p) = self.groups[g].pending.get_mut(&id) else {
            return Ok(());
        };
        if p.state != (PendingState::Outstanding { sub: sk }) {
            return Ok(());
        }
        sub.unacked = sub.unacked.saturating_sub(1);
        let delay = if delay_ms == 0 {
            self.limits
                .redelivery
                .delay_with(p.deliveries, rand::Rng::gen(&mut self.rng))
        } else {
            let asked = Duration::from_millis(u64::from(delay_ms));
            if asked > self.limits.max_nack_delay {
                self.stats.nack_delays_capped += 1;
            }
            asked.min(self.limits.max_nack_delay)
        };
        p.state = PendingState::Waiting;
        p.gen = p.gen.wrapping_add(1);
        let gen = p.gen;
        self.timers
            .push(now, now + delay, Entry { group: g, id, gen });
        Ok(())
    }

    /// One group is done with `id` (acked or dead-lettered); delete the
    /// message once no group is left.
    pub(super) fn group_done(&mut self, id: MessageId) {
        if self.store.release(&id) {
            self.stats.messages_deleted += 1;
        }
    }

    /// Sends ready messages of group `g` to members with credit, round robin.
    pub(super) fn pump(&mut self, g: usize, now: Instant) {
        let Core {
            groups,
            subs,
            conns,
            store,
            limits,
            rng,
            stats,
            out,
            timers,
            journal,
            ..
        } = self;
        let group = &mut groups[g];
        while !group.ready.is_empty() {
            let n = group.members.len();
            let chosen = (0..n).map(|i| (group.cursor + i) % n).find(|&i| {
                subs.get(&group.members[i])
                    .is_some_and(|s| s.credit > 0 && conns.get(&s.conn).is_some_and(|c| c.room > 0))
            });
            let Some(idx) = chosen else {
                // Members with credit but a full output queue: resumed by
                // `Core::set_output_room` once their writer drains.
                return;
            };
            let sk = group.members[idx];
            let Some(id) = group.ready.pop_front() else {
                return;
            };
            let Some(p) = group.pending.get_mut(&id) else {
                continue;
            };
            if p.state != PendingState::Ready {
                continue;
            }
            let Some(msg) = store.get(&id) else {
                group.pending.remove(&id);
                continue;
            };
            let Some(sub) = subs.get_mut(&sk) else {
                group.ready.push_front(id); // unreachable: `chosen` has credit
                return;
            };
            group.cursor = (idx + 1) % n;
            p.deliveries = p.deliveries.saturating_add(1);
            p.gen = p.gen.wrapping_add(1);
            p.state = PendingState::Outstanding { sub: sk };
            let at = now
                + limits
                    .redelivery
                    .delay_with(p.deliveries, rand::Rng::gen(rng));
            timers.push(
                now,
                at,
                Entry {
                    group: g,
                    id,
                    gen: p.gen,
                },
            );
            if let Some(j) = journal {
                j.append(&Record::Delivered {
                    group: g as u32,
                    id,
                    count: p.deliveries,
                });
            }
            sub.credit -= 1;
            sub.unacked += 1;
            sub.max_unacked = sub.max_unacked.max(sub.unacked);
            stats.deliveries_sent += 1;
            if p.deliveries > 1 {
                stats.redeliveries_sent += 1;
            }
            let deliver = Deliver {
                sub_id: sub.sub_id,
                id,
                delivery_attempt: p.deliveries,
                // The interned name, shared: no allocation per delivery.
                topic: msg.topic.shared(),
                headers: msg.headers.clone(),
                payload: msg.payload.clone(),
            };
            let frame: mq_protocol::Frame = deliver.into();
            if let Some(c) = conns.get_mut(&sub.conn) {
                c.room -= super::out_cost(&frame) as i64;
            }
            out.push((sub.conn, frame));
        }
    }

    /// A message whose delivery ended without an ack (timer, nack delay over,
    /// receiver gone): back to the front of the ready queue, or to the
    /// dead-letter list after `max_deliveries`.
    pub(super) fn requeue(&mut self, g: usize, id: MessageId) {
        let Some(p) = self.groups[g].pending.get(&id).copied() else {
            return;
        };
        if p.deliveries < self.limits.max_deliveries {
            self.groups[g].make_ready_front(id);
            return;
        }
        let group = &mut self.groups[g];
        group.pending.remove(&id);
        let topic = group.topic.to_string();
        let name = group.name.clone();
        self.journal(Record::Dead {
            group: g as u32,
            id,
            deliveries: p.deliveries,
        });
        self.push_dead(DeadLetter {
            id,
            topic,
            group: name,
            deliveries: p.deliveries,
        });
        self.stats.dead_lettered += 1;
        self.group_done(id);
    }

    /// Adds to the bounded dead-letter history.
    /// Its body is kept for requeue (`core/admin.rs`).
    pub(super) fn push_dead(&mut self, d: DeadLetter) {
        if self.dead.len() >= self.limits.max_dead_letters {
            if let Some(old) = self.dead.pop_front() {
                self.release_dead_body(old.id);
            }
        }
        if self.limits.max_dead_letters > 0 {
            self.retain_dead_body(d.id);
            self.dead.push_back(d);
        }
    }

    /// The earliest deadline, if any (possibly a stale one; firing it is harmless).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every deadline at or before `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut touched = Vec::new();
        let mut due = std::mem::take(&mut self.due);
        self.timers.pop_due(now, &mut due);
        for t in due.drain(..) {
            let Some(p) = self.groups.get(t.group).and_then(|g| g.pending.get(&t.id)) else {
                continue;
            };
            let Pending { gen, state, .. } = *p;
            if gen != t.gen {
                continue;
            }
            match state {
                PendingState::Ready => continue,
                PendingState::Waiting => {}
                PendingState::Outstanding { sub } => {
                    if let Some(s) = self.subs.get_mut(&sub) {
                        s.unacked = s.unacked.saturating_sub(1);
                    }
                }
            }
            self.requeue(t.group, t.id);
            if !touched.contains(&t.group) {
                touched.push(t.group);
            }
        }
        self.due = due;
        for g in touched {
            self.pump(g, now);
        }
    }
}
