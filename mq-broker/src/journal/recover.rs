//! Recovery at open: the newest complete checkpoint, then every record
//! after it; torn last writes cut, corruption refused (or skipped with
//! `repair`), zero tails read as clean ends. The rules are in `log.rs`'s
//! module documentation.

use std::io;

use super::disk::Disk;
use super::log::{
    parse_seg, seg_name, Log, LogOptions, OpenError, Recovery, Seg, MAGIC, SEG_HEADER,
};
use super::record::{max_batch_epoch, next_batch, Record};

pub(super) fn io_err(file: &str) -> impl FnOnce(io::Error) -> OpenError + '_ {
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
pub(super) enum BaseState {
    NotBase,
    Complete,
    Torn,
}

pub(super) fn base_state(data: &[u8]) -> BaseState {
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
        let mut zeroed = 0;
        // A rolled segment that ended in zeros, and its last epoch: the
        // next segment must go on at the next epoch, or the zeros stand
        // where synced batches were (damage a clean end cannot show).
        let mut zero_end: Option<(String, usize, u64)> = None;
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
                    zeroed = SEG_HEADER;
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
            // Where the data ends; zeros may follow up to the file's end.
            let mut end = data.len();
            loop {
                let bad = match Record::decode(&data[off..]) {
                    Ok(Some((rec, n))) => {
                        if let Record::Batch { epoch: e } = rec {
                            if let Some((file, at, last)) = zero_end.take() {
                                if e != last + 1 {
                                    let why = format!(
                                        "zeros where batches {}..{e} were (the next segment \
                                         starts at batch {e})",
                                        last + 1
                                    );
                                    if !opts.repair {
                                        return Err(OpenError::Corrupt {
                                            file,
                                            offset: at as u64,
                                            why,
                                        });
                                    }
                                    tracing::error!(file = %file, offset = at, reason = %why,
                                        "journal: --repair goes on; messages in those batches are lost");
                                    report.skipped.push((file, at as u64, 0));
                                }
                            }
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
                    Ok(None) if all_zero(&data[off..]) => {
                        end = off;
                        break;
                    }
                    Ok(None) => "a zero length with bytes after it".to_owned(),
                    Err(e) => e.to_string(),
                };
                // A later intact write proves this one was synced before it.
                let later = max_batch_epoch(&data[off + 1..]);
                let synced_after = later.is_some_and(|e| e > epoch);
                if is_last && !synced_after {
                    // Count the torn bytes, not the zeros after them.
                    let dropped = (nonzero_end(&data[off..])) as u64;
                    file.truncate(off as u64).map_err(io_err(&name))?;
                    file.sync_data().map_err(io_err(&name))?;
                    report.truncated = Some((name.clone(), off as u64, dropped));
                    tracing::warn!(
                        file = %name, offset = off, bytes = dropped, reason = %bad,
                        "journal: torn last write truncated (it was never acknowledged)"
                    );
                    end = off;
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
                    len: end as u64,
                });
            }
            report.bytes += segs.last().map_or(0, |s| s.len);
            if end < data.len() {
                zero_end = Some((name.clone(), end, epoch));
            }
            if is_last {
                // A torn write was cut at `end`; otherwise zeros may follow.
                zeroed = if report.truncated.is_some() {
                    end as u64
                } else {
                    data.len() as u64
                };
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
                zeroed,
                syncs: 0,
                zero_fills: 0,
                broken: false,
            },
            report,
        ))
    }
}

/// True if every byte is zero.
fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// The length of `b` without its trailing zeros.
fn nonzero_end(b: &[u8]) -> usize {
    b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1)
}

fn data_len_fix(segs: &mut Vec<Seg>, seq: u64, len: u64) {
    segs.push(Seg { seq, len });
}
