//! Zeros ahead of the data (`Log::prezero`) on the simulated disk: what a
//! fill writes, power loss at every step of a fill and of a write into the
//! zeros, zero tails in rolled segments, and zeros that hide data.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::disk::Disk;
use super::log::{Log, OpenError};
use super::sim::SimDisk;
use super::tests::{land, lands, open, opts, segments, write, SEG};

const CHUNK: u64 = SEG / 4;

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

#[test]
fn a_fill_keeps_one_chunk_of_synced_zeros_ahead_and_counts_only_data() {
    assert_eq!(opts(false).prezero, CHUNK);
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    let name = segments(&disk).pop().unwrap();
    write(&mut log, 0..3, 50);
    let data = log.disk_bytes();
    assert_eq!(disk.len(&name), Some(data as usize));
    let (syncs, dir_syncs, log_syncs) = (disk.syncs(), disk.dir_syncs(), log.syncs);
    write(&mut log, 0..1, 50);
    assert_eq!(log.syncs, log_syncs + 1, "one fdatasync per batch");
    assert_eq!(
        disk.dir_syncs(),
        dir_syncs,
        "no directory fsync in an old segment"
    );
    assert_eq!(disk.syncs(), syncs + 1);
    let data = log.disk_bytes();
    let syncs = disk.syncs();
    assert!(log.prezero().unwrap());
    assert_eq!(log.syncs, log_syncs + 1, "zero fills are counted apart");
    assert_eq!(disk.syncs(), syncs + 1, "one fdatasync for the zeros");
    assert_eq!(log.zero_fills, 1);
    assert_eq!(disk.len(&name), Some((data + CHUNK) as usize));
    assert!(is_zero(&disk.content(&name).unwrap()[data as usize..]));
    assert_eq!(log.disk_bytes(), data, "zeros are not data");
    // Plenty of zeros left: no fill, and a write lands in them.
    assert!(!log.prezero().unwrap());
    write(&mut log, 3..4, 50);
    assert_eq!(
        disk.len(&name),
        Some((data + CHUNK) as usize),
        "written into the zeros"
    );
    assert_eq!(log.zero_fills, 1);
    // Less than half a chunk left: one chunk past the data again.
    while (disk.len(&name).unwrap() as u64) - log.disk_bytes() >= CHUNK / 2 {
        assert!(!log.prezero().unwrap());
        write(&mut log, 10..11, 50);
    }
    assert!(log.prezero().unwrap());
    assert_eq!(disk.len(&name).unwrap() as u64, log.disk_bytes() + CHUNK);
    assert_eq!(log.zero_fills, 2);
    // Never past the segment size.
    while log.disk_bytes() + CHUNK <= SEG {
        write(&mut log, 20..21, 50);
    }
    assert_eq!(log.segments(), 1);
    assert!(log.prezero().unwrap());
    assert_eq!(disk.len(&name).unwrap() as u64, SEG);
    let data = log.disk_bytes();
    drop(log);
    let (log, report) = Log::open(Box::new(disk.clone()), opts(false), |_| {}).expect("reopens");
    assert!(report.truncated.is_none() && report.skipped.is_empty());
    assert_eq!(report.bytes, data);
    assert_eq!(log.disk_bytes(), data, "recovery counts data, not zeros");
}

#[test]
fn no_fill_without_a_chunk_size() {
    let disk = SimDisk::default();
    let mut o = opts(false);
    o.prezero = 0;
    let (mut log, _) = Log::open(Box::new(disk.clone()), o, |_| {}).unwrap();
    write(&mut log, 0..3, 50);
    assert!(!log.prezero().unwrap());
    let name = segments(&disk).pop().unwrap();
    assert_eq!(disk.len(&name), Some(log.disk_bytes() as usize));
}

/// One step of the scenario below: a write of `seqs` or a zero fill.
#[derive(Clone)]
enum Step {
    Write(std::ops::Range<u64>, usize),
    Fill,
}

fn steps() -> Vec<Step> {
    use Step::*;
    vec![
        Write(0..3, 50),
        Fill,
        Write(3..6, 50), // into the zeros
        Write(6..9, 50),
        Fill,               // tops up (less than half a chunk left)
        Write(9..10, 1200), // past the zeros: grows the file
        Write(10..35, 100), // rolls: the old segment keeps its zero tail
        Fill,               // on the new segment
        Write(35..37, 50),  // into its zeros
    ]
}

fn run(log: &mut Log, step: &Step) -> Result<(), super::log::WriteError> {
    match step {
        Step::Write(seqs, len) => {
            let mut buf = Vec::new();
            for s in seqs.clone() {
                land(s, *len).encode(&mut buf);
            }
            log.write(&buf)
        }
        Step::Fill => log.prezero().map(|_| ()),
    }
}

fn seqs(step: &Step) -> Vec<u64> {
    match step {
        Step::Write(r, _) => r.clone().collect(),
        Step::Fill => Vec::new(),
    }
}

#[test]
fn power_loss_at_every_step_of_a_fill_and_of_a_write_into_zeros() {
    let all = steps();
    // The scenario does what its comments say.
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    for step in &all {
        run(&mut log, step).unwrap();
    }
    assert_eq!((log.segments(), log.zero_fills), (2, 3));
    for stop in 0..all.len() {
        for seed in 0..40u64 {
            let disk = SimDisk::default();
            let (mut log, _) = open(&disk, false).unwrap();
            let mut synced = Vec::new();
            for step in &all[..stop] {
                run(&mut log, step).unwrap();
                synced.extend(seqs(step));
            }
            // The step in flight: written, its fdatasync never returns.
            disk.set_fail_sync(true);
            let failed = run(&mut log, &all[stop]);
            assert!(
                failed.is_err() || matches!(all[stop], Step::Fill) && !log_needs_fill(&all, stop),
                "step {stop}: the sync should fail"
            );
            drop(log);
            let mut rng = StdRng::seed_from_u64(seed);
            let crashed = disk.crash(&mut rng);
            let (mut log, recs) =
                open(&crashed, false).unwrap_or_else(|e| panic!("step {stop} seed {seed}: {e}"));
            // Every synced record; of the write in flight (never
            // acknowledged) at most a prefix, as far as its records read.
            let got = lands(&recs);
            let inflight = seqs(&all[stop]);
            assert!(
                got.starts_with(&synced) && inflight.starts_with(&got[synced.len()..]),
                "step {stop} seed {seed}: {got:?}, want {synced:?} then part of {inflight:?}"
            );
            // Recovery, then appending, then recovery again.
            write(&mut log, 100..102, 50);
            log.prezero().unwrap();
            write(&mut log, 102..103, 50);
            drop(log);
            let again = crashed.crash(&mut rng);
            let (_, recs) = open(&again, false)
                .unwrap_or_else(|e| panic!("step {stop} seed {seed}, second open: {e}"));
            let mut want = got.clone();
            want.extend([100, 101, 102]);
            assert_eq!(lands(&recs), want, "step {stop} seed {seed}");
        }
    }
}

/// Whether the fill at `stop` has anything to write (some fills find
/// enough zeros already and do not sync).
fn log_needs_fill(all: &[Step], stop: usize) -> bool {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    for step in &all[..stop] {
        run(&mut log, step).unwrap();
    }
    log.prezero().unwrap()
}

#[test]
fn a_zero_tail_in_a_rolled_segment_is_a_clean_end() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    log.prezero().unwrap();
    let data = log.disk_bytes();
    write(&mut log, 3..40, 100);
    assert_eq!(log.segments(), 2, "rolled");
    drop(log);
    let first = segments(&disk)[0].clone();
    let content = disk.content(&first).unwrap();
    assert_eq!(
        content.len() as u64,
        data + CHUNK,
        "the rolled segment keeps its zeros"
    );
    let (_, report) = Log::open(Box::new(disk.clone()), opts(false), |_| {}).unwrap();
    assert!(
        report.truncated.is_none() && report.skipped.is_empty(),
        "{report:?}"
    );
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), (0..40).collect::<Vec<_>>());
}

/// Offsets (in the one segment) of three writes after a fill.
fn three_writes(disk: &SimDisk) -> (String, Vec<(usize, usize)>) {
    let (mut log, _) = open(disk, false).unwrap();
    write(&mut log, 0..3, 50);
    log.prezero().unwrap();
    let mut at = Vec::new();
    for i in 1..4 {
        let before = log.disk_bytes() as usize;
        write(&mut log, i * 3..i * 3 + 3, 50);
        at.push((before, log.disk_bytes() as usize - before));
    }
    (segments(disk).pop().unwrap(), at)
}

#[test]
fn zeros_then_synced_data_is_corruption_not_an_end() {
    let disk = SimDisk::default();
    let (name, at) = three_writes(&disk);
    // The middle write turns to zeros; a later synced batch follows.
    disk.zero(&name, at[1].0, at[1].1);
    match open(&disk, false) {
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (name.clone(), at[1].0 as u64));
        }
        other => panic!("not refused: {:?}", other.map(|(_, r)| lands(&r))),
    }
    let (_, recs) = open(&disk, true).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4, 5, 9, 10, 11]);
}

#[test]
fn zeros_then_a_torn_last_write_is_torn() {
    let disk = SimDisk::default();
    let (name, at) = three_writes(&disk);
    // The last write's first sector never landed, a later part did.
    disk.zero(&name, at[2].0, 20);
    let (mut log, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
    write(&mut log, 50..51, 50);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 50]);
}

#[test]
fn a_torn_write_into_zeros_is_cut_and_reported() {
    let disk = SimDisk::default();
    let (name, at) = three_writes(&disk);
    // Half of the last write, then zeros.
    let (off, len) = at[2];
    disk.zero(&name, off + len / 2, len);
    let (mut log, report) = Log::open(Box::new(disk.clone()), opts(false), |_| {}).unwrap();
    let (file, offset, dropped) = report.truncated.expect("a torn last write");
    assert_eq!(file, name);
    assert!(
        offset as usize > off && (offset as usize) < off + len,
        "{offset}"
    );
    // The torn bytes, not the zeros after them.
    let torn = off + len / 2 - offset as usize;
    assert!(
        dropped > 1 && dropped as usize <= torn,
        "{dropped} of {torn}"
    );
    assert_eq!(log.disk_bytes(), offset);
    write(&mut log, 50..51, 50);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs).last(), Some(&50));
}

#[test]
fn a_rolled_segment_whose_last_batches_turned_to_zeros_is_corruption() {
    let disk = SimDisk::default();
    let (name, at) = three_writes(&disk);
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 20..50, 100);
    assert_eq!(log.segments(), 2, "rolled");
    drop(log);
    // The rolled segment's last synced write is now zeros up to its end:
    // it looks like a clean end, but the next segment skips its epoch.
    disk.zero(&name, at[2].0, at[2].1);
    match open(&disk, false) {
        Err(OpenError::Corrupt { file, offset, why }) => {
            assert_eq!((file, offset), (name.clone(), at[2].0 as u64), "{why}");
        }
        other => panic!("not refused: {:?}", other.map(|(_, r)| lands(&r))),
    }
    let (_, recs) = open(&disk, true).unwrap();
    let mut want: Vec<u64> = (0..9).collect();
    want.extend(20..50);
    assert_eq!(lands(&recs), want);
}

#[test]
fn a_failed_write_gives_its_epoch_back() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    log.prezero().unwrap();
    disk.set_full(true);
    let mut buf = Vec::new();
    land(7, 50).encode(&mut buf);
    assert!(log.write(&buf).is_err());
    assert!(log.write(&buf).is_err());
    disk.set_full(false);
    write(&mut log, 7..8, 50);
    // Roll: the next segment must start at the next epoch.
    write(&mut log, 20..50, 100);
    assert_eq!(log.segments(), 2);
    drop(log);
    let (_, recs) = open(&disk, false).expect("no gap in the epochs");
    let mut want = vec![0, 1, 2, 7];
    want.extend(20..50);
    assert_eq!(lands(&recs), want);
}

#[test]
fn the_chunk_is_a_quarter_segment_up_to_one_mib() {
    use super::log::LogOptions;
    assert_eq!(LogOptions::prezero_for(4096), 1024);
    assert_eq!(LogOptions::prezero_for(2 << 20), 512 << 10);
    assert_eq!(LogOptions::prezero_for(64 << 20), 1 << 20);
}

#[test]
fn no_fill_in_a_segment_with_nothing_written_yet() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    log.prezero().unwrap();
    // A write that rolls fails on a full disk: the new segment is empty.
    disk.set_full(true);
    let mut buf = Vec::new();
    for s in 3..40 {
        land(s, 100).encode(&mut buf);
    }
    assert!(log.write(&buf).is_err());
    disk.set_full(false);
    let name = segments(&disk).pop().unwrap();
    assert_eq!(disk.len(&name), Some(0));
    assert!(!log.prezero().unwrap(), "no zeros before the magic");
    assert_eq!(disk.len(&name), Some(0));
    // The retry writes first at 0: the new file's entry is synced too.
    log.write(&buf).unwrap();
    drop(log);
    let crashed = disk.crash(&mut StdRng::seed_from_u64(1));
    let (_, recs) = open(&crashed, false).unwrap();
    assert_eq!(lands(&recs), (0..40).collect::<Vec<_>>());
}

#[test]
fn a_batch_that_fills_the_segment_exactly_does_not_roll() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..1, 50);
    let mut one = Vec::new();
    let base = land(1, 0).encode(&mut one);
    let room = (SEG - log.disk_bytes()) as usize;
    let mut buf = Vec::new();
    land(1, room - base).encode(&mut buf);
    assert_eq!(log.disk_bytes() + buf.len() as u64, SEG);
    log.write(&buf).unwrap();
    assert_eq!(log.segments(), 1, "it fits: no roll");
    write(&mut log, 2..3, 0);
    assert_eq!(log.segments(), 2, "one byte more: a roll");
}

#[test]
fn a_segment_with_only_its_magic_takes_a_large_batch_without_rolling() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    drop(log);
    // A roll whose first write never landed: reset to its magic alone.
    let mut f = disk.create("00000000000000000009.log").unwrap();
    f.sync_data().unwrap();
    disk.sync_dir().unwrap();
    let (mut log, _) = open(&disk, false).unwrap();
    assert_eq!(log.segments(), 2);
    // Larger than a segment: written into the empty one, not rolled past.
    write(&mut log, 3..5, SEG as usize);
    assert_eq!(log.segments(), 2);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4]);
}

#[test]
fn after_a_seal_damage_to_the_last_write_is_corruption() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    let end = log.disk_bytes() as usize;
    log.prezero().unwrap();
    log.seal().unwrap();
    drop(log);
    let name = segments(&disk).pop().unwrap();
    disk.corrupt(&name, end - 5);
    assert!(matches!(open(&disk, false), Err(OpenError::Corrupt { .. })));
}
