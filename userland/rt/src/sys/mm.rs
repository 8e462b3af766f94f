//! Address-space syscalls: mmap, munmap, mprotect, madvise, brk.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// The page size every x86_64 Linux process starts with (also `AT_PAGESZ`).
pub const PAGE_SIZE: usize = 4096;

bitflags::bitflags! {
    /// `PROT_*` protection bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Prot: u32 {
        /// Pages may be read.
        const READ = 0x1;
        /// Pages may be written.
        const WRITE = 0x2;
        /// Pages may be executed.
        const EXEC = 0x4;
    }
}

impl Prot {
    /// `PROT_NONE`: no access.
    pub const NONE: Prot = Prot::empty();
    /// `PROT_READ | PROT_WRITE`.
    pub const RW: Prot = Prot::READ.union(Prot::WRITE);
}

bitflags::bitflags! {
    /// `MAP_*` flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MapFlags: u32 {
        /// Share changes with other mappings of the object.
        const SHARED = 0x01;
        /// Private copy-on-write mapping.
        const PRIVATE = 0x02;
        /// Shared with validation of every flag.
        const SHARED_VALIDATE = 0x03;
        /// Place exactly at `addr`, replacing what is there.
        const FIXED = 0x10;
        /// Not backed by a file.
        const ANONYMOUS = 0x20;
        /// Place below 2 GiB.
        const MAP_32BIT = 0x40;
        /// Stack-like segment that grows down.
        const GROWSDOWN = 0x100;
        /// Lock the pages (like mlock).
        const LOCKED = 0x2000;
        /// Do not reserve swap/commit.
        const NORESERVE = 0x4000;
        /// Prefault the pages.
        const POPULATE = 0x8000;
        /// Do not block on I/O while populating.
        const NONBLOCK = 0x10000;
        /// Hint: this is a stack.
        const STACK = 0x20000;
        /// Use huge pages.
        const HUGETLB = 0x40000;
        /// Like FIXED but fail with EEXIST instead of replacing.
        const FIXED_NOREPLACE = 0x100000;
        /// Do not clear anonymous pages (EINVAL on Peios).
        const UNINITIALIZED = 0x4000000;
    }
}

/// `MADV_NORMAL`.
pub const MADV_NORMAL: i32 = 0;
/// `MADV_RANDOM`.
pub const MADV_RANDOM: i32 = 1;
/// `MADV_SEQUENTIAL`.
pub const MADV_SEQUENTIAL: i32 = 2;
/// `MADV_WILLNEED`.
pub const MADV_WILLNEED: i32 = 3;
/// `MADV_DONTNEED`: drop the pages; anonymous ones read back as zero.
pub const MADV_DONTNEED: i32 = 4;
/// `MADV_FREE`.
pub const MADV_FREE: i32 = 8;
/// `MADV_HUGEPAGE`.
pub const MADV_HUGEPAGE: i32 = 14;
/// `MADV_NOHUGEPAGE`.
pub const MADV_NOHUGEPAGE: i32 = 15;

/// Maps memory; returns its address.
///
/// # Safety
/// With `MapFlags::FIXED` the mapping replaces whatever was at `addr`: the caller
/// must not hold references into that range. A shared or file mapping may also
/// change under the caller's feet; the caller accounts for that.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: Prot,
    flags: MapFlags,
    fd: i32,
    offset: u64,
) -> Result<*mut u8, Errno> {
    // SAFETY: the caller accepts the effects on the address space (contract above).
    let r = unsafe {
        syscall6(
            nr::MMAP,
            addr,
            len,
            prot.bits() as usize,
            flags.bits() as usize,
            fd as usize,
            offset as usize,
        )
    };
    Errno::result(r).map(|a| a as *mut u8)
}

/// Maps `len` bytes of fresh private anonymous memory with `prot` at an address the
/// kernel chooses. Cannot disturb existing memory, hence safe.
pub fn mmap_anon(len: usize, prot: Prot) -> Result<*mut u8, Errno> {
    // SAFETY: without MAP_FIXED the kernel picks a free range, so nothing the
    // program uses is replaced.
    unsafe { mmap(0, len, prot, MapFlags::PRIVATE | MapFlags::ANONYMOUS, -1, 0) }
}

/// Unmaps `addr..addr+len`.
///
/// # Safety
/// Nothing may be used in the range afterwards (no live references, no thread
/// stack, no allocator memory still handed out).
pub unsafe fn munmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller guarantees the range is no longer used.
    Errno::result(unsafe { syscall2(nr::MUNMAP, addr as usize, len) }).map(|_| ())
}

/// Changes the protection of `addr..addr+len`.
///
/// # Safety
/// Removing access from memory the program still uses makes later accesses fault;
/// the caller must expect that (for example with a SIGSEGV handler).
pub unsafe fn mprotect(addr: *mut u8, len: usize, prot: Prot) -> Result<(), Errno> {
    // SAFETY: the caller accepts the new protection (contract above).
    Errno::result(unsafe { syscall3(nr::MPROTECT, addr as usize, len, prot.bits() as usize) })
        .map(|_| ())
}

/// Gives the kernel advice about `addr..addr+len`.
///
/// # Safety
/// Some advice (`MADV_DONTNEED`, `MADV_FREE`) discards contents: the caller must not
/// rely on them afterwards.
pub unsafe fn madvise(addr: *mut u8, len: usize, advice: i32) -> Result<(), Errno> {
    // SAFETY: the caller accepts the advice's effect on the contents.
    Errno::result(unsafe { syscall3(nr::MADVISE, addr as usize, len, advice as usize) }).map(|_| ())
}

/// Sets the program break to `addr` (0 queries it); returns the new break, which
/// Linux leaves unchanged on failure rather than returning an error.
///
/// # Safety
/// Shrinking the break unmaps memory: nothing may be used above the new break.
pub unsafe fn brk(addr: usize) -> usize {
    // SAFETY: the caller guarantees the released range is unused.
    unsafe { syscall1(nr::BRK, addr) as usize }
}
