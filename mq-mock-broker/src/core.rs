//! The sans-IO broker core: every rule of the protocol's two halves, stepped
//! with an explicit `now`, with no socket, task or clock inside.
//!
//! Inputs are [`Core::open`], [`Core::handle_frame`], [`Core::close`] and
//! [`Core::handle_timeout`]; outputs are the frames pushed to [`Core::out`]
//! (addressed by connection) and [`Core::poll_timeout`], the next deadline.
//! All redelivery deadlines live in one heap; entries made stale by an ack,
//! nack or requeue are recognised by a generation number and skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::{
    Backoff, Close, Deliver, ErrorCode, Frame, Message, MessageId, Pong, Reply, ReplyStatus, Role,
    Subscribe, SubscribeOk, MAX_TOPIC_LEN,
};
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::dedup::Dedup;
use crate::groups::{ConnId, Group, Pending, PendingState, Sub, SubKey, Timer};
use crate::inspect::{DeadLetter, GroupInfo, Inspection, StoredInfo, SubscriptionInfo};
use crate::store::Store;
use crate::{BrokerConfig, BrokerStats};

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
    max_acked_ids: usize,
}

#[derive(Debug)]
struct ConnState {
    role: Role,
    subs: HashMap<u32, SubKey>,
}

/// The broker's whole state.
#[derive(Debug)]
pub(crate) struct Core {
    limits: Limits,
    rng: StdRng,
    store: Store,
    dedup: Dedup,
    topic_groups: HashMap<Arc<str>, Vec<usize>>,
    groups: Vec<Group>,
    group_index: HashMap<(Arc<str>, String), usize>,
    conns: HashMap<ConnId, ConnState>,
    subs: HashMap<SubKey, Sub>,
    next_sub: SubKey,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    dead: VecDeque<DeadLetter>,
    stats: BrokerStats,
    /// Frames to send, addressed by connection, in order.
    pub(crate) out: Vec<(ConnId, Frame)>,
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
            max_acked_ids: config.max_acked_ids_per_group,
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
            topic_groups: HashMap::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            conns: HashMap::new(),
            subs: HashMap::new(),
            next_sub: 0,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            dead: VecDeque::new(),
            stats: BrokerStats::default(),
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
        s.dedup_evictions = self.dedup.evictions;
        s
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
                subs: HashMap::new(),
            },
        );
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
        if m.topic.is_empty() || m.topic.len() > MAX_TOPIC_LEN {
            return Err((
                ErrorCode::INVALID_TOPIC,
                format!("topic must be 1..={MAX_TOPIC_LEN} bytes"),
            ));
        }
        let size = Store::size_of(m);
        if size > self.limits.max_message_size {
            return Err((
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "message of {size} bytes exceeds the limit of {}",
                    self.limits.max_message_size
                ),
            ));
        }
        // A Deliver frame carries 4 more bytes (sub_id) than the Message.
        if m.frame_size() + 4 > self.limits.max_frame_size {
            return Err((
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "its Deliver frame would exceed the maximum frame size of {}",
                    self.limits.max_frame_size
                ),
            ));
        }
        self.store.check_room(size).map_err(|r| (r.code, r.reason))
    }

    fn on_message(&mut self, conn: ConnId, m: Message, now: Instant) {
        if m.attempt > 1 {
            self.stats.retransmits_received += 1;
        }
        let (id, attempt) = (m.id, m.attempt);
        let status = if self.dedup.contains(id) {
            self.stats.duplicates_answered += 1;
            ReplyStatus::Duplicate
        } else if let Err((code, reason)) = self.check(&m) {
            self.stats.rejected += 1;
            ReplyStatus::Rejected { code, reason }
        } else {
            self.land(m, now);
            ReplyStatus::Stored
        };
        self.stats.replies_sent += 1;
        self.out.push((
            conn,
            Reply {
                id,
                attempt,
                status,
            }
            .into(),
        ));
    }

    /// Lands a checked message and hands it to every group of its topic.
    fn land(&mut self, m: Message, now: Instant) {
        let id = m.id;
        let (topic, groups) = match self.topic_groups.get_key_value(m.topic.as_str()) {
            Some((t, g)) => (t.clone(), g.clone()),
            None => (Arc::from(m.topic.as_str()), Vec::new()),
        };
        self.store.land(m, topic, groups.len() as u32);
        self.dedup.insert(id);
        self.stats.messages_stored += 1;
        for g in groups {
            self.groups[g].enqueue(id);
            self.pump(g, now);
        }
    }

    fn on_subscribe(&mut self, conn: ConnId, s: Subscribe, now: Instant) -> Result<(), Close> {
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
        if s.topic.is_empty() {
            return Err(close(
                ErrorCode::INVALID_TOPIC,
                "Subscribe with an empty topic".into(),
            ));
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

    /// Finds or creates a group. A new group adopts every message still
    /// stored on its topic, then receives every later one.
    fn group_for(&mut self, topic: &str, name: &str) -> usize {
        let topic: Arc<str> = match self.topic_groups.get_key_value(topic) {
            Some((t, _)) => t.clone(),
            None => Arc::from(topic),
        };
        let key = (topic.clone(), name.to_owned());
        if let Some(&g) = self.group_index.get(&key) {
            return g;
        }
        let g = self.groups.len();
        let mut group = Group::new(topic.clone(), name.to_owned());
        for id in self.store.topic_ids(&topic) {
            if let Some(m) = self.store.get_mut(&id) {
                m.remaining += 1;
                group.enqueue(id);
            }
        }
        self.groups.push(group);
        self.group_index.insert(key, g);
        self.topic_groups.entry(topic).or_default().push(g);
        g
    }

    fn on_ack(&mut self, conn: ConnId, sub_id: u32, id: MessageId) -> Result<(), Close> {
        let sk = self.sub_key(conn, sub_id)?;
        self.stats.acks_received += 1;
        let Some(sub) = self.subs.get_mut(&sk) else {
            return Ok(());
        };
        let group = &mut self.groups[sub.group];
        match group.pending.get(&id) {
            Some(p) if p.state == (PendingState::Outstanding { sub: sk }) => {}
            _ => {
                self.stats.acks_ignored += 1;
                return Ok(());
            }
        }
        group.pending.remove(&id);
        group.record_ack(id, self.limits.max_acked_ids);
        sub.unacked = sub.unacked.saturating_sub(1);
        self.group_done(id);
        Ok(())
    }

    fn on_nack(
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
            self.limits.redelivery.delay(p.deliveries, &mut self.rng)
        } else {
            Duration::from_millis(u64::from(delay_ms))
        };
        p.state = PendingState::Waiting;
        p.gen = p.gen.wrapping_add(1);
        let gen = p.gen;
        self.arm(now + delay, g, id, gen);
        Ok(())
    }

    fn arm(&mut self, at: Instant, group: usize, id: MessageId, gen: u32) {
        self.timers.push(Reverse(Timer {
            at,
            seq: self.timer_seq,
            group,
            id,
            gen,
        }));
        self.timer_seq += 1;
    }

    /// One group is done with `id` (acked or dead-lettered); delete the
    /// message once no group is left.
    fn group_done(&mut self, id: MessageId) {
        if let Some(m) = self.store.get_mut(&id) {
            m.remaining = m.remaining.saturating_sub(1);
            if m.remaining == 0 {
                self.store.remove(&id);
                self.stats.messages_deleted += 1;
            }
        }
    }

    /// Sends ready messages of group `g` to members with credit, round robin.
    fn pump(&mut self, g: usize, now: Instant) {
        let Core {
            groups,
            subs,
            store,
            limits,
            rng,
            stats,
            out,
            timers,
            timer_seq,
            ..
        } = self;
        let group = &mut groups[g];
        while !group.ready.is_empty() {
            let n = group.members.len();
            let chosen = (0..n)
                .map(|i| (group.cursor + i) % n)
                .find(|&i| subs.get(&group.members[i]).is_some_and(|s| s.credit > 0));
            let Some(idx) = chosen else {
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
                return;
            };
            group.cursor = (idx + 1) % n;
            p.deliveries = p.deliveries.saturating_add(1);
            p.gen = p.gen.wrapping_add(1);
            p.state = PendingState::Outstanding { sub: sk };
            let at = now + limits.redelivery.delay(p.deliveries, rng);
            timers.push(Reverse(Timer {
                at,
                seq: *timer_seq,
                group: g,
                id,
                gen: p.gen,
            }));
            *timer_seq += 1;
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
                topic: msg.topic.to_string(),
                headers: msg.headers.clone(),
                payload: msg.payload.clone(),
            };
            out.push((sub.conn, deliver.into()));
        }
    }

    /// A message whose delivery ended without an ack (timer, nack delay over,
    /// receiver gone): back to the front of the ready queue, or to the
    /// dead-letter list after `max_deliveries`.
    fn requeue(&mut self, g: usize, id: MessageId) {
        let Some(p) = self.groups[g].pending.get(&id).copied() else {
            return;
        };
        if p.deliveries < self.limits.max_deliveries {
            self.groups[g].make_ready_front(id);
            return;
        }
        let group = &mut self.groups[g];
        group.pending.remove(&id);
        if self.dead.len() >= self.limits.max_dead_letters {
            self.dead.pop_front();
        }
        if self.limits.max_dead_letters > 0 {
            self.dead.push_back(DeadLetter {
                id,
                topic: group.topic.to_string(),
                group: group.name.clone(),
                deliveries: p.deliveries,
            });
        }
        self.stats.dead_lettered += 1;
        self.group_done(id);
    }

    /// The earliest deadline, if any (possibly a stale one; firing it is harmless).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(t)| t.at)
    }

    /// Fires every deadline at or before `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut touched = Vec::new();
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > now {
                break;
            }
            self.timers.pop();
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
        for g in touched {
            self.pump(g, now);
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
    }

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
        }
    }
}
