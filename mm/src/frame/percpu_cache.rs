//! Per-CPU frame caches: a stack of free order-0 frames of the CPU's memory node,
//! refilled from and drained to that node's buddy in batches. The hot path touches
//! only this CPU's cache line(s).
//!
//! This module holds the allocator's `UnsafeCell`: a CPU's cache is mutated
//! without a lock, which is sound only while one context at a time uses it. That
//! exclusivity is either checked ([`PerCpu::try_claim`], an atomic flag on the CPU's
//! own line) or promised by the kernel ([`PerCpu::borrow_unchecked`], an `unsafe fn`
//! whose contract is "interrupts off, or one executor per CPU and no re-entry").

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use sched::CpuId;

use super::policy::InterleaveCursor;
use super::stats::CpuNodeCounters;
use super::types::{NodeId, Pfn};

/// Frames one cache can hold; `high + batch` must fit.
pub const PCP_CAPACITY: usize = 512;

/// The mutable part of a CPU's cache, reached only through a [`CacheGuard`].
pub(crate) struct CpuCache {
    len: usize,
    frames: [Pfn; PCP_CAPACITY],
    /// This CPU's interleave position.
    pub(crate) cursor: InterleaveCursor,
}

impl CpuCache {
    /// Frames cached.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes the most recently freed (cache-hot) frame.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Pfn> {
        self.len = self.len.checked_sub(1)?;
        Some(self.frames[self.len])
    }

    /// Caches a frame; `false` (frame not taken) only if the cache is full, which
    /// the drain-above-`high` rule prevents.
    #[inline]
    pub(crate) fn push(&mut self, pfn: Pfn) -> bool {
        match self.frames.get_mut(self.len) {
            Some(slot) => {
                *slot = pfn;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Offers up to `n` empty slots to `fill`, which returns how many it filled.
    pub(crate) fn refill(&mut self, n: usize, fill: impl FnOnce(&mut [Pfn]) -> usize) -> usize {
        let end = (self.len + n).min(PCP_CAPACITY);
        let got = fill(&mut self.frames[self.len..end]).min(end - self.len);
        self.len += got;
        got
    }

    /// Hands the `n` oldest (coldest) frames to `sink` and forgets them.
    pub(crate) fn drain_oldest(&mut self, n: usize, sink: impl FnOnce(&[Pfn])) -> usize {
        let n = n.min(self.len);
        sink(&self.frames[..n]);
        self.frames.copy_within(n..self.len, 0);
        self.len -= n;
        n
    }
}

/// One CPU's state: identity, claim flag, cache and counters, aligned so that no two
/// CPUs share a cache line.
#[repr(align(64))]
pub(crate) struct PerCpu {
    /// The CPU.
    pub(crate) cpu: CpuId,
    /// The CPU's own node.
    pub(crate) node: NodeId,
    /// The node its cache holds frames of (its own, or the nearest with memory).
    pub(crate) mem_node: NodeId,
    claimed: AtomicBool,
    /// Mirror of the cache length for readers on other CPUs (owner stores only).
    cached: AtomicU32,
    /// What this CPU did with each node's frames.
    pub(crate) counters: Box<[CpuNodeCounters]>,
    cache: UnsafeCell<CpuCache>,
}

// SAFETY: the only non-`Sync` field is `cache`, and it is reached only through
// `try_claim` (exclusive by the `claimed` flag's acquire/release protocol) or
// `borrow_unchecked` (exclusive by its caller's contract), so no two threads ever
// hold references into it at once.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    /// The state of `cpu` on `node`, caching frames of `mem_node`.
    pub(crate) fn new(cpu: CpuId, node: NodeId, mem_node: NodeId, nr_nodes: usize) -> PerCpu {
        PerCpu {
            cpu,
            node,
            mem_node,
            claimed: AtomicBool::new(false),
            cached: AtomicU32::new(0),
            counters: (0..nr_nodes).map(|_| CpuNodeCounters::default()).collect(),
            cache: UnsafeCell::new(CpuCache {
                len: 0,
                frames: [Pfn(0); PCP_CAPACITY],
                cursor: InterleaveCursor::default(),
            }),
        }
    }

    /// Frames cached now (racy read, for statistics).
    pub(crate) fn cached(&self) -> u32 {
        self.cached.load(Ordering::Relaxed)
    }

    /// Takes the cache if nobody else holds it; released when the guard drops.
    pub(crate) fn try_claim(&self) -> Option<CacheGuard<'_>> {
        if self.claimed.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the swap above moved `claimed` from false to true, so no other
        // claim guard exists, and `borrow_unchecked`'s contract excludes its callers
        // while a claim may be taken; the guard clears the flag (release) on drop.
        let cache = unsafe { &mut *self.cache.get() };
        Some(CacheGuard {
            cache,
            claimed: Some(&self.claimed),
            cached: &self.cached,
        })
    }

    /// Takes the cache without the atomic claim.
    ///
    /// # Safety
    ///
    /// For the guard's whole lifetime no other guard for this CPU may exist: the
    /// caller runs on this CPU with interrupts (and any other re-entry into the
    /// allocator on this CPU) excluded, or is this CPU's single executor and holds
    /// the guard across no await point; and nothing calls `try_claim` for this CPU
    /// (such as `FrameAllocator::drain_all`) meanwhile.
    pub(crate) unsafe fn borrow_unchecked(&self) -> CacheGuard<'_> {
        // SAFETY: exclusivity is the caller's contract above.
        let cache = unsafe { &mut *self.cache.get() };
        CacheGuard {
            cache,
            claimed: None,
            cached: &self.cached,
        }
    }
}

/// Exclusive access to one CPU's cache.
pub(crate) struct CacheGuard<'a> {
    cache: &'a mut CpuCache,
    claimed: Option<&'a AtomicBool>,
    cached: &'a AtomicU32,
}

impl CacheGuard<'_> {
    /// Publishes the cache length for statistics readers.
    #[inline]
    pub(crate) fn publish_len(&self) {
        self.cached.store(self.cache.len as u32, Ordering::Relaxed);
    }
}

impl Deref for CacheGuard<'_> {
    type Target = CpuCache;
    fn deref(&self) -> &CpuCache {
        self.cache
    }
}

impl DerefMut for CacheGuard<'_> {
    fn deref_mut(&mut self) -> &mut CpuCache {
        self.cache
    }
}

impl Drop for CacheGuard<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.claimed {
            flag.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn claim_is_exclusive_and_released_on_drop() {
        let pc = PerCpu::new(CpuId(0), NodeId(0), NodeId(0), 2);
        let g = pc.try_claim().unwrap();
        assert!(pc.try_claim().is_none());
        drop(g);
        assert!(pc.try_claim().is_some());
        assert_eq!(core::mem::align_of::<PerCpu>(), 64);
    }

    #[test]
    fn stack_refill_and_drain_oldest() {
        let pc = PerCpu::new(CpuId(0), NodeId(0), NodeId(0), 1);
        let mut g = pc.try_claim().unwrap();
        let got = g.refill(4, |slots| {
            for (i, s) in slots.iter_mut().enumerate() {
                *s = Pfn(i as u64);
            }
            3
        });
        assert_eq!(got, 3);
        assert!(g.push(Pfn(9)));
        g.publish_len();
        assert_eq!(pc.cached(), 4);
        let mut drained = Vec::new();
        assert_eq!(g.drain_oldest(2, |f| drained.extend_from_slice(f)), 2);
        assert_eq!(drained, [Pfn(0), Pfn(1)]);
        assert_eq!(g.pop(), Some(Pfn(9)));
        assert_eq!(g.pop(), Some(Pfn(2)));
        assert_eq!(g.pop(), None);
        assert_eq!(g.refill(PCP_CAPACITY + 5, |s| s.len()), PCP_CAPACITY);
        assert!(!g.push(Pfn(1)));
    }
}
