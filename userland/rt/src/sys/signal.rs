//! Signal syscalls: rt_sigaction and rt_sigprocmask (the kernel's 64-bit sigset).

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// A kernel signal set: bit `n-1` stands for signal `n` (1..=64).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigSet(pub u64);

impl SigSet {
    /// The empty set.
    pub const EMPTY: SigSet = SigSet(0);

    /// A set holding only `sig`.
    pub const fn of(sig: i32) -> SigSet {
        SigSet(1u64 << (sig - 1))
    }

    /// True when `sig` is in the set.
    pub const fn contains(self, sig: i32) -> bool {
        self.0 & (1u64 << (sig - 1)) != 0
    }
}

/// `SIG_BLOCK`.
pub const SIG_BLOCK: i32 = 0;
/// `SIG_UNBLOCK`.
pub const SIG_UNBLOCK: i32 = 1;
/// `SIG_SETMASK`.
pub const SIG_SETMASK: i32 = 2;

/// The kernel's `struct sigaction` on x86_64 (not libc's layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelSigaction {
    /// Handler address, or `SIG_DFL` (0) / `SIG_IGN` (1).
    pub handler: usize,
    /// `SA_*` flags; x86_64 requires `SA_RESTORER` with a valid `restorer`.
    pub flags: u64,
    /// Address of the code that calls `rt_sigreturn` when the handler returns.
    pub restorer: usize,
    /// Signals blocked while the handler runs.
    pub mask: SigSet,
}

/// Raw `rt_sigaction(sig, act, oldact, 8)`.
///
/// # Safety
/// A handler in `act` runs asynchronously on this process's threads: it must be a
/// valid function of the kind the flags say, async-signal-safe, and `restorer` must
/// point to an `rt_sigreturn` trampoline.
pub unsafe fn rt_sigaction(
    sig: i32,
    act: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> Result<(), Errno> {
    let act_ptr = act.map_or(0, |a| a as *const KernelSigaction as usize);
    let old_ptr = old.map_or(0, |o| o as *mut KernelSigaction as usize);
    // SAFETY: both pointers are null or valid; the caller vouches for the handler.
    let r = unsafe { syscall4(nr::RT_SIGACTION, sig as usize, act_ptr, old_ptr, 8) };
    Errno::result(r).map(|_| ())
}

/// `rt_sigprocmask(how, set, oldset, 8)`; returns the previous mask.
pub fn rt_sigprocmask(how: i32, set: Option<&SigSet>) -> Result<SigSet, Errno> {
    let mut old = SigSet::EMPTY;
    let set_ptr = set.map_or(0, |s| s as *const SigSet as usize);
    // SAFETY: `set_ptr` is null or a valid SigSet; `old` is writable.
    let r = unsafe {
        syscall4(
            nr::RT_SIGPROCMASK,
            how as usize,
            set_ptr,
            &mut old as *mut SigSet as usize,
            8,
        )
    };
    Errno::result(r).map(|_| old)
}
