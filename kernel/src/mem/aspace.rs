//! A user address space: its page tables and its VMAs (non-overlapping regions with
//! protections), demand-zero faults, and the operations mmap/munmap/mprotect/brk need.
//!
//! This is the first, simple form: one lock per address space and eager copying on fork.
//! The scalable fault path (per-VMA locking, COW, page cache) replaces it in `mm/`.

use super::{frames, pagetable::{self, flags}};
use crate::{arch::{paging::phys_to_virt, tlb}, syscall::errno::{Errno, SysResult}};
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Page size.
pub const PAGE: u64 = 4096;
/// Top of the default mmap area (mappings are placed downwards from here).
pub const MMAP_TOP: u64 = 0x0000_7f00_0000_0000;
/// Top of the main thread's stack.
pub const STACK_TOP: u64 = 0x0000_7fff_ff00_0000;
/// Size of the main thread's stack mapping.
pub const STACK_BYTES: u64 = 8 << 20;

/// Page protections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Prot {
    /// From Linux `PROT_*` bits.
    pub fn from_bits(bits: u64) -> Self {
        Self { read: bits & 1 != 0, write: bits & 2 != 0, exec: bits & 4 != 0 }
    }

    fn pte_flags(self) -> u64 {
        let mut f = flags::PRESENT | flags::USER;
        if self.write {
            f |= flags::WRITABLE;
        }
        if !self.exec {
            f |= flags::NO_EXECUTE;
        }
        f
    }
}

/// A mapped region `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub struct Vma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Protections.
    pub prot: Prot,
    /// MAP_SHARED: fork shares the pages instead of copying them.
    pub shared: bool,
}

/// Why a fault could not be resolved (becomes SIGSEGV's `si_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// No mapping at the address (SEGV_MAPERR).
    Unmapped,
    /// The mapping forbids the access (SEGV_ACCERR).
    Protection,
    /// No memory for the page (the process gets SIGBUS... or the OOM path later).
    OutOfMemory,
}

struct Inner {
    vmas: BTreeMap<u64, Vma>,
    brk_start: u64,
    brk: u64,
}

/// Identifiers of address spaces (futex keys).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process's address space.
pub struct AddressSpace {
    root: u64,
    /// The user-mode top-level table under KPTI (0 without KPTI).
    user_root: u64,
    id: u64,
    inner: Mutex<Inner>,
    /// CPUs that currently have this address space loaded (bit per CPU).
    pub active_cpus: AtomicU64,
}

impl AddressSpace {
    /// An empty address space.
    pub fn new() -> SysResult<Self> {
        let root = pagetable::new_root().ok_or(Errno::ENOMEM)?;
        let user_root = if crate::arch::kpti::enabled() { crate::arch::kpti::new_user_root(root) } else { 0 };
        Ok(Self {
            root,
            user_root,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::new(Inner { vmas: BTreeMap::new(), brk_start: 0, brk: 0 }),
            active_cpus: AtomicU64::new(0),
        })
    }

    /// Physical address of the top-level table (for CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Physical address of the user-mode table under KPTI (0 without KPTI).
    pub fn user_root(&self) -> u64 {
        self.user_root
    }

    /// The last-level entry for `va`, creating tables when `create`; a new top-level entry
    /// is mirrored into the KPTI user table.
    fn pte(&self, va: u64, create: bool) -> Option<&'static mut u64> {
        let e = pagetable::entry(self.root, va, create)?;
        if create && self.user_root != 0 {
            crate::arch::kpti::sync(self.root, self.user_root, ((va >> 39) & 511) as usize);
        }
        Some(e)
    }

    /// A unique id (futex keys).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sets the initial program break (after the highest loaded segment).
    pub fn set_brk_start(&self, at: u64) {
        let mut inner = self.inner.lock();
        inner.brk_start = at;
        inner.brk = at;
    }

    fn overlaps(inner: &Inner, start: u64, end: u64) -> bool {
        inner.vmas.range(..end).next_back().is_some_and(|(_, v)| v.end > start)
    }

    /// Maps `[start, start + len)` with `prot` (page aligned), replacing what was there
    /// when `replace`, failing with EEXIST otherwise.
    pub fn map_fixed(&self, start: u64, len: u64, prot: Prot, replace: bool) -> SysResult<()> {
        self.map_fixed_shared(start, len, prot, replace, false)
    }

    /// As [`map_fixed`](Self::map_fixed), for a shared (`shared`) or private mapping.
    pub fn map_fixed_shared(&self, start: u64, len: u64, prot: Prot, replace: bool, shared: bool) -> SysResult<()> {
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if replace {
            self.unmap(start, len)?;
        }
        let mut inner = self.inner.lock();
        if Self::overlaps(&inner, start, end) {
            return Err(Errno::EEXIST);
        }
        if inner.vmas.len() as u64 >= crate::registry::max_map_count() {
            return Err(Errno::ENOMEM);
        }
        inner.vmas.insert(start, Vma { start, end, prot, shared });
        Ok(())
    }

    fn find_free_locked(inner: &Inner, len: u64, min_addr: u64, below: u64) -> SysResult<u64> {
        let mut top = below;
        for (_, v) in inner.vmas.range(..below).rev() {
            if v.end <= top && top - v.end >= len && top - len >= min_addr {
                return Ok(top - len);
            }
            top = top.min(v.start);
        }
        if top >= len && top - len >= min_addr {
            return Ok(top - len);
        }
        Err(Errno::ENOMEM)
    }

    /// Maps `len` bytes at `hint` if that range is free and within `[min_addr, below)`,
    /// else at the highest free range below `below`; the search and the insertion happen
    /// under one lock, so concurrent mmaps never pick the same range.
    pub fn map_anywhere(&self, len: u64, hint: u64, min_addr: u64, below: u64, prot: Prot, shared: bool) -> SysResult<u64> {
        let mut inner = self.inner.lock();
        let hint_ok = hint >= min_addr
            && hint.checked_add(len).is_some_and(|end| end <= below && !Self::overlaps(&inner, hint, end));
        if inner.vmas.len() as u64 >= crate::registry::max_map_count() {
            return Err(Errno::ENOMEM);
        }
        let start = if hint_ok { hint } else { Self::find_free_locked(&inner, len, min_addr, below)? };
        inner.vmas.insert(start, Vma { start, end: start + len, prot, shared });
        Ok(start)
    }

    /// Unmaps `[start, start + len)`, splitting VMAs and freeing their pages.
    pub fn unmap(&self, start: u64, len: u64) -> SysResult<()> {
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        let mut inner = self.inner.lock();
        let hit: alloc::vec::Vec<Vma> =
            inner.vmas.range(..end).rev().take_while(|(_, v)| v.end > start).map(|(_, v)| *v).collect();
        // Splitting one VMA in the middle adds one: refuse past max_map_count, unchanged.
        let pieces: usize = hit.iter().map(|v| usize::from(v.start < start) + usize::from(v.end > end)).sum();
        if (inner.vmas.len() - hit.len() + pieces) as u64 > crate::registry::max_map_count() {
            return Err(Errno::ENOMEM);
        }
        for v in hit {
            inner.vmas.remove(&v.start);
            if v.start < start {
                inner.vmas.insert(v.start, Vma { end: start, ..v });
            }
            if v.end > end {
                inner.vmas.insert(end, Vma { start: end, ..v });
            }
        }
        drop(inner);
        self.free_pages(start, end);
        Ok(())
    }

    fn free_pages(&self, start: u64, end: u64) {
        let mut freed = 0;
        pagetable::for_each_present(self.root, start, end, |_, e| {
            release_frame(*e & pagetable::ADDRESS_MASK);
            *e = 0;
            freed += 1;
        });
        if freed > 0 {
            tlb::flush_address_space(self, start, end);
        }
    }

    /// Changes protections of `[start, start + len)`; every page must be mapped (ENOMEM).
    pub fn protect(&self, start: u64, len: u64, prot: Prot) -> SysResult<()> {
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut inner = self.inner.lock();
        let mut covered = start;
        for (_, v) in inner.vmas.range(..end) {
            if v.end <= covered {
                continue;
            }
            if v.start > covered {
                return Err(Errno::ENOMEM);
            }
            covered = v.end;
        }
        if covered < end {
            return Err(Errno::ENOMEM);
        }
        let hit: alloc::vec::Vec<Vma> =
            inner.vmas.range(..end).rev().take_while(|(_, v)| v.end > start).map(|(_, v)| *v).collect();
        let pieces: usize = hit.iter().map(|v| 1 + usize::from(v.start < start) + usize::from(v.end > end)).sum();
        if (inner.vmas.len() - hit.len() + pieces) as u64 > crate::registry::max_map_count() {
            return Err(Errno::ENOMEM);
        }
        for v in hit {
            inner.vmas.remove(&v.start);
            if v.start < start {
                inner.vmas.insert(v.start, Vma { end: start, ..v });
            }
            if v.end > end {
                inner.vmas.insert(end, Vma { start: end, ..v });
            }
            let (s, e) = (v.start.max(start), v.end.min(end));
            inner.vmas.insert(s, Vma { start: s, end: e, prot, shared: v.shared });
        }
        let pte_flags = prot.pte_flags();
        pagetable::for_each_present(self.root, start, end, |_, e| {
            *e = (*e & pagetable::ADDRESS_MASK) | pte_flags | flags::ACCESSED | flags::DIRTY;
        });
        drop(inner);
        tlb::flush_address_space(self, start, end);
        Ok(())
    }

    /// Moves the program break; returns the new (or unchanged) break.
    pub fn set_brk(&self, requested: u64) -> u64 {
        let (old, start) = {
            let inner = self.inner.lock();
            (inner.brk, inner.brk_start)
        };
        if requested < start {
            return old;
        }
        let old_end = old.next_multiple_of(PAGE);
        let new_end = requested.next_multiple_of(PAGE);
        let rw = Prot { read: true, write: true, exec: false };
        if new_end > old_end {
            if self.map_fixed(old_end, new_end - old_end, rw, false).is_err() {
                return old;
            }
        } else if new_end < old_end {
            let _ = self.unmap(new_end, old_end - new_end);
        }
        self.inner.lock().brk = requested;
        requested
    }

    /// The VMA containing `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<Vma> {
        let inner = self.inner.lock();
        inner.vmas.range(..=addr).next_back().map(|(_, v)| *v).filter(|v| v.end > addr)
    }

    /// Resolves a fault at `addr` at once: demand-zero for a missing page the VMA allows.
    pub fn fault(&self, addr: u64, write: bool, exec: bool) -> Result<(), FaultError> {
        let inner = self.inner.lock();
        let vma = inner.vmas.range(..=addr).next_back().map(|(_, v)| *v).filter(|v| v.end > addr);
        let vma = vma.ok_or(FaultError::Unmapped)?;
        let readable = vma.prot.read || vma.prot.write;
        if (write && !vma.prot.write) || (exec && !vma.prot.exec) || (!write && !exec && !readable)
        {
            return Err(FaultError::Protection);
        }
        let page = addr & !(PAGE - 1);
        let e = self.pte(page, true).ok_or(FaultError::OutOfMemory)?;
        if *e & flags::PRESENT != 0 {
            // Another thread mapped it first, or a stale TLB entry: nothing to do.
            return Ok(());
        }
        let frame = frames::alloc_zeroed().ok_or(FaultError::OutOfMemory)?;
        *e = frame | vma.prot.pte_flags() | flags::ACCESSED | if write { flags::DIRTY } else { 0 };
        Ok(())
    }

    /// Writes `data` at `start` followed by zeroes up to `start + mem_len`, backing every
    /// page with a frame (fresh and zeroed, or the one already there: ELF segments may share
    /// a page). The pages get `prot` (combined with what is already mapped there).
    pub fn populate(&self, start: u64, data: &[u8], mem_len: u64, prot: Prot) -> SysResult<()> {
        let end = start + mem_len;
        let mut page = start & !(PAGE - 1);
        let _inner = self.inner.lock();
        while page < end {
            let e = self.pte(page, true).ok_or(Errno::ENOMEM)?;
            let mut pte_flags = prot.pte_flags();
            let frame = if *e & flags::PRESENT != 0 {
                if *e & flags::WRITABLE != 0 {
                    pte_flags |= flags::WRITABLE;
                }
                if *e & flags::NO_EXECUTE == 0 {
                    pte_flags &= !flags::NO_EXECUTE;
                }
                *e & pagetable::ADDRESS_MASK
            } else {
                frames::alloc_zeroed().ok_or(Errno::ENOMEM)?
            };
            let dst = phys_to_virt(frame);
            let lo = page.max(start);
            let hi = (page + PAGE).min(start + data.len() as u64);
            if lo < hi {
                let src = &data[(lo - start) as usize..(hi - start) as usize];
                // SAFETY: `dst` is a frame of this address space in the direct map; the range
                // stays inside it.
                unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst.add((lo - page) as usize), src.len()) };
            }
            *e = frame | pte_flags | flags::ACCESSED | flags::DIRTY;
            page += PAGE;
        }
        Ok(())
    }

    /// Maps the pages of `[start, end)` that no VMA covers yet, with `prot`.
    pub fn map_uncovered(&self, start: u64, end: u64, prot: Prot) -> SysResult<()> {
        let mut page = start;
        while page < end {
            let run_start = page;
            while page < end && self.vma_at(page).is_none() {
                page += PAGE;
            }
            if page > run_start {
                self.map_fixed(run_start, page - run_start, prot, false)?;
            }
            while page < end && self.vma_at(page).is_some() {
                page += PAGE;
            }
        }
        Ok(())
    }

    /// A copy for fork: same VMAs, every present page copied into a new frame.
    pub fn fork_copy(&self) -> SysResult<AddressSpace> {
        let child = AddressSpace::new()?;
        let inner = self.inner.lock();
        {
            let mut c = child.inner.lock();
            c.vmas = inner.vmas.clone();
            c.brk_start = inner.brk_start;
            c.brk = inner.brk;
        }
        let mut result = Ok(());
        let shared_ranges: alloc::vec::Vec<(u64, u64)> =
            inner.vmas.values().filter(|v| v.shared).map(|v| (v.start, v.end)).collect();
        pagetable::for_each_present(self.root, 0, crate::arch::usermode::USER_ADDRESS_END, |va, e| {
            if result.is_err() {
                return;
            }
            let phys = *e & pagetable::ADDRESS_MASK;
            if shared_ranges.iter().any(|&(s, end)| va >= s && va < end) {
                match child.pte(va, true) {
                    Some(ce) => {
                        share_frame(phys);
                        *ce = *e;
                    }
                    None => result = Err(Errno::ENOMEM),
                }
                return;
            }
            let Some(frame) = frames::alloc() else {
                result = Err(Errno::ENOMEM);
                return;
            };
            // SAFETY: both frames are in the direct map; the source is a mapped user page of
            // the parent, the destination a fresh frame.
            unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(phys), phys_to_virt(frame), PAGE as usize) };
            match child.pte(va, true) {
                Some(ce) => *ce = frame | (*e & !pagetable::ADDRESS_MASK),
                None => {
                    frames::free(frame);
                    result = Err(Errno::ENOMEM);
                }
            }
        });
        result.map(|()| child)
    }

    /// Resident pages (present PTEs).
    pub fn resident_pages(&self) -> u64 {
        let mut n = 0;
        pagetable::for_each_present(self.root, 0, crate::arch::usermode::USER_ADDRESS_END, |_, _| n += 1);
        n
    }
}

/// Frames mapped by more than one address space (MAP_SHARED after fork), with their
/// mapping counts. A frame not listed has exactly one owner.
static SHARED_FRAMES: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());

fn share_frame(phys: u64) {
    *SHARED_FRAMES.lock().entry(phys).or_insert(1) += 1;
}

/// Drops one mapping of `phys`; the last one frees the frame.
fn release_frame(phys: u64) {
    {
        let mut shared = SHARED_FRAMES.lock();
        if let Some(count) = shared.get_mut(&phys) {
            *count -= 1;
            if *count <= 1 {
                shared.remove(&phys);
            }
            return;
        }
    }
    frames::free(phys);
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        tlb::release(self);
        if self.user_root != 0 {
            crate::arch::kpti::free_user_root(self.user_root);
        }
        pagetable::for_each_present(self.root, 0, crate::arch::usermode::USER_ADDRESS_END, |_, e| {
            release_frame(*e & pagetable::ADDRESS_MASK);
            *e = 0;
        });
        pagetable::free_tables(self.root);
    }
}

impl AddressSpace {
    /// The VMAs, in address order.
    pub fn vmas(&self) -> alloc::vec::Vec<Vma> {
        self.inner.lock().vmas.values().copied().collect()
    }

    /// The program break range `[start, current)`.
    pub fn brk_range(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.brk_start, inner.brk)
    }

    /// Present pages in `[start, end)`.
    pub fn present_pages(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        pagetable::for_each_present(self.root, start, end, |_, _| n += 1);
        n
    }

    /// The physical address backing user address `addr`, faulting the page in (for a
    /// `write` when `write`) if the mapping allows it.
    pub fn translate(&self, addr: u64, write: bool) -> Option<u64> {
        for _ in 0..2 {
            {
                let _inner = self.inner.lock();
                if let Some(e) = self.pte(addr & !(PAGE - 1), false) {
                    if *e & flags::PRESENT != 0 && (!write || *e & flags::WRITABLE != 0) {
                        return Some((*e & pagetable::ADDRESS_MASK) + (addr & (PAGE - 1)));
                    }
                }
            }
            self.fault(addr, write, false).ok()?;
        }
        None
    }

    /// The physical frame of `addr` if it is present (no fault).
    pub fn frame_of(&self, addr: u64) -> Option<u64> {
        let _inner = self.inner.lock();
        let e = self.pte(addr & !(PAGE - 1), false)?;
        (*e & flags::PRESENT != 0).then_some(*e & pagetable::ADDRESS_MASK)
    }

    /// Copies between `buf` and this address space at `addr` (another process's memory,
    /// through the direct map); returns the bytes moved before the first unmapped page.
    pub fn access(&self, addr: u64, buf: &mut [u8], write: bool) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            let Some(phys) = self.translate(at, write) else { break };
            let n = ((PAGE - (at & (PAGE - 1))) as usize).min(buf.len() - done);
            let ptr = phys_to_virt(phys);
            // SAFETY: `phys..phys + n` lies in one mapped frame of this address space, reached
            // through the direct map; `buf` is a kernel buffer.
            unsafe {
                if write {
                    core::ptr::copy_nonoverlapping(buf[done..].as_ptr(), ptr, n);
                } else {
                    core::ptr::copy_nonoverlapping(ptr, buf[done..].as_mut_ptr(), n);
                }
            }
            done += n;
        }
        done
    }
}
