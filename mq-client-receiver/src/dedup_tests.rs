//! Unit and property tests of the dedup window (`super`).

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;
use std::time::Duration;

fn cfg(producers: usize, ranges: usize, idle_secs: u64) -> DedupConfig {
    DedupConfig::default()
        .max_producers(producers)
        .max_ranges_per_producer(ranges)
        .idle_expiry(Duration::from_secs(idle_secs))
}

fn cfg_total(producers: usize, ranges: usize, total: usize, idle_secs: u64) -> DedupConfig {
    cfg(producers, ranges, idle_secs).max_ranges(total)
}

#[test]
fn a_million_contiguous_ids_are_one_range() {
    let mut w = DedupWindow::new(DedupConfig::default());
    let now = Instant::now();
    for seq in 0..1_000_000u64 {
        w.insert(now, MessageId::new(3, seq));
    }
    assert_eq!(w.range_count(3), 1);
    assert_eq!(w.total_ranges(), 1);
    assert!(w.contains(MessageId::new(3, 0)));
    assert!(w.contains(MessageId::new(3, 999_999)));
    assert!(!w.contains(MessageId::new(3, 1_000_000)));
    // Four slots and a four-bucket index; nothing per range.
    assert!(w.memory_bytes() <= 4 * PRODUCER_BYTES + 64);
}

#[test]
fn a_contiguous_producer_costs_one_slot() {
    assert_eq!(PRODUCER_BYTES, 40);
    for producers in [1_000u64, 10_000] {
        let mut w = DedupWindow::new(DedupConfig::default());
        let now = Instant::now();
        for p in 0..producers {
            for seq in 0..100 {
                w.insert(now, MessageId::new(p, seq));
            }
        }
        assert_eq!(w.total_ranges(), producers as usize);
        // A 40-byte slot (the array grows by an eighth) and two to three
        // 5-byte index buckets each.
        let per = w.memory_bytes() / producers as usize;
        assert!((40..=64).contains(&per), "{producers}: {per} B each");
    }
}

#[test]
fn global_bound_forgets_the_lowest_range_of_the_least_recently_active() {
    let mut w = DedupWindow::new(cfg_total(10, 10, 4, 3600));
    let now = Instant::now();
    for s in [10, 20, 30] {
        w.insert(now, MessageId::new(1, s));
    }
    w.insert(now, MessageId::new(2, 5));
    assert_eq!((w.total_ranges(), w.evictions()), (4, 0));
    // A fifth range: producer 1 is the least recently active; its lowest
    // range (10) goes, never a merge of 10..=20.
    w.insert(now, MessageId::new(2, 7));
    assert_eq!((w.total_ranges(), w.evictions()), (4, 1));
    assert!(!w.contains(MessageId::new(1, 10)));
    assert!(w.contains(MessageId::new(1, 20)));
    assert!(!w.contains(MessageId::new(1, 15)));
    // Producer 1 left with one range loses it, and itself.
    w.insert(now, MessageId::new(2, 9));
    w.insert(now, MessageId::new(2, 11));
    assert_eq!(w.producer_count(), 1);
    assert_eq!(w.total_ranges(), 4);
    assert!(!w.contains(MessageId::new(1, 30)));
    // Alone, a producer drops its own lowest range.
    w.insert(now, MessageId::new(2, 13));
    assert!(!w.contains(MessageId::new(2, 5)));
    assert!(w.contains(MessageId::new(2, 13)));
    assert_eq!(w.total_ranges(), 4);
}

#[test]
fn worst_case_of_the_defaults_is_about_16_mib() {
    let c = DedupConfig::default();
    assert_eq!(c.max_ranges, 262_144);
    let worst = c.max_memory_bytes();
    assert!(worst > 14 << 20 && worst <= 16 << 20, "{worst}");
    // Fill to the bounds with gappy producers: the estimate stays below.
    let mut w = DedupWindow::new(c.clone());
    let now = Instant::now();
    for seq in (0..2 * 30u64).step_by(2) {
        for p in 0..10_000 {
            w.insert(now, MessageId::new(p, seq));
        }
    }
    assert_eq!(w.total_ranges(), 262_144);
    assert!(w.memory_bytes() <= worst);
}

#[test]
fn reverse_and_out_of_order_runs_coalesce() {
    let mut w = DedupWindow::new(DedupConfig::default());
    let now = Instant::now();
    for seq in (0..1000u64).rev() {
        w.insert(now, MessageId::new(1, seq));
    }
    assert_eq!(w.range_count(1), 1);
    // Odd then even: 500 ranges, then one.
    for seq in (2000..3000u64).filter(|s| s % 2 == 1) {
        w.insert(now, MessageId::new(2, seq));
    }
    assert_eq!(w.range_count(2), 500);
    for seq in (2000..3000u64).filter(|s| s % 2 == 0) {
        w.insert(now, MessageId::new(2, seq));
    }
    assert_eq!(w.range_count(2), 1);
}

#[test]
fn range_bound_evicts_lowest_and_never_merges_a_gap() {
    let mut w = DedupWindow::new(cfg(10, 2, 3600));
    let now = Instant::now();
    w.insert(now, MessageId::new(1, 10));
    w.insert(now, MessageId::new(1, 20));
    w.insert(now, MessageId::new(1, 30));
    assert_eq!(w.range_count(1), 2);
    assert!(!w.contains(MessageId::new(1, 10)));
    assert!(w.contains(MessageId::new(1, 20)));
    assert!(w.contains(MessageId::new(1, 30)));
    for seq in 11..30 {
        if seq != 20 {
            assert!(!w.contains(MessageId::new(1, seq)), "invented {seq}");
        }
    }
    assert_eq!(w.evictions(), 1);
}

#[test]
fn producer_bound_evicts_least_recently_active() {
    let mut w = DedupWindow::new(cfg(2, 8, 3600));
    let now = Instant::now();
    w.insert(now, MessageId::new(1, 1));
    w.insert(now, MessageId::new(2, 1));
    w.insert(now, MessageId::new(1, 2)); // 1 is now more recent than 2
    w.insert(now, MessageId::new(3, 1));
    assert!(w.contains(MessageId::new(1, 1)));
    assert!(!w.contains(MessageId::new(2, 1)));
    assert!(w.contains(MessageId::new(3, 1)));
    assert_eq!(w.producer_count(), 2);
    assert_eq!(w.evictions(), 1);
}

#[test]
fn idle_expiry_uses_the_given_clock() {
    let mut w = DedupWindow::new(cfg(10, 8, 60));
    let t0 = Instant::now();
    w.insert(t0, MessageId::new(1, 1));
    w.insert(t0 + Duration::from_secs(30), MessageId::new(2, 1));
    assert_eq!(w.expire(t0 + Duration::from_secs(59)), 0);
    assert_eq!(w.expire(t0 + Duration::from_secs(60)), 1);
    assert!(!w.contains(MessageId::new(1, 1)));
    assert!(w.contains(MessageId::new(2, 1)));
}

#[test]
fn extremes_do_not_overflow() {
    let mut w = DedupWindow::new(DedupConfig::default());
    let now = Instant::now();
    w.insert(now, MessageId::new(u64::MAX, u64::MAX));
    w.insert(now, MessageId::new(u64::MAX, u64::MAX - 1));
    w.insert(now, MessageId::new(u64::MAX, 0));
    assert_eq!(w.range_count(u64::MAX), 2);
    assert!(w.contains(MessageId::new(u64::MAX, u64::MAX - 1)));
    assert!(!w.contains(MessageId::new(u64::MAX, 1)));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Advance(u64),
    Expire,
}

fn ops(producers: u64, seqs: u64) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            8 => (0..producers, 0..seqs).prop_map(|(p, s)| Op::Insert(p, s)),
            1 => (0u64..40).prop_map(Op::Advance),
            1 => Just(Op::Expire),
        ],
        0..300,
    )
}

/// Runs `ops`, checking after each step: never a false "seen", bounds
/// held, and exact agreement with the model while nothing was evicted.
fn check(config: DedupConfig, ops: &[Op], producers: u64, seqs: u64) {
    let mut w = DedupWindow::new(config.clone());
    let mut model: HashSet<MessageId> = HashSet::new();
    let t0 = Instant::now();
    let mut now = t0;
    for op in ops {
        match *op {
            Op::Insert(p, s) => {
                let id = MessageId::new(p, s);
                w.insert(now, id);
                model.insert(id);
            }
            Op::Advance(secs) => now += Duration::from_secs(secs),
            Op::Expire => {
                w.expire(now);
            }
        }
        assert!(w.producer_count() <= config.max_producers);
        for p in 0..producers {
            assert!(w.range_count(p) <= config.max_ranges_per_producer);
        }
        let exact = w.evictions() == 0;
        for p in 0..producers {
            for s in 0..seqs {
                let id = MessageId::new(p, s);
                let seen = w.contains(id);
                assert!(!seen || model.contains(&id), "invented {id}");
                if exact {
                    assert_eq!(seen, model.contains(&id), "forgot {id} without eviction");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn never_invents_under_tight_bounds(ops in ops(6, 40), mp in 1usize..4, mr in 1usize..5, idle in 1u64..100) {
        check(cfg(mp, mr, idle), &ops, 6, 40);
    }

    #[test]
    fn exact_within_bounds(ops in ops(4, 64)) {
        // Bounds large enough that nothing is ever evicted.
        let c = cfg(4, 64, 1_000_000);
        check(c, &ops, 4, 64);
    }
}

#[test]
fn exact_within_bounds_has_no_evictions() {
    let mut w = DedupWindow::new(cfg(4, 64, 1_000_000));
    let now = Instant::now();
    for p in 0..4 {
        for s in (0..128).step_by(2) {
            w.insert(now, MessageId::new(p, s));
        }
    }
    assert_eq!(w.evictions(), 0);
    assert_eq!(w.total_ranges(), 4 * 64);
}

#[test]
fn the_window_keeps_its_config() {
    let c = cfg_total(5, 3, 7, 60);
    let w = DedupWindow::new(c.clone());
    assert_eq!(w.config().max_producers, 5);
    assert_eq!(w.config().max_ranges_per_producer, 3);
    assert_eq!(w.config().max_ranges, 7);
    assert_eq!(w.config().idle_expiry, Duration::from_secs(60));
}
