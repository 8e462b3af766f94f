//! Time since boot from the TSC, calibrated against the ACPI PM timer.

use conquer_once::spin::OnceCell;
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::pm_timer::{PmTimer, PM_TIMER_HZ};

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick times 2^[`NS_SHIFT`] (fixed point): the kernel and the vDSO
/// turn ticks into nanoseconds with the same multiply and shift, so the two never
/// disagree.
static TSC_NS_MULT: AtomicU64 = AtomicU64::new(1 << NS_SHIFT);
/// The fixed-point shift of [`TSC_NS_MULT`].
const NS_SHIFT: u32 = 32;
static PM_TIMER: OnceCell<PmTimer> = OnceCell::uninit();

/// Measures the TSC over 20 ms of the PM timer (or assumes 1 GHz without one).
pub fn init(pm_timer: Option<(u16, bool)>) -> u64 {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    let Some((port, extended)) = pm_timer else {
        TSC_NS_MULT.store(1 << NS_SHIFT, Ordering::Relaxed);
        return 1_000_000_000;
    };
    let timer = PM_TIMER.get_or_init(|| PmTimer::new(port, extended));
    let ticks = PM_TIMER_HZ / 50;
    let start_pm = timer.read();
    let start_tsc = rdtsc();
    while timer.elapsed(start_pm, timer.read()) < ticks {
        core::hint::spin_loop();
    }
    let tsc = rdtsc() - start_tsc;
    let elapsed_us = timer.elapsed(start_pm, timer.read()) * 1_000_000 / PM_TIMER_HZ;
    let tsc = tsc.max(1);
    let mult = ((u128::from(elapsed_us) * 1000) << NS_SHIFT) / u128::from(tsc);
    TSC_NS_MULT.store(
        u64::try_from(mult).unwrap_or(u64::MAX).max(1),
        Ordering::Relaxed,
    );
    (u128::from(tsc) * 1_000_000 / u128::from(elapsed_us.max(1))) as u64
}

/// Wall-clock time at boot (ns since the Unix epoch), from the CMOS RTC.
static REALTIME_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Reads the CMOS real-time clock once (UTC assumed, as QEMU provides).
pub fn init_realtime() {
    use x86_64::instructions::port::Port;
    let read = |reg: u8| -> u8 {
        // SAFETY: CMOS index/data ports; reading a register has no side effects.
        unsafe {
            Port::<u8>::new(0x70).write(reg);
            Port::<u8>::new(0x71).read()
        }
    };
    // Wait for no update in progress, then read.
    for _ in 0..100_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let binary = read(0x0b) & 4 != 0;
    let conv = |v: u8| {
        if binary {
            u64::from(v)
        } else {
            u64::from((v & 0x0f) + (v >> 4) * 10)
        }
    };
    let (sec, min, hour, day, month, year) = (
        conv(read(0x00)),
        conv(read(0x02)),
        conv(read(0x04) & 0x7f),
        conv(read(0x07)),
        conv(read(0x08)),
        conv(read(0x09)) + 2000,
    );
    // Days since the epoch (civil-from-days inverse, proleptic Gregorian).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec;
    REALTIME_AT_BOOT.store(secs * 1_000_000_000, Ordering::Relaxed);
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    REALTIME_AT_BOOT.load(Ordering::Relaxed) + now_ns()
}

/// Nanoseconds since `init`.
pub fn now_ns() -> u64 {
    let ticks = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    ((u128::from(ticks) * u128::from(TSC_NS_MULT.load(Ordering::Relaxed))) >> NS_SHIFT) as u64
}

/// What the vDSO needs to tell the time as [`now_ns`] and [`realtime_ns`] do:
/// `(tsc_at_boot, tsc_ns_mult, ns_shift, realtime_at_boot_ns)`. Fixed after boot.
pub fn clock_parameters() -> (u64, u64, u32, u64) {
    (
        TSC_AT_BOOT.load(Ordering::Relaxed),
        TSC_NS_MULT.load(Ordering::Relaxed),
        NS_SHIFT,
        REALTIME_AT_BOOT.load(Ordering::Relaxed),
    )
}

/// Busy-waits `micros` (boot-time only: calibration and AP start-up).
pub fn delay_us(micros: u64) {
    let end = now_ns() + micros * 1000;
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

/// Busy-waits on the PM timer itself (used while calibrating other clocks).
pub fn pm_delay_us(micros: u64) {
    match PM_TIMER.get() {
        Some(timer) => timer.delay_us(micros),
        None => delay_us(micros),
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed in ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}
