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
//! What a checksum cannot tell: bit rot inside the very last write looks
//! like a torn write. A clean shutdown therefore ends with an empty
//! `Batch` ([`Log::seal`]), so only a crash leaves an ambiguous last write.

use std::io;

use super::disk::{Disk, DiskFile};
use super::record::{max_batch_epoch, next_batch, Record};

/// Magic at the start of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"MQJRNL01";
const SEG_HEADER: u64 = MAGIC.len() as u64;

/// How the journal is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    /// A segment is rolled before a write that would take it past this.
    pub(crate) segment_size: u64,
    /// Skip corrupt ranges instead of refusing to open.
    pub(crate) repair: bool,
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
struct Seg {
    seq: u64,
    len: u64,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

fn parse_seg(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

/// The open journal.
pub(crate) struct Log {
    disk: Box<dyn Disk>,
    opts: LogOptions,
    segs: Vec<Seg>,
    cur: Box<dyn DiskFile>,
    epoch: u64,
    /// Bytes written since the newest checkpoint.
    tail_bytes: u64,
    /// Scratch for one write.
    scratch: Vec<u8>,
    /// fdatasync calls so far.
    pub(crate) syncs: u64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("segments", &self.segs.len())
            .field("epoch", &self.epoch)
            .field("tail_bytes", &self.tail_bytes)
            .finish_non_exhaustive()
    }
}

fn io_err(file: &str) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        file: file.to_owned(),
        source,
    }
}

/// True if one of `seqs` is a complete base.
fn older_base(disk: &dyn Disk, seqs: &[u64]) -> Result<bool, OpenError> {
    for &seq in seqs.iter().rev() {
        let name = seg_name(seq);
        let data = disk
            .open(&name)
            .and_then(|mut f| f.read_all())
            .map_err(io_err(&name))?;
        if matches!(base_state(&data), BaseState::Complete) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where a base segment's checkpoint ends, if it is one and complete.
enum BaseState {
    NotBase,
    Complete,
    Torn,
}

fn base_state(data: &[u8]) -> BaseState {
    let mut off = SEG_HEADER as usize;
    let mut first = true;
    while off < data.len() {
        match Record::decode(&data[off..]) {
            Ok(Some((rec, n))) => {
                match rec {
                    Record::Batch { .. } => {}
                    Record::Base if first => {}
                    Record::BaseEnd if !first => return BaseState::Complete,
                    _ if first => return BaseState::NotBase,
                    _ => {}
                }
                if !matches!(rec, Record::Batch { .. }) {
                    first = false;
                }
                off += n;
            }
            _ => break,
        }
    }
    if first {
        BaseState::NotBase
    } else {
        BaseState::Torn
    }
}

impl Log {
    /// Opens (or creates) the journal, replaying every record from the
    /// newest complete checkpoint through `apply`, in order.
    pub(crate) fn open(
        disk: Box<dyn Disk>,
        opts: LogOptions,
        mut apply: impl FnMut(Record),
    ) -> Result<(Log, Recovery), OpenError> {
        let mut seqs: Vec<u64> = disk
            .list()
            .map_err(io_err("(directory)"))?
            .iter()
            .filter_map(|n| parse_seg(n))
            .collect();
        seqs.sort_unstable();
        let mut report = Recovery::default();

        // The newest complete base; a torn checkpoint in the last segment
        // (the broker died while writing it) is removed.
        let mut base = None;
        for i in (0..seqs.len()).rev() {
            let name = seg_name(seqs[i]);
            let data = disk
                .open(&name)
                .and_then(|mut f| f.read_all())
                .map_err(io_err(&name))?;
            match base_state(&data) {
                BaseState::Complete => {
                    base = Some(i);
                    break;
                }
                // A checkpoint cut short is only a crash during the
                // checkpoint while the previous base is still there (the
                // old segments are removed after the new base is synced).
                BaseState::Torn if i + 1 == seqs.len() && older_base(&*disk, &seqs[..i])? => {
                    tracing::warn!(file = %name, "journal: removing a checkpoint cut short by a crash");
                    disk.remove(&name).map_err(io_err(&name))?;
                    disk.sync_dir().map_err(io_err("(directory)"))?;
                    seqs.pop();
                    report.torn_checkpoints += 1;
                }
                BaseState::Torn if opts.repair => {
                    tracing::error!(file = %name, "journal: --repair replays a damaged checkpoint as far as it reads");
                    report.repaired_checkpoint = true;
                    base = Some(i);
                    break;
                }
                BaseState::Torn => {
                    return Err(OpenError::Corrupt {
                        file: name,
                        offset: SEG_HEADER,
                        why:
                            "a checkpoint without its end, and no older checkpoint to fall back to"
                                .into(),
                    })
                }
                BaseState::NotBase => {}
            }
        }
        let Some(base) = base else {
            if !seqs.is_empty() {
                let name = seg_name(seqs[0]);
                return Err(OpenError::Corrupt {
                    file: name,
                    offset: SEG_HEADER,
                    why: "no complete checkpoint in any segment".into(),
                });
            }
            return Self::create(disk, opts).map(|log| (log, report));
        };
        for &seq in &seqs[..base] {
            let name = seg_name(seq);
            disk.remove(&name).map_err(io_err(&name))?;
        }
        disk.sync_dir().map_err(io_err("(directory)"))?;
        let seqs = seqs.split_off(base);

        let mut segs = Vec::new();
        let mut epoch = 0u64;
        let mut tail_bytes = 0;
        let mut in_base = true;
        let last = seqs.len() - 1;
        let mut cur = None;
        for (i, &seq) in seqs.iter().enumerate() {
            let name = seg_name(seq);
            let mut file = disk.open(&name).map_err(io_err(&name))?;
            let data = file.read_all().map_err(io_err(&name))?;
            let is_last = i == last;
            if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
                let torn = max_batch_epoch(&data).is_none_or(|e| e <= epoch);
                if is_last && i > 0 && torn {
                    // Created by a roll whose first write never landed.
                    file.write_at(0, MAGIC).map_err(io_err(&name))?;
                    file.truncate(SEG_HEADER).map_err(io_err(&name))?;
                    file.sync_data().map_err(io_err(&name))?;
                    segs.push(Seg {
                        seq,
                        len: SEG_HEADER,
                    });
                    cur = Some(file);
                    continue;
                }
                return Err(OpenError::Corrupt {
                    file: name,
                    offset: 0,
                    why: "not a journal segment (bad magic)".into(),
                });
            }
            let mut off = SEG_HEADER as usize;
            loop {
                let bad = match Record::decode(&data[off..]) {
                    Ok(Some((rec, n))) => {
                        if let Record::Batch { epoch: e } = rec {
                            epoch = epoch.max(e);
                        } else if !in_base {
                            tail_bytes += n as u64;
                        }
                        if rec == Record::BaseEnd {
                            in_base = false;
                        }
                        report.records += 1;
                        apply(rec);
                        off += n;
                        continue;
                    }
                    Ok(None) if off == data.len() => break,
                    Ok(None) => "a zero length with bytes after it".to_owned(),
                    Err(e) => e.to_string(),
                };
                // A later intact write proves this one was synced before it.
                let later = max_batch_epoch(&data[off + 1..]);
                let synced_after = later.is_some_and(|e| e > epoch);
                if is_last && !synced_after {
                    let dropped = (data.len() - off) as u64;
                    file.truncate(off as u64).map_err(io_err(&name))?;
                    file.sync_data().map_err(io_err(&name))?;
                    report.truncated = Some((name.clone(), off as u64, dropped));
                    tracing::warn!(
                        file = %name, offset = off, bytes = dropped, reason = %bad,
                        "journal: torn last write truncated (it was never acknowledged)"
                    );
                    data_len_fix(&mut segs, seq, off as u64);
                    break;
                }
                if !opts.repair {
                    return Err(OpenError::Corrupt {
                        file: name,
                        offset: off as u64,
                        why: bad,
                    });
                }
                let skip = next_batch(&data[off + 1..]).map_or(data.len() - off, |n| n + 1);
                tracing::error!(
                    file = %name, offset = off, bytes = skip, reason = %bad,
                    "journal: --repair skips corrupt bytes; messages in them are lost"
                );
                report.skipped.push((name.clone(), off as u64, skip as u64));
                off += skip;
                if off >= data.len() {
                    break;
                }
            }
            if !segs.iter().any(|s: &Seg| s.seq == seq) {
                segs.push(Seg {
                    seq,
                    len: data.len() as u64,
                });
            }
            report.bytes += segs.last().map_or(0, |s| s.len);
            if is_last {
                cur = Some(file);
            }
        }
        report.segments = segs.len();
        let Some(cur) = cur else {
            return Err(OpenError::Corrupt {
                file: "(directory)".into(),
                offset: 0,
                why: "no segment left to append to".into(),
            });
        };
        Ok((
            Log {
                disk,
                opts,
                segs,
                cur,
                epoch,
                tail_bytes,
                scratch: Vec::new(),
                syncs: 0,
            },
            report,
        ))
    }

    /// A fresh journal: one base segment with an empty checkpoint.
    fn create(disk: Box<dyn Disk>, opts: LogOptions) -> Result<Log, OpenError> {
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
            syncs: 0,
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
        let mut rolled = false;
        if self.cur_len() > SEG_HEADER
            && self.cur_len() + records.len() as u64 > self.opts.segment_size
        {
            self.roll()?;
            rolled = true;
        }
        self.put(records, rolled)?;
        self.tail_bytes += records.len() as u64;
        Ok(())
    }

    /// One `Batch` record plus `records` at the end of the current segment,
    /// synced (and the directory too when the segment is new).
    fn put(&mut self, records: &[u8], new_segment: bool) -> Result<(), WriteError> {
        self.epoch += 1;
        self.scratch.clear();
        if self.cur_len() == 0 {
            self.scratch.extend_from_slice(MAGIC);
        }
        Record::Batch { epoch: self.epoch }.encode(&mut self.scratch);
        self.scratch.extend_from_slice(records);
        let at = self.cur_len();
        if let Err(e) = self.cur.write_at(at, &self.scratch) {
            // Cut back whatever part landed, so the next write starts clean.
            let _ = self.cur.truncate(at);
            return Err(WriteError::Write(e));
        }
        self.cur.sync_data().map_err(WriteError::Sync)?;
        self.syncs += 1;
        if new_segment || at == 0 {
            self.disk.sync_dir().map_err(WriteError::Sync)?;
        }
        if let Some(s) = self.segs.last_mut() {
            s.len += self.scratch.len() as u64;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<(), WriteError> {
        let seq = self.segs.last().map_or(1, |s| s.seq + 1);
        let cur = self
            .disk
            .create(&seg_name(seq))
            .map_err(WriteError::Write)?;
        self.cur = cur;
        self.segs.push(Seg { seq, len: 0 });
        Ok(())
    }

    fn write_base_into_current(&mut self, snapshot: &[u8]) -> Result<(), WriteError> {
        self.put(snapshot, true)?;
        self.tail_bytes = 0;
        Ok(())
    }

    /// Writes a checkpoint (`snapshot`: `Base` .. `BaseEnd`, describing the
    /// state after every record written so far) into a new segment, then
    /// removes every older segment.
    pub(crate) fn checkpoint(&mut self, snapshot: &[u8]) -> Result<(), WriteError> {
        self.roll()?;
        if let Err(e) = self.write_base_into_current(snapshot) {
            // Leave no half checkpoint behind as the current segment.
            if let Some(s) = self.segs.pop() {
                let _ = self.disk.remove(&seg_name(s.seq));
            }
            if let Some(prev) = self.segs.last() {
                if let Ok(f) = self.disk.open(&seg_name(prev.seq)) {
                    self.cur = f;
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
        self.put(&[], false)
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
}

fn data_len_fix(segs: &mut Vec<Seg>, seq: u64, len: u64) {
    segs.push(Seg { seq, len });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[Record]) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        for r in records {
            r.encode(&mut data);
        }
        data
    }

    #[test]
    fn a_base_starts_with_base_and_is_complete_only_with_its_end() {
        let b = Record::Batch { epoch: 1 };
        let land = Record::Land {
            id: mq_protocol::MessageId::new(1, 1),
            topic: "t".into(),
            headers: Default::default(),
            payload: Default::default(),
        };
        let complete = segment(&[b.clone(), Record::Base, land.clone(), Record::BaseEnd]);
        assert!(matches!(base_state(&complete), BaseState::Complete));
        let torn = segment(&[b.clone(), Record::Base, land.clone()]);
        assert!(matches!(base_state(&torn), BaseState::Torn));
        // An end without its start, or a base that is not first, is no base.
        let end_first = segment(&[b.clone(), Record::BaseEnd]);
        assert!(matches!(base_state(&end_first), BaseState::NotBase));
        let late = segment(&[b.clone(), land, Record::Base, Record::BaseEnd]);
        assert!(matches!(base_state(&late), BaseState::NotBase));
        assert!(matches!(base_state(&segment(&[b])), BaseState::NotBase));
    }

    #[test]
    fn debug_shows_the_shape_not_the_data() {
        let disk = super::super::sim::SimDisk::default();
        let opts = LogOptions {
            segment_size: 4096,
            repair: false,
        };
        let (log, _) = Log::open(Box::new(disk), opts, |_| {}).expect("open");
        let text = format!("{log:?}");
        assert!(
            text.contains("segments: 1") && text.contains("epoch: 1"),
            "{text}"
        );
    }
}
