//! The counting global allocator shared by the workspace's memory tests
//! (the decoder's allocation bound, the receiver's dedup bytes, the
//! broker's hostile-peer heap bounds) and by `mq-bench`.
//!
//! It forwards every call to [`System`] and, while enabled, keeps:
//!
//! * the process's live heap bytes ([`live`]) and their high-water mark
//!   since the last [`reset_peak`] ([`peak`]);
//! * the largest single request since the last [`reset_largest`]
//!   ([`largest`]);
//! * the live bytes allocated minus freed by the calling thread
//!   ([`thread_live`]): figures that other threads (a test harness, a
//!   runtime's workers) cannot disturb.
//!
//! Sizes are the requested ones (`Layout::size`), as the allocator sees
//! them, not what the system allocator rounds them up to. Blocks allocated
//! before counting started and freed after make the counters move down, so
//! only differences between two readings mean anything.
//!
//! # Examples
//!
//! ```
//! use mq_test_alloc::CountingAlloc;
//!
//! // In a test binary or a bench: `#[global_allocator]`.
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! let before = mq_test_alloc::thread_live();
//! let v: Vec<u8> = Vec::with_capacity(1000);
//! // Only counted when `CountingAlloc` is the global allocator.
//! let _grew = mq_test_alloc::thread_live() - before;
//! drop(v);
//! ```
#![warn(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// The allocator; install it with `#[global_allocator]`.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: mq_test_alloc::CountingAlloc = mq_test_alloc::CountingAlloc;
/// ```
pub struct CountingAlloc;

static ENABLED: AtomicBool = AtomicBool::new(true);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_LIVE: Cell<isize> = const { Cell::new(0) };
}

fn grew(size: usize) {
    if !ENABLED.load(Relaxed) {
        return;
    }
    let d = size as isize;
    let now = LIVE.fetch_add(d, Relaxed) + d;
    PEAK.fetch_max(now, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
    // `try_with`: the slot may be gone while the thread exits.
    let _ = THREAD_LIVE.try_with(|l| l.set(l.get() + d));
}

fn shrank(size: usize) {
    if !ENABLED.load(Relaxed) {
        return;
    }
    let d = size as isize;
    LIVE.fetch_sub(d, Relaxed);
    let _ = THREAD_LIVE.try_with(|l| l.set(l.get() - d));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics and a thread-local `Cell`, which do not
// allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Turns counting on or off for the whole process (on at start). Off, each
/// call costs one relaxed load: a benchmark measuring speed turns it off.
///
/// # Examples
///
/// ```
/// mq_test_alloc::set_enabled(false);
/// mq_test_alloc::set_enabled(true);
/// ```
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Live heap bytes of the process (allocated minus freed while counting).
///
/// # Examples
///
/// ```
/// let _bytes: isize = mq_test_alloc::live();
/// ```
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// The highest [`live`] since the last [`reset_peak`].
///
/// # Examples
///
/// ```
/// let base = mq_test_alloc::reset_peak();
/// assert!(mq_test_alloc::peak() >= base);
/// ```
pub fn peak() -> isize {
    PEAK.load(Relaxed)
}

/// Starts a new high-water mark at the live heap now, and returns it.
///
/// # Examples
///
/// ```
/// let base = mq_test_alloc::reset_peak();
/// // ... the work measured ...
/// let grew = mq_test_alloc::peak() - base;
/// assert!(grew >= 0);
/// ```
pub fn reset_peak() -> isize {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

/// The largest single allocation request since the last
/// [`reset_largest`].
///
/// # Examples
///
/// ```
/// mq_test_alloc::reset_largest();
/// let _largest: usize = mq_test_alloc::largest();
/// ```
pub fn largest() -> usize {
    LARGEST.load(Relaxed)
}

/// Forgets the largest request seen so far.
///
/// # Examples
///
/// ```
/// mq_test_alloc::reset_largest();
/// ```
pub fn reset_largest() {
    LARGEST.store(0, Relaxed);
}

/// Live bytes allocated minus freed by the calling thread.
///
/// # Examples
///
/// ```
/// let _mine: isize = mq_test_alloc::thread_live();
/// ```
pub fn thread_live() -> isize {
    THREAD_LIVE.with(Cell::get)
}
