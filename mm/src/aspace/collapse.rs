//! khugepaged's work on one address space: find 2 MiB-aligned slots of eligible
//! private anonymous VMAs that are populated with 4 KiB pages (all of them, or all
//! but `max_ptes_none`), each unshared and with the same permissions, and replace
//! each such run with one huge page holding the same bytes.
//!
//! The collapse takes the VMA tree for writing (no fault runs meanwhile), removes
//! the 512 entries and flushes the TLB before copying, so no write can land in an
//! old frame after its bytes were copied; then the huge leaf takes the emptied table
//! out of the slot and the old frames are released.

use alloc::vec::Vec;

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::fault::vma_pte_perms;
use crate::frame::{Pfn, PAGE_SIZE};
use crate::pagetable::{PageTable, Pte, PteFlags, HUGE_PAGES, HUGE_SIZE};
use crate::phys::PAGE_BYTES;
use crate::thp::Thp;
use crate::tlb::TlbBatch;
use crate::vma::{Backing, Vma};

/// What one [`AddressSpace::collapse_scan`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollapseScan {
    /// Where the next call should start (0: this address space is done).
    pub next: u64,
    /// 4 KiB pages looked at.
    pub scanned_pages: u64,
    /// Slots collapsed into huge pages.
    pub collapsed: u64,
    /// A huge page could not be allocated (khugepaged sleeps `alloc_sleep`).
    pub alloc_failed: bool,
}

impl<P: PageTable> AddressSpace<P> {
    /// Looks at up to `budget_pages` pages' worth of 2 MiB slots from `from`,
    /// collapsing every suitable one.
    pub fn collapse_scan(&self, from: u64, budget_pages: u64) -> CollapseScan {
        let thp = self.tunables().thp();
        let mut out = CollapseScan::default();
        if !self.thp_candidate() {
            return out;
        }
        let mut at = from;
        while out.scanned_pages < budget_pages {
            let Some(slot) = self.next_collapse_slot(at) else {
                out.next = 0;
                return out;
            };
            at = slot + HUGE_SIZE;
            out.next = at;
            out.scanned_pages += HUGE_PAGES;
            {
                let st = self.state().read();
                let Some(vma) = st.tree.find(slot) else {
                    continue;
                };
                if self.collapsible(vma, slot).is_none() {
                    continue;
                }
            }
            let head = match self.frames().alloc_huge(VirtAddr::new(slot)) {
                Ok(head) => head,
                Err(_) => {
                    Thp::count(&thp.counters.collapse_alloc_failed);
                    out.alloc_failed = true;
                    return out;
                }
            };
            if self.collapse_slot(slot, head) {
                Thp::count(&thp.counters.collapse_alloc);
                Thp::count(&thp.counters.pages_collapsed);
                out.collapsed += 1;
            } else {
                self.frames().source().free_huge(head);
            }
        }
        out
    }

    /// The first 2 MiB slot at or after `at` lying wholly inside an eligible VMA.
    fn next_collapse_slot(&self, at: u64) -> Option<u64> {
        let st = self.state().read();
        let thp = self.tunables().thp();
        let slot = st
            .tree
            .overlapping(at, self.layout().task_size)
            .filter(|v| collapse_eligible(thp, v))
            .find_map(|v| {
                let slot = v.start.max(at).next_multiple_of(HUGE_SIZE);
                (slot + HUGE_SIZE <= v.end).then_some(slot)
            });
        slot
    }

    /// The entries of `slot` (inside `vma`) if it can be collapsed: no huge leaf,
    /// at most `max_ptes_none` missing, every present one unshared, idle (not BUSY)
    /// and with the VMA's permissions (or fewer, but for read). `None` otherwise.
    fn collapsible(&self, vma: &Vma, slot: u64) -> Option<Vec<Option<Pte>>> {
        let thp = self.tunables().thp();
        if !collapse_eligible(thp, vma) || slot < vma.start || slot + HUGE_SIZE > vma.end {
            return None;
        }
        let pt = self.page_table();
        if pt.query_huge(VirtAddr::new(slot)).is_some() {
            return None;
        }
        let perms = vma_pte_perms(vma.flags);
        let mut entries: Vec<Option<Pte>> = alloc::vec![None; HUGE_PAGES as usize];
        let mut ok = true;
        pt.scan(
            VirtAddr::new(slot),
            VirtAddr::new(slot + HUGE_SIZE),
            &mut |va, pte| {
                let unshared = self.frames().count(pte.pfn) == 1;
                // An unshared entry left read-only by a finished fork counts as writable.
                let entry_perms = pte.flags & PteFlags::PERMS;
                let same = perms.contains(entry_perms)
                    && entry_perms.contains(PteFlags::READ) == perms.contains(PteFlags::READ);
                if pte.flags.contains(PteFlags::BUSY) || !same || !unshared {
                    ok = false;
                }
                entries[((va.as_u64() - slot) / PAGE_SIZE) as usize] = Some(pte);
            },
        );
        let missing = entries.iter().filter(|e| e.is_none()).count() as u64;
        (ok && missing <= thp.max_ptes_none() && missing < HUGE_PAGES).then_some(entries)
    }

    /// Collapses `slot` into the huge page `head` (512 frames, contents undefined);
    /// false, changing nothing, if the slot no longer qualifies.
    fn collapse_slot(&self, slot: u64, head: Pfn) -> bool {
        let st = self.state().write();
        let Some(vma) = st.tree.find(slot) else {
            return false;
        };
        let Some(entries) = self.collapsible(vma, slot) else {
            return false;
        };
        let pt = self.page_table();
        // Take the pages away from userland and flush before reading them.
        let mut removed: Vec<Option<Pte>> = Vec::with_capacity(entries.len());
        for (i, _) in entries.iter().enumerate() {
            removed.push(pt.unmap(VirtAddr::new(slot + i as u64 * PAGE_SIZE)));
        }
        let mut batch = TlbBatch::new();
        batch.add(VirtAddr::new(slot), VirtAddr::new(slot + HUGE_SIZE));
        batch.flush(&**self.tlb());
        let src = self.frames().source();
        let zero = [0u8; PAGE_BYTES];
        for (i, old) in removed.iter().enumerate() {
            let dst = Pfn(head.0 + i as u64);
            match old {
                Some(old) => src.copy(dst, old.pfn),
                None => src.write(dst, 0, &zero),
            }
        }
        let flags = vma_pte_perms(vma.flags) | PteFlags::ACCESSED | PteFlags::DIRTY;
        if pt
            .install_huge(VirtAddr::new(slot), Pte::new(head, flags))
            .is_err()
        {
            // Cannot happen with the tree held for writing and the slot emptied; put
            // the pages back as they were.
            for (i, old) in removed.iter().enumerate() {
                if let Some(old) = old {
                    let _ = pt.install(VirtAddr::new(slot + i as u64 * PAGE_SIZE), *old);
                }
            }
            return false;
        }
        for old in removed.into_iter().flatten() {
            self.frames().put(old.pfn);
        }
        true
    }
}

/// Whether khugepaged may collapse in `vma`: THP eligible, private anonymous, not
/// watched by userfaultfd.
fn collapse_eligible(thp: &Thp, vma: &Vma) -> bool {
    thp.vma_eligible(vma.flags) && matches!(vma.backing, Backing::Anon) && vma.interceptor.is_none()
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::harness;
    use crate::fault::huge::tests::huge_region;
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, HUGE_PAGES, HUGE_SIZE};
    use core::sync::atomic::Ordering;

    #[test]
    fn populated_run_collapses_keeping_bytes() {
        let h = harness();
        h.soft.set_huge(false);
        let a = huge_region(&h, 2);
        for i in 0..HUGE_PAGES {
            h.aspace
                .write_bytes(a + i * PAGE_SIZE + 8, &i.to_le_bytes())
                .unwrap();
        }
        // The second slot has one page missing: left alone with max_ptes_none 0.
        for i in 1..HUGE_PAGES {
            h.aspace
                .write_bytes(a + HUGE_SIZE + i * PAGE_SIZE, b"x")
                .unwrap();
        }
        h.soft.set_huge(true);
        assert_eq!(h.aspace.page_table().query_huge(VirtAddr::new(a)), None);
        let live = h.soft.live();
        let r = h.aspace.collapse_scan(0, u64::MAX);
        assert_eq!(r.collapsed, 1);
        assert_eq!(r.next, 0);
        assert!(h.aspace.page_table().query_huge(VirtAddr::new(a)).is_some());
        assert_eq!(
            h.aspace
                .page_table()
                .query_huge(VirtAddr::new(a + HUGE_SIZE)),
            None
        );
        assert_eq!(h.soft.live(), live, "512 frames in, 512 out");
        assert!(h.tlb.flushes() >= 1);
        for i in 0..HUGE_PAGES {
            let mut b = [0u8; 8];
            h.aspace.read_bytes(a + i * PAGE_SIZE + 8, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), i);
        }
        let c = &h.aspace.tunables().thp().counters;
        assert_eq!(c.collapse_alloc.load(Ordering::Relaxed), 1);
        // With max_ptes_none the other slot goes too, its hole zeroed.
        h.aspace.tunables().thp().set_max_ptes_none(1);
        assert_eq!(h.aspace.collapse_scan(0, u64::MAX).collapsed, 1);
        let mut b = [1u8; 4];
        h.aspace.read_bytes(a + HUGE_SIZE, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        h.aspace.check_invariants().unwrap();
        h.aspace.teardown();
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn shared_or_mixed_runs_and_budget() {
        let h = harness();
        h.soft.set_huge(false);
        let a = huge_region(&h, 2);
        h.aspace
            .write_bytes(a, &alloc::vec![7u8; 2 * HUGE_SIZE as usize])
            .unwrap();
        h.soft.set_huge(true);
        // A fork shares every page: nothing collapses.
        let child = crate::aspace::tests::fork(&h);
        assert_eq!(h.aspace.collapse_scan(0, u64::MAX).collapsed, 0);
        drop(child);
        // One read-only page: its VMA is split off, so that slot is not inside one
        // VMA; the budget stops after the one slot that is.
        h.aspace
            .mprotect(a + PAGE_SIZE, PAGE_SIZE, crate::vma::Prot::READ)
            .unwrap();
        let r = h.aspace.collapse_scan(0, HUGE_PAGES);
        assert_eq!((r.collapsed, r.scanned_pages), (1, HUGE_PAGES));
        assert_eq!(h.aspace.page_table().query_huge(VirtAddr::new(a)), None);
        assert!(h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(a + HUGE_SIZE))
            .is_some());
        let r = h.aspace.collapse_scan(r.next, HUGE_PAGES);
        assert_eq!((r.collapsed, r.next), (0, 0));
        // No huge frames: counted, and the scan says so.
        h.aspace.munmap(a + HUGE_SIZE, HUGE_SIZE).unwrap();
        h.aspace
            .mprotect(
                a + PAGE_SIZE,
                PAGE_SIZE,
                crate::vma::Prot::READ | crate::vma::Prot::WRITE,
            )
            .unwrap();
        h.soft.set_huge(false);
        let r = h.aspace.collapse_scan(0, u64::MAX);
        assert!(r.alloc_failed);
        let c = &h.aspace.tunables().thp().counters;
        assert_eq!(c.collapse_alloc_failed.load(Ordering::Relaxed), 1);
    }
}
