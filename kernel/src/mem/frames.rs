//! The kernel's binding of `mm::frame::FrameAllocator`: built from the per-node free ranges
//! at boot; the hot path uses the calling CPU's cache with interrupts disabled.

use super::numa::NodeMemory;
use crate::arch::{paging::phys_to_virt, percpu};
use alloc::vec::Vec;
use conquer_once::spin::OnceCell;
use drivers::acpi::Topology;
use mm::addr::VirtAddr;
use mm::frame::{
    DistanceMatrix, FrameAllocator, FrameConfig, FrameZeroer, NodeId, NodeRange, Order, PageCount,
    Pfn, Policy, PAGE_SIZE,
};
use sched::{CpuId, MAX_CPUS};

static FRAMES: OnceCell<FrameAllocator> = OnceCell::uninit();

/// What the kernel does under memory pressure, installed by `memd::reclaim` when its
/// tasks start: `mem` knows nothing of processes, so reclaim plugs in from above.
pub trait PressureHandler: Sync {
    /// `node` fell under its `low` watermark, or an allocation waits for it.
    fn wake_reclaim(&self, node: NodeId);
    /// An allocation found no frame: wait for reclaim, or go to the OOM path.
    fn alloc_failed(&self) -> mm::phys::AllocFailure;
}

static PRESSURE: OnceCell<&'static dyn PressureHandler> = OnceCell::uninit();

/// Installs the pressure handler (once; later calls are ignored).
pub fn set_pressure_handler(handler: &'static dyn PressureHandler) {
    PRESSURE.get_or_init(|| handler);
}

/// The allocator's `Reclaimer`: forwards to the installed handler (none before it is).
struct InstalledReclaimer;

impl mm::frame::Reclaimer for InstalledReclaimer {
    fn wake_reclaim(&self, node: NodeId) {
        if let Some(handler) = PRESSURE.get() {
            handler.wake_reclaim(node);
        }
    }
}

/// A failed allocation's outcome: the handler's choice (park on reclaim while it can
/// make progress), or OOM before there is one. Also asked by paths whose allocation
/// failed without it (a page-table page), so they wait for reclaim as faults do.
pub fn alloc_failed() -> mm::phys::AllocFailure {
    PRESSURE
        .get()
        .map_or(mm::phys::AllocFailure::OutOfMemory, |h| h.alloc_failed())
}

/// Runs `attempt` again after each reclaim round, `rounds` at most, while it answers
/// `None` (still short of memory) and reclaim can make progress: how a system call
/// whose ENOMEM may only mean "no frame right now" waits as a fault does. `None` when
/// memory never came.
pub async fn retry_after_reclaim<T>(
    rounds: usize,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    for _ in 0..rounds {
        let mm::phys::AllocFailure::Wait(round) = alloc_failed() else {
            return None;
        };
        round.await;
        if let Some(done) = attempt() {
            return Some(done);
        }
    }
    None
}

/// One past the highest frame number of usable RAM (set by `init`).
static PFN_LIMIT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Zeroes frames through the direct map.
pub struct DirectMapZeroer;

impl FrameZeroer for DirectMapZeroer {
    fn zero_frames(&self, first: Pfn, pages: PageCount) -> u64 {
        let start = crate::time::now_ns();
        for i in 0..pages.0 {
            // SAFETY: the allocator just handed these frames to us; the direct map covers them.
            unsafe { crate::arch::cpu::clear_page(phys_to_virt((first.0 + i) * PAGE_SIZE)) };
        }
        crate::time::now_ns() - start
    }
}

/// Builds the allocator over the free memory of every node.
pub fn init(nodes: &[NodeMemory], topo: &Topology, cpu_count: u32) {
    let ranges: Vec<NodeRange> = nodes
        .iter()
        .flat_map(|n| {
            n.ranges.iter().map(move |r| NodeRange {
                node: NodeId(n.node),
                phys_start: r.start,
                phys_end: r.end,
            })
        })
        .collect();
    let limit = ranges
        .iter()
        .map(|r| r.phys_end.div_ceil(PAGE_SIZE))
        .max()
        .unwrap_or(0);
    PFN_LIMIT.store(limit, core::sync::atomic::Ordering::Relaxed);
    let distances =
        DistanceMatrix::new(topo.node_count as usize, topo.distances.clone()).expect("SLIT shape");
    let cpu_nodes: Vec<NodeId> = (0..cpu_count.min(MAX_CPUS as u32))
        .map(|c| NodeId(percpu::get(CpuId(c)).map_or(0, |b| b.node)))
        .collect();
    let alloc = FrameAllocator::with_hooks(
        &ranges,
        distances,
        &cpu_nodes,
        FrameConfig::default(),
        alloc::sync::Arc::new(InstalledReclaimer),
        alloc::sync::Arc::new(mm::frame::NoOom),
    )
    .expect("frame allocator topology");
    FRAMES.get_or_init(|| alloc);
}

/// The allocator.
pub fn allocator() -> &'static FrameAllocator {
    FRAMES.get().expect("frame allocator used before init")
}

/// The allocator, or `None` before it is built (the heap grows only after).
pub fn try_allocator() -> Option<&'static FrameAllocator> {
    FRAMES.get()
}

/// Runs `f` with the calling CPU's frame cache, interrupts disabled.
fn with_cpu<R>(f: impl FnOnce(&mut mm::frame::CpuHandle<'_>) -> R) -> Option<R> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let cpu = percpu::current_cpu();
        // SAFETY: interrupts are off and we are on `cpu`, so no other handle for this CPU
        // exists; interrupt handlers never allocate frames.
        let mut handle = unsafe { allocator().cpu_unchecked(cpu) }?;
        Some(f(&mut handle))
    })
}

/// One zeroed 4 KiB frame from the local node (falling back by distance); its physical
/// address.
pub fn alloc_zeroed() -> Option<u64> {
    with_cpu(|h| {
        h.alloc_zeroed(Order::FRAME_4K, Policy::Local, &DirectMapZeroer)
            .ok()
    })
    .flatten()
    .map(|pfn| pfn.0 * PAGE_SIZE)
}

/// One 4 KiB frame, contents undefined (the caller overwrites it entirely).
pub fn alloc() -> Option<u64> {
    with_cpu(|h| h.alloc_frame().ok())
        .flatten()
        .map(|pfn| pfn.0 * PAGE_SIZE)
}

/// Frees a frame from `alloc`/`alloc_zeroed`.
pub fn free(phys: u64) {
    let pfn = Pfn(phys / PAGE_SIZE);
    let freed = with_cpu(|h| h.free_frame(pfn).is_ok()).unwrap_or(false);
    if !freed && allocator().free(pfn, Order::FRAME_4K).is_err() {
        log::error!("double or foreign free of frame {phys:#x}");
    }
}

/// Makes the fresh 2 MiB block at `pfn` 512 frames that free one by one.
fn split_huge(pfn: Pfn) -> Result<Pfn, mm::phys::AllocFailure> {
    if let Err(e) = allocator().split_block(pfn, Order::HUGE_2M) {
        log::error!("huge page {pfn}: {e}");
        let _ = allocator().free(pfn, Order::HUGE_2M);
        return Err(mm::phys::AllocFailure::OutOfMemory);
    }
    Ok(pfn)
}

/// The node that owns physical address `phys`.
pub fn node_of(phys: u64) -> Option<u32> {
    allocator().node_of(Pfn(phys / PAGE_SIZE)).map(|n| n.0)
}

/// The frame allocator as `mm`'s address-space code sees it: zeroed and plain frames from
/// the calling CPU's cache, and copies and byte access through the direct map.
pub struct KernelFrameSource;

/// A zeroed 4 KiB frame placed by `policy` (its physical address).
pub fn alloc_zeroed_placed(policy: Policy) -> Option<u64> {
    with_cpu(|h| {
        h.alloc_zeroed(Order::FRAME_4K, policy, &DirectMapZeroer)
            .ok()
    })
    .flatten()
    .map(|pfn| pfn.0 * PAGE_SIZE)
}

/// A 4 KiB frame with undefined contents placed by `policy`.
pub fn alloc_placed(policy: Policy) -> Option<u64> {
    with_cpu(|h| h.alloc(Order::FRAME_4K, policy).ok())
        .flatten()
        .map(|pfn| pfn.0 * PAGE_SIZE)
}

// Out of frames, every allocation parks on reclaim while it can make progress
// (`AllocFailure::Wait`), else goes to the OOM path.
impl mm::phys::FrameSource for KernelFrameSource {
    fn alloc_zeroed_placed(
        &self,
        _va_hint: VirtAddr,
        policy: Policy,
    ) -> Result<Pfn, mm::phys::AllocFailure> {
        alloc_zeroed_placed(policy)
            .map(|p| Pfn(p / PAGE_SIZE))
            .ok_or_else(alloc_failed)
    }

    fn alloc_placed(
        &self,
        _va_hint: VirtAddr,
        policy: Policy,
    ) -> Result<Pfn, mm::phys::AllocFailure> {
        alloc_placed(policy)
            .map(|p| Pfn(p / PAGE_SIZE))
            .ok_or_else(alloc_failed)
    }

    fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        allocator().node_of(pfn)
    }

    fn alloc_zeroed(&self, _va_hint: VirtAddr) -> Result<Pfn, mm::phys::AllocFailure> {
        alloc_zeroed()
            .map(|p| Pfn(p / PAGE_SIZE))
            .ok_or_else(alloc_failed)
    }

    fn alloc(&self, _va_hint: VirtAddr) -> Result<Pfn, mm::phys::AllocFailure> {
        alloc().map(|p| Pfn(p / PAGE_SIZE)).ok_or_else(alloc_failed)
    }

    fn free(&self, pfn: Pfn) {
        free(pfn.0 * PAGE_SIZE);
    }

    /// Straight to each node's free lists, one lock per chunk (not through this
    /// CPU's cache, which a teardown's thousands of frames would only overflow).
    fn free_batch(&self, pfns: &mut [Pfn]) {
        allocator().free_batch(pfns);
    }

    fn free_pages(&self) -> Option<u64> {
        Some(allocator().free_pages().0)
    }

    /// The calling CPU's node is under its `low` watermark (until back at `high`).
    fn memory_tight(&self) -> bool {
        allocator().under_pressure(NodeId(percpu::current().node))
    }

    /// From the pre-zeroed pool of the node `policy` picks first, else straight from
    /// the buddy by `policy` (falling back by distance where it allows) and zeroed
    /// here; `may_wait` (THP `defrag`) drains the CPU caches once so their frames can
    /// merge into a free 2 MiB block.
    fn alloc_huge_zeroed(
        &self,
        _va_hint: VirtAddr,
        may_wait: bool,
        policy: Policy,
    ) -> Result<Pfn, mm::phys::AllocFailure> {
        let local = NodeId(percpu::current().node);
        let first = match policy {
            Policy::Local => Some(local),
            Policy::Preferred(node) => Some(node),
            Policy::Bind(nodes) | Policy::Interleave(nodes) | Policy::PreferredMany(nodes)
                if nodes.contains(local) =>
            {
                Some(local)
            }
            Policy::Bind(nodes) | Policy::Interleave(nodes) | Policy::PreferredMany(nodes) => {
                nodes.iter().next()
            }
        };
        if let Some(pfn) = first.and_then(super::thp_ready::take) {
            return Ok(pfn);
        }
        // Only the allocation runs with interrupts off: 2 MiB are zeroed with them
        // on, so a TLB shootdown or a wake-up is not held up behind the zeroing.
        let take = || with_cpu(|h| h.alloc(Order::HUGE_2M, policy).ok()).flatten();
        let pfn = match take() {
            Some(pfn) => pfn,
            None if may_wait => {
                // This CPU's cache only: the other CPUs use theirs without the claim
                // `drain_all` takes (`cpu_unchecked`), so draining them from here raced
                // with their own allocations (a cache length that went below zero,
                // seen under stress-ng's mmap, mremap and vm stressors).
                with_cpu(|h| h.drain());
                take().ok_or(mm::phys::AllocFailure::OutOfMemory)?
            }
            None => return Err(mm::phys::AllocFailure::OutOfMemory),
        };
        allocator().zero(pfn, Order::HUGE_2M, &DirectMapZeroer);
        split_huge(pfn)
    }

    fn alloc_huge(&self, _va_hint: VirtAddr) -> Result<Pfn, mm::phys::AllocFailure> {
        let pfn = with_cpu(|h| h.alloc(Order::HUGE_2M, Policy::Local).ok())
            .flatten()
            .ok_or(mm::phys::AllocFailure::OutOfMemory)?;
        split_huge(pfn)
    }

    fn free_huge(&self, head: Pfn) {
        if allocator().free_run(head, Order::HUGE_2M.pages()).is_err() {
            log::error!("foreign free of huge page {head}");
        }
    }

    fn zero_huge(&self, head: Pfn) {
        DirectMapZeroer.zero_frames(head, PageCount(Order::HUGE_2M.pages()));
    }

    fn copy(&self, dst: Pfn, src: Pfn) {
        // SAFETY: both frames are allocated and reached through the direct map; a whole
        // frame never overlaps another.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(src.0 * PAGE_SIZE),
                phys_to_virt(dst.0 * PAGE_SIZE),
                PAGE_SIZE as usize,
            )
        };
    }

    fn read(&self, pfn: Pfn, offset: usize, buf: &mut [u8]) {
        let len = buf
            .len()
            .min(PAGE_SIZE as usize - offset.min(PAGE_SIZE as usize));
        // SAFETY: inside one allocated frame, through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(pfn.0 * PAGE_SIZE).add(offset),
                buf.as_mut_ptr(),
                len,
            )
        };
    }

    fn write(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        let len = data
            .len()
            .min(PAGE_SIZE as usize - offset.min(PAGE_SIZE as usize));
        // SAFETY: inside one allocated frame, through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                phys_to_virt(pfn.0 * PAGE_SIZE).add(offset),
                len,
            )
        };
    }
}

static MM_FRAMES: OnceCell<alloc::sync::Arc<mm::phys::Frames>> = OnceCell::uninit();

/// The frames (with reference counts) every address space and page cache shares; the
/// counts of every RAM frame are kept densely (4 bytes a frame).
pub fn mm_frames() -> &'static alloc::sync::Arc<mm::phys::Frames> {
    MM_FRAMES.get_or_init(|| {
        let limit = PFN_LIMIT.load(core::sync::atomic::Ordering::Relaxed);
        mm::phys::Frames::with_dense_refs(alloc::sync::Arc::new(KernelFrameSource), limit)
    })
}

/// Copies one page of user memory at `src` into frame `pfn` through the direct map
/// (`UFFDIO_COPY` fills a fresh frame in one pass). The caller must hold the frame's
/// only reference, with the frame mapped nowhere yet. EFAULT as `copy_from_user`.
pub fn copy_user_page_into(pfn: Pfn, src: u64) -> errno::SysResult<()> {
    // SAFETY: the direct map covers every frame, and the caller's frame is its own
    // (no other reference, no mapping), so nothing else reads or writes these bytes.
    let frame = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(pfn.0 * PAGE_SIZE), PAGE_SIZE as usize)
    };
    crate::arch::uaccess::copy_from_user(frame, src)
}
