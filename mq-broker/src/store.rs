//! The message store: landed messages, their order per topic, the count and
//! byte limits, and the per-ID landing log kept for tests.

use std::sync::Arc;

use bytes::Bytes;
use mq_protocol::{ErrorCode, Headers, Message, MessageId};

use mq_protocol::hash::FastMap;

/// A landed message.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) topic: Arc<str>,
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
    msgs: FastMap<MessageId, Stored>,
    bytes: usize,
    next_seq: u64,
    landings: Option<FastMap<MessageId, u32>>,
    max_messages: usize,
    max_bytes: usize,
}

impl Store {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, record_landings: bool) -> Self {
        Self {
            msgs: FastMap::default(),
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
        if self.msgs.len() >= self.max_messages {
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
        topic: Arc<str>,
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
        self.msgs.insert(
            msg.id,
            Stored {
                topic,
                headers: msg.headers,
                payload: msg.payload,
                seq,
                remaining,
                size,
                lsn,
                landed_at: now,
            },
        );
    }

    pub(crate) fn get(&self, id: &MessageId) -> Option<&Stored> {
        self.msgs.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Stored> {
        self.msgs.get_mut(id)
    }

    /// One group is done with `id`: counts it off and deletes the message
    /// once no group is left, with one hash lookup. True if it was deleted.
    pub(crate) fn release(&mut self, id: &MessageId) -> bool {
        use std::collections::hash_map::Entry;
        let Entry::Occupied(mut e) = self.msgs.entry(*id) else {
            return false;
        };
        let m = e.get_mut();
        m.remaining = m.remaining.saturating_sub(1);
        if m.remaining > 0 {
            return false;
        }
        self.bytes -= e.remove().size;
        true
    }

    /// IDs stored durably (journal position at most `durable`) on `topic`,
    /// in landing order. Scans the whole store: it runs only when a group
    /// is created, and saves a per-topic index update on every message.
    pub(crate) fn topic_ids(&self, topic: &str, durable: u64) -> Vec<MessageId> {
        let mut ids: Vec<_> = self
            .msgs
            .iter()
            .filter(|(_, m)| &*m.topic == topic && m.lsn <= durable)
            .map(|(id, m)| (m.seq, *id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Every stored message in landing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&MessageId, &Stored)> {
        let mut all: Vec<_> = self.msgs.iter().collect();
        all.sort_by_key(|(_, m)| m.seq);
        all.into_iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.msgs.len()
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
