//! Hugetlb file pages leaving the mappings of an address space: when a hugetlb file
//! shrinks (`ftruncate`, `truncate`, `O_TRUNC`) or has a hole punched
//! (`fallocate(PUNCH_HOLE)`), every mapping of the range, shared or private, loses its
//! pages there, as Linux's `hugetlb_vmdelete_list` unmaps them: a shared mapping's
//! leaves of the file's pages and a private mapping's copy-on-write copies alike. The
//! pages go back to the pool with their last reference; a private mapping keeps the
//! reservations it has not used (Linux gives them back at `munmap`). A later access
//! faults again: `SIGBUS` past the end of the file, a hole's page inside it.
//!
//! There is no reverse map: the kernel calls [`AddressSpace::unmap_hugetlb_file_range`]
//! on every address space (the hook [`crate::hugetlb_file::set_unmap_hook`] installs).
//! It takes the VMA tree's write side, so a fault that found the page before the file
//! changed has mapped it by then and is undone, and a later fault sees the new file.
//! A fork that copied a page the file had just dropped, into a child the kernel's walk
//! did not yet list, is repaired by [`AddressSpace::unmap_stale_hugetlb`].

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::zap::Zap;
use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::frame::Pfn;
use crate::hugetlb_file::{DroppedPages, HugetlbFile};
use crate::hugetlb_map::HugetlbMap;
use crate::pagetable::PageTable;
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// Unmaps the pages of the file indexes `dropped` names from every VMA mapping the
    /// hugetlb file `file` here, shared or private (see the module); a private page
    /// that was not one of the file's gets its mapping's reservation back. Returns the
    /// 4 KiB pages unmapped.
    pub fn unmap_hugetlb_file_range(&self, file: &HugetlbFile, dropped: &DroppedPages) -> u64 {
        let st = self.state().write();
        let pt = self.page_table();
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        // Private pages of their own, by mapping and index, to re-reserve once freed.
        let mut restore = Vec::new();
        for v in st.tree.iter() {
            let Some(map) = file_map_of(v, Some(file)) else {
                continue;
            };
            let Some((lo, hi)) = map.span_of(dropped.first, dropped.end, v.start, v.end) else {
                continue;
            };
            self.private_pages_in(v, lo, hi, &mut |map, idx, pfn| {
                if !dropped.was_file_page(pfn) {
                    restore.push((map, idx));
                }
            });
            zap.vma_range(pt, v, lo, hi);
        }
        let unmapped = zap.finish();
        restore_reservations(restore);
        unmapped
    }

    /// Before `parts` (pieces of VMAs, `MADV_DONTNEED`) are zapped: the private
    /// hugetlb pages of their own there (not a file's page a private mapping only
    /// reads), whose reservations [`restore_reservations`] gives back once they are
    /// unmapped, as Linux 6.12 restores them on every unmap of such a page.
    pub(super) fn hugetlb_private_pages(&self, parts: &[Vma]) -> Vec<(Arc<HugetlbMap>, u64)> {
        let mut found = Vec::new();
        for v in parts {
            self.private_pages_in(v, v.start, v.end, &mut |map, idx, pfn| {
                let file_page = map.file().is_some_and(|f| f.page_at(idx) == Some(pfn));
                if !file_page {
                    found.push((map, idx));
                }
            });
        }
        found
    }

    /// Calls `f` with the mapping, file index and first frame of each huge page
    /// mapped in `[lo, hi)` of `v` if it is a private hugetlb VMA.
    fn private_pages_in(
        &self,
        v: &Vma,
        lo: u64,
        hi: u64,
        f: &mut dyn FnMut(Arc<HugetlbMap>, u64, Pfn),
    ) {
        let Some(map) = &v.hugetlb else {
            return;
        };
        if map.is_shared() {
            return;
        }
        self.page_table().scan_leaves(
            VirtAddr::new(lo),
            VirtAddr::new(hi),
            &mut |va, pte, huge| {
                if huge && map.page_start(va.as_u64()) == va.as_u64() {
                    f(map.clone(), map.index_of(va.as_u64()), pte.pfn);
                }
            },
        );
    }

    /// Unmaps, in every hugetlb file mapping here, the pages the file no longer has:
    /// those past its end, and a shared mapping's pages the file no longer holds at
    /// their index (a punched hole). For a fork child made while a file changed (see
    /// the module). Returns the 4 KiB pages unmapped.
    pub fn unmap_stale_hugetlb(&self) -> u64 {
        let st = self.state().write();
        let pt = self.page_table();
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        for v in st.tree.iter() {
            let Some(map) = file_map_of(v, None) else {
                continue;
            };
            let mut stale = alloc::vec::Vec::new();
            pt.scan_leaves(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |va, pte, huge| {
                    if huge
                        && map.page_start(va.as_u64()) == va.as_u64()
                        && map.leaf_is_stale(va.as_u64(), pte.pfn)
                    {
                        stale.push(va);
                    }
                },
            );
            for va in stale {
                zap.vma_range(pt, v, va.as_u64(), (va + map.page_bytes()).as_u64());
            }
        }
        zap.finish()
    }
}

/// Gives each mapping back the reservation of each index listed (after the unmap:
/// see [`HugetlbMap::restore_reservation`]).
pub(super) fn restore_reservations(pages: Vec<(Arc<HugetlbMap>, u64)>) {
    for (map, idx) in pages {
        map.restore_reservation(idx);
    }
}

/// The hugetlb mapping of `v` if it maps a hugetlb file (`file`, when given).
fn file_map_of<'v>(v: &'v Vma, file: Option<&HugetlbFile>) -> Option<&'v HugetlbMap> {
    let map = v.hugetlb.as_deref()?;
    let mapped = map.file()?;
    match file {
        Some(f) if !core::ptr::eq(alloc::sync::Arc::as_ptr(mapped), f) => None,
        _ => Some(map),
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use alloc::sync::Arc;

    use crate::aspace::tests::{fork, harness, map_file, Harness};
    use crate::fault::hugetlb::tests::{with_pool, SoftPool};
    use crate::fault::{Access, FaultError};
    use crate::frame::PAGE_SIZE;
    use crate::hugetlb::HugeSize;
    use crate::hugetlb_file::HugetlbFile;
    use crate::pagecache::FileObject;
    use crate::pagetable::{PageTable, HUGE_SIZE};
    use crate::vma::{MapFlags, Prot};

    const HUGE_4K_PAGES: u64 = HUGE_SIZE / PAGE_SIZE;

    fn hugetlb_file(h: &Harness, pool: &Arc<SoftPool>) -> (Arc<HugetlbFile>, Arc<FileObject>) {
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), None);
        let file = FileObject::new_hugetlb("/memfd:t (deleted)", pages.clone(), h.frames.clone());
        (pages, file)
    }

    fn sigbus(h: &crate::aspace::AddressSpace<crate::pagetable::SoftPageTable>, va: u64) -> bool {
        matches!(h.fault(va, Access::Read, true), Err(FaultError::SigBus))
    }

    /// Linux 6.12's figures (the `hugetrunc` guest program prints the same): a shared
    /// and a private mapping of a three-page file cut to one page lose everything past
    /// it, the private copy included; the private mapping keeps its unused
    /// reservations until munmap.
    #[test]
    fn truncation_unmaps_shared_pages_and_private_copies_past_the_end() {
        let h = harness();
        let pool = with_pool(&h, 6);
        let (pages, file) = hugetlb_file(&h, &pool);
        file.set_size(3 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, 2 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        h.aspace.write_bytes(s, b"f").unwrap();
        h.aspace.write_bytes(s + HUGE_SIZE, b"g").unwrap();
        let p = map_file(
            &h.aspace,
            &file,
            3 * HUGE_4K_PAGES,
            rw,
            MapFlags::PRIVATE,
            0,
        );
        // (capacity, in use, reserved)
        assert_eq!(pool.counts(), (6, 2, 3), "all three privately");
        let mut got = [0u8; 1];
        h.aspace.read_bytes(p, &mut got).unwrap();
        assert_eq!(&got, b"f");
        h.aspace.write_bytes(p + HUGE_SIZE, b"m").unwrap();
        assert_eq!(pool.counts(), (6, 3, 2));
        // A fork child maps the same pages (and the private copy, copy-on-write).
        let child = fork(&h);
        let dropped = pages.dropped_now(1, u64::MAX);
        file.set_size(HUGE_SIZE);
        assert_eq!(pool.counts(), (6, 3, 2));
        // The child first, its copy unreserved: nothing restored.
        child.unmap_hugetlb_file_range(&pages, &dropped);
        assert_eq!(pool.counts(), (6, 3, 2), "the parent still maps both");
        let unmapped = h.aspace.unmap_hugetlb_file_range(&pages, &dropped);
        assert_eq!(
            unmapped,
            2 * HUGE_4K_PAGES,
            "the shared page and the private copy"
        );
        assert_eq!(
            pool.counts(),
            (6, 1, 3),
            "both back to the pool, the copy's reservation restored (Linux 6.12)"
        );
        for space in [&h.aspace, &child] {
            assert!(sigbus(space, s + HUGE_SIZE));
            assert!(sigbus(space, p + HUGE_SIZE));
            assert!(sigbus(space, p + 2 * HUGE_SIZE));
            assert!(space
                .page_table()
                .query_huge(VirtAddr::new(p + HUGE_SIZE))
                .is_none());
        }
        h.aspace.read_bytes(s, &mut got).unwrap();
        assert_eq!(&got, b"f", "the page inside the file stays mapped");
        assert!(h.aspace.page_table().query_huge(VirtAddr::new(p)).is_some());
        // Grown again: a hole, read privately with the restored reservation.
        file.set_size(2 * HUGE_SIZE);
        h.aspace.read_bytes(p + HUGE_SIZE, &mut got).unwrap();
        assert_eq!(got, [0]);
        assert_eq!(pool.counts(), (6, 2, 2));
        child.teardown();
        h.aspace.munmap(p, 3 * HUGE_SIZE).unwrap();
        assert_eq!(
            pool.counts(),
            (6, 1, 0),
            "the private reservations back at munmap"
        );
        h.aspace.munmap(s, 2 * HUGE_SIZE).unwrap();
        drop((file, pages));
        assert_eq!(pool.counts(), (6, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    /// `MADV_REMOVE` off huge-page boundaries, as Linux 6.12 (the `hugetrunc` guest
    /// program checks the same there): the huge page covered whole goes, the bytes of
    /// the two covered in part are zeroed, the call succeeds.
    #[test]
    fn madvise_remove_off_huge_page_boundaries_zeroes_the_partial_pages() {
        let h = harness();
        let pool = with_pool(&h, 6);
        let (pages, file) = hugetlb_file(&h, &pool);
        file.set_size(3 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, 3 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        for at in [0, HUGE_SIZE - 4097, HUGE_SIZE - 1, HUGE_SIZE] {
            h.aspace.write_bytes(s + at, b"a").unwrap();
        }
        for at in [2 * HUGE_SIZE + 4095, 2 * HUGE_SIZE + 4096] {
            h.aspace.write_bytes(s + at, b"c").unwrap();
        }
        assert_eq!(pages.pages_held(), 3);
        let start = s + HUGE_SIZE - 4096;
        h.aspace
            .madvise(start, HUGE_SIZE + 8192, crate::aspace::Advice::Remove)
            .unwrap();
        assert_eq!(pages.pages_held(), 2, "the middle page went");
        let byte = |at: u64| {
            let mut b = [9u8; 1];
            h.aspace.read_bytes(s + at, &mut b).unwrap();
            b[0]
        };
        assert_eq!((byte(0), byte(HUGE_SIZE - 4097)), (b'a', b'a'));
        assert_eq!((byte(HUGE_SIZE - 4096), byte(HUGE_SIZE - 1)), (0, 0));
        assert_eq!(
            (byte(2 * HUGE_SIZE + 4095), byte(2 * HUGE_SIZE + 4096)),
            (0, b'c')
        );
        // Inside one page, 100 bytes (a 4 KiB page's worth, as madvise rounds): zeroed.
        h.aspace.write_bytes(s + 4096, b"q").unwrap();
        h.aspace
            .madvise(s + 4096, 100, crate::aspace::Advice::Remove)
            .unwrap();
        assert_eq!((byte(4096), byte(0)), (0, b'a'));
        assert_eq!(pages.pages_held(), 2);
    }

    #[test]
    fn other_files_and_ranges_are_left_alone() {
        let h = harness();
        let pool = with_pool(&h, 4);
        let (a_pages, a) = hugetlb_file(&h, &pool);
        let (b_pages, b) = hugetlb_file(&h, &pool);
        a.set_size(2 * HUGE_SIZE);
        b.set_size(2 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        // `a` mapped from file offset one page: its index 1 sits at the VMA's start.
        let sa = map_file(
            &h.aspace,
            &a,
            HUGE_4K_PAGES,
            rw,
            MapFlags::SHARED,
            HUGE_SIZE,
        );
        let sb = map_file(&h.aspace, &b, 2 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        h.aspace.write_bytes(sa, b"a").unwrap();
        h.aspace.write_bytes(sb + HUGE_SIZE, b"b").unwrap();
        let range = |first, end| a_pages.dropped_now(first, end);
        assert_eq!(h.aspace.unmap_hugetlb_file_range(&a_pages, &range(0, 1)), 0);
        assert!(h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(sa))
            .is_some());
        assert_eq!(
            h.aspace.unmap_hugetlb_file_range(&a_pages, &range(1, 2)),
            HUGE_4K_PAGES
        );
        assert!(h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(sa))
            .is_none());
        assert!(h
            .aspace
            .page_table()
            .query_huge(VirtAddr::new(sb + HUGE_SIZE))
            .is_some());
        let mut got = [0u8; 1];
        h.aspace.read_bytes(sa, &mut got).unwrap();
        assert_eq!(&got, b"a", "refaulted: the file still holds the page");
        h.aspace.teardown();
        drop((a, b, a_pages, b_pages));
        assert_eq!(pool.counts(), (4, 0, 0));
    }

    /// A fork child whose copy raced a truncation: the stale leaves are found and
    /// unmapped by the repair pass.
    #[test]
    fn stale_leaves_after_a_racing_fork_are_unmapped() {
        let h = harness();
        let pool = with_pool(&h, 4);
        let (pages, file) = hugetlb_file(&h, &pool);
        file.set_size(2 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, 2 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        h.aspace.write_bytes(s, b"x").unwrap();
        h.aspace.write_bytes(s + HUGE_SIZE, b"y").unwrap();
        let child = fork(&h);
        // The file shrinks while no walk reaches the child (as if it were not listed).
        let dropped = pages.dropped_now(1, u64::MAX);
        file.set_size(HUGE_SIZE);
        h.aspace.unmap_hugetlb_file_range(&pages, &dropped);
        assert!(child
            .page_table()
            .query_huge(VirtAddr::new(s + HUGE_SIZE))
            .is_some());
        assert_eq!(child.unmap_stale_hugetlb(), HUGE_4K_PAGES);
        assert!(child
            .page_table()
            .query_huge(VirtAddr::new(s + HUGE_SIZE))
            .is_none());
        assert!(child.page_table().query_huge(VirtAddr::new(s)).is_some());
        assert_eq!(child.unmap_stale_hugetlb(), 0);
        // A fork after the change copies nothing stale.
        let late = fork(&h);
        assert!(late
            .page_table()
            .query_huge(VirtAddr::new(s + HUGE_SIZE))
            .is_none());
        child.teardown();
        late.teardown();
        h.aspace.teardown();
        drop((file, pages));
        assert_eq!(pool.counts(), (4, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    /// A thread faulting the whole mapping while another truncates it and unmaps: no
    /// leaf past the end is left once the unmapping returns, the file holds no page
    /// past it, and nothing leaks. (A smoke test: the window where a fault that found
    /// the page before the size changed installs it is too narrow to hit reliably;
    /// the tree's write lock is what closes it.)
    #[test]
    fn faults_racing_a_truncation_leave_nothing_past_the_end() {
        use core::sync::atomic::{AtomicBool, Ordering};
        let h = harness();
        let pool = with_pool(&h, 8);
        let (pages, file) = hugetlb_file(&h, &pool);
        file.set_size(4 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, 4 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        for _ in 0..40 {
            file.set_size(4 * HUGE_SIZE);
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Acquire) {
                        for i in 0..4 {
                            match h.aspace.fault(s + i * HUGE_SIZE, Access::Write, true) {
                                Ok(_) | Err(FaultError::SigBus) => {}
                                Err(e) => panic!("fault: {e:?}"),
                            }
                        }
                    }
                });
                std::thread::yield_now();
                let dropped = pages.dropped_now(1, u64::MAX);
                file.set_size(HUGE_SIZE);
                h.aspace.unmap_hugetlb_file_range(&pages, &dropped);
                for i in 1..4 {
                    assert!(h
                        .aspace
                        .page_table()
                        .query_huge(VirtAddr::new(s + i * HUGE_SIZE))
                        .is_none());
                }
                stop.store(true, Ordering::Release);
            });
            assert!(pages.pages_held() <= 1);
        }
        h.aspace.teardown();
        drop((file, pages));
        assert_eq!(pool.counts(), (8, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    /// MADV_DONTNEED of a private hugetlb page of the mapping's own gives its
    /// reservation back, as Linux 6.12 (HugePages_Rsvd 1 -> 2 there too); a file's
    /// page a private mapping only reads, or a fork child's page, does not.
    #[test]
    fn dontneed_restores_a_private_pages_reservation() {
        use crate::aspace::{Advice, MmapRequest};
        let h = harness();
        let pool = with_pool(&h, 6);
        let req = MmapRequest::from_raw(0, 2 * HUGE_SIZE, 0x3, 0x4_0022, None, 0).unwrap();
        let a = h.aspace.mmap(&req, false).unwrap();
        h.aspace.write_bytes(a, b"x").unwrap();
        assert_eq!(pool.counts(), (6, 1, 1));
        h.aspace.madvise(a, HUGE_SIZE, Advice::DontNeed).unwrap();
        assert_eq!(pool.counts(), (6, 0, 2));
        let mut got = [9u8; 1];
        h.aspace.read_bytes(a, &mut got).unwrap();
        assert_eq!(got, [0], "refaulted from the restored reservation");
        assert_eq!(pool.counts(), (6, 1, 1));
        // A fork child's copy has no reservation to restore.
        let child = fork(&h);
        child.write_bytes(a, b"k").unwrap();
        assert_eq!(pool.counts(), (6, 2, 1));
        child.madvise(a, HUGE_SIZE, Advice::DontNeed).unwrap();
        assert_eq!(pool.counts(), (6, 1, 1));
        child.teardown();
        h.aspace.munmap(a, 2 * HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (6, 0, 0));
        // A private file mapping: the file's page it reads keeps its reservation used;
        // its own copy gets it back.
        let (pages, file) = hugetlb_file(&h, &pool);
        file.set_size(2 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        h.aspace.write_bytes(s, b"f").unwrap();
        let p = map_file(
            &h.aspace,
            &file,
            2 * HUGE_4K_PAGES,
            rw,
            MapFlags::PRIVATE,
            0,
        );
        h.aspace.read_bytes(p, &mut got).unwrap();
        h.aspace.write_bytes(p + HUGE_SIZE, b"m").unwrap();
        assert_eq!(pool.counts(), (6, 2, 1));
        h.aspace.madvise(p, HUGE_SIZE, Advice::DontNeed).unwrap();
        assert_eq!(
            pool.counts(),
            (6, 2, 1),
            "the file's page stays, nothing restored"
        );
        h.aspace
            .madvise(p + HUGE_SIZE, HUGE_SIZE, Advice::DontNeed)
            .unwrap();
        assert_eq!(
            pool.counts(),
            (6, 1, 2),
            "the copy freed, its reservation back"
        );
        h.aspace.teardown();
        drop((file, pages));
        assert_eq!(pool.counts(), (6, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }
}
