//! The journal on the simulated disk: recovery, damage, checkpoints, and
//! power loss at random points under a live core.

use std::collections::BTreeSet;

use bytes::Bytes;
use mq_protocol::{Ack, Frame, Headers, Message, MessageId, ReplyStatus, Role, Subscribe};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::disk::Disk;
use super::log::{Log, LogOptions, OpenError, WriteError};
use super::record::Record;
use super::sim::SimDisk;
use crate::core::Core;
use crate::durable::{recover, Recovered};
use crate::{BrokerConfig, DiskStorage};

pub(super) const SEG: u64 = 4096;

pub(super) fn opts(repair: bool) -> LogOptions {
    LogOptions {
        segment_size: SEG,
        repair,
        prezero: SEG / 4,
    }
}

pub(super) fn open(disk: &SimDisk, repair: bool) -> Result<(Log, Vec<Record>), OpenError> {
    let mut recs = Vec::new();
    let (log, _) = Log::open(Box::new(disk.clone()), opts(repair), |r| recs.push(r))?;
    Ok((log, recs))
}

pub(super) fn land(seq: u64, len: usize) -> Record {
    Record::Land {
        id: MessageId::new(1, seq),
        topic: "t".into(),
        headers: Headers::new(),
        payload: Bytes::from(vec![seq as u8; len]),
    }
}

pub(super) fn lands(recs: &[Record]) -> Vec<u64> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Land { id, .. } => Some(id.seq),
            _ => None,
        })
        .collect()
}

pub(super) fn write(log: &mut Log, seqs: std::ops::Range<u64>, len: usize) {
    let mut buf = Vec::new();
    for s in seqs {
        land(s, len).encode(&mut buf);
    }
    log.write(&buf).unwrap();
}

pub(super) fn segments(disk: &SimDisk) -> Vec<String> {
    let mut v: Vec<_> = disk
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order_across_segments() {
    let disk = SimDisk::default();
    let (mut log, recs) = open(&disk, false).unwrap();
    assert!(lands(&recs).is_empty());
    for i in 0..10 {
        write(&mut log, i * 10..i * 10 + 10, 100);
    }
    assert!(log.segments() > 2, "rolled: {}", log.segments());
    assert_eq!(
        disk.syncs(),
        11,
        "one fdatasync per write (plus the first base)"
    );
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), (0..100).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_removes_older_segments_and_replays_alone() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    for i in 0..6 {
        write(&mut log, i * 10..i * 10 + 10, 100);
    }
    let mut snap = Vec::new();
    Record::Base.encode(&mut snap);
    land(1000, 10).encode(&mut snap);
    Record::BaseEnd.encode(&mut snap);
    log.checkpoint(&snap).unwrap();
    write(&mut log, 2000..2002, 10);
    assert_eq!(segments(&disk).len(), 1);
    assert_eq!(log.tail_bytes(), 2 * 44);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![1000, 2000, 2001]);
}

#[test]
fn a_torn_checkpoint_falls_back_to_the_previous_base() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..5, 50);
    drop(log);
    // A checkpoint segment whose end never made it: Base without BaseEnd,
    // as the newest segment.
    let mut f = disk.create("00000000000000000009.log").unwrap();
    let mut bytes = super::log::MAGIC.to_vec();
    Record::Batch { epoch: 100 }.encode(&mut bytes);
    Record::Base.encode(&mut bytes);
    land(9, 10).encode(&mut bytes);
    f.write_at(0, &bytes).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir().unwrap();
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4]);
    assert!(!segments(&disk).contains(&"00000000000000000009.log".to_owned()));
}

#[test]
fn a_checkpoint_cut_by_a_failed_sync_leaves_the_old_state() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..5, 50);
    let mut snap = Vec::new();
    Record::Base.encode(&mut snap);
    land(9, 10).encode(&mut snap);
    Record::BaseEnd.encode(&mut snap);
    disk.set_fail_sync(true);
    assert!(matches!(log.checkpoint(&snap), Err(WriteError::Sync(_))));
    drop(log);
    let mut rng = StdRng::seed_from_u64(3);
    let disk = disk.crash(&mut rng);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_torn_last_write_is_truncated_and_appending_goes_on() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    let name = segments(&disk).pop().unwrap();
    let len = disk.len(&name).unwrap();
    // Flip a byte inside the last record: the last write is damaged.
    disk.corrupt(&name, len - 5);
    drop(log);
    let (mut log, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1], "cut at the last good record");
    write(&mut log, 10..12, 50);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 10, 11]);
}

#[test]
fn corruption_before_synced_writes_is_refused_then_repaired() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..2, 50);
    write(&mut log, 2..4, 50);
    write(&mut log, 4..6, 50);
    let name = segments(&disk).pop().unwrap();
    // Inside the first write's records (after the 8-byte magic and the
    // base's Batch, Base, BaseEnd and this write's Batch record).
    disk.corrupt(&name, 8 + 17 + 9 + 9 + 17 + 30);
    drop(log);
    match open(&disk, false) {
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, name);
            assert!(offset > 8, "names the offset: {offset}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    let (_, recs) = open(&disk, true).unwrap();
    assert_eq!(
        lands(&recs),
        vec![2, 3, 4, 5],
        "repair skips the damaged write only"
    );
}

#[test]
fn bit_rot_in_a_sealed_checkpoint_is_refused_not_truncated() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    let mut snap = Vec::new();
    Record::Base.encode(&mut snap);
    for s in 0..5 {
        land(s, 40).encode(&mut snap);
    }
    Record::BaseEnd.encode(&mut snap);
    log.checkpoint(&snap).unwrap();
    log.seal().unwrap();
    let name = segments(&disk).pop().unwrap();
    drop(log);
    disk.corrupt(&name, 120);
    assert!(matches!(open(&disk, false), Err(OpenError::Corrupt { .. })));
}

#[test]
fn repair_replays_a_damaged_checkpoint_that_has_no_older_base() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    let mut snap = Vec::new();
    Record::Base.encode(&mut snap);
    for s in 0..6 {
        land(s, 40).encode(&mut snap);
    }
    Record::BaseEnd.encode(&mut snap);
    log.checkpoint(&snap).unwrap();
    log.seal().unwrap();
    let name = segments(&disk).pop().unwrap();
    drop(log);
    // Inside the fourth land record (74 bytes each with 40 payload bytes,
    // after the magic, the Batch and the Base): the first three read.
    disk.corrupt(&name, 8 + 17 + 9 + 3 * 74 + 40);
    assert!(matches!(open(&disk, false), Err(OpenError::Corrupt { .. })));
    let mut recs = Vec::new();
    let (_, report) =
        Log::open(Box::new(disk.clone()), opts(true), |r| recs.push(r)).expect("repaired");
    assert!(report.repaired_checkpoint);
    assert_eq!(&lands(&recs)[..3], &[0, 1, 2]);
}

#[test]
fn a_rolled_segment_whose_first_write_never_landed_is_reset() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    drop(log);
    // The roll created the next file, then the crash came before its magic.
    let mut f = disk.create("00000000000000000009.log").unwrap();
    f.write_at(0, &[0u8; 5]).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir().unwrap();
    let (mut log, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2]);
    write(&mut log, 3..4, 50);
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 2, 3]);
}

#[test]
fn a_bad_magic_before_the_last_segment_is_corruption() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    for i in 0..10 {
        write(&mut log, i * 10..i * 10 + 10, 100);
    }
    assert!(log.segments() > 2);
    drop(log);
    let middle = segments(&disk)[1].clone();
    disk.corrupt(&middle, 0);
    match open(&disk, false) {
        Err(OpenError::Corrupt { file, offset, .. }) => assert_eq!((file, offset), (middle, 0)),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn recovery_reports_what_it_read() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..3, 50);
    write(&mut log, 3..5, 50);
    let (tail, bytes) = (log.tail_bytes(), log.disk_bytes());
    drop(log);
    let (log, report) = Log::open(Box::new(disk.clone()), opts(false), |_| {}).unwrap();
    // Base's Batch, Base, BaseEnd; then per write a Batch and its lands.
    assert_eq!(report.records, 3 + (1 + 3) + (1 + 2));
    assert_eq!(report.segments, 1);
    assert_eq!(report.bytes, bytes);
    assert_eq!(
        log.tail_bytes(),
        tail,
        "the lands written since the checkpoint"
    );
    // A land record of 50 payload bytes on topic "t": 9 + 16 + 3 + 2 + 4 + 50.
    assert_eq!(log.tail_bytes(), 5 * 84);
    assert!(report.truncated.is_none() && report.skipped.is_empty());
}

#[test]
fn a_failed_write_leaves_no_trace_and_can_be_retried() {
    let disk = SimDisk::default();
    let (mut log, _) = open(&disk, false).unwrap();
    write(&mut log, 0..2, 50);
    disk.set_full(true);
    let mut buf = Vec::new();
    land(7, 50).encode(&mut buf);
    assert!(matches!(log.write(&buf), Err(WriteError::Write(_))));
    disk.set_full(false);
    log.write(&buf).unwrap();
    drop(log);
    let (_, recs) = open(&disk, false).unwrap();
    assert_eq!(lands(&recs), vec![0, 1, 7]);
}

// ---- power loss under a live core ----------------------------------------

const SENDER: u64 = 1;
const RECEIVER: u64 = 2;

fn disk_config() -> (BrokerConfig, DiskStorage) {
    let d = DiskStorage::new("sim").segment_size(2048 + 64);
    let config = BrokerConfig {
        max_frame_size: 1024,
        ..BrokerConfig::default()
    };
    (config, d)
}

fn boot(disk: &SimDisk, now: Instant) -> (Core, Log) {
    let (config, d) = disk_config();
    let core = Core::new(&config, StdRng::seed_from_u64(1));
    let Recovered { mut core, log, .. } =
        recover(Box::new(disk.clone()), &d, &config, core).expect("recovers");
    core.open(SENDER, Role::Sender);
    core.open(RECEIVER, Role::Receiver);
    let sub = Subscribe {
        sub_id: 1,
        topic: "t".into(),
        group: "g".into(),
        credit: 1_000_000,
    };
    core.handle_frame(RECEIVER, Frame::Subscribe(sub), now)
        .expect("subscribe");
    (core, log)
}

/// The test's view of one run.
#[derive(Default)]
struct Seen {
    /// IDs whose `Stored` (or `Duplicate`) reply was released.
    confirmed: BTreeSet<u64>,
    /// IDs acked (so possibly deleted).
    acked: BTreeSet<u64>,
    /// IDs whose Land record is durable.
    durable: BTreeSet<u64>,
}

/// Takes the core's output; checks nothing leaves before it is durable.
fn drain(core: &mut Core, seen: &mut Seen, deliveries: &mut Vec<u64>) {
    for (_, f) in std::mem::take(&mut core.out) {
        match f {
            Frame::Reply(r) => {
                if matches!(r.status, ReplyStatus::Stored | ReplyStatus::Duplicate) {
                    assert!(
                        seen.durable.contains(&r.id.seq),
                        "Stored released for {} before it was durable",
                        r.id
                    );
                    seen.confirmed.insert(r.id.seq);
                }
            }
            Frame::Deliver(d) => {
                assert!(
                    seen.durable.contains(&d.id.seq),
                    "{} delivered before it was durable",
                    d.id
                );
                deliveries.push(d.id.seq);
            }
            _ => {}
        }
    }
}

fn flush(
    core: &mut Core,
    log: &mut Log,
    appended: &BTreeSet<u64>,
    seen: &mut Seen,
    now: Instant,
) -> Result<(), WriteError> {
    let j = core.journal.as_mut().expect("journal");
    let batch = std::mem::take(&mut j.buf);
    let target = j.appended;
    let snapshot = if log.tail_bytes() > 1500 {
        let mut s = Vec::new();
        core.snapshot(&mut s);
        Some(s)
    } else {
        None
    };
    log.write(&batch)?;
    if let Some(s) = snapshot {
        log.checkpoint(&s)?;
    }
    seen.durable.extend(appended.iter().copied());
    core.on_durable(target, now);
    // As the flusher does after a hand-off: zeros ahead of the data.
    log.prezero()?;
    Ok(())
}

fn run_power_loss(seed: u64, steps: usize) {
    eprintln!("power-loss seed {seed} (replay: MQ_POWER_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Instant::now();
    let mut disk = SimDisk::default();
    let mut seen = Seen::default();
    let mut next = 0u64;
    for _crash in 0..4 {
        let (mut core, mut log) = boot(&disk, now);
        // After recovery: every confirmed ID is stored, or was acked; and
        // dedup remembers it either way (a retransmit is a duplicate).
        for s in &seen.confirmed {
            let id = MessageId::new(9, *s);
            assert!(
                core.is_stored(id) || seen.acked.contains(s),
                "seed {seed}: confirmed {id} lost"
            );
            assert!(
                core.remembers(id),
                "seed {seed}: dedup forgot confirmed {id}"
            );
        }
        // What was recovered is on disk: durable from now on.
        seen.durable
            .extend(core.stored_ids().into_iter().map(|id| id.seq));
        let mut deliveries = Vec::new();
        drain(&mut core, &mut seen, &mut deliveries);
        let mut appended = BTreeSet::new();
        for _ in 0..steps {
            match rng.gen_range(0..10) {
                0..=4 => {
                    // A new message, or a retransmit of an old one.
                    let seq = if next > 0 && rng.gen_bool(0.2) {
                        rng.gen_range(0..next)
                    } else {
                        next += 1;
                        next - 1
                    };
                    let m = Message {
                        id: MessageId::new(9, seq),
                        attempt: 1,
                        topic: "t".into(),
                        headers: Headers::new(),
                        payload: Bytes::from(vec![7u8; rng.gen_range(0..200)]),
                    };
                    core.handle_frame(SENDER, Frame::Message(m), now).unwrap();
                    appended.insert(seq);
                }
                5..=6 => {
                    if let Some(&seq) = deliveries.first() {
                        deliveries.remove(0);
                        let a = Ack {
                            sub_id: 1,
                            id: MessageId::new(9, seq),
                        };
                        core.handle_frame(RECEIVER, Frame::Ack(a), now).unwrap();
                        seen.acked.insert(seq);
                    }
                }
                _ => {
                    if rng.gen_bool(0.1) {
                        // fdatasync fails: the written batch is on disk but
                        // unsynced; the broker stops (a crash follows).
                        disk.set_fail_sync(true);
                        if flush(&mut core, &mut log, &appended, &mut seen, now).is_err() {
                            break;
                        }
                        disk.set_fail_sync(false);
                        appended.clear();
                        continue;
                    }
                    flush(&mut core, &mut log, &appended, &mut seen, now).unwrap();
                    appended.clear();
                }
            }
            drain(&mut core, &mut seen, &mut deliveries);
        }
        drop(log);
        disk = disk.crash(&mut rng);
    }
}

#[test]
fn power_loss_keeps_every_confirmed_message() {
    let seed = std::env::var("MQ_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    run_power_loss(seed, 300);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Crash points chosen by proptest (through the seed of the run).
    #[test]
    fn power_loss_at_chosen_points(seed in any::<u64>(), steps in 1usize..200) {
        run_power_loss(seed, steps);
    }
}
