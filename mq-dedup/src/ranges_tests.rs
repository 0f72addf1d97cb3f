//! Unit and property tests of [`Ranges`] (`super`).

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn of(seqs: &[u64]) -> Ranges {
    let mut r = Ranges::new(seqs[0]);
    for &s in &seqs[1..] {
        r.insert(s);
    }
    r
}

fn list(r: &Ranges) -> Vec<(u64, u64)> {
    r.iter().collect()
}

#[test]
fn every_insert_outcome() {
    let mut r = Ranges::new(10);
    assert_eq!(r.insert(10), Insert::Present);
    assert_eq!(r.insert(11), Insert::Extended); // top grows up
    assert_eq!(r.insert(9), Insert::Extended); // top grows down
    assert_eq!(r.insert(5), Insert::Added); // below the top
    assert_eq!(r.insert(20), Insert::Added); // a new top
    assert_eq!(list(&r), vec![(5, 5), (9, 11), (20, 20)]);
    assert_eq!(r.insert(6), Insert::Extended); // a lower range grows up
    assert_eq!(r.insert(4), Insert::Extended); // a lower range grows down
    assert_eq!(r.insert(1), Insert::Added); // a new lowest
    assert_eq!(r.insert(2), Insert::Extended);
    assert_eq!(r.insert(3), Insert::Joined); // joins two lower ranges
    assert_eq!(list(&r), vec![(1, 6), (9, 11), (20, 20)]);
    assert_eq!(r.insert(8), Insert::Extended); // the old top grows down
    assert_eq!(r.insert(7), Insert::Joined); // joins a lower range to it
    assert_eq!(list(&r), vec![(1, 11), (20, 20)]);
    assert_eq!(r.insert(5), Insert::Present); // inside a lower range
    assert_eq!(r.insert(19), Insert::Extended);
    assert_eq!(r.insert(13), Insert::Added); // between lower and top
    assert_eq!(r.insert(12), Insert::Joined); // joins lower range 1..=11 with 13
    assert_eq!(list(&r), vec![(1, 13), (19, 20)]);
    assert_eq!(r.range_count(), 2);
    assert_eq!(r.highest(), (19, 20));
}

#[test]
fn never_joins_across_a_gap() {
    let r = of(&[1, 3, 5]);
    assert_eq!(list(&r), vec![(1, 1), (3, 3), (5, 5)]);
    assert!(!r.contains(2) && !r.contains(4) && !r.contains(0) && !r.contains(6));
}

#[test]
fn pop_lowest_keeps_the_highest() {
    let mut r = of(&[1, 3, 5]);
    assert_eq!(r.pop_lowest(), Some((1, 1)));
    assert_eq!(r.pop_lowest(), Some((3, 3)));
    assert_eq!(r.pop_lowest(), None);
    assert_eq!(list(&r), vec![(5, 5)]);
    assert_eq!(r.heap_bytes(), 0, "no lower ranges, no heap");
}

#[test]
fn heap_bytes_counts_lower_ranges() {
    let mut r = Ranges::new(0);
    assert_eq!(r.heap_bytes(), 0);
    r.insert(2);
    assert_eq!(r.heap_bytes(), LOWER_FIXED_BYTES + RANGE_BYTES);
    r.insert(4);
    assert_eq!(r.heap_bytes(), LOWER_FIXED_BYTES + 2 * RANGE_BYTES);
    r.insert(3);
    r.insert(1);
    assert_eq!(r.heap_bytes(), 0);
}

#[test]
fn extremes_do_not_overflow() {
    let mut r = Ranges::new(u64::MAX);
    assert_eq!(r.insert(u64::MAX - 1), Insert::Extended);
    assert_eq!(r.insert(0), Insert::Added);
    assert_eq!(r.insert(1), Insert::Extended);
    assert!(r.contains(u64::MAX) && r.contains(0) && !r.contains(2));
    assert_eq!(r.insert_range(0, u64::MAX), Some(-1));
    assert_eq!(list(&r), vec![(0, u64::MAX)]);
    assert_eq!(r.insert_range(5, 5), None);
}

#[test]
fn insert_range_cases() {
    // Swallows lower ranges and the top.
    let mut r = of(&[1, 5, 9]);
    assert_eq!(r.insert_range(2, 8), Some(-2));
    assert_eq!(list(&r), vec![(1, 9)]);
    // Above the top, not touching: a new top.
    assert_eq!(r.insert_range(20, 30), Some(1));
    assert_eq!(list(&r), vec![(1, 9), (20, 30)]);
    // Touching the top from below.
    assert_eq!(r.insert_range(15, 19), Some(0));
    assert_eq!(list(&r), vec![(1, 9), (15, 30)]);
    // Below everything, not touching.
    let mut r = of(&[10, 20]);
    assert_eq!(r.insert_range(1, 5), Some(1));
    assert_eq!(list(&r), vec![(1, 5), (10, 10), (20, 20)]);
    // Touching one lower range only.
    assert_eq!(r.insert_range(6, 8), Some(0));
    assert_eq!(list(&r), vec![(1, 8), (10, 10), (20, 20)]);
    // Already covered; empty.
    assert_eq!(r.insert_range(2, 7), None);
    assert_eq!(r.insert_range(7, 2), None);
    // Spanning two ranges is not covered.
    assert_eq!(r.insert_range(8, 10), Some(-1));
    assert_eq!(list(&r), vec![(1, 10), (20, 20)]);
}

/// A `Ranges` agrees with the set of sequences it was given, and its
/// ranges are sorted, disjoint and not adjacent.
fn check(r: &Ranges, model: &BTreeSet<u64>, span: u64) -> Result<(), TestCaseError> {
    for s in 0..span {
        prop_assert_eq!(r.contains(s), model.contains(&s), "seq {}", s);
    }
    let v = list(r);
    prop_assert_eq!(v.len(), r.range_count());
    for w in v.windows(2) {
        prop_assert!(
            w[0].0 <= w[0].1 && w[0].1.saturating_add(1) < w[1].0,
            "{:?}",
            v
        );
    }
    let expected = model
        .iter()
        .zip(model.iter().skip(1))
        .filter(|(a, b)| **a + 1 != **b)
        .count()
        + 1;
    prop_assert_eq!(r.range_count(), expected);
    prop_assert_eq!(r.highest().1, *model.iter().next_back().unwrap_or(&0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Against a BTreeSet model: exactly the inserted sequences, with the
    /// reported outcome matching the change in ranges.
    #[test]
    fn insert_matches_a_btreeset(first in 0u64..64, seqs in prop::collection::vec(0u64..64, 0..200)) {
        let mut r = Ranges::new(first);
        let mut model = BTreeSet::from([first]);
        for s in seqs {
            let before = r.range_count() as isize;
            let out = r.insert(s);
            prop_assert_eq!(out == Insert::Present, !model.insert(s));
            prop_assert_eq!(r.range_count() as isize - before, out.range_delta());
            check(&r, &model, 66)?;
        }
    }

    /// Ranges and single inserts mixed, against the same model.
    #[test]
    fn insert_range_matches_a_btreeset(first in 0u64..64,
                                       ops in prop::collection::vec((0u64..64, 0u64..8), 0..60)) {
        let mut r = Ranges::new(first);
        let mut model = BTreeSet::from([first]);
        for (start, len) in ops {
            let end = start + len;
            let before = r.range_count() as isize;
            let new = (start..=end).filter(|s| !model.contains(s)).count();
            model.extend(start..=end);
            match r.insert_range(start, end) {
                None => prop_assert_eq!(new, 0),
                Some(d) => {
                    prop_assert!(new > 0);
                    prop_assert_eq!(r.range_count() as isize - before, d);
                }
            }
            check(&r, &model, 80)?;
        }
    }

    /// Popping forgets exactly the lowest range, never anything else.
    #[test]
    fn pop_lowest_forgets_only_the_lowest(seqs in prop::collection::vec(0u64..64, 1..100)) {
        let mut r = of(&seqs);
        let mut model: BTreeSet<u64> = seqs.iter().copied().collect();
        while let Some((s, e)) = r.pop_lowest() {
            prop_assert_eq!(Some(&s), model.iter().next());
            for x in s..=e {
                prop_assert!(model.remove(&x));
            }
            check(&r, &model, 66)?;
        }
        prop_assert_eq!(r.range_count(), 1);
    }
}
