//! Zapping: removing the entries of a range from the page table, batching the TLB
//! invalidation, and dropping the frames' references only after the flush (a CPU
//! with a stale translation must never see a frame that was reused).

use alloc::vec::Vec;

use crate::frame::Pfn;
use crate::pagetable::PageTable;
use crate::phys::Frames;
use crate::tlb::{TlbBatch, TlbFlush};

/// Frames released per flush when a zap is large.
const ZAP_BATCH_FRAMES: usize = 512;

/// An in-progress zap over one address space.
pub(crate) struct Zap<'a> {
    frames: &'a Frames,
    tlb: &'a dyn TlbFlush,
    batch: TlbBatch,
    pending: Vec<Pfn>,
    zapped: u64,
}

impl<'a> Zap<'a> {
    /// A zap flushing through `tlb` and releasing to `frames`.
    pub(crate) fn new(frames: &'a Frames, tlb: &'a dyn TlbFlush) -> Zap<'a> {
        Zap {
            frames,
            tlb,
            batch: TlbBatch::new(),
            pending: Vec::new(),
            zapped: 0,
        }
    }

    /// Removes every entry in `[start, end)`.
    pub(crate) fn range(&mut self, pt: &dyn PageTable, start: u64, end: u64) {
        pt.scan(start, end, &mut |va, _| {
            if let Some(old) = pt.unmap(va) {
                self.entry_removed(va, old.pfn);
            }
        });
    }

    /// Records an entry the caller removed itself: its page is flushed and the frame
    /// released with the batch.
    pub(crate) fn entry_removed(&mut self, va: u64, pfn: Pfn) {
        self.batch.add_page(va);
        self.pending.push(pfn);
        self.zapped += 1;
        if self.pending.len() >= ZAP_BATCH_FRAMES {
            self.flush();
        }
    }

    /// Records a weakened (not removed) translation that needs flushing.
    pub(crate) fn weakened(&mut self, va: u64) {
        self.batch.add_page(va);
    }

    fn flush(&mut self) {
        self.batch.flush(self.tlb);
        for pfn in self.pending.drain(..) {
            self.frames.put(pfn);
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
