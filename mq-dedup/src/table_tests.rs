//! Unit and property tests of [`DedupTable`] (`super`).

use super::*;
use crate::limits::index_bytes;
use proptest::prelude::*;
use std::collections::HashSet;

type Table = DedupTable<RandomState>;

fn table(producers: usize, per: usize, total: usize) -> Table {
    DedupTable::new(Limits::new(producers, per, total))
}

#[test]
fn a_million_contiguous_ids_are_one_range_and_no_heap_per_range() {
    let mut t = table(10, 10, 10);
    for seq in 0..1_000_000u64 {
        assert!(t.insert(0, 3, seq));
    }
    assert_eq!((t.range_count(3), t.total_ranges()), (1, 1));
    assert!(t.contains(3, 0) && t.contains(3, 999_999) && !t.contains(3, 1_000_000));
    // Four slots and a four-bucket index.
    assert_eq!(t.memory_bytes(), 4 * PRODUCER_BYTES + index_bytes(1));
}

#[test]
fn a_contiguous_producer_costs_at_most_64_bytes() {
    assert_eq!(PRODUCER_BYTES, 40);
    for n in [1_000u64, 10_000, 100, 7, 900, 1_900, 3_600, 7_300] {
        let mut t = table(100_000, 8, 1 << 20);
        for p in 0..n {
            for seq in 0..10 {
                t.insert(0, p, seq);
            }
        }
        assert_eq!(t.total_ranges(), n as usize);
        let per = t.memory_bytes() / n as usize;
        if n >= 100 {
            assert!(per <= 64, "{n} producers: {per} B each");
        }
        assert!(t.memory_bytes() <= t.limits().max_memory_bytes());
    }
}

#[test]
fn index_bytes_matches_hashbrown() {
    for n in [1usize, 3, 4, 7, 8, 100, 1_000, 10_000] {
        let mut h: HashTable<u32> = HashTable::new();
        for i in 0..n as u32 {
            h.insert_unique(u64::from(i), i, |&x| u64::from(x));
        }
        assert_eq!(h.allocation_size(), index_bytes(n), "{n}");
    }
    assert_eq!(index_bytes(0), 0);
}

#[test]
fn per_producer_bound_forgets_the_lowest_never_fills_a_gap() {
    let mut t = table(10, 2, 100);
    for s in [10, 20, 30] {
        t.insert(0, 1, s);
    }
    assert_eq!((t.range_count(1), t.evictions()), (2, 1));
    assert!(!t.contains(1, 10) && t.contains(1, 20) && t.contains(1, 30));
    assert!((11..30).filter(|&s| s != 20).all(|s| !t.contains(1, s)));
    // A new lowest range is itself the one forgotten.
    t.insert(0, 1, 5);
    assert_eq!((t.range_count(1), t.evictions()), (2, 2));
    assert!(!t.contains(1, 5));
}

#[test]
fn producer_bound_evicts_the_least_recently_active() {
    let mut t = table(2, 8, 100);
    t.insert(0, 1, 1);
    t.insert(0, 2, 1);
    t.insert(0, 1, 2); // 1 is now more recent than 2
    t.insert(0, 3, 1);
    assert!(t.contains(1, 1) && !t.contains(2, 1) && t.contains(3, 1));
    assert_eq!((t.producer_count(), t.evictions()), (2, 1));
    // A duplicate insert also counts as activity.
    assert!(!t.insert(0, 1, 1));
    t.insert(0, 4, 1);
    assert!(t.contains(1, 1) && !t.contains(3, 1));
}

#[test]
fn total_bound_forgets_the_lowest_range_of_the_least_recently_active() {
    let mut t = table(10, 10, 4);
    for s in [10, 20, 30] {
        t.insert(0, 1, s);
    }
    t.insert(0, 2, 5);
    assert_eq!((t.total_ranges(), t.evictions()), (4, 0));
    t.insert(0, 2, 7);
    assert_eq!((t.total_ranges(), t.evictions()), (4, 1));
    assert!(!t.contains(1, 10) && t.contains(1, 20) && !t.contains(1, 15));
    // Producer 1 left with one range loses it, and itself.
    t.insert(0, 2, 9);
    t.insert(0, 2, 11);
    assert_eq!((t.producer_count(), t.total_ranges()), (1, 4));
    assert!(!t.contains(1, 30));
    // Alone, a producer drops its own lowest range.
    t.insert(0, 2, 13);
    assert!(!t.contains(2, 5) && t.contains(2, 13));
    assert_eq!(t.total_ranges(), 4);
}

#[test]
fn expire_drops_the_idle_and_shrinks() {
    let mut t = table(100_000, 8, 1 << 20);
    // At the same `now`, stamps are bumped by one each: 1000..=5999.
    for p in 0..5_000 {
        t.insert(1_000, p, 1);
    }
    t.insert(50_000, 1, 2);
    let full = t.memory_bytes();
    assert_eq!(t.expire(100_999, 100_000), 0, "not idle long enough");
    assert_eq!(t.expire(101_000, 100_000), 1);
    assert_eq!(t.expire(106_000, 100_000), 4_998);
    assert_eq!(t.evictions(), 4_999);
    assert!(t.contains(1, 1) && t.contains(1, 2) && !t.contains(2, 1));
    assert!(
        t.memory_bytes() < full / 10,
        "{} of {full}",
        t.memory_bytes()
    );
    assert_eq!(t.expire(149_999, 100_000), 0);
    assert_eq!(t.expire(150_000, 100_000), 1);
    assert_eq!((t.producer_count(), t.total_ranges()), (0, 0));
    assert_eq!(t.expire(1_000_000, 100), 0);
}

#[test]
fn the_same_now_still_orders_by_insert() {
    let mut t = table(3, 8, 100);
    for p in [5, 6, 7] {
        t.insert(0, p, 1);
    }
    t.insert(0, 5, 2);
    let order: Vec<u64> = t.by_activity().iter().map(|(p, _)| *p).collect();
    assert_eq!(order, vec![6, 7, 5]);
    t.insert(0, 8, 1);
    assert!(!t.contains(6, 1) && t.contains(7, 1));
}

#[test]
fn removing_keeps_every_other_producer_reachable() {
    // Evicting swaps the last slot in; every survivor must still be found.
    let mut t = table(50, 8, 1 << 20);
    for p in 0..200u64 {
        t.insert(0, p, p);
        t.insert(0, p % 50 + 1_000, p);
    }
    for p in 0..200u64 {
        let alive = t.ranges(p).is_some();
        assert_eq!(t.contains(p, p), alive);
    }
    assert!(t.producer_count() <= 50);
    let live: usize = t.by_activity().iter().map(|(_, r)| r.range_count()).sum();
    assert_eq!(live, t.total_ranges());
}

#[test]
fn insert_range_restores_a_table() {
    let mut a = table(10, 10, 100);
    for (p, s) in [(1, 1), (1, 2), (1, 5), (2, 9), (1, 7), (1, 6)] {
        a.insert(0, p, s);
    }
    let mut b = table(10, 10, 100);
    for (p, r) in a.by_activity() {
        for (s, e) in r.iter() {
            assert!(b.insert_range(0, p, s, e));
        }
    }
    for p in 0..3 {
        for s in 0..12 {
            assert_eq!(a.contains(p, s), b.contains(p, s), "{p}/{s}");
        }
    }
    assert_eq!(b.range_count(1), 2);
    assert_eq!(b.total_ranges(), a.total_ranges());
    assert!(!b.insert_range(0, 1, 5, 7), "nothing new");
    assert!(!b.insert_range(0, 1, 7, 5), "empty");
    // Past the per-producer bound, the lowest ranges go.
    let mut c = table(10, 2, 100);
    for s in [1, 10, 20, 30] {
        c.insert_range(0, 4, s, s + 2);
    }
    assert_eq!(c.range_count(4), 2);
    assert!(!c.contains(4, 11) && c.contains(4, 21) && c.contains(4, 31));
    assert_eq!(c.evictions(), 2);
}

#[test]
fn zero_bounds_are_one() {
    let mut t = table(0, 0, 0);
    t.insert(0, 1, 1);
    t.insert(0, 1, 3);
    assert_eq!((t.producer_count(), t.total_ranges()), (1, 1));
    t.insert(0, 2, 1);
    assert!(!t.contains(1, 3) && t.contains(2, 1));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Range(u64, u64, u64),
    Advance(u64),
    Expire(u64),
}

fn ops(producers: u64, seqs: u64) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            8 => (0..producers, 0..seqs).prop_map(|(p, s)| Op::Insert(p, s)),
            1 => (0..producers, 0..seqs, 0u64..4).prop_map(|(p, s, l)| Op::Range(p, s, l)),
            1 => (0u64..40).prop_map(Op::Advance),
            1 => (1u64..60).prop_map(Op::Expire),
        ],
        0..300,
    )
}

/// Runs `ops`, checking after each step against a HashSet model: never a
/// false "seen", bounds held, the counters right, and exact agreement
/// while nothing was evicted.
fn check(limits: Limits, ops: &[Op], producers: u64, seqs: u64) -> Result<(), TestCaseError> {
    let mut t = Table::new(limits.clone());
    let mut model: HashSet<(u64, u64)> = HashSet::new();
    let mut now = 0;
    for op in ops {
        match *op {
            Op::Insert(p, s) => {
                let new = t.insert(now, p, s);
                prop_assert!(!new || !model.contains(&(p, s)) || t.evictions() > 0);
                if t.evictions() == 0 {
                    prop_assert_eq!(new, !model.contains(&(p, s)));
                }
                model.insert((p, s));
            }
            Op::Range(p, s, l) => {
                t.insert_range(now, p, s, s + l);
                model.extend((s..=s + l).map(|s| (p, s)));
            }
            Op::Advance(d) => now += d,
            Op::Expire(idle) => {
                t.expire(now, idle);
            }
        }
        prop_assert!(t.producer_count() <= limits.max_producers.max(1));
        prop_assert!(t.total_ranges() <= limits.max_ranges.max(1));
        let mut sum = 0;
        for p in 0..producers {
            prop_assert!(t.range_count(p) <= limits.max_ranges_per_producer.max(1));
            sum += t.range_count(p);
        }
        prop_assert_eq!(sum, t.total_ranges());
        prop_assert!(t.memory_bytes() <= limits.max_memory_bytes());
        let exact = t.evictions() == 0;
        for p in 0..producers {
            for s in 0..seqs + 4 {
                let seen = t.contains(p, s);
                prop_assert!(!seen || model.contains(&(p, s)), "invented {}/{}", p, s);
                if exact {
                    prop_assert_eq!(seen, model.contains(&(p, s)), "forgot {}/{}", p, s);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn never_invents_under_tight_bounds(ops in ops(6, 40), mp in 1usize..4, mr in 1usize..5, total in 1usize..12) {
        check(Limits::new(mp, mr, total), &ops, 6, 40)?;
    }

    #[test]
    fn exact_within_bounds(ops in ops(4, 64)) {
        // Large enough that only expiry evicts.
        check(Limits::new(4, 64, 1 << 20), &ops, 4, 64)?;
    }
}

#[test]
fn the_worst_case_formula() {
    // 10 ranges: at most 11 producers, 6 of them with lower ranges.
    // Index for 22: 32 buckets (128 + 48 bytes); 15 slots; 11 candidates.
    let l = Limits::new(100, 8, 10);
    let expected = 176 + 15 * PRODUCER_BYTES + 11 * 16 + 6 * (24 + 192) + 10 * RANGE_BYTES;
    assert_eq!(l.max_memory_bytes(), expected);
    assert_eq!(
        Limits::new(0, 0, 0).max_memory_bytes(),
        Limits::new(1, 1, 1).max_memory_bytes()
    );
}

#[test]
fn the_slot_array_grows_by_an_eighth() {
    let mut t = table(100_000, 8, 1 << 20);
    let mut grew = 0;
    let mut cap = 0;
    for p in 0..10_000 {
        t.insert(0, p, 1);
        if t.slots.capacity() != cap {
            cap = t.slots.capacity();
            grew += 1;
            assert!(cap <= t.slots.len() + t.slots.len() / 8 + 4, "{cap}");
        }
    }
    // Geometric growth: about log(10 000 / 4) / log(9 / 8) = 66 times.
    assert!(grew < 80, "grew {grew} times");
}

#[test]
fn an_eviction_scan_keeps_the_oldest_sixteenth() {
    let mut t = table(1_600, 8, 1 << 20);
    for p in 0..1_600 {
        t.insert(0, p, 1);
    }
    let before = t.memory_bytes();
    t.insert(0, 5_000, 1);
    assert!(!t.contains(0, 1) && t.contains(1, 1));
    assert_eq!(t.memory_bytes() - before, 100 * 16);
}

#[test]
fn eviction_follows_activity_exactly_past_one_scan() {
    // 200 producers, touched in a scrambled order: each new producer must
    // evict exactly the least recently active one, across several scans.
    let n = 200u64;
    let mut t = table(n as usize, 8, 1 << 20);
    for p in 0..n {
        t.insert(0, p, 0);
    }
    let order: Vec<u64> = (0..n).map(|i| (i * 73 + 11) % n).collect();
    for (i, &p) in order.iter().enumerate() {
        t.insert(i as u64, p, 1);
    }
    for (i, &p) in order.iter().enumerate() {
        assert!(t.contains(p, 1));
        t.insert(1_000 + i as u64, 10_000 + i as u64, 0);
        assert!(!t.contains(p, 1), "step {i}: {p} should have been evicted");
        if let Some(&q) = order.get(i + 1) {
            assert!(t.contains(q, 1), "step {i}: {q} evicted too early");
        }
    }
}

#[test]
fn memory_counts_each_lower_range() {
    assert_eq!(INDEX_BUCKET_BYTES, 5);
    let mut t = table(10, 10, 100);
    t.insert(0, 1, 1);
    let one = t.memory_bytes();
    t.insert(0, 1, 3);
    assert_eq!(t.memory_bytes() - one, 24 + 192 + RANGE_BYTES);
    t.insert(0, 1, 5);
    assert_eq!(t.memory_bytes() - one, 24 + 192 + 2 * RANGE_BYTES);
    t.insert(0, 1, 4);
    t.insert(0, 1, 2);
    assert_eq!(t.memory_bytes(), one, "one range again: no heap for it");
}

#[test]
fn the_table_keeps_its_limits() {
    assert_eq!(table(3, 2, 9).limits(), &Limits::new(3, 2, 9));
}
