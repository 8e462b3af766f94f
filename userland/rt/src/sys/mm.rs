//! Address-space syscalls: mmap, munmap, mprotect, madvise, mremap, msync, mincore,
//! remap_file_pages, brk.

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
/// `MADV_FREE`: the pages may be freed lazily; until then they keep their contents.
pub const MADV_FREE: i32 = 8;
/// `MADV_REMOVE`: punch a hole in the shared memory behind the range.
pub const MADV_REMOVE: i32 = 9;
/// `MADV_DONTFORK`: a forked child does not inherit the range.
pub const MADV_DONTFORK: i32 = 10;
/// `MADV_DOFORK`: undoes `MADV_DONTFORK`.
pub const MADV_DOFORK: i32 = 11;
/// `MADV_MERGEABLE` (KSM).
pub const MADV_MERGEABLE: i32 = 12;
/// `MADV_UNMERGEABLE` (KSM).
pub const MADV_UNMERGEABLE: i32 = 13;
/// `MADV_HUGEPAGE`.
pub const MADV_HUGEPAGE: i32 = 14;
/// `MADV_NOHUGEPAGE`.
pub const MADV_NOHUGEPAGE: i32 = 15;
/// `MADV_DONTDUMP`: leave the range out of core dumps.
pub const MADV_DONTDUMP: i32 = 16;
/// `MADV_DODUMP`: undoes `MADV_DONTDUMP`.
pub const MADV_DODUMP: i32 = 17;
/// `MADV_WIPEONFORK`: a forked child sees the range zero-filled.
pub const MADV_WIPEONFORK: i32 = 18;
/// `MADV_KEEPONFORK`: undoes `MADV_WIPEONFORK`.
pub const MADV_KEEPONFORK: i32 = 19;
/// `MADV_COLD`: deactivate the pages (reclaim them first).
pub const MADV_COLD: i32 = 20;
/// `MADV_PAGEOUT`: reclaim the pages now.
pub const MADV_PAGEOUT: i32 = 21;
/// `MADV_POPULATE_READ`: pre-fault the range readable.
pub const MADV_POPULATE_READ: i32 = 22;
/// `MADV_POPULATE_WRITE`: pre-fault the range writable.
pub const MADV_POPULATE_WRITE: i32 = 23;

bitflags::bitflags! {
    /// `MREMAP_*` flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MremapFlags: u32 {
        /// The mapping may move if it cannot be resized in place.
        const MAYMOVE = 1;
        /// Move to exactly `new_addr` (needs `MAYMOVE`).
        const FIXED = 2;
        /// Leave the old range mapped (and empty) after a move.
        const DONTUNMAP = 4;
    }
}

bitflags::bitflags! {
    /// `MS_*` flags of [`msync`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MsyncFlags: u32 {
        /// Schedule the write-back and return.
        const ASYNC = 1;
        /// Invalidate other mappings of the same file.
        const INVALIDATE = 2;
        /// Write back and wait.
        const SYNC = 4;
    }
}

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

/// Resizes and/or moves the mapping at `old..old+old_len` to `new_len` bytes; returns
/// its (possibly new) address. `new_addr` is used with `MremapFlags::FIXED`.
///
/// # Safety
/// The old range may be unmapped or moved, and with `FIXED` whatever was at
/// `new_addr..new_addr+new_len` is replaced: the caller must hold no references into
/// either range.
pub unsafe fn mremap(
    old: *mut u8,
    old_len: usize,
    new_len: usize,
    flags: MremapFlags,
    new_addr: usize,
) -> Result<*mut u8, Errno> {
    // SAFETY: the caller gives up both ranges (contract above).
    let r = unsafe {
        syscall5(
            nr::MREMAP,
            old as usize,
            old_len,
            new_len,
            flags.bits() as usize,
            new_addr,
        )
    };
    Errno::result(r).map(|a| a as *mut u8)
}

/// Flushes changes to the file behind `addr..addr+len` (`MS_INVALIDATE` also drops
/// other mappings' cached copies).
///
/// # Safety
/// With `MsyncFlags::INVALIDATE` the contents of other mappings of the file may be
/// refreshed from the file: the caller must not rely on them staying unchanged.
pub unsafe fn msync(addr: *mut u8, len: usize, flags: MsyncFlags) -> Result<(), Errno> {
    // SAFETY: the caller accepts the effect on the mapping (contract above).
    Errno::result(unsafe { syscall3(nr::MSYNC, addr as usize, len, flags.bits() as usize) })
        .map(|_| ())
}

/// Fills `vec` with one byte per page of `addr..addr+len` (bit 0 set when the page
/// is resident). `EFAULT` without calling the kernel when `vec` is shorter than the
/// range's page count (the kernel would write past it).
pub fn mincore(addr: usize, len: usize, vec: &mut [u8]) -> Result<(), Errno> {
    if vec.len() < len.div_ceil(PAGE_SIZE) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: `vec` is writable and long enough for every page of the range.
    unsafe { mincore_raw(addr, len, vec.as_mut_ptr()) }
}

/// `mincore(2)` with a raw vector pointer, for tests that pass bad pointers.
///
/// # Safety
/// If `vec..vec+ceil(len/4096)` is mapped writable memory of this process, the kernel
/// writes into it: the caller must own that memory.
pub unsafe fn mincore_raw(addr: usize, len: usize, vec: *mut u8) -> Result<(), Errno> {
    // SAFETY: the caller owns the destination (contract above); mincore only reads
    // the page tables of `addr..addr+len`.
    Errno::result(unsafe { syscall3(nr::MINCORE, addr, len, vec as usize) }).map(|_| ())
}

/// Remaps `start..start+size` of a shared file mapping to the file pages starting at
/// `pgoff` (Linux emulates this deprecated call with `mmap`). `prot` must be 0.
///
/// # Safety
/// The range afterwards shows other pages of the file: the caller must hold no
/// references into it that assume the old contents.
pub unsafe fn remap_file_pages(
    start: *mut u8,
    size: usize,
    prot: u32,
    pgoff: usize,
    flags: u32,
) -> Result<(), Errno> {
    // SAFETY: the caller accepts the new contents of the range (contract above).
    let r = unsafe {
        syscall5(
            nr::REMAP_FILE_PAGES,
            start as usize,
            size,
            prot as usize,
            pgoff,
            flags as usize,
        )
    };
    Errno::result(r).map(|_| ())
}
