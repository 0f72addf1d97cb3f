//! The message store: landed messages, their order per topic, the count and
//! byte limits, and the per-ID landing log kept for tests.
//!
//! Messages live in a slab of fixed-size chunks ([`Slab`]), found through a
//! small index from ID to slot. The index's entries are 24 bytes where the
//! messages are ~150, so when it grows (doubling, as every hash table does)
//! it moves and first-touches a sixth of the memory the old
//! `HashMap<MessageId, Stored>` did, under the broker's lock; the messages
//! themselves never move once landed, and land in slots taken in order, so
//! consecutive messages share cache lines and pages. The profile that
//! motivated it (docs/BENCHMARKS.md, round 5): on publish without
//! consumers, the table's growth and first-touch page faults were about a
//! fifth of the broker's CPU at 200k stored messages and its p99.9 stalls.

use crate::topic::Topic;
use mq_protocol::hash::IdMap;

use bytes::Bytes;
use mq_protocol::{ErrorCode, Headers, Message, MessageId};

use mq_protocol::hash::FastMap;

/// A landed message.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) topic: Topic,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
    /// Landing order, unique per store.
    pub(crate) seq: u64,
    /// Groups that still have to ack (or dead-letter) it.
    pub(crate) remaining: u32,
    /// Bytes counted against `max_stored_bytes`.
    pub(crate) size: usize,
    /// Journal position after its `Land` record (0 in memory): durable
    /// once the journal's durable watermark reaches it.
    pub(crate) lsn: u64,
    /// When this process landed it (or recovered it from the journal):
    /// the admin pages' "oldest message age".
    pub(crate) landed_at: tokio::time::Instant,
}

/// Why a message cannot be landed.
pub(crate) struct Rejection {
    pub(crate) code: ErrorCode,
    pub(crate) reason: String,
}

/// The store. Owned by the core; not thread-safe.
#[derive(Debug)]
pub(crate) struct Store {
    index: IdMap<usize>,
    slab: Slab,
    bytes: usize,
    next_seq: u64,
    landings: Option<FastMap<MessageId, u32>>,
    max_messages: usize,
    max_bytes: usize,
}

impl Store {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, record_landings: bool) -> Self {
        Self {
            index: IdMap::default(),
            slab: Slab::default(),
            bytes: 0,
            next_seq: 0,
            landings: record_landings.then(FastMap::default),
            max_messages,
            max_bytes,
        }
    }

    /// Bytes a message counts for: payload plus header keys and values.
    pub(crate) fn size_of(msg: &Message) -> usize {
        msg.payload.len() + msg.headers.payload_bytes()
    }

    /// Checks the count and byte limits for a message of `size` bytes.
    pub(crate) fn check_room(&self, size: usize) -> Result<(), Rejection> {
        if size > self.max_bytes {
            return Err(Rejection {
                code: ErrorCode::MESSAGE_TOO_LARGE,
                reason: format!(
                    "message of {size} bytes exceeds the store's byte limit of {}",
                    self.max_bytes
                ),
            });
        }
        if self.index.len() >= self.max_messages {
            return Err(Rejection {
                code: ErrorCode::STORE_FULL,
                reason: format!("store holds its limit of {} messages", self.max_messages),
            });
        }
        if self.bytes + size > self.max_bytes {
            return Err(Rejection {
                code: ErrorCode::STORE_FULL,
                reason: format!(
                    "store holds {} of its {} byte limit; {size} more do not fit",
                    self.bytes, self.max_bytes
                ),
            });
        }
        Ok(())
    }

    /// Lands `msg` (the caller checked room and dedup) with `remaining`
    /// groups to ack it, its journal record ending at `lsn`, at `now`.
    pub(crate) fn land(
        &mut self,
        msg: Message,
        topic: Topic,
        remaining: u32,
        lsn: u64,
        now: tokio::time::Instant,
    ) {
        let size = Self::size_of(&msg);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        if let Some(log) = &mut self.landings {
            *log.entry(msg.id).or_insert(0) += 1;
        }
        let stored = Stored {
            topic,
            headers: msg.headers,
            payload: msg.payload,
            seq,
            remaining,
            size,
            lsn,
            landed_at: now,
        };
        match self.index.entry(msg.id) {
            // The caller checked dedup; a second landing of one ID replaces
            // the first, as the map did.
            std::collections::hash_map::Entry::Occupied(e) => {
                if let Some(old) = self.slab.replace(*e.get(), msg.id, stored) {
                    self.bytes -= old.size;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.slab.insert(msg.id, stored));
            }
        }
    }

    pub(crate) fn get(&self, id: &MessageId) -> Option<&Stored> {
        self.slab.get(*self.index.get(id)?)
    }

    pub(crate) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Stored> {
        self.slab.get_mut(*self.index.get(id)?)
    }

    /// One group is done with `id`: counts it off and deletes the message
    /// once no group is left, with one hash lookup. True if it was deleted.
    pub(crate) fn release(&mut self, id: &MessageId) -> bool {
        let Some(&slot) = self.index.get(id) else {
            return false;
        };
        let Some(m) = self.slab.get_mut(slot) else {
            return false;
        };
        m.remaining = m.remaining.saturating_sub(1);
        if m.remaining > 0 {
            return false;
        }
        self.index.remove(id);
        if let Some(m) = self.slab.remove(slot) {
            self.bytes -= m.size;
        }
        true
    }

    /// IDs stored durably (journal position at most `durable`) on `topic`,
    /// in landing order. Scans the whole store: it runs only when a group
    /// is created, and saves a per-topic index update on every message.
    pub(crate) fn topic_ids(&self, topic: &str, durable: u64) -> Vec<MessageId> {
        let mut ids: Vec<_> = self
            .slab
            .iter()
            .filter(|(_, m)| &*m.topic == topic && m.lsn <= durable)
            .map(|(id, m)| (m.seq, *id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Every stored message in landing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&MessageId, &Stored)> {
        let mut all: Vec<_> = self.slab.iter().collect();
        all.sort_by_key(|(_, m)| m.seq);
        all.into_iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn landed_count(&self, id: &MessageId) -> u32 {
        self.landings
            .as_ref()
            .and_then(|l| l.get(id).copied())
            .unwrap_or(0)
    }
}

/// Slots per chunk: 512 messages of ~150 bytes, ~75 KiB, below glibc's
/// default mmap threshold so a chunk comes from the heap, not its own map.
const CHUNK: usize = 512;

/// Landed messages in fixed-size chunks: a slot's address never changes
/// (growing adds a chunk, it never moves the others), and freed slots are
/// reused most-recently-freed first. Capacity is kept once grown, as a
/// `HashMap` keeps its table.
#[derive(Debug, Default)]
struct Slab {
    chunks: Vec<Vec<Option<(MessageId, Stored)>>>,
    /// Slots freed and not yet reused.
    free: Vec<usize>,
    /// Slots ever handed out: the next fresh one.
    next: usize,
}

impl Slab {
    fn insert(&mut self, id: MessageId, m: Stored) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.next;
                self.next += 1;
                if slot / CHUNK == self.chunks.len() {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks[slot / CHUNK].push(None);
                slot
            }
        };
        self.chunks[slot / CHUNK][slot % CHUNK] = Some((id, m));
        slot
    }

    /// Puts `m` in `slot` (one `insert` handed out), returning what was there.
    fn replace(&mut self, slot: usize, id: MessageId, m: Stored) -> Option<Stored> {
        let cell = &mut self.chunks[slot / CHUNK][slot % CHUNK];
        cell.replace((id, m)).map(|(_, m)| m)
    }

    fn get(&self, slot: usize) -> Option<&Stored> {
        let (_, m) = self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()?;
        Some(m)
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Stored> {
        let (_, m) = self
            .chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .as_mut()?;
        Some(m)
    }

    fn remove(&mut self, slot: usize) -> Option<Stored> {
        let (_, m) = self
            .chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .take()?;
        self.free.push(slot);
        Some(m)
    }

    /// Occupied slots, in slot order (not landing order).
    fn iter(&self) -> impl Iterator<Item = (&MessageId, &Stored)> {
        self.chunks
            .iter()
            .flatten()
            .filter_map(|c| c.as_ref().map(|(id, m)| (id, m)))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
