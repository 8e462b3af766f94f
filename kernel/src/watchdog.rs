//! The timer watchdog: one task per CPU looks, four times a second, for a CPU that has
//! stayed in user mode far longer than a time slice. Such a CPU has lost its preemption
//! timer: nothing else on it runs again. The watchdog reports it (the guest tests fail on
//! the report) and kicks it with a wake IPI, which makes its thread yield.

use crate::arch::{apic, percpu};
use crate::executor::scheduler;
use core::sync::atomic::{AtomicU64, Ordering};
use sched::{CpuId, MAX_CPUS};

/// How often each watchdog task looks.
const CHECK_EVERY_NS: u64 = 250_000_000;

/// User mode this long without a trap means the timer was lost (a slice is 10 ms).
const STUCK_AFTER_NS: u64 = 2_000_000_000;

/// Per CPU: the user-mode entry time already reported, so one stall is reported once.
static REPORTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Stalls found since boot.
pub static STALLS: AtomicU64 = AtomicU64::new(0);

/// Starts a watchdog task on each of the first `cpus` CPUs (each watches the others,
/// so a stuck CPU is seen by any CPU that is not).
pub fn start(cpus: u32) {
    for cpu in 0..cpus {
        drop(scheduler().spawn_on(CpuId(cpu), async move {
            loop {
                scheduler().sleep(CHECK_EVERY_NS).await;
                check_others(CpuId(cpu), cpus);
            }
        }));
    }
}

fn check_others(me: CpuId, cpus: u32) {
    let now = crate::time::now_ns();
    for other in (0..cpus).map(CpuId).filter(|&c| c != me) {
        let Some(block) = percpu::get(other) else {
            continue;
        };
        let since = block.user_since_ns.load(Ordering::Relaxed);
        if since == 0 || now.saturating_sub(since) < STUCK_AFTER_NS {
            continue;
        }
        if REPORTED[other.index()].swap(since, Ordering::Relaxed) == since {
            continue; // already reported (and kicked) for this stretch
        }
        STALLS.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "watchdog: {other} has run user mode for {} ms without a trap (timer armed for {} ms, timer interrupts {}); kicking it",
            (now - since) / 1_000_000,
            apic::armed_deadline(other.index()) / 1_000_000,
            block.timer_interrupts.load(Ordering::Relaxed),
        );
        apic::send_ipi(block.apic_id, drivers::apic::vectors::WAKE);
    }
}
