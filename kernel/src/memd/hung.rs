//! The hung-thread report (Linux's khungtaskd, in spirit): a task looks every few
//! seconds for a user thread that has waited in a page fault, or in a memory call that
//! should never take long, for more than `kernel.hung_task_timeout_secs` (120 s, as
//! Linux; 0 turns the report off). It then logs every thread that is waiting, with
//! what for and for how long, and the state of reclaim and swap, once per stretch. A
//! report is a warning, not a failure: it names where a stuck workload stands.

use crate::executor::scheduler;
use crate::tunable::{keep, key, Key, KeyKind};
use core::sync::atomic::{AtomicU64, Ordering};

/// How often the task looks at most (and at least twice per timeout).
const CHECK_EVERY_NS: u64 = 5_000_000_000;
/// After a report, the next comes no sooner than this many timeouts.
const REPORT_GAP_TIMEOUTS: u64 = 3;
const NS_PER_SEC: u64 = 1_000_000_000;

/// `kernel.hung_task_timeout_secs`: a wait this long is reported (0: never).
pub static HUNG_TASK_TIMEOUT_SECS: Key = key(
    "kernel.hung_task_timeout_secs",
    &["/proc/sys/kernel/hung_task_timeout_secs"],
    KeyKind::Int {
        min: 0,
        max: 86_400,
    },
    120,
    keep,
);

/// System calls that wait only for memory or I/O (never for another process or a
/// timer): mmap, mprotect, munmap, brk, mremap, msync, madvise, swapon, swapoff,
/// process_madvise, process_mrelease.
const MEMORY_CALLS: [u64; 11] = [9, 10, 11, 12, 25, 26, 28, 167, 168, 440, 448];

/// Reports made since boot.
pub static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Starts the task.
pub fn start() {
    drop(scheduler().spawn(async {
        let mut last_report = 0u64;
        loop {
            let timeout_ns = HUNG_TASK_TIMEOUT_SECS.get() * NS_PER_SEC;
            let every = if timeout_ns == 0 {
                CHECK_EVERY_NS
            } else {
                CHECK_EVERY_NS.min(timeout_ns / 2)
            };
            scheduler().sleep(every).await;
            let now = crate::time::now_ns();
            if timeout_ns == 0
                || (last_report != 0 && now - last_report < REPORT_GAP_TIMEOUTS * timeout_ns)
            {
                continue;
            }
            if check(timeout_ns) {
                last_report = now;
            }
        }
    }));
}

/// Whether a thread has been stuck over `timeout_ns`; if so, logs every waiting thread.
fn check(timeout_ns: u64) -> bool {
    let processes = crate::proc::all();
    let hung = processes.iter().any(|p| {
        p.threads.lock().iter().any(|t| {
            t.blocked().is_some_and(|(ns, on)| {
                ns > timeout_ns
                    && (on.is_fault() || MEMORY_CALLS.iter().any(|&nr| on.is_syscall(nr)))
            })
        })
    });
    if !hung {
        return false;
    }
    REPORTS.fetch_add(1, Ordering::Relaxed);
    log::warn!(
        "hung threads: a thread has waited over {} s",
        timeout_ns / NS_PER_SEC
    );
    for p in &processes {
        for t in p.threads.lock().iter() {
            if let Some((ns, on)) = t.blocked() {
                log::warn!(
                    "  pid {} tid {} ({}): {} ms in {}",
                    p.pid,
                    t.tid,
                    p.name.lock(),
                    ns / 1_000_000,
                    on
                );
            }
        }
    }
    log::warn!("  {}", super::reclaim::describe());
    let (total, free) = super::swap::swap().totals();
    log::warn!("  swap: {total} pages, {free} free");
    for d in crate::virtio_blk::devices() {
        log::warn!(
            "  {}: {} requests in flight, {} finished but not collected",
            d.name(),
            d.counters().in_flight.load(Ordering::Relaxed),
            d.uncollected()
        );
    }
    true
}
