//! Physical frames as the address-space code sees them: the [`FrameSource`] the kernel
//! implements (allocate, free, copy, read and write a frame through its direct map),
//! and [`Frames`], which adds the per-frame reference counts ([`FrameRefs`]) that
//! copy-on-write and the page cache share.
//!
//! Ownership rule: every reference is one of (a) a present page-table entry mapping
//! the frame, (b) the page cache's slot holding it. A frame is returned to its source
//! when the last reference is [`put`](Frames::put).

mod refs;
pub mod soft;

pub use refs::FrameRefs;

use alloc::sync::Arc;

use crate::fault::FaultFuture;
use crate::frame::{NodeId, Pfn, Policy, PAGE_SIZE};

/// Bytes in a page, as a `usize` for buffers.
pub const PAGE_BYTES: usize = PAGE_SIZE as usize;

/// Why a frame could not be allocated.
#[derive(Debug)]
pub enum AllocFailure {
    /// No memory, and waiting would not help (the fault fails with OOM).
    OutOfMemory,
    /// No memory now; the future completes when retrying may succeed.
    Wait(FaultFuture),
}

/// The kernel's physical memory as the address-space code uses it. The kernel
/// implements it over `mm::frame::FrameAllocator` and its direct map; host tests use
/// [`soft::SoftFrames`]. Every method may be called from many CPUs at once.
pub trait FrameSource: Send + Sync {
    /// One frame filled with zeroes, to back user address `va_hint` (a placement hint
    /// for NUMA policies).
    fn alloc_zeroed(&self, va_hint: u64) -> Result<Pfn, AllocFailure>;
    /// One frame with undefined contents (the caller overwrites all of it).
    fn alloc(&self, va_hint: u64) -> Result<Pfn, AllocFailure>;
    /// Returns a frame from `alloc`/`alloc_zeroed`.
    fn free(&self, pfn: Pfn);
    /// Copies the whole of frame `src` into frame `dst`.
    fn copy(&self, dst: Pfn, src: Pfn);
    /// Reads `buf.len()` bytes of frame `pfn` from `offset` (within the frame).
    fn read(&self, pfn: Pfn, offset: usize, buf: &mut [u8]);
    /// Writes `data` into frame `pfn` at `offset` (within the frame).
    fn write(&self, pfn: Pfn, offset: usize, data: &[u8]);
    /// [`alloc_zeroed`](Self::alloc_zeroed) placed by a NUMA `policy` (a source
    /// without nodes ignores it).
    fn alloc_zeroed_placed(&self, va_hint: u64, policy: Policy) -> Result<Pfn, AllocFailure> {
        let _ = policy;
        self.alloc_zeroed(va_hint)
    }
    /// [`alloc`](Self::alloc) placed by a NUMA `policy`.
    fn alloc_placed(&self, va_hint: u64, policy: Policy) -> Result<Pfn, AllocFailure> {
        let _ = policy;
        self.alloc(va_hint)
    }
    /// The node frame `pfn` is on (`None`: the source has no nodes).
    fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        let _ = pfn;
        None
    }
}

/// The frame source plus reference counts: what every address space and page cache of
/// the system shares (one instance, behind an `Arc`).
pub struct Frames {
    source: Arc<dyn FrameSource>,
    refs: FrameRefs,
}

impl Frames {
    /// Wraps `source`.
    pub fn new(source: Arc<dyn FrameSource>) -> Arc<Frames> {
        Arc::new(Frames {
            source,
            refs: FrameRefs::new(),
        })
    }

    /// [`Frames::new`] with the counts of frames below `pfn_limit` in a dense array
    /// (one atomic per frame: what the kernel uses, with every RAM frame below the
    /// limit); falls back to the striped map if the array cannot be allocated.
    pub fn with_dense_refs(source: Arc<dyn FrameSource>, pfn_limit: u64) -> Arc<Frames> {
        Arc::new(Frames {
            source,
            refs: FrameRefs::try_with_dense_limit(pfn_limit).unwrap_or_default(),
        })
    }

    /// The underlying source.
    pub fn source(&self) -> &dyn FrameSource {
        &*self.source
    }

    /// A zeroed frame holding one reference.
    pub fn alloc_zeroed(&self, va_hint: u64) -> Result<Pfn, AllocFailure> {
        self.source.alloc_zeroed(va_hint)
    }

    /// A frame with undefined contents holding one reference.
    pub fn alloc(&self, va_hint: u64) -> Result<Pfn, AllocFailure> {
        self.source.alloc(va_hint)
    }

    /// A zeroed frame placed by `policy`, one reference.
    pub fn alloc_zeroed_placed(&self, va_hint: u64, policy: Policy) -> Result<Pfn, AllocFailure> {
        self.source.alloc_zeroed_placed(va_hint, policy)
    }

    /// A new frame placed by `policy` holding a copy of `src`, one reference.
    pub fn alloc_copy_placed(
        &self,
        src: Pfn,
        va_hint: u64,
        policy: Policy,
    ) -> Result<Pfn, AllocFailure> {
        let dst = self.source.alloc_placed(va_hint, policy)?;
        self.source.copy(dst, src);
        Ok(dst)
    }

    /// The node frame `pfn` is on, if the source knows.
    pub fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        self.source.node_of(pfn)
    }

    /// A new frame holding a copy of `src`, one reference.
    pub fn alloc_copy(&self, src: Pfn, va_hint: u64) -> Result<Pfn, AllocFailure> {
        let dst = self.source.alloc(va_hint)?;
        self.source.copy(dst, src);
        Ok(dst)
    }

    /// Takes one more reference on `pfn`.
    pub fn get(&self, pfn: Pfn) {
        self.refs.get(pfn);
    }

    /// Drops one reference on `pfn`, freeing the frame with the last; true if freed.
    pub fn put(&self, pfn: Pfn) -> bool {
        let freed = self.refs.put(pfn);
        if freed {
            self.source.free(pfn);
        }
        freed
    }

    /// The number of references on `pfn` (1 for a frame nobody shares).
    pub fn count(&self, pfn: Pfn) -> u32 {
        self.refs.count(pfn)
    }

    /// Frames with more than one reference (a statistic, and a leak check in tests).
    pub fn shared_frames(&self) -> usize {
        self.refs.shared_frames()
    }

    /// Reads bytes of a frame.
    pub fn read(&self, pfn: Pfn, offset: usize, buf: &mut [u8]) {
        self.source.read(pfn, offset, buf);
    }

    /// Writes bytes into a frame.
    pub fn write(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        self.source.write(pfn, offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::soft::SoftFrames;
    use super::*;

    #[test]
    fn last_put_frees() {
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let a = frames.alloc_zeroed(0).unwrap();
        frames.write(a, 10, b"hi");
        frames.get(a);
        assert_eq!(frames.count(a), 2);
        let b = frames.alloc_copy(a, 0).unwrap();
        let mut buf = [0u8; 2];
        frames.read(b, 10, &mut buf);
        assert_eq!(&buf, b"hi");
        assert!(!frames.put(a));
        assert_eq!(frames.count(a), 1);
        assert!(frames.put(a));
        assert!(frames.put(b));
        assert_eq!(soft.live(), 0);
        assert_eq!(frames.shared_frames(), 0);
    }
}
