//! The inline write next to the flusher thread, on the simulated disk: no
//! reply or delivery leaves before its record is synced, whoever writes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use mq_protocol::{Frame, Headers, Message, MessageId, ReplyStatus, Role, Subscribe};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Inline;
use crate::core::Core;
use crate::durable::{recover, Recovered};
use crate::journal::flusher::{self, RUN, STOP_NOW};
use crate::journal::sim::SimDisk;
use crate::state::{Out, OutQueue, Shared};
use crate::{BrokerConfig, DiskStorage};

/// A broker state on `disk`, its log in `Shared::log`, no flusher yet
/// (the flusher's tests, `flusher_tests.rs`, start it themselves).
pub(crate) fn shared_on(disk: &SimDisk) -> Arc<Shared> {
    let d = DiskStorage::new("sim").segment_size(4 << 20);
    let config = BrokerConfig::default();
    let core = Core::new(&config, StdRng::seed_from_u64(1));
    let Recovered { core, log, .. } =
        recover(Box::new(disk.clone()), &d, &config, core).expect("recovers");
    let shared = Arc::new(Shared::new(config, core));
    *shared.log.lock().unwrap() = Some(log);
    shared.journal_stop.store(RUN, Ordering::Release);
    shared
}

/// Opens a connection of `role`; returns its ID and what it is sent.
pub(crate) fn connect(shared: &Shared, role: Role) -> (u64, mpsc::UnboundedReceiver<Out>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(OutQueue::new(usize::MAX / 2));
    let mut st = shared.lock();
    let conn = st
        .try_open(
            role,
            tx,
            queue,
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .expect("opens");
    (conn, rx)
}

pub(crate) fn payload(p: u64, seq: u64) -> Vec<u8> {
    format!("<payload {p:04} {seq:08}>").into_bytes()
}

pub(crate) fn message(p: u64, seq: u64) -> Frame {
    Frame::Message(Message {
        id: MessageId::new(p, seq),
        attempt: 1,
        topic: "t".into(),
        headers: Headers::new(),
        payload: Bytes::from(payload(p, seq)),
    })
}

/// Checks every `Stored` reply and delivery received so far against the
/// synced bytes; returns how many there were.
pub(crate) fn check(disk: &SimDisk, rx: &mut mpsc::UnboundedReceiver<Out>) -> usize {
    let mut n = 0;
    while let Ok(out) = rx.try_recv() {
        let Out::Frames(frames, _) = out else {
            continue;
        };
        for frame in frames {
            let id = match frame {
                Frame::Reply(r) if r.status == ReplyStatus::Stored => r.id,
                Frame::Deliver(d) => d.id,
                _ => continue,
            };
            assert!(
                disk.synced_contains(&payload(id.producer, id.seq)),
                "{id} released before its record was synced"
            );
            n += 1;
        }
    }
    n
}

/// A broker on `disk` whose flusher sleeps (so the connection that
/// appends writes inline), a sender connected and its message 1/0
/// appended, not yet written: the state, the sender's ID and what it is
/// sent.
fn one_appended_while_idle(
    disk: &SimDisk,
    now: Instant,
) -> (Arc<Shared>, u64, mpsc::UnboundedReceiver<Out>) {
    let shared = shared_on(disk);
    let (conn, rx) = connect(&shared, Role::Sender);
    let mut st = shared.lock();
    st.flusher_idle = true;
    st.process(conn, [message(1, 0)], now);
    drop(st);
    (shared, conn, rx)
}

#[test]
fn inline_writes_syncs_then_releases_and_steps_aside_for_a_busy_writer() {
    let disk = SimDisk::default();
    let now = Instant::now();
    // The flusher sleeps (as it does when idle): the connection writes.
    let (shared, conn, mut rx) = one_appended_while_idle(&disk, now);
    let st = shared.lock();
    assert_eq!(check(&disk, &mut rx), 0, "nothing before the write");
    let syncs = disk.syncs();
    let (st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Durable);
    assert_eq!(disk.syncs(), syncs + 1);
    assert!(!st.journal_busy);
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.buf.is_empty());
    assert_eq!((j.writes, j.syncs), (1, disk.syncs()));
    // The fresh segment has no zeros ahead yet: the flusher's job next.
    assert!(st.prezero_due);
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);

    // Another writer holds the journal: the record waits for it.
    let mut st = shared.lock();
    st.journal_busy = true;
    st.process(conn, [message(1, 1)], now);
    let (mut st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Skipped);
    assert!(!st.core.journal.as_ref().unwrap().buf.is_empty());
    // The flusher is awake (not idle): it takes the batch, not us.
    st.journal_busy = false;
    st.flusher_idle = false;
    let (mut st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Skipped);
    // Stopping: the flusher's.
    st.flusher_idle = true;
    shared.journal_stop.store(STOP_NOW, Ordering::Release);
    let (st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Skipped);
    drop(st);
    shared.journal_stop.store(RUN, Ordering::Release);
    assert_eq!(check(&disk, &mut rx), 0);
    let (st, r) = super::inline(&shared, shared.lock());
    drop(st);
    assert_eq!(r, Inline::Durable);
    assert_eq!(check(&disk, &mut rx), 1);
}

#[test]
fn a_batch_past_the_inline_bound_is_left_to_the_flusher() {
    let disk = SimDisk::default();
    let now = Instant::now();
    let (shared, conn, mut rx) = one_appended_while_idle(&disk, now);
    let mut st = shared.lock();
    // Append until the batch is just past the bound; each record alone
    // is far below it.
    let mut seq = 1;
    let len = |st: &crate::state::State| st.core.journal.as_ref().map_or(0, |j| j.buf.len());
    while len(&st) <= super::INLINE_MAX_BYTES {
        let before = len(&st);
        st.process(conn, [message(1, seq)], now);
        assert!(len(&st) - before < super::INLINE_MAX_BYTES / 8);
        seq += 1;
    }
    let syncs = disk.syncs();
    let (st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Skipped);
    assert_eq!(disk.syncs(), syncs);
    assert!(
        len(&st) > super::INLINE_MAX_BYTES,
        "the batch stays for the flusher"
    );
    drop(st);
    assert_eq!(check(&disk, &mut rx), 0);

    // One record fewer would have been written inline: the bound is
    // inclusive of a batch of exactly its size.
    let disk = SimDisk::default();
    let (shared, conn, mut rx) = one_appended_while_idle(&disk, now);
    let mut st = shared.lock();
    for s in 1..seq - 1 {
        st.process(conn, [message(1, s)], now);
    }
    assert!(len(&st) <= super::INLINE_MAX_BYTES);
    let (st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Durable);
    drop(st);
    assert_eq!(check(&disk, &mut rx) as u64, seq - 1);
}

#[test]
fn an_inline_write_counts_its_duration() {
    // A device whose fdatasync takes 2 ms: the write's duration (the
    // average in `journal_write_micros_avg`) counts at least that.
    let disk = SimDisk::default();
    let (shared, _, mut rx) = one_appended_while_idle(&disk, Instant::now());
    disk.set_sync_delay(std::time::Duration::from_millis(2));
    let (st, r) = super::inline(&shared, shared.lock());
    assert_eq!(r, Inline::Durable);
    let j = st.core.journal.as_ref().unwrap();
    assert_eq!(j.writes, 1);
    assert!(
        j.write_micros >= 2000,
        "{} us counted for a 2 ms write",
        j.write_micros
    );
    drop(st);
    assert_eq!(check(&disk, &mut rx), 1);
}

#[test]
fn a_failed_inline_write_keeps_the_batch_and_a_failed_sync_stops_the_broker() {
    let disk = SimDisk::default();
    let now = Instant::now();
    let (shared, conn, mut rx) = one_appended_while_idle(&disk, now);
    disk.set_full(true);
    let (mut st, r) = super::inline(&shared, shared.lock());
    assert_eq!(r, Inline::Failed);
    let j = st.core.journal.as_ref().unwrap();
    assert!(j.full && !j.buf.is_empty(), "kept for the flusher's retry");
    // Full: the next batch is the flusher's retry, not an inline write.
    st.process(conn, [message(1, 1)], now);
    let (st, r) = super::inline(&shared, st);
    assert_eq!(r, Inline::Skipped);
    drop(st);
    assert_eq!(check(&disk, &mut rx), 0);

    // The disk has room again but fdatasync fails: nothing is released,
    // the broker stops, and no later write counts either.
    disk.set_full(false);
    disk.set_fail_sync(true);
    shared.lock().core.journal.as_mut().unwrap().full = false;
    let (st, r) = super::inline(&shared, shared.lock());
    assert_eq!(r, Inline::Fatal);
    drop(st);
    assert!(shared.fatal_error().is_some());
    disk.set_fail_sync(false);
    let mut st = shared.lock();
    st.process(conn, [message(1, 2)], now);
    drop(st);
    let mut log = shared.log.lock().unwrap();
    assert!(
        log.as_mut().unwrap().write(b"x").is_err(),
        "the log stays broken"
    );
    drop(log);
    assert_eq!(check(&disk, &mut rx), 0);
}

/// Senders on threads write inline or leave it to the flusher thread
/// (seeded choices), a receiver takes deliveries; every `Stored` and every
/// delivery is checked against the synced bytes when it arrives, and at a
/// random point fdatasync starts failing, after which nothing new may be
/// released.
fn run_concurrent(seed: u64) {
    eprintln!("inline/flusher seed {seed} (replay: MQ_INLINE_SEED={seed})");
    // (Its flusher prints the trace samples when it stops.)
    let _one = crate::journal::flusher_tests::one_flusher();
    let disk = SimDisk::default();
    let shared = shared_on(&disk);
    let (recv, mut recv_rx) = connect(&shared, Role::Receiver);
    {
        let mut st = shared.lock();
        let sub = Subscribe {
            sub_id: 1,
            topic: "t".into(),
            group: "g".into(),
            credit: 1_000_000,
        };
        st.process(recv, [Frame::Subscribe(sub)], Instant::now());
    }
    let flusher = {
        let shared = shared.clone();
        std::thread::spawn(move || flusher::run(shared))
    };
    let per_sender = 150u64;
    let fail_at = StdRng::seed_from_u64(seed).gen_range(0..3 * per_sender);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flipped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..3u64)
        .map(|p| {
            // Connected before any thread runs: a stop (the failed
            // fdatasync) refuses new connections.
            (p, connect(&shared, Role::Sender))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(p, (conn, mut rx))| {
            let (shared, disk) = (shared.clone(), disk.clone());
            let (sent, flipped) = (sent.clone(), flipped.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ (p + 1));
                let mut confirmed = 0;
                for seq in 0..per_sender {
                    // Messages numbered past the failure point are sent
                    // only once fdatasync fails.
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    if n == fail_at {
                        disk.set_fail_sync(true);
                        flipped.store(true, Ordering::SeqCst);
                    }
                    while n > fail_at && !flipped.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    let mut st = shared.lock();
                    st.process(conn, [message(p, seq)], Instant::now());
                    if rng.gen_bool(0.7) {
                        st = super::inline(&shared, st).0;
                    }
                    let wake = shared.after_change_then_wake(&mut st);
                    drop(st);
                    if wake {
                        shared.flush_cv.notify_one();
                    }
                    confirmed += check(&disk, &mut rx);
                    for _ in 0..rng.gen_range(0..3) {
                        std::thread::yield_now();
                    }
                }
                confirmed + check(&disk, &mut rx)
            })
        })
        .collect();
    let confirmed: usize = senders.into_iter().map(|t| t.join().unwrap()).sum();
    // Records sent after the failure point wait for a write, which fails
    // its fdatasync and stops the broker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while shared.fatal_error().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: the failed fdatasync never stopped the broker"
        );
        std::thread::yield_now();
    }
    shared.journal_stop.store(STOP_NOW, Ordering::Release);
    {
        let _st = shared.lock();
        shared.flush_cv.notify_all();
    }
    flusher.join().unwrap();
    let delivered = check(&disk, &mut recv_rx);
    assert!(
        confirmed <= fail_at as usize && delivered <= fail_at as usize,
        "seed {seed}: {confirmed} confirmed, {delivered} delivered, {fail_at} synced at most"
    );
}

#[test]
fn inline_and_flusher_writes_release_nothing_unsynced() {
    let seed: u64 = std::env::var("MQ_INLINE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    for i in 0..8u64 {
        run_concurrent(seed.wrapping_add(i));
    }
}
