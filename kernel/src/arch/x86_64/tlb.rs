//! Address-space switching and TLB shootdown. A CPU has a user address space loaded only
//! while it polls one of that process's threads; unmapping flushes the local TLB and sends a
//! shootdown IPI only to the CPUs in the address space's active set, then waits for their
//! acknowledgements.

use super::{apic, percpu};
use crate::mem::{aspace::AddressSpace, pagetable};
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::apic::vectors;
use sched::{CpuId, MAX_CPUS};
use x86_64::{
    instructions::tlb,
    registers::control::{Cr3, Cr3Flags},
    structures::paging::PhysFrame,
    PhysAddr, VirtAddr,
};

/// Shootdowns acknowledged by each CPU.
static ACKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn load_root(root: u64) {
    let (current, _) = Cr3::read();
    if current.start_address().as_u64() != root {
        // SAFETY: `root` shares the kernel half with every other root, so the running code
        // and data stay mapped.
        unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(root)), Cr3Flags::empty()) };
    }
}

/// Loads `space` on the calling CPU and marks the CPU active in it.
pub fn activate(space: &AddressSpace) {
    let bit = 1u64 << percpu::current_cpu().index();
    space.active_cpus.fetch_or(bit, Ordering::SeqCst);
    load_root(space.root());
}

/// Switches the calling CPU back to the kernel's tables and leaves `space`'s active set.
pub fn deactivate(space: &AddressSpace) {
    load_root(pagetable::current_kernel_root());
    let bit = 1u64 << percpu::current_cpu().index();
    space.active_cpus.fetch_and(!bit, Ordering::SeqCst);
}

/// Flushes `[start, end)` of `space` on every CPU that may cache it.
pub fn flush_address_space(space: &AddressSpace, start: u64, end: u64) {
    let me = percpu::current_cpu();
    let active = space.active_cpus.load(Ordering::SeqCst);
    if active & (1 << me.index()) != 0 {
        if end - start <= 64 * 4096 {
            let mut va = start;
            while va < end {
                tlb::flush(VirtAddr::new(va));
                va += 4096;
            }
        } else {
            tlb::flush_all();
        }
    }
    let mut waits: [(u32, u64); MAX_CPUS] = [(0, 0); MAX_CPUS];
    let mut n = 0;
    for cpu in 0..MAX_CPUS as u32 {
        if cpu == me.0 || active & (1 << cpu) == 0 {
            continue;
        }
        let Some(target) = percpu::get(CpuId(cpu)) else { continue };
        waits[n] = (cpu, ACKS[cpu as usize].load(Ordering::SeqCst));
        n += 1;
        apic::send_ipi(target.apic_id, vectors::TLB_SHOOTDOWN);
    }
    for &(cpu, before) in &waits[..n] {
        while ACKS[cpu as usize].load(Ordering::SeqCst) == before {
            core::hint::spin_loop();
        }
    }
}

/// The shootdown IPI handler: flush this CPU's non-global TLB entries and acknowledge.
pub fn handle_shootdown() {
    tlb::flush_all();
    ACKS[percpu::current_cpu().index()].fetch_add(1, Ordering::SeqCst);
}
