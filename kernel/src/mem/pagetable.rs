//! Hardware page tables of user address spaces: `mm::pagetable::PageTable` over real
//! x86_64 4-level tables, reached through the direct map. Entries change only by atomic
//! compare-and-swap, so faults on different pages never take a lock; intermediate tables
//! are installed by compare-and-swap too. The kernel half (PML4 entries 256-511) is shared
//! with the kernel's own tables; under KPTI new top-level entries are mirrored into the
//! address space's user table.

use super::frames;
use crate::arch::paging::{current_root, phys_to_virt};
use core::sync::atomic::{AtomicU64, Ordering};
use mm::{
    frame::Pfn,
    pagetable::{InstallError, PageTable, Pte, PteFlags},
    swap::SwapEntry,
};

/// Hardware entry bits.
mod bits {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// Software: an entry another fault is filling (copy-on-write in progress).
    pub const BUSY: u64 = 1 << 10;
    /// Software, with P clear: the entry holds a swap entry (in the address bits).
    pub const SWAP: u64 = 1 << 9;
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Physical-address bits of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

fn table(phys: u64) -> &'static [AtomicU64; 512] {
    // SAFETY: `phys` is a page-table page of a live address space; entries are only
    // accessed atomically.
    unsafe { &*(phys_to_virt(phys) as *const [AtomicU64; 512]) }
}

static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// Page-table pages of every user address space (meminfo's `PageTables`).
static TABLE_PAGES: AtomicU64 = AtomicU64::new(0);

/// Page-table pages of every user address space now.
pub fn table_pages() -> u64 {
    TABLE_PAGES.load(Ordering::Relaxed)
}

/// Records the kernel's own root (boot CPU, after `paging::init`).
pub fn set_kernel_root() {
    KERNEL_ROOT.store(current_root(), Ordering::Relaxed);
}

/// The kernel's own root table.
pub fn current_kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Relaxed)
}

/// A fresh top-level table sharing the kernel half.
pub fn new_root() -> Option<u64> {
    let root = frames::alloc_zeroed()?;
    let kernel = table(current_kernel_root());
    let new = table(root);
    for i in 256..512 {
        new[i].store(kernel[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
    Some(root)
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 511) as usize
}

fn encode(pte: Pte) -> u64 {
    let f = pte.flags;
    let mut e = (pte.pfn.0 << 12) | bits::USER;
    if f.contains(PteFlags::READ) {
        e |= bits::PRESENT;
    }
    if f.contains(PteFlags::WRITE) {
        e |= bits::WRITABLE;
    }
    if !f.contains(PteFlags::EXEC) {
        e |= bits::NO_EXECUTE;
    }
    if f.contains(PteFlags::ACCESSED) {
        e |= bits::ACCESSED;
    }
    if f.contains(PteFlags::DIRTY) {
        e |= bits::DIRTY;
    }
    if f.contains(PteFlags::BUSY) {
        e |= bits::BUSY;
    }
    e
}

/// An entry is in use iff it is non-zero (a PROT_NONE entry keeps its frame with P=0);
/// a swap entry is not a mapping (see [`decode_swap`]).
fn decode(e: u64) -> Option<Pte> {
    if e == 0 || is_swap(e) {
        return None;
    }
    let mut f = PteFlags::empty();
    if e & bits::PRESENT != 0 {
        f |= PteFlags::READ;
        if e & bits::NO_EXECUTE == 0 {
            f |= PteFlags::EXEC;
        }
        if e & bits::WRITABLE != 0 {
            f |= PteFlags::WRITE;
        }
    }
    if e & bits::ACCESSED != 0 {
        f |= PteFlags::ACCESSED;
    }
    if e & bits::DIRTY != 0 {
        f |= PteFlags::DIRTY;
    }
    if e & bits::BUSY != 0 {
        f |= PteFlags::BUSY;
    }
    Some(Pte::new(Pfn((e & ADDRESS_MASK) >> 12), f))
}

/// Whether entry word `e` holds a swap entry.
fn is_swap(e: u64) -> bool {
    e & (bits::PRESENT | bits::SWAP) == bits::SWAP
}

/// A swap entry's word: P clear, the SWAP bit, the entry in bits 12 and up (45 bits,
/// below the NX bit), nothing the hardware would read.
fn encode_swap(swap: SwapEntry) -> u64 {
    (swap.raw() << 12) | bits::SWAP
}

fn decode_swap(e: u64) -> Option<SwapEntry> {
    is_swap(e).then(|| SwapEntry::from_raw(e >> 12))
}

/// The x86_64 page table of one address space.
pub struct X86PageTable {
    root: u64,
    user_root: u64,
    /// Table pages below the root (the root and the KPTI user root are counted apart).
    tables: AtomicU64,
}

impl X86PageTable {
    /// An empty table (kernel half shared); with a KPTI user table when KPTI is on.
    pub fn new() -> Option<Self> {
        let root = new_root()?;
        let user_root = if crate::arch::kpti::enabled() {
            match crate::arch::kpti::new_user_root(root) {
                Some(user_root) => user_root,
                None => {
                    frames::free(root);
                    return None;
                }
            }
        } else {
            0
        };
        let roots = if user_root != 0 { 2 } else { 1 };
        TABLE_PAGES.fetch_add(roots, Ordering::Relaxed);
        Some(Self {
            root,
            user_root,
            tables: AtomicU64::new(0),
        })
    }

    /// The kernel-mode root (CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The user-mode root under KPTI (0 without).
    pub fn user_root(&self) -> u64 {
        self.user_root
    }

    /// The last-level table covering `va`, creating intermediate tables (by
    /// compare-and-swap) when `create`.
    fn leaf_table(
        &self,
        va: u64,
        create: bool,
    ) -> Result<Option<&'static [AtomicU64; 512]>, InstallError> {
        let mut phys = self.root;
        for level in (1..4).rev() {
            let slot = &table(phys)[index(va, level)];
            let mut e = slot.load(Ordering::Acquire);
            if e & bits::PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                let next = frames::alloc_zeroed().ok_or(InstallError::NoMemory)?;
                let new = next | bits::PRESENT | bits::WRITABLE | bits::USER;
                match slot.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        e = new;
                        self.tables.fetch_add(1, Ordering::Relaxed);
                        TABLE_PAGES.fetch_add(1, Ordering::Relaxed);
                        if level == 3 && self.user_root != 0 {
                            crate::arch::kpti::sync(self.root, self.user_root, index(va, 3));
                        }
                    }
                    Err(current) => {
                        frames::free(next);
                        e = current;
                    }
                }
            }
            phys = e & ADDRESS_MASK;
        }
        Ok(Some(table(phys)))
    }

    /// The last-level entry for `va`, creating intermediate tables when `create`.
    fn leaf(&self, va: u64, create: bool) -> Result<Option<&'static AtomicU64>, InstallError> {
        Ok(self.leaf_table(va, create)?.map(|leaf| &leaf[index(va, 0)]))
    }

    /// Calls `f(first, last, leaf)` for every present last-level table, in address
    /// order, with the part `[first, last)` of `[start, end)` it covers; stops at the
    /// first error `f` returns.
    fn each_leaf_table(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, u64, &'static [AtomicU64; 512]) -> Result<(), InstallError>,
    ) -> Result<(), InstallError> {
        type LeafFn<'a> =
            dyn FnMut(u64, u64, &'static [AtomicU64; 512]) -> Result<(), InstallError> + 'a;
        fn walk(
            phys: u64,
            level: u32,
            base: u64,
            (start, end): (u64, u64),
            f: &mut LeafFn<'_>,
        ) -> Result<(), InstallError> {
            let span = 1u64 << (12 + 9 * level);
            let limit = if level == 3 { 256 } else { 512 };
            for (i, slot) in table(phys).iter().enumerate().take(limit) {
                let va = base + i as u64 * span;
                if va + span <= start || va >= end {
                    continue;
                }
                let e = slot.load(Ordering::Acquire);
                if e & bits::PRESENT == 0 {
                    continue;
                }
                if level == 1 {
                    f(va.max(start), (va + span).min(end), table(e & ADDRESS_MASK))?;
                } else {
                    walk(e & ADDRESS_MASK, level - 1, va, (start, end), f)?;
                }
            }
            Ok(())
        }
        walk(self.root, 3, 0, (start, end), f)
    }

    /// Copies the entries of one parent leaf table that fall in `[first, last)` (one
    /// 2 MiB span) into the child's table for the same span (`PageTable::fork_range`).
    fn fork_leaf(
        &self,
        child: &X86PageTable,
        leaf: &[AtomicU64; 512],
        first: u64,
        last: u64,
        write_protect: bool,
        on_copy: &mut dyn FnMut(u64, Pte, bool),
    ) -> Result<(), InstallError> {
        let child_leaf = child
            .leaf_table(first, true)?
            .ok_or(InstallError::NoMemory)?;
        let span_base = first & !((1u64 << 21) - 1);
        for i in index(first, 0)..=index(last - 1, 0) {
            let mut e = leaf[i].load(Ordering::Acquire);
            if e == 0 {
                continue;
            }
            // Atomic with the CPU's accessed/dirty updates: clear only WRITE.
            let weakened = write_protect && e & bits::WRITABLE != 0;
            if weakened {
                e = leaf[i].fetch_and(!bits::WRITABLE, Ordering::AcqRel) & !bits::WRITABLE;
            }
            if child_leaf[i]
                .compare_exchange(0, e, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(InstallError::NoMemory);
            }
            if let Some(pte) = decode(e) {
                on_copy(span_base + ((i as u64) << 12), pte, weakened);
            }
        }
        Ok(())
    }
}

impl PageTable for X86PageTable {
    fn query(&self, va: u64) -> Option<Pte> {
        decode(self.leaf(va, false).ok()??.load(Ordering::Acquire))
    }

    fn install(&self, va: u64, pte: Pte) -> Result<(), InstallError> {
        let slot = self.leaf(va, true)?.ok_or(InstallError::NoMemory)?;
        match slot.compare_exchange(0, encode(pte), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(current) => Err(InstallError::Occupied(decode(current).unwrap_or(pte))),
        }
    }

    fn replace(&self, va: u64, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
        let Ok(Some(slot)) = self.leaf(va, false) else {
            return Err(None);
        };
        let current = slot.load(Ordering::Acquire);
        // The CPU may have set accessed/dirty since `expected` was read: compare the rest.
        if decode(current) != Some(expected) {
            return Err(decode(current));
        }
        slot.compare_exchange(current, encode(new), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(decode)
    }

    fn unmap(&self, va: u64) -> Option<Pte> {
        let slot = self.leaf(va, false).ok()??;
        // A swap entry is not a mapping: it stays for `take_swap`, which releases its slot.
        let mut e = slot.load(Ordering::Acquire);
        loop {
            decode(e)?;
            match slot.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decode(e),
                Err(now) => e = now,
            }
        }
    }

    /// One pass per table page: each parent leaf table is copied into one child leaf
    /// table, entry by entry, without a walk per entry.
    fn fork_range(
        &self,
        child: &Self,
        start: u64,
        end: u64,
        write_protect: bool,
        on_copy: &mut dyn FnMut(u64, Pte, bool),
    ) -> Result<(), InstallError> {
        self.each_leaf_table(start, end, &mut |first, last, leaf| {
            self.fork_leaf(child, leaf, first, last, write_protect, on_copy)
        })
    }

    fn scan(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, Pte)) {
        let _ = self.each_leaf_table(start, end, &mut |first, last, leaf| {
            let span_base = first & !((1u64 << 21) - 1);
            for i in index(first, 0)..=index(last - 1, 0) {
                if let Some(pte) = decode(leaf[i].load(Ordering::Acquire)) {
                    f(span_base + ((i as u64) << 12), pte);
                }
            }
            Ok(())
        });
    }

    fn query_swap(&self, va: u64) -> Option<SwapEntry> {
        decode_swap(self.leaf(va, false).ok()??.load(Ordering::Acquire))
    }

    fn install_swap(&self, va: u64, expected: Pte, swap: SwapEntry) -> Result<(), Option<Pte>> {
        let Ok(Some(slot)) = self.leaf(va, false) else {
            return Err(None);
        };
        let current = slot.load(Ordering::Acquire);
        // Exact: accessed or dirty set since `expected` was read means the page was used.
        if decode(current) != Some(expected) {
            return Err(decode(current));
        }
        slot.compare_exchange(
            current,
            encode_swap(swap),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(decode)
    }

    fn restore_swap(&self, va: u64, swap: SwapEntry, pte: Pte) -> bool {
        let Ok(Some(slot)) = self.leaf(va, false) else {
            return false;
        };
        slot.compare_exchange(
            encode_swap(swap),
            encode(pte),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    }

    fn place_swap(&self, va: u64, swap: SwapEntry) -> Result<(), InstallError> {
        let slot = self.leaf(va, true)?.ok_or(InstallError::NoMemory)?;
        slot.compare_exchange(0, encode_swap(swap), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| InstallError::NoMemory)
    }

    fn take_swap(&self, va: u64) -> Option<SwapEntry> {
        let slot = self.leaf(va, false).ok()??;
        let e = slot.load(Ordering::Acquire);
        let swap = decode_swap(e)?;
        slot.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| swap)
    }

    fn scan_swap(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, SwapEntry)) {
        let _ = self.each_leaf_table(start, end, &mut |first, last, leaf| {
            let span_base = first & !((1u64 << 21) - 1);
            for i in index(first, 0)..=index(last - 1, 0) {
                if let Some(swap) = decode_swap(leaf[i].load(Ordering::Acquire)) {
                    f(span_base + ((i as u64) << 12), swap);
                }
            }
            Ok(())
        });
    }

    fn table_bytes(&self) -> u64 {
        let roots = if self.user_root != 0 { 2 } else { 1 };
        (self.tables.load(Ordering::Relaxed) + roots) * 4096
    }
}

impl Drop for X86PageTable {
    /// Frees the table pages (the address space already released the mapped frames and
    /// moved every CPU off these tables).
    fn drop(&mut self) {
        // Level 0 tables hold user entries, not tables: stop one level above.
        fn free_tables(phys: u64, level: u32) {
            let limit = if level == 3 { 256 } else { 512 };
            for slot in table(phys).iter().take(limit) {
                let e = slot.swap(0, Ordering::Relaxed);
                if e & bits::PRESENT != 0 {
                    if level > 1 {
                        free_tables(e & ADDRESS_MASK, level - 1);
                    } else {
                        frames::free(e & ADDRESS_MASK);
                    }
                }
            }
            if level < 3 {
                frames::free(phys);
            }
        }
        free_tables(self.root, 3);
        frames::free(self.root);
        let roots = if self.user_root != 0 { 2 } else { 1 };
        TABLE_PAGES.fetch_sub(
            self.tables.load(Ordering::Relaxed) + roots,
            Ordering::Relaxed,
        );
        if self.user_root != 0 {
            crate::arch::kpti::free_user_root(self.user_root);
        }
    }
}
