//! The kernel heap (`#[global_allocator]`): a `talc` allocator over one physically
//! contiguous region reached through the direct map.

use crate::arch::paging::phys_to_virt;
use talc::{ErrOnOom, Span, Talc, Talck};

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Gives the heap `[phys, phys + size)`.
///
/// # Safety
/// The range must be RAM that nothing else uses, mapped in the direct map, and this must
/// run once before the first allocation.
pub unsafe fn init(phys: u64, size: u64) {
    let start = phys_to_virt(phys);
    // SAFETY: the caller hands over exclusive, mapped memory.
    unsafe {
        HEAP.lock()
            .claim(Span::from_base_size(start, size as usize))
            .expect("heap region too small");
    }
}
