//! Memory readings: the counting allocator (`mq-test-alloc`, shared with
//! the workspace's memory tests) and the kernel's view of a process.
//!
//! Counting is off unless [`enable`] is called (only the `--scenario`
//! child processes do), so throughput runs pay one relaxed load per
//! allocation and nothing else.

/// Starts counting. Frees of blocks allocated before count negative, so
/// only differences between two [`live`] readings mean anything.
pub fn enable() {
    mq_test_alloc::set_enabled(true);
}

/// Stops counting (the throughput runs).
pub fn disable() {
    mq_test_alloc::set_enabled(false);
}

/// Requested bytes allocated and not yet freed while counting.
pub fn live() -> isize {
    mq_test_alloc::live()
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
