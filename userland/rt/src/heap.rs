//! The global allocator: a bump allocator over 1 MiB `mmap` chunks, with large
//! blocks mapped and unmapped on their own.
//!
//! Test programs allocate little and briefly, so small frees only give memory back
//! when they release the most recent allocation (which also lets a growing `Vec`
//! or `String` at the top of the heap be extended in place). Blocks of
//! [`LARGE_BYTES`] or more get their own mapping and are returned with `munmap`.

use crate::sync::SpinLock;
use crate::sys::mm::{mmap_anon, munmap, Prot, PAGE_SIZE};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

/// Size of one bump chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Allocations at least this large get a mapping of their own.
pub const LARGE_BYTES: usize = 128 << 10;

struct Bump {
    /// Next free byte of the current chunk.
    next: usize,
    /// End of the current chunk.
    end: usize,
    /// Start of the most recent allocation (0 when none can be rewound).
    last: usize,
}

/// The runtime's allocator; installed as `#[global_allocator]`.
pub struct Heap {
    bump: SpinLock<Bump>,
}

impl Heap {
    const fn new() -> Heap {
        Heap {
            bump: SpinLock::new(Bump {
                next: 0,
                end: 0,
                last: 0,
            }),
        }
    }
}

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE_BYTES || layout.align() > PAGE_SIZE
}

const fn align_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

// SAFETY: every block handed out is fresh memory of at least `layout.size()` bytes
// aligned to `layout.align()`, never handed out twice while live; the lock
// serialises the bump state.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            if layout.align() > PAGE_SIZE {
                return null_mut();
            }
            return mmap_anon(align_up(layout.size(), PAGE_SIZE), Prot::RW).unwrap_or(null_mut());
        }
        let mut b = self.bump.lock();
        let mut start = align_up(b.next, layout.align());
        if b.end == 0 || start + layout.size() > b.end {
            let Ok(chunk) = mmap_anon(CHUNK_BYTES, Prot::RW) else {
                return null_mut();
            };
            b.next = chunk as usize;
            b.end = chunk as usize + CHUNK_BYTES;
            start = align_up(b.next, layout.align());
        }
        b.last = start;
        b.next = start + layout.size();
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: large blocks are whole mappings of this rounded size that the
            // caller no longer uses (GlobalAlloc contract).
            let _ = unsafe { munmap(ptr, align_up(layout.size(), PAGE_SIZE)) };
            return;
        }
        let mut b = self.bump.lock();
        if ptr as usize == b.last && ptr as usize + layout.size() == b.next {
            b.next = b.last;
            b.last = 0;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !is_large(&layout) && new_size < LARGE_BYTES {
            let mut b = self.bump.lock();
            if ptr as usize == b.last
                && ptr as usize + layout.size() == b.next
                && b.last + new_size <= b.end
            {
                b.next = b.last + new_size;
                return ptr;
            }
        }
        // SAFETY: `layout.align()` is a valid alignment and `new_size` is non-zero
        // (GlobalAlloc::realloc contract), so the new layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
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
