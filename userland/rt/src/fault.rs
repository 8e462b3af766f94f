//! Fault probes: single instructions that may fault, plus the fix-up a SIGSEGV or
//! SIGBUS handler applies to resume after them (the runtime's `siglongjmp`).
//!
//! `probe_write(addr, v)` stores one byte; when the store faults, a handler that
//! calls [`fixup`] moves the saved RIP to a landing pad that makes the probe return
//! `true`. Tests use it to touch memory that should fault and keep running.

use crate::signal::UContext;

core::arch::global_asm!(
    ".globl peios_probe_write",
    ".type peios_probe_write,@function",
    // fn(addr: *mut u8, value: u8) -> u32 (1 when it faulted)
    "peios_probe_write:",
    "xor eax, eax",
    ".globl peios_probe_write_insn",
    "peios_probe_write_insn:",
    "mov byte ptr [rdi], sil",
    "ret",
    ".globl peios_probe_read",
    ".type peios_probe_read,@function",
    // fn(addr: *const u8, out: *mut u8) -> u32 (1 when it faulted)
    "peios_probe_read:",
    "xor eax, eax",
    ".globl peios_probe_read_insn",
    "peios_probe_read_insn:",
    "movzx ecx, byte ptr [rdi]",
    "mov byte ptr [rsi], cl",
    "ret",
    // Landing pad: the faulting instruction is skipped and the probe reports it.
    ".globl peios_probe_landing",
    "peios_probe_landing:",
    "mov eax, 1",
    "ret",
);

extern "C" {
    fn peios_probe_write(addr: *mut u8, value: u8) -> u32;
    fn peios_probe_read(addr: *const u8, out: *mut u8) -> u32;
    fn peios_probe_write_insn();
    fn peios_probe_read_insn();
    fn peios_probe_landing();
}

/// Writes `value` to `addr`; returns true when the store faulted and a handler
/// called [`fixup`].
///
/// # Safety
/// If `addr` is mapped writable, the byte there is overwritten: the caller must own
/// it. A fault without a handler that calls [`fixup`] kills the process.
pub unsafe fn probe_write(addr: *mut u8, value: u8) -> bool {
    // SAFETY: the caller owns `addr` if it is writable (contract above).
    unsafe { peios_probe_write(addr, value) != 0 }
}

/// The access of a probe faulted (and a handler fixed it up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faulted;

/// Reads the byte at `addr`; `Err(Faulted)` when the load faulted and was fixed up.
///
/// # Safety
/// Reading a mapped device or racing writer is the caller's concern; a fault
/// without a handler that calls [`fixup`] kills the process.
pub unsafe fn probe_read(addr: *const u8) -> Result<u8, Faulted> {
    let mut out = 0u8;
    // SAFETY: `out` is a valid byte; `addr` is the caller's concern.
    let faulted = unsafe { peios_probe_read(addr, &mut out) } != 0;
    if faulted {
        Err(Faulted)
    } else {
        Ok(out)
    }
}

/// For use in a SIGSEGV/SIGBUS handler: when the fault is one of the probe
/// instructions, redirect the saved RIP to the landing pad and return true.
pub fn fixup(uc: &mut UContext) -> bool {
    let rip = uc.rip();
    if rip == peios_probe_write_insn as *const () as usize
        || rip == peios_probe_read_insn as *const () as usize
    {
        uc.set_rip(peios_probe_landing as *const () as usize);
        true
    } else {
        false
    }
}
