//! The counters, with the allocator installed.

#[global_allocator]
static ALLOC: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;

#[test]
fn counts_live_peak_largest_and_this_thread() {
    let base = mq_test_alloc::reset_peak();
    let t0 = mq_test_alloc::thread_live();
    mq_test_alloc::reset_largest();
    let v: Vec<u8> = Vec::with_capacity(1 << 20);
    assert_eq!(mq_test_alloc::thread_live() - t0, 1 << 20);
    assert!(mq_test_alloc::peak() - base >= 1 << 20);
    assert!(mq_test_alloc::largest() >= 1 << 20);
    let mut w: Vec<u8> = Vec::with_capacity(16);
    w.reserve_exact(4096); // realloc: counted as the new size
    assert_eq!(
        mq_test_alloc::thread_live() - t0,
        (1 << 20) + w.capacity() as isize
    );
    drop(v);
    drop(w);
    assert_eq!(mq_test_alloc::thread_live(), t0);
    // The high-water mark stays after the free.
    assert!(mq_test_alloc::peak() - base >= 1 << 20);
    // Each thread counts its own.
    let t1 = mq_test_alloc::thread_live();
    let (other, held) = std::thread::spawn(|| {
        let a = mq_test_alloc::thread_live();
        let v = Vec::<u8>::with_capacity(1 << 16);
        (mq_test_alloc::thread_live() - a, v)
    })
    .join()
    .expect("thread");
    assert_eq!(other, 1 << 16);
    // Spawning allocates a little here (the handle), but not the 64 KiB.
    assert!(mq_test_alloc::thread_live() - t1 < 1 << 16);
    drop(held);

    // Off, nothing is counted. (In this one test: the switch is
    // process-wide, so a parallel test would see it.)
    mq_test_alloc::set_enabled(false);
    let t0 = mq_test_alloc::thread_live();
    let v: Vec<u8> = Vec::with_capacity(8192);
    let during = mq_test_alloc::thread_live();
    drop(v);
    mq_test_alloc::set_enabled(true);
    assert_eq!(during, t0);
}
