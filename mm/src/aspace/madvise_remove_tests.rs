//! `MADV_REMOVE`: the file's pages go from every mapping (another address space's
//! too), private copies stay, and Linux's errors come in Linux's order.

use alloc::sync::Arc;
use alloc::vec;

use crate::aspace::tests::{anon_rw, harness, map_file, Harness};
use crate::aspace::Advice;
use crate::aspace::{AddressSpace, FileMapping, MmapRequest, PopulateStep};
use crate::errno::MmError;
use crate::fault::Access;
use crate::frame::PAGE_SIZE;
use crate::pagecache::FileObject;
use crate::pagetable::SoftPageTable;
use crate::phys::PAGE_BYTES;
use crate::vma::{MapFlags, Prot};

const RW: Prot = Prot::READ.union(Prot::WRITE);

/// A memfd of `pages` pages, page `p` full of byte `p + 1`.
fn filled(h: &Harness, pages: u64) -> Arc<FileObject> {
    let f = FileObject::new_memfd("remove", h.frames.clone());
    for p in 0..pages {
        f.write_at(p * PAGE_SIZE, &vec![p as u8 + 1; PAGE_BYTES])
            .unwrap();
    }
    f
}

fn byte_at(space: &AddressSpace<SoftPageTable>, addr: u64) -> u8 {
    let mut b = [0u8; 1];
    space.read_bytes(addr, &mut b).unwrap();
    b[0]
}

fn file_page_is(f: &FileObject, page: u64, want: u8) -> bool {
    let mut back = vec![9u8; PAGE_BYTES];
    f.read_at(page * PAGE_SIZE, &mut back).unwrap();
    back.iter().all(|&b| b == want)
}

#[test]
fn remove_punches_the_file_for_every_mapping_and_spares_private_copies() {
    let h = harness();
    let f = filled(&h, 4);
    let shared = map_file(&h.aspace, &f, 4, RW, MapFlags::SHARED, 0);
    let private = map_file(&h.aspace, &f, 4, RW, MapFlags::PRIVATE, 0);
    let other = h.sibling();
    let other_shared = map_file(&other, &f, 4, RW, MapFlags::SHARED, 0);
    for p in 0..4 {
        for (space, at) in [
            (&h.aspace, shared),
            (&other, other_shared),
            (&h.aspace, private),
        ] {
            space.fault(at + p * PAGE_SIZE, Access::Read, true).unwrap();
        }
    }
    // Page 1 of the private mapping is its own copy; page 2 still the file's.
    h.aspace.write_bytes(private + PAGE_SIZE, b"\x77").unwrap();
    let live = h.soft.live();
    let done = h
        .aspace
        .madvise_remove_with(shared + PAGE_SIZE, 2 * PAGE_SIZE, &|file, hole| {
            h.aspace.unmap_shmem_hole(file, hole);
            other.unmap_shmem_hole(file, hole);
        });
    assert!(matches!(done, Ok(PopulateStep::Done)));
    assert_eq!(h.soft.live(), live - 2, "the file's two frames are free");
    assert_eq!(f.cache().len(), 2);
    assert_eq!(f.size_bytes(), 4 * PAGE_SIZE, "the size stays");
    assert!(
        file_page_is(&f, 1, 0) && file_page_is(&f, 2, 0),
        "read(2) sees zeros"
    );
    assert!(file_page_is(&f, 0, 1) && file_page_is(&f, 3, 4));
    for p in [1, 2] {
        assert_eq!(byte_at(&h.aspace, shared + p * PAGE_SIZE), 0);
        assert_eq!(
            byte_at(&other, other_shared + p * PAGE_SIZE),
            0,
            "other process"
        );
    }
    assert_eq!(
        byte_at(&h.aspace, private + PAGE_SIZE),
        0x77,
        "the copy stays"
    );
    assert_eq!(byte_at(&h.aspace, private + PAGE_SIZE + 1), 2);
    assert_eq!(
        byte_at(&h.aspace, private + 2 * PAGE_SIZE),
        0,
        "the file's page went"
    );
    assert_eq!(byte_at(&other, other_shared + 3 * PAGE_SIZE), 4);
    // A write through the other process's mapping is the file's again.
    other
        .write_bytes(other_shared + PAGE_SIZE, b"\x55")
        .unwrap();
    assert_eq!(byte_at(&h.aspace, shared + PAGE_SIZE), 0x55);
}

#[test]
fn remove_without_the_hook_unmaps_this_address_space() {
    let h = harness();
    let f = filled(&h, 2);
    let a = map_file(&h.aspace, &f, 2, RW, MapFlags::SHARED, 0);
    let b = map_file(&h.aspace, &f, 2, Prot::READ, MapFlags::SHARED, 0);
    assert_eq!(byte_at(&h.aspace, a), 1);
    assert_eq!(byte_at(&h.aspace, b), 1);
    // A PROT_READ shared mapping of a writable descriptor may remove (VM_MAYWRITE).
    h.aspace.madvise(b, PAGE_SIZE, Advice::Remove).unwrap();
    assert_eq!(byte_at(&h.aspace, a), 0);
    assert_eq!(byte_at(&h.aspace, b), 0);
    assert_eq!(byte_at(&h.aspace, a + PAGE_SIZE), 2);
}

fn remove(h: &Harness, addr: u64, len: u64) -> Result<PopulateStep, MmError> {
    h.aspace.madvise(addr, len, Advice::Remove)
}

#[test]
fn remove_refusals_in_linux_order() {
    let h = harness();
    let f = filled(&h, 4);
    // Private file mapping, read-only descriptor: EACCES.
    let private = map_file(&h.aspace, &f, 1, RW, MapFlags::PRIVATE, 0);
    assert_eq!(
        remove(&h, private, PAGE_SIZE).unwrap_err(),
        MmError::AccessDenied
    );
    let read_only = MmapRequest {
        addr: 0,
        len: PAGE_SIZE,
        prot: Prot::READ,
        flags: MapFlags::SHARED,
        file: Some(FileMapping {
            file: f.clone(),
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    let ro = h.aspace.mmap(&read_only, false).unwrap();
    assert_eq!(
        remove(&h, ro, PAGE_SIZE).unwrap_err(),
        MmError::AccessDenied
    );
    // No file: EINVAL; locked: EINVAL before anything else.
    let anon = anon_rw(&h.aspace, 1);
    assert_eq!(
        remove(&h, anon, PAGE_SIZE).unwrap_err(),
        MmError::InvalidArgument
    );
    let locked = MmapRequest {
        flags: MapFlags::SHARED | MapFlags::LOCKED,
        prot: RW,
        file: Some(FileMapping {
            file: f.clone(),
            readable: true,
            writable: true,
        }),
        ..read_only.clone()
    };
    let l = h.aspace.mmap(&locked, false).unwrap();
    assert_eq!(
        remove(&h, l, PAGE_SIZE).unwrap_err(),
        MmError::InvalidArgument
    );
    assert!(file_page_is(&f, 0, 1), "nothing refused was punched");
    // A regular file cannot punch holes: EOPNOTSUPP.
    let disk = h.file(&vec![3u8; 2 * PAGE_BYTES]);
    let d = map_file(&h.aspace, &disk, 2, RW, MapFlags::SHARED, 0);
    assert_eq!(remove(&h, d, PAGE_SIZE).unwrap_err(), MmError::NotSupported);
    // Sealed writes: EPERM, the pages kept.
    let sealed = filled(&h, 2);
    let s = map_file(&h.aspace, &sealed, 2, RW, MapFlags::SHARED, 0);
    sealed.seal_writes_with(|| Ok::<_, ()>(true)).unwrap();
    assert_eq!(
        remove(&h, s, PAGE_SIZE).unwrap_err(),
        MmError::PermissionDenied
    );
    assert!(file_page_is(&sealed, 0, 1));
    assert_eq!(byte_at(&h.aspace, s), 1);
}

#[test]
fn remove_does_the_parts_before_a_refusal_and_a_hole_is_enomem() {
    let h = harness();
    let f = filled(&h, 8);
    // [shared 0..2][private 2..4], adjacent: the shared part is punched, then EACCES.
    let req = MmapRequest {
        addr: 0,
        len: 4 * PAGE_SIZE,
        prot: RW,
        flags: MapFlags::SHARED,
        file: Some(FileMapping {
            file: f.clone(),
            readable: true,
            writable: true,
        }),
        offset: 0,
    };
    let base = h.aspace.mmap(&req, false).unwrap();
    let private = MmapRequest {
        addr: base + 2 * PAGE_SIZE,
        len: 2 * PAGE_SIZE,
        flags: MapFlags::PRIVATE | MapFlags::FIXED,
        offset: 2 * PAGE_SIZE,
        ..req.clone()
    };
    h.aspace.mmap(&private, false).unwrap();
    assert_eq!(
        remove(&h, base, 4 * PAGE_SIZE).unwrap_err(),
        MmError::AccessDenied
    );
    assert!(
        file_page_is(&f, 0, 0) && file_page_is(&f, 1, 0),
        "punched first"
    );
    assert!(file_page_is(&f, 2, 3), "the private part was refused");
    // A hole after a shared part: the part is punched, then ENOMEM.
    let tail = MmapRequest {
        offset: 4 * PAGE_SIZE,
        ..req.clone()
    };
    let t = h.aspace.mmap(&tail, false).unwrap();
    h.aspace.munmap(t + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(remove(&h, t, 4 * PAGE_SIZE).unwrap_err(), MmError::NoMemory);
    for p in [4, 5, 7] {
        assert!(file_page_is(&f, p, 0), "page {p} punched");
    }
    assert!(file_page_is(&f, 6, 7), "the unmapped page stays");
    // Unaligned: EINVAL; nothing: Ok.
    assert_eq!(
        remove(&h, t + 1, PAGE_SIZE).unwrap_err(),
        MmError::InvalidArgument
    );
    assert!(matches!(remove(&h, t, 0), Ok(PopulateStep::Done)));
}

#[test]
fn a_planned_remove_punches_nothing_until_it_is_carried_out() {
    let h = harness();
    let f = filled(&h, 4);
    let shared = map_file(&h.aspace, &f, 4, RW, MapFlags::SHARED, 0);
    let planned = h
        .aspace
        .plan_remove(shared + PAGE_SIZE, 2 * PAGE_SIZE)
        .unwrap()
        .expect("a range to punch");
    let ranges: vec::Vec<_> = planned.address_ranges().collect();
    assert_eq!(ranges, [(shared + PAGE_SIZE, shared + 3 * PAGE_SIZE)]);
    assert!(file_page_is(&f, 1, 2) && file_page_is(&f, 2, 3), "not yet");
    assert_eq!(byte_at(&h.aspace, shared + PAGE_SIZE), 2);
    h.aspace.punch_remove(planned).unwrap();
    assert!(file_page_is(&f, 1, 0) && file_page_is(&f, 2, 0));
    assert!(file_page_is(&f, 0, 1) && file_page_is(&f, 3, 4));
    assert_eq!(byte_at(&h.aspace, shared + PAGE_SIZE), 0);
    // Nothing to plan for an empty range; the range's checks come first.
    assert!(h.aspace.plan_remove(shared, 0).unwrap().is_none());
    assert_eq!(
        h.aspace.plan_remove(shared + 1, PAGE_SIZE).err(),
        Some(MmError::InvalidArgument)
    );
    // A private mapping is planned with nothing to punch, and refused on the punch.
    let private = map_file(&h.aspace, &f, 4, RW, MapFlags::PRIVATE, 0);
    let planned = h.aspace.plan_remove(private, PAGE_SIZE).unwrap().unwrap();
    assert_eq!(planned.address_ranges().count(), 0);
    assert_eq!(
        h.aspace.punch_remove(planned).err(),
        Some(MmError::AccessDenied)
    );
}
