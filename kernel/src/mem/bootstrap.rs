//! The boot-time frame source: the memory map's RAM minus what is already in use (the
//! first MiB, the kernel image, the initramfs). Page tables and the heap are carved from
//! it; what is left is handed to the NUMA frame allocator.

use crate::boot_info::{BootInfo, E820_RAM};
use x86_64::{
    structures::paging::{FrameAllocator, PhysFrame, Size4KiB},
    PhysAddr,
};

/// Most free ranges tracked.
const MAX_RANGES: usize = 128;
/// Memory below this is never handed out (BIOS data, the AP trampoline).
pub const LOW_MEMORY_END: u64 = 0x10_0000;
/// Bootstrap allocations stay below this, where the boot page tables map memory.
const EARLY_LIMIT: u64 = 1 << 32;

/// A physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Free physical ranges, sorted, page aligned.
pub struct BootstrapFrames {
    ranges: [PhysRange; MAX_RANGES],
    len: usize,
    /// Bytes handed out so far.
    pub allocated_bytes: u64,
}

impl BootstrapFrames {
    /// RAM from the memory map minus the reservations.
    pub fn new(boot: &BootInfo, reserved: &[PhysRange]) -> Self {
        let mut frames = Self {
            ranges: [PhysRange::default(); MAX_RANGES],
            len: 0,
            allocated_bytes: 0,
        };
        for region in boot.memory_map().iter().filter(|r| r.kind == E820_RAM) {
            let start = region.base.max(LOW_MEMORY_END).next_multiple_of(4096);
            let end = region.end() & !0xfff;
            if start < end && frames.len < MAX_RANGES {
                frames.ranges[frames.len] = PhysRange { start, end };
                frames.len += 1;
            }
        }
        for r in reserved {
            frames.remove(PhysRange {
                start: r.start & !0xfff,
                end: r.end.next_multiple_of(4096),
            });
        }
        frames
    }

    /// Removes `hole` from the free ranges.
    fn remove(&mut self, hole: PhysRange) {
        let mut out = [PhysRange::default(); MAX_RANGES];
        let mut n = 0;
        for r in &self.ranges[..self.len] {
            if hole.end <= r.start || hole.start >= r.end {
                out[n] = *r;
                n += 1;
                continue;
            }
            if r.start < hole.start && n < MAX_RANGES {
                out[n] = PhysRange {
                    start: r.start,
                    end: hole.start,
                };
                n += 1;
            }
            if hole.end < r.end && n < MAX_RANGES {
                out[n] = PhysRange {
                    start: hole.end,
                    end: r.end,
                };
                n += 1;
            }
        }
        self.ranges = out;
        self.len = n;
    }

    /// Takes `size` bytes aligned to `align` below 4 GiB, preferring the lowest range.
    pub fn take(&mut self, size: u64, align: u64) -> Option<u64> {
        for i in 0..self.len {
            let r = self.ranges[i];
            let start = r.start.next_multiple_of(align);
            if start + size <= r.end && start + size <= EARLY_LIMIT {
                self.remove(PhysRange {
                    start,
                    end: start + size,
                });
                self.allocated_bytes += size;
                return Some(start);
            }
        }
        None
    }

    /// The free ranges left.
    pub fn ranges(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }

    /// Total free bytes left.
    pub fn free_bytes(&self) -> u64 {
        self.ranges().iter().map(PhysRange::len).sum()
    }
}

// SAFETY: every frame returned is RAM from the memory map, removed from the free ranges so
// it is returned once.
unsafe impl FrameAllocator<Size4KiB> for BootstrapFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let phys = self.take(4096, 4096)?;
        Some(PhysFrame::containing_address(PhysAddr::new(phys)))
    }
}
