//! Cost of the dedup window on the receive path: one `contains` per
//! delivery and one `insert` per ack.

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mq_client_receiver::{DedupConfig, DedupWindow};
use mq_protocol::MessageId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn in_order(c: &mut Criterion) {
    c.bench_function("insert 10k in order, one producer", |b| {
        let now = Instant::now();
        b.iter(|| {
            let mut w = DedupWindow::new(DedupConfig::default());
            for seq in 0..10_000 {
                w.insert(now, MessageId::new(1, seq));
            }
            black_box(w.total_ranges())
        })
    });
}

fn gappy(c: &mut Criterion) {
    let seed = 42;
    println!("seed {seed}");
    c.bench_function("insert 10k with gaps, 100 producers", |b| {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let ids: Vec<MessageId> = (0..10_000)
            .map(|_| MessageId::new(rng.gen_range(0..100), rng.gen_range(0..5_000)))
            .collect();
        b.iter(|| {
            let mut w = DedupWindow::new(DedupConfig::default());
            for &id in &ids {
                w.insert(now, id);
            }
            black_box(w.memory_bytes())
        })
    });
}

fn lookups(c: &mut Criterion) {
    let now = Instant::now();
    // 1 024 000 ranges: past the default `max_ranges`, so raise it.
    let config = DedupConfig::default().max_ranges(1 << 20);
    let mut w = DedupWindow::new(config);
    for p in 0..1_000 {
        for seq in (0..2_048).step_by(2) {
            w.insert(now, MessageId::new(p, seq));
        }
    }
    c.bench_function("contains, 1k producers x 1k ranges", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(7919);
            black_box(w.contains(MessageId::new(i % 1_000, i % 2_048)))
        })
    });
}

criterion_group!(benches, in_order, gappy, lookups);
criterion_main!(benches);
