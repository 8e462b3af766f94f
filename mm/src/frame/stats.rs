//! Allocation statistics: per-CPU counters written only by their CPU (the hot path
//! touches no shared cache line), per-node atomic counters for the slow paths, and
//! the snapshot types that sum them.

use core::sync::atomic::{AtomicU64, Ordering};

use super::types::{NodeId, PageCount, Pfn, NR_ORDERS};
use super::watermark::Watermarks;

/// A counter with one writer (the CPU owning it) and any number of readers. The
/// writer uses a plain load and store, no locked read-modify-write; a second
/// writer would only lose counts, never cause undefined behaviour.
#[derive(Debug, Default)]
pub(crate) struct OwnerCounter(AtomicU64);

impl OwnerCounter {
    /// Adds `n` (owner only).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter any CPU may add to (slow paths only).
#[derive(Debug, Default)]
pub(crate) struct SharedCounter(AtomicU64);

impl SharedCounter {
    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one CPU did with one node's frames. Padded so that each CPU's array starts
/// on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct CpuNodeCounters {
    /// Frames handed out from this CPU's cache (always the CPU's memory node).
    pub(crate) cache_allocs: OwnerCounter,
    /// Of those, frames an interleave policy aimed at this node.
    pub(crate) cache_interleave_hits: OwnerCounter,
    /// Frames freed into this CPU's cache.
    pub(crate) cache_frees: OwnerCounter,
    /// Pages this CPU freed into the node's remote-free queue (or, when the queue
    /// was full or the node had waiters, straight into its buddy).
    pub(crate) remote_frees: OwnerCounter,
    /// Pages this CPU had zeroed.
    pub(crate) zeroed_pages: OwnerCounter,
    /// Nanoseconds the zeroing took, as the zeroer reported.
    pub(crate) zero_ns: OwnerCounter,
}

/// Slow-path counters of one node, updated by any CPU.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct NodeCounters {
    /// Pages allocated straight from the buddy (not through a CPU cache).
    pub(crate) direct_allocs: SharedCounter,
    /// Pages freed straight into the buddy by a CPU of this node.
    pub(crate) direct_frees: SharedCounter,
    /// Linux `numa_hit` for direct allocations: the intended node served it.
    pub(crate) numa_hit: SharedCounter,
    /// Linux `numa_miss`: served here although another node was intended.
    pub(crate) numa_miss: SharedCounter,
    /// Linux `numa_foreign`: intended here, served elsewhere.
    pub(crate) numa_foreign: SharedCounter,
    /// Linux `interleave_hit`: an interleave policy aimed here and got it.
    pub(crate) interleave_hit: SharedCounter,
    /// Linux `local_node`: served here for a CPU of this node.
    pub(crate) local_node: SharedCounter,
    /// Linux `other_node`: served here for a CPU of another node.
    pub(crate) other_node: SharedCounter,
    /// Pages taken out of the remote-free queue into the buddy.
    pub(crate) remote_drained: SharedCounter,
    /// Remote frees that found the queue full and took the lock instead.
    pub(crate) remote_overflows: SharedCounter,
    /// Pages zeroed outside a CPU handle.
    pub(crate) zeroed_pages: SharedCounter,
    /// Nanoseconds of that zeroing.
    pub(crate) zero_ns: SharedCounter,
    /// Times reclaim was woken for this node.
    pub(crate) reclaim_wakeups: SharedCounter,
    /// Times an `alloc_wait` future went to sleep on this node.
    pub(crate) alloc_waits: SharedCounter,
    /// Times the OOM hook was called for a waiter on this node.
    pub(crate) oom_calls: SharedCounter,
    /// Frees that reached the buddy through the queue and were refused (caller bugs).
    pub(crate) bad_frees: SharedCounter,
    /// Allocations this node was first choice for that failed everywhere.
    pub(crate) alloc_failures: SharedCounter,
}

/// A snapshot of one node: geometry, free memory by where it sits, watermarks and
/// counters. Counters are read without a global lock, so a snapshot taken while
/// other CPUs run is only approximately consistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The node.
    pub node: NodeId,
    /// First frame of the node.
    pub start_pfn: Pfn,
    /// Frames from first to last, holes included (Linux `spanned`).
    pub spanned: PageCount,
    /// Frames of memory (Linux `present`; all are `managed`).
    pub present: PageCount,
    /// Free frames on the buddy free lists.
    pub free_buddy: PageCount,
    /// Free frames held in CPU caches.
    pub free_cached: PageCount,
    /// Free frames waiting in the remote-free queue.
    pub free_queued: PageCount,
    /// Free buddy blocks of each order.
    pub nr_free: [u64; NR_ORDERS],
    /// The node's watermarks.
    pub watermarks: Watermarks,
    /// Pages allocated from this node, by any route (Linux `pgalloc`).
    pub pgalloc: u64,
    /// Pages of this node freed, by any route (Linux `pgfree`).
    pub pgfree: u64,
    /// Linux `numa_hit`.
    pub numa_hit: u64,
    /// Linux `numa_miss`.
    pub numa_miss: u64,
    /// Linux `numa_foreign`.
    pub numa_foreign: u64,
    /// Linux `interleave_hit`.
    pub interleave_hit: u64,
    /// Linux `local_node`.
    pub local_node: u64,
    /// Linux `other_node`.
    pub other_node: u64,
    /// Pages of this node freed by CPUs of other nodes (sent through the queue).
    pub remote_frees: u64,
    /// Pages taken from the remote-free queue into the buddy.
    pub remote_drained: u64,
    /// Remote frees that found the queue full.
    pub remote_overflows: u64,
    /// Pages of this node zeroed for callers.
    pub zeroed_pages: u64,
    /// Nanoseconds spent zeroing them.
    pub zero_ns: u64,
    /// Times reclaim was woken.
    pub reclaim_wakeups: u64,
    /// Times an allocation went to sleep waiting for this node.
    pub alloc_waits: u64,
    /// Times the OOM hook was called for this node.
    pub oom_calls: u64,
    /// Refused frees that came through the queue.
    pub bad_frees: u64,
    /// Allocations aimed here that failed on every permitted node.
    pub alloc_failures: u64,
}

impl NodeStats {
    /// All free frames of the node: buddy, CPU caches and remote-free queue.
    pub fn free(&self) -> PageCount {
        self.free_buddy + self.free_cached + self.free_queued
    }

    /// Frames handed out and not yet freed.
    pub fn used(&self) -> PageCount {
        self.present.saturating_sub(self.free())
    }
}

/// One CPU's cache, as `/proc/zoneinfo`'s `pagesets` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuCacheStats {
    /// The CPU.
    pub cpu: sched::CpuId,
    /// The node whose frames it caches.
    pub node: NodeId,
    /// Frames cached now.
    pub count: u32,
    /// Cache size that triggers a drain.
    pub high: u32,
    /// Frames moved per refill or drain.
    pub batch: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_pad() {
        let c = OwnerCounter::default();
        c.add(2);
        c.add(3);
        assert_eq!(c.get(), 5);
        let s = SharedCounter::default();
        s.add(7);
        assert_eq!(s.get(), 7);
        assert_eq!(core::mem::align_of::<CpuNodeCounters>(), 64);
        let st = NodeStats {
            present: PageCount(10),
            free_buddy: PageCount(3),
            free_cached: PageCount(2),
            ..Default::default()
        };
        assert_eq!(st.free(), PageCount(5));
        assert_eq!(st.used(), PageCount(5));
    }
}
