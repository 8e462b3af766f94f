//! Interrupt dispatch after the entry stub: the APIC timer, the wake and halt IPIs, and
//! IO-APIC lines. Handlers do the minimum and leave the rest to tasks.

use crate::arch::{apic, cpu, percpu};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use drivers::apic::vectors;

/// Interrupts seen per IO-APIC line (GSI), for tests and statistics.
pub static IRQ_COUNTS: [AtomicU64; 24] = [const { AtomicU64::new(0) }; 24];

/// Device handlers per IO-APIC line (a `fn()` as an address; 0: none).
static IRQ_HANDLERS: [AtomicUsize; 24] = [const { AtomicUsize::new(0) }; 24];

/// Runs `handler` (with interrupts off, before the EOI) for every interrupt on line
/// `gsi`, and unmasks the line. The handler must quiet its device (a PCI line is
/// level-triggered).
pub fn set_irq_handler(gsi: u8, handler: fn()) {
    if let Some(slot) = IRQ_HANDLERS.get(usize::from(gsi)) {
        slot.store(handler as usize, Ordering::SeqCst);
        unmask_irq(u32::from(gsi));
    }
}

/// Handles a non-exception vector.
pub fn handle_interrupt(vector: u8) {
    // Handler context: the heap must not grow here (see `mem::heap`).
    let _irq = percpu::IrqGuard::enter();
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
            let gsi = usize::from(v - vectors::IOAPIC_BASE);
            IRQ_COUNTS[gsi].fetch_add(1, Ordering::Relaxed);
            let handler = IRQ_HANDLERS[gsi].load(Ordering::SeqCst);
            if handler != 0 {
                // SAFETY: only `set_irq_handler` stores here, and it stores a `fn()`.
                let handler: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
                handler();
            }
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

/// The IO-APIC (direct-map address, first GSI) whose lines `set_irq_handler` unmasks.
static IOAPIC: conquer_once::spin::OnceCell<(u64, u32)> = conquer_once::spin::OnceCell::uninit();

/// Records the IO-APIC that `topology::init_ioapic` routed (once).
pub fn set_ioapic(virt: u64, gsi_base: u32) {
    IOAPIC.get_or_init(|| (virt, gsi_base));
}

/// Unmasks IO-APIC line `gsi` (routed by `topology::init_ioapic`; lines above 15 are
/// not).
fn unmask_irq(gsi: u32) {
    if let Some(&(virt, base)) = IOAPIC.get() {
        if gsi < 16 {
            // SAFETY: the line was routed by `topology::init_ioapic` on this IO-APIC.
            unsafe { drivers::apic::set_irq_masked(virt, base, gsi, false) };
        }
    }
}
