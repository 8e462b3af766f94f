//! The hung-thread report (Linux's khungtaskd, in spirit): a task looks every few
//! seconds for a user thread that has waited in a page fault, or in a memory call that
//! should never take long, for more than [`HUNG_AFTER_NS`]. It then logs every thread
//! that is waiting, with what for and for how long, and the state of reclaim and
//! swap, once per stretch. A report is a warning, not a failure: it names where a
//! stuck workload stands.

use crate::executor::scheduler;
use core::sync::atomic::{AtomicU64, Ordering};

/// How often the task looks.
const CHECK_EVERY_NS: u64 = 5_000_000_000;
/// A wait this long is reported.
const HUNG_AFTER_NS: u64 = 20_000_000_000;
/// After a report, the next comes no sooner than this.
const REPORT_GAP_NS: u64 = 60_000_000_000;

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
            scheduler().sleep(CHECK_EVERY_NS).await;
            let now = crate::time::now_ns();
            if last_report != 0 && now - last_report < REPORT_GAP_NS {
                continue;
            }
            if check() {
                last_report = now;
            }
        }
    }));
}

/// Whether a thread has been stuck long; if so, logs every waiting thread.
fn check() -> bool {
    let processes = crate::proc::all();
    let hung = processes.iter().any(|p| {
        p.threads.lock().iter().any(|t| {
            t.blocked().is_some_and(|(ns, on)| {
                ns > HUNG_AFTER_NS
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
        HUNG_AFTER_NS / 1_000_000_000
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
    true
}
