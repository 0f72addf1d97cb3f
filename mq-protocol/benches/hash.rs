//! The ID-keyed tables' hasher: `FastState` (aHash with random keys, since
//! issue 14) next to the hand-written folded multiply it replaced and std's
//! SipHash-1-3, in the same run: insert 100 000 `MessageId`s of 10
//! producers, then look each up. Run: `cargo bench -p mq-protocol --bench hash`.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mq_protocol::hash::FastState;
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

criterion_group!(benches, bench);
criterion_main!(benches);
