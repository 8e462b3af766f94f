//! Clock syscalls: clock_gettime/getres, gettimeofday, time, nanosleep, clock_nanosleep.

use super::{wait, Outcome};
use crate::{
    arch::uaccess::{read_user, write_user},
    executor::scheduler,
    proc::thread::Thread,
    time,
};
use alloc::sync::Arc;
use core::{future::poll_fn, task::Poll};
use errno::{Errno, SysResult};

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_BOOTTIME: u64 = 7;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Reads a `struct timespec` as nanoseconds, rejecting invalid ones (EINVAL).
pub fn read_timespec(addr: u64) -> SysResult<u64> {
    let [sec, nsec]: [u64; 2] = read_user(addr)?;
    if (sec as i64) < 0 || nsec >= NSEC_PER_SEC {
        return Err(Errno::EINVAL);
    }
    Ok(sec.saturating_mul(NSEC_PER_SEC).saturating_add(nsec))
}

fn write_timespec(addr: u64, ns: u64) -> SysResult<()> {
    write_user(addr, &[ns / NSEC_PER_SEC, ns % NSEC_PER_SEC])
}

fn clock_now(clock: u64) -> SysResult<u64> {
    match clock {
        CLOCK_REALTIME | 5 => Ok(time::realtime_ns()),
        CLOCK_MONOTONIC | 2..=4 | 6 | CLOCK_BOOTTIME => Ok(time::now_ns()),
        _ => Err(Errno::EINVAL),
    }
}

/// Converts an absolute time on CLOCK_REALTIME (`realtime`) or CLOCK_MONOTONIC to the
/// monotonic clock.
pub fn clock_to_monotonic(realtime: bool, abs_ns: u64) -> u64 {
    if realtime {
        abs_ns.saturating_sub(time::realtime_ns() - time::now_ns())
    } else {
        abs_ns
    }
}

pub fn clock_gettime(clock: u64, tp: u64) -> SysResult {
    let now = clock_now(clock)?;
    write_timespec(tp, now)?;
    Ok(0)
}

pub fn clock_getres(clock: u64, res: u64) -> SysResult {
    clock_now(clock)?;
    if res != 0 {
        write_timespec(res, 1)?;
    }
    Ok(0)
}

pub fn gettimeofday(tv: u64, tz: u64) -> SysResult {
    if tv != 0 {
        let now = time::realtime_ns();
        write_user(tv, &[now / NSEC_PER_SEC, (now % NSEC_PER_SEC) / 1000])?;
    }
    if tz != 0 {
        // UTC: tz_minuteswest and tz_dsttime (two ints) are 0.
        write_user(tz, &0u64)?;
    }
    Ok(0)
}

/// `time(2)`: seconds since the epoch, also stored at `tloc` unless it is NULL.
pub fn time(tloc: u64) -> SysResult {
    let secs = time::realtime_ns() / NSEC_PER_SEC;
    if tloc != 0 {
        write_user(tloc, &secs)?;
    }
    Ok(secs)
}

async fn sleep_until(thread: Arc<Thread>, deadline: u64, rem: u64) -> SysResult {
    thread.clear_interrupt();
    let mut timer = scheduler().sleep_until(deadline);
    let interrupted = poll_fn(|cx| {
        thread.interrupt_waker.register(cx.waker());
        if core::pin::Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        if thread.is_interrupted() {
            return Poll::Ready(true);
        }
        Poll::Pending
    })
    .await;
    if interrupted {
        if rem != 0 {
            write_timespec(rem, deadline.saturating_sub(time::now_ns()))?;
        }
        return Err(Errno::EINTR);
    }
    Ok(0)
}

pub fn nanosleep(thread: &Arc<Thread>, req: u64, rem: u64) -> Outcome {
    let ns = match read_timespec(req) {
        Ok(ns) => ns,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    wait(sleep_until(
        thread.clone(),
        time::now_ns().saturating_add(ns),
        rem,
    ))
}

pub fn clock_nanosleep(
    thread: &Arc<Thread>,
    clock: u64,
    flags: u64,
    req: u64,
    rem: u64,
) -> Outcome {
    const TIMER_ABSTIME: u64 = 1;
    if let Err(e) = clock_now(clock) {
        return Err::<u64, _>(e).into();
    }
    let ns = match read_timespec(req) {
        Ok(ns) => ns,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    let deadline = if flags & TIMER_ABSTIME != 0 {
        clock_to_monotonic(clock == CLOCK_REALTIME, ns)
    } else {
        time::now_ns().saturating_add(ns)
    };
    wait(sleep_until(
        thread.clone(),
        deadline,
        if flags & TIMER_ABSTIME != 0 { 0 } else { rem },
    ))
}

use core::future::Future as _;
