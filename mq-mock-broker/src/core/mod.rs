//! The sans-IO broker core: every rule of the protocol's two halves, stepped
//! with an explicit `now`, with no socket, task or clock inside.
//!
//! Inputs are [`Core::open`], [`Core::handle_frame`], [`Core::close`] and
//! [`Core::handle_timeout`]; outputs are the frames pushed to [`Core::out`]
//! (addressed by connection) and [`Core::poll_timeout`], the next deadline.
//! All redelivery deadlines live in one heap; entries made stale by an ack,
//! nack or requeue are recognised by a generation number and skipped.

use std::collections::VecDeque;
use std::sync::Arc;

use mq_protocol::{
    Backoff, Close, ErrorCode, Frame, Message, MessageId, Pong, Reply, ReplyStatus, Role,
    MAX_TOPIC_LEN,
};
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::dedup::Dedup;
use crate::groups::{ConnId, Group, Sub, SubKey};
use crate::inspect::DeadLetter;
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
    max_acked_ids: usize,
}

#[derive(Debug)]
struct ConnState {
    role: Role,
    subs: FastMap<u32, SubKey>,
}

/// The broker's whole state.
mod deliver;
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
    topic_groups: FastMap<Arc<str>, Arc<[usize]>>,
    last_topic: Option<Arc<str>>,
    groups: Vec<Group>,
    group_index: FastMap<(Arc<str>, String), usize>,
    conns: FastMap<ConnId, ConnState>,
    subs: FastMap<SubKey, Sub>,
    next_sub: SubKey,
    timers: TimerQueue,
    /// Reused buffer of due timer entries.
    due: Vec<crate::timers::Entry>,
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
        s.timer_entries = self.timers.len() as u64;
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
                subs: FastMap::default(),
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
        // No groups: no `Arc` of them (an empty `Arc<[usize]>` is an
        // allocation per message).
        let (topic, groups) = match self.topic_groups.get_key_value(m.topic.as_str()) {
            Some((t, g)) => (t.clone(), Some(g.clone())),
            None => {
                // Topics without groups are not interned in the map (that
                // would grow with every topic name ever used); reuse the
                // last one instead, the common case of a steady stream.
                let t = match &self.last_topic {
                    Some(t) if **t == *m.topic => t.clone(),
                    _ => {
                        let t: Arc<str> = Arc::from(m.topic.as_str());
                        self.last_topic = Some(t.clone());
                        t
                    }
                };
                (t, None)
            }
        };
        let count = groups.as_deref().map_or(0, <[usize]>::len);
        self.store.land(m, topic, count as u32);
        self.dedup.insert(id);
        self.stats.messages_stored += 1;
        for &g in groups.as_deref().unwrap_or_default() {
            self.groups[g].enqueue(id);
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
}
