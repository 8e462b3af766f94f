//! Faults in hugetlb mappings: a missing page is taken from the pool (using up the
//! mapping's reservation; `SIGBUS` when the pool has none, as a `MAP_NORESERVE`
//! mapping finds after an overrun) and mapped with one huge leaf marked `HUGETLB`;
//! a shared mapping's page is found in the mapping first. A write to a private page
//! shared with a fork relative copies the whole page (or reuses it when nobody else
//! maps it).

use super::{fresh_hw_bits, vma_pte_perms, Access, FaultError, FaultResolved};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::frame::{Pfn, Policy};
use crate::hugetlb_map::HugetlbMap;
use crate::pagetable::{huge_base, InstallError, PageTable, Pte, PteFlags, HUGE_PAGES, HUGE_SIZE};
use crate::tlb::TlbBatch;
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// A fault at `page` in the hugetlb VMA `vma` (the VMA allows `access`).
    pub(super) fn hugetlb_fault(
        &self,
        vma: &Vma,
        map: &HugetlbMap,
        page: u64,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        if map.page_bytes() > HUGE_SIZE {
            return self.hugetlb_fault_multi(vma, map, page, access);
        }
        let head_va = huge_base(page);
        let pt = self.page_table();
        let perms = vma_pte_perms(vma.flags);
        let policy = self.huge_placement(vma, head_va, map.page_bytes());
        if let Some(leaf) = pt.query_huge(VirtAddr::new(head_va)) {
            if leaf.flags.contains(PteFlags::BUSY)
                || (leaf.flags.contains(access.pte_flag()) && leaf.flags.contains(PteFlags::READ))
            {
                return Ok(FaultResolved::Spurious);
            }
            if access == Access::Write && vma.is_private() {
                return self.hugetlb_cow(map, head_va, leaf, perms, policy);
            }
            let keep_write = if vma.is_private() {
                leaf.flags & PteFlags::WRITE
            } else {
                PteFlags::WRITE
            };
            let new = leaf.with_flags(
                (leaf.flags - PteFlags::PERMS)
                    | (perms & (keep_write | !PteFlags::WRITE))
                    | fresh_hw_bits(access),
            );
            return Ok(match pt.replace_huge(VirtAddr::new(head_va), leaf, new) {
                Ok(()) => FaultResolved::Upgraded,
                Err(_) => FaultResolved::Spurious,
            });
        }
        let page = map
            .page_for_fault(head_va, policy)
            .map_err(|_| FaultError::SigBus)?;
        let head = page.head();
        let mut flags = perms | fresh_hw_bits(access) | PteFlags::HUGETLB;
        if vma.is_private() && !page.exclusive() {
            // A file page read through a private mapping: its first write copies it.
            flags -= PteFlags::WRITE | PteFlags::DIRTY;
            if access == Access::Write {
                let leaf = Pte::new(head, flags);
                return match pt.install_huge(VirtAddr::new(head_va), leaf) {
                    Ok(()) => self.hugetlb_cow(map, head_va, leaf, perms, policy),
                    Err(e) => {
                        map.release(head);
                        match e {
                            InstallError::Occupied(_) => Ok(FaultResolved::Spurious),
                            InstallError::NoMemory => Err(FaultError::Oom),
                        }
                    }
                };
            }
        }
        match pt.install_huge(VirtAddr::new(head_va), Pte::new(head, flags)) {
            Ok(()) => Ok(FaultResolved::DemandZeroHuge),
            Err(InstallError::Occupied(_)) => {
                map.release(head);
                Ok(FaultResolved::Spurious)
            }
            Err(InstallError::NoMemory) => {
                map.release(head);
                Err(FaultError::Oom)
            }
        }
    }

    /// A fault in a mapping of 1 GiB pages, each mapped by 512 2 MiB leaves that
    /// change together: the mapping's fault lock is held throughout.
    fn hugetlb_fault_multi(
        &self,
        vma: &Vma,
        map: &HugetlbMap,
        page: u64,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        let _serial = map.fault_lock.lock();
        let pt = self.page_table();
        let perms = vma_pte_perms(vma.flags);
        let start = map.page_start(page);
        let leaves = map.page_bytes() / HUGE_SIZE;
        let leaf_va = |i: u64| VirtAddr::new(start + i * HUGE_SIZE);
        let sub = |head: Pfn, i: u64| Pfn(head.0 + i * HUGE_PAGES);
        // Sets every leaf to `f(leaf)`.
        let rewrite = |f: &dyn Fn(Pte) -> Pte| {
            for i in 0..leaves {
                while let Some(cur) = pt.query_huge(leaf_va(i)) {
                    if pt.replace_huge(leaf_va(i), cur, f(cur)).is_ok() {
                        break;
                    }
                }
            }
        };
        if let Some(leaf) = pt.query_huge(VirtAddr::new(huge_base(page))) {
            if leaf.flags.contains(access.pte_flag()) && leaf.flags.contains(PteFlags::READ) {
                return Ok(FaultResolved::Spurious);
            }
            let Some(first) = pt.query_huge(VirtAddr::new(start)) else {
                return Ok(FaultResolved::Spurious);
            };
            let head = first.pfn;
            if access == Access::Write && vma.is_private() {
                let writable = perms | PteFlags::ACCESSED | PteFlags::DIRTY | PteFlags::HUGETLB;
                if self.frames().count(head) == 1 {
                    rewrite(&|cur| Pte::new(cur.pfn, writable | (cur.flags & PteFlags::HW)));
                    return Ok(FaultResolved::CowReused);
                }
                let copy = map
                    .page_for_copy(start, self.huge_placement(vma, start, map.page_bytes()))
                    .map_err(|_| FaultError::SigBus)?;
                let src = self.frames().source();
                for i in 0..leaves * HUGE_PAGES {
                    src.copy(Pfn(copy.0 + i), Pfn(head.0 + i));
                }
                rewrite(&|cur| {
                    let i = (cur.pfn.0 - head.0) / HUGE_PAGES;
                    Pte::new(sub(copy, i), writable)
                });
                let mut batch = TlbBatch::new();
                batch.add(
                    VirtAddr::new(start),
                    VirtAddr::new(start + map.page_bytes()),
                );
                batch.flush(&**self.tlb());
                map.release(head);
                return Ok(FaultResolved::CowCopied);
            }
            let keep_write = if vma.is_private() {
                leaf.flags & PteFlags::WRITE
            } else {
                PteFlags::WRITE
            };
            let grant = perms & (keep_write | !PteFlags::WRITE);
            rewrite(&|cur| {
                cur.with_flags((cur.flags - PteFlags::PERMS) | grant | fresh_hw_bits(access))
            });
            return Ok(FaultResolved::Upgraded);
        }
        let policy = self.huge_placement(vma, start, map.page_bytes());
        let page = map
            .page_for_fault(start, policy)
            .map_err(|_| FaultError::SigBus)?;
        let head = page.head();
        let mut flags = perms | fresh_hw_bits(access) | PteFlags::HUGETLB;
        if vma.is_private() && !page.exclusive() {
            // A file page read through a private mapping: a write faults again once
            // it is mapped, and copies it.
            flags -= PteFlags::WRITE | PteFlags::DIRTY;
        }
        for i in 0..leaves {
            if let Err(e) = pt.install_huge(leaf_va(i), Pte::new(sub(head, i), flags)) {
                for j in 0..i {
                    pt.unmap_huge(leaf_va(j));
                }
                map.release(head);
                return match e {
                    InstallError::Occupied(_) => Ok(FaultResolved::Spurious),
                    InstallError::NoMemory => Err(FaultError::Oom),
                };
            }
        }
        Ok(FaultResolved::DemandZeroHuge)
    }

    /// A write to the read-only private hugetlb leaf `leaf` at `head_va`; the copy is
    /// placed by `policy`.
    fn hugetlb_cow(
        &self,
        map: &HugetlbMap,
        head_va: u64,
        leaf: Pte,
        perms: PteFlags,
        policy: Policy,
    ) -> Result<FaultResolved, FaultError> {
        let pt = self.page_table();
        let locked = leaf.with_flags(leaf.flags | PteFlags::BUSY);
        if pt
            .replace_huge(VirtAddr::new(head_va), leaf, locked)
            .is_err()
        {
            return Ok(FaultResolved::Spurious);
        }
        let writable = perms | PteFlags::ACCESSED | PteFlags::DIRTY | PteFlags::HUGETLB;
        let unlock = |to: Pte| {
            let mut cur = locked;
            while let Err(Some(now)) = pt.replace_huge(VirtAddr::new(head_va), cur, to) {
                cur = now;
            }
        };
        if self.frames().count(leaf.pfn) == 1 {
            unlock(Pte::new(leaf.pfn, writable));
            return Ok(FaultResolved::CowReused);
        }
        let Ok(copy) = map.page_for_copy(head_va, policy) else {
            unlock(leaf);
            return Err(FaultError::SigBus);
        };
        let src = self.frames().source();
        for i in 0..HUGE_PAGES {
            src.copy(Pfn(copy.0 + i), Pfn(leaf.pfn.0 + i));
        }
        unlock(Pte::new(copy, writable));
        let mut batch = TlbBatch::new();
        batch.add(
            VirtAddr::new(head_va),
            VirtAddr::new(head_va + crate::pagetable::HUGE_SIZE),
        );
        batch.flush(&**self.tlb());
        map.release(leaf.pfn);
        Ok(FaultResolved::CowCopied)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::addr::VirtAddr;
    use alloc::sync::Arc;

    use crate::aspace::tests::{fork, harness, Harness};
    use crate::aspace::{Advice, MmapRequest};
    use crate::errno::MmError;
    use crate::fault::{Access, FaultError, FaultResolved};
    use crate::frame::{Pfn, PAGE_SIZE};
    use crate::hugetlb::{HugeSize, HugetlbSource};
    use crate::pagetable::{PageTable, PteFlags, HUGE_PAGES, HUGE_SIZE};
    use crate::phys::Frames;

    /// A pool of `capacity` 2 MiB pages over the harness's soft frames.
    pub(crate) struct SoftPool {
        frames: Arc<Frames>,
        /// (capacity, in use, reserved)
        counts: spin::Mutex<(u64, u64, u64)>,
    }

    impl SoftPool {
        pub(crate) fn counts(&self) -> (u64, u64, u64) {
            *self.counts.lock()
        }
    }

    impl HugetlbSource for SoftPool {
        fn reserve(&self, _size: HugeSize, pages: u64) -> bool {
            let mut c = self.counts.lock();
            if c.0 - c.1 - c.2 < pages {
                return false;
            }
            c.2 += pages;
            true
        }
        fn unreserve(&self, _size: HugeSize, pages: u64) {
            self.counts.lock().2 -= pages;
        }
        fn take(
            &self,
            _size: HugeSize,
            reserved: bool,
            _policy: crate::frame::Policy,
        ) -> Option<Pfn> {
            let mut c = self.counts.lock();
            if reserved {
                c.2 -= 1;
            } else if c.0 - c.1 <= c.2 {
                return None;
            }
            c.1 += 1;
            self.frames.alloc_huge(VirtAddr::new(0)).ok()
        }
        fn give_back(&self, _size: HugeSize, head: Pfn) {
            self.counts.lock().1 -= 1;
            self.frames.source().free_huge(head);
        }
    }

    pub(crate) fn with_pool(h: &Harness, capacity: u64) -> Arc<SoftPool> {
        let pool = Arc::new(SoftPool {
            frames: h.frames.clone(),
            counts: spin::Mutex::new((capacity, 0, 0)),
        });
        h.aspace.tunables().set_hugetlb_source(pool.clone());
        pool
    }

    const HUGETLB: u64 = 0x4_0000;
    const NORESERVE: u64 = 0x4000;

    fn map(h: &Harness, pages: u64, flags: u64) -> Result<u64, MmError> {
        let req = MmapRequest::from_raw(0, pages * HUGE_SIZE, 0x3, flags | HUGETLB, None, 0)?;
        h.aspace.mmap(&req, false)
    }

    #[test]
    fn reserve_fault_unmap_move_the_pool() {
        let h = harness();
        assert_eq!(map(&h, 1, 0x22), Err(MmError::NoMemory), "no pool source");
        let pool = with_pool(&h, 3);
        let a = map(&h, 2, 0x22).unwrap();
        assert!(a.is_multiple_of(HUGE_SIZE));
        assert_eq!(pool.counts(), (3, 0, 2));
        assert_eq!(
            map(&h, 2, 0x22),
            Err(MmError::NoMemory),
            "only one unreserved"
        );
        assert_eq!(
            h.aspace
                .fault(a + HUGE_SIZE + 5, Access::Write, true)
                .unwrap(),
            FaultResolved::DemandZeroHuge
        );
        assert_eq!(pool.counts(), (3, 1, 1));
        let leaf = h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(a + HUGE_SIZE))
            .unwrap();
        assert!(leaf.flags.contains(PteFlags::HUGETLB | PteFlags::WRITE));
        h.aspace.write_bytes(a + HUGE_SIZE + 100, b"huge").unwrap();
        let v = h.aspace.vma_at(a).unwrap();
        assert!(v.flags().contains(crate::vma::VmFlags::HUGETLB));
        // Unaligned cuts are refused; an mprotect of a whole page keeps it whole.
        assert_eq!(
            h.aspace.munmap(a + PAGE_SIZE, PAGE_SIZE),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace
                .mprotect(a + HUGE_SIZE, PAGE_SIZE, crate::vma::Prot::READ),
            Err(MmError::InvalidArgument)
        );
        h.aspace
            .mprotect(a + HUGE_SIZE, HUGE_SIZE, crate::vma::Prot::READ)
            .unwrap();
        let ro = h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(a + HUGE_SIZE))
            .unwrap();
        assert_eq!(ro.pfn, leaf.pfn);
        assert!(!ro.flags.contains(PteFlags::WRITE));
        let mut b = [0u8; 4];
        h.aspace.read_bytes(a + HUGE_SIZE + 100, &mut b).unwrap();
        assert_eq!(&b, b"huge");
        h.aspace.check_invariants().unwrap();
        let smaps = crate::procfs::smaps(&h.aspace);
        assert!(smaps.contains("KernelPageSize:     2048 kB"), "{smaps}");
        assert!(smaps.contains("Private_Hugetlb:    2048 kB"), "{smaps}");
        assert!(smaps.contains("Rss:                   0 kB"), "{smaps}");
        assert!(smaps.contains(" ht "), "{smaps}");
        assert_eq!(h.aspace.resident_pages(), 0, "hugetlb pages are not RSS");
        // Unmapping the unfaulted page gives its reservation back; the other page
        // goes back to the pool.
        h.aspace.munmap(a, HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (3, 1, 0));
        h.aspace.munmap(a + HUGE_SIZE, HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (3, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn no_operation_cuts_a_hugetlb_vma_between_huge_pages() {
        let h = harness();
        let _pool = with_pool(&h, 4);
        let a = map(&h, 2, 0x22).unwrap();
        let off = a + HUGE_SIZE + PAGE_SIZE;
        // MAP_FIXED of ordinary memory over part of it (the fuzzer's way in: the rest
        // of the hugetlb VMA started off a huge page, and a fault's huge-page base fell
        // below the VMA), mlock, mbind and mseal: EINVAL, nothing changed.
        let fixed = MmapRequest::from_raw(off, PAGE_SIZE, 0x3, 0x32, None, 0).unwrap();
        assert_eq!(h.aspace.mmap(&fixed, false), Err(MmError::InvalidArgument));
        assert_eq!(
            h.aspace.set_range_policy(off, PAGE_SIZE, None),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(h.aspace.vma_at(a).unwrap().start, a);
        assert_eq!(h.aspace.vma_at(off).unwrap().start, a, "still one VMA");
        // On a huge page boundary the cut is allowed.
        let aligned = MmapRequest::from_raw(a + HUGE_SIZE, HUGE_SIZE, 0x3, 0x32, None, 0).unwrap();
        assert_eq!(h.aspace.mmap(&aligned, false), Ok(a + HUGE_SIZE));
        assert_eq!(
            h.aspace.fault(a + 5, Access::Write, true).unwrap(),
            FaultResolved::DemandZeroHuge
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn noreserve_overrun_is_sigbus() {
        let h = harness();
        let pool = with_pool(&h, 1);
        let a = map(&h, 2, 0x22 | NORESERVE).unwrap();
        assert_eq!(pool.counts(), (1, 0, 0));
        h.aspace.fault(a, Access::Write, true).unwrap();
        assert!(matches!(
            h.aspace.fault(a + HUGE_SIZE, Access::Write, true),
            Err(FaultError::SigBus)
        ));
        h.aspace.teardown();
        assert_eq!(pool.counts(), (1, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn fork_private_copies_on_write_shared_shares() {
        let h = harness();
        let pool = with_pool(&h, 4);
        let p = map(&h, 1, 0x22).unwrap();
        let s = map(&h, 1, 0x21).unwrap();
        h.aspace.write_bytes(p, b"private").unwrap();
        h.aspace.write_bytes(s, b"shared!").unwrap();
        let child = fork(&h);
        assert_eq!(pool.counts().1, 2);
        // The child's write copies the private page (a page with no reservation).
        assert_eq!(
            child.fault(p, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        child.write_bytes(p, b"childs!").unwrap();
        child.write_bytes(s + 1, b"X").unwrap();
        let mut b = [0u8; 7];
        h.aspace.read_bytes(p, &mut b).unwrap();
        assert_eq!(&b, b"private");
        h.aspace.read_bytes(s, &mut b).unwrap();
        assert_eq!(&b, b"sXared!");
        assert_eq!(pool.counts().1, 3);
        assert_eq!(
            h.aspace.fault(p, Access::Write, true).unwrap(),
            FaultResolved::CowReused
        );
        drop(child);
        assert_eq!(pool.counts().1, 2);
        // DONTNEED drops a private page; it comes back zeroed.
        h.aspace.madvise(p, HUGE_SIZE, Advice::DontNeed).unwrap();
        h.aspace.read_bytes(p, &mut b).unwrap();
        assert_eq!(b, [0; 7]);
        h.aspace.teardown();
        assert_eq!(pool.counts(), (4, 0, 0));
        assert_eq!(h.soft.live(), 0);
        let _ = HUGE_PAGES;
    }
}
