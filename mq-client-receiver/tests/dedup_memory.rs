//! `DedupWindow::memory_bytes` is an upper bound of the heap the window
//! really uses: a counting global allocator measures the live bytes
//! (requested sizes, as the allocator sees them) allocated on this thread
//! while a window is filled, in the common shapes of traffic.
//!
//! Run with `--nocapture` to see the measured bytes per producer.

use std::time::{Duration, Instant};

use mq_client_receiver::{DedupConfig, DedupWindow};
use mq_protocol::MessageId;

#[global_allocator]
static GLOBAL: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;

/// Live bytes allocated minus freed by this thread.
fn live() -> isize {
    mq_test_alloc::thread_live()
}

/// Builds a window with `fill`, returns (real heap bytes, estimate, producers).
fn measure(config: DedupConfig, fill: impl FnOnce(&mut DedupWindow)) -> (usize, usize, usize) {
    // aHash (behind the window's `FastState`) allocates its process-wide
    // random seeds once, on first use, and never frees them: 88 bytes that
    // are not the window's. Make that first use happen here, outside the
    // count, so the test that runs first does not see them as a leak.
    let _ = mq_protocol::hash::FastState::default();
    let before = live();
    let mut w = DedupWindow::new(config);
    fill(&mut w);
    let real = usize::try_from(live() - before).unwrap_or(0);
    let estimate = w.memory_bytes();
    let producers = w.producer_count();
    drop(w);
    assert_eq!(live(), before, "the window leaked");
    (real, estimate, producers)
}

fn check(name: &str, config: DedupConfig, fill: impl FnOnce(&mut DedupWindow)) -> usize {
    let (real, estimate, producers) = measure(config, fill);
    let per = real / producers.max(1);
    println!(
        "{name}: real {real} B, estimate {estimate} B, {producers} producers, {per} B/producer"
    );
    assert!(
        estimate >= real,
        "{name}: estimate {estimate} B below the real {real} B"
    );
    per
}

#[test]
fn contiguous_producers_are_cheap_and_estimated_from_above() {
    let now = Instant::now();
    for producers in [1u64, 7, 100, 1_000, 10_000] {
        let per = check(
            &format!("{producers} producers x 1000 contiguous IDs"),
            DedupConfig::default(),
            |w| {
                for p in 0..producers {
                    for seq in 0..1_000 {
                        w.insert(now, MessageId::new(p, seq));
                    }
                }
            },
        );
        if producers >= 100 {
            // A 40-byte slot in an array at least 8/9 full, and a 5-byte
            // index bucket in a table at least 7/16 full: at most 57 bytes.
            assert!(per <= 64, "{per} B per contiguous producer");
        }
    }
    check(
        "1000 producers x 1000 contiguous IDs, interleaved",
        DedupConfig::default(),
        |w| {
            for seq in 0..1_000 {
                for p in 0..1_000 {
                    w.insert(now, MessageId::new(p, seq));
                }
            }
        },
    );
}

#[test]
fn gaps_evictions_and_expiry_are_estimated_from_above() {
    let now = Instant::now();
    // Every other ID processed here (the rest by another group member).
    check("100 producers x 500 gaps", DedupConfig::default(), |w| {
        for p in 0..100 {
            for seq in (0..1_000).step_by(2) {
                w.insert(now, MessageId::new(p, seq));
            }
        }
    });
    // Random order within a window, as redeliveries produce.
    check("10 producers, shuffled", DedupConfig::default(), |w| {
        let mut x = 12345u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.insert(now, MessageId::new(x % 10, (x >> 8) % 20_000));
        }
    });
    // Past every bound: the estimate still covers what is left.
    let tight = DedupConfig::default()
        .max_producers(300)
        .max_ranges_per_producer(50);
    check("bounded churn", tight, |w| {
        for p in 0..1_000 {
            for seq in (0..400).step_by(3) {
                w.insert(now, MessageId::new(p, seq));
            }
        }
    });
    // Mostly expired: capacity kept by the containers is counted.
    check("after expiry", DedupConfig::default(), |w| {
        for p in 0..5_000 {
            w.insert(now, MessageId::new(p, 1));
        }
        w.insert(now + Duration::from_secs(10), MessageId::new(1, 2));
        w.expire(now + Duration::from_secs(3601));
    });
}
