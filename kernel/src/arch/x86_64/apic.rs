//! The calling CPU's local APIC: end of interrupt, IPIs and the one-shot timer.
//! x2APIC is used where the CPU has it; otherwise xAPIC through the MMIO page.

use super::{paging::phys_to_virt, percpu};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use drivers::apic::{cpu_has_x2apic, enable_local_apic};
use x2apic::lapic::IpiAllShorthand;

/// APIC timer ticks (divide-by-16) per millisecond, measured at boot.
static TIMER_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
/// Whether the local APICs run in x2APIC mode (same on every CPU).
static X2APIC_MODE: AtomicBool = AtomicBool::new(false);

/// Physical address of the xAPIC MMIO page.
pub const XAPIC_PHYS: u64 = 0xfee0_0000;

/// Enables the calling CPU's local APIC and stores it in its per-CPU block.
pub fn init_local() {
    let x2 = cpu_has_x2apic();
    X2APIC_MODE.store(x2, Ordering::Relaxed);
    // SAFETY: once per CPU during start-up with interrupts off; the direct map covers the
    // xAPIC page.
    let apic = unsafe { enable_local_apic(phys_to_virt(XAPIC_PHYS) as u64) };
    percpu::current().set_local_apic(apic);
}

/// This CPU's LINT0 and LINT1 pins as its local APIC has them (the boot test's report).
pub fn local_interrupt_pins() -> (drivers::apic::PinState, drivers::apic::PinState) {
    // SAFETY: the APIC was enabled by `init_local` on this CPU; the direct map covers the
    // xAPIC page.
    let (lint0, lint1) =
        unsafe { drivers::apic::local_interrupt_pins(phys_to_virt(XAPIC_PHYS) as u64) };
    (
        drivers::apic::PinState::from_lvt(lint0),
        drivers::apic::PinState::from_lvt(lint1),
    )
}

/// Whether x2APIC mode is in use.
pub fn x2apic_mode() -> bool {
    X2APIC_MODE.load(Ordering::Relaxed)
}

/// The calling CPU's APIC id as read from the hardware.
pub fn hardware_id() -> u32 {
    percpu::with_local_apic(|apic| {
        // SAFETY: reading the ID register has no side effects.
        let raw = unsafe { apic.id() };
        if x2apic_mode() {
            raw
        } else {
            raw >> 24
        }
    })
    .unwrap_or(0)
}

/// Signals end of interrupt.
pub fn eoi() {
    percpu::with_local_apic(|apic| {
        // SAFETY: called at the end of an interrupt handler on this CPU.
        unsafe { apic.end_of_interrupt() }
    });
}

fn destination(apic_id: u32) -> u32 {
    if x2apic_mode() {
        apic_id
    } else {
        apic_id << 24
    }
}

/// Sends fixed interrupt `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    percpu::with_local_apic(|apic| {
        // SAFETY: a fixed IPI only raises `vector` on the target, which has a handler.
        unsafe { apic.send_ipi(vector, destination(apic_id)) }
    });
}

/// Sends `vector` to every CPU but this one.
pub fn send_ipi_all_others(vector: u8) {
    percpu::with_local_apic(|apic| {
        // SAFETY: as for `send_ipi`.
        unsafe { apic.send_ipi_all(vector, IpiAllShorthand::AllExcludingSelf) }
    });
}

/// Sends INIT then two STARTUP IPIs pointing at `trampoline_page` (page number below 1 MiB).
pub fn start_ap(apic_id: u32, trampoline_page: u8, delay_us: impl Fn(u64)) {
    percpu::with_local_apic(|apic| {
        // SAFETY: the INIT-SIPI-SIPI sequence of the MP specification; the target is an AP
        // that has not been started and the trampoline page holds start-up code.
        unsafe {
            apic.send_init_ipi(destination(apic_id));
            delay_us(10_000);
            apic.send_sipi(trampoline_page, destination(apic_id));
            delay_us(200);
            apic.send_sipi(trampoline_page, destination(apic_id));
        }
    });
}

/// Measures the APIC timer against `delay_us` (a reference clock). Run once on the boot CPU.
pub fn calibrate_timer(delay_us: impl Fn(u64)) -> u64 {
    let ticks = percpu::with_local_apic(|apic| {
        // SAFETY: the timer is masked; counting down from u32::MAX raises nothing.
        unsafe {
            apic.disable_timer();
            apic.set_timer_initial(u32::MAX);
            delay_us(10_000);
            let left = apic.timer_current();
            apic.set_timer_initial(0);
            u64::from(u32::MAX - left) / 10
        }
    })
    .unwrap_or(0);
    TIMER_TICKS_PER_MS.store(ticks.max(1), Ordering::Relaxed);
    ticks
}

/// Per CPU: the deadline (ns since boot) the one-shot timer is armed for; 0 = not armed.
static ARMED_DEADLINE: [AtomicU64; sched::MAX_CPUS] =
    [const { AtomicU64::new(0) }; sched::MAX_CPUS];

/// Makes sure the one-shot timer fires by `deadline_ns` (ns since boot). An armed timer
/// that fires no later than that is kept: each APIC register access is costly under
/// emulation, and an early expiry is only a spurious wake-up.
///
/// Runs with interrupts off and records the deadline before programming the timer, so
/// the expiry (which clears the record in [`timer_fired`]) can never come between the
/// two and leave a stale record that claims a timer is armed when none is.
pub fn arm_timer_by(deadline_ns: u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current_cpu().index();
        let armed = ARMED_DEADLINE[cpu].load(Ordering::Relaxed);
        let now = crate::time::now_ns();
        if armed > now && armed <= deadline_ns {
            return;
        }
        let per_ms = TIMER_TICKS_PER_MS.load(Ordering::Relaxed);
        let delay = deadline_ns.saturating_sub(now).max(1_000);
        ARMED_DEADLINE[cpu].store(now.saturating_add(delay), Ordering::Relaxed);
        percpu::with_local_apic(|apic| {
            let ticks =
                (u128::from(delay) * u128::from(per_ms) / 1_000_000).clamp(1, u128::from(u32::MAX));
            // SAFETY: programs this CPU's one-shot timer; its vector has a handler.
            unsafe {
                if armed == 0 {
                    apic.enable_timer();
                }
                apic.set_timer_initial(ticks as u32);
            }
        });
    });
}

/// Whether this CPU's timer is armed to fire by `deadline_ns` (a single load: the fast
/// path of every return to user mode). Sound without a clock read because the record is
/// written with interrupts off before the timer is programmed and cleared by the expiry:
/// a non-zero record is a timer that has not fired yet, or whose interrupt is pending
/// and taken as soon as interrupts are on again (the caller checks with them off, up to
/// user mode).
#[inline]
pub fn timer_armed_by(deadline_ns: u64) -> bool {
    let armed = ARMED_DEADLINE[percpu::current_cpu().index()].load(Ordering::Relaxed);
    armed != 0 && armed <= deadline_ns
}

/// The deadline `cpu`'s timer is armed for (0: not armed), for the watchdog's report.
pub fn armed_deadline(cpu: usize) -> u64 {
    ARMED_DEADLINE
        .get(cpu)
        .map_or(0, |armed| armed.load(Ordering::Relaxed))
}

/// The timer fired on this CPU (called from its interrupt handler).
pub fn timer_fired() {
    ARMED_DEADLINE[percpu::current_cpu().index()].store(0, Ordering::Relaxed);
}
