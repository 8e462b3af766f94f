//! Bringing up the application processors: INIT-SIPI-SIPI one CPU at a time through the
//! real-mode trampoline, then per-CPU set-up on the AP itself.

#![deny(unsafe_code)]

use crate::arch::{apic, cpu, gdt, idt, percpu, trampoline};
use alloc::vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sched::CpuId;

/// Kernel stack size of each AP's boot/executor stack.
const AP_STACK_BYTES: usize = 128 * 1024;

/// CPUs that finished their set-up (the boot CPU included).
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// Physical address of the kernel's final page tables, loaded by each AP.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
/// The AP currently starting, once it has left the trampoline.
static STARTED: AtomicU32 = AtomicU32::new(u32::MAX);

/// Number of CPUs online.
pub fn online_cpus() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// The affinity mask of every online CPU (bit n: CPU n).
pub fn online_mask() -> u64 {
    let online = online_cpus();
    if online >= 64 {
        u64::MAX
    } else {
        (1u64 << online) - 1
    }
}

/// Starts every AP whose per-CPU block exists (cpu ids 1..count). `ap_main` is what each AP
/// runs once its CPU state is set up. Returns how many came up.
pub fn start_aps(count: u32, kernel_root: u64, ap_main: fn(CpuId) -> !) -> u32 {
    KERNEL_ROOT.store(kernel_root, Ordering::Release);
    AP_MAIN.get_or_init(|| ap_main);
    for cpu in 1..count {
        let Some(block) = percpu::get(CpuId(cpu)) else {
            continue;
        };
        let stack = vec![0u8; AP_STACK_BYTES].leak();
        let stack_top = (stack.as_ptr_range().end as u64) & !0xf;
        trampoline::prepare(stack_top, ap_entry, u64::from(cpu), kernel_root);
        STARTED.store(u32::MAX, Ordering::Release);
        let expected_online = online_cpus() + 1;
        apic::start_ap(
            block.apic_id,
            trampoline::sipi_page(),
            crate::time::delay_us,
        );
        let deadline = crate::time::now_ns() + 2_000_000_000;
        while online_cpus() < expected_online && crate::time::now_ns() < deadline {
            core::hint::spin_loop();
        }
        if online_cpus() < expected_online {
            log::error!("cpu {cpu} (apic {}) did not come up", block.apic_id);
        }
    }
    online_cpus()
}

static AP_MAIN: conquer_once::spin::OnceCell<fn(CpuId) -> !> =
    conquer_once::spin::OnceCell::uninit();

/// First Rust code on an AP, on its own stack, with the boot page tables.
extern "C" fn ap_entry(cpu: u64) -> ! {
    // The trampoline already switched to the kernel's final tables and this AP's stack.
    let cpu = CpuId(cpu as u32);
    // GS first: from here on `gs:0`/`gs:8` are valid on this CPU.
    let Some(block) = percpu::get(cpu) else {
        cpu::halt_forever()
    };
    percpu::install(block);
    STARTED.store(cpu.0, Ordering::Release);
    cpu::init_control_registers(&cpu::features());
    gdt::init_cpu();
    idt::load();
    apic::init_local();
    crate::arch::usermode::init_cpu();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    match AP_MAIN.get() {
        Some(main) => main(cpu),
        None => cpu::halt_forever(),
    }
}
