//! The frame allocator the kernel binds to: per-node buddies, per-CPU caches on the
//! hot path, remote frees through lock-free queues, policy placement with distance
//! fallback, watermark waits, zeroing and statistics.
//!
//! Holds one `unsafe` call: [`FrameAllocator::cpu_unchecked`] forwards its caller's
//! exclusivity promise to the per-CPU cache (see `percpu_cache`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use sched::CpuId;

use super::error::{AllocError, FreeError, TopologyError};
use super::node::{Mark, Node};
use super::nodemask::NodeMask;
use super::percpu_cache::{CacheGuard, PerCpu, PCP_CAPACITY};
use super::policy::{InterleaveCursor, Plan, Policy};
use super::stats::{CpuCacheStats, CpuNodeCounters, NodeStats};
use super::topology::{DistanceMatrix, NodeRange, Topology};
use super::types::{NodeId, Order, PageCount, Pfn};
use super::watermark::{
    default_min_free_kbytes, NoOom, NoReclaim, OomHandler, Reclaimer, Watermarks,
    DEFAULT_WATERMARK_SCALE_FACTOR,
};
use super::zero::FrameZeroer;

/// Most frames [`FrameAllocator::free_batch`] frees under one hold of a node's lock.
pub const FREE_BATCH_CHUNK: usize = 1024;

/// Tunables of the frame allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameConfig {
    /// Frames moved per per-CPU cache refill or drain (Linux `pcp->batch`).
    pub pcp_batch: u32,
    /// Cache length above which a batch is drained (Linux `pcp->high`).
    pub pcp_high: u32,
    /// `vm.min_free_kbytes`; `None` computes Linux's default from total memory.
    pub min_free_kbytes: Option<u64>,
    /// `vm.watermark_scale_factor`.
    pub watermark_scale_factor: u32,
    /// Blocks each node's remote-free queue holds before frees fall back to the lock.
    pub remote_queue_capacity: usize,
    /// A waiter calls the OOM hook every this many fruitless reclaim rounds (0: never).
    pub oom_after_rounds: u32,
}

impl Default for FrameConfig {
    fn default() -> FrameConfig {
        FrameConfig {
            pcp_batch: 32,
            pcp_high: 128,
            min_free_kbytes: None,
            watermark_scale_factor: DEFAULT_WATERMARK_SCALE_FACTOR,
            remote_queue_capacity: 4096,
            oom_after_rounds: 16,
        }
    }
}

/// The result of [`FrameAllocator::drain_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Frames returned from CPU caches to their buddies.
    pub drained: PageCount,
    /// CPUs whose cache was in use and was skipped.
    pub busy_cpus: u32,
}

/// The NUMA-aware physical frame allocator.
pub struct FrameAllocator {
    topo: Topology,
    nodes: Box<[Node]>,
    cpus: Box<[PerCpu]>,
    batch: usize,
    high: usize,
    oom: Arc<dyn OomHandler>,
    oom_after_rounds: u32,
    /// The id the next waiting allocation registers under (`wait.rs`).
    pub(super) next_waiter: AtomicU64,
    /// Interleave position for allocations made without a CPU handle.
    pub(super) shared_cursor: spin::Mutex<InterleaveCursor>,
}

impl FrameAllocator {
    /// An allocator over `ranges` (the memory map intersected with the SRAT), with
    /// the SLIT `distances` and `cpu_nodes[i]` the node of CPU `i`; reclaim and OOM
    /// hooks are no-ops.
    pub fn new(
        ranges: &[NodeRange],
        distances: DistanceMatrix,
        cpu_nodes: &[NodeId],
        config: FrameConfig,
    ) -> Result<FrameAllocator, TopologyError> {
        FrameAllocator::with_hooks(
            ranges,
            distances,
            cpu_nodes,
            config,
            Arc::new(NoReclaim),
            Arc::new(NoOom),
        )
    }

    /// Like [`new`](Self::new), with the kernel's reclaim and OOM hooks.
    pub fn with_hooks(
        ranges: &[NodeRange],
        distances: DistanceMatrix,
        cpu_nodes: &[NodeId],
        config: FrameConfig,
        reclaimer: Arc<dyn Reclaimer>,
        oom: Arc<dyn OomHandler>,
    ) -> Result<FrameAllocator, TopologyError> {
        let (batch, high) = (config.pcp_batch as usize, config.pcp_high as usize);
        if batch == 0 || batch > high || high + batch > PCP_CAPACITY {
            return Err(TopologyError::BadCacheTunables);
        }
        let topo = Topology::new(ranges, distances, cpu_nodes)?;
        let nr_nodes = topo.nr_nodes();
        let nodes: Box<[Node]> = (0..nr_nodes as u32)
            .map(NodeId)
            .map(|n| {
                Node::new(
                    n,
                    topo.node_ranges(n),
                    config.remote_queue_capacity,
                    reclaimer.clone(),
                )
            })
            .collect();
        let cpus: Box<[PerCpu]> = (0..topo.nr_cpus() as u32)
            .map(CpuId)
            .filter_map(|c| {
                Some(PerCpu::new(
                    c,
                    topo.cpu_node(c)?,
                    topo.cpu_mem_node(c)?,
                    nr_nodes,
                ))
            })
            .collect();
        let alloc = FrameAllocator {
            topo,
            nodes,
            cpus,
            batch,
            high,
            oom,
            oom_after_rounds: config.oom_after_rounds,
            next_waiter: AtomicU64::new(1),
            shared_cursor: spin::Mutex::new(InterleaveCursor::default()),
        };
        alloc.set_watermarks(config.min_free_kbytes, config.watermark_scale_factor);
        Ok(alloc)
    }

    /// Recomputes every node's watermarks (`vm.min_free_kbytes`,
    /// `vm.watermark_scale_factor`); `None` uses Linux's default for total memory.
    pub fn set_watermarks(&self, min_free_kbytes: Option<u64>, scale_factor: u32) {
        let total = self.total_pages();
        let mfk = min_free_kbytes.unwrap_or_else(|| default_min_free_kbytes(total));
        for node in self.nodes.iter() {
            node.set_watermarks(Watermarks::compute(
                mfk,
                node.present(),
                total,
                scale_factor,
            ));
        }
    }

    /// Sets one node's watermarks directly.
    pub fn set_node_watermarks(&self, node: NodeId, watermarks: Watermarks) {
        if let Some(n) = self.nodes.get(node.index()) {
            n.set_watermarks(watermarks);
        }
    }

    /// Whether `node`'s free memory fell under its `low` watermark and has not been
    /// back at `high` since (reclaim is at work there): optional allocations such as
    /// readahead should wait.
    pub fn under_pressure(&self, node: NodeId) -> bool {
        self.nodes
            .get(node.index())
            .is_some_and(|n| n.under_pressure())
    }

    /// A node's watermarks (`None` for an unknown node).
    pub fn watermarks(&self, node: NodeId) -> Option<Watermarks> {
        Some(self.nodes.get(node.index())?.watermarks())
    }

    /// Number of nodes.
    pub fn nr_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Frames managed on all nodes.
    pub fn total_pages(&self) -> PageCount {
        self.nodes
            .iter()
            .fold(PageCount(0), |acc, n| acc + n.present())
    }

    /// The node owning `pfn`.
    pub fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        self.topo.node_of(pfn)
    }

    /// The SLIT distance between two nodes.
    pub fn distance(&self, from: NodeId, to: NodeId) -> u8 {
        self.topo.distances().distance(from, to)
    }

    /// The node a CPU belongs to.
    pub fn cpu_node(&self, cpu: CpuId) -> Option<NodeId> {
        self.topo.cpu_node(cpu)
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topo
    }

    pub(crate) fn node(&self, node: NodeId) -> &Node {
        &self.nodes[node.index()]
    }

    pub(crate) fn oom_handler(&self) -> &dyn OomHandler {
        &*self.oom
    }

    pub(crate) fn oom_after_rounds(&self) -> u32 {
        self.oom_after_rounds
    }

    /// The handle of `cpu`, if it exists and no other handle for it is alive
    /// (checked with an atomic flag on the CPU's own cache line; released on drop).
    pub fn try_cpu(&self, cpu: CpuId) -> Option<CpuHandle<'_>> {
        let percpu = self.cpus.get(cpu.index())?;
        let cache = percpu.try_claim()?;
        Some(CpuHandle::new(self, percpu, cache))
    }

    /// The handle of `cpu` without the atomic claim (`None` for an unknown CPU).
    ///
    /// # Safety
    ///
    /// While the handle lives, no other handle for `cpu` may exist and nothing may
    /// call [`try_cpu`](Self::try_cpu) or [`drain_all`](Self::drain_all) for it: the
    /// kernel calls this on `cpu` itself with interrupts disabled (or from `cpu`'s
    /// single executor, never holding the handle across an `.await` or into an
    /// interrupt handler that allocates).
    pub unsafe fn cpu_unchecked(&self, cpu: CpuId) -> Option<CpuHandle<'_>> {
        let percpu = self.cpus.get(cpu.index())?;
        // SAFETY: the caller's contract above is `borrow_unchecked`'s contract.
        let cache = unsafe { percpu.borrow_unchecked() };
        Some(CpuHandle::new(self, percpu, cache))
    }

    /// A block of `order` from `node` and no other, taken straight from its buddy
    /// (no CPU cache; the `min` watermark holds): how huge-page pools are filled.
    pub fn alloc_on_node(&self, node: NodeId, order: Order) -> Result<Pfn, AllocError> {
        let plan = Plan::resolve(
            Policy::Bind(NodeMask::single(node)),
            &self.topo,
            node,
            &mut InterleaveCursor::default(),
        )?;
        self.alloc_from_nodes(&plan, order, node, None, Mark::Min)
    }

    /// A block of `order` for a kernel allocator (the kernel heap growing): from
    /// `preferred` first, then the other nodes by distance, each down to its `low`
    /// watermark; then the same again down to half of `min`. It never drains a remote-free queue or wakes a waiter, so it
    /// is safe to call with any lock held except a buddy lock; no CPU cache is used.
    pub fn alloc_for_kernel(&self, preferred: NodeId, order: Order) -> Result<Pfn, AllocError> {
        let plan = Plan::resolve(
            Policy::Preferred(preferred),
            &self.topo,
            preferred,
            &mut InterleaveCursor::default(),
        )?;
        for mark in [Mark::Low, Mark::HalfMin] {
            for id in plan.candidates(&self.topo) {
                let node = &self.nodes[id.index()];
                if let Some(pfn) = node.alloc_quiet(order, mark) {
                    node.counters.direct_allocs.add(order.pages());
                    return Ok(pfn);
                }
            }
        }
        self.nodes[plan.intended.index()]
            .counters
            .alloc_failures
            .add(1);
        Err(AllocError::NoMemory)
    }

    /// Frees a block from a context without a CPU handle (such as a task that got
    /// it from [`alloc_wait`](Self::alloc_wait) and migrated): it goes through the
    /// owner's lock-free remote-free queue.
    pub fn free(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let node = self.check_free(pfn, order)?;
        self.nodes[node.index()].remote_free(pfn, order)?;
        self.nodes[node.index()]
            .counters
            .direct_frees
            .add(order.pages());
        Ok(())
    }

    /// Frees single frames given back together (an address-space teardown's batch):
    /// sorted, then each node's run goes to its free lists under one lock per
    /// [`FREE_BATCH_CHUNK`] frames, not one lock or queue push per frame. A frame no
    /// node owns is logged and counted nowhere, as [`free`](Self::free) refuses it.
    pub fn free_batch(&self, frames: &mut [Pfn]) {
        frames.sort_unstable();
        let mut rest = &frames[..];
        while let Some(&first) = rest.first() {
            let Some(node) = self.topo.node_of(first) else {
                log::error!("batch free of unmanaged frame {first}");
                rest = &rest[1..];
                continue;
            };
            let run = rest
                .iter()
                .take(FREE_BATCH_CHUNK)
                .take_while(|&&pfn| self.topo.node_of(pfn) == Some(node))
                .count();
            let (chunk, tail) = rest.split_at(run);
            let owner = &self.nodes[node.index()];
            owner.free_frames(chunk);
            owner.counters.direct_frees.add(run as u64);
            rest = tail;
        }
    }

    /// Free frames on every node's free lists and remote queues (not the CPU caches):
    /// what sizes a teardown's batches.
    pub fn free_pages(&self) -> PageCount {
        PageCount(
            self.nodes
                .iter()
                .map(|n| {
                    let snap = n.snapshot();
                    snap.free.0 + snap.queued.0
                })
                .sum(),
        )
    }

    /// Turns an allocated block of `order` into single frames, each freed on its
    /// own with `free(.., Order::FRAME_4K)` (a transparent huge page, which may be
    /// split and released page by page).
    pub fn split_block(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let node = self.topo.node_of(pfn).ok_or(FreeError::NotManaged(pfn))?;
        self.nodes[node.index()].split_allocated(pfn, order)
    }

    /// Frees `pages` single frames from `first` (a split block given back whole) to
    /// their node's buddy under one lock, where they merge again.
    pub fn free_run(&self, first: Pfn, pages: u64) -> Result<(), FreeError> {
        let node = self
            .topo
            .node_of(first)
            .ok_or(FreeError::NotManaged(first))?;
        self.nodes[node.index()].free_run(first, pages);
        self.nodes[node.index()].counters.direct_frees.add(pages);
        Ok(())
    }

    /// Zeroes an allocated block through `zeroer` (once), counting it.
    pub fn zero(&self, pfn: Pfn, order: Order, zeroer: &dyn FrameZeroer) {
        let ns = zeroer.zero_frames(pfn, PageCount(order.pages()));
        if let Some(node) = self.topo.node_of(pfn) {
            let c = &self.nodes[node.index()].counters;
            c.zeroed_pages.add(order.pages());
            c.zero_ns.add(ns);
        }
    }

    fn check_free(&self, pfn: Pfn, order: Order) -> Result<NodeId, FreeError> {
        let node = self.topo.node_of(pfn).ok_or(FreeError::NotManaged(pfn))?;
        if !pfn.is_aligned(order) {
            return Err(FreeError::Misaligned(pfn, order));
        }
        Ok(node)
    }

    /// Allocates straight from the buddies of `plan`'s candidates (skipping
    /// `skip`), each down to `mark`, counting NUMA events; `requester` is the calling
    /// CPU's node. A failure is counted on the intended node.
    pub(crate) fn alloc_from_nodes(
        &self,
        plan: &Plan,
        order: Order,
        requester: NodeId,
        skip: Option<NodeId>,
        mark: Mark,
    ) -> Result<Pfn, AllocError> {
        self.try_nodes(plan, order, requester, skip, mark)
            .ok_or_else(|| self.count_failure(plan))
    }

    /// Counts a failed allocation on `plan`'s intended node.
    fn count_failure(&self, plan: &Plan) -> AllocError {
        self.nodes[plan.intended.index()]
            .counters
            .alloc_failures
            .add(1);
        AllocError::NoMemory
    }

    /// Wakes the reclaim of every node `plan` may use (each once until it is back at
    /// `high`): none had a frame above `low`.
    fn wake_reclaim_for(&self, plan: &Plan) {
        for id in plan.candidates(&self.topo) {
            self.nodes[id.index()].wake_reclaim();
        }
    }

    /// [`alloc_from_nodes`](Self::alloc_from_nodes) without counting a failure.
    fn try_nodes(
        &self,
        plan: &Plan,
        order: Order,
        requester: NodeId,
        skip: Option<NodeId>,
        mark: Mark,
    ) -> Option<Pfn> {
        for id in plan.candidates(&self.topo) {
            if Some(id) == skip {
                continue;
            }
            let node = &self.nodes[id.index()];
            if let Some(pfn) = node.alloc(order, mark) {
                let c = &node.counters;
                c.direct_allocs.add(order.pages());
                if id == plan.intended {
                    c.numa_hit.add(1);
                    if plan.interleave {
                        c.interleave_hit.add(1);
                    }
                } else {
                    c.numa_miss.add(1);
                    self.nodes[plan.intended.index()]
                        .counters
                        .numa_foreign
                        .add(1);
                }
                if id == requester {
                    c.local_node.add(1);
                } else {
                    c.other_node.add(1);
                }
                return Some(pfn);
            }
        }
        None
    }

    /// Returns every CPU cache that is not in use to its buddy, then drains every
    /// remote-free queue. The kernel instead has each CPU call [`CpuHandle::drain`]
    /// (from an IPI); this is for quiescent points and host tests.
    pub fn drain_all(&self) -> DrainReport {
        let mut report = DrainReport::default();
        for percpu in self.cpus.iter() {
            match percpu.try_claim() {
                Some(cache) => report.drained += CpuHandle::new(self, percpu, cache).drain(),
                None => report.busy_cpus += 1,
            }
        }
        for node in self.nodes.iter() {
            node.drain_remote();
        }
        report
    }

    /// A snapshot of one node (`None` for an unknown node).
    pub fn node_stats(&self, node: NodeId) -> Option<NodeStats> {
        let n = self.nodes.get(node.index())?;
        let buddy = n.snapshot();
        let c = &n.counters;
        let mut s = NodeStats {
            node,
            start_pfn: n.start_pfn(),
            spanned: n.spanned(),
            present: n.present(),
            free_buddy: buddy.free,
            free_queued: buddy.queued,
            nr_free: buddy.nr_free,
            watermarks: n.watermarks(),
            pgalloc: c.direct_allocs.get(),
            pgfree: c.direct_frees.get().saturating_sub(c.bad_frees.get()),
            numa_hit: c.numa_hit.get(),
            numa_miss: c.numa_miss.get(),
            numa_foreign: c.numa_foreign.get(),
            interleave_hit: c.interleave_hit.get(),
            local_node: c.local_node.get(),
            other_node: c.other_node.get(),
            remote_drained: c.remote_drained.get(),
            remote_overflows: c.remote_overflows.get(),
            zeroed_pages: c.zeroed_pages.get(),
            zero_ns: c.zero_ns.get(),
            reclaim_wakeups: c.reclaim_wakeups.get(),
            alloc_waits: c.alloc_waits.get(),
            oom_calls: c.oom_calls.get(),
            bad_frees: c.bad_frees.get(),
            alloc_failures: c.alloc_failures.get(),
            ..NodeStats::default()
        };
        for percpu in self.cpus.iter() {
            let pc: &CpuNodeCounters = &percpu.counters[node.index()];
            let cache_allocs = pc.cache_allocs.get();
            s.pgalloc += cache_allocs;
            s.numa_hit += cache_allocs;
            s.interleave_hit += pc.cache_interleave_hits.get();
            if percpu.node == node {
                s.local_node += cache_allocs;
            } else {
                s.other_node += cache_allocs;
            }
            let remote = pc.remote_frees.get();
            s.pgfree += pc.cache_frees.get() + remote;
            s.remote_frees += remote;
            s.zeroed_pages += pc.zeroed_pages.get();
            s.zero_ns += pc.zero_ns.get();
            if percpu.mem_node == node {
                s.free_cached += PageCount(percpu.cached() as u64);
            }
        }
        Some(s)
    }

    /// Every CPU's cache (for `/proc/zoneinfo`'s `pagesets`).
    pub fn cpu_cache_stats(&self) -> Vec<CpuCacheStats> {
        self.cpus
            .iter()
            .map(|pc| CpuCacheStats {
                cpu: pc.cpu,
                node: pc.mem_node,
                count: pc.cached(),
                high: self.high as u32,
                batch: self.batch as u32,
            })
            .collect()
    }

    /// Free blocks of a node (tests only).
    #[cfg(test)]
    pub(crate) fn free_blocks(&self, node: NodeId) -> Vec<(Pfn, Order)> {
        self.nodes[node.index()].free_blocks()
    }
}

/// Exclusive use of one CPU's frame cache: the hot path. Obtained from
/// [`FrameAllocator::try_cpu`] or [`FrameAllocator::cpu_unchecked`]; not `Send`.
pub struct CpuHandle<'a> {
    alloc: &'a FrameAllocator,
    percpu: &'a PerCpu,
    cache: CacheGuard<'a>,
    /// This CPU's counters for its memory node.
    local: &'a CpuNodeCounters,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl<'a> CpuHandle<'a> {
    fn new(alloc: &'a FrameAllocator, percpu: &'a PerCpu, cache: CacheGuard<'a>) -> CpuHandle<'a> {
        let local = &percpu.counters[percpu.mem_node.index()];
        CpuHandle {
            alloc,
            percpu,
            cache,
            local,
            _not_send: core::marker::PhantomData,
        }
    }

    /// The CPU.
    pub fn cpu(&self) -> CpuId {
        self.percpu.cpu
    }

    /// The node the CPU's cache takes frames from.
    pub fn mem_node(&self) -> NodeId {
        self.percpu.mem_node
    }

    /// One frame from this CPU's node (falling back by distance): the hot path,
    /// lock-free while the cache has frames.
    #[inline]
    pub fn alloc_frame(&mut self) -> Result<Pfn, AllocError> {
        if let Some(pfn) = self.cache.pop() {
            self.local.cache_allocs.add(1);
            self.cache.publish_len();
            return Ok(pfn);
        }
        self.alloc(Order::FRAME_4K, Policy::Local)
    }

    /// Frees one frame: into this CPU's cache if it belongs to the CPU's node,
    /// else into the owner node's remote-free queue.
    #[inline]
    pub fn free_frame(&mut self, pfn: Pfn) -> Result<(), FreeError> {
        self.free(pfn, Order::FRAME_4K)
    }

    /// A block of `order` placed by `policy`, in Linux's order: the policy's nodes
    /// nearest first, each only down to its `low` watermark (no reclaim woken while
    /// some node the policy allows has room above it); then, every one of them under
    /// `low`, their reclaim is woken and the same nodes are tried down to `min`. A
    /// policy's mask is never left (`Bind`). Failing both, the caller waits for
    /// reclaim or goes to the OOM path.
    pub fn alloc(&mut self, order: Order, policy: Policy) -> Result<Pfn, AllocError> {
        let mem_node = self.percpu.mem_node;
        let plan = Plan::resolve(policy, &self.alloc.topo, mem_node, &mut self.cache.cursor)?;
        let cached = order == Order::FRAME_4K
            && plan.intended == mem_node
            && plan.allowed.contains(mem_node);
        if cached {
            if let Some(pfn) = self.cache.pop() {
                return Ok(self.took_cached(pfn, &plan));
            }
        }
        for mark in [Mark::Low, Mark::Min] {
            if mark == Mark::Min {
                self.alloc.wake_reclaim_for(&plan);
            }
            let mut skip = None;
            if cached {
                if let Some(pfn) = self.refill(mark) {
                    return Ok(self.took_cached(pfn, &plan));
                }
                skip = Some(mem_node);
            }
            if let Some(pfn) = self
                .alloc
                .try_nodes(&plan, order, self.percpu.node, skip, mark)
            {
                return Ok(pfn);
            }
        }
        Err(self.alloc.count_failure(&plan))
    }

    /// Counts frame `pfn`, just taken from this CPU's cache for `plan`.
    fn took_cached(&mut self, pfn: Pfn, plan: &Plan) -> Pfn {
        self.local.cache_allocs.add(1);
        if plan.interleave {
            self.local.cache_interleave_hits.add(1);
        }
        self.cache.publish_len();
        pfn
    }

    /// A block of `order` placed by `policy`, zeroed once by `zeroer` before it is
    /// returned (for frames handed to userland); pages and time are counted.
    pub fn alloc_zeroed(
        &mut self,
        order: Order,
        policy: Policy,
        zeroer: &dyn FrameZeroer,
    ) -> Result<Pfn, AllocError> {
        let pfn = self.alloc(order, policy)?;
        let ns = zeroer.zero_frames(pfn, PageCount(order.pages()));
        if let Some(node) = self.alloc.topo.node_of(pfn) {
            let c = &self.percpu.counters[node.index()];
            c.zeroed_pages.add(order.pages());
            c.zero_ns.add(ns);
        }
        Ok(pfn)
    }

    /// Frees a block of `order`.
    pub fn free(&mut self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let node_id = self.alloc.check_free(pfn, order)?;
        let node = &self.alloc.nodes[node_id.index()];
        if node_id != self.percpu.mem_node {
            node.remote_free(pfn, order)?;
            self.percpu.counters[node_id.index()]
                .remote_frees
                .add(order.pages());
            return Ok(());
        }
        // Under pressure a local free skips the cache so that waiters see it.
        if order == Order::FRAME_4K && !node.waiters.has_waiters() && self.cache.push(pfn) {
            self.local.cache_frees.add(1);
            if self.cache.len() > self.alloc.high {
                self.cache
                    .drain_oldest(self.alloc.batch, |frames| node.free_frames(frames));
            }
            self.cache.publish_len();
            return Ok(());
        }
        node.free(pfn, order)?;
        node.counters.direct_frees.add(order.pages());
        Ok(())
    }

    /// Refills the cache by one batch (as far as `mark` allows) and takes a frame;
    /// `None` if the node is at `mark`.
    fn refill(&mut self, mark: Mark) -> Option<Pfn> {
        let node = &self.alloc.nodes[self.percpu.mem_node.index()];
        self.cache
            .refill(self.alloc.batch, |slots| node.alloc_frames(slots, mark));
        self.cache.pop()
    }

    /// Returns every cached frame to the buddy.
    pub fn drain(&mut self) -> PageCount {
        let node = &self.alloc.nodes[self.percpu.mem_node.index()];
        let n = self.cache.len();
        self.cache
            .drain_oldest(n, |frames| node.free_frames(frames));
        self.cache.publish_len();
        PageCount(n as u64)
    }

    /// Frames in this CPU's cache.
    pub fn cached(&self) -> PageCount {
        PageCount(self.cache.len() as u64)
    }
}
