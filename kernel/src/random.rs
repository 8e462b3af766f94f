//! Kernel randomness: RDRAND where the CPU has it, else a xorshift generator seeded from
//! the TSC. Used for AT_RANDOM and `getrandom`.

use core::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(0);

fn rdrand() -> Option<u64> {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND exists (CPUID checked); it only writes the named registers.
        unsafe {
            core::arch::asm!("rdrand {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack))
        };
        if ok == 1 {
            return Some(value);
        }
    }
    None
}

fn next() -> u64 {
    if let Some(v) = rdrand() {
        return v;
    }
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = crate::time::rdtsc() | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let bytes = next().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}
