//! `getrusage` and `times`: the counters of `proc::rusage`.

use crate::{
    arch::uaccess::write_user,
    proc::{
        rusage::{ProcessUsage, Totals},
        thread::Thread,
    },
};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;
/// `USER_HZ`: the clock ticks `times` counts in.
const TICKS_PER_SEC: u64 = 100;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The calling process's counters: its live threads' and its exited threads'.
fn process_totals(thread: &Thread) -> Totals {
    let process = &thread.process;
    process
        .threads
        .lock()
        .iter()
        .fold(process.usage.exited_threads.totals(), |sum, t| {
            sum.plus(t.usage.totals())
        })
}

/// The calling process's peak resident size in KiB.
fn own_max_rss_kib(thread: &Thread) -> u64 {
    let usage: &ProcessUsage = &thread.process.usage;
    let now = thread.process.address_space().mm().peak_resident_pages() * 4;
    usage.max_rss_kib.load(Ordering::Relaxed).max(now)
}

/// `getrusage(who, usage)`: `RUSAGE_SELF`, `RUSAGE_CHILDREN` (reaped descendants) or
/// `RUSAGE_THREAD`. The fields the kernel does not count (block I/O, IPC, context
/// switches, signals) are 0.
pub fn getrusage(thread: &Arc<Thread>, who: u64, usage: u64) -> SysResult {
    let (totals, max_rss_kib) = match who as i32 {
        RUSAGE_SELF => (process_totals(thread), own_max_rss_kib(thread)),
        RUSAGE_THREAD => (thread.usage.totals(), own_max_rss_kib(thread)),
        RUSAGE_CHILDREN => {
            let usage = &thread.process.usage;
            (
                usage.children.totals(),
                usage.children_max_rss_kib.load(Ordering::Relaxed),
            )
        }
        _ => return Err(Errno::EINVAL),
    };
    let timeval = |ns: u64| [ns / NSEC_PER_SEC, ns % NSEC_PER_SEC / 1000];
    let [user_sec, user_usec] = timeval(totals.user_ns);
    let [sys_sec, sys_usec] = timeval(totals.system_ns);
    let mut fields = [0u64; 18];
    fields[..4].copy_from_slice(&[user_sec, user_usec, sys_sec, sys_usec]);
    fields[4] = max_rss_kib; // ru_maxrss
    fields[8] = totals.minor_faults; // ru_minflt
    fields[9] = totals.major_faults; // ru_majflt
    write_user(usage, &fields)?;
    Ok(0)
}

/// `times(buf)`: the process's and its reaped children's CPU time in clock ticks
/// (`buf` may be NULL); returns the ticks since boot.
pub fn times(thread: &Arc<Thread>, buf: u64) -> SysResult {
    let ticks = |ns: u64| ns / (NSEC_PER_SEC / TICKS_PER_SEC);
    if buf != 0 {
        let own = process_totals(thread);
        let children = thread.process.usage.children.totals();
        write_user(
            buf,
            &[
                ticks(own.user_ns),
                ticks(own.system_ns),
                ticks(children.user_ns),
                ticks(children.system_ns),
            ],
        )?;
    }
    Ok(ticks(crate::time::now_ns()))
}
