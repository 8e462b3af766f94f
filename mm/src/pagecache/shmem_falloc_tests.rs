//! `fallocate` on shared memory: allocation, its undo, pages past the end, and hole
//! punching through shared and private mappings.

use alloc::sync::Arc;
use alloc::vec;

use super::{FallocStep, Fallocation};
use crate::aspace::tests::{harness, map_file, Harness};
use crate::fault::Access;
use crate::frame::PAGE_SIZE;
use crate::pagecache::FileObject;
use crate::phys::soft::SoftFrames;
use crate::phys::{Frames, PAGE_BYTES};
use crate::vma::{MapFlags, Prot};

fn allocate(f: &FileObject, first: u64, end: u64) -> (Fallocation, bool) {
    let mut alloc = Fallocation::new(first, end);
    let done = match f.falloc_step(&mut alloc) {
        FallocStep::Done => true,
        FallocStep::NoMemory => false,
        FallocStep::Wait(_) => panic!("soft frames never wait"),
    };
    (alloc, done)
}

#[test]
fn allocation_fills_the_missing_pages_with_zeros_and_keeps_the_others() {
    let soft = SoftFrames::new();
    let f = FileObject::new_memfd("falloc", Frames::new(soft.clone()));
    f.write_at(PAGE_SIZE, b"kept").unwrap();
    assert_eq!(f.cache().len(), 1);
    let before = f.cache().peek(1);
    let (alloc, done) = allocate(&f, 0, 4);
    assert!(done);
    assert_eq!(alloc.added_pages(), 3, "pages 0, 2 and 3");
    assert_eq!((f.cache().len(), soft.live()), (4, 4));
    assert_eq!(f.cache().peek(1), before, "an allocated page is left alone");
    let mut back = [1u8; 4];
    f.read_at(PAGE_SIZE, &mut back).unwrap();
    assert_eq!(&back, b"kept");
    // The size is the caller's business (fallocate without KEEP_SIZE grows it).
    assert_eq!(f.size_bytes(), PAGE_SIZE + 4);
    let (again, _) = allocate(&f, 0, 4);
    assert_eq!(again.added_pages(), 0);
    drop(f);
    assert_eq!(soft.live(), 0);
}

#[test]
fn pages_past_the_end_stay_while_the_file_grows_and_go_when_it_does_not() {
    let soft = SoftFrames::new();
    let f = FileObject::new_memfd("keep", Frames::new(soft.clone()));
    f.set_size(PAGE_SIZE);
    let (_, done) = allocate(&f, 0, 8);
    assert!(done);
    assert_eq!(f.cache().len(), 8, "KEEP_SIZE: pages past the end");
    f.set_size(4 * PAGE_SIZE);
    assert_eq!(f.cache().len(), 8, "growing keeps them");
    let mut page = vec![1u8; PAGE_BYTES];
    f.read_at(3 * PAGE_SIZE, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    f.set_size(4 * PAGE_SIZE);
    assert_eq!(
        f.cache().len(),
        4,
        "a truncation to the same size drops them"
    );
    drop(f);
    assert_eq!(soft.live(), 0);
}

#[test]
fn an_allocation_out_of_memory_is_undone_without_touching_older_pages() {
    let soft = SoftFrames::with_limit(6);
    let f = FileObject::new_memfd("oom", Frames::new(soft.clone()));
    f.write_at(2 * PAGE_SIZE, b"old").unwrap();
    let (alloc, done) = allocate(&f, 0, 16);
    assert!(!done, "16 pages do not fit in 6 frames");
    assert_eq!(alloc.added_pages(), 5);
    assert_eq!(f.falloc_undo(&alloc), 5);
    assert_eq!(f.cache().len(), 1);
    assert_eq!(soft.live(), 1);
    let mut back = [0u8; 3];
    f.read_at(2 * PAGE_SIZE, &mut back).unwrap();
    assert_eq!(&back, b"old");
    // A page a mapping took up meanwhile is in use: it stays.
    let (alloc, _) = allocate(&f, 0, 16);
    let held = f.get_page(0).unwrap();
    assert_eq!(f.falloc_undo(&alloc), 4);
    assert_eq!(f.cache().peek(0), Some(held));
    f.cache().frames().put(held);
}

/// A memfd of `pages` pages, page `p` full of byte `p + 1`.
fn filled(h: &Harness, pages: u64) -> Arc<FileObject> {
    let f = FileObject::new_memfd("punch", h.frames.clone());
    for p in 0..pages {
        f.write_at(p * PAGE_SIZE, &vec![p as u8 + 1; PAGE_BYTES])
            .unwrap();
    }
    f
}

fn byte_at(h: &Harness, addr: u64) -> u8 {
    let mut b = [0u8; 1];
    h.aspace.read_bytes(addr, &mut b).unwrap();
    b[0]
}

#[test]
fn a_punched_hole_reads_zero_through_shared_mappings_and_spares_private_copies() {
    let h = harness();
    let f = filled(&h, 4);
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 4, rw, MapFlags::SHARED, 0);
    let private = map_file(&h.aspace, &f, 4, rw, MapFlags::PRIVATE, 0);
    let other = h.sibling();
    let other_shared = map_file(&other, &f, 4, rw, MapFlags::SHARED, 0);
    for p in 0..4 {
        h.aspace
            .fault(shared + p * PAGE_SIZE, Access::Read, true)
            .unwrap();
        other
            .fault(other_shared + p * PAGE_SIZE, Access::Read, true)
            .unwrap();
        h.aspace
            .fault(private + p * PAGE_SIZE, Access::Read, true)
            .unwrap();
    }
    // Page 1 of the private mapping is its own copy; page 2 still the file's.
    h.aspace.write_bytes(private + PAGE_SIZE, b"\x77").unwrap();
    let live = h.soft.live();
    // The hole: bytes 100.. of page 0, all of pages 1 and 2, 10 bytes of page 3.
    f.zero_partial(100, PAGE_SIZE - 100).unwrap();
    f.zero_partial(3 * PAGE_SIZE, 10).unwrap();
    let unmapped = core::cell::Cell::new(0);
    let punched = f.punch_range_with(1, 3, &|file, hole| {
        unmapped.set(h.aspace.unmap_shmem_hole(file, hole) + other.unmap_shmem_hole(file, hole));
    });
    assert_eq!(punched, 2);
    assert_eq!(
        unmapped.get(),
        2 + 2 + 1,
        "both shared mappings' pages 1 and 2, the private mapping's page 2 only"
    );
    assert_eq!(h.soft.live(), live - 2, "the punched frames are free");
    assert_eq!(byte_at(&h, shared + 99), 1);
    assert_eq!(byte_at(&h, shared + 100), 0, "zeroed in place");
    assert_eq!(
        byte_at(&h, private + 4095),
        0,
        "the private mapping reads the file's page 0"
    );
    assert_eq!(byte_at(&h, shared + PAGE_SIZE), 0);
    let mut b = [1u8; 1];
    other
        .read_bytes(other_shared + 2 * PAGE_SIZE, &mut b)
        .unwrap();
    assert_eq!(b[0], 0, "the other address space's mapping reads the hole");
    assert_eq!(
        byte_at(&h, private + PAGE_SIZE),
        0x77,
        "the private copy stays"
    );
    assert_eq!(byte_at(&h, private + PAGE_SIZE + 1), 2);
    assert_eq!(
        byte_at(&h, private + 2 * PAGE_SIZE),
        0,
        "the file's page was unmapped"
    );
    assert_eq!(byte_at(&h, shared + 3 * PAGE_SIZE + 9), 0);
    assert_eq!(byte_at(&h, shared + 3 * PAGE_SIZE + 10), 4);
    let mut page = vec![1u8; PAGE_BYTES];
    f.read_at(PAGE_SIZE, &mut page).unwrap();
    assert!(page.iter().all(|&x| x == 0), "read(2) sees the hole");
}

#[test]
fn a_truncation_unmaps_shared_pages_and_private_copies_past_the_end() {
    let h = harness();
    let f = filled(&h, 4);
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 4, rw, MapFlags::SHARED, 0);
    let private = map_file(&h.aspace, &f, 4, rw, MapFlags::PRIVATE, 0);
    for p in 0..4 {
        h.aspace
            .fault(shared + p * PAGE_SIZE, Access::Read, true)
            .unwrap();
    }
    // Pages 2 and 3 of the private mapping are its own copies.
    h.aspace
        .write_bytes(private + 2 * PAGE_SIZE, b"\x77")
        .unwrap();
    h.aspace
        .write_bytes(private + 3 * PAGE_SIZE, b"\x78")
        .unwrap();
    let live = h.soft.live();
    let unmapped = core::cell::Cell::new(0);
    let taken = f.truncate_pages_with(2, &|file, hole| {
        unmapped.set(h.aspace.unmap_shmem_hole(file, hole));
    });
    assert_eq!(taken, 2);
    assert_eq!(
        unmapped.get(),
        2 + 2,
        "the shared pages and the private copies"
    );
    assert_eq!(
        h.soft.live(),
        live - 4,
        "the file's frames and the copies are free"
    );
    // The size is not this call's business: set_size moves it. With the size cut,
    // every access past the end is SIGBUS in both mappings.
    f.set_size(2 * PAGE_SIZE);
    for addr in [shared + 2 * PAGE_SIZE, private + 3 * PAGE_SIZE] {
        assert!(
            matches!(
                h.aspace.fault(addr, Access::Read, true),
                Err(crate::fault::FaultError::SigBus)
            ),
            "{addr:#x} past the end"
        );
    }
    assert_eq!(
        byte_at(&h, shared + PAGE_SIZE),
        2,
        "pages before the end stay"
    );
}

#[test]
fn zeroing_a_missing_page_allocates_nothing() {
    let soft = SoftFrames::new();
    let f = FileObject::new_memfd("sparse", Frames::new(soft.clone()));
    f.set_size(4 * PAGE_SIZE);
    f.zero_partial(PAGE_SIZE + 5, 20).unwrap();
    assert_eq!((f.cache().len(), soft.live()), (0, 0));
    assert_eq!(f.punch_range(0, 4), 0);
}

#[test]
fn a_fork_child_the_walk_missed_is_repaired() {
    let h = harness();
    let f = filled(&h, 2);
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 2, rw, MapFlags::SHARED, 0);
    h.aspace
        .fault(shared + PAGE_SIZE, Access::Read, true)
        .unwrap();
    let child = crate::aspace::tests::fork(&h);
    let before = super::hole_punches();
    // The walk reaches the parent only (the child was not listed yet).
    f.punch_range_with(1, 2, &|file, hole| {
        h.aspace.unmap_shmem_hole(file, hole);
    });
    assert!(
        super::hole_punches() > before,
        "counted once the walk is over"
    );
    let mut b = [9u8; 1];
    child.read_bytes(shared + PAGE_SIZE, &mut b).unwrap();
    assert_eq!(b[0], 2, "the child's copy still maps the punched page");
    assert_eq!(child.unmap_stale_shmem(), 1);
    assert_eq!(child.unmap_stale_shmem(), 0);
    child.read_bytes(shared + PAGE_SIZE, &mut b).unwrap();
    assert_eq!(b[0], 0, "repaired: the child reads the hole");
    assert_eq!(byte_at(&h, shared + PAGE_SIZE), 0);
    h.aspace.fault(shared, Access::Read, true).unwrap();
    assert_eq!(h.aspace.unmap_stale_shmem(), 0, "current pages stay");
}

#[test]
fn a_byte_range_punch_zeroes_the_edges_and_empties_the_whole_pages() {
    let h = harness();
    let f = filled(&h, 4);
    let punched = f.punch_hole_bytes_with(100, 3 * PAGE_SIZE + 10, &|_, _| {});
    assert_eq!(punched.unwrap(), 2, "pages 1 and 2");
    let mut page = vec![9u8; PAGE_BYTES];
    f.read_at(0, &mut page).unwrap();
    assert!(page[..100].iter().all(|&b| b == 1) && page[100..].iter().all(|&b| b == 0));
    f.read_at(3 * PAGE_SIZE, &mut page).unwrap();
    assert!(page[..10].iter().all(|&b| b == 0) && page[10..].iter().all(|&b| b == 4));
    assert_eq!(f.cache().len(), 2, "pages 0 and 3 stay, zeroed in part");
    // Inside one page: zeroed in place, nothing leaves the cache.
    assert_eq!(f.punch_hole_bytes_with(5, 7, &|_, _| {}).unwrap(), 0);
    f.read_at(0, &mut page).unwrap();
    assert_eq!(&page[4..8], &[1, 0, 0, 1]);
}

#[test]
fn a_sealed_object_refuses_the_punch_and_keeps_every_byte() {
    let h = harness();
    let f = filled(&h, 2);
    let refused: Result<(), ()> = f.seal_writes_with(|| Err(()));
    assert!(refused.is_err());
    assert!(!f.writes_sealed(), "a refused seal seals nothing");
    f.seal_writes_with(|| Ok::<_, ()>(true)).unwrap();
    let r = f.punch_hole_bytes_with(10, 2 * PAGE_SIZE, &|_, _| panic!("no walk"));
    assert!(matches!(r, Err(super::PunchError::Sealed)));
    assert!(f.punch_unless_sealed(|| ()).is_none());
    let mut page = vec![0u8; PAGE_BYTES];
    f.read_at(0, &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 1));
    assert_eq!(f.cache().len(), 2);
}

/// One thread punches the pages of a file one by one, the other seals it and then
/// reads what is left: once the seal has returned, no punch gets through, so the pages
/// it read stay as they were (a punch that checked before the seal and punched after
/// it would zero one of them).
#[test]
fn no_punch_gets_through_after_the_seal_returns() {
    const PAGES: u64 = 256;
    for round in 0..20u64 {
        let soft = SoftFrames::new();
        let f = FileObject::new_memfd("race", Frames::new(soft.clone()));
        for p in 0..PAGES {
            f.write_at(p * PAGE_SIZE, &[p as u8 | 1]).unwrap();
        }
        let snapshot = |f: &FileObject| -> alloc::vec::Vec<u8> {
            (0..PAGES)
                .map(|p| {
                    let mut b = [0u8; 1];
                    f.read_at(p * PAGE_SIZE, &mut b).unwrap();
                    b[0]
                })
                .collect()
        };
        let after_seal = std::thread::scope(|s| {
            let puncher = s.spawn(|| {
                for p in 0..PAGES {
                    match f.punch_hole_bytes_with(p * PAGE_SIZE, (p + 1) * PAGE_SIZE, &|_, _| {}) {
                        Ok(_) => {}
                        Err(super::PunchError::Sealed) => return p,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                PAGES
            });
            // Let the puncher get going, more or less, depending on the round.
            for _ in 0..round * 50 {
                core::hint::spin_loop();
            }
            f.seal_writes_with(|| Ok::<_, ()>(true)).unwrap();
            let seen = snapshot(&f);
            let stopped_at = puncher.join().unwrap();
            (seen, stopped_at)
        });
        let (seen, stopped_at) = after_seal;
        assert_eq!(snapshot(&f), seen, "round {round}: a punch after the seal");
        for p in stopped_at..PAGES {
            assert_eq!(seen[p as usize], p as u8 | 1, "page {p} was never punched");
        }
    }
}

#[test]
fn mapped_vmas_counts_every_vma_of_the_file_through_split_fork_mremap_and_munmap() {
    let h = harness();
    let f = filled(&h, 8);
    assert_eq!(f.mapped_vmas(), 0);
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 8, rw, MapFlags::SHARED, 0);
    let private = map_file(&h.aspace, &f, 4, Prot::READ, MapFlags::PRIVATE, 0);
    assert_eq!(f.mapped_vmas(), 2);
    // A split in three, then merged back.
    h.aspace
        .mprotect(shared + 2 * PAGE_SIZE, 2 * PAGE_SIZE, Prot::READ)
        .unwrap();
    assert_eq!(f.mapped_vmas(), 4);
    h.aspace
        .mprotect(shared + 2 * PAGE_SIZE, 2 * PAGE_SIZE, rw)
        .unwrap();
    assert_eq!(f.mapped_vmas(), 2);
    // A fork copies both; the child's exit takes them back.
    let child = crate::aspace::tests::fork(&h);
    assert_eq!(f.mapped_vmas(), 4);
    assert!(child.maps_file(&f), "the child's tree knows the file");
    let other = filled(&h, 1);
    assert!(!child.maps_file(&other) && !h.aspace.maps_file(&other));
    drop(child);
    assert_eq!(f.mapped_vmas(), 2);
    // A move keeps one VMA; a move of half splits off one.
    let moved = h
        .aspace
        .mremap(
            private,
            4 * PAGE_SIZE,
            4 * PAGE_SIZE,
            1, /* MREMAP_MAYMOVE */
            0,
        )
        .unwrap();
    assert_eq!(f.mapped_vmas(), 2);
    let half = h
        .aspace
        .mremap(shared, 4 * PAGE_SIZE, 4 * PAGE_SIZE + PAGE_SIZE, 1, 0)
        .unwrap();
    assert_ne!(half, shared);
    assert_eq!(
        f.mapped_vmas(),
        3,
        "the moved half and the half left behind"
    );
    // A hole in the middle, then everything unmapped.
    h.aspace.munmap(moved + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(f.mapped_vmas(), 4);
    h.aspace.munmap(moved, 4 * PAGE_SIZE).unwrap();
    h.aspace.munmap(half, 5 * PAGE_SIZE).unwrap();
    assert_eq!(f.mapped_vmas(), 1);
    assert!(h.aspace.maps_file(&f));
    h.aspace
        .munmap(shared + 4 * PAGE_SIZE, 4 * PAGE_SIZE)
        .unwrap();
    assert_eq!(f.mapped_vmas(), 0);
    assert!(!h.aspace.maps_file(&f));
}

#[test]
fn a_file_no_vma_maps_is_punched_and_truncated_without_a_walk() {
    let h = harness();
    let f = filled(&h, 4);
    let walks = core::cell::Cell::new(0);
    let walk = |_: &FileObject, _: &super::PunchedPages| walks.set(walks.get() + 1);
    assert_eq!(f.punch_range_with(0, 1, &walk), 1);
    assert_eq!(f.truncate_pages_with(3, &walk), 1);
    assert_eq!(walks.get(), 0, "mapped nowhere: no walk");
    let rw = Prot::READ | Prot::WRITE;
    let shared = map_file(&h.aspace, &f, 4, rw, MapFlags::SHARED, 0);
    assert_eq!(f.punch_range_with(1, 2, &walk), 1);
    assert_eq!(walks.get(), 1, "mapped: the walk runs");
    h.aspace.munmap(shared, 4 * PAGE_SIZE).unwrap();
    assert_eq!(f.truncate_pages_with(0, &walk), 1, "page 2 was left");
    assert_eq!(walks.get(), 1);
}

#[test]
fn reading_a_hole_in_shared_memory_allocates_nothing() {
    let soft = SoftFrames::new();
    let f = FileObject::new_memfd("sparse", Frames::new(soft.clone()));
    f.set_size(64 * PAGE_SIZE);
    f.write_at(5 * PAGE_SIZE + 3, b"x").unwrap();
    let mut all = vec![1u8; 64 * PAGE_BYTES];
    assert_eq!(f.read_at(0, &mut all).unwrap(), 64 * PAGE_BYTES);
    assert_eq!(
        (f.cache().len(), soft.live()),
        (1, 1),
        "the written page only"
    );
    let written = 5 * PAGE_BYTES + 3;
    assert!(all[..written].iter().all(|&b| b == 0));
    assert_eq!(all[written], b'x');
    assert!(all[written + 1..].iter().all(|&b| b == 0));
}
