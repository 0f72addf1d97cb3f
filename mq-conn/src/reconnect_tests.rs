use std::time::{Duration, Instant};

use mq_protocol::Backoff;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn backoff() -> Backoff {
    Backoff {
        initial: MS * 100,
        multiplier: 2.0,
        max: MS * 500,
        jitter: 0.0,
    }
}

#[test]
fn failed_rounds_back_off_exponentially_up_to_max_then_reset() {
    let mut rng = SmallRng::seed_from_u64(1);
    let t0 = Instant::now();
    let mut r = Reconnect::new(backoff());
    assert!(!r.poll_start(t0 + MS * 10_000), "idle until lost");
    r.on_lost(t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..5 {
        assert!(r.poll_start(now));
        assert!(r.is_running());
        let (_, d) = r.on_failed(now, rng.gen());
        delays.push(d);
        assert!(!r.poll_start(now + d - MS), "not before the delay");
        now += d;
    }
    assert_eq!(delays, [MS * 100, MS * 200, MS * 400, MS * 500, MS * 500]);
    assert_eq!(r.failed_rounds(), 5);
    assert!(r.poll_start(now));
    r.on_connected();
    assert_eq!(r.next_wake(), None);
    // The next loss starts over at once, and the first delay is `initial` again.
    r.on_lost(now);
    assert!(r.poll_start(now));
    assert_eq!(r.on_failed(now, rng.gen()), (1, MS * 100));
}

#[test]
fn a_loss_during_a_round_or_a_wait_changes_nothing() {
    let mut rng = SmallRng::seed_from_u64(1);
    let t0 = Instant::now();
    let mut r = Reconnect::new(backoff());
    r.on_lost(t0);
    assert!(r.poll_start(t0));
    r.on_lost(t0);
    assert!(!r.poll_start(t0), "one round at a time");
    let (_, d) = r.on_failed(t0, rng.gen());
    r.on_lost(t0);
    assert_eq!(r.next_wake(), Some(t0 + d), "the backoff is kept");
}
