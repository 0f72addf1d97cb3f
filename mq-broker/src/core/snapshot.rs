//! Snapshots of the core for [`crate::Broker::inspect`].

use crate::inspect::{GroupInfo, Inspection, StoredInfo, SubscriptionInfo};

use super::Core;

impl Core {
    /// A snapshot for tests.
    pub(crate) fn inspect(&self) -> Inspection {
        let stored = self
            .store
            .iter()
            .map(|(id, m)| StoredInfo {
                id: *id,
                topic: m.topic.to_string(),
                payload_len: m.payload.len(),
                groups_remaining: m.remaining,
            })
            .collect();
        let mut groups: Vec<GroupInfo> = self
            .groups
            .iter()
            .map(|g| {
                let (ready, unacked, waiting) = g.counts();
                GroupInfo {
                    topic: g.topic.to_string(),
                    group: g.name.clone(),
                    ready,
                    unacked,
                    waiting,
                    members: g.members.len(),
                    acked_total: g.acked_total,
                    acked_ids: g.acked_recent.iter().copied().collect(),
                }
            })
            .collect();
        groups.sort_by(|a, b| (&a.topic, &a.group).cmp(&(&b.topic, &b.group)));
        let mut subscriptions: Vec<SubscriptionInfo> = self
            .subs
            .values()
            .map(|s| SubscriptionInfo {
                connection: s.conn,
                sub_id: s.sub_id,
                topic: self.groups[s.group].topic.to_string(),
                group: self.groups[s.group].name.clone(),
                credit: s.credit,
                unacked: s.unacked,
                max_unacked: s.max_unacked,
            })
            .collect();
        subscriptions.sort_by_key(|s| (s.connection, s.sub_id));
        Inspection {
            stored,
            groups,
            subscriptions,
            dead_letters: self.dead.iter().cloned().collect(),
            connections: self.conns.len(),
            dedup_producers: self.dedup.producers(),
            dedup_bytes: self.dedup.memory_bytes(),
        }
    }
}
