//! Encode and decode throughput of `Message` frames with 128 B and 4 KiB
//! payloads. Run: `cargo bench -p mq-protocol --bench codec`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mq_protocol::{Codec, Frame, Headers, Message, MessageId};
use tokio_util::codec::{Decoder, Encoder};

const BATCH: u64 = 1000;

fn message(size: usize, seq: u64) -> Frame {
    Frame::Message(Message {
        id: MessageId::new(0xfeed, seq),
        attempt: 1,
        topic: "bench.topic".into(),
        headers: Headers::new(),
        payload: Bytes::from(vec![0xa5; size]),
    })
}

fn bench(c: &mut Criterion) {
    for size in [128usize, 4096] {
        let frames: Vec<Frame> = (0..BATCH).map(|i| message(size, i)).collect();
        let mut wire = BytesMut::new();
        let mut codec = Codec::default();
        for f in &frames {
            codec.encode(f, &mut wire).unwrap();
        }
        let wire = wire.freeze();

        let mut g = c.benchmark_group("frames");
        g.throughput(Throughput::Elements(BATCH));
        g.bench_with_input(BenchmarkId::new("encode", size), &frames, |b, frames| {
            let mut buf = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                buf.clear();
                for f in frames {
                    codec.encode(f, &mut buf).unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", size), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let mut n = 0;
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    criterion::black_box(f);
                    n += 1;
                }
                assert_eq!(n, BATCH);
            })
        });
        g.finish();

        let mut g = c.benchmark_group("bytes");
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", size), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    criterion::black_box(f);
                }
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
