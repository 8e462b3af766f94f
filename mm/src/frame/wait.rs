//! Waiting for memory: the [`AllocWait`] future that registers on each permitted
//! node's list of parked allocations (`wait_list.rs`) and is woken by frees that
//! bring the node above `min` (no spinning, no polling loop).

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::{Context, Poll};

use sched::CpuId;

use super::allocator::FrameAllocator;
use super::error::AllocError;
use super::node::Mark;
use super::nodemask::NodeMask;
use super::policy::{Plan, Policy};
use super::types::{NodeId, Order, Pfn};
use super::watermark::OomRequest;

impl FrameAllocator {
    /// A future allocating a block of `order` under `policy` for a task running on
    /// `cpu`; it waits (registering its waker) while every permitted node is at its
    /// `min` watermark, and completes when frees bring one above it. It uses no CPU
    /// cache, so the task may migrate while it waits.
    pub fn alloc_wait(&self, cpu: CpuId, order: Order, policy: Policy) -> AllocWait<'_> {
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let (Some(local), Some(requester)) = (
            self.topology().cpu_mem_node(cpu),
            self.topology().cpu_node(cpu),
        ) else {
            return AllocWait::new(self, Err(AllocError::UnknownCpu), order, NodeId(0), id);
        };
        let plan = Plan::resolve(
            policy,
            self.topology(),
            local,
            &mut self.shared_cursor.lock(),
        );
        AllocWait::new(self, plan, order, requester, id)
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
