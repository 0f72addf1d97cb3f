//! The slot table against a `HashMap` model, and its density rules.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn id(seq: u64) -> MessageId {
    MessageId::new(7, seq)
}

#[test]
fn a_contiguous_run_lives_in_the_ring_at_exactly_the_window() {
    let mut s = Slots::new(1000);
    for seq in 1..=1000 {
        s.insert(id(seq), seq);
    }
    assert_eq!(s.len(), 1000);
    assert_eq!(s.side_len(), 0);
    assert_eq!(s.ring_capacity(), 1000, "no spare slots at a full window");
    // Resolving the front frees slots for the next ones without growing.
    for seq in 1..=500 {
        assert_eq!(s.remove(id(seq)), Some(seq));
    }
    for seq in 1001..=1500 {
        s.insert(id(seq), seq);
    }
    assert_eq!((s.len(), s.side_len(), s.ring_capacity()), (1000, 0, 1000));
    assert_eq!(s.get(id(1200)), Some(&1200));
    assert_eq!(s.get(id(1)), None);
}

#[test]
fn a_straggler_moves_to_the_side_map_and_the_ring_stays_bounded() {
    let mut s = Slots::new(16);
    s.insert(id(1), 1);
    for seq in 2..10_000 {
        s.insert(id(seq), seq);
        assert_eq!(s.remove(id(seq)), Some(seq));
        assert!(s.ring_capacity() <= 16);
    }
    assert_eq!(s.side_len(), 1);
    assert_eq!(s.get_mut(id(1)).map(|v| *v), Some(1));
    assert_eq!(s.remove(id(1)), Some(1));
    assert!(s.is_empty());
}

/// Sliding moves only as many of the oldest slots as the new ID needs:
/// the rest of the run stays in the ring.
#[test]
fn a_slide_evicts_only_the_oldest_slots() {
    let mut s = Slots::new(4);
    for seq in 1..=4 {
        s.insert(id(seq), seq);
    }
    s.insert(id(5), 5);
    assert_eq!((s.side_len(), s.len()), (1, 5), "only seq 1 moved out");
    s.insert(id(7), 7);
    assert_eq!((s.side_len(), s.len()), (3, 6), "seqs 2 and 3 moved out");
    assert!(s.ring_capacity() <= 4);
    assert_eq!(s.ids_sorted(), [1, 2, 3, 4, 5, 7].map(id).to_vec());
}

#[test]
fn other_producers_older_ids_and_the_last_sequence_fit() {
    let mut s = Slots::new(4);
    s.insert(id(100), 1);
    s.insert(MessageId::new(8, 101), 2);
    s.insert(id(50), 3);
    s.insert(id(u64::MAX), 4);
    s.insert(id(u64::MAX - 1), 5);
    assert!(s.contains(id(u64::MAX)) && s.contains(id(100)) && !s.contains(id(99)));
    assert_eq!(s.len(), 5);
    assert_eq!(
        s.ids_sorted(),
        vec![
            id(50),
            id(100),
            id(u64::MAX - 1),
            id(u64::MAX),
            MessageId::new(8, 101)
        ]
    );
    for (i, v) in [(id(u64::MAX), 4), (id(50), 3), (MessageId::new(8, 101), 2)] {
        assert_eq!(s.remove(i), Some(v));
    }
    assert_eq!(s.remove(id(u64::MAX)), None);
    assert_eq!(s.len(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(u64, u64),
    Get(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly one producer and a narrow band of sequences, so the ring,
    // its holes and its slides are all exercised.
    let key = (prop_oneof![9 => Just(7u64), 1 => Just(8u64)], 0u64..40);
    prop_oneof![
        4 => key.clone().prop_map(|(p, s)| Op::Insert(p, s)),
        3 => key.clone().prop_map(|(p, s)| Op::Remove(p, s)),
        2 => key.prop_map(|(p, s)| Op::Get(p, s)),
    ]
}

proptest! {
    /// Behaves as a map, and the ring never spans more than the window.
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..300), span in 1usize..12) {
        let mut s = Slots::new(span);
        let mut model: HashMap<MessageId, u64> = HashMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            let n = n as u64;
            match op {
                Op::Insert(p, q) => {
                    let k = MessageId::new(p, q);
                    prop_assert_eq!(s.contains(k), model.contains_key(&k));
                    if !s.contains(k) {
                        s.insert(k, n);
                        model.insert(k, n);
                    }
                }
                Op::Remove(p, q) => {
                    let k = MessageId::new(p, q);
                    prop_assert_eq!(s.remove(k), model.remove(&k));
                }
                Op::Get(p, q) => {
                    let k = MessageId::new(p, q);
                    prop_assert_eq!(s.get(k), model.get(&k));
                    prop_assert_eq!(s.contains(k), model.contains_key(&k));
                }
            }
            prop_assert_eq!(s.len(), model.len());
            prop_assert_eq!(s.is_empty(), model.is_empty());
            prop_assert!(s.ring_capacity() <= span);
            let mut want: Vec<MessageId> = model.keys().copied().collect();
            want.sort_unstable();
            prop_assert_eq!(s.ids_sorted(), want);
        }
    }
}

#[test]
fn an_insert_reports_where_it_went_and_every_entry_it_evicted() {
    let mut s = Slots::new(4);
    let mut evicted = Vec::new();
    let ins = |s: &mut Slots<u64>, seq: u64, evicted: &mut Vec<u64>| {
        s.insert_with(id(seq), seq, |i, v| {
            assert_eq!(i.seq, *v);
            *v += 1000;
            evicted.push(i.seq);
        })
    };
    assert_eq!(ins(&mut s, 10, &mut evicted), Placed::Alone);
    assert_eq!(ins(&mut s, 11, &mut evicted), Placed::Back);
    assert_eq!(ins(&mut s, 13, &mut evicted), Placed::Back);
    assert_eq!(ins(&mut s, 12, &mut evicted), Placed::Inner);
    assert_eq!(ins(&mut s, 9, &mut evicted), Placed::Side);
    assert_eq!(s.insert(MessageId::new(8, 11), 0), Placed::Side);
    assert!(evicted.is_empty());
    // 15 slides the ring by two: 10 and 11 move to the side map, changed
    // by the callback before they moved.
    assert_eq!(ins(&mut s, 15, &mut evicted), Placed::Back);
    assert_eq!(evicted, vec![10, 11]);
    assert_eq!((s.get(id(10)), s.get(id(11))), (Some(&1010), Some(&1011)));
    // 30 slides past everything: the ring's last live entries go, and 30
    // is alone in the ring.
    assert_eq!(ins(&mut s, 30, &mut evicted), Placed::Alone);
    assert_eq!(evicted, vec![10, 11, 12, 13, 15]);
    assert_eq!(s.len(), 8);
    assert_eq!(s.side_len(), 7);
}

#[test]
fn first_in_ring_finds_the_lowest_match_from_a_sequence() {
    let mut s = Slots::new(16);
    assert_eq!(s.first_in_ring(5, |_| true), (5, None), "empty ring");
    for seq in [3, 4, 6, 8] {
        s.insert(id(seq), seq);
    }
    let first = |s: &Slots<u64>, from, pred: fn(&u64) -> bool| {
        let (next, hit) = s.first_in_ring(from, pred);
        (next, hit.map(|(i, v)| (i.seq, *v)))
    };
    // From below the base: the base.
    assert_eq!(first(&s, 0, |_| true), (3, Some((3, 3))));
    assert_eq!(first(&s, 4, |_| true), (4, Some((4, 4))));
    // Empty slots and entries the predicate refuses are passed over.
    assert_eq!(first(&s, 5, |_| true), (6, Some((6, 6))));
    assert_eq!(first(&s, 3, |v| *v > 6), (8, Some((8, 8))));
    // None left: the ring's end, so a cursor never scans these again.
    assert_eq!(first(&s, 3, |v| *v > 8), (9, None));
    assert_eq!(first(&s, 12, |_| true), (12, None));
    // Once the front resolves, the base moves up past the cursor.
    s.remove(id(3));
    s.remove(id(4));
    assert_eq!(first(&s, 3, |_| true), (6, Some((6, 6))));
}
