//! The ACPI power-management timer: a free-running 3.579545 MHz counter, the reference
//! clock against which the TSC and the APIC timer are calibrated.

use x86_64::instructions::port::Port;

/// Ticks per second of the PM timer.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// The PM timer at an I/O port (from the FADT).
pub struct PmTimer {
    port: u16,
    extended: bool,
}

impl PmTimer {
    /// A timer at `port`; `extended` is the FADT flag for a 32-bit counter (else 24-bit).
    pub const fn new(port: u16, extended: bool) -> Self {
        Self { port, extended }
    }

    /// Reads the raw counter.
    pub fn read(&self) -> u32 {
        let mut port = Port::<u32>::new(self.port);
        // SAFETY: reading the PM timer port has no side effects.
        unsafe { port.read() }
    }

    /// Ticks between two readings, accounting for one wrap.
    pub fn elapsed(&self, start: u32, end: u32) -> u64 {
        let mask: u32 = if self.extended { u32::MAX } else { 0x00ff_ffff };
        u64::from(end.wrapping_sub(start) & mask)
    }

    /// Busy-waits `micros` microseconds (for calibration and AP start-up, before timers run).
    pub fn delay_us(&self, micros: u64) {
        let ticks = micros * PM_TIMER_HZ / 1_000_000;
        let start = self.read();
        while self.elapsed(start, self.read()) < ticks {
            core::hint::spin_loop();
        }
    }
}
