//! Raw `syscall` instruction wrappers following the Linux x86_64 convention.
//!
//! The number goes in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`; the kernel
//! clobbers `rcx` and `r11` and returns in `rax` (`-4095..=-1` is a negated errno).
//! These return the raw value; [`crate::Errno::result`] turns it into a `Result`.

use core::arch::asm;

/// Issues syscall `nr` with no arguments.
///
/// # Safety
/// The caller upholds whatever syscall `nr` requires (pointer validity, no
/// aliasing of memory the kernel writes, no unmapping of memory still in use).
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` instruction only clobbers rax/rcx/r11 (declared); the
    // caller guarantees the syscall's own memory effects are sound.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with one argument.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(nr: usize, a1: usize) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with two arguments.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(nr: usize, a1: usize, a2: usize) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with three arguments.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with four arguments.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with five arguments.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, in("r8") a5,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Issues syscall `nr` with six arguments.
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall6(
    nr: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: isize;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, in("r8") a5, in("r9") a6,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}
