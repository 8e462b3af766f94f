//! Huge demand-zero: the first touch of a private anonymous 2 MiB slot that lies
//! wholly inside its VMA and maps nothing yet maps a zeroed 2 MiB page with one
//! PMD-level leaf, taken straight from the node's buddy (or the kernel's pre-zeroed
//! pool). Anything else — THP off for the VMA, the slot crossing the VMA's edge or
//! holding a 4 KiB page, no huge page free — falls back to the 4 KiB path.

use super::{fresh_hw_bits, vma_pte_perms, Access, FaultError, FaultResolved};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::pagetable::{huge_base, InstallError, PageTable, Pte, HUGE_SIZE};
use crate::thp::Thp;
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// Tries a huge demand-zero fault for `page` (no entry there; the VMA allows
    /// `access`). `None`: not eligible, or no huge page: take the 4 KiB path.
    pub(super) fn huge_demand_zero(
        &self,
        vma: &Vma,
        page: u64,
        access: Access,
    ) -> Option<Result<FaultResolved, FaultError>> {
        let thp = self.tunables().thp();
        let head = huge_base(page);
        if !self.thp_allowed(vma)
            || vma.interceptor.is_some()
            || head < vma.start
            || head + HUGE_SIZE > vma.end
        {
            return None;
        }
        let pt = self.page_table();
        if !pt.supports_huge() || !pt.huge_slot_empty(VirtAddr::new(head)) {
            return None;
        }
        let pfn = match self.frames().alloc_huge_zeroed(
            VirtAddr::new(head),
            thp.fault_may_wait(vma.flags),
            self.huge_placement(vma, head, HUGE_SIZE),
        ) {
            Ok(pfn) => pfn,
            Err(crate::phys::AllocFailure::Wait(wait)) => {
                return Some(Err(FaultError::NeedsWait(wait)))
            }
            Err(crate::phys::AllocFailure::OutOfMemory) => {
                Thp::count(&thp.counters.fault_fallback);
                return None;
            }
        };
        let flags = vma_pte_perms(vma.flags) | fresh_hw_bits(access);
        match pt.install_huge(VirtAddr::new(head), Pte::new(pfn, flags)) {
            Ok(()) => {
                Thp::count(&thp.counters.fault_alloc);
                Some(Ok(FaultResolved::DemandZeroHuge))
            }
            // Another fault mapped something in the slot first: retry the access.
            Err(InstallError::Occupied(_)) => {
                self.frames().source().free_huge(pfn);
                Some(Ok(FaultResolved::Spurious))
            }
            Err(InstallError::NoMemory) => {
                self.frames().source().free_huge(pfn);
                Thp::count(&thp.counters.fault_fallback);
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{fork, harness, Harness};
    use crate::aspace::{Advice, MmapRequest};
    use crate::fault::{Access, FaultResolved};
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, PteFlags, HUGE_PAGES, HUGE_SIZE};
    use crate::thp::ThpEnabled;
    use core::sync::atomic::Ordering;

    /// A private anonymous read-write mapping of `huge` 2 MiB slots, 2 MiB-aligned,
    /// advised `MADV_HUGEPAGE`.
    pub(crate) fn huge_region(h: &Harness, huge: u64) -> u64 {
        let len = (huge + 1) * HUGE_SIZE;
        let req = MmapRequest::from_raw(0, len, 0x3, 0x22, None, 0).unwrap();
        let raw = h.aspace.mmap(&req, false).unwrap();
        let a = raw.next_multiple_of(HUGE_SIZE);
        h.aspace.munmap(raw, a - raw).ok();
        let tail = a + huge * HUGE_SIZE;
        h.aspace.munmap(tail, raw + len - tail).unwrap();
        h.aspace
            .madvise(a, huge * HUGE_SIZE, Advice::HugePage)
            .unwrap();
        a
    }

    #[test]
    fn advised_fault_maps_one_huge_leaf() {
        let h = harness();
        let a = huge_region(&h, 2);
        let c = &h.aspace.tunables().thp().counters;
        assert_eq!(
            h.aspace
                .fault(a + 5 * PAGE_SIZE + 7, Access::Write, true)
                .unwrap(),
            FaultResolved::DemandZeroHuge
        );
        let pt = h.aspace.page_table();
        let head = pt.query_huge(VirtAddr::new(a)).unwrap();
        assert!(head.pfn.0.is_multiple_of(HUGE_PAGES));
        assert!(head.flags.contains(PteFlags::WRITE | PteFlags::DIRTY));
        assert_eq!(
            pt.query(VirtAddr::new(a + 9 * PAGE_SIZE)).unwrap().pfn.0,
            head.pfn.0 + 9
        );
        assert_eq!(h.soft.live(), HUGE_PAGES);
        assert_eq!(h.aspace.resident_pages(), HUGE_PAGES);
        assert_eq!(c.fault_alloc.load(Ordering::Relaxed), 1);
        // Any other page of the slot is already there.
        assert_eq!(
            h.aspace
                .fault(a + HUGE_SIZE - 1, Access::Read, true)
                .unwrap(),
            FaultResolved::Spurious
        );
        // Data written through the huge leaf reads back page by page.
        h.aspace.write_bytes(a + HUGE_SIZE - 3, b"xyz").unwrap();
        let mut b = [0u8; 3];
        h.aspace.read_bytes(a + HUGE_SIZE - 3, &mut b).unwrap();
        assert_eq!(&b, b"xyz");
        h.aspace.check_invariants().unwrap();
        let smaps = crate::procfs::smaps(&h.aspace);
        assert!(smaps.contains("AnonHugePages:      2048 kB"), "{smaps}");
        assert!(smaps.contains("THPeligible:           1"));
        assert!(smaps.contains(" hg \n"));
        let mut heads = 0;
        h.aspace.anon_huge_pages(&mut |_| heads += 1);
        assert_eq!(heads, 1);
        assert_eq!(pt.huge_leaves(), 1);
        h.aspace.munmap(a, 2 * HUGE_SIZE).unwrap();
        assert_eq!(h.soft.live(), 0);
        assert_eq!(h.aspace.page_table().huge_leaves(), 0);
    }

    #[test]
    fn unadvised_never_and_nohugepage_get_small_pages() {
        let h = harness();
        let a = huge_region(&h, 1);
        h.aspace.madvise(a, HUGE_SIZE, Advice::NoHugePage).unwrap();
        h.aspace.tunables().thp().set_enabled(ThpEnabled::Always);
        assert_eq!(
            h.aspace.fault(a, Access::Write, true).unwrap(),
            FaultResolved::DemandZero
        );
        let b = huge_region(&h, 1);
        h.aspace.tunables().thp().set_enabled(ThpEnabled::Never);
        assert_eq!(
            h.aspace.fault(b, Access::Write, true).unwrap(),
            FaultResolved::DemandZero
        );
        // always: no advice needed.
        let c = huge_region(&h, 1);
        h.aspace.madvise(c, HUGE_SIZE, Advice::Normal).unwrap();
        h.aspace.tunables().thp().set_enabled(ThpEnabled::Always);
        assert_eq!(
            h.aspace.fault(c, Access::Read, true).unwrap(),
            FaultResolved::DemandZeroHuge
        );
    }

    #[test]
    fn slot_crossing_the_vma_or_holding_a_page_falls_back() {
        let h = harness();
        let a = huge_region(&h, 2);
        // A 4 KiB page first: that slot stays small.
        h.aspace.munmap(a + HUGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(
            h.aspace
                .fault(a + HUGE_SIZE + PAGE_SIZE, Access::Read, true)
                .unwrap(),
            FaultResolved::DemandZero
        );
        let thp = h.aspace.tunables().thp();
        assert_eq!(thp.counters.fault_alloc.load(Ordering::Relaxed), 0);
        // No huge frames: counted fallback, 4 KiB page.
        h.soft.set_huge(false);
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::DemandZero
        );
        assert_eq!(thp.counters.fault_fallback.load(Ordering::Relaxed), 1);
        // Once the slot is empty again, it can go huge.
        h.soft.set_huge(true);
        h.aspace.madvise(a, HUGE_SIZE, Advice::DontNeed).unwrap();
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::DemandZeroHuge
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn fork_shares_the_huge_page_and_cow_splits() {
        let h = harness();
        let a = huge_region(&h, 1);
        h.aspace.write_bytes(a + 100, b"parent").unwrap();
        let head = h.aspace.page_table().query_huge(VirtAddr::new(a)).unwrap();
        let child = fork(&h);
        let ch = child.page_table().query_huge(VirtAddr::new(a)).unwrap();
        assert_eq!(ch.pfn, head.pfn);
        assert!(!ch.flags.contains(PteFlags::WRITE));
        assert!(!h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(a))
            .unwrap()
            .flags
            .contains(PteFlags::WRITE));
        assert_eq!(h.frames.count(head.pfn), 2);
        assert_eq!(h.soft.live(), HUGE_PAGES, "nothing copied at fork");
        // The child's write splits its leaf and copies one page.
        assert_eq!(
            child.fault(a + 100, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        assert_eq!(child.page_table().query_huge(VirtAddr::new(a)), None);
        assert_eq!(child.page_table().huge_splits(), 1);
        assert_eq!(h.soft.live(), HUGE_PAGES + 1);
        child.write_bytes(a + 100, b"child!").unwrap();
        let mut b = [0u8; 6];
        h.aspace.read_bytes(a + 100, &mut b).unwrap();
        assert_eq!(&b, b"parent");
        child.read_bytes(a + 100, &mut b).unwrap();
        assert_eq!(&b, b"child!");
        // The parent's leaf stays huge (read-only); its write splits it too, and
        // the page it shares with nobody now is reused, the rest still shared.
        assert_eq!(
            h.aspace.fault(a + 100, Access::Write, true).unwrap(),
            FaultResolved::CowReused
        );
        assert_eq!(h.frames.count(head.pfn), 1);
        assert_eq!(h.frames.count(crate::frame::Pfn(head.pfn.0 + 1)), 2);
        drop(child);
        assert_eq!(h.soft.live(), HUGE_PAGES);
        h.aspace.munmap(a, HUGE_SIZE).unwrap();
        assert_eq!(h.soft.live(), 0);
        assert_eq!(h.frames.shared_frames(), 0);
    }

    #[test]
    fn partial_munmap_and_mprotect_split_keeping_data() {
        let h = harness();
        let a = huge_region(&h, 1);
        for i in 0..HUGE_PAGES {
            h.aspace
                .write_bytes(a + i * PAGE_SIZE, &i.to_le_bytes())
                .unwrap();
        }
        assert!(h.aspace.page_table().query_huge(VirtAddr::new(a)).is_some());
        h.aspace
            .mprotect(a + 3 * PAGE_SIZE, PAGE_SIZE, crate::vma::Prot::READ)
            .unwrap();
        assert_eq!(h.aspace.page_table().query_huge(VirtAddr::new(a)), None);
        assert_eq!(h.aspace.page_table().huge_splits(), 1);
        assert_eq!(h.aspace.resident_pages(), HUGE_PAGES);
        assert!(!h
            .aspace
            .page_table()
            .query(VirtAddr::new(a + 3 * PAGE_SIZE))
            .unwrap()
            .flags
            .contains(PteFlags::WRITE));
        h.aspace.munmap(a + 10 * PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
        assert_eq!(h.soft.live(), HUGE_PAGES - 2);
        for i in (0..HUGE_PAGES).filter(|i| !(10..12).contains(i)) {
            let mut b = [0u8; 8];
            h.aspace.read_bytes(a + i * PAGE_SIZE, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), i);
        }
        h.aspace.check_invariants().unwrap();
        h.aspace.teardown();
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn advice_on_part_of_a_leaf_splits_it_at_the_edge() {
        let h = harness();
        let a = huge_region(&h, 1);
        h.aspace.write_bytes(a, b"q").unwrap();
        h.aspace
            .madvise(a + PAGE_SIZE, PAGE_SIZE, Advice::DontFork)
            .unwrap();
        assert_eq!(h.aspace.page_table().query_huge(VirtAddr::new(a)), None);
        let child = fork(&h);
        assert_eq!(child.page_table().query(VirtAddr::new(a + PAGE_SIZE)), None);
        assert!(child.page_table().query(VirtAddr::new(a)).is_some());
        h.aspace.check_invariants().unwrap();
    }
}
