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

/// Decoding a `Message` or a `Deliver` slices its topic and payload out of
/// the read buffer: a hundred decoded frames, all kept alive, hold no more
/// heap than the buffer's one shared header. A `String` topic would cost
/// at least 100 × its 40 bytes here.
#[test]
fn decoded_topics_and_payloads_are_slices_of_the_read_buffer() {
    use mq_protocol::{Deliver, Frame, Headers, Message, MessageId};
    use tokio_util::codec::Encoder;

    const N: usize = 100;
    let topic = "orders.created.europe.west.0123456789ab";
    let mut codec = Codec::default();
    let mut buf = BytesMut::new();
    for i in 0..N as u64 {
        let frame = if i % 2 == 0 {
            Frame::Message(Message {
                id: MessageId::new(7, i),
                attempt: 1,
                topic: topic.into(),
                headers: Headers::new(),
                payload: bytes::Bytes::from(vec![i as u8; 64]),
            })
        } else {
            Frame::Deliver(Deliver {
                sub_id: 1,
                id: MessageId::new(7, i),
                delivery_attempt: 1,
                topic: topic.into(),
                headers: Headers::new(),
                payload: bytes::Bytes::from(vec![i as u8; 64]),
            })
        };
        codec.encode(frame, &mut buf).expect("encodes");
    }
    let mut kept = Vec::with_capacity(N);
    let before = mq_test_alloc::thread_live();
    while let Some(f) = codec.decode(&mut buf).expect("decodes") {
        kept.push(f);
    }
    let grew = mq_test_alloc::thread_live() - before;
    assert_eq!(kept.len(), N);
    for (i, f) in kept.iter().enumerate() {
        let (t, p) = match f {
            Frame::Message(m) => (&m.topic, &m.payload),
            Frame::Deliver(d) => (&d.topic, &d.payload),
            other => panic!("frame {i} decoded as {}", other.name()),
        };
        assert_eq!(&**t, topic);
        assert_eq!(&p[..], &[i as u8; 64][..]);
    }
    assert!(
        grew < 256,
        "decoding {N} frames kept {grew} heap bytes: a topic or payload was copied"
    );
}
