//! The ring-timed first attempts (inflight.rs, "Timers"): no heap item for
//! a first attempt in the ring, and no first-attempt deadline missed when
//! entries leave the ring, retry, reconnect or arrive out of order.

use std::time::{Duration, Instant};

use mq_protocol::{Backoff, ErrorCode, Headers, MessageId, Reply, ReplyStatus};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Retry 100 ms, ×2, no jitter; 3 attempts; a ring of 8.
fn cfg(send_timeout: Option<Duration>) -> CoreConfig {
    CoreConfig {
        retry: Backoff {
            initial: 100 * MS,
            multiplier: 2.0,
            max: 1000 * MS,
            jitter: 0.0,
        },
        max_attempts: 3,
        send_timeout,
        window: 8,
    }
}

fn core(send_timeout: Option<Duration>) -> Inflight<u32, SmallRng> {
    Inflight::new(cfg(send_timeout), SmallRng::seed_from_u64(1))
}

fn id(seq: u64) -> MessageId {
    MessageId::new(7, seq)
}

fn msg(seq: u64) -> Wire {
    Wire {
        id: id(seq),
        topic: "t".into(),
        headers: Headers::new(),
        payload: "p".into(),
    }
}

fn reply(seq: u64, attempt: u32, status: ReplyStatus) -> Reply {
    Reply {
        id: id(seq),
        attempt,
        status,
    }
}

fn busy() -> ReplyStatus {
    ReplyStatus::Rejected {
        code: ErrorCode::BUSY,
        reason: "busy".into(),
    }
}

/// Frames written, as (seq, attempt).
fn sent(c: &mut Inflight<u32, SmallRng>) -> Vec<(u64, u32)> {
    std::iter::from_fn(|| c.poll_transmit(|m| (m.id.seq, m.attempt))).collect()
}

/// Steps through every deadline up to `until`, recording each firing as
/// (instant, seq, attempt written); outcomes as attempt 0. Checks that
/// nothing fires a nanosecond early.
fn run_until(
    c: &mut Inflight<u32, SmallRng>,
    t0: Instant,
    until: Instant,
) -> Vec<(Duration, u64, u32)> {
    let mut log = Vec::new();
    while let Some(t) = c.poll_timeout().filter(|&t| t <= until) {
        c.handle_timeout(t - Duration::from_nanos(1));
        assert!(
            c.transmit.is_empty() && c.outcomes.is_empty(),
            "early at {t:?}"
        );
        c.handle_timeout(t);
        for (seq, attempt) in sent(c) {
            log.push((t - t0, seq, attempt));
        }
        while let Some(o) = c.poll_outcome() {
            log.push((t - t0, o.id.seq, 0));
        }
    }
    log
}

/// Heap items whose entry is live and heap-timed with that deadline.
fn live_heap_items(c: &Inflight<u32, SmallRng>) -> usize {
    c.timers
        .iter()
        .filter(|Reverse((t, id))| {
            c.entries
                .get(*id)
                .is_some_and(|e| e.in_heap && e.deadline(&c.cfg) == *t)
        })
        .count()
}

/// Steps from `poll_timeout` to `poll_timeout` until a deadline fires (a
/// frame queued or an outcome decided) and returns that instant. With
/// jitter `poll_timeout` may be early (a first attempt's lower bound), never
/// late: nothing fires a nanosecond before the returned instant.
pub(super) fn fire(c: &mut Inflight<u32, SmallRng>) -> Instant {
    let fired = |c: &Inflight<u32, SmallRng>| !c.transmit.is_empty() || !c.outcomes.is_empty();
    assert!(!fired(c), "step from a quiet core");
    loop {
        let t = c.poll_timeout().expect("a deadline is pending");
        c.handle_timeout(t - Duration::from_nanos(1));
        assert!(!fired(c), "fired before {t:?}");
        c.handle_timeout(t);
        if fired(c) {
            return t;
        }
    }
}

#[test]
fn jittered_deadlines_stay_within_bounds_for_a_fixed_seed() {
    let seed = 0x5eed;
    println!("seed = {seed}");
    let mut c0 = cfg(None);
    c0.max_attempts = 6;
    c0.retry.jitter = 0.5;
    let t0 = Instant::now();
    let mut c = Inflight::new(c0, SmallRng::seed_from_u64(seed));
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    let mut now = t0;
    let mut schedule = Vec::new();
    for n in 1..=5u32 {
        let d = fire(&mut c) - now;
        assert_eq!(sent(&mut c), vec![(1, n + 1)]);
        let base = c0.retry.base_delay(n);
        assert!(
            d <= base && d >= base.mul_f64(0.5),
            "attempt {n}: {d:?} vs {base:?}"
        );
        schedule.push(d);
        now += d;
    }
    // Same seed, same schedule; attempt 1's first key is its lower bound
    // (base × (1 − jitter)), later attempts' deadlines are exact.
    let mut again = Inflight::new(c0, SmallRng::seed_from_u64(seed));
    again.on_connected(t0);
    again.insert(t0, msg(1), 0).unwrap();
    sent(&mut again);
    assert_eq!(again.poll_timeout(), Some(t0 + c0.retry.base_delay(1) / 2));
    let mut now = t0;
    for d in schedule {
        assert_eq!(fire(&mut again), now + d);
        now += d;
        sent(&mut again);
    }
}

#[test]
fn first_attempts_in_the_ring_need_no_heap_item() {
    let t0 = Instant::now();
    let mut c = core(Some(Duration::from_secs(10)));
    c.on_connected(t0);
    for s in 1..=8 {
        c.insert(t0 + s as u32 * MS, msg(s), 0).unwrap();
    }
    assert_eq!(c.timers.len(), 0);
    assert_eq!(c.poll_timeout(), Some(t0 + 101 * MS));
    sent(&mut c);
    // Each times out exactly 100 ms after its acceptance, in order.
    let log = run_until(&mut c, t0, t0 + 108 * MS);
    let want: Vec<_> = (1..=8u64).map(|s| ((100 + s as u32) * MS, s, 2)).collect();
    assert_eq!(log, want);
    // Now retrying: each has its heap item.
    assert_eq!(live_heap_items(&c), 8);
}

#[test]
fn entries_moved_to_the_side_map_keep_their_first_deadline() {
    let t0 = Instant::now();
    let mut c = core(None);
    c.on_connected(t0);
    for s in 1..=4 {
        c.insert(t0, msg(s), 0).unwrap();
    }
    // Seq 10 re-bases the ring (window 8): 1 and 2 move to the side map,
    // 3 and 4 stay in the ring (ring-timed).
    c.insert(t0 + 10 * MS, msg(10), 0).unwrap();
    assert_eq!(c.entries.side_len(), 2);
    assert_eq!(live_heap_items(&c), 2);
    // Seq 30 slides past everything: all of the ring goes to the side map.
    c.insert(t0 + 20 * MS, msg(30), 0).unwrap();
    assert_eq!(c.entries.side_len(), 5);
    assert_eq!(live_heap_items(&c), 5);
    sent(&mut c);
    let log = run_until(&mut c, t0, t0 + 120 * MS);
    assert_eq!(
        log,
        vec![
            (100 * MS, 1, 2),
            (100 * MS, 2, 2),
            (100 * MS, 3, 2),
            (100 * MS, 4, 2),
            (110 * MS, 10, 2),
            (120 * MS, 30, 2),
        ]
    );
}

#[test]
fn a_retry_or_reconnect_moves_the_entry_to_the_heap_and_others_keep_their_deadlines() {
    let t0 = Instant::now();
    let mut c = core(None);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    c.insert(t0 + 10 * MS, msg(2), 0).unwrap();
    c.insert(t0 + 20 * MS, msg(3), 0).unwrap();
    sent(&mut c);
    // 1 is rejected transiently at 5 ms: its next attempt is heap-timed.
    assert_eq!(
        c.handle_reply(t0 + 5 * MS, reply(1, 1, busy())),
        ReplyEffect::Retrying
    );
    assert_eq!(live_heap_items(&c), 1);
    // The connection drops, and is back at 25 ms.
    c.on_disconnect();
    c.insert(t0 + 21 * MS, msg(4), 0).unwrap();
    c.on_connected(t0 + 25 * MS);
    // 1, 2 and 3 were on the wire: attempt 2 goes out at once with a fresh
    // 200 ms deadline (heap). 4 never was: its first attempt goes out and
    // keeps its deadline from its acceptance (ring-timed all along).
    assert_eq!(sent(&mut c), vec![(1, 2), (2, 2), (3, 2), (4, 1)]);
    assert_eq!(live_heap_items(&c), 3);
    let log = run_until(&mut c, t0, t0 + 500 * MS);
    assert_eq!(
        log,
        vec![
            (121 * MS, 4, 2),
            (225 * MS, 1, 3),
            (225 * MS, 2, 3),
            (225 * MS, 3, 3),
            (321 * MS, 4, 3),
        ]
    );
}

#[test]
fn an_insert_before_the_rings_end_or_with_an_earlier_clock_is_heap_timed() {
    let t0 = Instant::now();
    let mut c = core(None);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    c.insert(t0 + 50 * MS, msg(5), 0).unwrap();
    // Inside the ring (a gap below 5), accepted later: not ring-timed.
    c.insert(t0 + 60 * MS, msg(3), 0).unwrap();
    // At the ring's end, but `now` went backwards: not ring-timed either,
    // or 6's deadline would hide behind 5's later one.
    c.insert(t0 + 20 * MS, msg(6), 0).unwrap();
    assert_eq!(live_heap_items(&c), 2);
    assert_eq!(c.poll_timeout(), Some(t0 + 100 * MS));
    sent(&mut c);
    let log = run_until(&mut c, t0, t0 + 160 * MS);
    assert_eq!(
        log,
        vec![
            (100 * MS, 1, 2),
            (120 * MS, 6, 2),
            (150 * MS, 5, 2),
            (160 * MS, 3, 2)
        ]
    );
}

#[test]
fn a_reinserted_id_below_the_cursor_is_still_found() {
    let t0 = Instant::now();
    let mut c = core(None);
    c.on_connected(t0);
    for s in 1..=3 {
        c.insert(t0, msg(s), 0).unwrap();
    }
    sent(&mut c);
    // 2 and 3 retry (heap-timed), 1 is confirmed: the cursor passes 3.
    c.handle_reply(t0 + MS, reply(2, 1, busy()));
    c.handle_reply(t0 + MS, reply(3, 1, busy()));
    c.handle_reply(t0 + MS, reply(1, 1, ReplyStatus::Stored));
    assert_eq!(c.poll_timeout(), Some(t0 + 101 * MS));
    assert_eq!(c.cursor, 4);
    // 3 is confirmed and sent again under the same ID: it lands at the
    // ring's end, below the cursor.
    c.handle_reply(t0 + 2 * MS, reply(3, 1, ReplyStatus::Stored));
    c.poll_outcome();
    c.poll_outcome();
    c.insert(t0 + 3 * MS, msg(3), 0).unwrap();
    assert_eq!(live_heap_items(&c), 1);
    sent(&mut c);
    let log = run_until(&mut c, t0, t0 + 103 * MS);
    assert_eq!(log, vec![(101 * MS, 2, 2), (103 * MS, 3, 2)]);
}

#[test]
fn the_total_deadline_is_a_first_key_too() {
    let t0 = Instant::now();
    let mut c = core(Some(40 * MS));
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    c.insert(t0 + 5 * MS, msg(2), 0).unwrap();
    assert_eq!(c.timers.len(), 0);
    sent(&mut c);
    let log = run_until(&mut c, t0, t0 + 100 * MS);
    assert_eq!(log, vec![(40 * MS, 1, 0), (45 * MS, 2, 0)]);
}

#[test]
fn a_jittered_first_attempt_fires_at_its_own_deadline_not_its_first_key() {
    let t0 = Instant::now();
    let mut c0 = cfg(None);
    c0.retry.jitter = 0.5;
    let mut c = Inflight::new(c0, SmallRng::seed_from_u64(9));
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    let real = c.entries.get(id(1)).map(|e| e.retry_at).unwrap();
    // Early wake-up at the lower bound (50 ms): nothing fires, and the
    // entry is heap-timed at its jittered deadline from then on.
    assert_eq!(c.poll_timeout(), Some(t0 + 50 * MS));
    c.handle_timeout(t0 + 50 * MS);
    assert!(sent(&mut c).is_empty());
    assert!(real > 50_000_000, "seed 9 draws a jitter below the maximum");
    assert_eq!(live_heap_items(&c), 1);
    let epoch = c.epoch.unwrap();
    assert_eq!(c.poll_timeout(), Some(epoch + Duration::from_nanos(real)));
    let log = run_until(&mut c, t0, t0 + 100 * MS);
    assert_eq!(log, vec![(Duration::from_nanos(real), 1, 2)]);
}

#[test]
fn stale_heap_items_are_compacted_only_when_they_dominate() {
    let t0 = Instant::now();
    let mut c0 = cfg(None);
    c0.window = 512;
    let mut c = Inflight::new(c0, SmallRng::seed_from_u64(1));
    c.on_connected(t0);
    for s in 1..=300 {
        c.insert(t0, msg(s), 0).unwrap();
    }
    sent(&mut c);
    // Each transient rejection re-arms 1: a new heap item, the old stale.
    for k in 1..=1200 {
        c.handle_reply(t0 + MS, reply(1, 1, busy()));
        assert_eq!(c.timers.len(), k, "not compacted below 4 × 300 items");
    }
    c.handle_reply(t0 + MS, reply(1, 1, busy()));
    // Rebuilt from the heap-timed entries only: 1. The rest are ring-timed.
    assert_eq!(c.timers.len(), 1);
    assert_eq!(c.poll_timeout(), Some(t0 + 100 * MS));
    let log = run_until(&mut c, t0, t0 + 101 * MS);
    let mut want: Vec<_> = (1..=300u64).map(|s| (100 * MS, s, 2)).collect();
    want.push((101 * MS, 1, 2));
    want.remove(0);
    assert_eq!(log, want);
}
