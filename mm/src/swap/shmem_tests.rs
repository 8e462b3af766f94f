//! Shared memory through swap: the page-cache slot's move to a swap entry and back,
//! over frames, a RAM disk and the software page table.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::super::tests::{reclaim_all, swap_on, Deferred, Inline};
use super::super::{Swap, SwapoffStep};
use crate::addr::VirtAddr;
use crate::aspace::tests::{block_on, harness, map_file, Harness};
use crate::frame::PAGE_SIZE;
use crate::pagecache::{FileObject, PageError};
use crate::pagetable::PageTable;
use crate::phys::PAGE_BYTES;
use crate::vma::{MapFlags, Prot};

fn pattern(page: u64, i: usize, round: u8) -> u8 {
    (page as usize * 37 + i * 11) as u8 ^ round
}

/// A memfd of `pages` pages holding the pattern of `round`.
fn memfd(h: &Harness, pages: u64, round: u8) -> Arc<FileObject> {
    let f = FileObject::new_memfd("swapped", h.frames.clone());
    write_pattern(&f, pages, round);
    f
}

fn write_pattern(f: &FileObject, pages: u64, round: u8) {
    for p in 0..pages {
        let data: Vec<u8> = (0..PAGE_BYTES).map(|i| pattern(p, i, round)).collect();
        retry(|| f.write_at(p * PAGE_SIZE, &data));
    }
}

/// Runs `op` again while it waits for a read that already ended (the inline disk).
fn retry<T>(mut op: impl FnMut() -> Result<T, PageError>) -> T {
    for _ in 0..8 {
        match op() {
            Ok(v) => return v,
            Err(PageError::Wait(w)) => assert!(w.is_ready(), "an inline read is done"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    panic!("no progress");
}

fn verify(f: &FileObject, pages: u64, round: u8) {
    for p in 0..pages {
        let mut back = vec![0u8; PAGE_BYTES];
        retry(|| f.read_at(p * PAGE_SIZE, &mut back));
        assert!(
            back.iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(p, i, round)),
            "page {p} differs"
        );
    }
}

/// Takes every page only the cache holds to swap and writes them; returns the
/// pages taken and the frames freed. Two passes: `write_at` and `read_at` mark the
/// pages referenced, and a scan passes over a referenced page once (clearing the
/// mark) before it takes it.
fn swap_out_all(f: &FileObject, swap: &Arc<Swap>, h: &Harness) -> (usize, usize) {
    let mut out = Vec::new();
    let taken = f.swap_out(swap, usize::MAX, &|_| true, &mut out)
        + f.swap_out(swap, usize::MAX, &|_| true, &mut out);
    assert_eq!(taken, out.len());
    let freed = block_on(swap.write_out(out, h.frames.clone())).freed;
    (taken, freed)
}

#[test]
fn shmem_pages_go_to_swap_and_read_back_identical() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 16, 0);
    assert_eq!(h.soft.live(), 16);
    assert_eq!(swap_out_all(&f, &swap, &h), (16, 16));
    assert_eq!(h.soft.live(), 0, "every frame freed once written");
    assert_eq!((f.cache().len(), f.cache().swapped()), (0, 16));
    assert!(f.cache().is_swapped(3) && !f.cache().contains(3));
    assert_eq!(swap.totals(), (63, 63 - 16));
    assert_eq!(swap.stats().pswpout.load(Ordering::Relaxed), 16);
    verify(&f, 16, 0);
    assert_eq!((f.cache().len(), f.cache().swapped()), (16, 0));
    assert_eq!(swap.totals(), (63, 63), "a page read back frees its slot");
    assert_eq!(swap.stats().pswpin.load(Ordering::Relaxed), 16);
    let stats = swap.stats();
    let (ra, hits) = (
        stats.readahead.load(Ordering::Relaxed),
        stats.readahead_hits.load(Ordering::Relaxed),
    );
    assert!(
        ra >= 8 && hits == ra,
        "the pages after a swapped one are read ahead and used ({ra}, {hits})"
    );
    // Swapped again, and the object's end frees every slot and frame.
    assert_eq!(swap_out_all(&f, &swap, &h).0, 16);
    drop(f);
    assert_eq!(swap.totals(), (63, 63));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn two_lookups_of_one_swapped_page_share_one_read() {
    let h = harness();
    let deferred = Arc::new(Deferred::default());
    let swap = swap_on(&h, 64, deferred.clone());
    swap.set_page_cluster(0);
    let f = memfd(&h, 4, 7);
    assert_eq!(swap_out_all(&f, &swap, &h).0, 4);
    let Err(PageError::Wait(a)) = f.get_page(2) else {
        panic!("a swapped page waits for its read")
    };
    let Err(PageError::Wait(b)) = f.get_page(2) else {
        panic!("the second lookup waits for the same read")
    };
    assert!(!a.is_ready() && !b.is_ready());
    assert_eq!(deferred.run_all(), 1, "one device read");
    assert!(a.is_ready() && b.is_ready());
    let pfn = f.get_page(2).unwrap();
    h.frames.put(pfn);
    assert_eq!(swap.stats().reads.load(Ordering::Relaxed), 1);
    assert_eq!(swap.stats().cache_hits.load(Ordering::Relaxed), 1);
    verify_deferred(&f, &deferred, 4, 7);
    assert_eq!(swap.totals().1, 63);
}

fn verify_deferred(f: &FileObject, deferred: &Deferred, pages: u64, round: u8) {
    for p in 0..pages {
        let mut back = vec![0u8; PAGE_BYTES];
        loop {
            match f.read_at(p * PAGE_SIZE, &mut back) {
                Ok(_) => break,
                Err(PageError::Wait(_)) => {
                    deferred.run_all();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(back
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(p, i, round)));
    }
}

#[test]
fn a_write_racing_the_swap_write_is_kept() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 1);
    let mut out = Vec::new();
    assert_eq!(
        f.swap_out(&swap, usize::MAX, &|_| true, &mut out),
        0,
        "just written: the first pass only clears the marks"
    );
    assert_eq!(f.swap_out(&swap, usize::MAX, &|_| true, &mut out), 8);
    // While the writes are in flight (not yet polled), the file is written: the
    // pages come back from the swap cache (no read) and their slots are freed.
    write_pattern(&f, 8, 2);
    assert_eq!(swap.stats().reads.load(Ordering::Relaxed), 0);
    let outcome = block_on(swap.write_out(out, h.frames.clone()));
    assert_eq!(outcome.freed, 0, "the pages are the page cache's again");
    assert_eq!(swap.totals().1, 63, "no slot is left held");
    assert_eq!(f.cache().len(), 8);
    verify(&f, 8, 2);
    // Out and back once more: the new contents are what swap holds.
    assert_eq!(swap_out_all(&f, &swap, &h), (8, 8));
    verify(&f, 8, 2);
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn truncate_and_hole_punch_free_the_swap_slots() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 3);
    assert_eq!(swap_out_all(&f, &swap, &h).0, 8);
    assert_eq!(swap.totals().1, 63 - 8);
    f.punch_hole(6, 2);
    assert_eq!(swap.totals().1, 63 - 6);
    // Cut into page 2: pages 3.. go, and page 2 reads back with zeros past the end.
    f.set_size(2 * PAGE_SIZE + 100);
    assert_eq!(swap.totals().1, 63 - 3);
    f.set_size(3 * PAGE_SIZE);
    let mut back = vec![0u8; PAGE_BYTES];
    retry(|| f.read_at(2 * PAGE_SIZE, &mut back));
    assert!(back[..100]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(2, i, 3)));
    assert!(
        back[100..].iter().all(|&b| b == 0),
        "cut bytes read as zero"
    );
    verify(&f, 2, 3);
    assert_eq!(swap.totals().1, 63);
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn swapoff_brings_shmem_pages_back() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 12, 4);
    assert_eq!(swap_out_all(&f, &swap, &h).0, 12);
    swap.set_draining(0, true);
    assert!(swap.deactivate(0).is_err(), "slots in use");
    let mut out = Vec::new();
    assert_eq!(
        f.swap_out(&swap, usize::MAX, &|_| true, &mut out),
        0,
        "nothing goes to a draining area"
    );
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 100);
        match f.swapoff_step(0).unwrap() {
            SwapoffStep::Done => break,
            SwapoffStep::Again => {}
            SwapoffStep::Wait(w) => assert!(w.is_ready()),
        }
    }
    assert_eq!(f.cache().swapped(), 0);
    assert_eq!(f.cache().len(), 12);
    swap.deactivate(0).unwrap();
    verify(&f, 12, 4);
}

#[test]
fn reclaim_unmaps_cold_shared_mappings_then_swaps_the_pages() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 5);
    let a = map_file(
        &h.aspace,
        &f,
        8,
        Prot::READ | Prot::WRITE,
        MapFlags::SHARED,
        0,
    );
    // Map every page (each entry holds a frame reference): nothing can go yet.
    let mut b = vec![0u8; 8 * PAGE_BYTES];
    h.aspace.read_bytes(a, &mut b).unwrap();
    assert_eq!(
        h.aspace
            .page_table()
            .count(VirtAddr::new(a), VirtAddr::new(a + 8 * PAGE_SIZE)),
        8
    );
    let mut out = Vec::new();
    assert_eq!(f.swap_out(&swap, usize::MAX, &|_| true, &mut out), 0);
    // Two passes of the hand: the accessed bits go, then the entries.
    reclaim_all(&h.aspace, &h);
    assert_eq!(
        h.aspace
            .page_table()
            .count(VirtAddr::new(a), VirtAddr::new(a + 8 * PAGE_SIZE)),
        0
    );
    assert_eq!(
        f.cache().len(),
        8,
        "unmapping leaves the pages in the cache"
    );
    assert_eq!(swap_out_all(&f, &swap, &h), (8, 8));
    // smaps counts the mapped object's swapped pages in the mapping's Swap.
    let text = crate::procfs::smaps(&h.aspace);
    let swap_kb: u64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("Swap:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(swap_kb, 32, "{text}");
    // A write through the mapping brings one back; read back through both paths.
    h.aspace.write_bytes(a + 3 * PAGE_SIZE, &[0xee; 4]).unwrap();
    let mut four = [0u8; 4];
    retry(|| f.read_at(3 * PAGE_SIZE, &mut four));
    assert_eq!(four, [0xee; 4]);
    h.aspace.read_bytes(a, &mut b).unwrap();
    for p in 0..8u64 {
        for i in 0..PAGE_BYTES {
            let want = if p == 3 && i < 4 {
                0xee
            } else {
                pattern(p, i, 5)
            };
            assert_eq!(b[p as usize * PAGE_BYTES + i], want, "page {p} byte {i}");
        }
    }
    // A locked mapping is never aged.
    h.aspace
        .mlock(a, 8 * PAGE_SIZE, false, crate::aspace::LockLimit::Unlimited)
        .unwrap();
    reclaim_all(&h.aspace, &h);
    assert_eq!(
        h.aspace
            .page_table()
            .count(VirtAddr::new(a), VirtAddr::new(a + 8 * PAGE_SIZE)),
        8
    );
}

#[test]
fn a_private_mapping_copies_a_swapped_page_on_write() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 4, 6);
    assert_eq!(swap_out_all(&f, &swap, &h), (4, 4));
    let a = map_file(
        &h.aspace,
        &f,
        4,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
        0,
    );
    // The write faults the page back from swap into the cache, then copies it.
    h.aspace.write_bytes(a + PAGE_SIZE, &[0x11; 8]).unwrap();
    let mut b = vec![0u8; PAGE_BYTES];
    h.aspace.read_bytes(a + PAGE_SIZE, &mut b).unwrap();
    assert_eq!(&b[..8], &[0x11; 8]);
    assert!(b[8..]
        .iter()
        .enumerate()
        .all(|(i, &x)| x == pattern(1, i + 8, 6)));
    // The file keeps its own contents.
    verify(&f, 4, 6);
    assert_eq!(f.cache().swapped(), 0);
}

#[test]
fn hugetlb_and_regular_files_never_go_to_swap() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let file = FileObject::from_bytes(
        crate::pagecache::FileId(9),
        "/bin/x",
        vec![1u8; 2 * PAGE_BYTES],
        h.frames.clone(),
    );
    let pfn = file.get_page(0).unwrap();
    h.frames.put(pfn);
    let mut out = Vec::new();
    assert_eq!(file.swap_out(&swap, usize::MAX, &|_| true, &mut out), 0);
    assert!(out.is_empty());
    // A hugetlb file (its huge pages stand in for the page cache).
    let pool = crate::fault::hugetlb::tests::with_pool(&h, 2);
    let pages = crate::hugetlb_file::HugetlbFile::new(
        crate::hugetlb::HugeSize::Mib2,
        pool,
        h.frames.clone(),
        None,
    );
    let huge = FileObject::new_hugetlb("/memfd:h (deleted)", pages, h.frames.clone());
    huge.set_size(crate::pagetable::HUGE_SIZE);
    assert_eq!(huge.swap_out(&swap, usize::MAX, &|_| true, &mut out), 0);
    assert!(
        !super::shmem_objects().iter().any(|o| Arc::ptr_eq(o, &huge)),
        "the shmem scan's list leaves hugetlb files out"
    );
    let memfd = FileObject::new_memfd("listed", h.frames.clone());
    assert!(super::shmem_objects()
        .iter()
        .any(|o| Arc::ptr_eq(o, &memfd)));
}

#[test]
fn a_scan_looks_at_one_window_and_goes_round() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 12, 8);
    // Pages 0..4 held (as mappings hold them): never taken.
    let held: Vec<_> = (0..4).map(|i| f.get_page(i).unwrap()).collect();
    f.cache().set_swap(&swap);
    let mut out = Vec::new();
    let mut target = None;
    let mut place = |_, pfn| {
        let page = swap.shmem_place(&mut target, pfn)?;
        let entry = page.entry();
        out.push(page);
        Some(entry)
    };
    let all = |_| true;
    let mut cursor = 0;
    let cache = f.cache();
    // The pages were just written: a first pass over them all clears their marks
    // and takes none, and the cursor stays for the pass that will.
    assert_eq!(
        cache.swap_out_some(&mut cursor, 100, 12, &all, &mut place),
        0
    );
    assert_eq!(cursor, 0, "second chances: the window is looked at again");
    assert_eq!(
        cache.swap_out_some(&mut cursor, 100, 4, &all, &mut place),
        0
    );
    assert_eq!(
        cursor, 4,
        "a window of held pages: the next call goes on past it"
    );
    assert_eq!(cache.swap_out_some(&mut cursor, 2, 4, &all, &mut place), 2);
    assert_eq!(cursor, 6, "stopped after the last page taken");
    assert_eq!(
        cache.swap_out_some(&mut cursor, 100, 4, &all, &mut place),
        4
    );
    assert_eq!(cursor, 10);
    assert_eq!(
        cache.swap_out_some(&mut cursor, 100, 4, &all, &mut place),
        2
    );
    assert_eq!(cursor, 0, "past the last page: round to the start");
    assert_eq!(
        cache.swap_out_some(&mut cursor, 100, 4, &all, &mut place),
        0
    );
    drop(place);
    assert_eq!(block_on(swap.write_out(out, h.frames.clone())).freed, 8);
    for pfn in held {
        h.frames.put(pfn);
    }
    verify(&f, 12, 8);
}

#[test]
fn a_minor_fault_on_a_swapped_page_is_a_minor_fault_and_continue_reads_it_back() {
    use crate::fault::{intercept_mode, Access, FaultError, FaultInterceptor};
    use crate::userfaultfd::Userfault;
    let h = harness();
    let deferred = Arc::new(Deferred::default());
    let swap = swap_on(&h, 64, deferred.clone());
    swap.set_page_cluster(0);
    let f = memfd(&h, 2, 9);
    let watched = map_file(
        &h.aspace,
        &f,
        2,
        Prot::READ | Prot::WRITE,
        MapFlags::SHARED,
        0,
    );
    let uffd = Userfault::new();
    let hook: Arc<dyn FaultInterceptor> = uffd.clone();
    h.aspace
        .register_interceptor(
            watched,
            2 * PAGE_SIZE,
            Some(hook.clone()),
            intercept_mode::MINOR,
        )
        .unwrap();
    assert_eq!(swap_out_all(&f, &swap, &h).0, 2);
    // The page is in the cache (in swap): the fault is the handler's, not a fill.
    let parked = h.aspace.fault(watched, Access::Read, true);
    assert!(matches!(parked, Err(FaultError::NeedsWait(_))));
    assert!(uffd.has_message(), "a minor fault is reported");
    // CONTINUE while the read is in flight: try again; then it maps the page.
    assert_eq!(
        h.aspace.continue_page(watched, &hook, false),
        Err(crate::errno::MmError::Again)
    );
    deferred.run_all();
    h.aspace.continue_page(watched, &hook, false).unwrap();
    let pte = h.aspace.page_table().query(VirtAddr::new(watched)).unwrap();
    assert_eq!(Some(pte.pfn), f.cache().peek(0));
    let mut b = vec![0u8; PAGE_BYTES];
    h.aspace.read_bytes(watched, &mut b).unwrap();
    assert!(b.iter().enumerate().all(|(i, &x)| x == pattern(0, i, 9)));
}

#[test]
fn fallocate_punch_frees_the_swap_slots_of_the_hole() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 5);
    assert_eq!(swap_out_all(&f, &swap, &h).0, 8);
    assert_eq!(swap.totals().1, 63 - 8);
    // Page 1's tail is zeroed after it is read back; pages 2..6 leave swap.
    retry(|| f.zero_partial(PAGE_SIZE + 4000, 96));
    assert_eq!(f.punch_range(2, 6), 0, "no resident page in the hole");
    assert_eq!(swap.totals().1, 63 - 3, "pages 0, 6 and 7 still in swap");
    let mut back = vec![0u8; PAGE_BYTES];
    retry(|| f.read_at(PAGE_SIZE, &mut back));
    assert!((0..4000).all(|i| back[i] == pattern(1, i, 5)));
    assert!(back[4000..].iter().all(|&b| b == 0));
    retry(|| f.read_at(3 * PAGE_SIZE, &mut back));
    assert!(back.iter().all(|&b| b == 0), "the hole reads zeros");
    assert_eq!(
        f.cache().len(),
        1,
        "page 1 only: the hole reads zeros without a page (Linux's ZERO_PAGE)"
    );
    drop(f);
    assert_eq!(swap.totals().1, 63);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn madvise_remove_frees_the_swap_slots_and_reads_zeros() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 6);
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 8, rw, MapFlags::SHARED, 0);
    assert_eq!(swap_out_all(&f, &swap, &h).0, 8);
    assert_eq!(swap.totals().1, 63 - 8);
    h.aspace
        .madvise(
            shared + 2 * PAGE_SIZE,
            4 * PAGE_SIZE,
            crate::aspace::Advice::Remove,
        )
        .unwrap();
    assert_eq!(swap.totals().1, 63 - 4, "pages 2 to 5 left swap");
    assert_eq!(f.cache().swapped(), 4);
    let mut back = vec![1u8; PAGE_BYTES];
    retry(|| f.read_at(3 * PAGE_SIZE, &mut back));
    assert!(back.iter().all(|&b| b == 0), "the hole reads zeros");
    let mut b = [9u8; 1];
    h.aspace.read_bytes(shared + 5 * PAGE_SIZE, &mut b).unwrap();
    assert_eq!(b[0], 0, "the mapping reads the hole");
    retry(|| f.read_at(7 * PAGE_SIZE, &mut back));
    assert!(
        back.iter().enumerate().all(|(i, &b)| b == pattern(7, i, 6)),
        "a page past the hole reads back from swap"
    );
}

#[test]
fn pages_read_through_read_are_swapped_after_cold_ones() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let f = memfd(&h, 8, 7);
    let mut out = Vec::new();
    assert_eq!(
        f.swap_out(&swap, usize::MAX, &|_| true, &mut out),
        0,
        "just written: every page gets its second chance"
    );
    // Pages 0 to 3 are read again through read(2); 4 to 7 stay cold.
    let mut back = [0u8; 10];
    for p in 0..4 {
        retry(|| f.read_at(p * PAGE_SIZE + 5, &mut back));
    }
    assert_eq!(f.swap_out(&swap, 4, &|_| true, &mut out), 4);
    for p in 0..4 {
        assert!(f.cache().peek(p).is_some(), "page {p} was read: it stays");
    }
    for p in 4..8 {
        assert!(f.cache().peek(p).is_none(), "cold page {p} went first");
    }
    // Not read again since: the next pass takes them.
    assert_eq!(f.swap_out(&swap, usize::MAX, &|_| true, &mut out), 4);
    assert_eq!(f.cache().swapped(), 8);
    assert_eq!(block_on(swap.write_out(out, h.frames.clone())).freed, 8);
    verify(&f, 8, 7);
}
