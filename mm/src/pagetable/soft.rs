//! [`SoftPageTable`]: a software 4-level radix table with the same shape and the
//! same concurrency as the x86_64 one (atomic leaf words updated by compare-and-swap,
//! intermediate tables installed once), so host tests exercise the real races.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{InstallError, PageTable, Pte, PteFlags};
use crate::frame::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::swap::SwapEntry;

const ENTRIES: usize = 512;
const VALID: u64 = 1;
/// Marks a not-present word holding a swap entry.
const SWAP: u64 = 2;

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

type Pml4 = Dir<Dir<Dir<Leaf>>>;

fn index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

fn encode(pte: Pte) -> u64 {
    (pte.pfn.0 << PAGE_SHIFT) | (u64::from(pte.flags.bits()) << 1) | VALID
}

/// A swap entry's word: the valid bit clear, bit 1 set, the entry above.
fn encode_swap(swap: SwapEntry) -> u64 {
    (swap.raw() << 2) | SWAP
}

fn decode_swap(word: u64) -> Option<SwapEntry> {
    (word & (VALID | SWAP) == SWAP).then(|| SwapEntry::from_raw(word >> 2))
}

fn decode(word: u64) -> Option<Pte> {
    if word & VALID == 0 {
        return None;
    }
    Some(Pte {
        pfn: Pfn(word >> PAGE_SHIFT),
        flags: PteFlags::from_bits_truncate(((word >> 1) & 0x3f) as u8),
    })
}

/// A software page table for host tests.
#[derive(Default)]
pub struct SoftPageTable {
    root: Pml4,
    tables: AtomicU64,
}

impl SoftPageTable {
    /// An empty table.
    pub fn new() -> SoftPageTable {
        SoftPageTable::default()
    }

    fn child<'a, T: Default>(&self, dir: &'a Dir<T>, i: usize, create: bool) -> Option<&'a T> {
        let slot = &dir.0[i];
        if create {
            Some(slot.call_once(|| {
                self.tables.fetch_add(1, Ordering::Relaxed);
                Box::default()
            }))
        } else {
            slot.get().map(|b| &**b)
        }
    }

    fn leaf(&self, va: u64, create: bool) -> Option<&AtomicU64> {
        let l3 = self.child(&self.root, index(va, 3), create)?;
        let l2 = self.child(l3, index(va, 2), create)?;
        let l1 = self.child(l2, index(va, 1), create)?;
        Some(&l1.0[index(va, 0)])
    }

    /// Calls `f` with every leaf word of `[start, end)` whose table exists.
    fn walk(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, &AtomicU64)) {
        if start >= end {
            return;
        }
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
                    let Some(l1) = l2.0[i1].get() else { continue };
                    let b1 = b2 + i1 as u64 * span(1);
                    let (lo1, hi1) = (lo2.max(b1), hi2.min(b1 + span(1) - 1));
                    for i0 in index(lo1, 0)..=index(hi1, 0) {
                        f(b1 + i0 as u64 * PAGE_SIZE, &l1.0[i0]);
                    }
                }
            }
        }
    }
}

impl PageTable for SoftPageTable {
    fn query(&self, va: u64) -> Option<Pte> {
        decode(self.leaf(va, false)?.load(Ordering::Acquire))
    }

    fn install(&self, va: u64, pte: Pte) -> Result<(), InstallError> {
        let slot = self.leaf(va, true).ok_or(InstallError::NoMemory)?;
        match slot.compare_exchange(0, encode(pte), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            // A swap entry occupies the word too (reported as the entry offered, as
            // the x86 table does: nothing is mapped there).
            Err(cur) => Err(InstallError::Occupied(decode(cur).unwrap_or(pte))),
        }
    }

    fn replace(&self, va: u64, expected: Pte, new: Pte) -> Result<(), Option<Pte>> {
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

    fn unmap(&self, va: u64) -> Option<Pte> {
        decode(self.leaf(va, false)?.swap(0, Ordering::AcqRel))
    }

    fn scan(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, Pte)) {
        self.walk(start, end, &mut |va, word| {
            if let Some(pte) = decode(word.load(Ordering::Acquire)) {
                f(va, pte);
            }
        });
    }

    fn query_swap(&self, va: u64) -> Option<SwapEntry> {
        decode_swap(self.leaf(va, false)?.load(Ordering::Acquire))
    }

    fn install_swap(&self, va: u64, expected: Pte, swap: SwapEntry) -> Result<(), Option<Pte>> {
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

    fn restore_swap(&self, va: u64, swap: SwapEntry, pte: Pte) -> bool {
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

    fn place_swap(&self, va: u64, swap: SwapEntry) -> Result<(), InstallError> {
        let slot = self.leaf(va, true).ok_or(InstallError::NoMemory)?;
        match slot.compare_exchange(0, encode_swap(swap), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(_) => Err(InstallError::NoMemory),
        }
    }

    fn take_swap(&self, va: u64) -> Option<SwapEntry> {
        let slot = self.leaf(va, false)?;
        let word = slot.load(Ordering::Acquire);
        let swap = decode_swap(word)?;
        slot.compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| swap)
    }

    fn scan_swap(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, SwapEntry)) {
        self.walk(start, end, &mut |va, word| {
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
        assert_eq!(t.query(va), None);
        let pte = Pte::new(Pfn(42), RW);
        t.install(va, pte).unwrap();
        assert_eq!(t.query(va), Some(pte));
        assert_eq!(
            t.install(va, Pte::new(Pfn(1), RW)),
            Err(InstallError::Occupied(pte))
        );
        let ro = pte.with_flags(PteFlags::READ);
        assert_eq!(t.replace(va, ro, ro), Err(Some(pte)));
        t.replace(va, pte, ro).unwrap();
        assert_eq!(t.update_flags(va, &mut |f| f | PteFlags::DIRTY), Some(ro));
        assert_eq!(t.query(va).unwrap().flags, PteFlags::READ | PteFlags::DIRTY);
        assert_eq!(t.map(va, pte).unwrap().map(|p| p.pfn), Some(Pfn(42)));
        assert_eq!(t.unmap(va), Some(pte));
        assert_eq!(t.unmap(va), None);
        assert_eq!(t.replace(0x1000, pte, pte), Err(None));
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
            t.install(a, Pte::new(Pfn(i as u64 + 1), RW)).unwrap();
        }
        let mut seen = Vec::new();
        t.scan(0, 1 << 47, &mut |va, _| seen.push(va));
        assert_eq!(seen, addrs);
        seen.clear();
        t.scan(0x2000, 0x4000_0000, &mut |va, _| seen.push(va));
        assert_eq!(seen, [0x20_0000, 0x3f_f000]);
        assert_eq!(t.count(0x3f_f000, 0x4000_1000), 2);
        // The callback may clear what it is given.
        t.scan(0, 1 << 47, &mut |va, _| {
            t.unmap(va);
        });
        assert_eq!(t.count(0, 1 << 47), 0);
        assert!(t.table_bytes() > PAGE_SIZE);
    }
}
