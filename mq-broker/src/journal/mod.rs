//! The durable storage behind `Storage::Disk`: a segmented append-only
//! journal with checksummed records, group commit and checkpoints.
//!
//! # Layout
//!
//! * `record`: the record kinds and their byte format (CRC-32 per record).
//! * `disk`: the file-system seam ([`disk::Disk`]); the real one and, for
//!   tests, `sim` (a disk that loses what was not synced).
//! * `log`: segments on a disk: recovery, one fdatasync per batch, roll,
//!   checkpoints that reclaim old segments.
//! * `recover`: [`log::Log::open`], recovery of the segments at start;
//!   `recover_tests` pins each of its rules on the simulated disk.
//! * `flusher`: the writer thread (group commit) between the core and the
//!   log; `flusher_tests` runs it on the simulated disk.
//! * `commit`: the same write done inline by the connection task that
//!   appended, when no batch is in flight (no thread hop at low rates).
//! * `trace`: stage timings of the hand-off (`MQ_JOURNAL_TRACE=1`).
//! * [`Appender`]: the core's side, under the broker's lock: records are
//!   encoded into one buffer; the flusher takes the whole buffer, writes and
//!   syncs it, and reports the new durable watermark.
//!
//! # The durability rule
//!
//! The core answers `Stored` (and `Duplicate` for an original not yet
//! durable) and hands a message to its groups only once the journal's
//! durable watermark covers the message's `Land` record. Acks, deliveries,
//! dead letters and group creations are journaled without waiting: losing
//! one in a crash costs a redelivery, never a message.

pub(crate) mod commit;
pub(crate) mod disk;
pub(crate) mod flusher;
#[cfg(test)]
mod flusher_tests;
pub(crate) mod log;
pub(crate) mod record;
mod recover;
#[cfg(test)]
mod recover_tests;
#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
pub(crate) mod trace;
#[cfg(test)]
mod zero_tests;

use mq_protocol::Message;

use record::Record;

/// The core's end of the journal: what was appended and what is durable.
#[derive(Debug, Default)]
pub(crate) struct Appender {
    /// Encoded records not yet taken by the flusher.
    pub(crate) buf: Vec<u8>,
    /// Bytes ever appended (a logical position, the "LSN").
    pub(crate) appended: u64,
    /// Position up to which everything is on stable storage.
    pub(crate) durable: u64,
    /// The last write failed (a full disk): new messages are refused with
    /// `STORE_FULL` until a write succeeds again.
    pub(crate) full: bool,
    /// Journal bytes on disk, as of the last write.
    pub(crate) disk_bytes: u64,
    /// New messages are refused with `STORE_FULL` while the journal holds
    /// this many bytes (checkpoints bring it down as messages are acked).
    pub(crate) max_disk_bytes: u64,
    /// Counters the flusher keeps, for stats.
    pub(crate) syncs: u64,
    pub(crate) zero_fills: u64,
    pub(crate) segments: u64,
    pub(crate) checkpoints: u64,
    /// Sum and count of write+fdatasync durations, in microseconds.
    pub(crate) write_micros: u64,
    pub(crate) writes: u64,
    /// Bytes written since the newest checkpoint, and the segment size,
    /// as of the last write: whether the next batch wants a checkpoint.
    pub(crate) tail_bytes: u64,
    pub(crate) segment_size: u64,
    /// When the oldest record in `buf` that someone waits for was
    /// appended (kept only under `MQ_JOURNAL_TRACE`).
    pub(crate) urgent_at: Option<std::time::Instant>,
}

impl Appender {
    /// Appends one record; returns the position after it.
    pub(crate) fn append(&mut self, rec: &Record) -> u64 {
        self.appended += rec.encode(&mut self.buf) as u64;
        self.appended
    }

    /// Appends a message's `Land` record; returns the position after it.
    pub(crate) fn append_land(&mut self, m: &Message) -> u64 {
        if self.urgent_at.is_none() && trace::on() {
            self.urgent_at = Some(std::time::Instant::now());
        }
        self.appended +=
            record::encode_land(&mut self.buf, m.id, &m.topic, &m.headers, &m.payload) as u64;
        self.appended
    }

    /// True if the next batch (what `buf` holds) should be followed by a
    /// checkpoint, given the live state's size: the log since the last
    /// one outgrew the live state, or the journal holds far more than the
    /// live state (its messages were acked since), so that disk stays
    /// near live + a segment.
    pub(crate) fn wants_checkpoint(&self, live: u64) -> bool {
        let tail = self.tail_bytes + self.buf.len() as u64;
        tail > self.segment_size.max(live) || self.disk_bytes > 2 * live + self.segment_size
    }

    /// Copies the log's counters after a write (under the broker's lock).
    pub(crate) fn wrote(&mut self, c: log::Counters) {
        self.full = false;
        self.syncs = c.syncs;
        self.zero_fills = c.zero_fills;
        self.disk_bytes = c.disk_bytes;
        self.segments = c.segments;
        self.tail_bytes = c.tail_bytes;
    }

    /// True if a new message of about `bytes` must be refused for space.
    pub(crate) fn no_room(&self, bytes: usize) -> bool {
        self.full || self.disk_bytes + self.buf.len() as u64 + bytes as u64 > self.max_disk_bytes
    }
}
