//! Clocks and sleeping: clock_gettime, nanosleep.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// `CLOCK_REALTIME`.
pub const CLOCK_REALTIME: i32 = 0;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: i32 = 1;
/// `CLOCK_PROCESS_CPUTIME_ID`.
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
/// `CLOCK_THREAD_CPUTIME_ID`.
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

impl Timespec {
    /// A timespec for `ns` nanoseconds.
    pub const fn from_ns(ns: u64) -> Timespec {
        Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// The value in nanoseconds (negative values saturate to 0).
    pub const fn as_ns(&self) -> u64 {
        if self.tv_sec < 0 {
            return 0;
        }
        self.tv_sec as u64 * 1_000_000_000 + self.tv_nsec as u64
    }
}

/// Reads clock `clock`.
pub fn clock_gettime(clock: i32) -> Result<Timespec, Errno> {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid, writable Timespec.
    let r = unsafe {
        syscall2(
            nr::CLOCK_GETTIME,
            clock as usize,
            &mut ts as *mut Timespec as usize,
        )
    };
    Errno::result(r).map(|_| ts)
}

/// Sleeps for `req`; `Err(EINTR)` if a signal handler interrupted it.
pub fn nanosleep(req: &Timespec) -> Result<(), Errno> {
    // SAFETY: `req` is a valid Timespec; the remainder pointer is null.
    Errno::result(unsafe { syscall2(nr::NANOSLEEP, req as *const Timespec as usize, 0) })
        .map(|_| ())
}
