//! Hostile input never makes the decoder allocate more than the maximum frame
//! size: a counting global allocator records the largest single request made
//! while decoding.

use bytes::BytesMut;
use mq_protocol::Codec;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio_util::codec::Decoder;

#[global_allocator]
static ALLOC: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;

#[test]
fn hostile_streams_stay_within_the_frame_limit() {
    const MAX: u32 = 4096;
    let seed: u64 = std::env::var("MQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (replay with MQ_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..2000 {
        // Length prefixes anywhere in u32, bodies of random garbage, fed in
        // small chunks as a slow attacker would.
        let mut stream = Vec::new();
        for _ in 0..rng.gen_range(1..5) {
            let len: u32 = if rng.gen_bool(0.5) {
                rng.gen()
            } else {
                rng.gen_range(0..MAX * 2)
            };
            stream.extend_from_slice(&len.to_be_bytes());
            let n = rng.gen_range(0..256);
            stream.extend((0..n).map(|_| rng.gen::<u8>()));
        }
        let mut codec = Codec::new(MAX);
        let mut buf = BytesMut::with_capacity(64);
        mq_test_alloc::reset_largest();
        'feed: for chunk in stream.chunks(rng.gen_range(1..64)) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let largest = mq_test_alloc::largest();
        // BytesMut may round a reservation up to twice its request.
        assert!(
            largest <= 2 * (MAX as usize + 4) + 256,
            "seed {seed}: an allocation of {largest} bytes for a {MAX}-byte limit"
        );
    }
}
