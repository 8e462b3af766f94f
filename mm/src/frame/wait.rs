//! Waiting for memory: each node's list of parked allocations, and the
//! [`AllocWait`] future that registers there and is woken by frees that bring the
//! node above `min` (no spinning, no polling loop).

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{fence, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use super::allocator::FrameAllocator;
use super::error::AllocError;
use super::node::Mark;
use super::nodemask::NodeMask;
use super::policy::Plan;
use super::types::{NodeId, Order, Pfn};
use super::watermark::OomRequest;

/// Number of registered waiters, on its own cache line: the free hot path reads it.
#[repr(align(64))]
struct WaiterCount(AtomicUsize);

/// One node's parked allocations.
pub(crate) struct WaitList {
    count: WaiterCount,
    entries: spin::Mutex<Vec<(u64, Waker)>>,
}

impl WaitList {
    /// An empty list.
    pub(crate) fn new() -> WaitList {
        WaitList {
            count: WaiterCount(AtomicUsize::new(0)),
            entries: spin::Mutex::new(Vec::new()),
        }
    }

    /// Whether anyone waits. Sequentially consistent with [`register`](Self::register)
    /// so that a free that does not see a waiter happened before the waiter's retry.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.count.0.load(Ordering::SeqCst) != 0
    }

    /// Adds (or refreshes) waiter `id`'s waker.
    pub(crate) fn register(&self, id: u64, waker: &Waker) {
        let mut entries = self.entries.lock();
        match entries.iter_mut().find(|e| e.0 == id) {
            Some(e) => e.1.clone_from(waker),
            None => entries.push((id, waker.clone())),
        }
        self.count.0.store(entries.len(), Ordering::SeqCst);
        drop(entries);
        // Orders the count store before the caller's retry reads the buddy and the
        // remote-free queue; pairs with the fences on the free side.
        fence(Ordering::SeqCst);
    }

    /// Removes waiter `id` if it is still listed.
    pub(crate) fn unregister(&self, id: u64) {
        let mut entries = self.entries.lock();
        entries.retain(|e| e.0 != id);
        self.count.0.store(entries.len(), Ordering::SeqCst);
    }

    /// Wakes and removes every waiter; each re-registers if it still cannot allocate.
    pub(crate) fn wake_all(&self) {
        let woken = {
            let mut entries = self.entries.lock();
            self.count.0.store(0, Ordering::SeqCst);
            core::mem::take(&mut *entries)
        };
        for (_, waker) in woken {
            waker.wake();
        }
    }
}

/// A future that allocates a block of `order` under a policy, waiting while every
/// permitted node is at its `min` watermark. Created by
/// [`FrameAllocator::alloc_wait`]; it holds no per-CPU state, so the task may
/// migrate between polls. Dropping it cancels the wait.
#[must_use = "futures do nothing unless polled"]
pub struct AllocWait<'a> {
    alloc: &'a FrameAllocator,
    /// The plan, or the error resolving it gave.
    plan: Result<Plan, AllocError>,
    order: Order,
    requester: NodeId,
    id: u64,
    registered: NodeMask,
    rounds: u32,
    done: bool,
}

impl<'a> AllocWait<'a> {
    pub(crate) fn new(
        alloc: &'a FrameAllocator,
        plan: Result<Plan, AllocError>,
        order: Order,
        requester: NodeId,
        id: u64,
    ) -> AllocWait<'a> {
        AllocWait {
            alloc,
            plan,
            order,
            requester,
            id,
            registered: NodeMask::EMPTY,
            rounds: 0,
            done: false,
        }
    }

    /// Reclaim rounds waited through so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    fn unregister(&mut self) {
        for node in self.registered.iter() {
            self.alloc.node(node).waiters.unregister(self.id);
        }
        self.registered = NodeMask::EMPTY;
    }

    fn finish(&mut self, result: Result<Pfn, AllocError>) -> Poll<Result<Pfn, AllocError>> {
        self.unregister();
        self.done = true;
        Poll::Ready(result)
    }
}

impl Future for AllocWait<'_> {
    type Output = Result<Pfn, AllocError>;

    /// Polling after completion yields `Err(NoMemory)`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(AllocError::NoMemory));
        }
        let plan = match this.plan {
            Ok(plan) => plan,
            Err(e) => return this.finish(Err(e)),
        };
        let alloc = this.alloc;
        match alloc.alloc_from_nodes(&plan, this.order, this.requester, None, Mark::Min) {
            Err(AllocError::NoMemory) => {}
            other => return this.finish(other),
        }
        // Register before retrying: a free that misses the registration happened
        // before the retry, which then sees its frames.
        let candidates: NodeMask = plan.candidates(alloc.topology()).collect();
        if candidates.is_empty() {
            return this.finish(Err(AllocError::NoMemory));
        }
        for node in candidates.iter() {
            alloc.node(node).waiters.register(this.id, cx.waker());
        }
        this.registered = candidates;
        match alloc.alloc_from_nodes(&plan, this.order, this.requester, None, Mark::Min) {
            Err(AllocError::NoMemory) => {}
            other => return this.finish(other),
        }
        this.rounds += 1;
        for node in candidates.iter() {
            let node = alloc.node(node);
            node.counters.alloc_waits.add(1);
            node.kick_reclaim();
        }
        let every = alloc.oom_after_rounds();
        if every != 0 && this.rounds.is_multiple_of(every) {
            alloc.node(plan.intended).counters.oom_calls.add(1);
            alloc.oom_handler().out_of_memory(&OomRequest {
                order: this.order,
                nodes: plan.allowed,
                rounds: this.rounds,
            });
        }
        Poll::Pending
    }
}

impl Drop for AllocWait<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use core::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn wake_all_empties_the_list() {
        let list = WaitList::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        list.register(1, &waker);
        list.register(1, &waker);
        list.register(2, &waker);
        assert!(list.has_waiters());
        list.unregister(2);
        assert_eq!(list.entries.lock().len(), 1);
        list.wake_all();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(!list.has_waiters());
    }
}
