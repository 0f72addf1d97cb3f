//! The segmented journal on a [`Disk`]: recovery at open, batched writes
//! with one fdatasync each, segment roll, and checkpoints that reclaim old
//! segments.
//!
//! # Files
//!
//! `NNNNNNNNNNNNNNNNNNNN.log` segments, numbered upwards, each starting
//! with the 8-byte magic `MQJRNL01` followed by records (see
//! [`Record`](super::record::Record)). Every write is one `Batch { epoch }`
//! record plus the batch's records, then one fdatasync; a new segment's
//! directory entry is synced before anything in it counts as durable.
//!
//! A *base* segment starts with a checkpoint: `Batch`, `Base`, the whole
//! state, `BaseEnd`; live records follow. Recovery replays from the newest
//! complete base; older segments are deleted once a newer base is synced.
//!
//! # Damage
//!
//! A record that fails its checksum (or is cut short) in the last segment,
//! with no intact `Batch` of a higher epoch after it (batches are written
//! one after the other, each synced before the next begins, so a later
//! batch proves the damaged one was synced), is a torn last write:
//! the segment is truncated there and the loss logged (nothing in that
//! write was acknowledged). Anything else is corruption of synced data: the
//! journal refuses to open, naming the file and offset, unless `repair` is
//! set, in which case the damaged bytes are skipped up to the next intact
//! batch and reported.
//!
//! # Zeros ahead of the data
//!
//! On ext4 (and most file systems) an fdatasync after a write that grows
//! the file must also commit the file-system journal (the new size and
//! blocks); the same write over blocks already written costs only the data.
//! So, as PostgreSQL does for its WAL, [`Log::prezero`] keeps up to
//! [`LogOptions::prezero`] bytes of real zeros written and synced ahead of
//! the current segment's data, off the critical path (the flusher calls it
//! after a batch's durable hand-off). Never more than one chunk of zeros
//! lies beyond the data, and never past `segment_size`.
//!
//! At a record boundary, a segment whose remaining bytes are all zero ends
//! there cleanly (the last segment, and a rolled one: rolled segments keep
//! their zero tail, they are not cut). A torn write into the zeros (part of
//! a record, then zeros) is still a torn last write; zeros followed by
//! non-zero bytes later in the segment are damage like any other (a torn
//! last write in the last segment without a later synced batch, corruption
//! otherwise). Writing resumes at the end of the data, over the zeros.
//! What a zero tail could hide in a rolled segment (synced batches lost to
//! zeros) shows in the epochs: every write takes the next epoch (a failed
//! write gives its epoch back), so the segment after a zero tail must start
//! at the next epoch; a gap is corruption.
//! Segment lengths ([`Log::disk_bytes`]) count data, not zeros.
//!
//! What a checksum cannot tell: bit rot inside the very last write looks
//! like a torn write. A clean shutdown therefore ends with an empty
//! `Batch` ([`Log::seal`]), so only a crash leaves an ambiguous last write.

use std::io;

use super::disk::{Disk, DiskFile};
use super::record::Record;
use super::recover::io_err;

/// Magic at the start of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"MQJRNL01";
pub(super) const SEG_HEADER: u64 = MAGIC.len() as u64;

/// How the journal is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    /// A segment is rolled before a write that would take it past this.
    pub(crate) segment_size: u64,
    /// Skip corrupt ranges instead of refusing to open.
    pub(crate) repair: bool,
    /// Bytes of zeros [`Log::prezero`] keeps ahead of the data (0: none).
    pub(crate) prezero: u64,
}

impl LogOptions {
    /// The zero chunk for a segment size: a quarter segment, at most 1 MiB
    /// (about a second of a paced 5,000 msgs/s run; a larger chunk only
    /// makes each fill's fdatasync longer).
    pub(crate) fn prezero_for(segment_size: u64) -> u64 {
        (segment_size / 4).min(1 << 20)
    }
}

/// What recovery found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recovery {
    pub(crate) segments: usize,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    /// A torn last write cut off: (file, offset, bytes dropped).
    pub(crate) truncated: Option<(String, u64, u64)>,
    /// Ranges skipped by `repair`: (file, offset, bytes).
    pub(crate) skipped: Vec<(String, u64, u64)>,
    /// Incomplete checkpoint segments removed.
    pub(crate) torn_checkpoints: usize,
    /// `repair` replayed a damaged checkpoint as far as it read.
    pub(crate) repaired_checkpoint: bool,
}

/// Why the journal cannot be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("journal file {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "journal file {file} is corrupt at offset {offset} ({why}); data after it was synced, \
         so this is not a torn write. Restore the data directory from a backup, or start with \
         --repair to skip the damaged bytes (messages in them are lost)"
    )]
    Corrupt {
        file: String,
        offset: u64,
        why: String,
    },
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The bytes could not be written (a full disk, say); nothing of the
    /// batch counts, the segment was cut back, and the write can be retried.
    #[error("journal write failed: {0}")]
    Write(#[source] io::Error),
    /// fdatasync failed: the kernel may have dropped the pages, so what is
    /// on disk is unknown. Never retried: the broker must stop.
    #[error("journal fdatasync failed (data on disk unknown; the broker must stop): {0}")]
    Sync(#[source] io::Error),
}

#[derive(Debug, Clone)]
pub(super) struct Seg {
    pub(super) seq: u64,
    pub(super) len: u64,
}

pub(super) fn seg_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

pub(super) fn parse_seg(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

/// A copy of the log's counters ([`Log::counters`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) syncs: u64,
    pub(crate) zero_fills: u64,
    pub(crate) disk_bytes: u64,
    pub(crate) segments: u64,
    pub(crate) tail_bytes: u64,
}

/// The open journal.
pub(crate) struct Log {
    pub(super) disk: Box<dyn Disk>,
    pub(super) opts: LogOptions,
    pub(super) segs: Vec<Seg>,
    pub(super) cur: Box<dyn DiskFile>,
    pub(super) epoch: u64,
    /// Bytes written since the newest checkpoint.
    pub(super) tail_bytes: u64,
    /// Scratch for one write.
    pub(super) scratch: Vec<u8>,
    /// End of what the current segment holds, data then zeros (at least
    /// its data length).
    pub(super) zeroed: u64,
    /// fdatasync calls of batches and checkpoints so far (zero fills are
    /// counted apart).
    pub(crate) syncs: u64,
    /// Zero fills ([`Log::prezero`]) so far.
    pub(crate) zero_fills: u64,
    /// An fdatasync failed: what is on disk is unknown, so every later
    /// write fails too (the broker stops; nothing more may count as
    /// durable, whichever thread writes next).
    pub(super) broken: bool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("segments", &self.segs.len())
            .field("epoch", &self.epoch)
            .field("tail_bytes", &self.tail_bytes)
            .field("zeroed", &self.zeroed)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// A fresh journal: one base segment with an empty checkpoint.
    pub(super) fn create(disk: Box<dyn Disk>, opts: LogOptions) -> Result<Log, OpenError> {
        let name = seg_name(1);
        let cur = disk.create(&name).map_err(io_err(&name))?;
        let mut log = Log {
            disk,
            opts,
            segs: vec![Seg { seq: 1, len: 0 }],
            cur,
            epoch: 0,
            tail_bytes: 0,
            scratch: Vec::new(),
            zeroed: 0,
            syncs: 0,
            zero_fills: 0,
            broken: false,
        };
        let mut snap = Vec::new();
        Record::Base.encode(&mut snap);
        Record::BaseEnd.encode(&mut snap);
        log.write_base_into_current(&snap)
            .map_err(|e| OpenError::Io {
                file: name,
                source: match e {
                    WriteError::Write(e) | WriteError::Sync(e) => e,
                },
            })?;
        Ok(log)
    }

    fn cur_len(&self) -> u64 {
        self.segs.last().map_or(0, |s| s.len)
    }

    /// Writes `records` (whole encoded records) as one batch and syncs it.
    /// Rolls to a new segment first when the batch would not fit.
    pub(crate) fn write(&mut self, records: &[u8]) -> Result<(), WriteError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.cur_len() > SEG_HEADER
            && self.cur_len() + records.len() as u64 > self.opts.segment_size
        {
            self.roll()?;
        }
        self.put(records)?;
        self.tail_bytes += records.len() as u64;
        Ok(())
    }

    /// One `Batch` record plus `records` at the end of the current segment,
    /// synced (and the directory too when the segment is new).
    fn put(&mut self, records: &[u8]) -> Result<(), WriteError> {
        self.check_broken()?;
        self.epoch += 1;
        self.scratch.clear();
        if self.cur_len() == 0 {
            self.scratch.extend_from_slice(MAGIC);
        }
        Record::Batch { epoch: self.epoch }.encode(&mut self.scratch);
        self.scratch.extend_from_slice(records);
        let at = self.cur_len();
        if let Err(e) = self.cur.write_at(at, &self.scratch) {
            // Cut back whatever part landed (and the zeros after it), so the
            // next write starts clean.
            let _ = self.cur.truncate(at);
            self.zeroed = at;
            // Nothing of the batch landed: its epoch is reused, so that
            // epochs stay consecutive across segments (see `open`).
            self.epoch -= 1;
            return Err(WriteError::Write(e));
        }
        self.zeroed = self.zeroed.max(at + self.scratch.len() as u64);
        self.sync(false)?;
        self.syncs += 1;
        // A new segment (every roll writes first at 0, and so does a retry
        // after its first write failed): its directory entry too.
        if at == 0 {
            self.sync(true)?;
        }
        if let Some(s) = self.segs.last_mut() {
            s.len += self.scratch.len() as u64;
        }
        Ok(())
    }

    /// Fails if an earlier fdatasync failed.
    fn check_broken(&self) -> Result<(), WriteError> {
        if self.broken {
            return Err(WriteError::Sync(io::Error::other(
                "an earlier fdatasync of the journal failed",
            )));
        }
        Ok(())
    }

    /// fdatasync of the current segment (or fsync of the directory); a
    /// failure breaks the log for good.
    fn sync(&mut self, dir: bool) -> Result<(), WriteError> {
        let r = if dir {
            self.disk.sync_dir()
        } else {
            self.cur.sync_data()
        };
        r.map_err(|e| {
            self.broken = true;
            WriteError::Sync(e)
        })
    }

    /// True if [`Log::prezero`] would write zeros now.
    pub(crate) fn needs_prezero(&self) -> bool {
        let chunk = self.opts.prezero;
        let len = self.cur_len();
        let target = (len + chunk).min(self.opts.segment_size);
        // (No chunk: `zeroed >= len` always holds. No data: no magic yet.)
        !(len == 0 || self.zeroed >= len + chunk / 2 || target <= self.zeroed)
    }

    fn roll(&mut self) -> Result<(), WriteError> {
        let seq = self.segs.last().map_or(1, |s| s.seq + 1);
        let cur = self
            .disk
            .create(&seg_name(seq))
            .map_err(WriteError::Write)?;
        self.cur = cur;
        self.segs.push(Seg { seq, len: 0 });
        self.zeroed = 0;
        Ok(())
    }

    /// Keeps zeros written and synced ahead of the data (see the module
    /// doc): when fewer than half of [`LogOptions::prezero`] bytes of zeros
    /// are left, writes zeros up to one chunk past the data (never past
    /// `segment_size`) and fdatasyncs them once. Returns whether it wrote.
    /// A failed write is cut back and only reported (the next batch meets
    /// the full disk itself); a failed fdatasync is fatal like any other.
    pub(crate) fn prezero(&mut self) -> Result<bool, WriteError> {
        self.check_broken()?;
        if !self.needs_prezero() {
            return Ok(false);
        }
        let target = (self.cur_len() + self.opts.prezero).min(self.opts.segment_size);
        let from = self.zeroed;
        if let Err(e) = self.cur.write_zeros(from, target - from) {
            let _ = self.cur.truncate(from);
            return Err(WriteError::Write(e));
        }
        self.sync(false)?;
        self.zero_fills += 1;
        self.zeroed = target;
        Ok(true)
    }

    fn write_base_into_current(&mut self, snapshot: &[u8]) -> Result<(), WriteError> {
        self.put(snapshot)?;
        self.tail_bytes = 0;
        Ok(())
    }

    /// Writes a checkpoint (`snapshot`: `Base` .. `BaseEnd`, describing the
    /// state after every record written so far) into a new segment, then
    /// removes every older segment.
    pub(crate) fn checkpoint(&mut self, snapshot: &[u8]) -> Result<(), WriteError> {
        let prev_zeroed = self.zeroed;
        self.roll()?;
        if let Err(e) = self.write_base_into_current(snapshot) {
            // Leave no half checkpoint behind as the current segment.
            if let Some(s) = self.segs.pop() {
                let _ = self.disk.remove(&seg_name(s.seq));
            }
            if let Some(prev) = self.segs.last() {
                if let Ok(f) = self.disk.open(&seg_name(prev.seq)) {
                    self.cur = f;
                    self.zeroed = prev_zeroed;
                }
            }
            return Err(e);
        }
        let keep = self.segs.len() - 1;
        for s in self.segs.drain(..keep) {
            if let Err(e) = self.disk.remove(&seg_name(s.seq)) {
                tracing::warn!(error = %e, segment = s.seq, "could not remove an old segment");
            }
        }
        // Not needed for correctness (recovery starts at the newest base
        // and removes older segments), only to release the space promptly.
        let _ = self.disk.sync_dir();
        Ok(())
    }

    /// Writes an empty batch: proof that everything before it was synced,
    /// so that damage to the last real write is recognised as corruption
    /// rather than a torn write (used at a clean shutdown).
    pub(crate) fn seal(&mut self) -> Result<(), WriteError> {
        self.put(&[])
    }

    /// Bytes in every segment.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.len).sum()
    }

    /// Bytes written since the newest checkpoint.
    pub(crate) fn tail_bytes(&self) -> u64 {
        self.tail_bytes
    }

    /// Segments on disk.
    pub(crate) fn segments(&self) -> usize {
        self.segs.len()
    }

    /// The counters the core keeps a copy of (for stats and for deciding
    /// on checkpoints without the log at hand).
    pub(crate) fn counters(&self) -> Counters {
        Counters {
            syncs: self.syncs,
            zero_fills: self.zero_fills,
            disk_bytes: self.disk_bytes(),
            segments: self.segs.len() as u64,
            tail_bytes: self.tail_bytes,
        }
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
