//! [`SoftPageTable`]: a software 4-level radix table with the same shape and the
//! same concurrency as the x86_64 one (atomic leaf words updated by compare-and-swap,
//! intermediate tables installed once), so host tests exercise the real races.
//!
//! Each 2 MiB slot has, beside its (install-once) table of 4 KiB entries, a word for a
//! huge leaf. The two never map at once: a 4 KiB install publishes its entry and then
//! looks at the huge word, a huge install publishes its word and then looks at the
//! entries (all sequentially consistent), so of two racing installs at least one sees
//! the other and backs out. A split fills the table while the huge word, marked
//! `BUSY`, still answers lookups, then clears the word.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use super::x86::{decode, decode_swap, encode, encode_swap};
use super::{InstallError, PageTable, Pte, PteFlags, HUGE_PAGES, HUGE_SIZE};
use crate::addr::{pages, VirtAddr};
use crate::frame::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::swap::entry::SwapEntry;

const ENTRIES: usize = 512;

/// The bottom level: leaf words.
struct Leaf([AtomicU64; ENTRIES]);

impl Default for Leaf {
    fn default() -> Self {
        Leaf(core::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// An intermediate level: children installed at most once.
struct Dir<T>([spin::Once<Box<T>>; ENTRIES]);

impl<T> Default for Dir<T> {
    fn default() -> Self {
        Dir(core::array::from_fn(|_| spin::Once::new()))
    }
}

/// The 2 MiB level: tables of 4 KiB entries and huge-leaf words.
struct Pmd {
    tables: Dir<Leaf>,
    huge: [AtomicU64; ENTRIES],
}

impl Default for Pmd {
    fn default() -> Self {
        Pmd {
            tables: Dir::default(),
            huge: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

type Pml4 = Dir<Dir<Pmd>>;

/// What [`SoftPageTable::each_slot`] calls per 2 MiB slot.
type SlotFn<'a> = dyn FnMut(VirtAddr, (usize, usize), &AtomicU64, Option<&Leaf>) + 'a;

fn index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

/// A software page table for host tests.
#[derive(Default)]
pub struct SoftPageTable {
    root: Pml4,
    tables: AtomicU64,
    /// Most tables it may allocate (0: no limit): a test's stand-in for running out of
    /// page-table memory.
    table_limit: AtomicU64,
    splits: AtomicU64,
    leaves: AtomicU64,
}

impl SoftPageTable {
    /// An empty table.
    pub fn new() -> SoftPageTable {
        SoftPageTable::default()
    }

    /// Lets the table hold at most `tables` tables in all (0: no limit); creating one
    /// more fails as a kernel out of page-table memory does.
    pub fn set_table_limit(&self, tables: u64) {
        self.table_limit.store(tables, Ordering::Relaxed);
    }

    /// Tables allocated so far.
    pub fn tables(&self) -> u64 {
        self.tables.load(Ordering::Relaxed)
    }

    fn child<'a, T: Default>(&self, dir: &'a Dir<T>, i: usize, create: bool) -> Option<&'a T> {
        let slot = &dir.0[i];
        let limit = self.table_limit.load(Ordering::Relaxed);
        if create && slot.get().is_none() && limit != 0 && self.tables() >= limit {
            return None;
        }
        if create {
            Some(slot.call_once(|| {
                self.tables.fetch_add(1, Ordering::Relaxed);
                Box::default()
            }))
        } else {
            slot.get().map(|b| &**b)
        }
    }

    fn pmd(&self, va: VirtAddr, create: bool) -> Option<&Pmd> {
        let l3 = self.child(&self.root, index(va.as_u64(), 3), create)?;
        self.child(l3, index(va.as_u64(), 2), create)
    }

    fn leaf(&self, va: VirtAddr, create: bool) -> Option<&AtomicU64> {
        let l1 = self.child(&self.pmd(va, create)?.tables, index(va.as_u64(), 1), create)?;
        Some(&l1.0[index(va.as_u64(), 0)])
    }

    /// The huge-leaf word of the slot holding `va`.
    fn huge_word(&self, va: VirtAddr, create: bool) -> Option<&AtomicU64> {
        Some(&self.pmd(va, create)?.huge[index(va.as_u64(), 1)])
    }

    /// The 4 KiB view of page `va` under the huge leaf `head`.
    fn sub_entry(head: Pte, va: VirtAddr) -> Pte {
        Pte::new(head.pfn.add(va.page_in_huge()), head.flags)
    }

    /// Calls `f(base, (first, last), huge_word, table)` for every 2 MiB slot meeting
    /// `[start, end)` whose upper tables exist: `base` the slot's address, `first..=last`
    /// the indexes of its 4 KiB entries in the range, its huge-leaf word, and its table
    /// of 4 KiB entries if there is one.
    fn each_slot(&self, start: VirtAddr, end: VirtAddr, f: &mut SlotFn<'_>) {
        if start >= end {
            return;
        }
        let (start, end) = (start.as_u64(), end.as_u64());
        let last = end - 1;
        let span = |level: u32| 1u64 << (PAGE_SHIFT + 9 * level);
        // Walk the levels, visiting only the children overlapping [start, end).
        for i3 in index(start, 3)..=index(last, 3) {
            let Some(l3) = self.root.0[i3].get() else {
                continue;
            };
            let b3 = i3 as u64 * span(3);
            let (lo3, hi3) = (start.max(b3), last.min(b3 + span(3) - 1));
            for i2 in index(lo3, 2)..=index(hi3, 2) {
                let Some(l2) = l3.0[i2].get() else { continue };
                let b2 = b3 + i2 as u64 * span(2);
                let (lo2, hi2) = (lo3.max(b2), hi3.min(b2 + span(2) - 1));
                for i1 in index(lo2, 1)..=index(hi2, 1) {
                    let b1 = b2 + i1 as u64 * span(1);
                    let (lo1, hi1) = (lo2.max(b1), hi2.min(b1 + span(1) - 1));
                    let table = l2.tables.0[i1].get().map(|t| &**t);
                    f(
                        VirtAddr::new(b1),
                        (index(lo1, 0), index(hi1, 0)),
                        &l2.huge[i1],
                        table,
                    );
                }
            }
        }
    }

    /// Calls `f` with every 4 KiB word of `[start, end)` whose table exists, passing
    /// over 2 MiB slots mapped by a huge leaf (they hold no swap entries).
    fn walk_small(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, &AtomicU64)) {
        self.each_slot(start, end, &mut |base, (first, last), huge, table| {
            let Some(table) = table.filter(|_| huge.load(Ordering::SeqCst) == 0) else {
                return;
            };
            for i in first..=last {
                f(base + i as u64 * PAGE_SIZE, &table.0[i]);
            }
        });
    }
}

impl PageTable for SoftPageTable {
    fn query(&self, va: VirtAddr) -> Option<Pte> {
        let huge = self.huge_word(va, false)?.load(Ordering::SeqCst);
        if let Some(head) = decode(huge) {
            return Some(Self::sub_entry(head, va));
        }
        decode(self.leaf(va, false)?.load(Ordering::Acquire))
    }

    fn prepare(&self, va: VirtAddr) -> Result<(), InstallError> {
        self.leaf(va, true).ok_or(InstallError::NoMemory)?;
        Ok(())
    }

    fn install(&self, va: VirtAddr, pte: Pte) -> Result<(), InstallError> {
        let slot = self.leaf(va, true).ok_or(InstallError::NoMemory)?;
        let huge = self.huge_word(va, true).ok_or(InstallError::NoMemory)?;
        if let Some(head) = decode(huge.load(Ordering::SeqCst)) {
            return Err(InstallError::Occupied(Self::sub_entry(head, va)));
        }
        match slot.compare_exchange(0, encode(pte), Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                if let Some(head) = decode(huge.load(Ordering::SeqCst)) {
                    // A huge install raced with this one: back out (a split that
                    // already overwrote the entry keeps its own).
                    let _ =
                        slot.compare_exchange(encode(pte), 0, Ordering::SeqCst, Ordering::SeqCst);
                    return Err(InstallError::Occupied(Self::sub_entry(head, va)));
                }
                Ok(())
            }
            // A swap entry occupies the word too (reported as the entry offered, as
            // the x86 table does: nothing is mapped there).
            Err(cur) => Err(InstallError::Occupied(decode(cur).unwrap_or(pte))),
        }
    }

    fn replace(&self, va: VirtAddr, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
        if self
            .query_huge(va)
            .is_some_and(|h| h.flags.contains(PteFlags::HUGETLB))
        {
            return Err(None);
        }
        self.split_huge(va);
        let Some(slot) = self.leaf(va, false) else {
            return Err(None);
        };
        slot.compare_exchange(
            encode(expected),
            encode(new),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(decode)
    }

    fn unmap(&self, va: VirtAddr) -> Option<Pte> {
        if self
            .query_huge(va)
            .is_some_and(|h| h.flags.contains(PteFlags::HUGETLB))
        {
            return None;
        }
        self.split_huge(va);
        decode(self.leaf(va, false)?.swap(0, Ordering::AcqRel))
    }

    fn supports_huge(&self) -> bool {
        true
    }

    fn query_huge(&self, va: VirtAddr) -> Option<Pte> {
        decode(self.huge_word(va, false)?.load(Ordering::SeqCst))
    }

    fn huge_slot_empty(&self, va: VirtAddr) -> bool {
        let Some(pmd) = self.pmd(va, false) else {
            return true;
        };
        let i = index(va.as_u64(), 1);
        pmd.huge[i].load(Ordering::SeqCst) == 0
            && pmd.tables.0[i]
                .get()
                .is_none_or(|t| t.0.iter().all(|e| e.load(Ordering::SeqCst) == 0))
    }

    fn install_huge(&self, va: VirtAddr, pte: Pte) -> Result<(), InstallError> {
        debug_assert!(va.is_huge_aligned() && pte.pfn.0.is_multiple_of(HUGE_PAGES));
        let pmd = self.pmd(va, true).ok_or(InstallError::NoMemory)?;
        let i = index(va.as_u64(), 1);
        let word = encode(pte);
        if let Err(cur) = pmd.huge[i].compare_exchange(0, word, Ordering::SeqCst, Ordering::SeqCst)
        {
            return Err(InstallError::Occupied(decode(cur).unwrap_or(pte)));
        }
        if let Some(table) = pmd.tables.0[i].get() {
            if let Some(e) = table
                .0
                .iter()
                .find_map(|e| decode(e.load(Ordering::SeqCst)))
            {
                // A 4 KiB install raced with this one: back out.
                pmd.huge[i].store(0, Ordering::SeqCst);
                return Err(InstallError::Occupied(e));
            }
        }
        self.leaves.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn replace_huge(&self, va: VirtAddr, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
        let Some(word) = self.huge_word(va, false) else {
            return Err(None);
        };
        word.compare_exchange(
            encode(expected),
            encode(new),
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .map(|_| ())
        .map_err(decode)
    }

    fn unmap_huge(&self, va: VirtAddr) -> Option<Pte> {
        let old = decode(self.huge_word(va, false)?.swap(0, Ordering::SeqCst));
        if old.is_some() {
            self.leaves.fetch_sub(1, Ordering::Relaxed);
        }
        old
    }

    fn split_huge(&self, va: VirtAddr) -> bool {
        let Some(pmd) = self.pmd(va, false) else {
            return false;
        };
        let i = index(va.as_u64(), 1);
        let busy = super::x86::bits::BUSY;
        // Take the leaf: mark it BUSY (another split waits for the first to finish).
        let head = loop {
            let cur = pmd.huge[i].load(Ordering::SeqCst);
            let Some(head) = decode(cur) else {
                return false;
            };
            if head.flags.contains(PteFlags::HUGETLB) {
                return false;
            }
            if cur & busy != 0 {
                core::hint::spin_loop();
                continue;
            }
            if pmd.huge[i]
                .compare_exchange(cur, cur | busy, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break head;
            }
        };
        let table = self
            .child(&pmd.tables, i, true)
            .expect("creating a table cannot fail");
        for (n, e) in table.0.iter().enumerate() {
            let sub = Pte::new(Pfn(head.pfn.0 + n as u64), head.flags);
            e.store(encode(sub), Ordering::SeqCst);
        }
        pmd.huge[i].store(0, Ordering::SeqCst);
        self.splits.fetch_add(1, Ordering::Relaxed);
        self.leaves.fetch_sub(1, Ordering::Relaxed);
        true
    }

    fn huge_splits(&self) -> u64 {
        self.splits.load(Ordering::Relaxed)
    }

    fn huge_leaves(&self) -> u64 {
        self.leaves.load(Ordering::Relaxed)
    }

    fn scan(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte)) {
        self.scan_leaves(start, end, &mut |va, pte, huge| {
            if !huge {
                return f(va, pte);
            }
            let lo = va.max(start);
            let hi = (va + HUGE_SIZE).min(end);
            for page in pages(lo, hi) {
                f(page, Self::sub_entry(pte, page));
            }
        });
    }

    fn scan_leaves(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, Pte, bool)) {
        self.each_slot(start, end, &mut |base, (first, last), huge, table| {
            if let Some(head) = decode(huge.load(Ordering::SeqCst)) {
                return f(base, head, true);
            }
            let Some(table) = table else {
                return;
            };
            for i in first..=last {
                if let Some(pte) = decode(table.0[i].load(Ordering::Acquire)) {
                    f(base + i as u64 * PAGE_SIZE, pte, false);
                }
            }
        });
    }

    fn query_swap(&self, va: VirtAddr) -> Option<SwapEntry> {
        decode_swap(self.leaf(va, false)?.load(Ordering::Acquire))
    }

    fn install_swap(
        &self,
        va: VirtAddr,
        expected: Pte,
        swap: SwapEntry,
    ) -> Result<(), Option<Pte>> {
        let Some(slot) = self.leaf(va, false) else {
            return Err(None);
        };
        slot.compare_exchange(
            encode(expected),
            encode_swap(swap),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(decode)
    }

    fn restore_swap(&self, va: VirtAddr, swap: SwapEntry, pte: Pte) -> bool {
        self.leaf(va, false).is_some_and(|slot| {
            slot.compare_exchange(
                encode_swap(swap),
                encode(pte),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        })
    }

    fn place_swap(&self, va: VirtAddr, swap: SwapEntry) -> Result<(), InstallError> {
        let slot = self.leaf(va, true).ok_or(InstallError::NoMemory)?;
        match slot.compare_exchange(0, encode_swap(swap), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(_) => Err(InstallError::NoMemory),
        }
    }

    fn take_swap(&self, va: VirtAddr) -> Option<SwapEntry> {
        let slot = self.leaf(va, false)?;
        let word = slot.load(Ordering::Acquire);
        let swap = decode_swap(word)?;
        slot.compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| swap)
    }

    fn scan_swap(&self, start: VirtAddr, end: VirtAddr, f: &mut dyn FnMut(VirtAddr, SwapEntry)) {
        self.walk_small(start, end, &mut |va, word| {
            if let Some(swap) = decode_swap(word.load(Ordering::Acquire)) {
                f(va, swap);
            }
        });
    }

    fn table_bytes(&self) -> u64 {
        (self.tables.load(Ordering::Relaxed) + 1) * PAGE_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const RW: PteFlags = PteFlags::READ.union(PteFlags::WRITE);

    #[test]
    fn install_query_replace_unmap() {
        let t = SoftPageTable::new();
        let va = 0x7f12_3456_7000;
        assert_eq!(t.query(VirtAddr::new(va)), None);
        let pte = Pte::new(Pfn(42), RW);
        t.install(VirtAddr::new(va), pte).unwrap();
        assert_eq!(t.query(VirtAddr::new(va)), Some(pte));
        assert_eq!(
            t.install(VirtAddr::new(va), Pte::new(Pfn(1), RW)),
            Err(InstallError::Occupied(pte))
        );
        let ro = pte.with_flags(PteFlags::READ);
        assert_eq!(t.replace(VirtAddr::new(va), ro, ro), Err(Some(pte)));
        t.replace(VirtAddr::new(va), pte, ro).unwrap();
        assert_eq!(
            t.update_flags(VirtAddr::new(va), &mut |f| f | PteFlags::DIRTY),
            Some(ro)
        );
        assert_eq!(
            t.query(VirtAddr::new(va)).unwrap().flags,
            PteFlags::READ | PteFlags::DIRTY
        );
        assert_eq!(
            t.map(VirtAddr::new(va), pte).unwrap().map(|p| p.pfn),
            Some(Pfn(42))
        );
        assert_eq!(t.unmap(VirtAddr::new(va)), Some(pte));
        assert_eq!(t.unmap(VirtAddr::new(va)), None);
        assert_eq!(t.replace(VirtAddr::new(0x1000), pte, pte), Err(None));
    }

    #[test]
    fn scan_is_ordered_and_clipped() {
        let t = SoftPageTable::new();
        let addrs = [
            0x1000u64,
            0x20_0000,
            0x3f_f000,
            0x4000_0000,
            0x7fff_ffff_f000,
        ];
        for (i, &a) in addrs.iter().enumerate() {
            t.install(VirtAddr::new(a), Pte::new(Pfn(i as u64 + 1), RW))
                .unwrap();
        }
        let mut seen = Vec::new();
        t.scan(VirtAddr::new(0), VirtAddr::new(1 << 47), &mut |va, _| {
            seen.push(va.as_u64())
        });
        assert_eq!(seen, addrs);
        seen.clear();
        t.scan(
            VirtAddr::new(0x2000),
            VirtAddr::new(0x4000_0000),
            &mut |va, _| seen.push(va.as_u64()),
        );
        assert_eq!(seen, [0x20_0000, 0x3f_f000]);
        assert_eq!(
            t.count(VirtAddr::new(0x3f_f000), VirtAddr::new(0x4000_1000)),
            2
        );
        // The callback may clear what it is given.
        t.scan(VirtAddr::new(0), VirtAddr::new(1 << 47), &mut |va, _| {
            t.unmap(va);
        });
        assert_eq!(t.count(VirtAddr::new(0), VirtAddr::new(1 << 47)), 0);
        assert!(t.table_bytes() > PAGE_SIZE);
    }
}

#[cfg(test)]
mod huge_tests {
    extern crate std;
    use super::*;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::sync::atomic::AtomicUsize;

    const RW: PteFlags = PteFlags::READ.union(PteFlags::WRITE);

    #[test]
    fn huge_leaf_shows_as_pages_and_splits_in_place() {
        let t = SoftPageTable::new();
        let va = 0x4000_0000;
        assert!(t.huge_slot_empty(VirtAddr::new(va)));
        t.install_huge(VirtAddr::new(va), Pte::new(Pfn(512), RW))
            .unwrap();
        assert!(!t.huge_slot_empty(VirtAddr::new(va + 4096)));
        assert_eq!(
            t.query(VirtAddr::new(va + 3 * PAGE_SIZE)),
            Some(Pte::new(Pfn(515), RW))
        );
        assert!(matches!(
            t.install(VirtAddr::new(va + PAGE_SIZE), Pte::new(Pfn(1), RW)),
            Err(InstallError::Occupied(p)) if p.pfn == Pfn(513)
        ));
        assert_eq!(
            t.count(VirtAddr::new(0), VirtAddr::new(1 << 47)),
            HUGE_PAGES
        );
        let mut leaves = Vec::new();
        t.scan_leaves(
            VirtAddr::new(va + 8192),
            VirtAddr::new(va + 16384),
            &mut |a, p, huge| leaves.push((a.as_u64(), p.pfn, huge)),
        );
        assert_eq!(leaves, [(va, Pfn(512), true)]);
        // A 4 KiB change splits the leaf first.
        let ro = Pte::new(Pfn(517), PteFlags::READ);
        t.replace(
            VirtAddr::new(va + 5 * PAGE_SIZE),
            Pte::new(Pfn(517), RW),
            ro,
        )
        .unwrap();
        assert_eq!(t.query_huge(VirtAddr::new(va)), None);
        assert_eq!(t.huge_splits(), 1);
        assert_eq!(t.query(VirtAddr::new(va + 5 * PAGE_SIZE)), Some(ro));
        assert_eq!(
            t.query(VirtAddr::new(va + 6 * PAGE_SIZE)),
            Some(Pte::new(Pfn(518), RW))
        );
        // Emptied again, the slot takes a huge leaf.
        t.scan(
            VirtAddr::new(va),
            VirtAddr::new(va + HUGE_SIZE),
            &mut |a, _| {
                t.unmap(a);
            },
        );
        assert!(t.huge_slot_empty(VirtAddr::new(va)));
        t.install_huge(VirtAddr::new(va), Pte::new(Pfn(1024), RW))
            .unwrap();
        // A hugetlb leaf is never split; 4 KiB changes leave it alone.
        let h = Pte::new(Pfn(2048), RW | PteFlags::HUGETLB);
        t.install_huge(VirtAddr::new(va + HUGE_SIZE), h).unwrap();
        assert!(!t.split_huge(VirtAddr::new(va + HUGE_SIZE)));
        assert_eq!(t.unmap(VirtAddr::new(va + HUGE_SIZE + PAGE_SIZE)), None);
        assert_eq!(t.query_huge(VirtAddr::new(va + HUGE_SIZE)), Some(h));
    }

    /// Threads race a huge install against 4 KiB installs on the same slots: each
    /// slot ends with one kind only, and every install reported as done is there.
    #[test]
    fn racing_huge_and_small_installs_never_both_win() {
        for round in 0..50u64 {
            let t = Arc::new(SoftPageTable::new());
            let base = 0x10_0000_0000 + round * 64 * HUGE_SIZE;
            let small_wins = Arc::new(AtomicUsize::new(0));
            let huge_wins = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..4)
                .map(|thread| {
                    let (t, s, h) = (t.clone(), small_wins.clone(), huge_wins.clone());
                    std::thread::spawn(move || {
                        for slot in 0..8u64 {
                            let va = base + slot * HUGE_SIZE;
                            if thread % 2 == 0 {
                                let pfn = Pfn((slot + 1) * HUGE_PAGES * 8);
                                if t.install_huge(VirtAddr::new(va), Pte::new(pfn, RW)).is_ok() {
                                    h.fetch_add(1, Ordering::SeqCst);
                                }
                            } else {
                                let page = va + thread * PAGE_SIZE;
                                if t.install(VirtAddr::new(page), Pte::new(Pfn(7), RW)).is_ok() {
                                    s.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let (mut huge, mut small) = (0, 0);
            for slot in 0..8u64 {
                let va = base + slot * HUGE_SIZE;
                let leaf = t.query_huge(VirtAddr::new(va)).is_some();
                let pages = (0..HUGE_PAGES)
                    .filter(|i| {
                        t.leaf(VirtAddr::new(va + i * PAGE_SIZE), false)
                            .is_some_and(|e| e.load(Ordering::SeqCst) != 0)
                    })
                    .count();
                assert!(!(leaf && pages > 0), "slot {slot} has a leaf and pages");
                huge += usize::from(leaf);
                small += pages;
            }
            assert_eq!(huge, huge_wins.load(Ordering::SeqCst));
            assert_eq!(small, small_wins.load(Ordering::SeqCst));
        }
    }

    /// Splits racing 4 KiB updates of the same leaf: every update lands, nothing
    /// else changes.
    #[test]
    fn racing_splits_and_updates_lose_nothing() {
        let t = Arc::new(SoftPageTable::new());
        let va = 0x2000_0000;
        t.install_huge(VirtAddr::new(va), Pte::new(Pfn(512), RW))
            .unwrap();
        let handles: Vec<_> = (0..4u64)
            .map(|thread| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in (thread..HUGE_PAGES).step_by(4) {
                        t.update_flags(VirtAddr::new(va + i * PAGE_SIZE), &mut |f| {
                            f | PteFlags::DIRTY
                        });
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(t.huge_splits(), 1);
        for i in 0..HUGE_PAGES {
            assert_eq!(
                t.query(VirtAddr::new(va + i * PAGE_SIZE)),
                Some(Pte::new(Pfn(512 + i), RW | PteFlags::DIRTY))
            );
        }
    }
}
