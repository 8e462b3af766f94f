//! The kernel heap (`#[global_allocator]`): a `talc` allocator over the boot arena that
//! grows from the frame allocator when it runs out, in 2 MiB buddy blocks reached through
//! the direct map, up to a cap (a fraction of RAM), and gives blocks that empty again
//! back to the frame allocator ([`trim`]).
//!
//! Growing happens in the allocating context, after the heap lock was released: the
//! frames come from [`FrameAllocator::alloc_for_kernel`], which takes only a buddy lock
//! and never wakes a waiter, and the block is then claimed under the heap lock. One CPU
//! grows at a time; another that runs out meanwhile waits for it and retries. Nothing
//! grows in an interrupt handler (an allocation there just fails, as before): the code
//! it interrupted may hold a buddy lock.
//!
//! [`FrameAllocator::alloc_for_kernel`]: mm::frame::FrameAllocator::alloc_for_kernel

use crate::arch::{paging::phys_to_virt, percpu};
use core::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};
use mm::frame::{NodeId, Order, Pfn, PAGE_SIZE};
use talc::{ErrOnOom, Span, Talc, Talck};

/// The allocator, under a lock that keeps interrupts off while held (an interrupt
/// handler that allocates or frees must never find the heap held by the code it
/// interrupted).
static TALC: Talck<crate::arch::irq_lock::IrqSpinLock, ErrOnOom> = Talc::new(ErrOnOom).lock();

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;

/// Bytes the heap grows by at a time (a bigger request gets a block of its own size).
pub const GROW_CHUNK_BYTES: usize = 2 << 20;
/// Most grown blocks held at once.
const MAX_CHUNKS: usize = 1024;
/// Room `talc` needs around one allocation in a fresh block (base and chunk tags).
const CHUNK_OVERHEAD_BYTES: usize = 256;
/// Times one allocation asks for growth before it fails.
const GROW_ATTEMPTS: usize = 4;

/// Bytes of the boot arena.
static ARENA_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Bytes grown from the frame allocator and not given back.
static GROWN_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Most bytes the heap may hold (arena included).
static LIMIT_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Allocations refused because the heap was at its cap or memory ran out.
static FAILED_GROWS: AtomicUsize = AtomicUsize::new(0);
/// The CPU growing or trimming the heap, plus one (0: nobody).
static GROWER: AtomicU32 = AtomicU32::new(0);

/// One block grown from the frame allocator: its frames and the heap `talc` made of it.
#[derive(Clone, Copy)]
struct Chunk {
    pfn: Pfn,
    order: Order,
    heap_base: usize,
    heap_bytes: usize,
}

impl Chunk {
    fn span(&self) -> Span {
        Span::from_base_size(self.heap_base as *mut u8, self.heap_bytes)
    }
}

/// The grown blocks; touched only by the CPU that holds [`GROWER`].
static CHUNKS: spin::Mutex<[Option<Chunk>; MAX_CHUNKS]> = spin::Mutex::new([None; MAX_CHUNKS]);

/// The global allocator: `talc`, growing on failure.
struct KernelHeap;

// SAFETY: every block comes from `talc`, which hands out disjoint, suitably aligned
// memory from the heaps it was given; growth only adds fresh, exclusively owned memory.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        for _ in 0..GROW_ATTEMPTS {
            // SAFETY: forwarded from our caller.
            let p = unsafe { TALC.alloc(layout) };
            if !p.is_null() || !grow(layout) {
                return p;
            }
        }
        // SAFETY: as above.
        unsafe { TALC.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from our caller (the block came from `TALC`).
        unsafe { TALC.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        for _ in 0..GROW_ATTEMPTS {
            // SAFETY: forwarded from our caller; a failed realloc leaves the block alone.
            let p = unsafe { TALC.realloc(ptr, layout, new_size) };
            let Ok(wanted) = Layout::from_size_align(new_size, layout.align()) else {
                return p;
            };
            if !p.is_null() || !grow(wanted) {
                return p;
            }
        }
        // SAFETY: as above.
        unsafe { TALC.realloc(ptr, layout, new_size) }
    }
}

/// Gives the heap its boot arena `[phys, phys + size)`; it may grow to `limit` bytes in
/// all once the frame allocator is up.
///
/// # Safety
/// The range must be RAM that nothing else uses, mapped in the direct map, and this must
/// run once before the first allocation.
pub unsafe fn init(phys: u64, size: u64, limit: u64) {
    let start = phys_to_virt(phys);
    // SAFETY: the caller hands over exclusive, mapped memory.
    unsafe {
        TALC.lock()
            .claim(Span::from_base_size(start, size as usize))
            .expect("heap region too small");
    }
    ARENA_BYTES.store(size as usize, Ordering::Relaxed);
    LIMIT_BYTES.store(limit.max(size) as usize, Ordering::Relaxed);
}

/// Takes the grower role for the calling CPU: `Ok` when it got it; `Err(true)` when
/// another CPU had it (and has finished now), `Err(false)` when this CPU already has it.
fn take_grower() -> Result<(), bool> {
    let me = percpu::current_cpu().0 + 1;
    match GROWER.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Ok(()),
        Err(holder) if holder == me => Err(false),
        Err(_) => {
            while GROWER.load(Ordering::Acquire) != 0 {
                core::hint::spin_loop();
            }
            Err(true)
        }
    }
}

/// Adds a block big enough for `layout`; whether the allocation should be tried again.
fn grow(layout: Layout) -> bool {
    if percpu::in_interrupt() {
        return false;
    }
    let Some(frames) = super::frames::try_allocator() else {
        return false;
    };
    let need = layout
        .size()
        .saturating_add(layout.align())
        .saturating_add(CHUNK_OVERHEAD_BYTES);
    let Some(mut bytes) = need.max(GROW_CHUNK_BYTES).checked_next_power_of_two() else {
        return false;
    };
    // The smallest block the allocation fits in: when memory is fragmented (no free
    // 2 MiB block left while user memory fills the machine), a smaller block still
    // lets the heap grow, where insisting on 2 MiB failed a kernel allocation.
    let Some(min_bytes) = need.max(PAGE_SIZE as usize).checked_next_power_of_two() else {
        return false;
    };
    match take_grower() {
        Ok(()) => {}
        // Another CPU grew meanwhile: try again. This CPU growing already (the growth
        // path allocating, which it must not) fails the allocation instead of recursing.
        Err(retry) => return retry,
    }
    let grown = loop {
        let Some(order) = Order::new((bytes / PAGE_SIZE as usize).trailing_zeros() as u8) else {
            break false;
        };
        if grow_by(frames, order, bytes) {
            break true;
        }
        if bytes <= min_bytes {
            break false;
        }
        bytes /= 2;
    };
    GROWER.store(0, Ordering::Release);
    if !grown {
        FAILED_GROWS.fetch_add(1, Ordering::Relaxed);
    }
    grown
}

/// Claims a fresh block of `order` (`bytes` long) for the heap; the caller is the grower.
fn grow_by(frames: &mm::frame::FrameAllocator, order: Order, bytes: usize) -> bool {
    let held = ARENA_BYTES.load(Ordering::Relaxed) + GROWN_BYTES.load(Ordering::Relaxed);
    if held + bytes > LIMIT_BYTES.load(Ordering::Relaxed) {
        return false;
    }
    let mut chunks = CHUNKS.lock();
    let Some(slot) = chunks.iter_mut().find(|c| c.is_none()) else {
        return false;
    };
    let node = NodeId(percpu::try_current().map_or(0, |c| c.node));
    let Ok(pfn) = frames.alloc_for_kernel(node, order) else {
        return false;
    };
    let base = phys_to_virt(pfn.0 * PAGE_SIZE);
    // SAFETY: the frames were just taken from the frame allocator for the heap alone, and
    // the direct map covers them.
    let claimed = unsafe { TALC.lock().claim(Span::from_base_size(base, bytes)) };
    match claimed {
        Ok(span) => {
            *slot = Some(Chunk {
                pfn,
                order,
                heap_base: span.get_base_acme().map_or(0, |(b, _)| b as usize),
                heap_bytes: span.size(),
            });
            GROWN_BYTES.fetch_add(bytes, Ordering::Relaxed);
            true
        }
        Err(()) => {
            let _ = frames.free(pfn, order);
            false
        }
    }
}

/// Gives every grown block that holds no allocation back to the frame allocator (called
/// after processes are reaped, when much of the heap may have emptied). Skipped if
/// another CPU is growing.
pub fn trim() {
    if percpu::in_interrupt() {
        return;
    }
    let Some(frames) = super::frames::try_allocator() else {
        return;
    };
    if take_grower().is_err() {
        return;
    }
    let mut freed: [Option<Chunk>; 32] = [None; 32];
    let mut n = 0;
    {
        let mut chunks = CHUNKS.lock();
        let mut talc = TALC.lock();
        for slot in chunks.iter_mut() {
            if n == freed.len() {
                break;
            }
            let Some(chunk) = *slot else { continue };
            // SAFETY: `span` is what `claim` returned for this block (kept in `Chunk`),
            // and the heap lock is held across the check and the truncation.
            let empty = unsafe { talc.get_allocated_span(chunk.span()) }.is_empty();
            if empty {
                // SAFETY: as above; nothing is allocated in the block.
                unsafe { talc.truncate(chunk.span(), Span::empty()) };
                freed[n] = Some(chunk);
                n += 1;
                *slot = None;
            }
        }
    }
    let bytes: usize = freed
        .iter()
        .flatten()
        .map(|c| c.order.pages() as usize * PAGE_SIZE as usize)
        .sum();
    GROWN_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    GROWER.store(0, Ordering::Release);
    for chunk in freed.iter().flatten() {
        if frames.free(chunk.pfn, chunk.order).is_err() {
            log::error!("heap: the frame allocator refused block {:?}", chunk.pfn);
        }
    }
}

/// Whether the heap is close to its cap: less than an eighth of the cap could still be
/// allocated. Installed as `mm::kmem`'s hook: then a process's request that would grow
/// kernel state (more VMAs, a forked VMA tree) gets ENOMEM, and what is left serves
/// allocations the kernel cannot refuse. One load while the heap can still grow by
/// that much; the allocator's own count only near the cap.
pub fn near_cap() -> bool {
    let limit = LIMIT_BYTES.load(Ordering::Relaxed);
    if limit == 0 {
        return false; // no cap set yet (early boot)
    }
    let headroom = limit / 8;
    let held = ARENA_BYTES.load(Ordering::Relaxed) + GROWN_BYTES.load(Ordering::Relaxed);
    if held + headroom <= limit {
        return false;
    }
    let allocated = TALC.lock().get_counters().allocated_bytes;
    allocated + headroom > limit
}

/// The heap's figures.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    /// Bytes of the boot arena.
    pub arena_bytes: usize,
    /// Bytes grown from the frame allocator and held now.
    pub grown_bytes: usize,
    /// The cap on arena plus grown bytes.
    pub limit_bytes: usize,
    /// Bytes allocated now.
    pub allocated_bytes: usize,
    /// Growths refused (cap reached or no memory).
    pub failed_grows: usize,
}

/// The heap's figures now.
pub fn stats() -> HeapStats {
    let allocated_bytes = TALC.lock().get_counters().allocated_bytes;
    HeapStats {
        arena_bytes: ARENA_BYTES.load(Ordering::Relaxed),
        grown_bytes: GROWN_BYTES.load(Ordering::Relaxed),
        limit_bytes: LIMIT_BYTES.load(Ordering::Relaxed),
        allocated_bytes,
        failed_grows: FAILED_GROWS.load(Ordering::Relaxed),
    }
}
