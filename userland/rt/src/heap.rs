//! The global allocator: `talc` over 1 MiB `mmap` chunks for small blocks (freed
//! blocks are reused, so a long-running program such as the fuzzer stays at the size
//! of its live data), and a mapping of its own for every large block, returned with
//! `munmap` when freed.

use crate::sync::SpinLock;
use crate::sys::mm::{mmap_anon, munmap, Prot, PAGE_SIZE};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};
use talc::{OomHandler, Span, Talc};

/// Size of one chunk the small-block heap grows by.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Allocations at least this large get a mapping of their own.
pub const LARGE_BYTES: usize = 128 << 10;

/// Grows the small-block heap by mapping another chunk when `talc` runs out.
struct MapChunk;

impl OomHandler for MapChunk {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // Small blocks are below LARGE_BYTES, so one chunk always has room for the
        // block and talc's tags around it.
        debug_assert!(layout.size() < LARGE_BYTES);
        let base = mmap_anon(CHUNK_BYTES, Prot::RW).map_err(|_| ())?;
        // SAFETY: the chunk is a fresh private mapping nothing else refers to; it
        // stays mapped for the life of the process.
        unsafe { talc.claim(Span::from_base_size(base, CHUNK_BYTES)) }.map(|_| ())
    }
}

/// The runtime's allocator; installed as `#[global_allocator]`.
pub struct Heap {
    small: SpinLock<Talc<MapChunk>>,
}

impl Heap {
    const fn new() -> Heap {
        Heap {
            small: SpinLock::new(Talc::new(MapChunk)),
        }
    }
}

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE_BYTES || layout.align() > PAGE_SIZE
}

const fn align_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

// SAFETY: small blocks come from `talc`, which hands out disjoint blocks of the
// requested size and alignment and reuses a block only after it is freed; large
// blocks are fresh page-aligned mappings. The lock serialises talc's state.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            if layout.align() > PAGE_SIZE {
                return null_mut();
            }
            return mmap_anon(align_up(layout.size(), PAGE_SIZE), Prot::RW).unwrap_or(null_mut());
        }
        // SAFETY: `layout` has a non-zero size (GlobalAlloc contract).
        unsafe { self.small.lock().malloc(layout) }
            .map(NonNull::as_ptr)
            .unwrap_or(null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: large blocks are whole mappings of this rounded size that the
            // caller no longer uses (GlobalAlloc contract).
            let _ = unsafe { munmap(ptr, align_up(layout.size(), PAGE_SIZE)) };
            return;
        }
        if let Some(block) = NonNull::new(ptr) {
            // SAFETY: `block` came from `malloc` with this layout and is no longer used.
            unsafe { self.small.lock().free(block, layout) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `layout.align()` is a valid alignment and `new_size` is non-zero
        // (GlobalAlloc::realloc contract), so the new layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let block = NonNull::new(ptr);
        if let (false, false, Some(block)) = (is_large(&layout), is_large(&new_layout), block) {
            let mut small = self.small.lock();
            // SAFETY: `block` is a live talc block of `layout`; grow gets a size at
            // least the old one and shrink a smaller one, as their contracts ask.
            return unsafe {
                if new_size >= layout.size() {
                    small
                        .grow(block, layout, new_size)
                        .map(NonNull::as_ptr)
                        .unwrap_or(null_mut())
                } else {
                    small.shrink(block, layout, new_size);
                    ptr
                }
            };
        }
        // SAFETY: forwarding the caller's contract to alloc/dealloc.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static HEAP: Heap = Heap::new();
