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

use crate::addr::VirtAddr;
use crate::fault::wait::FaultFuture;
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
    fn alloc_zeroed(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure>;
    /// One frame with undefined contents (the caller overwrites all of it).
    fn alloc(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure>;
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
    fn alloc_zeroed_placed(&self, va_hint: VirtAddr, policy: Policy) -> Result<Pfn, AllocFailure> {
        let _ = policy;
        self.alloc_zeroed(va_hint)
    }
    /// [`alloc`](Self::alloc) placed by a NUMA `policy`.
    fn alloc_placed(&self, va_hint: VirtAddr, policy: Policy) -> Result<Pfn, AllocFailure> {
        let _ = policy;
        self.alloc(va_hint)
    }
    /// The node frame `pfn` is on (`None`: the source has no nodes).
    fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        let _ = pfn;
        None
    }

    /// 512 contiguous frames (the first 2 MiB-aligned) filled with zeroes for a
    /// huge leaf at `va_hint`; each is a frame of its own for
    /// [`free`](Self::free), so a split huge page can be released page by page.
    /// `may_wait`: the caller may wait for memory (`defrag`); else a failure is at
    /// once `OutOfMemory` and the caller falls back to 4 KiB pages. Placed by
    /// `policy` (the VMA's or the task's NUMA policy). The default: no huge frames.
    fn alloc_huge_zeroed(
        &self,
        _va_hint: VirtAddr,
        _may_wait: bool,
        _policy: Policy,
    ) -> Result<Pfn, AllocFailure> {
        Err(AllocFailure::OutOfMemory)
    }

    /// Like [`alloc_huge_zeroed`](Self::alloc_huge_zeroed), contents undefined (the
    /// caller overwrites all 2 MiB: a collapse), never waiting.
    fn alloc_huge(&self, _va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        Err(AllocFailure::OutOfMemory)
    }

    /// Returns every frame of `pfns` (each from `alloc`/`alloc_zeroed`, none twice;
    /// the slice may be reordered): a teardown's batch. The default frees them one by
    /// one; the kernel gives each node its frames under one lock.
    fn free_batch(&self, pfns: &mut [Pfn]) {
        for &pfn in pfns.iter() {
            self.free(pfn);
        }
    }

    /// Free frames now, if the source knows (sizes a teardown's batches).
    fn free_pages(&self) -> Option<u64> {
        None
    }

    /// Returns the 512 frames from `head` at once (none of them shared). The
    /// default frees them one by one.
    fn free_huge(&self, head: Pfn) {
        for i in 0..crate::pagetable::HUGE_PAGES {
            self.free(Pfn(head.0 + i));
        }
    }

    /// Memory is short where the caller runs (reclaim is at work): optional
    /// allocations (readahead) are skipped. The default: never short.
    fn memory_tight(&self) -> bool {
        false
    }

    /// Zeroes the 512 frames from `head` (a collapse filling missing pages); the
    /// default writes them page by page.
    fn zero_huge(&self, head: Pfn) {
        let zero = [0u8; PAGE_BYTES];
        for i in 0..crate::pagetable::HUGE_PAGES {
            self.write(Pfn(head.0 + i), 0, &zero);
        }
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
    pub fn alloc_zeroed(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        self.source.alloc_zeroed(va_hint)
    }

    /// Whether optional allocations should be skipped ([`FrameSource::memory_tight`]).
    pub fn memory_tight(&self) -> bool {
        self.source.memory_tight()
    }

    /// A frame with undefined contents holding one reference.
    pub fn alloc(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        self.source.alloc(va_hint)
    }

    /// A zeroed frame placed by `policy`, one reference.
    pub fn alloc_zeroed_placed(
        &self,
        va_hint: VirtAddr,
        policy: Policy,
    ) -> Result<Pfn, AllocFailure> {
        self.source.alloc_zeroed_placed(va_hint, policy)
    }

    /// A new frame placed by `policy` holding a copy of `src`, one reference.
    pub fn alloc_copy_placed(
        &self,
        src: Pfn,
        va_hint: VirtAddr,
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
    pub fn alloc_copy(&self, src: Pfn, va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        let dst = self.source.alloc(va_hint)?;
        self.source.copy(dst, src);
        Ok(dst)
    }

    /// 512 zeroed frames for a huge leaf, one reference each (see
    /// [`FrameSource::alloc_huge_zeroed`]).
    pub fn alloc_huge_zeroed(
        &self,
        va_hint: VirtAddr,
        may_wait: bool,
        policy: Policy,
    ) -> Result<Pfn, AllocFailure> {
        self.source.alloc_huge_zeroed(va_hint, may_wait, policy)
    }

    /// 512 frames, contents undefined, one reference each.
    pub fn alloc_huge(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        self.source.alloc_huge(va_hint)
    }

    /// Drops one reference on each of the 512 frames from `head` (a huge leaf
    /// going away): when none is shared they go back at once, as one block.
    pub fn put_huge(&self, head: Pfn) {
        let pages = crate::pagetable::HUGE_PAGES;
        // Nobody can take a reference without holding one, so if this leaf holds
        // the only reference on every frame, none can appear meanwhile.
        if (0..pages).all(|i| self.refs.count(Pfn(head.0 + i)) == 1) {
            self.source.free_huge(head);
            return;
        }
        for i in 0..pages {
            self.put(Pfn(head.0 + i));
        }
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

    /// Drops one reference on each frame of `pfns` and frees, in one
    /// [`FrameSource::free_batch`], those whose last reference that was. Leaves `pfns`
    /// empty (its capacity kept for the next batch).
    pub fn put_batch(&self, pfns: &mut alloc::vec::Vec<Pfn>) {
        pfns.retain(|&pfn| self.refs.put(pfn));
        self.source.free_batch(pfns);
        pfns.clear();
    }

    /// Drops one reference on `pfn` without freeing it; true when that was the last
    /// (the caller disposes of the frame: a hugetlb page goes back to its pool).
    pub fn put_ref(&self, pfn: Pfn) -> bool {
        self.refs.put(pfn)
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
        let a = frames.alloc_zeroed(VirtAddr::new(0)).unwrap();
        frames.write(a, 10, b"hi");
        frames.get(a);
        assert_eq!(frames.count(a), 2);
        let b = frames.alloc_copy(a, VirtAddr::new(0)).unwrap();
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
