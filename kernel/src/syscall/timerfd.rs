//! `timerfd_create`, `timerfd_settime`, `timerfd_gettime` (the file is
//! `vfs::timerfd::TimerFd`).

use super::{fs::file_of, time};
use crate::{
    arch::uaccess::write_user,
    proc::thread::Thread,
    vfs::{
        flags::{O_CLOEXEC, O_NONBLOCK, O_RDWR},
        timerfd::{TimerFd, TimerSetting},
        OpenFile,
    },
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_BOOTTIME: u64 = 7;
/// `CLOCK_REALTIME_ALARM` and `CLOCK_BOOTTIME_ALARM`: wake a suspended system, which
/// needs CAP_WAKE_ALARM on Linux; this kernel has no suspend and grants it to no one.
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_BOOTTIME_ALARM: u64 = 9;
const TFD_TIMER_ABSTIME: u64 = 1;
const TFD_TIMER_CANCEL_ON_SET: u64 = 2;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// `timerfd_create(clockid, flags)`.
pub fn timerfd_create(thread: &Thread, clock: u64, flags: u64) -> SysResult {
    let flags = flags as u32;
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let realtime = match clock & 0xffff_ffff {
        CLOCK_REALTIME => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME => false,
        CLOCK_REALTIME_ALARM | CLOCK_BOOTTIME_ALARM => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    let file = OpenFile::new(
        Arc::new(TimerFd::new(realtime)),
        O_RDWR | (flags & O_NONBLOCK),
        None,
    );
    thread
        .process
        .files
        .lock()
        .insert(file, flags & O_CLOEXEC != 0)
}

/// The timerfd behind `fd` (EINVAL for another kind of file, EBADF for no file).
fn timer_of(thread: &Thread, fd: u64) -> SysResult<Arc<OpenFile>> {
    let open = file_of(thread, fd)?;
    if open.file().as_any().downcast_ref::<TimerFd>().is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(open)
}

/// A setting as a `struct itimerspec` (`it_interval`, then `it_value`).
fn itimerspec(s: TimerSetting) -> [u64; 4] {
    [
        s.interval_ns / NSEC_PER_SEC,
        s.interval_ns % NSEC_PER_SEC,
        s.value_ns / NSEC_PER_SEC,
        s.value_ns % NSEC_PER_SEC,
    ]
}

/// `timerfd_settime(fd, flags, new_value, old_value)`.
pub fn timerfd_settime(thread: &Thread, fd: u64, flags: u64, new: u64, old: u64) -> SysResult {
    let open = timer_of(thread, fd)?;
    let timer = open
        .file()
        .as_any()
        .downcast_ref::<TimerFd>()
        .ok_or(Errno::EINVAL)?;
    let flags = flags & 0xffff_ffff;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0
        || (flags & TFD_TIMER_CANCEL_ON_SET != 0
            && (flags & TFD_TIMER_ABSTIME == 0 || !timer.is_realtime()))
    {
        return Err(Errno::EINVAL);
    }
    let interval = time::read_timespec(new)?;
    let value = time::read_timespec(new + 16)?;
    if old != 0 {
        // Checked before anything changes: a bad pointer leaves the timer as it was.
        write_user(old, &itimerspec(timer.get()))?;
    }
    let deadline = if value == 0 {
        0
    } else if flags & TFD_TIMER_ABSTIME != 0 {
        // An absolute time already past expires at once (one expiry, then periodic).
        time::clock_to_monotonic(timer.is_realtime(), value).max(1)
    } else {
        crate::time::now_ns().saturating_add(value)
    };
    let replaced = timer.set(deadline, interval);
    if old != 0 {
        write_user(old, &itimerspec(replaced))?;
    }
    Ok(0)
}

/// `timerfd_gettime(fd, curr_value)`.
pub fn timerfd_gettime(thread: &Thread, fd: u64, curr: u64) -> SysResult {
    let open = timer_of(thread, fd)?;
    let timer = open
        .file()
        .as_any()
        .downcast_ref::<TimerFd>()
        .ok_or(Errno::EINVAL)?;
    write_user(curr, &itimerspec(timer.get()))?;
    Ok(0)
}
