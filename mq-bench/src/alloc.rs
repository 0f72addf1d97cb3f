//! A counting global allocator, so memory figures do not rest on RSS alone
//! (RSS moves in pages and keeps what the allocator cached).
//!
//! Counting is off unless [`enable`] is called (only the `--scenario`
//! child processes do), so throughput runs pay one relaxed load per
//! allocation and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Starts counting. Frees of blocks allocated before count negative, so
/// only differences between two [`live`] readings mean anything.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Requested bytes allocated and not yet freed since [`enable`].
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// A line of /proc/self/status in bytes (`VmRSS`, `VmHWM`), 0 if unknown.
pub fn proc_status_bytes(key: &str) -> u64 {
    status_in(
        &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
        key,
    )
}

/// The same line of another process's status (a child broker).
pub fn status_bytes(pid: u32, key: &str) -> u64 {
    status_in(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
        key,
    )
}

fn status_in(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
