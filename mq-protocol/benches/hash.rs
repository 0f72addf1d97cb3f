//! The ID-keyed tables' hasher: `FastState` (aHash with random keys, since
//! issue 14) next to the hand-written folded multiply it replaced and std's
//! SipHash-1-3, in the same run: insert 100 000 `MessageId`s of 10
//! producers, then look each up. Run: `cargo bench -p mq-protocol --bench hash`.
//!
//! Second group: a broker's store index as it fills, `FastState` next to
//! `IdState` (adjacent buckets for consecutive IDs): for each of 1 000 000
//! IDs of one producer, in order, a lookup (the duplicate check) and an
//! insert, into a table that ends far larger than the CPU's caches.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mq_protocol::hash::{FastState, IdState};
use mq_protocol::MessageId;

/// The hasher `FastState` was until issue 14 (a copy, for comparison).
#[derive(Clone)]
struct Folded(u64);

impl Default for Folded {
    fn default() -> Self {
        Folded(RandomState::new().hash_one(0x5eed_u64))
    }
}

struct FoldedHasher(u64);

impl BuildHasher for Folded {
    type Hasher = FoldedHasher;
    fn build_hasher(&self) -> FoldedHasher {
        FoldedHasher(self.0)
    }
}

impl Hasher for FoldedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, i: u64) {
        let m = u128::from(self.0 ^ i) * 0x9e37_79b9_7f4a_7c15u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

const N: u64 = 100_000;

fn ids() -> Vec<MessageId> {
    (0..N).map(|i| MessageId::new(i % 10, i / 10)).collect()
}

fn run<S: BuildHasher + Default>(ids: &[MessageId]) -> usize {
    let mut m: HashMap<MessageId, u64, S> = HashMap::default();
    for (i, id) in ids.iter().enumerate() {
        m.insert(*id, i as u64);
    }
    ids.iter().filter(|id| m.contains_key(id)).count()
}

fn bench(c: &mut Criterion) {
    let ids = ids();
    let mut g = c.benchmark_group("insert+lookup 100k MessageId");
    g.throughput(Throughput::Elements(N));
    g.bench_function("FastState (aHash, random keys)", |b| {
        b.iter(|| run::<FastState>(&ids))
    });
    g.bench_function("folded multiply (before)", |b| {
        b.iter(|| run::<Folded>(&ids))
    });
    g.bench_function("SipHash-1-3 (std)", |b| b.iter(|| run::<RandomState>(&ids)));
    g.finish();
}

const INDEX: u64 = 1_000_000;

/// The store's landing pattern: look up (is it stored?), then insert,
/// with `work` dependent multiplies between two IDs.
fn land<S: BuildHasher + Default>(n: u64, work: u32) -> usize {
    let mut m: HashMap<MessageId, usize, S> = HashMap::default();
    let mut dups = 0;
    let mut x = 1u64;
    for seq in 0..n {
        let id = MessageId::new(0x5eed, seq);
        if m.contains_key(&id) {
            dups += 1;
        }
        m.insert(id, seq as usize);
        for _ in 0..work {
            x = std::hint::black_box(x.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        }
    }
    dups + m.len() + (x & 1) as usize
}

fn bench_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("store index: lookup+insert 1M sequential MessageId");
    g.throughput(Throughput::Elements(INDEX));
    g.sample_size(10);
    // A tight loop lets the CPU overlap the cache misses of several IDs;
    // a broker runs ~1 500 instructions between two messages, more than
    // its reorder window, so each miss stalls it. `work` stands for that:
    // a chain of dependent multiplies between two IDs.
    for work in [0, 300] {
        g.bench_function(format!("FastState (random buckets), work {work}"), |b| {
            b.iter(|| land::<FastState>(INDEX, work))
        });
        g.bench_function(
            format!("IdState (runs of 16 adjacent buckets), work {work}"),
            |b| b.iter(|| land::<IdState>(INDEX, work)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench, bench_index);
criterion_main!(benches);
