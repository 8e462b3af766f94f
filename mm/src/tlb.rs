//! TLB shootdown as the address-space code asks for it: operations collect the ranges
//! whose translations they weakened in a [`TlbBatch`] and hand the whole batch to
//! [`TlbFlush::flush`] once (the kernel sends one request per CPU that ran the
//! address space). Frames unmapped by an operation are freed only after the flush.

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::VirtAddr;
use crate::frame::PAGE_SIZE;

/// Most ranges a batch keeps before it collapses into one covering range.
pub const TLB_BATCH_RANGES: usize = 32;

/// Invalidates translations of one address space on every CPU that may cache them.
pub trait TlbFlush: Send + Sync {
    /// Invalidates every page in `batch` (at least those; the kernel may flush more,
    /// e.g. everything when [`TlbBatch::pages`] is large). Returns after every CPU has
    /// dropped the translations.
    ///
    /// Called with the address space's VMA tree lock held (either side), from a fault
    /// or an operation: other CPUs may be spinning on that lock, so they must keep
    /// taking the shootdown request (the kernel never calls into `mm` with interrupts
    /// disabled).
    fn flush(&self, batch: &TlbBatch);

    /// Asks for the pages in `batch` to be invalidated soon, without waiting: for
    /// statistics such as DAMON's accessed bits, where a late flush only costs accuracy.
    /// By default a full [`flush`](Self::flush).
    fn hint_flush(&self, batch: &TlbBatch) {
        self.flush(batch);
    }
}

/// Page-aligned ranges to invalidate, coalesced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlbBatch {
    ranges: Vec<Range<VirtAddr>>,
    pages: u64,
}

impl TlbBatch {
    /// An empty batch.
    pub const fn new() -> TlbBatch {
        TlbBatch {
            ranges: Vec::new(),
            pages: 0,
        }
    }

    /// Adds `[start, end)`, merging it with the last range when they touch.
    pub fn add(&mut self, start: VirtAddr, end: VirtAddr) {
        if start >= end {
            return;
        }
        self.pages += (end.as_u64() - start.as_u64()) / PAGE_SIZE;
        if let Some(last) = self.ranges.last_mut() {
            if start <= last.end && end >= last.start {
                last.start = last.start.min(start);
                last.end = last.end.max(end);
                return;
            }
        }
        if self.ranges.len() == TLB_BATCH_RANGES {
            let lo = self.ranges.iter().map(|r| r.start).min().unwrap_or(start);
            let hi = self.ranges.iter().map(|r| r.end).max().unwrap_or(end);
            self.ranges.clear();
            self.ranges.push(lo.min(start)..hi.max(end));
            return;
        }
        self.ranges.push(start..end);
    }

    /// Adds one page.
    pub fn add_page(&mut self, va: VirtAddr) {
        self.add(va, va + PAGE_SIZE);
    }

    /// The ranges.
    pub fn ranges(&self) -> &[Range<VirtAddr>] {
        &self.ranges
    }

    /// Pages added (an upper bound on what needs flushing).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Flushes through `tlb` if anything was added, and empties the batch.
    pub fn flush(&mut self, tlb: &dyn TlbFlush) {
        if !self.is_empty() {
            tlb.flush(self);
            self.ranges.clear();
            self.pages = 0;
        }
    }
}

/// A [`TlbFlush`] that only counts flushes and pages (host tests, and address spaces
/// that no CPU has loaded yet).
#[derive(Default)]
pub struct CountingTlb {
    flushes: AtomicU64,
    pages: AtomicU64,
}

impl CountingTlb {
    /// A counter at zero.
    pub const fn new() -> CountingTlb {
        CountingTlb {
            flushes: AtomicU64::new(0),
            pages: AtomicU64::new(0),
        }
    }

    /// Flush calls so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Pages flushed so far.
    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }
}

impl TlbFlush for CountingTlb {
    fn flush(&self, batch: &TlbBatch) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.pages.fetch_add(batch.pages(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_collapses() {
        let mut b = TlbBatch::new();
        let va = VirtAddr::new;
        b.add_page(va(0x1000));
        b.add_page(va(0x2000));
        b.add(va(0x5000), va(0x7000));
        assert_eq!(
            b.ranges(),
            &[va(0x1000)..va(0x3000), va(0x5000)..va(0x7000)]
        );
        assert_eq!(b.pages(), 4);
        for i in 0..100u64 {
            b.add_page(va(0x10_0000 + i * 0x2000));
        }
        assert!(b.ranges().len() <= TLB_BATCH_RANGES);
        let covered = |at: u64| {
            b.ranges()
                .iter()
                .any(|r| r.start <= va(at) && va(at) + 0x1000 <= r.end)
        };
        assert!(covered(0x1000) && covered(0x6000));
        assert!((0..100u64).all(|i| covered(0x10_0000 + i * 0x2000)));
        let tlb = CountingTlb::new();
        b.flush(&tlb);
        b.flush(&tlb);
        assert_eq!(tlb.flushes(), 1);
        assert_eq!(tlb.pages(), 104);
        assert!(b.is_empty());
    }
}
