//! Interrupt dispatch after the entry stub: the APIC timer, the wake and halt IPIs, and
//! IO-APIC lines. Handlers do the minimum and leave the rest to tasks.

use crate::arch::{apic, cpu, percpu};
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::apic::vectors;

/// Interrupts seen per IO-APIC line (GSI), for tests and statistics.
pub static IRQ_COUNTS: [AtomicU64; 24] = [const { AtomicU64::new(0) }; 24];

/// Handles a non-exception vector.
pub fn handle_interrupt(vector: u8) {
    match vector {
        vectors::TIMER => {
            apic::timer_fired();
            if let Some(cpu) = percpu::try_current() {
                cpu.timer_interrupts.fetch_add(1, Ordering::Relaxed);
            }
            apic::eoi();
        }
        vectors::WAKE => {
            if let Some(cpu) = percpu::try_current() {
                cpu.wake_interrupts.fetch_add(1, Ordering::Relaxed);
            }
            apic::eoi();
        }
        vectors::HALT => cpu::halt_forever(),
        vectors::TLB_SHOOTDOWN => {
            crate::arch::tlb::handle_shootdown();
            apic::eoi();
        }
        v if (vectors::IOAPIC_BASE..vectors::IOAPIC_BASE + 24).contains(&v) => {
            IRQ_COUNTS[usize::from(v - vectors::IOAPIC_BASE)].fetch_add(1, Ordering::Relaxed);
            apic::eoi();
        }
        // Spurious interrupts of the masked legacy PICs: no EOI.
        v if (drivers::pit::PIC_VECTOR_BASE..drivers::pit::PIC_VECTOR_BASE + 16).contains(&v) => {}
        _ => {
            log::warn!("unexpected interrupt vector {vector:#x}");
            apic::eoi();
        }
    }
}
