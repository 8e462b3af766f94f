//! The kernel's binding of the per-CPU executor: CPU identity from GS, kicks as wake IPIs,
//! time from the TSC, and idle as `sti; hlt` with the APIC timer armed for the next deadline.

use crate::{arch::{apic, percpu}, time};
use drivers::apic::vectors;
use sched::{CpuId, Platform, Scheduler};
use spin::Once;

/// The machine as the executor sees it.
pub struct KernelPlatform;

impl Platform for KernelPlatform {
    fn current_cpu(&self) -> CpuId {
        percpu::current_cpu()
    }

    fn kick(&self, cpu: CpuId) {
        if let Some(target) = percpu::get(cpu) {
            apic::send_ipi(target.apic_id, vectors::WAKE);
        }
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn idle(&self, deadline_ns: Option<u64>, still_idle: &dyn Fn() -> bool) {
        x86_64::instructions::interrupts::disable();
        if !still_idle() {
            x86_64::instructions::interrupts::enable();
            return;
        }
        apic::arm_timer(deadline_ns.map(|d| d.saturating_sub(time::now_ns())));
        // `sti; hlt` back to back: an interrupt pending since the `cli` (a kick sent after
        // `still_idle` looked) is taken right after `sti` and ends the `hlt`.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

static SCHEDULER: Once<Scheduler<KernelPlatform>> = Once::new();

/// Creates the scheduler for `cpu_count` CPUs (on the boot CPU, before APs start).
pub fn init(cpu_count: u32) -> &'static Scheduler<KernelPlatform> {
    SCHEDULER.call_once(|| Scheduler::new(KernelPlatform, cpu_count as usize))
}

/// The scheduler.
pub fn scheduler() -> &'static Scheduler<KernelPlatform> {
    SCHEDULER.get().expect("scheduler used before init")
}
