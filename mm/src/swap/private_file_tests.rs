//! Private file mappings through swap: the private copies a write made go to swap
//! like anonymous pages and come back byte-identical; the page-cache pages the
//! mapping still shares are only unmapped when cold; fork, `MADV_DONTNEED`, `MADV_PAGEOUT`, mincore, munmap
//! and swapoff treat those swap entries as they treat anonymous ones. Over frames, a
//! RAM disk and the software page table.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::super::tests::{reclaim_all, swap_on, Inline};
use super::super::SwapoffStep;
use crate::addr::VirtAddr;
use crate::aspace::tests::{block_on, file_bytes, fork, harness, map_file, Harness};
use crate::aspace::{AddressSpace, Advice};
use crate::fault::{Access, FaultResolved};
use crate::frame::PAGE_SIZE;
use crate::pagecache::FileObject;
use crate::pagetable::{PageTable, SoftPageTable, HUGE_SIZE};
use crate::phys::PAGE_BYTES;
use crate::vma::{MapFlags, Prot};

/// Pages of the test file.
const PAGES: u64 = 8;
/// The first `WRITTEN` pages get private copies; the rest stay the cache's.
const WRITTEN: u64 = 5;

fn written(page: u64, i: usize) -> u8 {
    (page as usize * 59 + i * 13) as u8 ^ 0xa5
}

/// A file of `PAGES` pages mapped private read-write, every page faulted in for
/// reading, then the first `WRITTEN` written over with [`written`].
fn mapped(h: &Harness) -> (Arc<FileObject>, u64) {
    let f = h.file(&file_bytes((PAGES * PAGE_SIZE) as usize));
    let a = map_file(
        &h.aspace,
        &f,
        PAGES,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
        0,
    );
    for p in 0..PAGES {
        h.aspace
            .fault(a + p * PAGE_SIZE, Access::Read, true)
            .unwrap();
    }
    write_pages(&h.aspace, a, 0..WRITTEN);
    (f, a)
}

fn write_pages(space: &AddressSpace<SoftPageTable>, a: u64, pages: core::ops::Range<u64>) {
    for p in pages {
        let data: Vec<u8> = (0..PAGE_BYTES).map(|i| written(p, i)).collect();
        space.write_bytes(a + p * PAGE_SIZE, &data).unwrap();
    }
}

/// Checks page `p` at `a + p * PAGE_SIZE` holds what was written to it (`true`) or
/// the file's bytes.
fn check(space: &AddressSpace<SoftPageTable>, a: u64, p: u64, private: bool) {
    let mut back = vec![0u8; PAGE_BYTES];
    space.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
    let file = file_bytes((PAGES * PAGE_SIZE) as usize);
    let off = (p * PAGE_SIZE) as usize;
    let want: Vec<u8> = if private {
        (0..PAGE_BYTES).map(|i| written(p, i)).collect()
    } else {
        file[off..off + PAGE_BYTES].to_vec()
    };
    assert!(
        back == want,
        "page {p} differs (private copy expected: {private})"
    );
}

fn check_all(space: &AddressSpace<SoftPageTable>, a: u64) {
    for p in 0..PAGES {
        check(space, a, p, p < WRITTEN);
    }
}

#[test]
fn private_copies_go_to_swap_and_cold_cache_pages_are_unmapped() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    assert_eq!(
        h.soft.live(),
        PAGES + WRITTEN,
        "cache pages and private copies"
    );
    assert_eq!(reclaim_all(&h.aspace, &h), WRITTEN as usize);
    assert_eq!(h.soft.live(), PAGES, "only the file's pages left");
    assert_eq!(h.aspace.swapped_pages(), WRITTEN);
    // The pages never written are the cache's: unmapped, not swapped, and held by
    // the cache alone (its reclaim may drop them); a fault maps them again.
    for p in WRITTEN..PAGES {
        let va = a + p * PAGE_SIZE;
        assert_eq!(
            h.aspace.page_table().query(VirtAddr::new(va)),
            None,
            "page {p} unmapped"
        );
        assert_eq!(
            h.aspace.page_table().query_swap(VirtAddr::new(va)),
            None,
            "page {p} not in swap"
        );
        let cached = f.cache().peek(p).expect("still in the page cache");
        assert_eq!(h.frames.count(cached), 1);
        assert_eq!(
            h.aspace.fault(va, Access::Read, true).unwrap(),
            FaultResolved::FileMinor
        );
        assert_eq!(
            h.aspace.page_table().query(VirtAddr::new(va)).unwrap().pfn,
            cached
        );
    }
    // The fault on a swapped copy reads the swap slot, never the file.
    assert_eq!(
        block_on(h.aspace.handle_fault(a, Access::Read, true)).unwrap(),
        FaultResolved::SwapIn
    );
    check_all(&h.aspace, a);
    assert_eq!(h.aspace.swapped_pages(), 0);
    assert_eq!(swap.totals(), (63, 63), "every slot freed once read back");
    // A page read back is its entry's alone: written again without a copy.
    let before = h.soft.live();
    h.aspace.write_bytes(a + 7, &[written(0, 7)]).unwrap();
    assert_eq!(h.soft.live(), before);
    h.aspace.teardown();
    drop(f);
    assert_eq!(h.soft.live(), 0, "no frame leaked");
}

#[test]
fn a_fork_shares_the_slots_and_a_write_breaks_the_share() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    reclaim_all(&h.aspace, &h);
    let child = fork(&h);
    assert_eq!(child.swapped_pages(), WRITTEN);
    let e = h.aspace.page_table().query_swap(VirtAddr::new(a)).unwrap();
    assert_eq!(swap.refs(e), 2, "parent and child name the slot");
    check_all(&child, a);
    // The child's write is its own.
    child.write_bytes(a + 3, b"child").unwrap();
    child
        .write_bytes(a + (PAGES - 1) * PAGE_SIZE, b"tail")
        .unwrap();
    check_all(&h.aspace, a);
    let mut got = [0u8; 5];
    child.read_bytes(a + 3, &mut got).unwrap();
    assert_eq!(&got, b"child");
    // Both out again: the child's new copies too, the parent's shared ones once.
    reclaim_all(&child, &h);
    reclaim_all(&h.aspace, &h);
    assert_eq!(child.swapped_pages(), WRITTEN + 1);
    let mut tail = [0u8; 4];
    child
        .read_bytes(a + (PAGES - 1) * PAGE_SIZE, &mut tail)
        .unwrap();
    assert_eq!(&tail, b"tail");
    check_all(&h.aspace, a);
    drop(child);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63), "no slot leaked");
    drop(f);
    assert_eq!(h.soft.live(), 0, "no frame leaked");
}

#[test]
fn dontneed_drops_the_swapped_copy_and_the_file_shows_through() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    reclaim_all(&h.aspace, &h);
    h.aspace
        .madvise(a + PAGE_SIZE, 2 * PAGE_SIZE, Advice::DontNeed)
        .unwrap();
    assert_eq!(h.aspace.swapped_pages(), WRITTEN - 2);
    assert_eq!(swap.totals(), (63, 63 - (WRITTEN - 2)), "their slots freed");
    check(&h.aspace, a, 0, true);
    check(&h.aspace, a, 1, false);
    check(&h.aspace, a, 2, false);
    for p in 3..PAGES {
        check(&h.aspace, a, p, p < WRITTEN);
    }
    // Anonymous memory the same: zeros after the advice, not the swapped bytes.
    let anon = crate::aspace::tests::anon_rw(&h.aspace, 1);
    h.aspace.write_bytes(anon, &[7u8; 64]).unwrap();
    reclaim_all(&h.aspace, &h);
    h.aspace.madvise(anon, PAGE_SIZE, Advice::DontNeed).unwrap();
    let mut z = [1u8; 64];
    h.aspace.read_bytes(anon, &mut z).unwrap();
    assert_eq!(z, [0u8; 64]);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn pageout_takes_only_private_copies_and_mincore_reports_them_gone() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    let mut out = Vec::new();
    h.aspace.page_out(a, a + PAGES * PAGE_SIZE, &mut out);
    assert_eq!(
        out.len(),
        WRITTEN as usize,
        "the cache's pages are not taken"
    );
    block_on(swap.write_out(out, h.frames.clone()));
    assert_eq!(h.aspace.swapped_pages(), WRITTEN);
    // The file's cache holds every index, but the swapped copies are not resident.
    let mut vec = [9u8; PAGES as usize];
    h.aspace.mincore(a, PAGES * PAGE_SIZE, &mut vec).unwrap();
    let want: Vec<u8> = (0..PAGES).map(|p| u8::from(p >= WRITTEN)).collect();
    assert_eq!(&vec[..], &want[..]);
    // MADV_COLD then one pass: cold private copies go at once.
    check_all(&h.aspace, a);
    assert!(h.aspace.make_cold(a, a + PAGES * PAGE_SIZE) >= WRITTEN as usize);
    let mut out = Vec::new();
    let mut cursor = 0;
    let mut budget = super::super::ScanBudget {
        scan: usize::MAX,
        take: usize::MAX,
        freed: 0,
    };
    h.aspace
        .reclaim_scan(&mut cursor, &mut budget, &|_| true, &mut out);
    assert_eq!(out.len(), WRITTEN as usize);
    block_on(swap.write_out(out, h.frames.clone()));
    check_all(&h.aspace, a);
    h.aspace.teardown();
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn munmap_mremap_and_swapoff_handle_private_file_swap_entries() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    reclaim_all(&h.aspace, &h);
    // The last written page unmapped: its slot goes.
    h.aspace
        .munmap(a + (WRITTEN - 1) * PAGE_SIZE, PAGE_SIZE)
        .unwrap();
    assert_eq!(swap.totals().1, 63 - (WRITTEN - 1));
    let dest = a + (1 << 30);
    let len = (WRITTEN - 1) * PAGE_SIZE;
    let moved = h.aspace.mremap(a, len, len, 3, dest).unwrap();
    assert_eq!(moved, dest);
    assert_eq!(h.aspace.swapped_pages(), WRITTEN - 1);
    let id = swap.find("/dev/ram0").unwrap();
    swap.set_draining(id, true);
    loop {
        match h.aspace.swapoff_step(id).unwrap() {
            SwapoffStep::Done => break,
            SwapoffStep::Again => {}
            SwapoffStep::Wait(w) => block_on(w),
        }
    }
    assert_eq!(h.aspace.swapped_pages(), 0);
    swap.deactivate(id).unwrap();
    for p in 0..WRITTEN - 1 {
        check(&h.aspace, moved, p, true);
    }
    h.aspace.teardown();
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn memfd_private_copies_go_to_swap_and_the_object_keeps_its_bytes() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = FileObject::new_memfd("priv", h.frames.clone());
    let original = file_bytes(4 * PAGE_BYTES);
    f.write_at(0, &original).unwrap();
    let rw = Prot::READ | Prot::WRITE;
    let a = map_file(&h.aspace, &f, 4, rw, MapFlags::PRIVATE, 0);
    h.aspace.write_bytes(a + 10, b"private").unwrap();
    h.aspace.read_bytes(a + PAGE_SIZE, &mut [0u8; 8]).unwrap();
    assert_eq!(reclaim_all(&h.aspace, &h), 1, "the written page only");
    assert_eq!(h.aspace.swapped_pages(), 1);
    let mut got = [0u8; 7];
    h.aspace.read_bytes(a + 10, &mut got).unwrap();
    assert_eq!(&got, b"private");
    let mut obj = vec![0u8; 4 * PAGE_BYTES];
    f.read_at(0, &mut obj).unwrap();
    assert!(obj == original, "the memfd never sees the private write");
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
}

#[test]
fn hugetlb_private_file_pages_are_never_swapped() {
    let h = harness();
    let swap = swap_on(&h, 1024, Arc::new(Inline));
    let pool = crate::fault::hugetlb::tests::with_pool(&h, 2);
    let pages = crate::hugetlb_file::HugetlbFile::new(
        crate::hugetlb::HugeSize::Mib2,
        pool,
        h.frames.clone(),
        None,
    );
    let f = FileObject::new_hugetlb("/dev/hugepages/p", pages, h.frames.clone());
    f.set_size(HUGE_SIZE);
    let rw = Prot::READ | Prot::WRITE;
    let a = map_file(
        &h.aspace,
        &f,
        HUGE_SIZE / PAGE_SIZE,
        rw,
        MapFlags::PRIVATE,
        0,
    );
    h.aspace.write_bytes(a + 5, b"huge").unwrap();
    assert_eq!(reclaim_all(&h.aspace, &h), 0);
    let mut out = Vec::new();
    h.aspace.page_out(a, a + HUGE_SIZE, &mut out);
    assert!(out.is_empty());
    assert_eq!(h.aspace.swapped_pages(), 0);
    assert_eq!(swap.totals(), (1023, 1023));
    let mut got = [0u8; 4];
    h.aspace.read_bytes(a + 5, &mut got).unwrap();
    assert_eq!(&got, b"huge");
}

#[test]
fn mprotect_keeps_swapped_copies_and_their_protection_applies_on_swap_in() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let (f, a) = mapped(&h);
    reclaim_all(&h.aspace, &h);
    h.aspace.mprotect(a, PAGES * PAGE_SIZE, Prot::READ).unwrap();
    assert_eq!(
        h.aspace.swapped_pages(),
        WRITTEN,
        "mprotect leaves swap entries"
    );
    assert!(matches!(
        h.aspace.fault(a, Access::Write, true),
        Err(crate::fault::FaultError::AccErr)
    ));
    check_all(&h.aspace, a);
    let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
    assert!(!pte.flags.contains(crate::pagetable::PteFlags::WRITE));
    h.aspace
        .mprotect(a, PAGES * PAGE_SIZE, Prot::READ | Prot::WRITE)
        .unwrap();
    h.aspace.write_bytes(a, b"again").unwrap();
    let mut got = [0u8; 5];
    h.aspace.read_bytes(a, &mut got).unwrap();
    assert_eq!(&got, b"again");
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
    drop(f);
    assert_eq!(h.soft.live(), 0);
}
