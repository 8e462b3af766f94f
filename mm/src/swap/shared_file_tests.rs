//! Shared mappings of disk files under reclaim: the clock hand ages their entries and
//! unmaps the cold ones, the page cache then drops the pages no mapping holds, and a
//! later access reads them again, identical; referenced pages, locked mappings, busy
//! entries and pages the kernel holds stay; without swap the hand passes over the
//! disk-file mappings only. Over frames, a RAM disk holding the file, and the
//! software page table.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::super::tests::{swap_on, Inline};
use super::super::ScanBudget;
use crate::addr::VirtAddr;
use crate::aspace::tests::{block_on, harness, Harness};
use crate::aspace::{FileMapping, MmapRequest};
use crate::block::{BlockDevice, RamDisk};
use crate::fault::{Access, FaultResolved};
use crate::frame::PAGE_SIZE;
use crate::pagecache::blockmap::{BlockMap, Extent};
use crate::pagecache::{DiskPages, FileId, FileInfo, FileObject, FAULT_READ_PAGES};
use crate::pagetable::{PageTable, PteFlags};
use crate::phys::PAGE_BYTES;
use crate::vma::{MapFlags, Prot};

/// Pages of the big test file.
const FILE_PAGES: u64 = 512;
/// Frames the big test may use: under a third of the file.
const RAM_FRAMES: u64 = 160;
/// Room kept free before each access: one fault's read-around.
const HEADROOM: u64 = FAULT_READ_PAGES + 8;
/// Reclaim rounds one access may wait for before the test calls it out of memory
/// (a lap of the hand over the resident pages takes three).
const MAX_ROUNDS: usize = 32;

/// Byte `i` of the file's page `page`.
fn byte_of(page: u64, i: usize) -> u8 {
    (page as usize * 97 + i * 31 + (i >> 8)) as u8 ^ 0x3c
}

fn page_bytes(page: u64) -> Vec<u8> {
    (0..PAGE_BYTES).map(|i| byte_of(page, i)).collect()
}

/// A file of `pages` pages on a RAM disk (at device page 1 on, behind a page of
/// other data), read by I/O tasks run at once: a disk file as ext4 gives one.
fn disk_file(h: &Harness, pages: u64) -> Arc<FileObject> {
    let sectors_per_page = PAGE_SIZE / 512;
    let disk = Arc::new(RamDisk::new((pages + 1) * sectors_per_page));
    let mut bytes = vec![0xffu8; PAGE_BYTES];
    for p in 0..pages {
        bytes.extend(page_bytes(p));
    }
    block_on(disk.write(0, bytes.into_boxed_slice())).unwrap();
    let map = BlockMap::new(
        PAGE_SIZE,
        vec![Extent {
            logical: 0,
            physical: 1,
            blocks: pages,
        }],
    )
    .unwrap();
    let info = FileInfo {
        path: String::from("/mnt/shared.bin"),
        dev_major: 254,
        dev_minor: 0,
        inode: 12,
    };
    FileObject::new_async(
        FileId(12),
        info,
        pages * PAGE_SIZE,
        Arc::new(DiskPages::new(disk, map)),
        Arc::new(Inline),
        h.frames.clone(),
    )
}

/// Maps `pages` of `file` `MAP_SHARED` from a descriptor opened read-only (what a
/// read-only filesystem gives), with `extra` flags.
fn map_shared_ro(h: &Harness, file: &Arc<FileObject>, pages: u64, extra: MapFlags) -> u64 {
    let req = MmapRequest {
        addr: 0,
        len: pages * PAGE_SIZE,
        prot: Prot::READ,
        flags: MapFlags::SHARED | extra,
        file: Some(FileMapping {
            file: file.clone(),
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    h.aspace.mmap(&req, false).unwrap()
}

/// One reclaim round as the kernel's: the clock hand over the address space (at
/// most `scan` entries), then the file's cache drops what no mapping holds. Returns
/// the frames freed. Nothing may go to swap: the mapping holds file pages only.
fn round(h: &Harness, file: &FileObject, cursor: &mut u64, scan: usize) -> usize {
    let mut budget = ScanBudget {
        scan,
        take: usize::MAX,
        freed: 0,
    };
    let mut out = Vec::new();
    h.aspace
        .reclaim_scan(cursor, &mut budget, &|_| true, &mut out);
    assert!(out.is_empty(), "a page-cache page went to swap");
    budget.freed + file.shrink(usize::MAX, &|_| true)
}

/// Reads the whole mapping at `a` page by page, checking every byte, with reclaim
/// rounds keeping the frames in use under [`RAM_FRAMES`] as kswapd would.
fn read_through(h: &Harness, file: &FileObject, a: u64, cursor: &mut u64) {
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..FILE_PAGES {
        let mut rounds = 0;
        while h.soft.live() + HEADROOM > RAM_FRAMES {
            round(h, file, cursor, 64);
            rounds += 1;
            assert!(
                rounds <= MAX_ROUNDS,
                "out of memory at page {p}: reclaim frees nothing ({} frames live)",
                h.soft.live()
            );
        }
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
        assert!(back == page_bytes(p), "page {p} differs");
    }
}

fn read_twice(with_swap: bool) {
    let h = harness();
    let swap = with_swap.then(|| swap_on(&h, 64, Arc::new(Inline)));
    let f = disk_file(&h, FILE_PAGES);
    // The hard limit too: an allocation past it fails.
    h.soft.set_limit(RAM_FRAMES);
    let a = map_shared_ro(&h, &f, FILE_PAGES, MapFlags::empty());
    let mut cursor = 0;
    read_through(&h, &f, a, &mut cursor);
    assert!(
        f.cache().len() < FILE_PAGES,
        "the file cannot all be resident"
    );
    assert!(
        f.cache().peek(0).is_none(),
        "the first page was dropped, so the second pass reads it from the disk"
    );
    read_through(&h, &f, a, &mut cursor);
    if let Some(swap) = swap {
        assert_eq!(swap.totals(), (63, 63), "no slot used");
    }
    h.aspace.teardown();
    let cached = f.cache().len();
    assert_eq!(f.drop_clean(), cached, "no page held once unmapped");
    drop(f);
    assert_eq!(h.soft.live(), 0, "no frame leaked");
}

#[test]
fn a_shared_mapping_larger_than_memory_reads_twice_identical_without_swap() {
    read_twice(false);
}

#[test]
fn a_shared_mapping_larger_than_memory_reads_twice_identical_with_swap() {
    read_twice(true);
}

/// A small file mapped shared and read whole: (the file, the mapping).
fn small(h: &Harness, pages: u64, extra: MapFlags) -> (Arc<FileObject>, u64) {
    let f = disk_file(h, pages);
    let a = map_shared_ro(h, &f, pages, extra);
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..pages {
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
    }
    (f, a)
}

fn mapped(h: &Harness, va: u64) -> Option<crate::frame::Pfn> {
    h.aspace
        .page_table()
        .query(VirtAddr::new(va))
        .map(|pte| pte.pfn)
}

#[test]
fn referenced_pages_survive_and_cold_ones_are_dropped_then_read_back() {
    let h = harness();
    let (f, a) = small(&h, 8, MapFlags::empty());
    let before: Vec<_> = (0..8)
        .map(|p| mapped(&h, a + p * PAGE_SIZE).unwrap())
        .collect();
    // The first pass finds every page referenced: it only clears the bits.
    let mut cursor = 0;
    assert_eq!(round(&h, &f, &mut cursor, usize::MAX), 0);
    assert_eq!(f.cache().len(), 8);
    // Pages 0..4 used again since.
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..4 {
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
    }
    let (flushes, flushed) = (h.tlb.flushes(), h.tlb.pages());
    assert_eq!(round(&h, &f, &mut cursor, usize::MAX), 4);
    assert_eq!(h.tlb.flushes(), flushes + 1, "one flush for the batch");
    assert_eq!(h.tlb.pages(), flushed + 4);
    for p in 0..8 {
        let now = mapped(&h, a + p * PAGE_SIZE);
        if p < 4 {
            assert_eq!(now, Some(before[p as usize]), "referenced page {p} stays");
        } else {
            assert_eq!(now, None, "cold page {p} unmapped");
            assert!(f.cache().peek(p).is_none(), "and dropped from the cache");
            assert_eq!(
                h.aspace
                    .page_table()
                    .query_swap(VirtAddr::new(a + p * PAGE_SIZE)),
                None
            );
        }
    }
    assert_eq!(h.soft.live(), 4);
    // Read back from the disk, identical.
    let reads = f.reads_started();
    block_on(h.aspace.handle_fault(a + 5 * PAGE_SIZE, Access::Read, true)).unwrap();
    assert_eq!(
        f.reads_started(),
        reads + 1,
        "one read of the dropped pages"
    );
    for p in 0..8 {
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
        assert!(back == page_bytes(p), "page {p} differs");
    }
    h.aspace.teardown();
    drop(f);
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn a_page_mapped_twice_is_dropped_only_once_both_entries_go() {
    let h = harness();
    let (f, a) = small(&h, 4, MapFlags::empty());
    let other = h.sibling();
    let req = MmapRequest {
        addr: 0,
        len: 4 * PAGE_SIZE,
        prot: Prot::READ,
        flags: MapFlags::SHARED,
        file: Some(FileMapping {
            file: f.clone(),
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    let b = other.mmap(&req, false).unwrap();
    let mut back = vec![0u8; PAGE_BYTES];
    other.read_bytes(b, &mut back).unwrap();
    let mut cursor = 0;
    round(&h, &f, &mut cursor, usize::MAX);
    assert_eq!(
        round(&h, &f, &mut cursor, usize::MAX),
        3,
        "page 0 is still mapped by the other"
    );
    assert!(f.cache().peek(0).is_some());
    assert_eq!(mapped(&h, a), None);
    other.read_bytes(b, &mut back).unwrap();
    assert!(back == page_bytes(0));
    other.teardown();
    assert_eq!(f.drop_clean(), 1, "no mapping left");
    h.aspace.teardown();
}

#[test]
fn locked_mappings_busy_entries_and_held_pages_stay() {
    let h = harness();
    // mlock: the hand never ages the VMA.
    let (locked_file, locked) = small(&h, 4, MapFlags::empty());
    h.aspace
        .mlock(
            locked,
            4 * PAGE_SIZE,
            false,
            crate::aspace::LockLimit::Unlimited,
        )
        .unwrap();
    // MAP_LOCKED too.
    let (map_locked_file, map_locked) = small(&h, 4, MapFlags::LOCKED);
    let (f, a) = small(&h, 4, MapFlags::empty());
    // Page 1's entry is busy (the kernel copies through it); page 2's frame is held
    // by the kernel (a read in progress) when the hand comes.
    let busy = VirtAddr::new(a + PAGE_SIZE);
    let held = mapped(&h, a + 2 * PAGE_SIZE).unwrap();
    h.frames.get(held);
    let mut cursor = 0;
    for _ in 0..3 {
        h.aspace
            .page_table()
            .update_flags(busy, &mut |fl| fl - PteFlags::ACCESSED);
        h.aspace
            .page_table()
            .update_flags(busy, &mut |fl| fl | PteFlags::BUSY);
        round(&h, &f, &mut cursor, usize::MAX);
        locked_file.shrink(usize::MAX, &|_| true);
        map_locked_file.shrink(usize::MAX, &|_| true);
        h.aspace
            .page_table()
            .update_flags(busy, &mut |fl| fl - PteFlags::BUSY);
    }
    for (file, base) in [(&locked_file, locked), (&map_locked_file, map_locked)] {
        for p in 0..4 {
            assert!(
                mapped(&h, base + p * PAGE_SIZE).is_some(),
                "locked page {p} mapped"
            );
            assert!(file.cache().peek(p).is_some(), "locked page {p} cached");
        }
    }
    assert!(mapped(&h, a + PAGE_SIZE).is_some(), "the busy entry stays");
    assert_eq!(mapped(&h, a), None);
    assert_eq!(mapped(&h, a + 3 * PAGE_SIZE), None);
    // The held page was unmapped, but the cache keeps it while the kernel holds it:
    // the next fault maps the same frame.
    assert_eq!(f.cache().peek(2), Some(held));
    assert_eq!(
        h.aspace
            .fault(a + 2 * PAGE_SIZE, Access::Read, true)
            .unwrap(),
        FaultResolved::FileMinor
    );
    assert_eq!(mapped(&h, a + 2 * PAGE_SIZE), Some(held));
    h.frames.put(held);
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..4 {
        h.aspace.read_bytes(a + p * PAGE_SIZE, &mut back).unwrap();
        assert!(back == page_bytes(p), "page {p} differs");
    }
    h.aspace.teardown();
    drop((f, locked_file, map_locked_file));
    assert_eq!(h.soft.live(), 0);
}

#[test]
fn shared_writable_and_in_memory_file_mappings_are_left_alone() {
    let h = harness();
    // A shared mapping through a writable descriptor (VM_SHARED): with no writeback,
    // a page of it could hold the only copy of a write, so the hand leaves it mapped.
    let f = disk_file(&h, 4);
    let w = crate::aspace::tests::map_file(&h.aspace, &f, 4, Prot::READ, MapFlags::SHARED, 0);
    // A shared mapping of a file in memory (an initramfs file): its cache drops
    // nothing, so unmapping would only cost faults.
    let mem = h.file(&page_bytes(0));
    let m = map_shared_ro(&h, &mem, 1, MapFlags::empty());
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..4 {
        h.aspace.read_bytes(w + p * PAGE_SIZE, &mut back).unwrap();
    }
    h.aspace.read_bytes(m, &mut back).unwrap();
    let mut cursor = 0;
    for _ in 0..3 {
        assert_eq!(round(&h, &f, &mut cursor, usize::MAX), 0);
    }
    for p in 0..4 {
        assert!(mapped(&h, w + p * PAGE_SIZE).is_some());
    }
    assert!(mapped(&h, m).is_some());
    h.aspace.teardown();
}

#[test]
fn without_swap_the_hand_passes_over_disk_file_mappings_only() {
    let h = harness();
    let f = disk_file(&h, 4);
    let shared = map_shared_ro(&h, &f, 4, MapFlags::empty());
    let private = crate::aspace::tests::map_file(
        &h.aspace,
        &f,
        4,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
        0,
    );
    let anon = crate::aspace::tests::anon_rw(&h.aspace, 2);
    let mut back = vec![0u8; PAGE_BYTES];
    for p in 0..4 {
        h.aspace
            .read_bytes(shared + p * PAGE_SIZE, &mut back)
            .unwrap();
    }
    for p in 0..3 {
        h.aspace
            .read_bytes(private + p * PAGE_SIZE, &mut back)
            .unwrap();
    }
    // Page 3 of the private mapping is a private copy, and the anonymous pages are
    // anonymous memory: with no swap they have nowhere to go.
    h.aspace
        .write_bytes(private + 3 * PAGE_SIZE, b"copy")
        .unwrap();
    h.aspace.write_bytes(anon, b"anon").unwrap();
    h.aspace.write_bytes(anon + PAGE_SIZE, b"more").unwrap();
    let mut cursor = 0;
    round(&h, &f, &mut cursor, usize::MAX);
    round(&h, &f, &mut cursor, usize::MAX);
    for p in 0..4 {
        assert_eq!(mapped(&h, shared + p * PAGE_SIZE), None, "shared page {p}");
    }
    for p in 0..3 {
        assert_eq!(
            mapped(&h, private + p * PAGE_SIZE),
            None,
            "private page {p}"
        );
    }
    assert!(f.cache().is_empty(), "every page-cache page dropped");
    // Not even aged: their accessed bits are as the writes left them.
    for va in [private + 3 * PAGE_SIZE, anon, anon + PAGE_SIZE] {
        let pte = h.aspace.page_table().query(VirtAddr::new(va)).unwrap();
        assert!(pte.flags.contains(PteFlags::ACCESSED), "{va:#x} untouched");
    }
    for p in 0..4 {
        h.aspace
            .read_bytes(shared + p * PAGE_SIZE, &mut back)
            .unwrap();
        assert!(back == page_bytes(p), "shared page {p} differs");
    }
    for p in 0..3 {
        h.aspace
            .read_bytes(private + p * PAGE_SIZE, &mut back)
            .unwrap();
        assert!(back == page_bytes(p), "private page {p} differs");
    }
    let mut word = [0u8; 4];
    h.aspace
        .read_bytes(private + 3 * PAGE_SIZE, &mut word)
        .unwrap();
    assert_eq!(&word, b"copy");
    h.aspace.read_bytes(anon + PAGE_SIZE, &mut word).unwrap();
    assert_eq!(&word, b"more");
    h.aspace.teardown();
    drop(f);
    assert_eq!(h.soft.live(), 0);
}
