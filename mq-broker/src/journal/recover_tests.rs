//! Recovery's rules (`recover.rs`) on the simulated disk, each pinned to an
//! exact outcome: which damage is refused and where, what a torn
//! checkpoint, a reset segment or a repair leaves and reports, and that a
//! clean reopen writes nothing.

use super::disk::Disk;
use super::log::{seg_name, Log, OpenError, Recovery, MAGIC, SEG_HEADER};
use super::record::{Record, BATCH_LEN};
use super::sim::SimDisk;
use super::tests::{land, lands, open, opts, segments, write};

/// Puts a segment on the disk as given: `head` (the magic, or what stands
/// in its place), then `recs`; its bytes and its directory entry synced.
fn put_segment(disk: &SimDisk, name: &str, head: &[u8], recs: &[Record]) {
    let mut bytes = head.to_vec();
    for r in recs {
        r.encode(&mut bytes);
    }
    let mut f = disk.create(name).unwrap();
    f.write_at(0, &bytes).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir().unwrap();
}

/// Writes `bytes` at `at` in file `name` and syncs them.
fn put_at(disk: &SimDisk, name: &str, at: u64, bytes: &[u8]) {
    let mut f = disk.open(name).unwrap();
    f.write_at(at, bytes).unwrap();
    f.sync_data().unwrap();
}

/// A checkpoint cut short: its `Batch`, `Base` and one land, no `BaseEnd`.
fn torn_base(epoch: u64, seq: u64) -> [Record; 3] {
    [Record::Batch { epoch }, Record::Base, land(seq, 10)]
}

/// A closed journal of one write of `seqs` (50-byte lands); returns the
/// disk, the end of its data and its one segment.
fn written(seqs: std::ops::Range<u64>) -> (SimDisk, u64, String) {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, seqs, 50);
    let end = log.disk_bytes();
    drop(log);
    let name = segments(&disk).pop().unwrap();
    (disk, end, name)
}

/// A closed journal of ten writes of ten 100-byte lands (a new segment
/// every two or three writes); returns the disk and its segments.
fn rolled() -> (SimDisk, Vec<String>) {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    for i in 0..10 {
        write(&mut log, i * 10..i * 10 + 10, 100);
    }
    assert!(log.segments() > 2, "rolled: {}", log.segments());
    drop(log);
    let names = segments(&disk);
    (disk, names)
}

/// Opens `disk`; returns the report and the records replayed.
fn recover(disk: &SimDisk, repair: bool) -> Result<(Recovery, Vec<Record>), OpenError> {
    let mut recs = Vec::new();
    let (_, report) = Log::open(Box::new(disk.clone()), opts(repair), |r| recs.push(r))?;
    Ok((report, recs))
}

/// Opens `disk` without repair, which must refuse it naming `name` and
/// `offset` and leave that file as it was; returns the reason.
fn refused_at(disk: &SimDisk, name: &str, offset: u64) -> String {
    let before = disk.content(name);
    let why = match open(disk, false) {
        Err(OpenError::Corrupt {
            file,
            offset: at,
            why,
        }) => {
            assert_eq!((file.as_str(), at), (name, offset), "{why}");
            why
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r)| lands(&r))),
    };
    assert_eq!(disk.content(name), before, "{name} changed");
    why
}

/// Opens `disk`, which must cut a torn last write at `offset` of `name`
/// (and nothing else); returns the bytes it reports dropped and the lands
/// replayed.
fn cut_at(disk: &SimDisk, name: &str, offset: u64) -> (u64, Vec<u64>) {
    let (report, recs) = recover(disk, false).expect("a torn last write");
    let (file, at, dropped) = report.truncated.expect("truncated");
    assert_eq!((file.as_str(), at), (name, offset));
    assert!(report.skipped.is_empty());
    assert_eq!(disk.len(name), Some(offset as usize), "cut there");
    (dropped, lands(&recs))
}

#[test]
fn a_torn_checkpoint_with_no_older_base_is_refused_and_kept() {
    let disk = SimDisk::default();
    let name = seg_name(1);
    put_segment(&disk, &name, MAGIC, &torn_base(1, 0));
    let why = refused_at(&disk, &name, SEG_HEADER);
    assert!(why.contains("checkpoint without its end"), "{why}");
    assert_eq!(segments(&disk), vec![name], "nothing removed");
    // Repair replays it as far as it reads.
    let (report, recs) = recover(&disk, true).unwrap();
    assert!(report.repaired_checkpoint);
    assert_eq!(report.torn_checkpoints, 0);
    assert_eq!(lands(&recs), vec![0]);
}

#[test]
fn a_torn_last_checkpoint_is_removed_and_counted() {
    let (disk, _, first) = written(0..2);
    put_segment(&disk, &seg_name(9), MAGIC, &torn_base(3, 9));
    let (report, recs) = recover(&disk, false).unwrap();
    assert_eq!(report.torn_checkpoints, 1);
    assert!(!report.repaired_checkpoint);
    assert_eq!(lands(&recs), vec![0, 1]);
    assert_eq!(segments(&disk), vec![first]);
}

#[test]
fn a_torn_checkpoint_before_the_last_segment_is_refused() {
    // Segments after a checkpoint are only written once it is complete:
    // a torn one with a segment after it is damage, not a crash.
    let (disk, _, _) = written(0..2);
    let torn = seg_name(5);
    put_segment(&disk, &torn, MAGIC, &torn_base(3, 7));
    let after = [Record::Batch { epoch: 4 }, land(8, 10)];
    put_segment(&disk, &seg_name(6), MAGIC, &after);
    refused_at(&disk, &torn, SEG_HEADER);
    assert_eq!(segments(&disk).len(), 3, "nothing removed");
}

#[test]
fn a_reset_segment_reopens_as_a_clean_empty_segment() {
    let (disk, _, _) = written(0..3);
    // A roll whose first write never landed: the file is empty.
    let name = seg_name(9);
    put_segment(&disk, &name, &[], &[]);
    recover(&disk, false).unwrap();
    assert_eq!(
        disk.len(&name),
        Some(SEG_HEADER as usize),
        "its magic alone"
    );
    // Opened again: a segment of its magic alone reads as it is.
    let syncs = disk.syncs();
    let (report, recs) = recover(&disk, false).unwrap();
    assert_eq!(disk.syncs(), syncs, "a clean reopen writes nothing");
    assert_eq!(lands(&recs), vec![0, 1, 2]);
    assert_eq!(report.segments, 2);
    let on_disk: usize = segments(&disk).iter().map(|n| disk.len(n).unwrap()).sum();
    assert_eq!(report.bytes, on_disk as u64, "every segment counted");
}

#[test]
fn a_bad_magic_on_the_last_segment_with_a_newer_batch_is_corruption() {
    // A newer batch in it proves it was written and synced: not a roll
    // whose first write never landed.
    let (disk, names) = rolled();
    let last = names.last().unwrap();
    disk.corrupt(last, 0);
    let why = refused_at(&disk, last, 0);
    assert!(why.contains("bad magic"), "{why}");
}

#[test]
fn a_middle_segment_turned_to_zeros_is_corruption() {
    let (disk, names) = rolled();
    disk.zero(&names[1], 0, disk.len(&names[1]).unwrap());
    let why = refused_at(&disk, &names[1], 0);
    assert!(why.contains("bad magic"), "{why}");
}

#[test]
fn a_first_segment_with_a_bad_magic_is_corruption_even_without_a_batch() {
    // Only a segment after the first can be a roll whose first write
    // never landed.
    let disk = SimDisk::default();
    let name = seg_name(1);
    let base = [Record::Base, land(0, 10), Record::BaseEnd];
    put_segment(&disk, &name, b"NOTMAGIC", &base);
    let why = refused_at(&disk, &name, 0);
    assert!(why.contains("bad magic"), "{why}");
}

#[test]
fn a_later_batch_of_no_newer_epoch_proves_nothing() {
    let (disk, end, name) = written(0..2);
    // After the data: a damaged record, then a batch record of the epoch
    // already read (2), which no later write would carry.
    let mut tail = Vec::new();
    land(5, 50).encode(&mut tail);
    let last = tail.len() - 1;
    tail[last] ^= 0xFF;
    Record::Batch { epoch: 2 }.encode(&mut tail);
    put_at(&disk, &name, end, &tail);
    assert_eq!(cut_at(&disk, &name, end).1, vec![0, 1]);
}

#[test]
fn only_a_batch_after_the_damage_proves_it_synced() {
    // The last good record ends in a byte 9 (its payload is all 9s), the
    // first byte of a batch record's length.
    let (disk, end, name) = written(9..10);
    // Then a newer batch record without its first byte: damage that reads
    // as an intact batch only from the last good record's final byte.
    let mut batch = Vec::new();
    Record::Batch { epoch: 100 }.encode(&mut batch);
    put_at(&disk, &name, end, &batch[1..]);
    assert_eq!(cut_at(&disk, &name, end).1, vec![9]);
}

#[test]
fn a_torn_write_reports_exactly_its_torn_bytes() {
    let (disk, end, name) = written(0..3);
    // The last 10 payload bytes of the write's third land (seq 2: bytes
    // of 2, none zero) never landed.
    disk.zero(&name, end as usize - 10, 10);
    let one = land(2, 50).encode(&mut Vec::new()) as u64;
    let (dropped, got) = cut_at(&disk, &name, end - one);
    assert_eq!(dropped, one - 10, "the torn bytes, not the zeros");
    assert_eq!(got, vec![0, 1]);
}

#[test]
fn repair_reports_exactly_the_bytes_it_skips_up_to_the_next_batch() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    let first = log.disk_bytes();
    write(&mut log, 0..2, 50);
    let second = log.disk_bytes();
    write(&mut log, 2..4, 50);
    write(&mut log, 4..6, 50);
    drop(log);
    let name = segments(&disk).pop().unwrap();
    // Inside the first write's first land: from there to the next batch.
    let bad = first + BATCH_LEN as u64;
    disk.corrupt(&name, bad as usize + 30);
    let (report, recs) = recover(&disk, true).unwrap();
    assert_eq!(lands(&recs), vec![2, 3, 4, 5]);
    assert_eq!(report.skipped, vec![(name, bad, second - bad)]);
    assert!(report.truncated.is_none());
}

#[test]
fn repair_skips_a_rolled_segments_unreadable_last_write_to_its_end() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..10, 100);
    let last_write = log.disk_bytes();
    write(&mut log, 10..20, 100);
    assert_eq!(log.segments(), 1);
    write(&mut log, 20..30, 100);
    assert_eq!(log.segments(), 2, "rolled");
    write(&mut log, 30..40, 100);
    drop(log);
    let first = segments(&disk)[0].clone();
    let len = disk.len(&first).unwrap() as u64;
    // The rolled segment's last batch record rots (inside its epoch): no
    // batch follows it in that segment.
    disk.corrupt(&first, last_write as usize + 12);
    refused_at(&disk, &first, last_write);
    let (report, recs) = recover(&disk, true).unwrap();
    let mut want: Vec<u64> = (0..10).collect();
    want.extend(20..40);
    assert_eq!(lands(&recs), want);
    // Skipped to the segment's end, once: the next segment's first epoch
    // is no gap to report again (the skip already said what was lost).
    assert_eq!(report.skipped, vec![(first, last_write, len - last_write)]);
}
