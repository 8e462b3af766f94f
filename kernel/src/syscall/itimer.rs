//! Interval timers: `getitimer`, `setitimer` and `alarm` on the process's `ITIMER_REAL`
//! (wall time) and its CPU-time timers `ITIMER_VIRTUAL` and `ITIMER_PROF`
//! (`proc::itimer`).

use crate::{
    arch::uaccess::{read_user, write_user},
    proc::{itimer, thread::Thread},
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};

/// `ITIMER_REAL`: wall-clock time, SIGALRM.
const ITIMER_REAL: i32 = 0;
/// `ITIMER_VIRTUAL`: user time, SIGVTALRM.
const ITIMER_VIRTUAL: i32 = 1;
/// `ITIMER_PROF`: user and kernel time, SIGPROF.
const ITIMER_PROF: i32 = 2;
const NSEC_PER_USEC: u64 = 1_000;
const USEC_PER_SEC: u64 = 1_000_000;
/// The longest `alarm` (Linux caps the unsigned seconds at INT_MAX).
const ALARM_MAX_SECONDS: u64 = i32::MAX as u64;

/// Reads a `struct timeval` as nanoseconds: EINVAL for a negative or out-of-range one.
fn read_timeval(addr: u64) -> SysResult<u64> {
    let [sec, usec]: [u64; 2] = read_user(addr)?;
    let (sec, usec) = (sec as i64, usec as i64);
    if sec < 0 || !(0..USEC_PER_SEC as i64).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(USEC_PER_SEC * NSEC_PER_USEC)
        .saturating_add(usec as u64 * NSEC_PER_USEC))
}

/// A duration as a `struct timeval`, rounded up to a whole microsecond (an armed timer
/// never reads as 0, as on Linux).
fn timeval(ns: u64) -> [u64; 2] {
    let usec = ns.div_ceil(NSEC_PER_USEC);
    [usec / USEC_PER_SEC, usec % USEC_PER_SEC]
}

/// A setting as a `struct itimerval` (`it_interval` first, then `it_value`).
fn itimerval(value: itimer::TimerValue) -> [u64; 4] {
    let [isec, iusec] = timeval(value.interval_ns);
    let [vsec, vusec] = timeval(value.value_ns);
    [isec, iusec, vsec, vusec]
}

/// Which timer `which` names: `None` for the real one, the CPU clock for the others.
fn check_which(which: u64) -> SysResult<Option<itimer::CpuClock>> {
    match which as i32 {
        ITIMER_REAL => Ok(None),
        ITIMER_VIRTUAL => Ok(Some(itimer::CpuClock::Virtual)),
        ITIMER_PROF => Ok(Some(itimer::CpuClock::Prof)),
        _ => Err(Errno::EINVAL),
    }
}

fn current(thread: &Thread, which: Option<itimer::CpuClock>) -> itimer::TimerValue {
    match which {
        None => thread.process.real_timer.get(),
        Some(clock) => thread.process.cpu_timers.get(clock),
    }
}

/// `getitimer(which, curr_value)`.
pub fn getitimer(thread: &Arc<Thread>, which: u64, value: u64) -> SysResult {
    let which = check_which(which)?;
    write_user(value, &itimerval(current(thread, which)))?;
    Ok(0)
}

/// `setitimer(which, new_value, old_value)`: a NULL `new_value` disarms (as Linux
/// does); `old_value`, unless NULL, receives the replaced setting.
pub fn setitimer(thread: &Arc<Thread>, which: u64, new: u64, old: u64) -> SysResult {
    let which = check_which(which)?;
    let setting = if new == 0 {
        itimer::TimerValue::default()
    } else {
        itimer::TimerValue {
            interval_ns: read_timeval(new)?,
            value_ns: read_timeval(new + 16)?,
        }
    };
    if old != 0 {
        // Checked before anything changes: a bad pointer leaves the timer as it was.
        write_user(old, &itimerval(current(thread, which)))?;
    }
    let replaced = match which {
        None => itimer::set(&thread.process, setting),
        Some(clock) => thread.process.cpu_timers.set(clock, setting),
    };
    if old != 0 {
        write_user(old, &itimerval(replaced))?;
    }
    Ok(0)
}

/// `alarm(seconds)`: a one-shot SIGALRM in `seconds` (0 disarms); returns the seconds
/// the previous alarm had left, rounded to the nearest (at least 1 if one was armed).
pub fn alarm(thread: &Arc<Thread>, seconds: u64) -> SysResult {
    let seconds = (seconds & 0xffff_ffff).min(ALARM_MAX_SECONDS);
    let replaced = itimer::set(
        &thread.process,
        itimer::TimerValue {
            value_ns: seconds * USEC_PER_SEC * NSEC_PER_USEC,
            interval_ns: 0,
        },
    );
    let [mut sec, usec] = timeval(replaced.value_ns);
    if (sec == 0 && usec != 0) || usec >= USEC_PER_SEC / 2 {
        sec += 1;
    }
    Ok(sec)
}
