//! Copying to and from user memory. Ranges are checked to lie in user space; a page fault
//! inside the copy instruction is resolved on the spot when possible, else the copy stops
//! at the faulting byte and reports EFAULT instead of crashing the kernel.

use super::usermode::USER_ADDRESS_END;
use alloc::vec::Vec;
use core::arch::global_asm;
use errno::{Errno, SysResult};

global_asm!(
    r#"
    .section .text.uaccess, "ax"
    /* copy_user_asm(dst, src, len) -> bytes not copied. Whole quadwords first, then the
       bytes after them: a string move costs per iteration on some machines (an emulator
       runs each one as a step of its own), so a page moves in 512 steps, not 4096. */
    .global copy_user_asm
copy_user_asm:
    movq %rdx, %rcx
    shrq $3, %rcx               /* whole quadwords */
    andl $7, %edx               /* the bytes after them */
    cmpb $0, SMAP_ENABLED(%rip)
    je 1f
    stac                        /* SMAP: user pages are reachable only inside the copy */
1:
    .global copy_user_insn_quads
copy_user_insn_quads:
    rep movsq
    movq %rdx, %rcx
    .global copy_user_insn
copy_user_insn:
    rep movsb
    .global copy_user_fixup
copy_user_fixup:
    movq %rcx, %rax             /* bytes not copied: 0 unless a fault stopped the copy */
    cmpb $0, SMAP_ENABLED(%rip)
    je 2f
    clac
2:  ret
    .global copy_user_fixup_quads
copy_user_fixup_quads:
    leaq (%rdx,%rcx,8), %rcx    /* the quadwords left, in bytes, and the tail */
    jmp copy_user_fixup
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn copy_user_asm(dst: *mut u8, src: *const u8, len: usize) -> usize;
    static copy_user_insn_quads: u8;
    static copy_user_insn: u8;
    static copy_user_fixup: u8;
    static copy_user_fixup_quads: u8;
}

/// Set once SMAP is on (CR4.SMAP): the copy routine then brackets itself with STAC/CLAC.
#[unsafe(no_mangle)]
static SMAP_ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Records that SMAP is enabled (called on the boot CPU before any user process exists).
pub fn set_smap_enabled() {
    SMAP_ENABLED.store(true, core::sync::atomic::Ordering::SeqCst);
}

/// Whether `rip` is one of the user-copy instructions (a fault there is recoverable).
pub fn is_copy_instruction(rip: u64) -> bool {
    rip == &raw const copy_user_insn as u64 || rip == &raw const copy_user_insn_quads as u64
}

/// Where a copy that failed at the copy instruction `rip` resumes (the quadword move's
/// fixup turns the quadwords left into bytes first).
pub fn fixup_address(rip: u64) -> u64 {
    if rip == &raw const copy_user_insn_quads as u64 {
        &raw const copy_user_fixup_quads as u64
    } else {
        &raw const copy_user_fixup as u64
    }
}

/// Checks that `[addr, addr + len)` lies in user space.
pub fn check_user_range(addr: u64, len: usize) -> SysResult<()> {
    let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    if end > USER_ADDRESS_END {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Spectre v1 hardening: a user range that failed the check cannot be used even by a
/// mispredicted branch that skipped it. Branch-free: an out-of-range pointer becomes
/// all-ones (non-canonical, so any speculative access through it faults).
#[inline(always)]
fn mask_user_pointer(addr: u64, len: usize) -> u64 {
    let end = addr.wrapping_add(len as u64);
    let bad = (end > USER_ADDRESS_END) as u64 | (end < addr) as u64;
    addr | bad.wrapping_neg()
}

/// Copies user memory at `src` into `dst`.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> SysResult<()> {
    check_user_range(src, dst.len())?;
    let src = mask_user_pointer(src, dst.len());
    if dst.is_empty() {
        return Ok(());
    }
    // SAFETY: `dst` is a valid kernel buffer; `src` is a user range, and faults on it are
    // caught by the exception fixup of `copy_user_insn`.
    let left = unsafe { copy_user_asm(dst.as_mut_ptr(), src as *const u8, dst.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `src` into user memory at `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> SysResult<()> {
    check_user_range(dst, src.len())?;
    let dst = mask_user_pointer(dst, src.len());
    if src.is_empty() {
        return Ok(());
    }
    // SAFETY: as for `copy_from_user`, with the roles swapped.
    let left = unsafe { copy_user_asm(dst as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Plain-old-data types that may be copied to and from user memory byte for byte.
///
/// # Safety
/// Every bit pattern must be a valid value and the type must have no padding that could
/// leak kernel data (or the caller zero-initialises it).
pub unsafe trait Pod: Copy + Default {}
// SAFETY: integers are valid for every bit pattern and have no padding.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: arrays of POD are POD.
unsafe impl<const N: usize> Pod for [u64; N] where [u64; N]: Default {}

/// Reads a `T` from user memory.
pub fn read_user<T: Pod>(addr: u64) -> SysResult<T> {
    let mut value = T::default();
    // SAFETY: `T: Pod`, so any bytes form a valid `T`; the slice covers exactly `value`.
    let bytes =
        unsafe { core::slice::from_raw_parts_mut(&mut value as *mut T as *mut u8, size_of::<T>()) };
    copy_from_user(bytes, addr)?;
    Ok(value)
}

/// Writes `value` to user memory.
pub fn write_user<T: Pod>(addr: u64, value: &T) -> SysResult<()> {
    // SAFETY: `T: Pod` has no uninitialised padding; the slice covers exactly `value`.
    let bytes =
        unsafe { core::slice::from_raw_parts(value as *const T as *const u8, size_of::<T>()) };
    copy_to_user(addr, bytes)
}

/// Reads a NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond; ENOMEM
/// when the heap cannot hold it).
pub fn read_user_cstr(addr: u64, max: usize) -> SysResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 64];
    let mut at = addr;
    loop {
        // Never read across a page boundary in one go: the next page may not exist.
        let to_page_end = (4096 - (at & 4095)) as usize;
        let n = chunk.len().min(to_page_end);
        copy_from_user(&mut chunk[..n], at)?;
        // The string is the caller's to size (up to `max`): ENOMEM, not a panic, when
        // the heap cannot hold it.
        out.try_reserve(n).map_err(|_| Errno::ENOMEM)?;
        if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        at += n as u64;
    }
}
