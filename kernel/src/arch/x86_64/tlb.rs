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

/// Per CPU: the address space whose tables are loaded (`*const AddressSpace`, 0: the
/// kernel's). Switching is lazy: a CPU keeps a user address space loaded after its thread
/// stops running (as Linux's lazy TLB mode does), so a CPU that runs the same process
/// again, or only kernel tasks in between, never reloads CR3.
static LOADED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: a dying address space's root to drop if it is still loaded (shootdown IPI).
static DROP_ROOT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Serialises address-space teardown (rare: process exit and exec).
static TEARDOWN: spin::Mutex<()> = spin::Mutex::new(());

fn write_cr3(root: u64) {
    // SAFETY: every root shares the kernel half, so the running code and data stay mapped.
    unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(root)), Cr3Flags::empty()) };
}

/// Loads `space` on the calling CPU (if it is not loaded already) and marks the CPU in its
/// active set; the previously loaded space loses the CPU from its set.
pub fn activate(space: &AddressSpace) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current_cpu().index();
        let me = space as *const AddressSpace as u64;
        let previous = LOADED[cpu].load(Ordering::Relaxed);
        if previous == me {
            return;
        }
        let bit = 1u64 << cpu;
        space.active_cpus.fetch_or(bit, Ordering::SeqCst);
        write_cr3(space.root());
        LOADED[cpu].store(me, Ordering::Relaxed);
        let block = percpu::current();
        block.kernel_cr3.store(space.root(), Ordering::Relaxed);
        block.user_cr3.store(space.user_root(), Ordering::Relaxed);
        if previous != 0 {
            // SAFETY: a space stays alive while any CPU has it in LOADED: `release` (run
            // before its tables are freed) clears those entries with interrupts-off handshakes,
            // and this block runs with interrupts off.
            let old = unsafe { &*(previous as *const AddressSpace) };
            old.active_cpus.fetch_and(!bit, Ordering::SeqCst);
        }
    });
}

/// Makes sure no CPU still has `space` loaded (lazily or not) before its tables are freed.
pub fn release(space: &AddressSpace) {
    let _guard = TEARDOWN.lock();
    let me = percpu::current_cpu();
    let ptr = space as *const AddressSpace as u64;
    x86_64::instructions::interrupts::without_interrupts(|| {
        if LOADED[me.index()].load(Ordering::Relaxed) == ptr {
            write_cr3(pagetable::current_kernel_root());
            LOADED[me.index()].store(0, Ordering::Relaxed);
            percpu::current().user_cr3.store(0, Ordering::Relaxed);
            space.active_cpus.fetch_and(!(1 << me.index()), Ordering::SeqCst);
        }
    });
    let active = space.active_cpus.load(Ordering::SeqCst) & !(1 << me.index());
    for cpu in (0..MAX_CPUS as u32).filter(|c| active & (1 << c) != 0) {
        let Some(target) = percpu::get(CpuId(cpu)) else { continue };
        DROP_ROOT[cpu as usize].store(ptr, Ordering::SeqCst);
        let before = ACKS[cpu as usize].load(Ordering::SeqCst);
        apic::send_ipi(target.apic_id, vectors::TLB_SHOOTDOWN);
        while ACKS[cpu as usize].load(Ordering::SeqCst) == before {
            core::hint::spin_loop();
        }
    }
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

/// The shootdown IPI handler: drop a dying address space if it is loaded here, flush this
/// CPU's non-global TLB entries, and acknowledge.
pub fn handle_shootdown() {
    let cpu = percpu::current_cpu().index();
    let dying = DROP_ROOT[cpu].swap(0, Ordering::SeqCst);
    if dying != 0 && LOADED[cpu].load(Ordering::Relaxed) == dying {
        write_cr3(pagetable::current_kernel_root());
        LOADED[cpu].store(0, Ordering::Relaxed);
        percpu::current().user_cr3.store(0, Ordering::Relaxed);
        // SAFETY: the releasing CPU waits for our acknowledgement before freeing it.
        let space = unsafe { &*(dying as *const AddressSpace) };
        space.active_cpus.fetch_and(!(1u64 << cpu), Ordering::SeqCst);
    } else {
        tlb::flush_all();
    }
    ACKS[cpu].fetch_add(1, Ordering::SeqCst);
}
