//! The lock-free queue through which CPUs of other nodes return frames to their owner
//! node, so a cross-node free never takes the owner's buddy lock. The owner drains
//! it whenever it holds its buddy lock anyway (refill, drain, direct allocation).

use core::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use super::types::{Order, Pfn};

/// A bounded multi-producer queue of freed blocks for one node. Bounded so that a
/// free never allocates; a producer that finds it full falls back to the lock.
pub(crate) struct RemoteFreeQueue {
    queue: ArrayQueue<(Pfn, Order)>,
    /// Pages in the queue (blocks may be of any order).
    queued_pages: AtomicU64,
}

impl RemoteFreeQueue {
    /// A queue holding up to `capacity` blocks (at least one).
    pub(crate) fn new(capacity: usize) -> RemoteFreeQueue {
        RemoteFreeQueue {
            queue: ArrayQueue::new(capacity.max(1)),
            queued_pages: AtomicU64::new(0),
        }
    }

    /// Queues a freed block; gives it back if the queue is full.
    pub(crate) fn push(&self, pfn: Pfn, order: Order) -> Result<(), (Pfn, Order)> {
        // Count first so the page is never "nowhere" in a stats snapshot.
        self.queued_pages
            .fetch_add(order.pages(), Ordering::Relaxed);
        self.queue.push((pfn, order)).inspect_err(|_| {
            self.queued_pages
                .fetch_sub(order.pages(), Ordering::Relaxed);
        })
    }

    /// Whether the queue looks empty (a racy hint, used to skip draining).
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Pops up to one queue-capacity of blocks into `sink`, returning pages drained.
    /// Bounded so that producers cannot keep the owner draining forever.
    pub(crate) fn drain(&self, mut sink: impl FnMut(Pfn, Order)) -> u64 {
        let mut pages = 0;
        for _ in 0..self.queue.capacity() {
            let Some((pfn, order)) = self.queue.pop() else {
                break;
            };
            sink(pfn, order);
            pages += order.pages();
        }
        self.queued_pages.fetch_sub(pages, Ordering::Relaxed);
        pages
    }

    /// Pages in the queue now.
    pub(crate) fn queued_pages(&self) -> u64 {
        self.queued_pages.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn push_until_full_then_drain() {
        let q = RemoteFreeQueue::new(2);
        assert!(q.push(Pfn(1), Order::FRAME_4K).is_ok());
        assert!(q.push(Pfn(512), Order::HUGE_2M).is_ok());
        assert_eq!(
            q.push(Pfn(3), Order::FRAME_4K),
            Err((Pfn(3), Order::FRAME_4K))
        );
        assert_eq!(q.queued_pages(), 513);
        let mut got = Vec::new();
        assert_eq!(q.drain(|p, o| got.push((p, o))), 513);
        assert_eq!(got, [(Pfn(1), Order::FRAME_4K), (Pfn(512), Order::HUGE_2M)]);
        assert!(q.is_empty());
        assert_eq!(q.queued_pages(), 0);
    }

    #[test]
    fn concurrent_producers_lose_nothing() {
        let q = RemoteFreeQueue::new(4096);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let q = &q;
                s.spawn(move || {
                    for i in 0..1000 {
                        q.push(Pfn(t * 1000 + i), Order::FRAME_4K).unwrap();
                    }
                });
            }
        });
        let mut got = Vec::new();
        q.drain(|p, _| got.push(p.0));
        got.sort_unstable();
        assert_eq!(got, (0..4000).collect::<Vec<_>>());
    }
}
