//! A software [`FrameSource`] for host tests: frames are heap pages keyed by a fresh
//! frame number (never reused, so a use after free is caught), with a live count for
//! leak checks and an optional limit for out-of-memory tests.
//!
//! It panics on a double free or on touching a frame it does not hold: in a test
//! that is the bug report.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{AllocFailure, FrameSource, PAGE_BYTES};
use crate::addr::VirtAddr;
use crate::frame::Pfn;

const SHARDS: usize = 16;

type Page = Box<[u8; PAGE_BYTES]>;

#[repr(align(64))]
#[derive(Default)]
struct Shard(spin::Mutex<BTreeMap<u64, Page>>);

/// Heap-backed frames with accounting.
pub struct SoftFrames {
    next: AtomicU64,
    live: AtomicU64,
    limit: AtomicU64,
    /// NUMA nodes it pretends to have (frame `pfn` is on node `pfn % nodes`); with
    /// one, it has no nodes at all (`node_of` is `None`).
    nodes: AtomicU64,
    huge: AtomicBool,
    huge_allocs: AtomicU64,
    shards: [Shard; SHARDS],
}

impl SoftFrames {
    /// An unlimited source.
    pub fn new() -> Arc<SoftFrames> {
        SoftFrames::with_limit(u64::MAX)
    }

    /// A source that refuses allocations beyond `limit` live frames.
    pub fn with_limit(limit: u64) -> Arc<SoftFrames> {
        Arc::new(SoftFrames {
            next: AtomicU64::new(0x100),
            live: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
            nodes: AtomicU64::new(1),
            huge: AtomicBool::new(true),
            huge_allocs: AtomicU64::new(0),
            shards: core::array::from_fn(|_| Shard::default()),
        })
    }

    /// An unlimited source with `nodes` NUMA nodes, frames spread over them in turn.
    pub fn with_nodes(nodes: u64) -> Arc<SoftFrames> {
        let s = SoftFrames::new();
        s.nodes.store(nodes.max(1), Ordering::Relaxed);
        s
    }

    /// A frame on the node `policy` asks for first (the others are taken and given
    /// back until one is).
    fn take_placed(&self, policy: crate::frame::Policy) -> Result<Pfn, AllocFailure> {
        use crate::frame::Policy;
        let nodes = self.nodes.load(Ordering::Relaxed);
        let wanted = match policy {
            Policy::Preferred(n) => Some(n),
            Policy::Bind(mask) | Policy::Interleave(mask) | Policy::PreferredMany(mask) => {
                mask.first()
            }
            Policy::Local => None,
        };
        let Some(wanted) = wanted.filter(|n| nodes > 1 && u64::from(n.0) < nodes) else {
            return self.take();
        };
        let mut spare = alloc::vec::Vec::new();
        let pfn = loop {
            let pfn = self.take()?;
            if pfn.0 % nodes == u64::from(wanted.0) {
                break pfn;
            }
            spare.push(pfn);
        };
        for p in spare {
            FrameSource::free(self, p);
        }
        Ok(pfn)
    }

    /// Changes the limit of live frames.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Frames allocated and not yet freed.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::SeqCst)
    }

    /// Whether `pfn` is currently allocated.
    pub fn is_live(&self, pfn: Pfn) -> bool {
        self.shard(pfn).lock().contains_key(&pfn.0)
    }

    fn shard(&self, pfn: Pfn) -> &spin::Mutex<BTreeMap<u64, Page>> {
        &self.shards[pfn.0 as usize % SHARDS].0
    }

    fn with_page<R>(&self, pfn: Pfn, f: impl FnOnce(&mut [u8; PAGE_BYTES]) -> R) -> R {
        let mut shard = self.shard(pfn).lock();
        match shard.get_mut(&pfn.0) {
            Some(page) => f(page),
            None => panic!("soft frames: {pfn} is not allocated"),
        }
    }

    fn take(&self) -> Result<Pfn, AllocFailure> {
        self.take_run(1)
    }

    /// `pages` consecutive frames (aligned to `pages`), zeroed.
    fn take_run(&self, pages: u64) -> Result<Pfn, AllocFailure> {
        let limit = self.limit.load(Ordering::SeqCst);
        if self
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n + pages <= limit).then_some(n + pages)
            })
            .is_err()
        {
            return Err(AllocFailure::OutOfMemory);
        }
        let first = if pages == 1 {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            // Frame numbers are never reused: skip to the next aligned run.
            let mut first = 0;
            let _ = self
                .next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    first = n.next_multiple_of(pages);
                    Some(first + pages)
                });
            first
        };
        for i in 0..pages {
            let pfn = Pfn(first + i);
            self.shard(pfn)
                .lock()
                .insert(pfn.0, Box::new([0u8; PAGE_BYTES]));
        }
        self.huge_allocs
            .fetch_add(u64::from(pages > 1), Ordering::Relaxed);
        Ok(Pfn(first))
    }

    /// Allows or refuses huge (512-frame) allocations (allowed by default).
    pub fn set_huge(&self, allowed: bool) {
        self.huge.store(allowed, Ordering::SeqCst);
    }

    /// Huge allocations made so far.
    pub fn huge_allocs(&self) -> u64 {
        self.huge_allocs.load(Ordering::Relaxed)
    }
}

impl FrameSource for SoftFrames {
    fn alloc_zeroed(&self, _va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        self.take()
    }

    fn alloc(&self, _va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        let pfn = self.take()?;
        // Undefined contents: make them visibly not zero.
        self.with_page(pfn, |p| p.fill(0xa5));
        Ok(pfn)
    }

    fn alloc_huge_zeroed(
        &self,
        _va_hint: VirtAddr,
        _may_wait: bool,
        _policy: crate::frame::Policy,
    ) -> Result<Pfn, AllocFailure> {
        if !self.huge.load(Ordering::SeqCst) {
            return Err(AllocFailure::OutOfMemory);
        }
        self.take_run(crate::pagetable::HUGE_PAGES)
    }

    fn alloc_huge(&self, va_hint: VirtAddr) -> Result<Pfn, AllocFailure> {
        let head = self.alloc_huge_zeroed(va_hint, false, crate::frame::Policy::Local)?;
        for i in 0..crate::pagetable::HUGE_PAGES {
            self.with_page(Pfn(head.0 + i), |p| p.fill(0xa5));
        }
        Ok(head)
    }

    fn free(&self, pfn: Pfn) {
        if self.shard(pfn).lock().remove(&pfn.0).is_none() {
            panic!("soft frames: double or foreign free of {pfn}");
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
    }

    fn copy(&self, dst: Pfn, src: Pfn) {
        let mut tmp = [0u8; PAGE_BYTES];
        self.with_page(src, |p| tmp.copy_from_slice(&p[..]));
        self.with_page(dst, |p| p.copy_from_slice(&tmp));
    }

    fn read(&self, pfn: Pfn, offset: usize, buf: &mut [u8]) {
        self.with_page(pfn, |p| buf.copy_from_slice(&p[offset..offset + buf.len()]));
    }

    fn write(&self, pfn: Pfn, offset: usize, data: &[u8]) {
        self.with_page(pfn, |p| {
            p[offset..offset + data.len()].copy_from_slice(data)
        });
    }

    fn alloc_zeroed_placed(
        &self,
        _va_hint: VirtAddr,
        policy: crate::frame::Policy,
    ) -> Result<Pfn, AllocFailure> {
        self.take_placed(policy)
    }

    fn alloc_placed(
        &self,
        _va_hint: VirtAddr,
        policy: crate::frame::Policy,
    ) -> Result<Pfn, AllocFailure> {
        let pfn = self.take_placed(policy)?;
        self.with_page(pfn, |p| p.fill(0xa5));
        Ok(pfn)
    }

    fn node_of(&self, pfn: Pfn) -> Option<crate::frame::NodeId> {
        let nodes = self.nodes.load(Ordering::Relaxed);
        (nodes > 1).then(|| crate::frame::NodeId((pfn.0 % nodes) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_read_write_free_and_limit() {
        let s = SoftFrames::with_limit(2);
        let a = s.alloc_zeroed(VirtAddr::new(0)).unwrap();
        let b = s.alloc(VirtAddr::new(0)).unwrap();
        assert!(matches!(
            s.alloc(VirtAddr::new(0)),
            Err(AllocFailure::OutOfMemory)
        ));
        let mut buf = [1u8; 4];
        s.read(a, 4092, &mut buf);
        assert_eq!(buf, [0; 4]);
        s.read(b, 0, &mut buf);
        assert_eq!(buf, [0xa5; 4]);
        s.write(a, 0, b"abcd");
        s.copy(b, a);
        s.read(b, 0, &mut buf);
        assert_eq!(&buf, b"abcd");
        s.free(a);
        assert!(!s.is_live(a));
        assert_eq!(s.live(), 1);
        s.free(b);
        assert_eq!(s.live(), 0);
    }

    #[test]
    #[should_panic(expected = "double or foreign free")]
    fn double_free_panics() {
        let s = SoftFrames::new();
        let a = s.alloc(VirtAddr::new(0)).unwrap();
        s.free(a);
        s.free(a);
    }
}
