//! User-mode exceptions: page faults resolved at once when the mapping allows it, and
//! everything else turned into the signal Linux would send.

use super::{signal::{self, code, SigInfo}, thread::Thread};
use crate::{arch::usermode::UserContext, mem::aspace::FaultError};

/// Handles exception `ctx.vector` taken in user mode.
pub fn user_exception(thread: &Thread, ctx: &mut UserContext) {
    let (sig, info) = match ctx.vector {
        14 => {
            let write = ctx.error_code & 2 != 0;
            let exec = ctx.error_code & 16 != 0;
            let space = thread.process.aspace.read().clone();
            match space.fault(ctx.cr2, write, exec) {
                Ok(()) => return,
                Err(FaultError::Unmapped) => (signal::SIGSEGV, SigInfo { code: code::SEGV_MAPERR, value: ctx.cr2 }),
                Err(FaultError::Protection) => (signal::SIGSEGV, SigInfo { code: code::SEGV_ACCERR, value: ctx.cr2 }),
                Err(FaultError::OutOfMemory) => (signal::SIGBUS, SigInfo { code: code::BUS_ADRERR, value: ctx.cr2 }),
            }
        }
        0 => (signal::SIGFPE, SigInfo { code: code::FPE_INTDIV, value: ctx.rip }),
        16 | 19 => (signal::SIGFPE, SigInfo { code: code::SI_KERNEL, value: ctx.rip }),
        1 | 3 => (signal::SIGTRAP, SigInfo { code: code::SI_KERNEL, value: ctx.rip }),
        6 => (signal::SIGILL, SigInfo { code: code::ILL_ILLOPN, value: ctx.rip }),
        17 => (signal::SIGBUS, SigInfo { code: code::BUS_ADRERR, value: ctx.cr2 }),
        _ => (signal::SIGSEGV, SigInfo { code: code::SI_KERNEL, value: 0 }),
    };
    signal::force_fault_signal(thread, sig, info);
}

/// A page fault inside the kernel's user-copy routine: resolve it now if the current
/// thread's mapping allows the access.
pub fn resolve_kernel_access(addr: u64, write: bool) -> bool {
    let Some(thread) = super::current_thread() else { return false };
    // The copy runs with interrupts enabled inside a syscall; the address-space lock is
    // not held by the copying code, so taking it here cannot deadlock.
    let space = thread.process.aspace.read().clone();
    space.fault(addr, write, false).is_ok()
}
