//! The timer watchdog: the task on each CPU looks, four times a second, at the next CPU
//! (each CPU is watched by one other) for one that has stayed in user mode far longer
//! than a time slice: in user mode at every look, with no return to the kernel in
//! between. Such a CPU has lost its preemption timer: nothing else on it runs again. The
//! watchdog reports it (the guest tests fail on the report) and kicks it with a wake
//! IPI, which makes its thread yield. The watched CPU pays one counter update per
//! return from user mode, and no clock read.

#![deny(unsafe_code)]

use crate::arch::{apic, percpu};
use crate::executor::scheduler;
use core::sync::atomic::{AtomicU64, Ordering};
use sched::{CpuId, MAX_CPUS};

/// How often each watchdog task looks.
const CHECK_EVERY_NS: u64 = 250_000_000;

/// User mode this long without a trap means the timer was lost (a slice is 10 ms).
const STUCK_AFTER_NS: u64 = 2_000_000_000;

/// Per watched CPU: its return count at the last look, and since when (ns) the watchdog
/// has seen that same count with the CPU in user mode (0: it was not).
struct Seen {
    returns: AtomicU64,
    since_ns: AtomicU64,
    reported: AtomicU64,
}

static SEEN: [Seen; MAX_CPUS] = [const {
    Seen {
        returns: AtomicU64::new(0),
        since_ns: AtomicU64::new(0),
        reported: AtomicU64::new(u64::MAX),
    }
}; MAX_CPUS];

/// Stalls found since boot.
pub static STALLS: AtomicU64 = AtomicU64::new(0);

/// Starts a watchdog task on each of the first `cpus` CPUs, each watching the next one
/// (with one CPU there is nothing to watch from elsewhere).
pub fn start(cpus: u32) {
    if cpus < 2 {
        return;
    }
    for cpu in 0..cpus {
        let watched = CpuId((cpu + 1) % cpus);
        drop(scheduler().spawn_on(CpuId(cpu), async move {
            loop {
                scheduler().sleep(CHECK_EVERY_NS).await;
                check(watched);
            }
        }));
    }
}

fn check(cpu: CpuId) {
    let Some(block) = percpu::get(cpu) else {
        return;
    };
    let seen = &SEEN[cpu.index()];
    let now = crate::time::now_ns();
    let in_user = block.user_context.load(Ordering::Relaxed) != 0;
    let returns = block.user_returns.load(Ordering::Relaxed);
    if !in_user || returns != seen.returns.load(Ordering::Relaxed) {
        seen.returns.store(returns, Ordering::Relaxed);
        seen.since_ns
            .store(if in_user { now } else { 0 }, Ordering::Relaxed);
        return;
    }
    let since = seen.since_ns.load(Ordering::Relaxed);
    if since == 0 {
        seen.since_ns.store(now, Ordering::Relaxed);
        return;
    }
    if now.saturating_sub(since) < STUCK_AFTER_NS
        || seen.reported.swap(returns, Ordering::Relaxed) == returns
    {
        return; // not long yet, or this stretch is already reported (and kicked)
    }
    STALLS.fetch_add(1, Ordering::Relaxed);
    log::error!(
        "watchdog: {cpu} has run user mode for {} ms without a trap (timer armed for {} ms, timer interrupts {}); kicking it",
        (now - since) / 1_000_000,
        apic::armed_deadline(cpu.index()) / 1_000_000,
        block.timer_interrupts.load(Ordering::Relaxed),
    );
    apic::send_ipi(block.apic_id, drivers::apic::vectors::WAKE);
}
