//! Zeroing of frames handed to userland. The allocator cannot touch memory, so the
//! kernel supplies a [`FrameZeroer`] (through its direct map); tests supply a fake.

use super::types::{PageCount, Pfn};

/// Clears physical frames. Called exactly once per zeroed allocation, for the whole
/// block, outside every allocator lock.
pub trait FrameZeroer {
    /// Fills `pages` frames starting at `first` with zeroes and returns the
    /// nanoseconds it took by the implementation's clock (0 if it has none); the
    /// allocator adds both to its statistics.
    fn zero_frames(&self, first: Pfn, pages: PageCount) -> u64;
}
