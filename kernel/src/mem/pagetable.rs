//! Hardware page tables of user address spaces: `mm::pagetable::PageTable` over real
//! x86_64 4-level tables, reached through the direct map. Entries change only by atomic
//! compare-and-swap, so faults on different pages never take a lock; intermediate tables
//! are installed by compare-and-swap too. The kernel half (PML4 entries 256-511) is shared
//! with the kernel's own tables; under KPTI new top-level entries are mirrored into the
//! address space's user table. The entry encoding is `mm::pagetable::x86` (host-tested,
//! and the one `SoftPageTable` stores).

use super::frames;
use crate::arch::paging::{current_root, phys_to_virt};
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::{
    addr::{pages, VirtAddr},
    frame::Pfn,
    pagetable::{
        huge_base,
        x86::{
            bits, decode, decode_swap, encode, encode_swap, index, is_huge, sub_entry, sub_word,
            table_entry, ADDRESS_MASK,
        },
        InstallError, Lookup, PageTable, Pte, PteFlags, Taken, HUGE_PAGES, HUGE_SIZE,
    },
    swap::SwapEntry,
};

fn table(phys: u64) -> &'static [AtomicU64; 512] {
    // SAFETY: `phys` is a page-table page of a live address space; entries are only
    // accessed atomically.
    unsafe { &*(phys_to_virt(phys) as *const [AtomicU64; 512]) }
}

/// Page-table pages of every user address space (meminfo's `PageTables`).
static TABLE_PAGES: AtomicU64 = AtomicU64::new(0);

/// Huge leaves split into 4 KiB entries, system-wide (`thp_split_pmd`).
static HUGE_SPLITS: AtomicU64 = AtomicU64::new(0);

/// `thp_split_pmd` in `/proc/vmstat`.
pub fn huge_splits() -> u64 {
    HUGE_SPLITS.load(Ordering::Relaxed)
}

/// A 4 KiB entry word a huge install parks in an empty table while it takes the
/// table out (BUSY, not present: a racing install or walk sees an entry being filled).
const PARKED: u64 = bits::BUSY;

/// Where a walk to a 4 KiB entry ended.
enum Walk {
    /// No table down to the entry.
    Absent,
    /// The entry's slot in its table.
    Entry(&'static AtomicU64),
    /// A huge leaf covers the address: its level-1 slot and the word read.
    Huge(u64),
}

/// What a level-1 slot holds, for the range walkers.
enum LeafRef {
    Table(&'static [AtomicU64; 512]),
    Huge(&'static AtomicU64),
}

/// Page-table pages of every user address space now.
pub fn table_pages() -> u64 {
    TABLE_PAGES.load(Ordering::Relaxed)
}

/// Records the kernel's own root (boot CPU, after `paging::init`).
pub fn set_kernel_root() {
    crate::arch::paging::set_kernel_root(current_root());
}

/// The kernel's own root table.
pub fn current_kernel_root() -> u64 {
    crate::arch::paging::kernel_root()
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

/// The x86_64 page table of one address space.
pub struct X86PageTable {
    root: u64,
    user_root: u64,
    /// Table pages below the root (the root and the KPTI user root are counted apart).
    tables: AtomicU64,
    /// For each huge leaf (by its address): the table page that will hold its 512
    /// entries when it is split, zeroed. It is the slot's own table (taken out when
    /// the leaf went in, or allocated with it), so a stale paging-structure cache
    /// entry for the slot can only ever lead to this slot's entries.
    deposits: spin::Mutex<BTreeMap<VirtAddr, u64>>,
    /// Huge leaves this table split.
    splits: AtomicU64,
    /// Huge leaves mapped now.
    leaves: AtomicU64,
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
            deposits: spin::Mutex::new(BTreeMap::new()),
            splits: AtomicU64::new(0),
            leaves: AtomicU64::new(0),
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

    /// The level-1 (2 MiB) slot covering `va`, creating the tables above it (by
    /// compare-and-swap) when `create`.
    ///
    /// Inlined with [`table_at`](Self::table_at): every fault walks here once or
    /// twice, and a walk through present tables is a few loads; out of line it cost
    /// about 140 instructions (calls returning `Result<Option<_>>` through memory).
    #[inline(always)]
    fn pmd_slot(
        &self,
        va: VirtAddr,
        create: bool,
    ) -> Result<Option<&'static AtomicU64>, InstallError> {
        let mut phys = self.root;
        for level in (2..4).rev() {
            let slot = &table(phys)[index(va.as_u64(), level)];
            let Some(e) = self.table_at(slot, va, level, create)? else {
                return Ok(None);
            };
            phys = e & ADDRESS_MASK;
        }
        Ok(Some(&table(phys)[index(va.as_u64(), 1)]))
    }

    /// The table entry in `slot` (at `level`), installing a fresh table when there is
    /// none and `create`. `None`: no table. A huge leaf is returned as it is.
    #[inline(always)]
    fn table_at(
        &self,
        slot: &AtomicU64,
        va: VirtAddr,
        level: u32,
        create: bool,
    ) -> Result<Option<u64>, InstallError> {
        let e = slot.load(Ordering::Acquire);
        if e != 0 {
            return Ok(Some(e));
        }
        if !create {
            return Ok(None);
        }
        self.grow_table(slot, va, level).map(Some)
    }

    /// Installs a fresh table in the empty `slot` (at `level`) by compare-and-swap;
    /// the entry now there (ours, or the one a racing walk put first). Out of line:
    /// the walks' fast path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn grow_table(&self, slot: &AtomicU64, va: VirtAddr, level: u32) -> Result<u64, InstallError> {
        let next = frames::alloc_zeroed().ok_or(InstallError::NoMemory)?;
        let new = table_entry(next);
        match slot.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.tables.fetch_add(1, Ordering::Relaxed);
                TABLE_PAGES.fetch_add(1, Ordering::Relaxed);
                if level == 3 && self.user_root != 0 {
                    crate::arch::kpti::sync(self.root, self.user_root, index(va.as_u64(), 3));
                }
                Ok(new)
            }
            Err(current) => {
                frames::free(next);
                Ok(current)
            }
        }
    }

    /// The last-level table covering `va`, creating tables (by compare-and-swap)
    /// when `create`; `Huge` if a huge leaf covers it.
    #[inline]
    fn walk(&self, va: VirtAddr, create: bool) -> Result<Walk, InstallError> {
        let Some(pmd) = self.pmd_slot(va, create)? else {
            return Ok(Walk::Absent);
        };
        let Some(e) = self.table_at(pmd, va, 1, create)? else {
            return Ok(Walk::Absent);
        };
        if is_huge(e) {
            return Ok(Walk::Huge(e));
        }
        Ok(Walk::Entry(&table(e & ADDRESS_MASK)[index(va.as_u64(), 0)]))
    }

    /// The last-level entry for `va` where a swap entry may be (tables created when
    /// `create`); `None` under a huge leaf, which is never swapped (reclaim passes it
    /// by, so no swap operation splits one).
    fn swap_slot(
        &self,
        va: VirtAddr,
        create: bool,
    ) -> Result<Option<&'static AtomicU64>, InstallError> {
        Ok(match self.walk(va, create)? {
            Walk::Entry(e) => Some(e),
            Walk::Absent | Walk::Huge(_) => None,
        })
    }

    /// The last-level entry for `va` after splitting a huge leaf over it (for the
    /// operations that change one 4 KiB entry).
    fn small_entry(&self, va: VirtAddr) -> Option<&'static AtomicU64> {
        loop {
            match self.walk(va, false).ok()? {
                Walk::Absent => return None,
                Walk::Entry(e) => return Some(e),
                // A hugetlb leaf has no 4 KiB entries to change.
                Walk::Huge(word) if word & bits::HUGETLB != 0 => return None,
                Walk::Huge(..) => {
                    self.split_huge(va);
                }
            }
        }
    }

    /// The last-level table covering `va` (no huge leaf there), creating tables
    /// when `create`.
    fn leaf_table(
        &self,
        va: VirtAddr,
        create: bool,
    ) -> Result<Option<&'static [AtomicU64; 512]>, InstallError> {
        let Some(pmd) = self.pmd_slot(va, create)? else {
            return Ok(None);
        };
        match self.table_at(pmd, va, 1, create)? {
            Some(e) if !is_huge(e) => Ok(Some(table(e & ADDRESS_MASK))),
            Some(_) => Err(InstallError::NoMemory),
            None => Ok(None),
        }
    }

    /// Calls `f(first, last, leaf)` for every present last-level table or huge leaf,
    /// in address order, with the part `[first, last)` of `[start, end)` it covers;
    /// stops at the first error `f` returns.
    fn each_leaf_table(
        &self,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(u64, u64, LeafRef) -> Result<(), InstallError>,
    ) -> Result<(), InstallError> {
        type LeafFn<'a> = dyn FnMut(u64, u64, LeafRef) -> Result<(), InstallError> + 'a;
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
                if level == 1 && is_huge(e) {
                    f(va.max(start), (va + span).min(end), LeafRef::Huge(slot))?;
                    continue;
                }
                if e & bits::PRESENT == 0 {
                    continue;
                }
                if level == 1 {
                    let leaf = LeafRef::Table(table(e & ADDRESS_MASK));
                    f(va.max(start), (va + span).min(end), leaf)?;
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
        on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
    ) -> Result<(), InstallError> {
        let child_leaf = child
            .leaf_table(VirtAddr::new(first), true)?
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
                on_copy(VirtAddr::new(span_base + ((i as u64) << 12)), pte, weakened);
            }
        }
        Ok(())
    }
}

impl X86PageTable {
    /// `fork_range`'s copy of the whole huge leaf in `slot` at `va`: write-protected
    /// on both sides when `write_protect`, huge in the child, each of its 512 pages
    /// reported to `on_copy`.
    fn fork_huge(
        &self,
        child: &X86PageTable,
        slot: &AtomicU64,
        va: VirtAddr,
        write_protect: bool,
        on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
    ) -> Result<(), InstallError> {
        let mut e = slot.load(Ordering::Acquire);
        if !is_huge(e) {
            return Ok(());
        }
        let weakened = write_protect && e & bits::WRITABLE != 0;
        if weakened {
            // Atomic with the CPU's accessed/dirty updates: clear only WRITE.
            e = slot.fetch_and(!bits::WRITABLE, Ordering::AcqRel) & !bits::WRITABLE;
        }
        let Some(pte) = decode(e) else {
            return Ok(());
        };
        child
            .install_huge(va, pte.with_flags(pte.flags - PteFlags::BUSY))
            .map_err(|_| InstallError::NoMemory)?;
        for n in 0..HUGE_PAGES {
            let sub = Pte::new(Pfn(pte.pfn.0 + n), pte.flags);
            on_copy(va + (n << 12), sub, weakened);
        }
        Ok(())
    }

    /// Puts the huge leaf `word` into the empty (or parked) table of `slot`: every
    /// entry of `table_phys` is parked, the slot switched to the leaf, and the table
    /// (emptied again) deposited for the leaf's split. `Occupied` if an entry was in
    /// use or the slot changed.
    fn park_table_and_install(
        &self,
        slot: &AtomicU64,
        table_word: u64,
        va: VirtAddr,
        word: u64,
    ) -> Result<(), InstallError> {
        let entries = table(table_word & ADDRESS_MASK);
        for (i, e) in entries.iter().enumerate() {
            if let Err(cur) = e.compare_exchange(0, PARKED, Ordering::AcqRel, Ordering::Acquire) {
                for parked in &entries[..i] {
                    parked.store(0, Ordering::Release);
                }
                return Err(InstallError::Occupied(
                    decode(cur).unwrap_or(Pte::new(Pfn(0), PteFlags::BUSY)),
                ));
            }
        }
        let swapped = slot
            .compare_exchange(table_word, word, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        for e in entries {
            e.store(0, Ordering::Release);
        }
        if !swapped {
            return Err(InstallError::Occupied(
                decode(word).unwrap_or(Pte::new(Pfn(0), PteFlags::BUSY)),
            ));
        }
        self.deposits.lock().insert(va, table_word & ADDRESS_MASK);
        self.leaves.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl PageTable for X86PageTable {
    fn query(&self, va: VirtAddr) -> Option<Pte> {
        match self.walk(va, false).ok()? {
            Walk::Absent => None,
            Walk::Entry(e) => decode(e.load(Ordering::Acquire)),
            Walk::Huge(word) => sub_entry(word, va),
        }
    }

    fn lookup(&self, va: VirtAddr) -> Lookup {
        let Ok(walk) = self.walk(va, false) else {
            return Lookup::Empty;
        };
        let found = match walk {
            Walk::Absent => None,
            Walk::Entry(e) => {
                let word = e.load(Ordering::Acquire);
                match decode(word) {
                    Some(pte) => Some(Lookup::Mapped(pte)),
                    None => decode_swap(word).map(Lookup::Swapped),
                }
            }
            Walk::Huge(word) => sub_entry(word, va).map(Lookup::Mapped),
        };
        found.unwrap_or(Lookup::Empty)
    }

    fn prepare(&self, va: VirtAddr) -> Result<(), InstallError> {
        self.walk(va, true).map(|_| ())
    }

    fn install(&self, va: VirtAddr, pte: Pte) -> Result<(), InstallError> {
        let slot = match self.walk(va, true)? {
            Walk::Absent => return Err(InstallError::NoMemory),
            Walk::Huge(word) => {
                return Err(InstallError::Occupied(sub_entry(word, va).unwrap_or(pte)))
            }
            Walk::Entry(slot) => slot,
        };
        match slot.compare_exchange(0, encode(pte), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(current) => Err(InstallError::Occupied(decode(current).unwrap_or(pte))),
        }
    }

    fn replace(&self, va: VirtAddr, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
        let Some(slot) = self.small_entry(va) else {
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

    fn unmap(&self, va: VirtAddr) -> Option<Pte> {
        let slot = self.small_entry(va)?;
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
    /// table, entry by entry, without a walk per entry; a huge leaf is copied whole
    /// (or split first if the range takes only part of it).
    fn fork_range(
        &self,
        child: &Self,
        start: VirtAddr,
        end: VirtAddr,
        write_protect: bool,
        on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
    ) -> Result<(), InstallError> {
        self.each_leaf_table(
            start.as_u64(),
            end.as_u64(),
            &mut |first, last, leaf| match leaf {
                LeafRef::Table(leaf) => {
                    self.fork_leaf(child, leaf, first, last, write_protect, on_copy)
                }
                LeafRef::Huge(slot) => {
                    let base = huge_base(first);
                    if first == base && last == base + HUGE_SIZE {
                        return self.fork_huge(
                            child,
                            slot,
                            VirtAddr::new(base),
                            write_protect,
                            on_copy,
                        );
                    }
                    self.split_huge(VirtAddr::new(base));
                    match self.leaf_table(VirtAddr::new(base), false)? {
                        Some(leaf) => {
                            self.fork_leaf(child, leaf, first, last, write_protect, on_copy)
                        }
                        None => Ok(()),
                    }
                }
            },
        )
    }

    fn scan(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte)) {
        self.scan_leaves(start, end, &mut |va, pte, huge| {
            if !huge {
                return f(va, pte);
            }
            let (lo, hi) = (va.max(start), (va + HUGE_SIZE).min(end));
            for page in pages(lo, hi) {
                f(page, Pte::new(pte.pfn.add(page.page_in_huge()), pte.flags));
            }
        });
    }

    fn scan_leaves(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte, bool)) {
        let _ = self.each_leaf_table(start.as_u64(), end.as_u64(), &mut |first, last, leaf| {
            let span_base = first & !((1u64 << 21) - 1);
            match leaf {
                LeafRef::Table(leaf) => {
                    let (lo, hi) = (index(first, 0), index(last - 1, 0));
                    for (i, slot) in leaf.iter().enumerate().take(hi + 1).skip(lo) {
                        let word = slot.load(Ordering::Acquire);
                        // A parked entry is a huge install taking the table out.
                        if word == PARKED {
                            continue;
                        }
                        if let Some(pte) = decode(word) {
                            f(VirtAddr::new(span_base + ((i as u64) << 12)), pte, false);
                        }
                    }
                }
                LeafRef::Huge(slot) => {
                    let e = slot.load(Ordering::Acquire);
                    if is_huge(e) {
                        if let Some(pte) = decode(e) {
                            f(VirtAddr::new(span_base), pte, true);
                        }
                    }
                }
            }
            Ok(())
        });
    }

    /// One pass over each leaf table: every mapping and swap entry is taken with a
    /// compare-and-swap where it lies, with no walk from the root per entry.
    fn take_all(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Taken)) {
        let _ = self.each_leaf_table(start.as_u64(), end.as_u64(), &mut |first, last, leaf| {
            let span_base = first & !((1u64 << 21) - 1);
            match leaf {
                LeafRef::Table(leaf) => {
                    let (lo, hi) = (index(first, 0), index(last - 1, 0));
                    for (i, slot) in leaf.iter().enumerate().take(hi + 1).skip(lo) {
                        let va = span_base + ((i as u64) << 12);
                        let mut word = slot.load(Ordering::Acquire);
                        loop {
                            // Empty, or a huge install taking the table out (parked).
                            if word == 0 || word == PARKED {
                                break;
                            }
                            let taken = match decode(word) {
                                Some(pte) => Taken::Page(pte),
                                None => match decode_swap(word) {
                                    Some(swap) => Taken::Swap(swap),
                                    None => break,
                                },
                            };
                            match slot.compare_exchange(
                                word,
                                0,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => {
                                    f(VirtAddr::new(va), taken);
                                    break;
                                }
                                Err(now) => word = now,
                            }
                        }
                    }
                }
                LeafRef::Huge(_) => {
                    if let Some(pte) = self.unmap_huge(VirtAddr::new(span_base)) {
                        f(VirtAddr::new(span_base), Taken::Huge(pte));
                    }
                }
            }
            Ok(())
        });
    }

    fn query_swap(&self, va: VirtAddr) -> Option<SwapEntry> {
        decode_swap(self.swap_slot(va, false).ok()??.load(Ordering::Acquire))
    }

    fn install_swap(
        &self,
        va: VirtAddr,
        expected: Pte,
        swap: SwapEntry,
    ) -> Result<(), Option<Pte>> {
        let Ok(Some(slot)) = self.swap_slot(va, false) else {
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

    fn restore_swap(&self, va: VirtAddr, swap: SwapEntry, pte: Pte) -> bool {
        let Ok(Some(slot)) = self.swap_slot(va, false) else {
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

    fn place_swap(&self, va: VirtAddr, swap: SwapEntry) -> Result<(), InstallError> {
        let slot = self.swap_slot(va, true)?.ok_or(InstallError::NoMemory)?;
        slot.compare_exchange(0, encode_swap(swap), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| InstallError::NoMemory)
    }

    fn take_swap(&self, va: VirtAddr) -> Option<SwapEntry> {
        let slot = self.swap_slot(va, false).ok()??;
        let e = slot.load(Ordering::Acquire);
        let swap = decode_swap(e)?;
        slot.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| swap)
    }

    fn scan_swap(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, SwapEntry)) {
        let _ = self.each_leaf_table(start.as_u64(), end.as_u64(), &mut |first, last, leaf| {
            // A huge leaf holds no swap entries.
            let LeafRef::Table(leaf) = leaf else {
                return Ok(());
            };
            let span_base = first & !((1u64 << 21) - 1);
            for i in index(first, 0)..=index(last - 1, 0) {
                if let Some(swap) = decode_swap(leaf[i].load(Ordering::Acquire)) {
                    f(VirtAddr::new(span_base + ((i as u64) << 12)), swap);
                }
            }
            Ok(())
        });
    }

    fn table_bytes(&self) -> u64 {
        let roots = if self.user_root != 0 { 2 } else { 1 };
        (self.tables.load(Ordering::Relaxed) + roots) * 4096
    }

    fn supports_huge(&self) -> bool {
        true
    }

    fn query_huge(&self, va: VirtAddr) -> Option<Pte> {
        let e = self.pmd_slot(va, false).ok()??.load(Ordering::Acquire);
        if is_huge(e) {
            decode(e)
        } else {
            None
        }
    }

    fn huge_slot_empty(&self, va: VirtAddr) -> bool {
        let Ok(Some(slot)) = self.pmd_slot(va, false) else {
            return true;
        };
        let e = slot.load(Ordering::Acquire);
        e == 0
            || (!is_huge(e)
                && table(e & ADDRESS_MASK)
                    .iter()
                    .all(|x| x.load(Ordering::Relaxed) == 0))
    }

    fn install_huge(&self, va: VirtAddr, pte: Pte) -> Result<(), InstallError> {
        debug_assert!(va.is_huge_aligned() && pte.pfn.0.is_multiple_of(HUGE_PAGES));
        let slot = self.pmd_slot(va, true)?.ok_or(InstallError::NoMemory)?;
        let word = encode(pte) | bits::HUGE;
        let cur = slot.load(Ordering::Acquire);
        if cur == 0 {
            // A fresh slot: its table is allocated now, deposited for the split.
            let deposit = frames::alloc_zeroed().ok_or(InstallError::NoMemory)?;
            return match slot.compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.tables.fetch_add(1, Ordering::Relaxed);
                    TABLE_PAGES.fetch_add(1, Ordering::Relaxed);
                    self.deposits.lock().insert(va, deposit);
                    self.leaves.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(now) => {
                    frames::free(deposit);
                    if is_huge(now) {
                        return Err(InstallError::Occupied(decode(now).unwrap_or(pte)));
                    }
                    self.park_table_and_install(slot, now, va, word)
                }
            };
        }
        if is_huge(cur) {
            return Err(InstallError::Occupied(decode(cur).unwrap_or(pte)));
        }
        self.park_table_and_install(slot, cur, va, word)
    }

    fn replace_huge(&self, va: VirtAddr, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
        let Ok(Some(slot)) = self.pmd_slot(va, false) else {
            return Err(None);
        };
        let current = slot.load(Ordering::Acquire);
        if !is_huge(current) {
            return Err(None);
        }
        if decode(current) != Some(expected) {
            return Err(decode(current));
        }
        slot.compare_exchange(
            current,
            encode(new) | bits::HUGE,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(|now| if is_huge(now) { decode(now) } else { None })
    }

    fn unmap_huge(&self, va: VirtAddr) -> Option<Pte> {
        let slot = self.pmd_slot(va, false).ok()??;
        // The slot gets its (empty) deposited table back rather than zero: the
        // table stays this slot's, so nothing a stale walk could reach is reused.
        let mut deposits = self.deposits.lock();
        let back = deposits.get(&va).map_or(0, |&d| table_entry(d));
        loop {
            let cur = slot.load(Ordering::Acquire);
            if !is_huge(cur) {
                return None;
            }
            if slot
                .compare_exchange(cur, back, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                deposits.remove(&va);
                self.leaves.fetch_sub(1, Ordering::Relaxed);
                return decode(cur);
            }
        }
    }

    fn split_huge(&self, va: VirtAddr) -> bool {
        let base = va.huge_base();
        let Ok(Some(slot)) = self.pmd_slot(base, false) else {
            return false;
        };
        let mut deposits = self.deposits.lock();
        let Some(&deposit) = deposits.get(&base) else {
            return false;
        };
        let entries = table(deposit);
        loop {
            let cur = slot.load(Ordering::Acquire);
            if !is_huge(cur) || cur & bits::HUGETLB != 0 {
                return false;
            }
            for (n, e) in entries.iter().enumerate() {
                e.store(sub_word(cur, n as u64), Ordering::Relaxed);
            }
            // Fails if the CPU set accessed/dirty meanwhile: refill with them.
            if slot
                .compare_exchange(
                    cur,
                    table_entry(deposit),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                deposits.remove(&base);
                self.splits.fetch_add(1, Ordering::Relaxed);
                self.leaves.fetch_sub(1, Ordering::Relaxed);
                HUGE_SPLITS.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
    }

    fn huge_splits(&self) -> u64 {
        self.splits.load(Ordering::Relaxed)
    }

    fn huge_leaves(&self) -> u64 {
        self.leaves.load(Ordering::Relaxed)
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
                // A huge leaf's frames were released by the address space.
                if level == 1 && is_huge(e) {
                    continue;
                }
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
        for (_, deposit) in core::mem::take(&mut *self.deposits.lock()) {
            frames::free(deposit);
        }
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
