//! `madvise`: access-pattern and fork hints stored as VMA flags (splitting VMAs at
//! the range edges), zapping advice (`DONTNEED`, `FREE`), `REMOVE` (a hole punched
//! in the file: `super::madvise_remove`), read-ahead
//! (`WILLNEED`) and pre-faulting (`POPULATE_READ/WRITE`). Reclaim hints (`COLD`,
//! `PAGEOUT`) are validated and accepted; they act once reclaim exists.
//!
//! As on Linux, advice applies to the mapped parts of a range with holes and the
//! call then fails with `ENOMEM`.

use super::mseal::check_madvise_unsealed;
use super::{AddressSpace, PopulateStep};
use crate::errno::MmError;
use crate::fault::Access;
use crate::frame::PAGE_SIZE;
use crate::pagecache::{FileObject, PunchedPages};
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma};

/// `MADV_*` advice this kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_NORMAL` (0).
    Normal,
    /// `MADV_RANDOM` (1).
    Random,
    /// `MADV_SEQUENTIAL` (2).
    Sequential,
    /// `MADV_WILLNEED` (3).
    WillNeed,
    /// `MADV_DONTNEED` (4).
    DontNeed,
    /// `MADV_FREE` (8).
    Free,
    /// `MADV_REMOVE` (9).
    Remove,
    /// `MADV_DONTFORK` (10).
    DontFork,
    /// `MADV_DOFORK` (11).
    DoFork,
    /// `MADV_MERGEABLE` (12): KSM may merge the private anonymous pages.
    Mergeable,
    /// `MADV_UNMERGEABLE` (13): merged pages get their own frames again.
    Unmergeable,
    /// `MADV_HUGEPAGE` (14): transparent huge pages for the range even when THP is
    /// `madvise`.
    HugePage,
    /// `MADV_NOHUGEPAGE` (15): never transparent huge pages for the range.
    NoHugePage,
    /// `MADV_DONTDUMP` (16).
    DontDump,
    /// `MADV_DODUMP` (17).
    DoDump,
    /// `MADV_WIPEONFORK` (18).
    WipeOnFork,
    /// `MADV_KEEPONFORK` (19).
    KeepOnFork,
    /// `MADV_COLD` (20).
    Cold,
    /// `MADV_PAGEOUT` (21).
    PageOut,
    /// `MADV_POPULATE_READ` (22).
    PopulateRead,
    /// `MADV_POPULATE_WRITE` (23).
    PopulateWrite,
}

impl Advice {
    /// Decodes a Linux advice value; `EINVAL` for unknown ones and for those other
    /// issues add (hwpoison, `MADV_COLLAPSE`...).
    pub fn from_linux(value: u64) -> Result<Advice, MmError> {
        Ok(match value {
            0 => Advice::Normal,
            1 => Advice::Random,
            2 => Advice::Sequential,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            8 => Advice::Free,
            9 => Advice::Remove,
            10 => Advice::DontFork,
            11 => Advice::DoFork,
            12 => Advice::Mergeable,
            13 => Advice::Unmergeable,
            14 => Advice::HugePage,
            15 => Advice::NoHugePage,
            16 => Advice::DontDump,
            17 => Advice::DoDump,
            18 => Advice::WipeOnFork,
            19 => Advice::KeepOnFork,
            20 => Advice::Cold,
            21 => Advice::PageOut,
            22 => Advice::PopulateRead,
            23 => Advice::PopulateWrite,
            _ => return Err(MmError::InvalidArgument),
        })
    }

    /// For flag advice: the flags it sets and the flags it clears.
    fn flag_change(self) -> Option<(VmFlags, VmFlags)> {
        Some(match self {
            Advice::Normal => (VmFlags::empty(), VmFlags::READ_HINTS),
            Advice::Random => (VmFlags::RAND_READ, VmFlags::SEQ_READ),
            Advice::Sequential => (VmFlags::SEQ_READ, VmFlags::RAND_READ),
            Advice::DontFork => (VmFlags::DONTCOPY, VmFlags::empty()),
            Advice::DoFork => (VmFlags::empty(), VmFlags::DONTCOPY),
            Advice::DontDump => (VmFlags::DONTDUMP, VmFlags::empty()),
            Advice::DoDump => (VmFlags::empty(), VmFlags::DONTDUMP),
            Advice::WipeOnFork => (VmFlags::WIPEONFORK, VmFlags::empty()),
            Advice::KeepOnFork => (VmFlags::empty(), VmFlags::WIPEONFORK),
            Advice::Mergeable => (VmFlags::MERGEABLE, VmFlags::empty()),
            Advice::Unmergeable => (VmFlags::empty(), VmFlags::MERGEABLE),
            Advice::HugePage => (VmFlags::HUGEPAGE, VmFlags::NOHUGEPAGE),
            Advice::NoHugePage => (VmFlags::NOHUGEPAGE, VmFlags::HUGEPAGE),
            _ => return None,
        })
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// `madvise(addr, len, MADV_REMOVE)` with `unmap` taking each hole's pages out of
    /// the mappings (instead of the kernel's hook that walks every address space, or,
    /// with no hook installed, this address space alone): for tests that stand in
    /// for the kernel's walk.
    pub fn madvise_remove_with(
        &self,
        addr: u64,
        len: u64,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> Result<PopulateStep, MmError> {
        self.madvise_unmapping(addr, len, Advice::Remove, unmap)
    }

    /// `madvise(addr, len, advice)`. Returns [`PopulateStep::Done`] except when a
    /// `POPULATE_*` advice must wait: then the kernel awaits and finishes with
    /// [`populate`](Self::populate) from `resume_at`.
    pub fn madvise(&self, addr: u64, len: u64, advice: Advice) -> Result<PopulateStep, MmError> {
        self.madvise_unmapping(addr, len, advice, &|file, hole| {
            self.unmap_hole_default(file, hole)
        })
    }

    /// The checks `madvise(addr, len, MADV_DONTNEED or MADV_FREE)` makes before it
    /// drops anything, made alone (nothing dropped): the kernel reports
    /// `UFFD_EVENT_REMOVE` once they pass and before the pages go, as Linux 6.12's
    /// `madvise_dontneed_free` calls `userfaultfd_remove` before the zap. `Ok(false)`
    /// for an empty range (nothing to report); the errors `madvise` would give, except
    /// `MADV_FREE`'s `EINVAL` on a file mapping, which Linux gives after the report
    /// (`madvise_free_single_vma` refuses it once `userfaultfd_remove` has returned).
    pub fn check_drop(&self, addr: u64, len: u64, advice: Advice) -> Result<bool, MmError> {
        debug_assert!(matches!(advice, Advice::DontNeed | Advice::Free));
        let Some(end) = self.madvise_range(addr, len)? else {
            return Ok(false);
        };
        let st = self.state().read();
        check_madvise_unsealed(&st.tree, addr, end, advice)?;
        super::munmap::hugetlb_edges_aligned(&st.tree, addr, end)?;
        for v in st.tree.overlapping(addr, end) {
            if v.flags.contains(VmFlags::LOCKED) {
                return Err(MmError::InvalidArgument);
            }
        }
        Ok(true)
    }

    /// The end of `madvise`'s range `[addr, addr + len)`, `len` rounded up to pages;
    /// `None` for an empty one (nothing to do). `EINVAL` for an unaligned `addr` or a
    /// range that wraps, `ENOMEM` past the user address space.
    pub(super) fn madvise_range(&self, addr: u64, len: u64) -> Result<Option<u64>, MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidArgument)?;
        let end = addr.checked_add(len).ok_or(MmError::InvalidArgument)?;
        if end == addr {
            return Ok(None);
        }
        if end > self.layout().task_size {
            return Err(MmError::NoMemory);
        }
        Ok(Some(end))
    }

    /// [`madvise`](Self::madvise), with `unmap` taking the pages of a hole
    /// `MADV_REMOVE` punches out of the mappings (see `super::madvise_remove`).
    pub(super) fn madvise_unmapping(
        &self,
        addr: u64,
        len: u64,
        advice: Advice,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> Result<PopulateStep, MmError> {
        let Some(end) = self.madvise_range(addr, len)? else {
            return Ok(PopulateStep::Done);
        };
        match advice {
            Advice::PopulateRead => return self.populate_range(addr, end, Access::Read),
            Advice::PopulateWrite => return self.populate_range(addr, end, Access::Write),
            _ => {}
        }
        let mut st = self.state().write();
        check_madvise_unsealed(&st.tree, addr, end, advice)?;
        // MADV_REMOVE splits no VMA: a range off huge-page boundaries in a hugetlb
        // mapping zeroes the partial pages, as Linux 6.12's hugetlbfs_punch_hole.
        if advice != Advice::Remove {
            super::munmap::hugetlb_edges_aligned(&st.tree, addr, end)?;
        }
        let hole = !st.tree.is_covered(addr, end);
        let parts: alloc::vec::Vec<Vma> = st
            .tree
            .overlapping(addr, end)
            .map(|v| v.clip(addr, end))
            .collect();
        let locked = |v: &Vma| v.flags.contains(VmFlags::LOCKED);
        match advice {
            _ if advice.flag_change().is_some() => {
                let (set, clear) = advice.flag_change().unwrap_or_default();
                if advice == Advice::WipeOnFork && parts.iter().any(|v| v.file().is_some()) {
                    return Err(MmError::InvalidArgument);
                }
                let max = self.tunables().max_map_count();
                // A huge leaf never straddles two VMAs.
                self.split_huge_edges(addr, end);
                if advice == Advice::HugePage {
                    self.note_thp_advised();
                }
                st.tree.edit_each(addr, end, max, &mut |n: &mut Vma| {
                    // As on Linux, KSM skips shared mappings without an error.
                    if advice != Advice::Mergeable || !n.flags.contains(VmFlags::MAYSHARE) {
                        n.flags = (n.flags - clear) | set
                    }
                })?;
                if advice == Advice::Unmergeable {
                    drop(st);
                    self.ksm_unmerge(addr, end);
                    return if hole {
                        Err(MmError::NoMemory)
                    } else {
                        Ok(PopulateStep::Done)
                    };
                }
            }
            Advice::DontNeed | Advice::Free => {
                if parts.iter().any(locked) {
                    return Err(MmError::InvalidArgument);
                }
                if advice == Advice::Free && parts.iter().any(|v| v.file().is_some()) {
                    return Err(MmError::InvalidArgument);
                }
                self.zap_parts(&parts);
            }
            Advice::Remove => {
                // Punched with the tree's lock released: the punch unmaps the hole
                // from every address space, this one too.
                let plan = super::madvise_remove::remove_plan(&parts);
                drop(st);
                return self.punch_planned(plan, hole, unmap);
            }
            Advice::WillNeed => {
                drop(st);
                for v in &parts {
                    if let Some(f) = v.file() {
                        f.read_ahead(v.pgoff, v.pages());
                    }
                }
            }
            Advice::Cold | Advice::PageOut if parts.iter().any(locked) => {
                return Err(MmError::InvalidArgument);
            }
            _ => {}
        }
        if hole {
            Err(MmError::NoMemory)
        } else {
            Ok(PopulateStep::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file, map_shared_anon};
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn check_drop_refuses_as_madvise_and_drops_nothing() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace.write_bytes(a, b"kept").unwrap();
        assert_eq!(
            h.aspace.check_drop(a, PAGE_SIZE, Advice::DontNeed),
            Ok(true)
        );
        let mut back = [0u8; 4];
        h.aspace.read_bytes(a, &mut back).unwrap();
        assert_eq!(&back, b"kept", "nothing dropped");
        assert_eq!(h.aspace.check_drop(a, 0, Advice::DontNeed), Ok(false));
        assert_eq!(
            h.aspace.check_drop(a + 1, PAGE_SIZE, Advice::DontNeed),
            Err(MmError::InvalidArgument)
        );
        h.aspace
            .mlock(a, PAGE_SIZE, false, crate::aspace::LockLimit::Unlimited)
            .unwrap();
        assert_eq!(
            h.aspace.check_drop(a, 2 * PAGE_SIZE, Advice::Free),
            Err(MmError::InvalidArgument),
            "a locked VMA"
        );
    }

    #[test]
    fn decode() {
        assert_eq!(Advice::from_linux(4), Ok(Advice::DontNeed));
        assert_eq!(Advice::from_linux(23), Ok(Advice::PopulateWrite));
        assert_eq!(Advice::from_linux(12), Ok(Advice::Mergeable));
        assert_eq!(Advice::from_linux(14), Ok(Advice::HugePage));
        assert_eq!(Advice::from_linux(15), Ok(Advice::NoHugePage));
        assert_eq!(Advice::from_linux(25), Err(MmError::InvalidArgument));
        assert_eq!(Advice::from_linux(100), Err(MmError::InvalidArgument));
    }

    #[test]
    fn dontneed_zaps_and_refaults_zero() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        h.aspace.write_bytes(a, b"data").unwrap();
        h.aspace
            .madvise(a, 2 * PAGE_SIZE, Advice::DontNeed)
            .unwrap();
        assert_eq!(h.soft.live(), 0);
        let mut b = [1u8; 4];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        assert_eq!(h.aspace.vma_count(), 1);
    }

    #[test]
    fn hints_split_store_and_remerge() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace
            .madvise(a + PAGE_SIZE, PAGE_SIZE, Advice::Sequential)
            .unwrap();
        assert_eq!(h.aspace.vma_count(), 3);
        assert!(h
            .aspace
            .vma_at(a + PAGE_SIZE)
            .unwrap()
            .flags()
            .contains(VmFlags::SEQ_READ));
        h.aspace
            .madvise(a + PAGE_SIZE, PAGE_SIZE, Advice::Random)
            .unwrap();
        let f = h.aspace.vma_at(a + PAGE_SIZE).unwrap().flags();
        assert!(f.contains(VmFlags::RAND_READ) && !f.contains(VmFlags::SEQ_READ));
        h.aspace.madvise(a, 4 * PAGE_SIZE, Advice::Normal).unwrap();
        assert_eq!(h.aspace.vma_count(), 1);
        h.aspace.madvise(a, PAGE_SIZE, Advice::DontFork).unwrap();
        assert!(h
            .aspace
            .vma_at(a)
            .unwrap()
            .flags()
            .contains(VmFlags::DONTCOPY));
        // A hole: applied to the mapped part, then ENOMEM.
        assert_eq!(
            h.aspace
                .madvise(a, 5 * PAGE_SIZE, Advice::DoFork)
                .unwrap_err(),
            MmError::NoMemory
        );
        assert_eq!(h.aspace.vma_count(), 1);
        assert_eq!(
            h.aspace
                .madvise(a + 1, PAGE_SIZE, Advice::Normal)
                .unwrap_err(),
            MmError::InvalidArgument
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn free_remove_locked_and_wipeonfork_rules() {
        let h = harness();
        let f = h.file(&file_bytes(2 * PAGE_SIZE as usize));
        let fm = map_file(
            &h.aspace,
            &f,
            2,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE,
            0,
        );
        assert_eq!(
            h.aspace.madvise(fm, PAGE_SIZE, Advice::Free).unwrap_err(),
            MmError::InvalidArgument
        );
        assert_eq!(
            h.aspace
                .madvise(fm, PAGE_SIZE, Advice::WipeOnFork)
                .unwrap_err(),
            MmError::InvalidArgument
        );
        assert_eq!(
            h.aspace.madvise(fm, PAGE_SIZE, Advice::Remove).unwrap_err(),
            MmError::AccessDenied
        );
        h.aspace
            .madvise(fm, 2 * PAGE_SIZE, Advice::WillNeed)
            .unwrap();
        assert_eq!(f.cache().len(), 2);

        let s = map_shared_anon(&h.aspace, 2);
        h.aspace.write_bytes(s, b"shm").unwrap();
        h.aspace.madvise(s, PAGE_SIZE, Advice::Remove).unwrap();
        let mut b = [9u8; 3];
        h.aspace.read_bytes(s, &mut b).unwrap();
        assert_eq!(b, [0; 3], "hole punched");

        let req = crate::aspace::MmapRequest::anon(
            0,
            PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::LOCKED,
        );
        let l = h.aspace.mmap(&req, false).unwrap();
        assert_eq!(
            h.aspace
                .madvise(l, PAGE_SIZE, Advice::DontNeed)
                .unwrap_err(),
            MmError::InvalidArgument
        );
        assert_eq!(
            h.aspace.madvise(l, PAGE_SIZE, Advice::PageOut).unwrap_err(),
            MmError::InvalidArgument
        );
        assert!(matches!(
            h.aspace.madvise(l, PAGE_SIZE, Advice::PopulateWrite),
            Ok(PopulateStep::Done)
        ));
    }
}
