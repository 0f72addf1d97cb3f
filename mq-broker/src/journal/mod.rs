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
//! * `recover`: [`log::Log::open`], recovery of the segments at start.
//! * `flusher`: the one writer thread (group commit) between the core and
//!   the log.
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

pub(crate) mod disk;
pub(crate) mod flusher;
pub(crate) mod log;
pub(crate) mod record;
mod recover;
#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
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
    pub(crate) segments: u64,
    pub(crate) checkpoints: u64,
    /// Sum and count of write+fdatasync durations, in microseconds.
    pub(crate) write_micros: u64,
    pub(crate) writes: u64,
}

impl Appender {
    /// Appends one record; returns the position after it.
    pub(crate) fn append(&mut self, rec: &Record) -> u64 {
        self.appended += rec.encode(&mut self.buf) as u64;
        self.appended
    }

    /// Appends a message's `Land` record; returns the position after it.
    pub(crate) fn append_land(&mut self, m: &Message) -> u64 {
        self.appended +=
            record::encode_land(&mut self.buf, m.id, &m.topic, &m.headers, &m.payload) as u64;
        self.appended
    }

    /// True if a new message of about `bytes` must be refused for space.
    pub(crate) fn no_room(&self, bytes: usize) -> bool {
        self.full || self.disk_bytes + self.buf.len() as u64 + bytes as u64 > self.max_disk_bytes
    }
}
