//! Commit accounting through the address-space operations: each one leaves
//! `Committed_AS` equal to the private writable pages mapped, and strict overcommit
//! refuses growth past the limit with nothing changed.

use super::tests::{anon_rw, fork, harness, map_shared_anon};
use super::MmapRequest;
use crate::commit::Overcommit;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::vma::{MapFlags, Prot};

fn committed(h: &super::tests::Harness) -> u64 {
    h.aspace.tunables().commitment().committed_pages()
}

#[test]
fn every_operation_keeps_the_charge_equal_to_private_writable_pages() {
    let h = harness();
    let a = anon_rw(&h.aspace, 10);
    assert_eq!(committed(&h), 10);
    map_shared_anon(&h.aspace, 5);
    let ro = MmapRequest::anon(0, 4 * PAGE_SIZE, Prot::READ, MapFlags::PRIVATE);
    let r = h.aspace.mmap(&ro, false).unwrap();
    let nores = MmapRequest::anon(
        0,
        3 * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE | MapFlags::NORESERVE,
    );
    h.aspace.mmap(&nores, false).unwrap();
    assert_eq!(
        committed(&h),
        10,
        "shared, read-only and NORESERVE are free"
    );

    h.aspace.munmap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE).unwrap();
    assert_eq!(committed(&h), 7);
    h.aspace
        .mprotect(r, 2 * PAGE_SIZE, Prot::READ | Prot::WRITE)
        .unwrap();
    assert_eq!(
        committed(&h),
        9,
        "a private mapping made writable is charged"
    );
    h.aspace.mprotect(r, 2 * PAGE_SIZE, Prot::READ).unwrap();
    assert_eq!(committed(&h), 9, "and stays charged (VM_ACCOUNT kept)");

    let b = anon_rw(&h.aspace, 2);
    let b = h
        .aspace
        .mremap(b, 2 * PAGE_SIZE, 6 * PAGE_SIZE, 1, 0)
        .unwrap();
    assert_eq!(committed(&h), 15);
    h.aspace.mremap(b, 6 * PAGE_SIZE, PAGE_SIZE, 0, 0).unwrap();
    assert_eq!(committed(&h), 10);

    let child = fork(&h);
    assert_eq!(committed(&h), 20, "the child's copy is charged");
    drop(child);
    assert_eq!(committed(&h), 10);
    h.aspace.teardown();
    assert_eq!(committed(&h), 0);
    anon_rw(&h.aspace, 1);
    assert_eq!(committed(&h), 1, "an emptied address space still charges");
    h.aspace.check_invariants().unwrap();
}

#[test]
fn strict_mode_refuses_past_the_limit_and_changes_nothing() {
    let h = harness();
    let commit = h.aspace.tunables().commitment().clone();
    commit.set_ram_pages(100);
    commit.set_mode(Overcommit::Never);
    commit.set_ratio(50);
    let a = anon_rw(&h.aspace, 40);
    let big = MmapRequest::anon(
        0,
        11 * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE | MapFlags::NORESERVE,
    );
    let vmas = h.aspace.vma_count();
    assert_eq!(h.aspace.mmap(&big, false), Err(MmError::NoMemory));
    assert_eq!(h.aspace.vma_count(), vmas, "nothing mapped");
    assert_eq!(committed(&h), 40);

    let ro = MmapRequest::anon(0, 20 * PAGE_SIZE, Prot::READ, MapFlags::PRIVATE);
    let r = h.aspace.mmap(&ro, false).unwrap();
    assert_eq!(
        h.aspace
            .mprotect(r, 20 * PAGE_SIZE, Prot::READ | Prot::WRITE),
        Err(MmError::NoMemory)
    );
    assert_eq!(
        h.aspace.mremap(a, 40 * PAGE_SIZE, 60 * PAGE_SIZE, 1, 0),
        Err(MmError::NoMemory)
    );
    assert!(
        h.aspace
            .fork(crate::pagetable::SoftPageTable::new(), h.tlb.clone())
            .is_err(),
        "a fork would double the charge"
    );
    assert_eq!(committed(&h), 40);
    anon_rw(&h.aspace, 10);
    assert_eq!(committed(&h), 50, "up to the limit exactly");
    h.aspace.check_invariants().unwrap();
}

#[test]
fn guess_mode_refuses_one_request_larger_than_ram() {
    let h = harness();
    let commit = h.aspace.tunables().commitment().clone();
    commit.set_ram_pages(100);
    let huge = MmapRequest::anon(
        0,
        101 * PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        MapFlags::PRIVATE,
    );
    assert_eq!(h.aspace.mmap(&huge, false), Err(MmError::NoMemory));
    anon_rw(&h.aspace, 100);
    anon_rw(&h.aspace, 100);
    assert_eq!(committed(&h), 200, "the sum may pass RAM");
    commit.set_mode(Overcommit::Always);
    h.aspace.mmap(&huge, false).unwrap();
}
