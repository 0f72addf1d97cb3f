//! The store against a model (a `BTreeMap` keyed by ID): the same answers
//! for any sequence of landings and releases, slots reused, landing order
//! kept across reuse.

use std::collections::BTreeMap;

use bytes::Bytes;
use mq_protocol::{Headers, Message, MessageId};
use proptest::prelude::*;
use tokio::time::Instant;

use super::{Store, CHUNK};

fn message(seq: u64, len: usize) -> Message {
    Message {
        id: MessageId::new(7, seq),
        attempt: 1,
        topic: "t".into(),
        headers: Headers::default(),
        payload: Bytes::from(vec![seq as u8; len]),
    }
}

fn land(store: &mut Store, seq: u64, len: usize, remaining: u32) {
    let topic = if seq.is_multiple_of(2) { "even" } else { "odd" };
    store.land(
        message(seq, len),
        topic.into(),
        remaining,
        seq,
        Instant::now(),
    );
}

#[derive(Debug, Clone)]
enum Op {
    Land { seq: u64, len: usize, groups: u32 },
    Release(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..64, 0usize..40, 1u32..3).prop_map(|(seq, len, groups)| Op::Land { seq, len, groups }),
        2 => (0u64..64).prop_map(Op::Release),
    ]
}

/// What the model holds per ID: groups left, payload length, landing order.
type Model = BTreeMap<u64, (u32, usize, u64)>;

fn check(store: &Store, model: &Model) {
    assert_eq!(store.len(), model.len());
    assert_eq!(
        store.bytes(),
        model.values().map(|&(_, len, _)| len).sum::<usize>()
    );
    for (&seq, &(remaining, len, _)) in model {
        let m = store.get(&MessageId::new(7, seq)).expect("stored");
        assert_eq!((m.remaining, m.payload.len()), (remaining, len));
        assert!(
            m.payload.iter().all(|&b| b == seq as u8),
            "payload of {seq}"
        );
    }
    let mut order: Vec<_> = model.iter().map(|(&seq, &(_, _, at))| (at, seq)).collect();
    order.sort_unstable();
    let want: Vec<u64> = order.iter().map(|&(_, seq)| seq).collect();
    let got: Vec<u64> = store.iter().map(|(id, _)| id.seq).collect();
    assert_eq!(got, want, "iter is in landing order");
    let even: Vec<u64> = want
        .iter()
        .copied()
        .filter(|s| s.is_multiple_of(2))
        .collect();
    let ids: Vec<u64> = store
        .topic_ids("even", u64::MAX)
        .iter()
        .map(|id| id.seq)
        .collect();
    assert_eq!(ids, even, "topic_ids in landing order");
}

proptest! {
    #[test]
    fn store_answers_like_a_map(ops in proptest::collection::vec(op(), 1..300)) {
        let mut store = Store::new(usize::MAX, usize::MAX, false);
        let mut model = Model::new();
        let mut landed = 0u64;
        for op in ops {
            match op {
                Op::Land { seq, len, groups } => {
                    // The core checks dedup before landing; so does this.
                    if model.contains_key(&seq) {
                        continue;
                    }
                    land(&mut store, seq, len, groups);
                    model.insert(seq, (groups, len, landed));
                    landed += 1;
                }
                Op::Release(seq) => {
                    let id = MessageId::new(7, seq);
                    let deleted = store.release(&id);
                    let want = match model.get_mut(&seq) {
                        Some(e) if e.0 > 1 => { e.0 -= 1; false }
                        Some(_) => { model.remove(&seq); true }
                        None => false,
                    };
                    prop_assert_eq!(deleted, want);
                }
            }
            check(&store, &model);
        }
    }
}

#[test]
fn freed_slots_are_reused_and_chunks_are_not_added() {
    let mut store = Store::new(usize::MAX, usize::MAX, false);
    let n = (2 * CHUNK + 10) as u64;
    for round in 0..3 {
        for seq in 0..n {
            land(&mut store, round * n + seq, 4, 1);
        }
        assert_eq!(store.len() as u64, n);
        for seq in 0..n {
            assert!(store.release(&MessageId::new(7, round * n + seq)));
        }
        assert_eq!((store.len(), store.bytes()), (0, 0));
        assert_eq!(store.slab.next as u64, n, "round {round}: slots reused");
        assert_eq!(store.slab.chunks.len(), 3, "round {round}: no chunk added");
    }
}

#[test]
fn a_second_landing_of_one_id_replaces_the_first_and_its_bytes() {
    let mut store = Store::new(usize::MAX, usize::MAX, false);
    land(&mut store, 1, 10, 1);
    land(&mut store, 1, 3, 2);
    assert_eq!((store.len(), store.bytes()), (1, 3));
    let m = store.get(&MessageId::new(7, 1)).expect("stored");
    assert_eq!(m.remaining, 2);
    assert!(!store.release(&MessageId::new(7, 1)));
    assert!(store.release(&MessageId::new(7, 1)));
    assert!(!store.release(&MessageId::new(7, 1)), "released once only");
    assert_eq!((store.len(), store.bytes()), (0, 0));
}

#[test]
fn get_mut_changes_the_stored_message() {
    let mut store = Store::new(usize::MAX, usize::MAX, false);
    land(&mut store, 1, 1, 1);
    land(&mut store, 2, 1, 1);
    store
        .get_mut(&MessageId::new(7, 2))
        .expect("stored")
        .remaining = 5;
    assert_eq!(
        store.get(&MessageId::new(7, 2)).map(|m| m.remaining),
        Some(5)
    );
    assert_eq!(
        store.get(&MessageId::new(7, 1)).map(|m| m.remaining),
        Some(1)
    );
    assert!(store.get_mut(&MessageId::new(7, 3)).is_none());
    assert!(store.get(&MessageId::new(8, 1)).is_none());
}

#[test]
fn a_second_landing_replaces_the_right_slot_among_many() {
    let mut store = Store::new(usize::MAX, usize::MAX, false);
    for seq in 0..(CHUNK as u64 + 20) {
        land(&mut store, seq, 2, 1);
    }
    // Slots 7 and CHUNK + 3: in the first chunk and in the second.
    for seq in [7, CHUNK as u64 + 3] {
        land(&mut store, seq, 9, 3);
        let m = store.get(&MessageId::new(7, seq)).expect("stored");
        assert_eq!((m.remaining, m.payload.len()), (3, 9), "seq {seq}");
    }
    for seq in [0, 1, 6, 8, CHUNK as u64 + 2, CHUNK as u64 + 4] {
        let m = store.get(&MessageId::new(7, seq)).expect("stored");
        assert_eq!(
            (m.remaining, m.payload.len()),
            (1, 2),
            "seq {seq} untouched"
        );
    }
    assert_eq!(store.bytes(), 2 * (CHUNK + 20) + 2 * 7);
}

#[test]
fn the_landing_log_counts_each_landing() {
    let mut store = Store::new(usize::MAX, usize::MAX, true);
    land(&mut store, 1, 1, 1);
    assert_eq!(store.landed_count(&MessageId::new(7, 1)), 1);
    land(&mut store, 1, 1, 1);
    assert_eq!(store.landed_count(&MessageId::new(7, 1)), 2);
    assert_eq!(store.landed_count(&MessageId::new(7, 2)), 0);
}

#[test]
fn a_stored_message_costs_its_known_bytes() {
    // What each landed message costs besides its payload and headers
    // (the slab slot; the index adds 24 bytes): a change here is a change
    // of the broker's memory per stored message, to be measured.
    println!("Stored: {} bytes", std::mem::size_of::<super::Stored>());
    assert!(std::mem::size_of::<super::Stored>() <= 112);
}
