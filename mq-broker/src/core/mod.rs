//! The sans-IO broker core: every rule of the protocol's two halves, stepped
//! with an explicit `now`, with no socket, task or clock inside.
//!
//! Inputs are [`Core::open`], [`Core::handle_frame`], [`Core::close`] and
//! [`Core::handle_timeout`]; outputs are the frames pushed to [`Core::out`]
//! (addressed by connection) and [`Core::poll_timeout`], the next deadline.
//! All redelivery deadlines live in one timer queue (`timers.rs`); entries
//! made stale by an ack, nack or requeue are recognised by a generation
//! number and skipped.

use crate::topic::Topic;
use std::collections::VecDeque;
use std::sync::Arc;

use mq_protocol::{
    Backoff, Close, ErrorCode, Frame, Message, MessageId, Pong, Reply, ReplyStatus, Role,
};
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::dedup::Dedup;
use crate::groups::{ConnId, Group, Sub, SubKey};
use crate::inspect::DeadLetter;
use crate::journal::record::Record;
use crate::journal::Appender;
use crate::store::Store;
use crate::timers::TimerQueue;
use crate::{BrokerConfig, BrokerStats};
use mq_protocol::hash::FastMap;

/// The parts of [`BrokerConfig`] the core needs.
#[derive(Debug, Clone)]
struct Limits {
    redelivery: Backoff,
    max_deliveries: u32,
    max_message_size: usize,
    max_frame_size: usize,
    max_stored_messages: usize,
    max_stored_bytes: usize,
    record_landings: bool,
    dedup_max_producers: usize,
    dedup_max_ranges: usize,
    max_dead_letters: usize,
    max_dead_letter_bytes: usize,
    max_acked_ids: usize,
    max_nack_delay: std::time::Duration,
    max_subs_per_conn: usize,
    max_groups_per_topic: usize,
    max_topics: usize,
    max_output_bytes: usize,
}

#[derive(Debug)]
struct ConnState {
    role: Role,
    subs: FastMap<u32, SubKey>,
    /// Bytes the connection's output queue can still take, as last told by
    /// [`Core::set_output_room`] minus the `Deliver`s pushed since. No
    /// `Deliver` goes to a connection without room (PROTOCOL.md §7.1).
    room: i64,
}

/// What a queued output frame costs against `max_output_bytes`: its wire
/// size plus the memory of its queue entry.
pub(crate) fn out_cost(frame: &Frame) -> usize {
    frame.wire_len() + std::mem::size_of::<(ConnId, Frame)>()
}

/// The broker's whole state.
mod admin;
mod deliver;
mod persist;
#[cfg(test)]
mod prop_tests;
mod snapshot;
#[cfg(test)]
mod tests;

#[derive(Debug)]
pub(crate) struct Core {
    limits: Limits,
    rng: StdRng,
    store: Store,
    dedup: Dedup,
    /// Groups of each topic that has any (an `Arc` so landing clones it cheaply).
    topic_groups: FastMap<Topic, Arc<[usize]>>,
    last_topic: Option<Topic>,
    groups: Vec<Group>,
    group_index: FastMap<(Topic, String), usize>,
    conns: FastMap<ConnId, ConnState>,
    subs: FastMap<SubKey, Sub>,
    next_sub: SubKey,
    timers: TimerQueue,
    /// Reused buffer of due timer entries.
    due: Vec<crate::timers::Entry>,
    dead: VecDeque<DeadLetter>,
    /// Bodies of dead letters, kept for requeue (`core/admin.rs`).
    dead_bodies: admin::DeadBodies,
    stats: BrokerStats,
    /// The journal's append side, with the disk storage; `None` in memory
    /// (and while replaying a journal).
    pub(crate) journal: Option<Appender>,
    /// Replies and hand-overs to groups waiting for the journal to make a
    /// position durable, in position order.
    waiting: VecDeque<(u64, Waiting)>,
    /// Frames to send, addressed by connection, in order.
    pub(crate) out: Vec<(ConnId, Frame)>,
}

/// Something released once its journal position is durable.
#[derive(Debug)]
enum Waiting {
    Reply(ConnId, Reply),
    /// A landed message goes to its topic's groups.
    Publish(MessageId),
}

fn close(code: ErrorCode, reason: String) -> Close {
    Close { code, reason }
}

impl Core {
    pub(crate) fn new(config: &BrokerConfig, rng: StdRng) -> Self {
        let limits = Limits {
            redelivery: config.redelivery,
            max_deliveries: config.max_deliveries.max(1),
            max_message_size: config.max_message_size,
            max_frame_size: config.max_frame_size as usize,
            max_stored_messages: config.max_stored_messages,
            max_stored_bytes: config.max_stored_bytes,
            record_landings: config.record_landings,
            dedup_max_producers: config.dedup_max_producers,
            dedup_max_ranges: config.dedup_max_ranges_per_producer,
            max_dead_letters: config.max_dead_letters,
            max_dead_letter_bytes: config.max_dead_letter_bytes,
            max_acked_ids: config.max_acked_ids_per_group,
            max_nack_delay: config.max_nack_delay,
            max_subs_per_conn: config.max_subscriptions_per_connection,
            max_groups_per_topic: config.max_groups_per_topic,
            max_topics: config.max_topics,
            max_output_bytes: config.max_output_bytes,
        };
        Self {
            store: Store::new(
                limits.max_stored_messages,
                limits.max_stored_bytes,
                limits.record_landings,
            ),
            dedup: Dedup::new(limits.dedup_max_producers, limits.dedup_max_ranges),
            limits,
            rng,
            topic_groups: FastMap::default(),
            last_topic: None,
            groups: Vec::new(),
            group_index: FastMap::default(),
            conns: FastMap::default(),
            subs: FastMap::default(),
            next_sub: 0,
            timers: TimerQueue::default(),
            due: Vec::new(),
            dead: VecDeque::new(),
            dead_bodies: admin::DeadBodies::default(),
            stats: BrokerStats::default(),
            journal: None,
            waiting: VecDeque::new(),
            out: Vec::new(),
        }
    }

    /// The one RNG (faults use it too).
    pub(crate) fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Counters, with the gauges filled in.
    pub(crate) fn stats(&self) -> BrokerStats {
        let mut s = self.stats;
        s.connections_open = self.conns.len() as u64;
        s.stored_messages = self.store.len() as u64;
        s.stored_bytes = self.store.bytes() as u64;
        s.dedup_evictions = self.dedup.evictions();
        s.timer_entries = self.timers.len() as u64;
        if let Some(j) = &self.journal {
            s.journal_syncs = j.syncs;
            s.journal_zero_fills = j.zero_fills;
            s.journal_bytes = j.disk_bytes;
            s.journal_segments = j.segments;
            s.checkpoints = j.checkpoints;
            s.journal_write_micros_avg = j.write_micros.checked_div(j.writes).unwrap_or(0);
        }
        s
    }

    /// True if `id` is stored now.
    #[cfg(test)]
    pub(crate) fn is_stored(&self, id: MessageId) -> bool {
        self.store.get(&id).is_some()
    }

    /// True if a `Message` with `id` would be answered `Duplicate`.
    #[cfg(test)]
    pub(crate) fn remembers(&self, id: MessageId) -> bool {
        self.store.get(&id).is_some() || self.dedup.contains(id)
    }

    /// Every stored ID, in landing order.
    #[cfg(test)]
    pub(crate) fn stored_ids(&self) -> Vec<MessageId> {
        self.store.iter().map(|(id, _)| *id).collect()
    }

    /// Panics unless every cross-reference of the state agrees: stored
    /// bytes, each message's count of groups holding it, ready queues and
    /// pending states, each subscription's unacked count, the stored and
    /// deleted counters. For the property tests and the fuzz target.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check_invariants(&self) {
        use crate::groups::PendingState;
        use std::collections::HashSet;
        let stored: HashSet<MessageId> = self.store.iter().map(|(id, _)| *id).collect();
        let bytes: usize = self.store.iter().map(|(_, m)| m.size).sum();
        assert_eq!(bytes, self.store.bytes());
        let durable = self.journal.as_ref().map_or(u64::MAX, |j| j.durable);
        for (id, m) in self.store.iter() {
            let holders = self
                .groups
                .iter()
                .filter(|g| g.pending.contains_key(id))
                .count();
            if m.lsn <= durable {
                assert_eq!(
                    m.remaining as usize, holders,
                    "{id}: remaining vs groups holding it"
                );
            } else {
                assert_eq!(holders, 0, "{id} handed to a group before it was durable");
            }
        }
        for g in &self.groups {
            let ready: Vec<_> = g.ready.iter().collect();
            let unique: HashSet<_> = ready.iter().collect();
            assert_eq!(ready.len(), unique.len(), "an id twice in a ready queue");
            for (id, p) in &g.pending {
                assert!(stored.contains(id), "{id} pending in a group but deleted");
                assert_eq!(
                    g.ready.contains(id),
                    p.state == PendingState::Ready,
                    "{id} {p:?}"
                );
                assert!(p.deliveries <= self.limits.max_deliveries);
            }
        }
        for (sk, sub) in &self.subs {
            let outstanding = self.groups[sub.group]
                .pending
                .values()
                .filter(|p| p.state == PendingState::Outstanding { sub: *sk })
                .count();
            assert_eq!(sub.unacked as usize, outstanding, "sub {sk} unacked count");
        }
        let s = self.stats();
        assert_eq!(s.messages_stored, s.messages_deleted + stored.len() as u64);
    }

    /// Consumer groups.
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Takes over another core's counters and RNG (a restart).
    pub(crate) fn carry_over(&mut self, old: &mut Core) {
        self.stats = old.stats;
        std::mem::swap(&mut self.rng, &mut old.rng);
    }

    /// Bytes a checkpoint of the stored messages takes, roughly.
    pub(crate) fn live_estimate(&self) -> u64 {
        (self.store.bytes() + 64 * self.store.len()) as u64
    }

    /// Counters the driver updates (connections, faults, timeouts).
    pub(crate) fn stats_mut(&mut self) -> &mut BrokerStats {
        &mut self.stats
    }

    pub(crate) fn landed_count(&self, id: MessageId) -> u32 {
        self.store.landed_count(&id)
    }

    pub(crate) fn connections(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn role(&self, conn: ConnId) -> Option<Role> {
        self.conns.get(&conn).map(|c| c.role)
    }

    /// Registers a connection that completed the handshake.
    pub(crate) fn open(&mut self, conn: ConnId, role: Role) {
        self.stats.connections_accepted += 1;
        self.conns.insert(
            conn,
            ConnState {
                role,
                subs: FastMap::default(),
                room: self.limits.max_output_bytes as i64,
            },
        );
    }

    /// The driver's report of how many bytes `conn`'s output queue can take
    /// now. Deliveries held back for want of room resume when it grows.
    pub(crate) fn set_output_room(&mut self, conn: ConnId, room: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let was_full = c.room <= 0;
        c.room = room.min(i64::MAX as usize) as i64;
        if was_full && c.room > 0 {
            let mut groups: Vec<usize> = c
                .subs
                .values()
                .filter_map(|sk| self.subs.get(sk).map(|s| s.group))
                .collect();
            groups.sort_unstable();
            groups.dedup();
            for g in groups {
                self.pump(g, now);
            }
        }
    }

    /// True if `conn` has no output room left (deliveries to it wait).
    pub(crate) fn output_full(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.room <= 0)
    }

    /// Handles one frame from `conn`. `Err` means: send this `Close` and close
    /// the connection (then call [`Core::close`]).
    pub(crate) fn handle_frame(
        &mut self,
        conn: ConnId,
        frame: Frame,
        now: Instant,
    ) -> Result<(), Close> {
        let Some(role) = self.role(conn) else {
            return Ok(()); // closed meanwhile (e.g. a delayed frame)
        };
        match (role, frame) {
            (_, Frame::Ping(p)) => self.out.push((conn, Pong { nonce: p.nonce }.into())),
            (_, Frame::Pong(_)) | (_, Frame::Extension { .. }) | (_, Frame::Close(_)) => {}
            (Role::Sender, Frame::Message(m)) => self.on_message(conn, m, now),
            (Role::Receiver, Frame::Subscribe(s)) => self.on_subscribe(conn, s, now)?,
            (Role::Receiver, Frame::Ack(a)) => self.on_ack(conn, a.sub_id, a.id)?,
            (Role::Receiver, Frame::Nack(n)) => {
                self.on_nack(conn, n.sub_id, n.id, n.delay_ms, now)?
            }
            (Role::Receiver, Frame::Credit(c)) => {
                let sk = self.sub_key(conn, c.sub_id)?;
                if let Some(sub) = self.subs.get_mut(&sk) {
                    sub.credit = sub.credit.saturating_add(c.credit);
                    let g = sub.group;
                    self.pump(g, now);
                }
            }
            (role, other) => {
                return Err(close(
                    ErrorCode::UNEXPECTED_FRAME,
                    format!(
                        "{} frame not allowed on a {role:?} connection",
                        other.name()
                    ),
                ))
            }
        }
        Ok(())
    }

    /// A `Deliver` that a fault dropped before it reached the wire. The
    /// receiver never sees it, so it would never return the credit the
    /// delivery used; a live TCP connection cannot lose one frame and carry
    /// on, so the simulated loss gives that credit back. The delivery stays
    /// outstanding until its redelivery timer fires, as a lost one would.
    pub(crate) fn return_credit(&mut self, conn: ConnId, sub_id: u32, now: Instant) {
        let Ok(sk) = self.sub_key(conn, sub_id) else {
            return;
        };
        if let Some(sub) = self.subs.get_mut(&sk) {
            sub.credit = sub.credit.saturating_add(1);
            let g = sub.group;
            self.pump(g, now);
        }
    }

    fn sub_key(&self, conn: ConnId, sub_id: u32) -> Result<SubKey, Close> {
        self.conns
            .get(&conn)
            .and_then(|c| c.subs.get(&sub_id).copied())
            .ok_or_else(|| {
                close(
                    ErrorCode::UNKNOWN_SUBSCRIPTION,
                    format!("no subscription {sub_id} on this connection"),
                )
            })
    }

    fn check(&self, m: &Message) -> Result<(), (ErrorCode, String)> {
        crate::limits::check_message(m, self.limits.max_message_size, self.limits.max_frame_size)?;
        let size = crate::limits::size_of(m);
        self.store
            .check_room(size)
            .map_err(|r| (r.code, r.reason))?;
        if let Some(j) = &self.journal {
            if j.no_room(m.frame_size()) {
                let why = if j.full {
                    "the journal cannot write (disk full?); retry later".to_owned()
                } else {
                    format!(
                        "the journal holds its limit of {} bytes on disk; retry once consumers ack",
                        j.max_disk_bytes
                    )
                };
                return Err((ErrorCode::STORE_FULL, why));
            }
        }
        Ok(())
    }

    fn on_message(&mut self, conn: ConnId, m: Message, now: Instant) {
        if m.attempt > 1 {
            self.stats.retransmits_received += 1;
        }
        let (id, attempt) = (m.id, m.attempt);
        // A message still stored is a duplicate even if dedup forgot its ID:
        // a stored message is never overwritten.
        let stored = self.store.get(&id).map(|s| s.lsn);
        let mut wait = None;
        let status = if stored.is_some() || self.dedup.contains(id) {
            self.stats.duplicates_answered += 1;
            // An original not yet durable: the answer waits for it too.
            wait = stored.filter(|&lsn| self.unsynced(lsn));
            ReplyStatus::Duplicate
        } else if let Err((code, reason)) = self.check(&m) {
            self.stats.rejected += 1;
            ReplyStatus::Rejected { code, reason }
        } else {
            wait = self.land(m, now);
            ReplyStatus::Stored
        };
        let reply = Reply {
            id,
            attempt,
            status,
        };
        match wait {
            Some(lsn) => self.waiting.push_back((lsn, Waiting::Reply(conn, reply))),
            None => {
                self.stats.replies_sent += 1;
                self.out.push((conn, reply.into()));
            }
        }
    }

    /// True if a reply or a hand-over to groups waits for the journal.
    pub(crate) fn waits_for_journal(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// True if journal position `lsn` is not durable yet.
    fn unsynced(&self, lsn: u64) -> bool {
        self.journal.as_ref().is_some_and(|j| lsn > j.durable)
    }

    /// Lands a checked message. In memory it goes to every group of its
    /// topic at once; with a journal its record is appended and the
    /// position returned: the message reaches its groups (and its reply
    /// the sender) once that position is durable.
    fn land(&mut self, m: Message, now: Instant) -> Option<u64> {
        let id = m.id;
        let (topic, groups) = self.intern(&m.topic);
        if let Some(j) = &mut self.journal {
            let lsn = j.append_land(&m);
            self.store.land(m, topic, 0, lsn, now);
            self.dedup.insert(id);
            self.stats.messages_stored += 1;
            self.waiting.push_back((lsn, Waiting::Publish(id)));
            return Some(lsn);
        }
        // In memory the groups are known now: hand over at once, without
        // looking the message and its topic up again (`publish`).
        let remaining = groups.as_ref().map_or(0, |g| g.len() as u32);
        self.store.land(m, topic, remaining, 0, now);
        self.dedup.insert(id);
        self.stats.messages_stored += 1;
        for &g in groups.iter().flat_map(|g| g.iter()) {
            self.groups[g].enqueue(id);
            self.pump(g, now);
        }
        None
    }

    /// The shared name of a topic (the groups' key if it has groups, else
    /// the last topic seen) and its groups, with one lookup.
    fn intern(&mut self, topic: &str) -> (Topic, Option<Arc<[usize]>>) {
        if let Some((t, g)) = self.topic_groups.get_key_value(topic) {
            return (t.clone(), Some(g.clone()));
        }
        // Topics without groups are not interned in the map (that would
        // grow with every topic name ever used); reuse the last one
        // instead, the common case of a steady stream.
        match &self.last_topic {
            Some(t) if **t == *topic => (t.clone(), None),
            _ => {
                let t: Topic = Topic::from(topic);
                self.last_topic = Some(t.clone());
                (t, None)
            }
        }
    }

    /// Hands a stored message to every group of its topic.
    fn publish(&mut self, id: MessageId, now: Instant) {
        let Some(m) = self.store.get_mut(&id) else {
            return;
        };
        // No groups: no `Arc` of them (an empty `Arc<[usize]>` is an
        // allocation per message).
        let Some(groups) = self.topic_groups.get(&m.topic).cloned() else {
            return;
        };
        m.remaining += groups.len() as u32;
        for &g in groups.iter() {
            self.groups[g].enqueue(id);
            self.pump(g, now);
        }
    }

    /// The journal made everything up to `lsn` durable: release what
    /// waited for it.
    pub(crate) fn on_durable(&mut self, lsn: u64, now: Instant) {
        if let Some(j) = &mut self.journal {
            j.durable = j.durable.max(lsn);
        }
        while self.waiting.front().is_some_and(|(l, _)| *l <= lsn) {
            let Some((_, w)) = self.waiting.pop_front() else {
                break;
            };
            match w {
                Waiting::Reply(conn, reply) => {
                    if self.conns.contains_key(&conn) {
                        self.stats.replies_sent += 1;
                        self.out.push((conn, reply.into()));
                    }
                }
                Waiting::Publish(id) => self.publish(id, now),
            }
        }
    }

    /// Appends a record if there is a journal.
    fn journal(&mut self, rec: Record) {
        if let Some(j) = &mut self.journal {
            j.append(&rec);
        }
    }

    /// Closes a connection: its subscriptions end and their unacked
    /// deliveries go back to their groups at once.
    pub(crate) fn close(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let mut touched = Vec::new();
        for sk in c.subs.into_values() {
            let Some(sub) = self.subs.remove(&sk) else {
                continue;
            };
            let g = sub.group;
            self.groups[g].remove_member(sk);
            let mut ids = self.groups[g].outstanding_with(sk);
            // Pushed to the front one by one: lowest ID ends up first.
            ids.sort_unstable_by(|a, b| b.cmp(a));
            for id in ids {
                self.requeue(g, id);
            }
            if !touched.contains(&g) {
                touched.push(g);
            }
        }
        for g in touched {
            self.pump(g, now);
        }
    }

    /// Closes every connection (crash or restart).
    pub(crate) fn close_all(&mut self, now: Instant) {
        let conns: Vec<_> = self.conns.keys().copied().collect();
        for c in conns {
            self.close(c, now);
        }
    }

    /// Forgets every message, group, dedup entry and dead letter (the
    /// landing log too). Counters and the RNG carry on.
    pub(crate) fn lose_store(&mut self, now: Instant) {
        self.close_all(now);
        self.store = Store::new(
            self.limits.max_stored_messages,
            self.limits.max_stored_bytes,
            self.limits.record_landings,
        );
        self.dedup = Dedup::new(
            self.limits.dedup_max_producers,
            self.limits.dedup_max_ranges,
        );
        self.topic_groups.clear();
        self.groups.clear();
        self.group_index.clear();
        self.timers.clear();
        self.dead.clear();
        self.dead_bodies = admin::DeadBodies::default();
    }
}
