//! Zapping: removing the entries of a range from the page table, batching the TLB
//! invalidation, and dropping the frames' references only after the flush (a CPU
//! with a stale translation must never see a frame that was reused).

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::addr::VirtAddr;
use crate::hugetlb_map::HugetlbMap;
use crate::vma::Vma;

use crate::frame::Pfn;
use crate::pagetable::{PageTable, HUGE_PAGES, HUGE_SIZE};
use crate::phys::Frames;
use crate::tlb::{TlbBatch, TlbFlush};

/// Frames released per flush when a zap is large. 8192 (Linux's mmu_gather size, one
/// shootdown per 32 MiB) made process_mrelease faster but held so many frames back from a
/// small guest under reclaim that the swap test went out of memory: 512 until the batch
/// size follows the node's free memory.
const ZAP_BATCH_FRAMES: usize = 512;

/// Most 4 KiB frames a zap lists before it flushes, whether or not their release frees
/// them (the list itself stays at 64 KiB).
const ZAP_LIST_CAP: usize = 8192;

/// A reference a zap drops once the TLB is flushed (4 KiB frames go in a list of
/// their own, dropped in one [`Frames::put_batch`]).
enum Release {
    /// The 512 frames of a transparent huge page.
    Huge(Pfn),
    /// A hugetlb page, back to its mapping's pool with the last reference.
    Hugetlb(Arc<HugetlbMap>, Pfn),
}

/// An in-progress zap over one address space.
pub(crate) struct Zap<'a> {
    frames: &'a Frames,
    tlb: &'a dyn TlbFlush,
    batch: TlbBatch,
    /// 4 KiB frames to release after the flush.
    frames_pending: Vec<Pfn>,
    /// Huge and hugetlb pages to release after the flush.
    pending: Vec<Release>,
    /// Releases held before a flush, counting only the 4 KiB frames whose release
    /// frees them (see [`entry_removed`](Self::entry_removed)).
    batch_limit: usize,
    /// Frames listed since the last flush that held their last reference then.
    freeing: usize,
    /// Set for a whole-space teardown: removed pages are not added to `batch` one by
    /// one; the span they cover (`span`) is added once per flush, which is what the
    /// kernel flushes anyway (one shootdown over a batch's span).
    span_only: bool,
    /// Lowest and highest (exclusive) address removed since the last flush.
    span: (u64, u64),
    zapped: u64,
}

impl<P: PageTable> super::AddressSpace<P> {
    /// Splits any huge leaf that `start` or `end` falls inside (not on its edge):
    /// done before the VMAs are cut there, so no leaf straddles two VMAs.
    pub(crate) fn split_huge_edges(&self, start: u64, end: u64) {
        for at in [start, end] {
            if !at.is_multiple_of(HUGE_SIZE) {
                self.page_table().split_huge(VirtAddr::new(at));
            }
        }
    }
}

impl<'a> Zap<'a> {
    /// A zap flushing through `tlb` and releasing to `frames`.
    pub(crate) fn new(frames: &'a Frames, tlb: &'a dyn TlbFlush) -> Zap<'a> {
        Zap::with_batch(frames, tlb, ZAP_BATCH_FRAMES)
    }

    /// A zap releasing after every `batch_limit` pages or huge pages (at least one).
    pub(crate) fn with_batch(
        frames: &'a Frames,
        tlb: &'a dyn TlbFlush,
        batch_limit: usize,
    ) -> Zap<'a> {
        Zap {
            frames,
            tlb,
            batch: TlbBatch::new(),
            frames_pending: Vec::new(),
            pending: Vec::new(),
            batch_limit: batch_limit.max(1),
            freeing: 0,
            span_only: false,
            span: (u64::MAX, 0),
            zapped: 0,
        }
    }

    /// A zap for a whole address space going away ([`with_batch`](Self::with_batch)
    /// otherwise): each flush covers the span of what was removed since the last one.
    pub(crate) fn whole_space(
        frames: &'a Frames,
        tlb: &'a dyn TlbFlush,
        batch_limit: usize,
    ) -> Zap<'a> {
        let mut zap = Zap::with_batch(frames, tlb, batch_limit);
        zap.span_only = true;
        zap
    }

    /// Notes `[start, end)` as removed, for the next flush.
    fn removed(&mut self, start: u64, end: u64) {
        if self.span_only {
            self.span = (self.span.0.min(start), self.span.1.max(end));
        } else {
            self.batch.add(VirtAddr::new(start), VirtAddr::new(end));
        }
    }

    fn batch_full(&self) -> bool {
        self.freeing + self.pending.len() >= self.batch_limit
            || self.frames_pending.len() >= ZAP_LIST_CAP
    }

    /// Removes every entry in `[start, end)`: a huge leaf inside it whole, one
    /// reaching outside it split first.
    pub(crate) fn range(&mut self, pt: &dyn PageTable, start: u64, end: u64) {
        pt.scan_leaves(
            VirtAddr::new(start),
            VirtAddr::new(end),
            &mut |va, _, huge| {
                if !huge {
                    if let Some(old) = pt.unmap(va) {
                        self.entry_removed(va.as_u64(), old.pfn);
                    }
                    return;
                }
                if va >= VirtAddr::new(start) && va + HUGE_SIZE <= VirtAddr::new(end) {
                    if let Some(old) = pt.unmap_huge(va) {
                        self.huge_removed(va.as_u64(), old.pfn);
                    }
                    return;
                }
                pt.split_huge(va);
                let (lo, hi) = (
                    va.max(VirtAddr::new(start)),
                    (va + HUGE_SIZE).min(VirtAddr::new(end)),
                );
                for page in crate::addr::pages(lo, hi) {
                    if let Some(old) = pt.unmap(page) {
                        self.entry_removed(page.as_u64(), old.pfn);
                    }
                }
            },
        );
    }

    /// Removes the entries of `[start, end)` inside `vma` (a hugetlb VMA's leaves go
    /// back to its pool; its range is aligned to its pages).
    pub(crate) fn vma_range(&mut self, pt: &dyn PageTable, vma: &Vma, start: u64, end: u64) {
        let Some(map) = &vma.hugetlb else {
            return self.range(pt, start, end);
        };
        pt.scan_leaves(
            VirtAddr::new(start),
            VirtAddr::new(end),
            &mut |va, _, huge| {
                if !huge {
                    return;
                }
                if let Some(old) = pt.unmap_huge(va) {
                    self.batch.add(va, va + HUGE_SIZE);
                    // A page of several leaves holds its reference on the first.
                    if map.page_start(va.as_u64()) == va.as_u64() {
                        self.pending.push(Release::Hugetlb(map.clone(), old.pfn));
                    }
                    self.zapped += HUGE_PAGES;
                    if self.batch_full() {
                        self.flush();
                    }
                }
            },
        );
    }

    /// Removes every entry of every VMA in `vmas` (all of the address space).
    pub(crate) fn vmas<'v>(&mut self, pt: &dyn PageTable, vmas: impl Iterator<Item = &'v Vma>) {
        for v in vmas {
            self.vma_range(pt, v, v.start, v.end);
        }
    }

    /// Records a removed 4 KiB entry: its page is flushed and the frame released
    /// with the batch. A frame someone else still holds (a page-cache page of a
    /// shared mapping) frees nothing when released, so it does not count towards the
    /// batch: unmapping shared file pages flushes once per [`ZAP_LIST_CAP`] pages,
    /// not per `batch_limit` (each flush is a shootdown IPI to every other CPU the
    /// address space runs on).
    pub(crate) fn entry_removed(&mut self, va: u64, pfn: Pfn) {
        self.removed(va, va + crate::frame::PAGE_SIZE);
        if self.frames.count(pfn) <= 1 {
            self.freeing += 1;
        }
        self.frames_pending.push(pfn);
        self.zapped += 1;
        if self.batch_full() {
            self.flush();
        }
    }

    /// Records a removed huge leaf: its 2 MiB are flushed and its 512 frames
    /// released with the batch.
    pub(crate) fn huge_removed(&mut self, va: u64, head: Pfn) {
        self.removed(va, va + HUGE_SIZE);
        self.pending.push(Release::Huge(head));
        self.zapped += HUGE_PAGES;
        if self.batch_full() {
            self.flush();
        }
    }

    /// Records weakened translations over `[start, end)` (a huge leaf).
    pub(crate) fn weakened_range(&mut self, start: u64, end: u64) {
        self.batch.add(VirtAddr::new(start), VirtAddr::new(end));
    }

    /// Records a weakened (not removed) translation that needs flushing.
    pub(crate) fn weakened(&mut self, va: u64) {
        self.batch.add_page(VirtAddr::new(va));
    }

    fn flush(&mut self) {
        if self.span.0 < self.span.1 {
            self.batch
                .add(VirtAddr::new(self.span.0), VirtAddr::new(self.span.1));
            self.span = (u64::MAX, 0);
        }
        self.batch.flush(self.tlb);
        self.freeing = 0;
        if !self.frames_pending.is_empty() {
            self.frames.put_batch(&mut self.frames_pending);
        }
        for release in self.pending.drain(..) {
            match release {
                Release::Huge(head) => self.frames.put_huge(head),
                Release::Hugetlb(map, head) => map.release(head),
            }
        }
    }

    /// Flushes and releases everything; returns the entries removed.
    pub(crate) fn finish(mut self) -> u64 {
        self.flush();
        self.zapped
    }
}

impl Drop for Zap<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::Zap;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file};
    use crate::fault::Access;
    use crate::frame::PAGE_SIZE;
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn frames_that_free_nothing_do_not_fill_the_batch() {
        let h = harness();
        let pages = 6;
        let f = h.file(&file_bytes((pages * PAGE_SIZE) as usize));
        let shared = map_file(
            &h.aspace,
            &f,
            pages,
            Prot::READ | Prot::WRITE,
            MapFlags::SHARED,
            0,
        );
        let private = anon_rw(&h.aspace, pages);
        for i in 0..pages {
            h.aspace
                .fault(shared + i * PAGE_SIZE, Access::Write, true)
                .unwrap();
            h.aspace
                .fault(private + i * PAGE_SIZE, Access::Write, true)
                .unwrap();
        }
        let live = h.soft.live();
        let pt = h.aspace.page_table();

        // The page cache keeps every shared page: one flush at the end, nothing freed.
        let before = h.tlb.flushes();
        let mut zap = Zap::with_batch(&h.frames, &*h.tlb, 2);
        zap.range(pt, shared, shared + pages * PAGE_SIZE);
        assert_eq!(h.tlb.flushes(), before, "no flush before the end");
        assert_eq!(zap.finish(), pages);
        assert_eq!(h.tlb.flushes(), before + 1);
        assert_eq!(h.soft.live(), live);
        assert!(f.cache().peek(0).is_some());

        // Private pages free their frames: a flush every 2 of them.
        let before = h.tlb.flushes();
        let mut zap = Zap::with_batch(&h.frames, &*h.tlb, 2);
        zap.range(pt, private, private + pages * PAGE_SIZE);
        assert_eq!(zap.finish(), pages);
        assert_eq!(h.tlb.flushes(), before + pages / 2);
        assert_eq!(h.soft.live(), live - pages);
    }
}
