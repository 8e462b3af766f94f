//! The futex syscall: wait on and wake a 32-bit word.

use super::nr;
use super::time::Timespec;
use crate::syscall::*;
use crate::Errno;
use core::sync::atomic::AtomicU32;

/// `FUTEX_WAIT`.
pub const FUTEX_WAIT: u32 = 0;
/// `FUTEX_WAKE`.
pub const FUTEX_WAKE: u32 = 1;
/// `FUTEX_PRIVATE_FLAG`: the word is private to this address space.
pub const FUTEX_PRIVATE_FLAG: u32 = 128;

/// Sleeps while `*word == expected`, for at most `timeout` (relative) if given.
/// Returns `Err(EAGAIN)` when the word already differs, `Err(ETIMEDOUT)` on timeout,
/// `Err(EINTR)` when a signal interrupted the wait.
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<&Timespec>,
    private: bool,
) -> Result<(), Errno> {
    let op = FUTEX_WAIT | if private { FUTEX_PRIVATE_FLAG } else { 0 };
    let ts = timeout.map_or(0, |t| t as *const Timespec as usize);
    // SAFETY: `word` is a valid aligned u32 the kernel only reads; `ts` is null or a
    // valid Timespec.
    let r = unsafe {
        syscall4(
            nr::FUTEX,
            word.as_ptr() as usize,
            op as usize,
            expected as usize,
            ts,
        )
    };
    Errno::result(r).map(|_| ())
}

/// Wakes at most `count` waiters on `word`; returns how many were woken.
pub fn futex_wake(word: &AtomicU32, count: u32, private: bool) -> Result<usize, Errno> {
    let op = FUTEX_WAKE | if private { FUTEX_PRIVATE_FLAG } else { 0 };
    // SAFETY: `word` is a valid aligned u32; FUTEX_WAKE does not touch its contents.
    Errno::result(unsafe {
        syscall3(
            nr::FUTEX,
            word.as_ptr() as usize,
            op as usize,
            count as usize,
        )
    })
}
