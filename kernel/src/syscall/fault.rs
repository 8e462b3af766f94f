//! User-mode exceptions: page faults resolved at once when the mapping allows it, and
//! everything else turned into the signal Linux would send.

use crate::memd::oom::OomOutcome;
use crate::proc::{
    signal::{self, code, SigInfo},
    thread::Thread,
};
use crate::{arch::usermode::UserContext, mem::aspace::AddressSpace};
use mm::fault::{Access, FaultError, FaultFuture, WaitReason};

/// What the thread loop does after a user exception.
pub enum UserFault {
    /// Handled (resolved, or a signal is pending): return to user mode.
    Done,
    /// The fault must wait (I/O, a page another fault is filling, userfaultfd): await
    /// this, then return to user mode, which retries the access.
    Wait(FaultFuture),
}

pub use crate::arch::trap::PF_PK;

/// The access a page-fault error code describes.
pub fn access_of(error_code: u64) -> Access {
    if error_code & 16 != 0 {
        Access::Exec
    } else if error_code & 2 != 0 {
        Access::Write
    } else {
        Access::Read
    }
}

/// A fault out of memory (a page-table page, or a frame reclaim gave up on): it waits
/// for reclaim while reclaim can make progress, else the OOM killer frees some (or
/// picks this process). `None` when nothing may be killed.
fn out_of_memory(thread: &Thread) -> Option<UserFault> {
    if let mm::phys::AllocFailure::Wait(wait) = crate::mem::frames::alloc_failed() {
        return Some(UserFault::Wait(wait));
    }
    match crate::memd::oom::out_of_memory(&thread.process) {
        OomOutcome::Wait(done) => Some(UserFault::Wait(FaultFuture::new(WaitReason::Memory, done))),
        OomOutcome::SelfKilled => Some(UserFault::Done),
        OomOutcome::NoVictim => None,
    }
}

/// Handles exception `ctx.vector` taken in user mode; `space` is the thread's address
/// space (the caller keeps it at hand, so a fault touches no process-wide lock or count).
pub fn user_exception(thread: &Thread, space: &AddressSpace, ctx: &mut UserContext) -> UserFault {
    let (sig, info) = match ctx.vector {
        // A protection-key refusal: the mapping allows the access, PKRU does not.
        14 if ctx.error_code & PF_PK != 0 => (
            signal::SIGSEGV,
            SigInfo {
                code: code::SEGV_PKUERR,
                value: ctx.cr2,
            },
        ),
        14 => {
            match space.mm().fault(ctx.cr2, access_of(ctx.error_code), true) {
                Ok(_) => {
                    thread.usage.minor_fault();
                    return UserFault::Done;
                }
                Err(FaultError::NeedsWait(wait)) => {
                    // A page readahead is still reading (`PageReading`) is a minor
                    // fault that waits, as Linux counts it.
                    if matches!(
                        wait.reason(),
                        WaitReason::SwapIn { .. } | WaitReason::PageLocked { .. }
                    ) {
                        thread.usage.major_fault();
                    }
                    return UserFault::Wait(wait);
                }
                // Out of memory: with nothing killable the fault gets SIGBUS.
                Err(FaultError::Oom) => match out_of_memory(thread) {
                    Some(outcome) => return outcome,
                    None => (
                        signal::SIGBUS,
                        SigInfo {
                            code: code::BUS_ADRERR,
                            value: ctx.cr2,
                        },
                    ),
                },
                Err(e) => {
                    let (sig, si_code) = e
                        .signal()
                        .unwrap_or((i32::from(signal::SIGSEGV), code::SEGV_MAPERR));
                    (
                        sig as u8,
                        SigInfo {
                            code: si_code,
                            value: ctx.cr2,
                        },
                    )
                }
            }
        }
        0 => (
            signal::SIGFPE,
            SigInfo {
                code: code::FPE_INTDIV,
                value: ctx.rip,
            },
        ),
        16 | 19 => (
            signal::SIGFPE,
            SigInfo {
                code: code::SI_KERNEL,
                value: ctx.rip,
            },
        ),
        1 | 3 => (
            signal::SIGTRAP,
            SigInfo {
                code: code::SI_KERNEL,
                value: ctx.rip,
            },
        ),
        6 => (
            signal::SIGILL,
            SigInfo {
                code: code::ILL_ILLOPN,
                value: ctx.rip,
            },
        ),
        17 => (
            signal::SIGBUS,
            SigInfo {
                code: code::BUS_ADRERR,
                value: ctx.cr2,
            },
        ),
        _ => (
            signal::SIGSEGV,
            SigInfo {
                code: code::SI_KERNEL,
                value: 0,
            },
        ),
    };
    signal::force_fault_signal(thread, sig, info);
    UserFault::Done
}

/// A page fault inside the kernel's user-copy routine: resolve it now if the current
/// thread's mapping allows the access.
///
/// The copy runs inside a synchronous part of a syscall and cannot park: a swap-in is
/// driven in place, other waits are spun through for a bounded time
/// (`memd::swap::kernel_access_fault`); a fault that still cannot finish fails the copy
/// with EFAULT.
pub fn resolve_kernel_access(addr: u64, write: bool) -> bool {
    let Some(thread) = crate::proc::current_thread() else {
        return false;
    };
    let space = thread.process.address_space();
    crate::memd::swap::kernel_access_fault(
        &space,
        addr,
        if write { Access::Write } else { Access::Read },
    )
}
