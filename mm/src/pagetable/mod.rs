//! The page-table abstraction: the [`PageTable`] trait the address-space and fault
//! code is written against, with [`Pte`]s in architecture-neutral form. The kernel
//! implements it over x86_64 4-level tables; [`SoftPageTable`] implements it in
//! software for host tests. Both store leaf words in the x86_64 encoding ([`x86`]).
//!
//! Every method takes `&self`: an implementation makes single-entry updates atomic
//! (compare-and-swap on the entry word) and installs missing intermediate tables with
//! compare-and-swap too, so faults on different pages never share a lock.
//! Multi-entry operations (unmap or protect a range, fork) are serialised by the
//! caller holding its VMA tree for writing.

mod soft;
pub mod x86;

pub use soft::SoftPageTable;

use bitflags::bitflags;

use crate::addr::VirtAddr;
use crate::frame::Pfn;
use crate::swap::entry::SwapEntry;

bitflags! {
    /// Architecture-neutral leaf-entry flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PteFlags: u16 {
        /// Userland may read (absent: the frame stays attached but every access
        /// faults, as for `PROT_NONE`; x86 encodes it with P=0 and a software bit).
        const READ = 1 << 0;
        /// Userland may write.
        const WRITE = 1 << 1;
        /// Userland may execute (absent: NX).
        const EXEC = 1 << 2;
        /// The hardware has used the entry since the flag was cleared.
        const ACCESSED = 1 << 3;
        /// The page has been written through this entry.
        const DIRTY = 1 << 4;
        /// Software lock bit (ignored by the hardware; x86 keeps it in an available
        /// bit): a fault holds it while it copies the entry's frame, so nothing else
        /// replaces the entry or releases the frame meanwhile. Others seeing it retry.
        const BUSY = 1 << 5;
        /// Protection-key bit 0 (x86 PTE bit 59): with the next three, the key whose
        /// PKRU rights apply to userland's accesses through this entry.
        const PKEY0 = 1 << 8;
        /// Protection-key bit 1.
        const PKEY1 = 1 << 9;
        /// Protection-key bit 2.
        const PKEY2 = 1 << 10;
        /// Protection-key bit 3.
        const PKEY3 = 1 << 11;
        /// Software: a huge leaf of a hugetlb mapping. It is never split: the 4 KiB
        /// operations leave it alone (only the huge ones change it), and its page
        /// goes back to the hugetlb pool, not to the frame allocator.
        const HUGETLB = 1 << 6;
    }
}

impl PteFlags {
    /// The protection-key bits.
    pub const PKEY_MASK: PteFlags = PteFlags::PKEY0
        .union(PteFlags::PKEY1)
        .union(PteFlags::PKEY2)
        .union(PteFlags::PKEY3);
    /// The permission bits (access and protection key: a changed key weakens an
    /// entry as a lost permission does, so it is flushed).
    pub const PERMS: PteFlags = PteFlags::READ
        .union(PteFlags::WRITE)
        .union(PteFlags::EXEC)
        .union(PteFlags::PKEY_MASK);

    /// The protection key (0..=15).
    pub fn pkey(self) -> u16 {
        (self & PteFlags::PKEY_MASK).bits() >> 8
    }

    /// The protection-key bits for `pkey` (its low four bits).
    pub fn for_pkey(pkey: u16) -> PteFlags {
        PteFlags::from_bits_retain((pkey & 0xf) << 8)
    }
    /// The bits the hardware sets.
    pub const HW: PteFlags = PteFlags::ACCESSED.union(PteFlags::DIRTY);
}

/// A leaf entry that maps a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pte {
    /// The frame.
    pub pfn: Pfn,
    /// Its flags.
    pub flags: PteFlags,
}

impl Pte {
    /// An entry mapping `pfn` with `flags`.
    pub const fn new(pfn: Pfn, flags: PteFlags) -> Pte {
        Pte { pfn, flags }
    }

    /// The same entry with other flags.
    pub const fn with_flags(self, flags: PteFlags) -> Pte {
        Pte {
            pfn: self.pfn,
            flags,
        }
    }
}

/// Bytes one huge (PMD-level) leaf maps: 2 MiB.
pub const HUGE_SIZE: u64 = crate::frame::HUGE_PAGE_SIZE;
/// 4 KiB pages under one huge leaf.
pub const HUGE_PAGES: u64 = HUGE_SIZE / crate::frame::PAGE_SIZE;

/// The first address of the 2 MiB slot holding `va` (a number; a [`VirtAddr`] has
/// [`VirtAddr::huge_base`]).
pub const fn huge_base(va: u64) -> u64 {
    va & !(HUGE_SIZE - 1)
}

/// Why [`PageTable::install`] did not install the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// An entry is already there (another fault won the race); it is returned.
    Occupied(Pte),
    /// An intermediate table could not be allocated.
    NoMemory,
}

/// `fork_range`'s copy of one 4 KiB entry.
fn fork_small_entry<T: PageTable + ?Sized>(
    parent: &T,
    child: &T,
    va: VirtAddr,
    pte: Pte,
    write_protect: bool,
    on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
) -> Result<(), InstallError> {
    let mut pte = pte;
    let weakened = write_protect && pte.flags.contains(PteFlags::WRITE);
    if weakened {
        if let Some(old) = parent.update_flags(va, &mut |f| f - PteFlags::WRITE) {
            pte = old.with_flags(old.flags - PteFlags::WRITE);
        }
    }
    match child.install(va, pte) {
        Ok(()) => {
            on_copy(va, pte, weakened);
            Ok(())
        }
        Err(InstallError::Occupied(_)) | Err(InstallError::NoMemory) => Err(InstallError::NoMemory),
    }
}

/// `fork_range`'s copy of a whole huge leaf: write-protected on both sides when
/// `write_protect`, installed huge in the child, and `on_copy` told of each of its
/// 512 pages (each frame takes its reference).
fn fork_huge_leaf<T: PageTable + ?Sized>(
    parent: &T,
    child: &T,
    va: VirtAddr,
    write_protect: bool,
    on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
) -> Result<(), InstallError> {
    let Some(mut pte) = parent.query_huge(va) else {
        return Ok(());
    };
    let mut weakened = false;
    while write_protect && pte.flags.contains(PteFlags::WRITE) {
        let ro = pte.with_flags(pte.flags - PteFlags::WRITE);
        match parent.replace_huge(va, pte, ro) {
            Ok(()) => {
                pte = ro;
                weakened = true;
            }
            Err(Some(now)) => pte = now,
            Err(None) => return Ok(()),
        }
    }
    child
        .install_huge(va, pte)
        .map_err(|_| InstallError::NoMemory)?;
    for i in 0..HUGE_PAGES {
        let sub = Pte::new(crate::frame::Pfn(pte.pfn.0 + i), pte.flags);
        on_copy(va + i * crate::frame::PAGE_SIZE, sub, weakened);
    }
    Ok(())
}

/// What one entry holds, as [`PageTable::lookup`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A mapping (a huge leaf's 4 KiB view under a huge leaf).
    Mapped(Pte),
    /// A swap entry.
    Swapped(SwapEntry),
    /// Nothing.
    Empty,
}

/// An entry [`PageTable::take_all`] removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// A 4 KiB entry: its frame reference is dropped after the TLB flush.
    Page(Pte),
    /// A huge leaf's head entry: 512 frame references, dropped after the flush.
    Huge(Pte),
    /// A swap entry: its slot is released (nothing for the TLB).
    Swap(SwapEntry),
}

/// A user page table (the lower half of one address space). Every address it takes
/// or gives is a page-aligned user [`VirtAddr`] (frames are [`Pfn`]s); a range is
/// `[start, end)`.
pub trait PageTable: Send + Sync {
    /// The entry mapping `va`, if any.
    fn query(&self, va: VirtAddr) -> Option<Pte>;

    /// Installs `pte` at `va` if no entry is there (compare-and-swap from empty),
    /// creating intermediate tables as needed.
    fn install(&self, va: VirtAddr, pte: Pte) -> Result<(), InstallError>;

    /// Replaces the entry at `va` with `new` if it is exactly `expected`
    /// (compare-and-swap); otherwise returns what is there.
    fn replace(&self, va: VirtAddr, expected: Pte, new: Pte) -> Result<(), Option<Pte>>;

    /// Removes the entry at `va`, returning it.
    fn unmap(&self, va: VirtAddr) -> Option<Pte>;

    /// Creates the tables down to the last level for `va` (installing no entry), so
    /// that a later `install`, `map` or `place_swap` there needs no memory: how a move
    /// of entries (`mremap`) makes sure, before it takes any entry out, that none can
    /// be lost for want of a table. `NoMemory` if a table cannot be allocated. Under a
    /// huge leaf there is nothing to create.
    fn prepare(&self, va: VirtAddr) -> Result<(), InstallError>;

    /// Calls `f` with every entry in `[start, end)`, in address order. `f` may change
    /// the entry it is given through this table.
    fn scan(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte));

    /// Copies every entry in `[start, end)` into `child` (whose range is empty) for
    /// a fork. With `write_protect`, WRITE is cleared in the parent's entry first and
    /// the child gets the read-only copy. `on_copy(va, pte, weakened)` is called once
    /// each entry is in the child, with the entry as copied and whether the parent's
    /// entry lost WRITE; it takes the frame's reference (the caller holds the
    /// parent's VMA tree for writing, so nothing releases the frame meanwhile).
    /// `NoMemory` if a child table cannot be allocated; entries copied so far stay in
    /// the child, and an entry that could not be copied may have lost WRITE in the
    /// parent unreported (harmless: its frame is shared with nobody new).
    ///
    /// The default goes entry by entry through `scan`, `update_flags` and `install`;
    /// a hardware table does it in one pass per table page.
    fn fork_range(
        &self,
        child: &Self,
        start: VirtAddr,
        end: VirtAddr,
        write_protect: bool,
        on_copy: &mut dyn FnMut(VirtAddr, Pte, bool),
    ) -> Result<(), InstallError>
    where
        Self: Sized,
    {
        let mut result = Ok(());
        self.scan_leaves(start, end, &mut |va, pte, huge| {
            if result.is_err() {
                return;
            }
            if huge {
                if va >= start && va + HUGE_SIZE <= end {
                    result = fork_huge_leaf(self, child, va, write_protect, on_copy);
                    return;
                }
                // Only part of the leaf is copied: split it and copy that part.
                self.split_huge(va);
                let (lo, hi) = (va.max(start), (va + HUGE_SIZE).min(end));
                self.scan(lo, hi, &mut |va, pte| {
                    if result.is_ok() {
                        result = fork_small_entry(self, child, va, pte, write_protect, on_copy);
                    }
                });
                return;
            }
            result = fork_small_entry(self, child, va, pte, write_protect, on_copy);
        });
        result
    }

    /// Bytes of memory the table's own pages use (`VmPTE`); 0 if unknown.
    fn table_bytes(&self) -> u64 {
        0
    }

    /// Installs `pte` at `va` whatever is there, returning the old entry.
    fn map(&self, va: VirtAddr, pte: Pte) -> Result<Option<Pte>, InstallError> {
        loop {
            match self.install(va, pte) {
                Ok(()) => return Ok(None),
                Err(InstallError::NoMemory) => return Err(InstallError::NoMemory),
                Err(InstallError::Occupied(old)) => {
                    if self.replace(va, old, pte).is_ok() {
                        return Ok(Some(old));
                    }
                }
            }
        }
    }

    /// Sets the flags of the entry at `va` to `f(old flags)`, keeping its frame;
    /// returns the old entry (`None`, changing nothing, if there is none).
    fn update_flags(&self, va: VirtAddr, f: &mut dyn FnMut(PteFlags) -> PteFlags) -> Option<Pte> {
        loop {
            let old = self.query(va)?;
            let new = old.with_flags(f(old.flags));
            if new == old {
                return Some(old);
            }
            match self.replace(va, old, new) {
                Ok(()) => return Some(old),
                // Gone meanwhile.
                Err(None) => return None,
                Err(Some(_)) => {}
            }
        }
    }

    /// Sets the permission bits of the entry at `va` to `perms` (keeping its frame
    /// and hardware bits); returns the old entry.
    fn protect(&self, va: VirtAddr, perms: PteFlags) -> Option<Pte> {
        self.update_flags(va, &mut |f| {
            (f - PteFlags::PERMS) | (perms & PteFlags::PERMS)
        })
    }

    /// Calls `f(va, pte, huge)` once per leaf meeting `[start, end)`, in address
    /// order: a huge leaf once with its head entry (`va` its 2 MiB-aligned start, `pte`
    /// its first frame), which may begin before `start` or end after `end`; a 4 KiB
    /// entry as [`scan`](Self::scan) gives it. (`scan` itself shows a huge leaf as
    /// its 512 pages, so code that only reads entries needs no huge case.)
    fn scan_leaves(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte, bool)) {
        self.scan(start, end, &mut |va, pte| f(va, pte, false));
    }

    // Huge (2 MiB, PMD-level) leaves. A huge leaf maps 512 consecutive frames, each
    // holding its own reference (so splitting it changes no count). `query` and
    // `scan` show it as 512 entries; `install` at an address under it finds it
    // occupied; `replace`, `unmap` and `update_flags` at such an address first split
    // it into 512 4 KiB entries with its flags (an implementation keeps the table
    // page that needs ready from the moment the leaf is installed, so a split never
    // fails). A table without huge support keeps the defaults: nothing is huge.

    /// Whether the table maps huge leaves at all.
    fn supports_huge(&self) -> bool {
        false
    }

    /// The huge leaf covering `va` (its head entry), if any.
    fn query_huge(&self, _va: VirtAddr) -> Option<Pte> {
        None
    }

    /// Whether the 2 MiB slot holding `va` maps nothing (no huge leaf, no 4 KiB
    /// entry): a huge leaf could be installed there.
    fn huge_slot_empty(&self, _va: VirtAddr) -> bool {
        false
    }

    /// Installs the huge leaf `pte` (frame 2 MiB-aligned) at the 2 MiB-aligned `va`
    /// if the slot maps nothing; `Occupied` (with what is there, or `pte` itself if
    /// the slot holds only an entry being filled) otherwise. A table page left empty
    /// by earlier unmaps is taken out and kept for a later split.
    fn install_huge(&self, _va: VirtAddr, _pte: Pte) -> Result<(), InstallError> {
        Err(InstallError::NoMemory)
    }

    /// Replaces the huge leaf at the 2 MiB-aligned `va` with `new` if it is exactly
    /// `expected` (hardware bits the CPU set since aside); otherwise returns what is
    /// there (`None`: no huge leaf).
    fn replace_huge(&self, _va: VirtAddr, _expected: Pte, _new: Pte) -> Result<(), Option<Pte>> {
        Err(None)
    }

    /// Removes the huge leaf at the 2 MiB-aligned `va`, returning its head entry; the
    /// caller releases its 512 frame references after flushing the TLB.
    fn unmap_huge(&self, _va: VirtAddr) -> Option<Pte> {
        None
    }

    /// Splits the huge leaf covering `va` into 512 4 KiB entries with its flags
    /// (without `BUSY`) mapping its frames in order; true if there was one. A
    /// `HUGETLB` leaf is never split (false). The
    /// translations do not change, so no TLB flush is needed for the split itself.
    fn split_huge(&self, _va: VirtAddr) -> bool {
        false
    }

    /// Huge leaves this table has split since it was made.
    fn huge_splits(&self) -> u64 {
        0
    }

    /// Huge leaves mapped now (an upper bound is fine: it lets reports skip tables
    /// with none).
    fn huge_leaves(&self) -> u64 {
        0
    }
    /// What the entry at `va` holds, read once: the fault path's one look where
    /// [`query`](Self::query) and then [`query_swap`](Self::query_swap) would walk
    /// the table twice for every page not yet mapped (the default does that).
    fn lookup(&self, va: VirtAddr) -> Lookup {
        if let Some(pte) = self.query(va) {
            return Lookup::Mapped(pte);
        }
        self.query_swap(va).map_or(Lookup::Empty, Lookup::Swapped)
    }

    /// The swap entry held by the not-present entry at `va`, if it holds one. Swap
    /// entries are invisible to every other method ([`query`](Self::query) and
    /// [`scan`](Self::scan) skip them); a table without swap support holds none.
    fn query_swap(&self, _va: VirtAddr) -> Option<SwapEntry> {
        None
    }

    /// Replaces the present entry at `va` with `swap` if it is exactly `expected`
    /// (compare-and-swap, the page's swap-out); otherwise returns what is there.
    fn install_swap(
        &self,
        va: VirtAddr,
        _expected: Pte,
        _swap: SwapEntry,
    ) -> Result<(), Option<Pte>> {
        Err(self.query(va))
    }

    /// Replaces the swap entry `swap` at `va` with the present `pte` (the page's
    /// swap-in); false, changing nothing, if something else is there.
    fn restore_swap(&self, _va: VirtAddr, _swap: SwapEntry, _pte: Pte) -> bool {
        false
    }

    /// Puts `swap` into the empty entry at `va` (a fork's child, an mremap move).
    fn place_swap(&self, _va: VirtAddr, _swap: SwapEntry) -> Result<(), InstallError> {
        Err(InstallError::NoMemory)
    }

    /// Removes the swap entry at `va`, returning it (`None`, changing nothing, if
    /// the entry is not a swap entry).
    fn take_swap(&self, _va: VirtAddr) -> Option<SwapEntry> {
        None
    }

    /// Calls `f` with every swap entry in `[start, end)`, in address order.
    fn scan_swap(&self, _start: VirtAddr, _end: VirtAddr, _f: &mut dyn FnMut(VirtAddr, SwapEntry)) {
    }

    /// Removes every entry in `[start, end)` (both 2 MiB-aligned, so every huge leaf
    /// in it is whole): 4 KiB entries, huge leaves and swap entries, calling `f` with
    /// each one's address and what was taken. The address-space teardown, in one pass
    /// where the table can; the default removes the mappings through
    /// [`scan_leaves`](Self::scan_leaves) and then the swap entries.
    fn take_all(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Taken)) {
        debug_assert!(start.is_huge_aligned() && end.is_huge_aligned());
        self.scan_leaves(start, end, &mut |va, _, huge| {
            let taken = if huge {
                self.unmap_huge(va).map(Taken::Huge)
            } else {
                self.unmap(va).map(Taken::Page)
            };
            if let Some(taken) = taken {
                f(va, taken);
            }
        });
        self.scan_swap(start, end, &mut |va, _| {
            if let Some(entry) = self.take_swap(va) {
                f(va, Taken::Swap(entry));
            }
        });
    }

    /// Number of entries in `[start, end)`.
    fn count(&self, start: VirtAddr, end: VirtAddr) -> u64 {
        let mut n = 0;
        self.scan(start, end, &mut |_, _| n += 1);
        n
    }
}
