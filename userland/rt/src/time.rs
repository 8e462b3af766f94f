//! Monotonic time for benchmarks and timeouts.

use crate::sys::time::{clock_gettime, nanosleep, Timespec, CLOCK_MONOTONIC};

/// Nanoseconds on `CLOCK_MONOTONIC` (0 if the clock is unavailable).
pub fn monotonic_ns() -> u64 {
    clock_gettime(CLOCK_MONOTONIC)
        .map(|t| t.as_ns())
        .unwrap_or(0)
}

/// Sleeps about `ms` milliseconds (an interrupted sleep returns early).
pub fn sleep_ms(ms: u64) {
    let _ = nanosleep(&Timespec::from_ns(ms * 1_000_000));
}

/// `count` events over `elapsed_ns`, as events per second (0 for no time).
pub fn per_second(count: u64, elapsed_ns: u64) -> u64 {
    if elapsed_ns == 0 {
        return 0;
    }
    ((count as u128 * 1_000_000_000) / elapsed_ns as u128) as u64
}
