//! Property tests: random sequences of mmap/munmap/mprotect/mremap/madvise/brk and
//! touches keep the VMA tree sorted, disjoint, merged and within `max_map_count`,
//! keep the page table consistent with it, change nothing when they fail for the
//! map count, and leak no frame; random writes across forks never leak between
//! processes and every frame comes back when they exit; and sequences checked after
//! every step against a per-page reference model (protection and contents): VMA
//! protections, fault results, data, a forked child's view, frames at teardown.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests::{file_bytes, harness, Harness};
use super::{AddressSpace, Advice, FileMapping, MmapRequest};
use crate::errno::MmError;
use crate::fault::Access;
use crate::frame::PAGE_SIZE;
use crate::pagecache::FileObject;
use crate::pagetable::SoftPageTable;
use crate::vma::{MapFlags, Prot, VmFlags};

/// The window the operations act in (32 pages), so that they collide often.
const BASE: u64 = 0x1000_0000;
const WINDOW_PAGES: u64 = 32;

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        page: u64,
        pages: u64,
        prot: u64,
        mode: u8,
        backing: u8,
        file_page: u64,
    },
    Munmap {
        page: u64,
        pages: u64,
    },
    Mprotect {
        page: u64,
        pages: u64,
        prot: u64,
    },
    Mremap {
        page: u64,
        old_pages: u64,
        new_pages: u64,
        flags: u8,
        to_page: u64,
    },
    Touch {
        page: u64,
        pages: u64,
        write: bool,
    },
    Advise {
        page: u64,
        pages: u64,
        advice: u8,
    },
    Brk {
        pages: u64,
    },
    Mseal {
        page: u64,
        pages: u64,
    },
    Mlock {
        page: u64,
        pages: u64,
        on_fault: bool,
    },
    Munlock {
        page: u64,
        pages: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let page = 0..WINDOW_PAGES;
    let pages = 1..8u64;
    prop_oneof![
        3 => (page.clone(), pages.clone(), 0..8u64, 0..3u8, 0..4u8, 0..8u64).prop_map(
            |(page, pages, prot, mode, backing, file_page)| Op::Mmap { page, pages, prot, mode, backing, file_page }
        ),
        2 => (page.clone(), pages.clone()).prop_map(|(page, pages)| Op::Munmap { page, pages }),
        2 => (page.clone(), pages.clone(), 0..8u64).prop_map(|(page, pages, prot)| Op::Mprotect { page, pages, prot }),
        1 => (page.clone(), pages.clone(), pages.clone(), 0..4u8, page.clone()).prop_map(
            |(page, old_pages, new_pages, flags, to_page)| Op::Mremap { page, old_pages, new_pages, flags, to_page }
        ),
        4 => (page.clone(), pages.clone(), any::<bool>()).prop_map(|(page, pages, write)| Op::Touch { page, pages, write }),
        1 => (page.clone(), pages, 0..5u8).prop_map(|(page, pages, advice)| Op::Advise { page, pages, advice }),
        1 => (0..6u64).prop_map(|pages| Op::Brk { pages }),
        1 => (page.clone(), 1..8u64).prop_map(|(page, pages)| Op::Mseal { page, pages }),
        1 => (page.clone(), 1..8u64, any::<bool>()).prop_map(|(page, pages, on_fault)| Op::Mlock { page, pages, on_fault }),
        1 => (page, 1..8u64).prop_map(|(page, pages)| Op::Munlock { page, pages }),
    ]
}

/// Pages in sealed VMAs.
fn sealed_pages(a: &AddressSpace<SoftPageTable>) -> Vec<u64> {
    a.vmas()
        .iter()
        .filter(|v| v.flags().contains(VmFlags::SEALED))
        .flat_map(|v| (v.start()..v.end()).step_by(PAGE_SIZE as usize))
        .collect()
}

fn addr(page: u64) -> u64 {
    BASE + page * PAGE_SIZE
}

fn snapshot(a: &AddressSpace<SoftPageTable>) -> Vec<(u64, u64, VmFlags)> {
    a.vmas()
        .iter()
        .map(|v| (v.start(), v.end(), v.flags()))
        .collect()
}

fn apply(h: &Harness, file: &Arc<FileObject>, op: &Op) -> Result<(), MmError> {
    let a = &h.aspace;
    match *op {
        Op::Mmap {
            page,
            pages,
            prot,
            mode,
            backing,
            file_page,
        } => {
            let mut flags = [
                MapFlags::FIXED,
                MapFlags::FIXED_NOREPLACE,
                MapFlags::empty(),
            ][mode as usize];
            flags |= if backing % 2 == 0 {
                MapFlags::PRIVATE
            } else {
                MapFlags::SHARED
            };
            let prot = Prot::from_bits_truncate(prot);
            let req = if backing < 2 {
                MmapRequest::anon(addr(page), pages * PAGE_SIZE, prot, flags)
            } else {
                let fm = FileMapping {
                    file: file.clone(),
                    readable: true,
                    writable: true,
                };
                MmapRequest {
                    addr: addr(page),
                    len: pages * PAGE_SIZE,
                    prot,
                    flags,
                    file: Some(fm),
                    offset: file_page * PAGE_SIZE,
                }
            };
            a.mmap(&req, false).map(|_| ())
        }
        Op::Munmap { page, pages } => a.munmap(addr(page), pages * PAGE_SIZE),
        Op::Mprotect { page, pages, prot } => a.mprotect(
            addr(page),
            pages * PAGE_SIZE,
            Prot::from_bits_truncate(prot),
        ),
        Op::Mremap {
            page,
            old_pages,
            new_pages,
            flags,
            to_page,
        } => {
            let bits = [0u64, 1, 3, 5][flags as usize];
            let new_pages = if bits == 5 { old_pages } else { new_pages };
            a.mremap(
                addr(page),
                old_pages * PAGE_SIZE,
                new_pages * PAGE_SIZE,
                bits,
                addr(to_page + WINDOW_PAGES),
            )
            .map(|_| ())
        }
        Op::Touch { page, pages, write } => {
            let access = if write { Access::Write } else { Access::Read };
            for p in page..page + pages {
                let _ = a.fault(addr(p), access, true);
            }
            Ok(())
        }
        Op::Advise {
            page,
            pages,
            advice,
        } => {
            let advice = [
                Advice::DontNeed,
                Advice::Sequential,
                Advice::Normal,
                Advice::DontFork,
                Advice::PopulateWrite,
            ][advice as usize];
            a.madvise(addr(page), pages * PAGE_SIZE, advice).map(|_| ())
        }
        Op::Brk { pages } => {
            a.brk(addr(WINDOW_PAGES * 3) + pages * PAGE_SIZE);
            Ok(())
        }
        Op::Mseal { page, pages } => a.mseal(addr(page), pages * PAGE_SIZE, 0),
        Op::Mlock {
            page,
            pages,
            on_fault,
        } => a
            .mlock(
                addr(page),
                pages * PAGE_SIZE,
                on_fault,
                crate::aspace::LockLimit::Bytes(10 * PAGE_SIZE),
            )
            .map(|_| ()),
        Op::Munlock { page, pages } => a.munlock(addr(page), pages * PAGE_SIZE),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn operations_keep_tree_and_table_consistent(
        ops in proptest::collection::vec(op(), 1..48),
        max_map_count in 4usize..12,
    ) {
        let h = harness();
        h.aspace.tunables().set_max_map_count(max_map_count);
        h.aspace.set_brk_start(addr(WINDOW_PAGES * 3));
        let file = h.file(&file_bytes(12 * PAGE_SIZE as usize));
        for op in &ops {
            let before = snapshot(&h.aspace);
            let resident_before = h.aspace.resident_pages();
            let sealed_before = sealed_pages(&h.aspace);
            let result = apply(&h, &file, op);
            // A seal refusal changes nothing, and no seal is ever lost.
            if result == Err(MmError::PermissionDenied) {
                prop_assert_eq!(snapshot(&h.aspace), before.clone(), "refused {:?} changed the tree", op);
                prop_assert_eq!(h.aspace.resident_pages(), resident_before, "refused {:?} dropped pages", op);
            }
            let sealed_after = sealed_pages(&h.aspace);
            prop_assert!(
                sealed_before.iter().all(|p| sealed_after.contains(p)),
                "{:?} lost a seal", op
            );
            // A successful mlock leaves the address space within the limit it was given.
            if matches!(op, Op::Mlock { .. }) && result.is_ok() {
                prop_assert!(h.aspace.locked_pages() <= 10, "{:?} went past the limit", op);
            }
            if let Err(e) = h.aspace.check_invariants() {
                prop_assert!(false, "after {:?} ({:?}): {}", op, result, e);
            }
            let atomic = matches!(op, Op::Munmap { .. } | Op::Mprotect { .. } | Op::Mmap { .. });
            if atomic && result == Err(MmError::NoMemory) {
                prop_assert_eq!(snapshot(&h.aspace), before, "failed {:?} changed the tree", op);
            }
        }
        let Harness { aspace, soft, .. } = h;
        drop(aspace);
        drop(file);
        prop_assert_eq!(soft.live(), 0, "frames leaked");
    }
}

#[derive(Clone, Debug)]
enum ForkOp {
    Write { proc: usize, page: u64, byte: u8 },
    Fork { from: usize },
    Exit { proc: usize },
}

fn fork_op() -> impl Strategy<Value = ForkOp> {
    prop_oneof![
        6 => (0..2usize, 0..8u64, any::<u8>()).prop_map(|(proc, page, byte)| ForkOp::Write { proc, page, byte }),
        2 => (0..2usize).prop_map(|from| ForkOp::Fork { from }),
        1 => (0..2usize).prop_map(|proc| ForkOp::Exit { proc }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn writes_never_leak_across_fork(ops in proptest::collection::vec(fork_op(), 1..40)) {
        let h = harness();
        let req = MmapRequest::anon(BASE, 8 * PAGE_SIZE, Prot::READ | Prot::WRITE, MapFlags::PRIVATE | MapFlags::FIXED);
        let first = h.sibling();
        first.mmap(&req, false).unwrap();
        // Two process slots; a slot may be empty after an exit.
        let mut procs: [Option<AddressSpace<SoftPageTable>>; 2] = [Some(first), None];
        let mut model: [Vec<u8>; 2] = [vec![0; 8], vec![0; 8]];
        for op in &ops {
            match *op {
                ForkOp::Write { proc, page, byte } => {
                    if let Some(p) = &procs[proc] {
                        p.write_bytes(addr(page) + 7, &[byte]).unwrap();
                        model[proc][page as usize] = byte;
                    }
                }
                ForkOp::Fork { from } => {
                    if let Some(p) = &procs[from] {
                        let child = p.fork(SoftPageTable::new(), h.tlb.clone()).unwrap();
                        procs[1 - from] = Some(child);
                        model[1 - from] = model[from].clone();
                    }
                }
                ForkOp::Exit { proc } => procs[proc] = None,
            }
            for (i, p) in procs.iter().enumerate() {
                if let Some(p) = p {
                    for page in 0..8u64 {
                        let mut b = [0u8];
                        p.read_bytes(addr(page) + 7, &mut b).unwrap();
                        prop_assert_eq!(b[0], model[i][page as usize], "process {} page {}", i, page);
                    }
                }
            }
        }
        drop(procs);
        prop_assert_eq!(h.soft.live(), 0, "frames leaked");
        prop_assert_eq!(h.frames.shared_frames(), 0, "reference counts left over");
    }
}

#[derive(Clone, Debug)]
enum ModelOp {
    Map {
        page: u64,
        pages: u64,
        prot: u64,
        noreplace: bool,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    Protect {
        page: u64,
        pages: u64,
        prot: u64,
    },
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    let page = 0..WINDOW_PAGES;
    prop_oneof![
        (page.clone(), 1..8u64, 0..8u64, any::<bool>()).prop_map(
            |(page, pages, prot, noreplace)| ModelOp::Map {
                page,
                pages,
                prot,
                noreplace
            }
        ),
        (page.clone(), 1..8u64).prop_map(|(page, pages)| ModelOp::Unmap { page, pages }),
        (page, 1..8u64, 0..8u64).prop_map(|(page, pages, prot)| ModelOp::Protect {
            page,
            pages,
            prot
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The tree agrees page by page with a trivial model (each page: unmapped or a
    /// protection), and failed calls leave both unchanged.
    #[test]
    fn tree_matches_page_model(ops in proptest::collection::vec(model_op(), 1..40)) {
        let h = harness();
        // Pages past the window end stay unmapped, so ranges may run over it.
        let mut model: Vec<Option<Prot>> = vec![None; (WINDOW_PAGES + 8) as usize];
        for op in &ops {
            match *op {
                ModelOp::Map { page, pages, prot, noreplace } => {
                    let prot = Prot::from_bits_truncate(prot);
                    let fixed = if noreplace { MapFlags::FIXED_NOREPLACE } else { MapFlags::FIXED };
                    let req = MmapRequest::anon(addr(page), pages * PAGE_SIZE, prot, MapFlags::PRIVATE | fixed);
                    let range = page as usize..(page + pages) as usize;
                    let free = model[range.clone()].iter().all(Option::is_none);
                    let r = h.aspace.mmap(&req, false);
                    prop_assert_eq!(r.is_ok(), free || !noreplace, "{:?}", op);
                    if r.is_ok() {
                        model[range].fill(Some(prot));
                    }
                }
                ModelOp::Unmap { page, pages } => {
                    h.aspace.munmap(addr(page), pages * PAGE_SIZE).unwrap();
                    model[page as usize..(page + pages) as usize].fill(None);
                }
                ModelOp::Protect { page, pages, prot } => {
                    let prot = Prot::from_bits_truncate(prot);
                    let range = page as usize..(page + pages) as usize;
                    let covered = model[range.clone()].iter().all(Option::is_some);
                    let r = h.aspace.mprotect(addr(page), pages * PAGE_SIZE, prot);
                    prop_assert_eq!(r.is_ok(), covered, "{:?}", op);
                    if covered {
                        model[range].fill(Some(prot));
                    }
                }
            }
            for (i, want) in model.iter().enumerate() {
                let got = h.aspace.vma_at(addr(i as u64)).map(|v| v.prot());
                prop_assert_eq!(got, *want, "page {} after {:?}", i, op);
            }
            prop_assert!(h.aspace.check_invariants().is_ok());
        }
    }
}

/// One operation against the reference model below (private anonymous memory only,
/// so the model needs no notion of VMA boundaries).
#[derive(Clone, Debug)]
enum RefOp {
    Map {
        page: u64,
        pages: u64,
        prot: u8,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    Protect {
        page: u64,
        pages: u64,
        prot: u8,
    },
    /// `mremap(MAYMOVE|FIXED)` of one page (always within one VMA when mapped).
    MovePage {
        from: u64,
        to: u64,
    },
    /// `mremap` shrinking `[page, page+pages)` in place to its first page.
    Shrink {
        page: u64,
        pages: u64,
        huge_old: bool,
    },
    DontNeed {
        page: u64,
        pages: u64,
    },
    Write {
        page: u64,
        byte: u8,
    },
    Read {
        page: u64,
    },
    /// Fork, check the child against the model, write in it, drop it.
    Fork {
        byte: u8,
    },
}

/// The protections the model uses: none, read, read-write (x86 cannot tell a
/// write-only or exec-only page from a readable one, so those are left out).
const REF_PROTS: [Prot; 3] = [Prot::empty(), Prot::READ, Prot::READ.union(Prot::WRITE)];

fn ref_op() -> impl Strategy<Value = RefOp> {
    let page = 0..WINDOW_PAGES;
    let pages = 1..6u64;
    prop_oneof![
        3 => (page.clone(), pages.clone(), 0..3u8).prop_map(|(page, pages, prot)| RefOp::Map { page, pages, prot }),
        2 => (page.clone(), pages.clone()).prop_map(|(page, pages)| RefOp::Unmap { page, pages }),
        2 => (page.clone(), pages.clone(), 0..3u8).prop_map(|(page, pages, prot)| RefOp::Protect { page, pages, prot }),
        1 => (page.clone(), page.clone()).prop_map(|(from, to)| RefOp::MovePage { from, to }),
        1 => (page.clone(), pages.clone(), any::<bool>()).prop_map(|(page, pages, huge_old)| RefOp::Shrink { page, pages, huge_old }),
        1 => (page.clone(), pages).prop_map(|(page, pages)| RefOp::DontNeed { page, pages }),
        4 => (page.clone(), any::<u8>()).prop_map(|(page, byte)| RefOp::Write { page, byte }),
        3 => page.prop_map(|page| RefOp::Read { page }),
        1 => any::<u8>().prop_map(|byte| RefOp::Fork { byte }),
    ]
}

/// Per page: unmapped, or (protection, the byte at offset 0).
type RefModel = Vec<Option<(Prot, u8)>>;

/// Checks every page of `a` against `model`: the VMA's protection, and what a user
/// read and write of the page would do (resolved, or which fault).
fn check_against_model(
    a: &AddressSpace<SoftPageTable>,
    model: &RefModel,
) -> Result<(), alloc::string::String> {
    use alloc::format;
    for (i, want) in model.iter().enumerate() {
        let va = addr(i as u64);
        let got = a.vma_at(va).map(|v| v.prot());
        if got != want.map(|(p, _)| p) {
            return Err(format!("page {i}: VMA prot {got:?}, model {want:?}"));
        }
        let read = a.fault(va, Access::Read, true);
        match want {
            None if !matches!(read, Err(crate::fault::FaultError::MapErr)) => {
                return Err(format!("page {i}: read of an unmapped page gave {read:?}"))
            }
            Some((p, _))
                if p.is_empty() && !matches!(read, Err(crate::fault::FaultError::AccErr)) =>
            {
                return Err(format!("page {i}: read of a PROT_NONE page gave {read:?}"))
            }
            Some((p, b)) if !p.is_empty() => {
                let mut got = [0u8];
                a.read_bytes(va, &mut got)
                    .map_err(|e| format!("page {i}: read {e:?}"))?;
                if got[0] != *b {
                    return Err(format!("page {i}: reads {:#x}, model {:#x}", got[0], b));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// mmap/munmap/mprotect/mremap/madvise/touch/fork sequences against a per-page
    /// model of protection and contents: the VMA tree, fault results and data agree
    /// after every operation, a forked child sees the model and its writes stay
    /// private, and every frame comes back at teardown.
    #[test]
    fn operations_match_reference_model(ops in proptest::collection::vec(ref_op(), 1..60)) {
        let h = harness();
        let a = &h.aspace;
        let mut model: RefModel = vec![None; (WINDOW_PAGES + 8) as usize];
        for op in &ops {
            match *op {
                RefOp::Map { page, pages, prot } => {
                    let prot = REF_PROTS[prot as usize];
                    let req = MmapRequest::anon(addr(page), pages * PAGE_SIZE, prot, MapFlags::PRIVATE | MapFlags::FIXED);
                    prop_assert_eq!(a.mmap(&req, false), Ok(addr(page)));
                    model[page as usize..(page + pages) as usize].fill(Some((prot, 0)));
                }
                RefOp::Unmap { page, pages } => {
                    prop_assert_eq!(a.munmap(addr(page), pages * PAGE_SIZE), Ok(()));
                    model[page as usize..(page + pages) as usize].fill(None);
                }
                RefOp::Protect { page, pages, prot } => {
                    let prot = REF_PROTS[prot as usize];
                    let range = page as usize..(page + pages) as usize;
                    let covered = model[range.clone()].iter().all(Option::is_some);
                    let r = a.mprotect(addr(page), pages * PAGE_SIZE, prot);
                    prop_assert_eq!(r.is_ok(), covered, "{:?}: {:?}", op, r);
                    if covered {
                        for m in &mut model[range] {
                            *m = m.map(|(_, b)| (prot, b));
                        }
                    }
                }
                RefOp::MovePage { from, to } => {
                    let r = a.mremap(addr(from), PAGE_SIZE, PAGE_SIZE, 3, addr(to));
                    match model[from as usize] {
                        // As Linux: the old address is looked up first.
                        None => prop_assert_eq!(r, Err(MmError::BadAddress)),
                        _ if from == to => prop_assert_eq!(r, Err(MmError::InvalidArgument)),
                        Some(p) => {
                            prop_assert_eq!(r, Ok(addr(to)));
                            model[from as usize] = None;
                            model[to as usize] = Some(p);
                        }
                    }
                }
                RefOp::Shrink { page, pages, huge_old } => {
                    let old_len = if huge_old { 1 << 47 } else { pages * PAGE_SIZE };
                    let r = a.mremap(addr(page), old_len, PAGE_SIZE, 0, 0);
                    match model[page as usize] {
                        None => prop_assert_eq!(r, Err(MmError::BadAddress)),
                        Some(_) if huge_old => prop_assert_eq!(r, Err(MmError::InvalidArgument)),
                        Some(_) => {
                            prop_assert_eq!(r, Ok(addr(page)));
                            model[(page + 1) as usize..(page + pages) as usize].fill(None);
                        }
                    }
                }
                RefOp::DontNeed { page, pages } => {
                    let range = page as usize..(page + pages) as usize;
                    let covered = model[range.clone()].iter().all(Option::is_some);
                    let r = a.madvise(addr(page), pages * PAGE_SIZE, Advice::DontNeed);
                    prop_assert_eq!(r.is_ok(), covered, "{:?}: {:?}", op, r);
                    for m in &mut model[range] {
                        *m = m.map(|(p, _)| (p, 0));
                    }
                }
                RefOp::Write { page, byte } => {
                    let r = a.write_bytes(addr(page), &[byte]);
                    match model[page as usize] {
                        Some((p, _)) if p.contains(Prot::WRITE) => {
                            prop_assert!(r.is_ok(), "{:?}: {:?}", op, r);
                            model[page as usize] = Some((p, byte));
                        }
                        _ => prop_assert!(r.is_err(), "{:?} succeeded, model {:?}", op, model[page as usize]),
                    }
                }
                RefOp::Read { page } => {
                    let mut b = [0u8];
                    let r = a.read_bytes(addr(page), &mut b);
                    match model[page as usize] {
                        Some((p, v)) if !p.is_empty() => {
                            prop_assert!(r.is_ok(), "{:?}: {:?}", op, r);
                            prop_assert_eq!(b[0], v);
                        }
                        _ => prop_assert!(r.is_err(), "{:?} succeeded, model {:?}", op, model[page as usize]),
                    }
                }
                RefOp::Fork { byte } => {
                    let child = a.fork(SoftPageTable::new(), h.tlb.clone()).unwrap();
                    if let Err(e) = check_against_model(&child, &model) {
                        prop_assert!(false, "child after {:?}: {}", op, e);
                    }
                    for (i, m) in model.iter().enumerate() {
                        if matches!(m, Some((p, _)) if p.contains(Prot::WRITE)) {
                            child.write_bytes(addr(i as u64), &[byte]).unwrap();
                        }
                    }
                    drop(child);
                }
            }
            if let Err(e) = check_against_model(a, &model) {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
            prop_assert!(a.check_invariants().is_ok());
        }
        let Harness { aspace, soft, frames, .. } = h;
        drop(aspace);
        prop_assert_eq!(soft.live(), 0, "frames leaked");
        prop_assert_eq!(frames.shared_frames(), 0, "reference counts left over");
    }
}
