//! Whole-address-space tests over the software page table and counting frames: the
//! shared harness, copy-on-write isolation after fork, file mappings (private
//! copies, shared visibility), teardown without leaks, and the loader's flow.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use super::{AddressSpace, FileMapping, Layout, MmapRequest, Tunables};
use crate::frame::PAGE_SIZE;
use crate::pagecache::{FileId, FileObject};
use crate::pagetable::{PageTable, SoftPageTable};
use crate::phys::soft::SoftFrames;
use crate::phys::Frames;
use crate::tlb::CountingTlb;
use crate::vma::{MapFlags, Prot};

/// An address space over software parts, with handles on them.
pub(crate) struct Harness {
    pub(crate) aspace: AddressSpace<SoftPageTable>,
    pub(crate) soft: Arc<SoftFrames>,
    pub(crate) frames: Arc<Frames>,
    pub(crate) tlb: Arc<CountingTlb>,
    next_file: AtomicU64,
}

impl Harness {
    /// A regular in-memory file holding `data` (path `/test/file`).
    pub(crate) fn file(&self, data: &[u8]) -> Arc<FileObject> {
        let id = FileId(self.next_file.fetch_add(1, Ordering::Relaxed));
        FileObject::from_bytes(id, "/test/file", Vec::from(data), self.frames.clone())
    }

    /// Another address space sharing this one's frames and knobs.
    pub(crate) fn sibling(&self) -> AddressSpace<SoftPageTable> {
        AddressSpace::new(
            SoftPageTable::new(),
            self.frames.clone(),
            self.tlb.clone(),
            self.aspace.tunables().clone(),
            Layout::default(),
        )
    }
}

/// A fresh harness.
pub(crate) fn harness() -> Harness {
    harness_over(SoftFrames::new())
}

/// A fresh harness whose frames lie on `nodes` NUMA nodes.
pub(crate) fn harness_on(nodes: u64) -> Harness {
    harness_over(SoftFrames::with_nodes(nodes))
}

fn harness_over(soft: Arc<SoftFrames>) -> Harness {
    let frames = Frames::new(soft.clone());
    let tlb = Arc::new(CountingTlb::new());
    let aspace = AddressSpace::new(
        SoftPageTable::new(),
        frames.clone(),
        tlb.clone(),
        Tunables::new(),
        Layout::default(),
    );
    Harness {
        aspace,
        soft,
        frames,
        tlb,
        next_file: AtomicU64::new(100),
    }
}

/// Maps `pages` of private anonymous read-write memory anywhere.
pub(crate) fn anon_rw<P: PageTable>(aspace: &AddressSpace<P>, pages: u64) -> u64 {
    let req = MmapRequest::anon(
        0,
        pages * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
    );
    aspace.mmap(&req, false).unwrap()
}

/// Maps `pages` of shared anonymous read-write memory anywhere.
pub(crate) fn map_shared_anon<P: PageTable>(aspace: &AddressSpace<P>, pages: u64) -> u64 {
    let req = MmapRequest::anon(
        0,
        pages * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::SHARED,
    );
    aspace.mmap(&req, false).unwrap()
}

/// Maps `pages` of `file` from byte `offset` (opened read-write).
pub(crate) fn map_file<P: PageTable>(
    aspace: &AddressSpace<P>,
    file: &Arc<FileObject>,
    pages: u64,
    prot: Prot,
    flags: MapFlags,
    offset: u64,
) -> u64 {
    let fm = FileMapping {
        file: file.clone(),
        readable: true,
        writable: true,
    };
    let req = MmapRequest {
        addr: 0,
        len: pages * PAGE_SIZE,
        prot,
        flags,
        file: Some(fm),
        offset,
    };
    aspace.mmap(&req, false).unwrap()
}

/// `n` bytes of a recognisable pattern.
pub(crate) fn file_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Forks the harness's address space.
pub(crate) fn fork(h: &Harness) -> AddressSpace<SoftPageTable> {
    h.aspace.fork(SoftPageTable::new(), h.tlb.clone()).unwrap()
}

/// Polls a future that never really waits to completion.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn cow_isolation_and_no_leak_after_both_exit() {
    let h = harness();
    let a = anon_rw(&h.aspace, 8);
    h.aspace
        .write_bytes(a, &[0x11u8; 8 * PAGE_SIZE as usize])
        .unwrap();
    let child = fork(&h);
    let grandchild = child.fork(SoftPageTable::new(), h.tlb.clone()).unwrap();
    for i in 0..8u64 {
        match i % 3 {
            0 => h.aspace.write_bytes(a + i * PAGE_SIZE, &[0xaa]).unwrap(),
            1 => child.write_bytes(a + i * PAGE_SIZE, &[0xbb]).unwrap(),
            _ => grandchild.write_bytes(a + i * PAGE_SIZE, &[0xcc]).unwrap(),
        }
    }
    for i in 0..8u64 {
        let mut b = [0u8; 2];
        let expect = |who: u64| {
            if i % 3 == who {
                [[0xaa, 0x11], [0xbb, 0x11], [0xcc, 0x11]][who as usize]
            } else {
                [0x11, 0x11]
            }
        };
        h.aspace.read_bytes(a + i * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b, expect(0), "parent page {i}");
        child.read_bytes(a + i * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b, expect(1), "child page {i}");
        grandchild.read_bytes(a + i * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b, expect(2), "grandchild page {i}");
    }
    drop(child);
    drop(grandchild);
    h.aspace.teardown();
    assert_eq!(h.soft.live(), 0);
    assert_eq!(h.frames.shared_frames(), 0);
    // Still usable.
    let b = anon_rw(&h.aspace, 1);
    h.aspace.write_bytes(b, b"again").unwrap();
}

#[test]
fn demand_zero_reads_zero_everywhere() {
    let h = harness();
    let a = anon_rw(&h.aspace, 64);
    let mut buf = [0xffu8; 257];
    for i in 0..64u64 {
        h.aspace
            .read_bytes(a + i * PAGE_SIZE + 3000, &mut buf)
            .unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }
    assert_eq!(h.soft.live(), 64);
}

#[test]
fn private_file_mapping_reads_file_and_never_writes_cache() {
    let h = harness();
    let data = file_bytes(3 * PAGE_SIZE as usize);
    let f = h.file(&data);
    let a = map_file(
        &h.aspace,
        &f,
        2,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
        PAGE_SIZE,
    );
    let mut buf = std::vec![0u8; 2 * PAGE_SIZE as usize];
    h.aspace.read_bytes(a, &mut buf).unwrap();
    assert_eq!(&buf[..], &data[PAGE_SIZE as usize..]);
    h.aspace.write_bytes(a + 10, b"private!").unwrap();
    let other = h.sibling();
    let b = map_file(&other, &f, 2, Prot::READ, MapFlags::PRIVATE, PAGE_SIZE);
    let mut seen = [0u8; 8];
    other.read_bytes(b + 10, &mut seen).unwrap();
    assert_eq!(
        &seen[..],
        &data[PAGE_SIZE as usize + 10..PAGE_SIZE as usize + 18]
    );
    f.read_at(PAGE_SIZE + 10, &mut seen).unwrap();
    assert_eq!(
        &seen[..],
        &data[PAGE_SIZE as usize + 10..PAGE_SIZE as usize + 18]
    );
    h.aspace.read_bytes(a + 10, &mut seen).unwrap();
    assert_eq!(&seen, b"private!");
    drop(other);
    h.aspace.teardown();
    assert_eq!(
        h.soft.live(),
        f.cache().len(),
        "only the cache holds frames"
    );
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn shared_file_mapping_writes_are_visible_to_other_mappers() {
    let h = harness();
    let f = h.file(&file_bytes(2 * PAGE_SIZE as usize));
    let a = map_file(
        &h.aspace,
        &f,
        2,
        Prot::READ | Prot::WRITE,
        MapFlags::SHARED,
        0,
    );
    let other = h.sibling();
    let b = map_file(&other, &f, 2, Prot::READ | Prot::WRITE, MapFlags::SHARED, 0);
    h.aspace.write_bytes(a + PAGE_SIZE + 5, b"shared").unwrap();
    let mut seen = [0u8; 6];
    other.read_bytes(b + PAGE_SIZE + 5, &mut seen).unwrap();
    assert_eq!(&seen, b"shared");
    f.read_at(PAGE_SIZE + 5, &mut seen).unwrap();
    assert_eq!(&seen, b"shared", "the page cache holds the write");
    other.write_bytes(b, b"back").unwrap();
    let mut seen = [0u8; 4];
    h.aspace.read_bytes(a, &mut seen).unwrap();
    assert_eq!(&seen, b"back");
}

#[test]
fn shared_anonymous_memory_is_shared_across_fork() {
    let h = harness();
    let s = map_shared_anon(&h.aspace, 4);
    let child = fork(&h);
    child.write_bytes(s + 3 * PAGE_SIZE, b"from child").unwrap();
    let mut seen = [0u8; 10];
    h.aspace.read_bytes(s + 3 * PAGE_SIZE, &mut seen).unwrap();
    assert_eq!(&seen, b"from child");
    h.aspace.write_bytes(s, b"from parent").unwrap();
    let mut seen = [0u8; 11];
    child.read_bytes(s, &mut seen).unwrap();
    assert_eq!(&seen, b"from parent");
    drop(child);
    h.aspace.teardown();
    assert_eq!(
        h.soft.live(),
        0,
        "the shmem object died with its last mapping"
    );
}

#[test]
fn loader_flow_map_write_protect() {
    let h = harness();
    let seg = 0x40_0000;
    let req = MmapRequest::anon(
        seg,
        2 * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE | MapFlags::FIXED,
    );
    h.aspace.mmap(&req, false).unwrap();
    h.aspace.write_bytes(seg + 100, b"\x7fELF code").unwrap();
    h.aspace
        .mprotect(seg, 2 * PAGE_SIZE, Prot::READ | Prot::EXEC)
        .unwrap();
    let mut b = [0u8; 4];
    h.aspace.read_bytes(seg + 100, &mut b).unwrap();
    assert_eq!(&b, b"\x7fELF");
    assert!(h.aspace.write_bytes(seg, b"x").is_err());
    assert!(h
        .aspace
        .fault(seg, crate::fault::Access::Exec, true)
        .is_ok());
    h.aspace.check_invariants().unwrap();
}

/// Found by `fuzz --mm`: an in-place shrink checked neither that something was mapped
/// at the old address nor that the old range stayed in user space, so
/// `mremap(addr, 1 << 47, PAGE_SIZE, 0)` unmapped every mapping above `addr` and
/// returned success, and a shrink at an unmapped address succeeded.
#[test]
fn mremap_shrink_refuses_huge_old_length_and_unmapped_address() {
    use crate::errno::MmError;
    let h = harness();
    let low = anon_rw(&h.aspace, 4);
    let high = anon_rw(&h.aspace, 4);
    let (low, high) = (low.min(high), low.max(high));
    h.aspace.write_bytes(high, &[7]).unwrap();
    let r = h.aspace.mremap(low, 1 << 47, PAGE_SIZE, 0, 0);
    assert_eq!(r, Err(MmError::InvalidArgument));
    let r = h
        .aspace
        .mremap(low, u64::MAX - 2 * PAGE_SIZE, PAGE_SIZE, 0, 0);
    assert_eq!(r, Err(MmError::InvalidArgument));
    let mut b = [0u8];
    h.aspace.read_bytes(high, &mut b).unwrap();
    assert_eq!(b[0], 7, "the mapping above survived");
    assert!(h.aspace.vma_at(low).is_some() && h.aspace.vma_at(high).is_some());
    // Nothing mapped at the old address: EFAULT, as Linux's vma_lookup gives.
    h.aspace.munmap(low, PAGE_SIZE).unwrap();
    let r = h.aspace.mremap(low, 3 * PAGE_SIZE, PAGE_SIZE, 0, 0);
    assert_eq!(r, Err(MmError::BadAddress));
    assert!(
        h.aspace.vma_at(low + PAGE_SIZE).is_some(),
        "nothing was unmapped"
    );
    // A real shrink still works.
    assert_eq!(
        h.aspace
            .mremap(low + PAGE_SIZE, 3 * PAGE_SIZE, PAGE_SIZE, 0, 0),
        Ok(low + PAGE_SIZE)
    );
    assert!(h.aspace.vma_at(low + 2 * PAGE_SIZE).is_none());
}

/// A file's count of writable shared mappings follows its VMAs through splits,
/// moves, fork and teardown, and only `VM_SHARED` ones count.
#[test]
fn writable_shared_mappings_are_counted_exactly() {
    let h = harness();
    let file = FileObject::new_memfd("count", h.frames.clone());
    file.set_size(8 * PAGE_SIZE);
    let rw = Prot::READ | Prot::WRITE;
    let a = map_file(&h.aspace, &file, 4, rw, MapFlags::SHARED, 0);
    assert_eq!(file.writable_mappings(), 1);
    map_file(&h.aspace, &file, 2, rw, MapFlags::PRIVATE, 0);
    assert_eq!(
        file.writable_mappings(),
        1,
        "a private mapping does not count"
    );
    h.aspace
        .mprotect(a + PAGE_SIZE, PAGE_SIZE, Prot::READ)
        .unwrap();
    assert_eq!(file.writable_mappings(), 3, "one per VMA after the split");
    h.aspace.munmap(a, 2 * PAGE_SIZE).unwrap();
    assert_eq!(file.writable_mappings(), 1);
    let child = fork(&h);
    assert_eq!(file.writable_mappings(), 2);
    let moved = h
        .aspace
        .mremap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, 4 * PAGE_SIZE, 1, 0)
        .unwrap();
    assert_ne!(moved, 0);
    assert_eq!(file.writable_mappings(), 2);
    child.teardown();
    assert_eq!(file.writable_mappings(), 1);
    drop(child);
    h.aspace.teardown();
    assert_eq!(file.writable_mappings(), 0);
    let pin = file.pin_writable_mapping();
    assert_eq!(file.writable_mappings(), 1);
    drop(pin);
    assert_eq!(file.writable_mappings(), 0);
}
