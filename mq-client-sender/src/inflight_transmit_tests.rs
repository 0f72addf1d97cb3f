//! The transmit queue of the core: what it keeps after a burst.

use std::time::{Duration, Instant};

use mq_protocol::Backoff;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::tests::msg;
use super::*;

fn core() -> Inflight<u32, SmallRng> {
    let cfg = CoreConfig {
        retry: Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            jitter: 0.0,
        },
        max_attempts: 3,
        send_timeout: None,
        window: 8,
    };
    Inflight::new(cfg, SmallRng::seed_from_u64(1))
}

#[test]
fn a_burst_grown_transmit_queue_gives_its_memory_back_once_empty() {
    let t0 = Instant::now();
    let mut c = core();
    c.on_connected(t0);
    // Not empty yet: a large queue keeps its capacity while it drains.
    for seq in 1..=5000 {
        c.insert(t0, msg(seq), 0).unwrap();
    }
    assert!(c.transmit.capacity() >= 5000);
    for _ in 0..4999 {
        assert!(c.poll_transmit(|_| ()).is_some());
    }
    assert!(c.transmit.capacity() >= 5000, "kept while one is queued");
    assert!(c.poll_transmit(|_| ()).is_some());
    assert!(
        c.transmit.capacity() >= 5000,
        "kept until a poll finds it empty"
    );
    assert!(c.poll_transmit(|_| ()).is_none());
    let cap = c.transmit.capacity();
    assert!(
        (TRANSMIT_KEEP..=2 * TRANSMIT_KEEP).contains(&cap),
        "trimmed to about {TRANSMIT_KEEP}: {cap}"
    );
    // A small queue is left alone.
    c.insert(t0, msg(5001), 0).unwrap();
    assert!(c.poll_transmit(|_| ()).is_some());
    assert!(c.poll_transmit(|_| ()).is_none());
    assert_eq!(c.transmit.capacity(), cap);
}
