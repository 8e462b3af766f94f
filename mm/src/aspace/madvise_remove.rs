//! `MADV_REMOVE`: a hole punched in the file a shared mapping maps, as Linux 6.12's
//! `madvise_remove`, which calls `vfs_fallocate(PUNCH_HOLE | KEEP_SIZE)` over the
//! range's part of the file. So every mapping of the pages, in every process, loses
//! them (shared ones read zeros, private ones the hole where they mapped the file's
//! page; their own copies stay), `read(2)` sees zeros, and the swap slots of swapped
//! pages are freed: see `crate::pagecache::shmem_falloc`.
//!
//! The punch walks every address space, this one too, each under its VMA tree's
//! write side, so the range's parts are gathered under this tree's lock
//! ([`remove_plan`]) and punched once it is released ([`AddressSpace::punch_planned`]),
//! as Linux drops `mmap_lock` around the fallocate.
//!
//! Errors in Linux's order, VMA by VMA from the start of the range (the parts before
//! a failing VMA are punched, as Linux's walk has done them by then): a locked
//! mapping or one without a file is `EINVAL`, one not shared and writable
//! (`VM_SHARED | VM_MAYWRITE`: a `MAP_SHARED` mapping of a descriptor open for
//! writing, even `PROT_READ`) is `EACCES`, a file that cannot punch holes (not shared
//! memory) `EOPNOTSUPP`, and one whose writes are sealed (`F_SEAL_WRITE`,
//! `F_SEAL_FUTURE_WRITE`) `EPERM`. A hole in the range is `ENOMEM` after the rest is
//! done, unless a VMA failed.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{AddressSpace, PopulateStep};
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagecache::{FileKind, FileObject, PunchedPages};
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma};

/// A range of a file to punch, in bytes.
pub(super) struct RemoveRange {
    file: Arc<FileObject>,
    offset: u64,
    len: u64,
    /// Where it is mapped in the address space.
    start: u64,
}

/// What `MADV_REMOVE` will do once the VMA tree's lock is released: punch `ranges`
/// in order, then fail with `then` if a VMA refused.
pub(super) struct RemovePlan {
    ranges: Vec<RemoveRange>,
    then: Option<MmError>,
}

/// The plan for `parts` (the range's pieces of VMAs, in address order).
pub(super) fn remove_plan(parts: &[Vma]) -> RemovePlan {
    let mut ranges = Vec::new();
    for v in parts {
        let refused = match v.file() {
            _ if v.flags.contains(VmFlags::LOCKED) => Some(MmError::InvalidArgument),
            None => Some(MmError::InvalidArgument),
            Some(_) if !v.flags.contains(VmFlags::SHARED | VmFlags::MAYWRITE) => {
                Some(MmError::AccessDenied)
            }
            Some(f) if f.kind() != FileKind::Shmem => Some(MmError::NotSupported),
            Some(_) => None,
        };
        if let Some(e) = refused {
            return RemovePlan {
                ranges,
                then: Some(e),
            };
        }
        if let Some(file) = v.file() {
            ranges.push(RemoveRange {
                file: file.clone(),
                offset: v.pgoff * PAGE_SIZE,
                len: v.len_bytes(),
                start: v.start,
            });
        }
    }
    RemovePlan { ranges, then: None }
}

/// An `MADV_REMOVE` checked and not yet punched ([`AddressSpace::plan_remove`]): the
/// kernel reports `UFFD_EVENT_REMOVE` for its ranges and waits for the handlers to
/// read it before it punches ([`AddressSpace::punch_remove`]), as Linux 6.12's
/// `madvise_remove` calls `userfaultfd_remove` before `vfs_fallocate`.
pub struct PlannedRemove {
    plan: RemovePlan,
    hole: bool,
}

impl PlannedRemove {
    /// The address ranges `[start, end)` it will punch (the parts of the range, in
    /// order, before the first VMA that refused), each within one VMA.
    pub fn address_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.plan.ranges.iter().map(|r| (r.start, r.start + r.len))
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// The first step of `madvise(addr, len, MADV_REMOVE)`: the range checked and its
    /// parts gathered, nothing punched yet (`None` for an empty range, which does
    /// nothing). The errors of [`madvise`](Self::madvise) that come before any VMA is
    /// looked at come from here; the others (a VMA that refuses, a hole) from
    /// [`punch_remove`](Self::punch_remove), after the parts before them are punched.
    pub fn plan_remove(&self, addr: u64, len: u64) -> Result<Option<PlannedRemove>, MmError> {
        let Some(end) = self.madvise_range(addr, len)? else {
            return Ok(None);
        };
        let st = self.state().write();
        super::mseal::check_madvise_unsealed(&st.tree, addr, end, super::Advice::Remove)?;
        let hole = !st.tree.is_covered(addr, end);
        let parts: Vec<Vma> = st
            .tree
            .overlapping(addr, end)
            .map(|v| v.clip(addr, end))
            .collect();
        let plan = remove_plan(&parts);
        Ok(Some(PlannedRemove { plan, hole }))
    }

    /// The second step of `MADV_REMOVE` (see [`plan_remove`](Self::plan_remove)):
    /// punches the planned ranges, unmapping each hole through the kernel's hook.
    pub fn punch_remove(&self, planned: PlannedRemove) -> Result<PopulateStep, MmError> {
        self.punch_planned(planned.plan, planned.hole, &|file, hole| {
            self.unmap_hole_default(file, hole)
        })
    }

    /// Punches `plan`'s ranges (this tree's lock released), `unmap` taking each
    /// hole's pages out of the mappings; then the plan's error, or `ENOMEM` for a
    /// `hole` in the range. `EPERM`, stopping there, at a file whose writes are
    /// sealed.
    pub(super) fn punch_planned(
        &self,
        plan: RemovePlan,
        hole: bool,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> Result<PopulateStep, MmError> {
        for r in &plan.ranges {
            // The seal check and the punch in one step against `F_ADD_SEALS`.
            let punched = r.file.punch_unless_sealed(|| {
                if let Some(pages) = r.file.hugetlb() {
                    // Off huge-page boundaries too: the partial pages are zeroed.
                    pages.punch_bytes(r.offset, r.offset + r.len);
                    return;
                }
                r.file.punch_range_with(
                    r.offset / PAGE_SIZE,
                    (r.offset + r.len) / PAGE_SIZE,
                    unmap,
                );
            });
            if punched.is_none() {
                return Err(MmError::PermissionDenied);
            }
        }
        match plan.then {
            Some(e) => Err(e),
            None if hole => Err(MmError::NoMemory),
            None => Ok(PopulateStep::Done),
        }
    }

    /// How `MADV_REMOVE` unmaps a hole by default: the kernel's hook (every address
    /// space), or this address space alone when none is installed.
    pub(super) fn unmap_hole_default(&self, file: &FileObject, hole: &PunchedPages) {
        match crate::pagecache::hole_unmap_hook() {
            Some(hook) => hook(file, hole),
            None => {
                self.unmap_shmem_hole(file, hole);
            }
        }
    }
}

#[cfg(test)]
#[path = "madvise_remove_tests.rs"]
mod tests;
