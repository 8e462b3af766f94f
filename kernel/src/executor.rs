//! The kernel's binding of the per-CPU executor: CPU identity from GS, kicks as wake IPIs,
//! time from the TSC, and idle as `sti; hlt` with the APIC timer armed for the next deadline.

#![deny(unsafe_code)]

use crate::{
    arch::{apic, percpu},
    time,
};
use conquer_once::spin::OnceCell;
use core::sync::atomic::Ordering;
use drivers::apic::vectors;
use sched::{CpuId, Platform, Scheduler};

/// How long an idle CPU polls its queues before halting.
const IDLE_POLL_NS: u64 = 50_000;

/// The machine as the executor sees it.
pub struct KernelPlatform;

impl Platform for KernelPlatform {
    fn current_cpu(&self) -> CpuId {
        percpu::current_cpu()
    }

    fn kick(&self, cpu: CpuId) {
        if let Some(target) = percpu::get(cpu) {
            // A CPU still polling sees its idle bit cleared by itself; only a halted (or
            // about to halt) CPU needs the IPI. See `idle` for why this loses no wake-up.
            if target.idle_polling.load(Ordering::SeqCst) {
                return;
            }
            apic::send_ipi(target.apic_id, vectors::WAKE);
        }
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn idle(&self, deadline_ns: Option<u64>, still_idle: &dyn Fn() -> bool) {
        // Poll briefly before halting: a wake that arrives within the window is seen
        // without waiting for the IPI to bring a halted vCPU back (the common case for
        // ping-pong between threads on two CPUs).
        //
        // While `idle_polling` is set, kickers skip the IPI. The flag is cleared (SeqCst)
        // before the final `still_idle` check: a kicker that saw it set had already claimed
        // our idle bit, so that check sees the claim and we do not halt.
        // Idle time zeroes huge pages for later faults (stopping as work arrives).
        while crate::mem::thp_pool::idle_work(still_idle) {
            if !still_idle() {
                return;
            }
        }
        let cpu = percpu::current();
        cpu.idle_polling.store(true, Ordering::SeqCst);
        let poll_until = time::now_ns() + IDLE_POLL_NS;
        while time::now_ns() < poll_until {
            if !still_idle() {
                cpu.idle_polling.store(false, Ordering::SeqCst);
                return;
            }
            core::hint::spin_loop();
        }
        cpu.idle_polling.store(false, Ordering::SeqCst);
        x86_64::instructions::interrupts::disable();
        if !still_idle() {
            x86_64::instructions::interrupts::enable();
            return;
        }
        // No deadline: leave any armed timer alone (its expiry is a harmless wake-up).
        if let Some(deadline) = deadline_ns {
            apic::arm_timer_by(deadline);
        }
        // `sti; hlt` back to back: an interrupt pending since the `cli` (a kick sent after
        // `still_idle` looked) is taken right after `sti` and ends the `hlt`.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

static SCHEDULER: OnceCell<Scheduler<KernelPlatform>> = OnceCell::uninit();

/// Creates the scheduler for `cpu_count` CPUs (on the boot CPU, before APs start).
pub fn init(cpu_count: u32) -> &'static Scheduler<KernelPlatform> {
    SCHEDULER.get_or_init(|| Scheduler::new(KernelPlatform, cpu_count as usize))
}

/// The scheduler.
pub fn scheduler() -> &'static Scheduler<KernelPlatform> {
    SCHEDULER.get().expect("scheduler used before init")
}
