//! Consumer groups and subscriptions: per group, which messages are ready,
//! outstanding (delivered, unacked) or waiting (for a nack delay), and which
//! members share them.

use crate::topic::Topic;
use mq_protocol::hash::IdMap;
use std::collections::VecDeque;

use mq_protocol::MessageId;

/// Index of a subscription in the core's table.
pub(crate) type SubKey = u64;
/// Index of a connection.
pub(crate) type ConnId = u64;

/// Where one message stands within one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingState {
    /// In the group's ready queue.
    Ready,
    /// Delivered to `sub`, unacked; redelivered at its timer.
    Outstanding { sub: SubKey },
    /// Nacked or otherwise held until its timer.
    Waiting,
}

/// One message this group has not finished with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Deliveries so far (the last `delivery_attempt` sent).
    pub(crate) deliveries: u32,
    pub(crate) state: PendingState,
    /// Bumped on every state change that arms a timer; a timer entry with an
    /// older generation is stale and ignored.
    pub(crate) gen: u32,
}

/// A consumer group on one topic.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) topic: Topic,
    pub(crate) name: String,
    pub(crate) ready: VecDeque<MessageId>,
    pub(crate) pending: IdMap<Pending>,
    pub(crate) members: Vec<SubKey>,
    /// Round-robin position in `members`.
    pub(crate) cursor: usize,
    pub(crate) acked_total: u64,
    pub(crate) acked_recent: VecDeque<MessageId>,
}

impl Group {
    pub(crate) fn new(topic: Topic, name: String) -> Self {
        Self {
            topic,
            name,
            ready: VecDeque::new(),
            pending: IdMap::default(),
            members: Vec::new(),
            cursor: 0,
            acked_total: 0,
            acked_recent: VecDeque::new(),
        }
    }

    /// Adds a newly stored (or adopted) message at the back of the queue.
    pub(crate) fn enqueue(&mut self, id: MessageId) {
        self.pending.insert(
            id,
            Pending {
                deliveries: 0,
                state: PendingState::Ready,
                gen: 0,
            },
        );
        self.ready.push_back(id);
    }

    /// Puts a pending message back at the front of the ready queue.
    pub(crate) fn make_ready_front(&mut self, id: MessageId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.state = PendingState::Ready;
            self.ready.push_front(id);
        }
    }

    /// Puts a pending message at the back of the ready queue (recovery).
    pub(crate) fn make_ready_back(&mut self, id: MessageId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.state = PendingState::Ready;
            self.ready.push_back(id);
        }
    }

    /// Records an ack, keeping at most `keep` recent IDs for inspection.
    pub(crate) fn record_ack(&mut self, id: MessageId, keep: usize) {
        self.acked_total += 1;
        if keep > 0 {
            if self.acked_recent.len() >= keep {
                self.acked_recent.pop_front();
            }
            self.acked_recent.push_back(id);
        }
    }

    pub(crate) fn remove_member(&mut self, sub: SubKey) {
        if let Some(i) = self.members.iter().position(|&m| m == sub) {
            self.members.remove(i);
            if self.cursor > i {
                self.cursor -= 1;
            }
            if self.cursor >= self.members.len() {
                self.cursor = 0;
            }
        }
    }

    /// Counts of (ready, outstanding, waiting).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for p in self.pending.values() {
            match p.state {
                PendingState::Ready => c.0 += 1,
                PendingState::Outstanding { .. } => c.1 += 1,
                PendingState::Waiting => c.2 += 1,
            }
        }
        c
    }

    /// IDs outstanding with `sub`.
    pub(crate) fn outstanding_with(&self, sub: SubKey) -> Vec<MessageId> {
        self.pending
            .iter()
            .filter(|(_, p)| p.state == PendingState::Outstanding { sub })
            .map(|(id, _)| *id)
            .collect()
    }
}

/// One subscription: a member of a group on one connection.
#[derive(Debug)]
pub(crate) struct Sub {
    pub(crate) conn: ConnId,
    pub(crate) sub_id: u32,
    pub(crate) group: usize,
    pub(crate) credit: u32,
    pub(crate) unacked: u32,
    pub(crate) max_unacked: u32,
}
