//! The core's side of the journal: replaying records into a fresh core at
//! start, and writing the whole state as a checkpoint.
//!
//! Replay goes through the same code as live operation (`land`,
//! `group_for`, `group_done`), so a recovered broker is the broker that
//! wrote the journal, minus its connections: every message outstanding or
//! waiting for a nack delay is ready again, with its delivery count kept
//! (so `max_deliveries` still counts deliveries made before the restart).

use mq_protocol::Message;
use tokio::time::Instant;

use super::Core;
use crate::inspect::DeadLetter;
use crate::journal::record::{encode_land, Record};

impl Core {
    /// Applies one journal record during recovery (the core has no
    /// journal attached yet, so nothing is appended again).
    pub(crate) fn apply(&mut self, rec: Record, now: Instant) {
        debug_assert!(self.journal.is_none());
        match rec {
            Record::Land {
                id,
                topic,
                headers,
                payload,
            } => {
                if self.store.get(&id).is_some() {
                    return; // never overwrite a stored message
                }
                let m = Message {
                    id,
                    attempt: 1,
                    topic: topic.into(),
                    headers,
                    payload,
                };
                self.land(m, now);
            }
            Record::Group {
                topic,
                name,
                acked_total,
            } => {
                let g = self.group_for(&topic, &name);
                self.groups[g].acked_total = self.groups[g].acked_total.max(acked_total);
            }
            Record::Delivered { group, id, count } => {
                if let Some(p) = self
                    .groups
                    .get_mut(group as usize)
                    .and_then(|g| g.pending.get_mut(&id))
                {
                    p.deliveries = p.deliveries.max(count);
                }
            }
            Record::Ack { group, id } => {
                if self.take_pending(group, id) {
                    let keep = self.limits.max_acked_ids;
                    self.groups[group as usize].record_ack(id, keep);
                    self.group_done(id);
                }
            }
            Record::Dead {
                group,
                id,
                deliveries,
            } => {
                if self.take_pending(group, id) {
                    let g = &self.groups[group as usize];
                    let d = DeadLetter {
                        id,
                        topic: g.topic.to_string(),
                        group: g.name.clone(),
                        deliveries,
                    };
                    self.push_dead(d);
                    self.stats.dead_lettered += 1;
                    self.group_done(id);
                }
            }
            Record::Forget { group, id } => {
                if self.take_pending(group, id) {
                    self.group_done(id);
                }
            }
            Record::DeadInfo {
                id,
                topic,
                group,
                deliveries,
            } => self.push_dead(DeadLetter {
                id,
                topic,
                group,
                deliveries,
            }),
            Record::Dedup { producer, ranges } => self.dedup.import(producer, &ranges),
            Record::DeadBody {
                id,
                topic,
                headers,
                payload,
            } => self.restore_dead_body(id, topic, headers, payload),
            Record::Requeued { group, id } => {
                // Refused live the same way, or the body was evicted: the
                // entry stays dead, as it would have.
                let _ = self.requeue_dead(group as usize, id, now);
            }
            Record::Purged { group, id } => {
                let _ = self.purge_dead(group as usize, id);
            }
            Record::Base | Record::BaseEnd | Record::Batch { .. } => {}
        }
    }

    /// Removes `id` from group `group`'s pending set; false if it was not
    /// there (a record about an unknown group or message is ignored).
    fn take_pending(&mut self, group: u32, id: mq_protocol::MessageId) -> bool {
        self.groups
            .get_mut(group as usize)
            .is_some_and(|g| g.pending.remove(&id).is_some())
    }

    /// After recovery: every pending message of every group is ready, in
    /// landing order.
    pub(crate) fn finish_recovery(&mut self) {
        // Counters count what this process did, not the replay.
        self.stats = crate::BrokerStats::default();
        self.drop_unreferenced_bodies();
        for g in &mut self.groups {
            let mut ids: Vec<_> = g.pending.keys().copied().collect();
            ids.sort_by_key(|id| self.store.get(id).map_or(u64::MAX, |m| m.seq));
            g.ready.clear();
            for id in ids {
                g.make_ready_back(id);
            }
        }
    }

    /// Encodes the whole state as a checkpoint (`Base` .. `BaseEnd`): what
    /// replaying it into a fresh core rebuilds is this core, as it will be
    /// once every record appended so far is durable.
    pub(crate) fn snapshot(&self, dst: &mut Vec<u8>) {
        Record::Base.encode(dst);
        for g in &self.groups {
            Record::Group {
                topic: g.topic.to_string(),
                name: g.name.clone(),
                acked_total: g.acked_total,
            }
            .encode(dst);
        }
        for (producer, ranges) in self.dedup.export() {
            Record::Dedup { producer, ranges }.encode(dst);
        }
        let durable = self.journal.as_ref().map_or(u64::MAX, |j| j.durable);
        for (id, m) in self.store.iter() {
            encode_land(dst, *id, &m.topic, &m.headers, &m.payload);
            if m.lsn > durable {
                // Not handed to its groups yet: replay hands it to every
                // group of its topic, as the live core will once durable.
                continue;
            }
            for &g in self.topic_groups.get(&m.topic).map_or(&[][..], |l| l) {
                if !self.groups[g].pending.contains_key(id) {
                    Record::Forget {
                        group: g as u32,
                        id: *id,
                    }
                    .encode(dst);
                }
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            for (id, p) in &group.pending {
                if p.deliveries > 0 {
                    Record::Delivered {
                        group: g as u32,
                        id: *id,
                        count: p.deliveries,
                    }
                    .encode(dst);
                }
            }
        }
        self.snapshot_dead_bodies(dst);
        for d in &self.dead {
            Record::DeadInfo {
                id: d.id,
                topic: d.topic.clone(),
                group: d.group.clone(),
                deliveries: d.deliveries,
            }
            .encode(dst);
        }
        Record::BaseEnd.encode(dst);
    }
}
