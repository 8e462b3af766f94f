//! Swap end to end over the software page table, frames and a RAM disk.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;

use super::header::SwapHeader;
use super::{ScanBudget, Spawner, Swap, SwapoffStep};
use crate::addr::VirtAddr;
use crate::aspace::tests::{anon_rw, block_on, fork, harness, map_shared_anon, Harness};
use crate::aspace::AddressSpace;
use crate::aspace::MmapRequest;
use crate::block::{BlockDevice, BlockError, BlockFuture, IoBuf, RamDisk};
use crate::fault::{Access, FaultError, FaultResolved, WaitReason};
use crate::frame::PAGE_SIZE;
use crate::pagetable::{PageTable, SoftPageTable};
use crate::phys::PAGE_BYTES;
use crate::vma::{MapFlags, Prot};

/// Runs each task to completion at once (the RAM disk never waits).
pub(super) struct Inline;
impl Spawner for Inline {
    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        block_on(task);
    }
}

/// Keeps tasks until the test runs them: reads stay in flight meanwhile.
#[derive(Default)]
pub(super) struct Deferred(spin::Mutex<Vec<Pin<Box<dyn Future<Output = ()> + Send>>>>);
impl Spawner for Deferred {
    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.lock().push(task);
    }
}
impl Deferred {
    pub(super) fn run_all(&self) -> usize {
        let tasks: Vec<_> = core::mem::take(&mut *self.0.lock());
        let n = tasks.len();
        for t in tasks {
            block_on(t);
        }
        n
    }
}

/// A swap disk of `pages` pages, formatted.
fn swap_disk(pages: u64) -> Arc<RamDisk> {
    let disk = Arc::new(RamDisk::new(pages * 8));
    let mut page = vec![0u8; PAGE_BYTES];
    SwapHeader::format(&mut page, pages);
    block_on(disk.write(0, page.into_boxed_slice())).unwrap();
    disk
}

pub(super) fn swap_on(h: &Harness, pages: u64, spawner: Arc<dyn Spawner>) -> Arc<Swap> {
    let swap = h.aspace.tunables().swap().clone();
    swap.set_spawner(spawner);
    block_on(swap.activate("/dev/ram0", swap_disk(pages), None)).unwrap();
    swap
}

fn pattern(page: u64, i: usize) -> u8 {
    (page as usize * 131 + i * 7) as u8
}

fn fill(space: &AddressSpace<SoftPageTable>, a: u64, pages: u64) {
    for p in 0..pages {
        let data: Vec<u8> = (0..PAGE_BYTES).map(|i| pattern(p, i)).collect();
        space.write_bytes(a + p * PAGE_SIZE, &data).unwrap();
    }
}

fn verify(space: &AddressSpace<SoftPageTable>, a: u64, pages: u64) {
    for p in 0..pages {
        let mut back = vec![0u8; PAGE_BYTES];
        space.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
        assert!(
            back.iter().enumerate().all(|(i, &b)| b == pattern(p, i)),
            "page {p} differs"
        );
    }
}

/// Two passes of the clock over `space` (the first clears the accessed bits), then
/// the writes; returns the pages freed.
pub(super) fn reclaim_all(space: &AddressSpace<SoftPageTable>, h: &Harness) -> usize {
    let swap = space.tunables().swap().clone();
    let mut freed = 0;
    for _ in 0..2 {
        let mut out = Vec::new();
        let mut cursor = 0;
        let mut budget = ScanBudget {
            scan: usize::MAX,
            take: usize::MAX,
            freed: 0,
        };
        space.reclaim_scan(&mut cursor, &mut budget, &|_| true, &mut out);
        freed += budget.freed + block_on(swap.write_out(out, h.frames.clone())).freed;
    }
    freed
}

#[test]
fn pages_go_out_and_come_back_identical() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 16);
    fill(&h.aspace, a, 16);
    assert_eq!(h.soft.live(), 16);
    assert_eq!(reclaim_all(&h.aspace, &h), 16);
    assert_eq!(h.soft.live(), 0, "every frame freed once written");
    assert_eq!(
        h.aspace
            .page_table()
            .count(VirtAddr::new(a), VirtAddr::new(a + 16 * PAGE_SIZE)),
        0
    );
    assert_eq!(h.aspace.swapped_pages(), 16);
    assert_eq!(swap.totals(), (63, 63 - 16));
    assert_eq!(swap.stats().pswpout.load(Ordering::Relaxed), 16);
    verify(&h.aspace, a, 16);
    assert_eq!(swap.stats().pswpin.load(Ordering::Relaxed), 16);
    assert_eq!(swap.totals(), (63, 63), "every slot freed once read back");
    assert_eq!(swap.cached_pages(), 0);
    assert_eq!(h.aspace.swapped_pages(), 0);
    // A page read back is its entry's alone: writable without a copy.
    h.aspace.write_bytes(a, &[9]).unwrap();
    assert_eq!(h.soft.live(), 16);
}

#[test]
fn a_touched_page_gets_a_second_chance() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 2);
    fill(&h.aspace, a, 2);
    let mut out = Vec::new();
    let mut budget = ScanBudget {
        scan: 100,
        take: 100,
        freed: 0,
    };
    let mut cursor = 0;
    assert!(h
        .aspace
        .reclaim_scan(&mut cursor, &mut budget, &|_| true, &mut out));
    assert!(
        out.is_empty(),
        "both were accessed: bits cleared, nothing taken"
    );
    h.aspace.read_bytes(a, &mut [0u8; 1]).unwrap();
    h.aspace
        .reclaim_scan(&mut cursor, &mut budget, &|_| true, &mut out);
    assert_eq!(out.len(), 1, "only the untouched page goes");
    assert_eq!(
        out[0].entry(),
        h.aspace
            .page_table()
            .query_swap(VirtAddr::new(a + PAGE_SIZE))
            .unwrap()
    );
    block_on(swap.write_out(out, h.frames.clone()));
    verify(&h.aspace, a, 2);
}

#[test]
fn two_faults_on_one_slot_read_it_once() {
    let h = harness();
    let spawner = Arc::new(Deferred::default());
    let swap = swap_on(&h, 64, spawner.clone());
    let a = anon_rw(&h.aspace, 1);
    fill(&h.aspace, a, 1);
    reclaim_all(&h.aspace, &h);
    let first = match h.aspace.fault(a, Access::Read, true) {
        Err(FaultError::NeedsWait(w)) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.reason(), WaitReason::SwapIn { addr: a });
    let second = match h.aspace.fault(a + 8, Access::Write, true) {
        Err(FaultError::NeedsWait(w)) => w,
        other => panic!("{other:?}"),
    };
    assert!(!first.is_ready() && !second.is_ready());
    assert_eq!(spawner.run_all(), 1, "one read for both faults");
    assert!(first.is_ready() && second.is_ready());
    assert_eq!(swap.stats().reads.load(Ordering::Relaxed), 1);
    assert_eq!(
        h.aspace.fault(a, Access::Write, true).unwrap(),
        FaultResolved::SwapIn
    );
    verify(&h.aspace, a, 1);
}

#[test]
fn fork_shares_swapped_pages_and_both_exits_free_every_slot() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 8);
    fill(&h.aspace, a, 8);
    reclaim_all(&h.aspace, &h);
    let child = fork(&h);
    assert_eq!(child.swapped_pages(), 8);
    let e = h.aspace.page_table().query_swap(VirtAddr::new(a)).unwrap();
    assert_eq!(swap.refs(e), 2);
    // The child reads its copy, then writes one page: the parent's stays.
    verify(&child, a, 8);
    child.write_bytes(a, &[0xee]).unwrap();
    verify(&h.aspace, a, 8);
    let mut b = [0u8; 1];
    child.read_bytes(a, &mut b).unwrap();
    assert_eq!(b[0], 0xee);
    // Swap the child out again and drop both.
    reclaim_all(&child, &h);
    drop(child);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63), "no slot leaked");
    assert_eq!(h.soft.live(), 0, "no frame leaked");
}

#[test]
fn pages_mapped_from_the_cache_go_back_without_a_write() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 8);
    fill(&h.aspace, a, 8);
    reclaim_all(&h.aspace, &h);
    let child = fork(&h);
    // The child reads everything back: shared slots, so the cache keeps the frames.
    verify(&child, a, 8);
    assert_eq!(h.soft.live(), 8);
    assert_eq!(swap.cached_pages(), 8);
    let writes = swap.stats().writes.load(Ordering::Relaxed);
    assert_eq!(reclaim_all(&child, &h), 8, "freed again");
    assert_eq!(
        swap.stats().writes.load(Ordering::Relaxed),
        writes,
        "without writing"
    );
    assert_eq!(h.soft.live(), 0);
    verify(&child, a, 8);
    verify(&h.aspace, a, 8);
    drop(child);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn cached_pages_nobody_maps_are_shrunk() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 4);
    fill(&h.aspace, a, 4);
    reclaim_all(&h.aspace, &h);
    let child = fork(&h);
    verify(&child, a, 4);
    // The child's writes copy: the cached frames are mapped by nobody now.
    child.write_bytes(a, &[1u8; 4 * PAGE_BYTES]).unwrap();
    assert_eq!(h.soft.live(), 8);
    assert_eq!(swap.cached_pages(), 4);
    assert_eq!(
        swap.shrink_cache(2, &h.frames),
        2,
        "the budget bounds a call"
    );
    assert_eq!(swap.shrink_cache(100, &h.frames), 2);
    assert_eq!(h.soft.live(), 4);
    assert_eq!(swap.cached_pages(), 0);
    verify(&h.aspace, a, 4);
    drop(child);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn munmap_and_mremap_handle_swap_entries() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 4);
    fill(&h.aspace, a, 4);
    reclaim_all(&h.aspace, &h);
    h.aspace.munmap(a + 3 * PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(swap.totals().1, 63 - 3);
    // MREMAP_MAYMOVE | MREMAP_FIXED to a free spot.
    let dest = a + (1 << 30);
    let moved = h
        .aspace
        .mremap(a, 3 * PAGE_SIZE, 6 * PAGE_SIZE, 3, dest)
        .unwrap();
    assert_eq!(moved, dest);
    assert_eq!(h.aspace.page_table().query_swap(VirtAddr::new(a)), None);
    verify(&h.aspace, moved, 3);
    h.aspace.munmap(moved, 6 * PAGE_SIZE).unwrap();
    assert_eq!(swap.totals(), (63, 63));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn swapoff_brings_every_page_back() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 10);
    fill(&h.aspace, a, 10);
    reclaim_all(&h.aspace, &h);
    let id = swap.find("/dev/ram0").unwrap();
    assert!(swap.deactivate(id).is_err(), "busy while pages live there");
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
    assert!(swap.areas().is_empty());
    verify(&h.aspace, a, 10);
}

#[test]
fn frames_shared_by_fork_go_out_once_both_entries_do() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 4);
    fill(&h.aspace, a, 4);
    let child = fork(&h);
    // The parent's entries become swap entries; the child still maps the frames,
    // so they stay (in the cache) after the write.
    assert_eq!(reclaim_all(&h.aspace, &h), 0);
    assert_eq!(h.aspace.swapped_pages(), 4);
    assert_eq!(h.soft.live(), 4);
    let written = swap.stats().pswpout.load(Ordering::Relaxed);
    assert_eq!(written, 4);
    assert_eq!(
        swap.stats().writes.load(Ordering::Relaxed),
        1,
        "four pages on consecutive slots: one request"
    );
    // The child's entries join them without another write, and the frames go.
    assert_eq!(reclaim_all(&child, &h), 4);
    assert_eq!(swap.stats().pswpout.load(Ordering::Relaxed), written);
    assert_eq!(h.soft.live(), 0);
    let e = child.page_table().query_swap(VirtAddr::new(a)).unwrap();
    assert_eq!(
        h.aspace.page_table().query_swap(VirtAddr::new(a)),
        Some(e),
        "one slot for both"
    );
    assert_eq!(swap.refs(e), 2);
    child.write_bytes(a, &[0x55]).unwrap();
    verify(&h.aspace, a, 4);
    let mut b = [0u8; 1];
    child.read_bytes(a, &mut b).unwrap();
    assert_eq!(b[0], 0x55);
    drop(child);
    h.aspace.teardown();
    assert_eq!(swap.totals(), (63, 63));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn locked_memory_stays() {
    let h = harness();
    let _swap = swap_on(&h, 64, Arc::new(Inline));
    let req = MmapRequest::anon(
        0,
        2 * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE | MapFlags::LOCKED,
    );
    let l = h.aspace.mmap(&req, false).unwrap();
    fill(&h.aspace, l, 2);
    assert_eq!(
        reclaim_all(&h.aspace, &h),
        0,
        "VM_LOCKED is never reclaimed"
    );
    assert_eq!(h.aspace.swapped_pages(), 0);
}

/// A device whose writes fail.
struct BrokenWrites(RamDisk);
impl BlockDevice for BrokenWrites {
    fn capacity_sectors(&self) -> u64 {
        self.0.capacity_sectors()
    }
    fn read(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.0.read(sector, buf)
    }
    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        if sector == 0 {
            return self.0.write(sector, buf);
        }
        Box::pin(core::future::ready(Err(BlockError::Io)))
    }
}

#[test]
fn a_failed_write_keeps_the_page() {
    let h = harness();
    let swap = h.aspace.tunables().swap().clone();
    swap.set_spawner(Arc::new(Inline));
    let disk = BrokenWrites(RamDisk::new(64 * 8));
    let mut page = vec![0u8; PAGE_BYTES];
    SwapHeader::format(&mut page, 64);
    block_on(disk.write(0, page.into_boxed_slice())).unwrap();
    block_on(swap.activate("/dev/bad", Arc::new(disk), None)).unwrap();
    let a = anon_rw(&h.aspace, 3);
    fill(&h.aspace, a, 3);
    assert_eq!(reclaim_all(&h.aspace, &h), 0);
    assert_eq!(swap.stats().write_errors.load(Ordering::Relaxed), 3);
    assert_eq!(h.soft.live(), 3, "the pages stayed in memory");
    verify(&h.aspace, a, 3);
    assert_eq!(swap.totals().1, 63, "and their slots were let go");
    h.aspace.teardown();
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn swapon_refuses_bad_headers_and_duplicates() {
    let h = harness();
    let swap = h.aspace.tunables().swap().clone();
    let blank = Arc::new(RamDisk::new(64 * 8));
    assert_eq!(
        block_on(swap.activate("/dev/blank", blank, None)),
        Err(crate::errno::MmError::InvalidArgument)
    );
    block_on(swap.activate("/dev/a", swap_disk(16), None)).unwrap();
    assert_eq!(
        block_on(swap.activate("/dev/a", swap_disk(16), None)),
        Err(crate::errno::MmError::Busy)
    );
    block_on(swap.activate("/dev/b", swap_disk(16), Some(5))).unwrap();
    let areas = swap.areas();
    assert_eq!(areas.len(), 2);
    assert_eq!((areas[0].priority, areas[1].priority), (-2, 5));
    assert_eq!(swap.totals(), (30, 30));
}

#[test]
fn readahead_window_grows_with_hits_and_shrinks_slowly() {
    use super::readahead_window;
    // A lone fault far from the last one reads only its page.
    assert_eq!(readahead_window(0, false, 8, 0), 1);
    // Next to the last one: two.
    assert_eq!(readahead_window(0, true, 8, 0), 2);
    // Read-ahead pages used: two more than the hits, a power of two, at most max.
    assert_eq!(readahead_window(1, false, 8, 0), 4);
    assert_eq!(readahead_window(6, false, 8, 0), 8);
    assert_eq!(readahead_window(100, false, 8, 0), 8);
    // Never below half the previous window, never above max.
    assert_eq!(readahead_window(0, false, 8, 8), 4);
    assert_eq!(readahead_window(0, false, 2, 8), 2);
    // vm.page-cluster 0: one page always.
    assert_eq!(readahead_window(100, true, 1, 8), 1);
}

#[test]
fn sequential_swap_ins_are_read_ahead_and_random_ones_are_not() {
    let h = harness();
    let swap = swap_on(&h, 256, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 64);
    fill(&h.aspace, a, 64);
    reclaim_all(&h.aspace, &h);
    assert_eq!(h.aspace.swapped_pages(), 64);
    verify(&h.aspace, a, 64);
    let ra = swap.stats().readahead.load(Ordering::Relaxed);
    let hits = swap.stats().readahead_hits.load(Ordering::Relaxed);
    assert!(ra >= 32, "a sequential sweep reads ahead ({ra} pages)");
    assert_eq!(hits, ra, "every page read ahead was used");
    assert_eq!(
        swap.stats().pswpin.load(Ordering::Relaxed),
        64,
        "each page read once"
    );
    assert_eq!(swap.totals(), (255, 255));
    assert_eq!(swap.cached_pages(), 0);

    // Random order, far apart: the window stays small and little is read ahead.
    reclaim_all(&h.aspace, &h);
    let before = swap.stats().readahead.load(Ordering::Relaxed);
    for i in 0..16u64 {
        let p = (i * 37) % 64;
        let mut b = [0u8; 1];
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b[0], pattern(p, 0));
    }
    let random_ra = swap.stats().readahead.load(Ordering::Relaxed) - before;
    assert!(
        random_ra < 16,
        "random faults read ahead little ({random_ra} pages)"
    );
    verify(&h.aspace, a, 64);
}

#[test]
fn page_cluster_zero_reads_only_the_faulting_page() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    swap.set_page_cluster(0);
    let a = anon_rw(&h.aspace, 16);
    fill(&h.aspace, a, 16);
    reclaim_all(&h.aspace, &h);
    verify(&h.aspace, a, 16);
    assert_eq!(swap.stats().readahead.load(Ordering::Relaxed), 0);
    assert_eq!(swap.stats().pswpin.load(Ordering::Relaxed), 16);
}

#[test]
fn madv_pageout_takes_pages_at_once_and_cold_skips_the_second_chance() {
    let h = harness();
    let swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 8);
    fill(&h.aspace, a, 8);
    // Every page was just touched: reclaim's first pass would only age them.
    let mut out = Vec::new();
    h.aspace.page_out(a, a + 4 * PAGE_SIZE, &mut out);
    assert_eq!(out.len(), 4, "PAGEOUT takes accessed pages too");
    block_on(swap.write_out(out, h.frames.clone()));
    assert_eq!(h.aspace.swapped_pages(), 4);
    assert_eq!(h.soft.live(), 4, "the written frames are free");
    // COLD: the next pass takes them at once.
    assert_eq!(h.aspace.make_cold(a + 4 * PAGE_SIZE, a + 6 * PAGE_SIZE), 2);
    let mut out = Vec::new();
    let mut cursor = 0;
    let mut budget = ScanBudget {
        scan: usize::MAX,
        take: usize::MAX,
        freed: 0,
    };
    h.aspace
        .reclaim_scan(&mut cursor, &mut budget, &|_| true, &mut out);
    assert_eq!(out.len(), 2, "only the cold pages go on the first pass");
    block_on(swap.write_out(out, h.frames.clone()));
    verify(&h.aspace, a, 8);
}

#[test]
fn madv_pageout_leaves_locked_and_shared_anonymous_memory() {
    let h = harness();
    swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 4);
    fill(&h.aspace, a, 4);
    h.aspace
        .mlock(a, 2 * PAGE_SIZE, false, crate::aspace::LockLimit::Unlimited)
        .unwrap();
    let mut out = Vec::new();
    h.aspace.page_out(a, a + 4 * PAGE_SIZE, &mut out);
    assert_eq!(out.len(), 2, "the locked half stays");
    let s = map_shared_anon(&h.aspace, 2);
    h.aspace.write_bytes(s, &[1, 2, 3]).unwrap();
    let mut shared = Vec::new();
    h.aspace.page_out(s, s + 2 * PAGE_SIZE, &mut shared);
    assert!(
        shared.is_empty(),
        "shared anonymous pages are not swapped here"
    );
    let swap = h.aspace.tunables().swap().clone();
    block_on(swap.write_out(out, h.frames.clone()));
    verify(&h.aspace, a, 4);
}

/// A swap file of `pages` pages on a disk, its blocks in two extents with other data
/// between them; formatted through the file. Returns the disk, the file's device and
/// the device page that separates the extents.
fn swap_file_on_disk(pages: u64) -> (Arc<RamDisk>, Arc<super::file::SwapFile>, u64) {
    use crate::pagecache::blockmap::{BlockMap, Extent};
    let half = pages / 2;
    let gap = 8 + half;
    let disk = Arc::new(RamDisk::new((pages + 32) * 8));
    let map = BlockMap::new(
        4096,
        vec![
            Extent {
                logical: 0,
                physical: 8,
                blocks: half,
            },
            Extent {
                logical: half,
                physical: gap + 4,
                blocks: pages - half,
            },
        ],
    )
    .unwrap();
    // Someone else's data between the extents.
    block_on(disk.write(gap * 8, vec![0xee; 4 * PAGE_BYTES].into_boxed_slice())).unwrap();
    let file = Arc::new(
        super::file::SwapFile::new(disk.clone(), &map, pages * PAGE_BYTES as u64).unwrap(),
    );
    let mut page = vec![0u8; PAGE_BYTES];
    SwapHeader::format(&mut page, pages);
    block_on(file.write(0, page.into_boxed_slice())).unwrap();
    (disk, file, gap)
}

#[test]
fn a_swap_file_takes_pages_and_gives_them_back() {
    let h = harness();
    let swap = h.aspace.tunables().swap().clone();
    swap.set_spawner(Arc::new(Inline));
    let (disk, file, gap) = swap_file_on_disk(64);
    let id =
        block_on(swap.activate_as("/mnt/swapfile", file, Some(5), super::AreaKind::File)).unwrap();
    let info = swap.areas();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].kind, super::AreaKind::File);
    assert_eq!((info[0].priority, info[0].pages), (5, 63));
    // More pages than one extent holds: slots on both sides of the gap.
    let a = anon_rw(&h.aspace, 48);
    fill(&h.aspace, a, 48);
    assert_eq!(reclaim_all(&h.aspace, &h), 48);
    assert_eq!(h.aspace.swapped_pages(), 48);
    // The pages are on the disk at the file's blocks; the data between is intact.
    let between = block_on(disk.read(gap * 8, vec![0u8; 4 * PAGE_BYTES].into_boxed_slice()));
    assert!(between.unwrap().iter().all(|&b| b == 0xee));
    verify(&h.aspace, a, 48);
    assert_eq!(swap.totals(), (63, 63));
    swap.deactivate(id).unwrap();
}

/// A disk whose writes each take one extra poll, counting how many are in flight.
struct CountingDisk {
    disk: RamDisk,
    in_flight: Arc<core::sync::atomic::AtomicUsize>,
    peak: Arc<core::sync::atomic::AtomicUsize>,
}

impl BlockDevice for CountingDisk {
    fn capacity_sectors(&self) -> u64 {
        self.disk.capacity_sectors()
    }
    fn read(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        self.disk.read(sector, buf)
    }
    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut done = Some(self.disk.write(sector, buf));
        let in_flight = self.in_flight.clone();
        let mut polled = false;
        Box::pin(core::future::poll_fn(move |cx| {
            if !polled {
                polled = true;
                cx.waker().wake_by_ref();
                return core::task::Poll::Pending;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut fut = done.take().expect("polled after completion");
            fut.as_mut().poll(cx)
        }))
    }
}

#[test]
fn a_large_write_out_keeps_a_bounded_number_of_requests_in_flight() {
    let h = harness();
    let swap = h.aspace.tunables().swap().clone();
    swap.set_spawner(Arc::new(Inline));
    let runs = super::reclaim::MAX_WRITES_IN_FLIGHT as u64 * 3;
    let pages = runs * super::reclaim::MAX_RUN_PAGES as u64;
    let in_flight = Arc::new(core::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(core::sync::atomic::AtomicUsize::new(0));
    let disk = swap_disk(pages + 1);
    // Copy the formatted header onto the counting disk.
    let header = block_on(disk.read(0, vec![0u8; PAGE_BYTES].into_boxed_slice())).unwrap();
    let counting = CountingDisk {
        disk: RamDisk::new((pages + 1) * 8),
        in_flight: in_flight.clone(),
        peak: peak.clone(),
    };
    block_on(counting.disk.write(0, header)).unwrap();
    block_on(swap.activate("/dev/counting", Arc::new(counting), None)).unwrap();
    let a = anon_rw(&h.aspace, pages);
    fill(&h.aspace, a, pages);
    assert_eq!(
        reclaim_all(&h.aspace, &h),
        pages as usize,
        "every page went out"
    );
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= super::reclaim::MAX_WRITES_IN_FLIGHT,
        "{peak} writes were in flight at once"
    );
    assert!(peak > 1, "the writes overlap");
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    verify(&h.aspace, a, pages);
    h.aspace.teardown();
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn a_swapoff_step_starts_many_reads_before_it_waits() {
    let h = harness();
    let deferred = Arc::new(Deferred::default());
    let swap = swap_on(&h, 1024, deferred.clone());
    let a = anon_rw(&h.aspace, 600);
    fill(&h.aspace, a, 600);
    reclaim_all(&h.aspace, &h);
    assert_eq!(h.aspace.swapped_pages(), 600);
    let id = swap.find("/dev/ram0").unwrap();
    swap.set_draining(id, true);
    let mut steps = 0;
    loop {
        steps += 1;
        match h.aspace.swapoff_step(id).unwrap() {
            SwapoffStep::Done => break,
            SwapoffStep::Again => {}
            SwapoffStep::Wait(w) => {
                let started = deferred.run_all();
                assert!(
                    steps > 1 || started >= super::fault::SWAPOFF_READS,
                    "the first step started {started} reads, then waits for {:?}",
                    w.reason()
                );
                block_on(w);
            }
        }
    }
    assert!(
        steps <= 600 / super::fault::SWAPOFF_READS + 3,
        "{steps} steps for 600 pages"
    );
    assert_eq!(h.aspace.swapped_pages(), 0);
    swap.deactivate(id).unwrap();
    verify(&h.aspace, a, 600);
}

/// One pass of the clock over `space` with an unlimited budget, then the writes.
fn reclaim_pass(space: &AddressSpace<SoftPageTable>, h: &Harness) {
    let swap = space.tunables().swap().clone();
    let mut out = Vec::new();
    let mut budget = ScanBudget {
        scan: usize::MAX,
        take: usize::MAX,
        freed: 0,
    };
    space.reclaim_scan(&mut 0, &mut budget, &|_| true, &mut out);
    block_on(swap.write_out(out, h.frames.clone()));
}

#[test]
fn a_huge_page_ages_whole_then_splits_and_goes_out() {
    use crate::fault::huge::tests::huge_region;
    let h = harness();
    let swap = swap_on(&h, 1024, Arc::new(Inline));
    let a = huge_region(&h, 1);
    fill(&h.aspace, a, 512);
    let pt = h.aspace.page_table();
    assert!(
        pt.query_huge(VirtAddr::new(a)).is_some(),
        "the fill faulted a huge page"
    );
    // Touched since the fault: the first pass only takes its accessed bit.
    reclaim_pass(&h.aspace, &h);
    assert!(
        pt.query_huge(VirtAddr::new(a)).is_some(),
        "a young huge page stays whole"
    );
    assert_eq!(h.aspace.swapped_pages(), 0);
    // Touched again: still whole after the next pass.
    h.aspace.write_bytes(a + 5, &[pattern(0, 5)]).unwrap();
    reclaim_pass(&h.aspace, &h);
    assert!(pt.query_huge(VirtAddr::new(a)).is_some());
    // Untouched for a whole pass: split, and its 512 pages go.
    reclaim_pass(&h.aspace, &h);
    assert!(pt.query_huge(VirtAddr::new(a)).is_none(), "split");
    assert_eq!(h.aspace.swapped_pages(), 512);
    assert_eq!(h.soft.live(), 0, "every frame of the huge page freed");
    assert_eq!(swap.stats().pswpout.load(Ordering::Relaxed), 512);
    verify(&h.aspace, a, 512);
    assert_eq!(swap.totals(), (1023, 1023), "every slot back");
}

#[test]
fn madv_pageout_splits_a_huge_page_it_covers_in_part() {
    use crate::fault::huge::tests::huge_region;
    let h = harness();
    let swap = swap_on(&h, 1024, Arc::new(Inline));
    let a = huge_region(&h, 1);
    fill(&h.aspace, a, 512);
    let mut out = Vec::new();
    h.aspace.page_out(a, a + 256 * PAGE_SIZE, &mut out);
    block_on(swap.write_out(out, h.frames.clone()));
    assert!(
        h.aspace.page_table().query_huge(VirtAddr::new(a)).is_none(),
        "split"
    );
    assert_eq!(h.aspace.swapped_pages(), 256, "only the advised half went");
    assert_eq!(h.soft.live(), 256);
    verify(&h.aspace, a, 512);
}

#[test]
fn numa_maps_counts_the_pages_the_swap_cache_holds() {
    let h = harness();
    let _swap = swap_on(&h, 64, Arc::new(Inline));
    let a = anon_rw(&h.aspace, 4);
    fill(&h.aspace, a, 4);
    reclaim_all(&h.aspace, &h);
    let child = fork(&h);
    // The child reads two pages back; their slots are still the parent's too, so the
    // swap cache keeps them (and its reference is not a mapping: no mapmax).
    verify(&child, a, 2);
    let text = |space: &AddressSpace<SoftPageTable>| {
        let mut out = alloc::string::String::new();
        crate::procfs::numa_maps_batch(space, 0, usize::MAX, &mut out, &|_| Some(0)).unwrap();
        out
    };
    let head = alloc::format!("{a:08x} ");
    let child_text = text(&child);
    let line = child_text.lines().find(|l| l.starts_with(&head)).unwrap();
    assert_eq!(
        line,
        alloc::format!("{a:08x} default anon=2 swapcache=2 N0=2 kernelpagesize_kB=4")
    );
    // The parent maps nothing there: its entries are swap entries.
    let parent_text = text(&h.aspace);
    let line = parent_text.lines().find(|l| l.starts_with(&head)).unwrap();
    assert_eq!(line, alloc::format!("{a:08x} default"));
    drop(child);
    h.aspace.teardown();
    assert_eq!(h.soft.live(), 0, "no frame leaked");
}
