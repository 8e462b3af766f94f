//! One NUMA node: its buddy allocator behind a spin lock, its remote-free queue, its
//! watermarks, its wait list and its slow-path counters. Every locked operation
//! drains the remote-free queue first and, after unlocking, wakes reclaim or
//! waiters as the new free count requires.

use alloc::sync::Arc;
use core::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use super::buddy::Buddy;
use super::error::FreeError;
use super::remote_free::RemoteFreeQueue;
use super::stats::NodeCounters;
use super::types::{NodeId, Order, PageCount, Pfn, NR_ORDERS};
use super::wait_list::WaitList;
use super::watermark::{Reclaimer, Watermarks};

/// Watermarks that a tunable may change at run time.
#[derive(Default)]
struct AtomicWatermarks {
    min: AtomicU64,
    low: AtomicU64,
    high: AtomicU64,
}

/// How far down an allocation may take a node's free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Not under `low`: the first pass over the candidate nodes (Linux's
    /// `ALLOC_WMARK_LOW` fast path), which wakes no reclaim.
    Low,
    /// Not under `min`: once every candidate was under `low` and their reclaim was
    /// woken.
    Min,
    /// Not under half of `min`: the reserve of kernel allocators (Linux's
    /// `ALLOC_HARDER`).
    HalfMin,
}

/// A node's buddy and everything around it.
pub(crate) struct Node {
    /// The node's number.
    pub(crate) id: NodeId,
    /// The buddy allocator; only batch and slow paths take this lock.
    buddy: spin::Mutex<Buddy>,
    /// Frees from CPUs of other nodes.
    remote: RemoteFreeQueue,
    /// Allocations waiting for this node to get above `min`.
    pub(crate) waiters: WaitList,
    /// Slow-path counters.
    pub(crate) counters: NodeCounters,
    watermarks: AtomicWatermarks,
    /// Set when reclaim was woken; cleared when free memory is back at `high`.
    reclaim_woken: AtomicBool,
    reclaimer: Arc<dyn Reclaimer>,
    /// Immutable geometry, readable without the lock.
    present: u64,
    spanned: u64,
    start_pfn: Pfn,
}

/// The buddy's part of a [`NodeStats`](super::NodeStats) snapshot.
pub(crate) struct BuddySnapshot {
    pub(crate) free: PageCount,
    pub(crate) nr_free: [u64; NR_ORDERS],
    pub(crate) queued: PageCount,
}

impl Node {
    /// A node owning the frames of `ranges` (sorted, disjoint PFN ranges).
    pub(crate) fn new(
        id: NodeId,
        ranges: &[(Pfn, Pfn)],
        remote_capacity: usize,
        reclaimer: Arc<dyn Reclaimer>,
    ) -> Node {
        let buddy = Buddy::new(ranges);
        Node {
            id,
            present: buddy.present_pages(),
            spanned: buddy.spanned_pages(),
            start_pfn: buddy.start_pfn(),
            buddy: spin::Mutex::new(buddy),
            remote: RemoteFreeQueue::new(remote_capacity),
            waiters: WaitList::new(),
            counters: NodeCounters::default(),
            watermarks: AtomicWatermarks::default(),
            reclaim_woken: AtomicBool::new(false),
            reclaimer,
        }
    }

    /// Frames of memory on the node.
    pub(crate) fn present(&self) -> PageCount {
        PageCount(self.present)
    }

    /// Frames from first to last, holes included.
    pub(crate) fn spanned(&self) -> PageCount {
        PageCount(self.spanned)
    }

    /// The first frame.
    pub(crate) fn start_pfn(&self) -> Pfn {
        self.start_pfn
    }

    /// The current watermarks.
    pub(crate) fn watermarks(&self) -> Watermarks {
        Watermarks {
            min: PageCount(self.watermarks.min.load(Ordering::Relaxed)),
            low: PageCount(self.watermarks.low.load(Ordering::Relaxed)),
            high: PageCount(self.watermarks.high.load(Ordering::Relaxed)),
        }
    }

    /// Replaces the watermarks (boot, or a `vm.*` tunable changed).
    pub(crate) fn set_watermarks(&self, w: Watermarks) {
        self.watermarks.min.store(w.min.0, Ordering::Relaxed);
        self.watermarks.low.store(w.low.0, Ordering::Relaxed);
        self.watermarks.high.store(w.high.0, Ordering::Relaxed);
        // Lowered watermarks may satisfy waiters now.
        if self.waiters.has_waiters() {
            self.waiters.wake_all();
        }
    }

    /// Runs `f` on the buddy under its lock, after draining the remote-free queue;
    /// then, unlocked, reacts to the new free count.
    fn with_buddy<R>(&self, f: impl FnOnce(&mut Buddy) -> R) -> R {
        let (result, before, free) = {
            let mut buddy = self.buddy.lock();
            let before = buddy.free_pages();
            if !self.remote.is_empty() {
                let counters = &self.counters;
                let id = self.id;
                let drained = self.remote.drain(|pfn, order| {
                    if let Err(e) = buddy.free(pfn, order) {
                        counters.bad_frees.add(order.pages());
                        log::error!("{id}: refused remote free: {e}");
                    }
                });
                self.counters.remote_drained.add(drained);
            }
            let result = f(&mut buddy);
            (result, before, buddy.free_pages())
        };
        self.after_change(free, free > before);
        result
    }

    /// Wakes reclaim under `low`, re-arms it at `high`; if frames were `returned`,
    /// wakes waiters once above `min`. (A failed allocation returns nothing, so a
    /// waiter's own retry never wakes it again.)
    fn after_change(&self, free: u64, returned: bool) {
        let w = self.watermarks();
        if free < w.low.0 {
            if !self.reclaim_woken.load(Ordering::Relaxed)
                && !self.reclaim_woken.swap(true, Ordering::AcqRel)
            {
                self.counters.reclaim_wakeups.add(1);
                self.reclaimer.wake_reclaim(self.id);
            }
        } else if free >= w.high.0 && self.reclaim_woken.load(Ordering::Relaxed) {
            self.reclaim_woken.store(false, Ordering::Relaxed);
        }
        // Pairs with the fence in `WaitList::register`: either this free sees the
        // waiter, or the waiter's retry sees this free.
        if returned && free > w.min.0 && {
            fence(Ordering::SeqCst);
            self.waiters.has_waiters()
        } {
            self.waiters.wake_all();
        }
    }

    /// The free count `mark` keeps.
    fn floor(&self, mark: Mark) -> u64 {
        let w = &self.watermarks;
        match mark {
            Mark::Low => w.low.load(Ordering::Relaxed),
            Mark::Min => w.min.load(Ordering::Relaxed),
            Mark::HalfMin => w.min.load(Ordering::Relaxed) / 2,
        }
    }

    /// Wakes reclaim unless it was woken since free memory was last at `high`: an
    /// allocation found every node it may use under `low` (Linux's
    /// `wake_all_kswapds` before the `min` pass).
    pub(crate) fn wake_reclaim(&self) {
        if !self.reclaim_woken.load(Ordering::Relaxed)
            && !self.reclaim_woken.swap(true, Ordering::AcqRel)
        {
            self.counters.reclaim_wakeups.add(1);
            self.reclaimer.wake_reclaim(self.id);
        }
    }

    /// Wakes reclaim for a waiter regardless of the hysteresis flag.
    pub(crate) fn kick_reclaim(&self) {
        self.counters.reclaim_wakeups.add(1);
        self.reclaimer.wake_reclaim(self.id);
    }

    /// Takes a block of `order` unless that would leave fewer free frames than
    /// `mark`.
    pub(crate) fn alloc(&self, order: Order, mark: Mark) -> Option<Pfn> {
        if self.present < order.pages() {
            return None;
        }
        let floor = self.floor(mark);
        self.with_buddy(|b| {
            if b.free_pages() < floor + order.pages() {
                return None;
            }
            b.alloc(order)
        })
    }

    /// Takes a block of `order` for a kernel allocator, down to `mark` (half the `min`
    /// watermark is the reserve Linux's `ALLOC_HARDER` callers may use). It neither
    /// drains the remote-free queue nor wakes waiters, so it may run while the caller
    /// holds any lock but this node's buddy lock (the kernel heap grows through it
    /// while a waiter list or the heap itself may be locked further up the stack).
    /// `mark` is [`Mark::Low`] on a first pass over the nodes, [`Mark::HalfMin`] after.
    pub(crate) fn alloc_quiet(&self, order: Order, mark: Mark) -> Option<Pfn> {
        if self.present < order.pages() {
            return None;
        }
        let floor = self.floor(mark);
        let (pfn, free) = {
            let mut b = self.buddy.lock();
            if b.free_pages() < floor + order.pages() {
                return None;
            }
            let pfn = b.alloc(order);
            (pfn, b.free_pages())
        };
        // Nothing was returned, so this wakes reclaim at most, never a waiter.
        self.after_change(free, false);
        pfn
    }

    /// Fills as much of `out` with single frames as `mark` allows.
    pub(crate) fn alloc_frames(&self, out: &mut [Pfn], mark: Mark) -> usize {
        if self.present == 0 {
            return 0;
        }
        let floor = self.floor(mark);
        self.with_buddy(|b| {
            let room = b.free_pages().saturating_sub(floor).min(out.len() as u64) as usize;
            b.alloc_frames(&mut out[..room])
        })
    }

    /// Returns a block to the buddy.
    pub(crate) fn free(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        self.with_buddy(|b| b.free(pfn, order))
    }

    /// See [`Buddy::split_allocated`].
    pub(crate) fn split_allocated(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        self.buddy.lock().split_allocated(pfn, order)
    }

    /// Returns the single frames `[first, first + pages)` to the buddy under one
    /// lock; refused ones are counted and logged.
    pub(crate) fn free_run(&self, first: Pfn, pages: u64) {
        self.with_buddy(|b| {
            // A whole split block (a huge page going back unshared) goes back as one.
            let whole = u8::try_from(pages.trailing_zeros())
                .ok()
                .filter(|_| pages.is_power_of_two())
                .and_then(Order::new);
            if let Some(order) = whole {
                if b.free_split_block(first, order).is_ok() {
                    return;
                }
            }
            for pfn in (first.0..first.0 + pages).map(Pfn) {
                if let Err(e) = b.free(pfn, Order::FRAME_4K) {
                    self.counters.bad_frees.add(1);
                    log::error!("{}: refused run free: {e}", self.id);
                }
            }
        })
    }

    /// Returns single frames to the buddy; refused ones are counted and logged.
    pub(crate) fn free_frames(&self, frames: &[Pfn]) {
        self.with_buddy(|b| {
            for &pfn in frames {
                if let Err(e) = b.free(pfn, Order::FRAME_4K) {
                    self.counters.bad_frees.add(1);
                    log::error!("{}: refused cached free: {e}", self.id);
                }
            }
        })
    }

    /// A free from a CPU of another node: queued without the lock, unless the
    /// queue is full; if someone waits for this node the queue is drained at once
    /// (taking the lock) so the waiter sees the frame. Validity is checked when the
    /// queue drains.
    pub(crate) fn remote_free(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        match self.remote.push(pfn, order) {
            Ok(()) => {
                // Pairs with the fence in `WaitList::register`: either this sees the
                // waiter, or the waiter's retry (which drains the queue) sees the frame.
                fence(Ordering::SeqCst);
                if self.waiters.has_waiters() {
                    self.drain_remote();
                }
                Ok(())
            }
            Err((pfn, order)) => {
                self.counters.remote_overflows.add(1);
                self.free(pfn, order)
            }
        }
    }

    /// Drains the remote-free queue into the buddy.
    pub(crate) fn drain_remote(&self) {
        self.with_buddy(|_| ());
    }

    /// Free buddy frames, read without draining the queue.
    /// Free memory fell under `low` and has not been back at `high` since.
    pub(crate) fn under_pressure(&self) -> bool {
        self.reclaim_woken.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> BuddySnapshot {
        let buddy = self.buddy.lock();
        BuddySnapshot {
            free: PageCount(buddy.free_pages()),
            nr_free: buddy.nr_free(),
            queued: PageCount(self.remote.queued_pages()),
        }
    }

    /// Every free block (tests only).
    #[cfg(test)]
    pub(crate) fn free_blocks(&self) -> alloc::vec::Vec<(Pfn, Order)> {
        self.buddy.lock().free_blocks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::watermark::NoReclaim;
    use core::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingReclaimer(AtomicUsize);
    impl Reclaimer for CountingReclaimer {
        fn wake_reclaim(&self, _node: NodeId) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn min_watermark_is_never_crossed() {
        let node = Node::new(NodeId(0), &[(Pfn(0), Pfn(64))], 8, Arc::new(NoReclaim));
        node.set_watermarks(Watermarks {
            min: PageCount(10),
            low: PageCount(12),
            high: PageCount(14),
        });
        let mut out = [Pfn(0); 64];
        assert_eq!(node.alloc_frames(&mut out, Mark::Min), 54);
        assert_eq!(node.alloc(Order::FRAME_4K, Mark::Min), None);
        node.free_frames(&out[..4]);
        assert_eq!(
            node.alloc(Order::new(3).unwrap(), Mark::Min),
            None,
            "14 - 8 would be under min"
        );
        assert_eq!(
            node.alloc(Order::new(2).unwrap(), Mark::Min),
            Some(Pfn(0)),
            "14 - 4 is exactly min"
        );
        assert_eq!(node.alloc(Order::FRAME_4K, Mark::Min), None);
    }

    #[test]
    fn reclaim_wakes_once_under_low_and_rearms_at_high() {
        let r = Arc::new(CountingReclaimer::default());
        let node = Node::new(NodeId(0), &[(Pfn(0), Pfn(64))], 8, r.clone());
        node.set_watermarks(Watermarks {
            min: PageCount(4),
            low: PageCount(16),
            high: PageCount(32),
        });
        let mut out = [Pfn(0); 56];
        assert_eq!(node.alloc_frames(&mut out, Mark::Min), 56);
        assert_eq!(node.alloc(Order::FRAME_4K, Mark::Min), Some(Pfn(56)));
        assert_eq!(r.0.load(Ordering::Relaxed), 1);
        node.free_frames(&out[..40]);
        node.alloc_frames(&mut out[..40], Mark::Min);
        assert_eq!(r.0.load(Ordering::Relaxed), 2);
        assert_eq!(node.counters.reclaim_wakeups.get(), 2);
    }

    #[test]
    fn remote_frees_queue_and_drain_on_next_lock() {
        let node = Node::new(NodeId(1), &[(Pfn(0), Pfn(8))], 2, Arc::new(NoReclaim));
        let mut out = [Pfn(0); 8];
        assert_eq!(node.alloc_frames(&mut out, Mark::Min), 8);
        node.remote_free(out[0], Order::FRAME_4K).unwrap();
        node.remote_free(out[1], Order::FRAME_4K).unwrap();
        assert_eq!(node.snapshot().queued, PageCount(2));
        assert_eq!(node.snapshot().free, PageCount(0));
        // Full queue: the third takes the lock, draining the other two as well.
        node.remote_free(out[2], Order::FRAME_4K).unwrap();
        assert_eq!(node.counters.remote_overflows.get(), 1);
        assert_eq!(node.snapshot().free, PageCount(3));
        assert_eq!(node.counters.remote_drained.get(), 2);
        // A bogus queued free is counted, not applied.
        node.remote_free(out[0], Order::FRAME_4K).unwrap();
        node.drain_remote();
        assert_eq!(node.counters.bad_frees.get(), 1);
    }
}
