//! `mseal`: sealing a range of VMAs so that its mappings can no longer be changed.
//!
//! A sealed VMA (`VM_SEALED`) refuses, with `EPERM`, everything that would remove,
//! move, resize or reprotect it: `munmap`, `mremap` from or onto it, `mprotect` and
//! `pkey_mprotect`, `MAP_FIXED` over it, `brk` shrinking into it, and the destructive
//! `madvise` advice on read-only private anonymous memory (where discarding pages
//! would change what the program reads). Every operation checks the whole range
//! before it changes anything, so a refusal leaves the mappings exactly as they were
//! (Linux 6.12 checks some of these VMA by VMA and can leave earlier VMAs changed).
//! The seal is a VMA flag, so it follows the VMA through splits and into a fork
//! child, and is never lifted.

use super::{AddressSpace, Advice};
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma, VmaTree};

/// The page range `[addr, addr + len)` a call like mseal or `PR_SET_VMA` names, `len`
/// rounded up to whole pages: `EINVAL` for an unaligned `addr` or a range past the end
/// of the address space, `None` for an empty one (the call does nothing).
pub(crate) fn page_range(addr: u64, len: u64) -> Result<Option<(u64, u64)>, MmError> {
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::InvalidArgument);
    }
    let len = len
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(MmError::InvalidArgument)?;
    let end = addr.checked_add(len).ok_or(MmError::InvalidArgument)?;
    Ok((end != addr).then_some((addr, end)))
}

/// `EPERM` when a VMA overlapping `[start, end)` is sealed.
pub(crate) fn check_unsealed(tree: &VmaTree, start: u64, end: u64) -> Result<(), MmError> {
    if tree
        .overlapping(start, end)
        .any(|v| v.flags.contains(VmFlags::SEALED))
    {
        Err(MmError::PermissionDenied)
    } else {
        Ok(())
    }
}

impl Advice {
    /// Linux's `is_madv_discard`: advice that throws away a VMA's pages or its
    /// contents in a child.
    fn discards(self) -> bool {
        matches!(
            self,
            Advice::DontNeed
                | Advice::Free
                | Advice::Remove
                | Advice::DontFork
                | Advice::WipeOnFork
        )
    }
}

/// Linux's `is_ro_anon`: private anonymous memory the program cannot write.
fn is_read_only_anon(v: &Vma) -> bool {
    v.file().is_none() && !v.flags.contains(VmFlags::SHARED) && !v.flags.contains(VmFlags::WRITE)
}

/// `EPERM` when `advice` would discard the pages of a sealed read-only anonymous
/// VMA overlapping `[start, end)`.
pub(crate) fn check_madvise_unsealed(
    tree: &VmaTree,
    start: u64,
    end: u64,
    advice: Advice,
) -> Result<(), MmError> {
    if advice.discards()
        && tree
            .overlapping(start, end)
            .any(|v| v.flags.contains(VmFlags::SEALED) && is_read_only_anon(v))
    {
        Err(MmError::PermissionDenied)
    } else {
        Ok(())
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// `mseal(addr, len, flags)`: seals every VMA part in the range. `EINVAL` for
    /// non-zero flags, an unaligned address or a range that wraps; `ENOMEM` (nothing
    /// sealed) when the range has a hole; a zero length does nothing.
    pub fn mseal(&self, addr: u64, len: u64, flags: u64) -> Result<(), MmError> {
        if flags != 0 {
            return Err(MmError::InvalidArgument);
        }
        let Some((addr, end)) = page_range(addr, len)? else {
            return Ok(());
        };
        let mut st = self.state().write();
        if end > self.layout().task_size || !st.tree.is_covered(addr, end) {
            return Err(MmError::NoMemory);
        }
        let max = self.tunables().max_map_count();
        st.tree.edit_each(addr, end, max, &mut |v: &mut Vma| {
            v.flags |= VmFlags::SEALED;
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use crate::aspace::MmapRequest;
    use crate::vma::{MapFlags, Prot};

    /// Every VMA's (start, end, flags) and the resident page count: what a refused
    /// call must leave alone.
    fn snapshot<Q: PageTable>(a: &AddressSpace<Q>) -> (alloc::vec::Vec<(u64, u64, VmFlags)>, u64) {
        let vmas = a
            .vmas()
            .iter()
            .map(|v| (v.start(), v.end(), v.flags()))
            .collect();
        (vmas, a.resident_pages())
    }

    #[test]
    fn sealed_range_refuses_every_change() {
        let h = harness();
        let a = anon_rw(&h.aspace, 6);
        h.aspace
            .write_bytes(a, &[7u8; 6 * PAGE_SIZE as usize])
            .unwrap();
        // Seal the middle two pages: the VMA splits in three.
        h.aspace.mseal(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, 0).unwrap();
        assert_eq!(h.aspace.vma_count(), 3);
        let sealed = h.aspace.vma_at(a + 2 * PAGE_SIZE).unwrap();
        assert!(sealed.flags().contains(VmFlags::SEALED));
        assert!(crate::procfs::smaps(&h.aspace).contains(" sl"));
        let before = snapshot(&h.aspace);
        let eperm = Err(MmError::PermissionDenied);
        // Ranges that only overlap the sealed part still change nothing.
        assert_eq!(h.aspace.munmap(a, 3 * PAGE_SIZE), eperm);
        assert_eq!(h.aspace.mprotect(a, 6 * PAGE_SIZE, Prot::READ), eperm);
        assert_eq!(
            h.aspace
                .mremap(a + 2 * PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE, 1, 0)
                .map(drop),
            eperm
        );
        assert_eq!(
            h.aspace
                .mremap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, PAGE_SIZE, 0, 0)
                .map(drop),
            eperm
        );
        // mremap onto the sealed range from elsewhere.
        let b = anon_rw(&h.aspace, 1);
        let before_b = snapshot(&h.aspace);
        assert_eq!(
            h.aspace
                .mremap(b, PAGE_SIZE, PAGE_SIZE, 1 | 2, a + 3 * PAGE_SIZE)
                .map(drop),
            eperm
        );
        assert_eq!(snapshot(&h.aspace), before_b);
        h.aspace.munmap(b, PAGE_SIZE).unwrap();
        let fixed = MmapRequest::anon(
            a + PAGE_SIZE,
            2 * PAGE_SIZE,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::FIXED,
        );
        assert_eq!(h.aspace.mmap(&fixed, false).map(drop), eperm);
        assert_eq!(snapshot(&h.aspace), before);
        // The writable sealed part may still be discarded (Linux: only read-only
        // anonymous memory is protected from madvise).
        let mut byte = [0u8];
        h.aspace.read_bytes(a + 2 * PAGE_SIZE, &mut byte).unwrap();
        assert_eq!(byte, [7]);
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn madvise_discard_on_read_only_sealed_anon() {
        let h = harness();
        let req = MmapRequest::anon(0, 2 * PAGE_SIZE, Prot::READ, MapFlags::PRIVATE);
        let a = h.aspace.mmap(&req, false).unwrap();
        h.aspace.mseal(a, 2 * PAGE_SIZE, 0).unwrap();
        for advice in [
            Advice::DontNeed,
            Advice::Free,
            Advice::DontFork,
            Advice::WipeOnFork,
        ] {
            assert_eq!(
                h.aspace.madvise(a, PAGE_SIZE, advice).map(|_| ()),
                Err(MmError::PermissionDenied),
                "{advice:?}"
            );
        }
        assert!(h.aspace.madvise(a, PAGE_SIZE, Advice::WillNeed).is_ok());
        let w = anon_rw(&h.aspace, 1);
        h.aspace.mseal(w, PAGE_SIZE, 0).unwrap();
        assert!(h.aspace.madvise(w, PAGE_SIZE, Advice::DontNeed).is_ok());
    }

    #[test]
    fn errno_fork_and_untouched_neighbours() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let einval = Err(MmError::InvalidArgument);
        assert_eq!(h.aspace.mseal(a, PAGE_SIZE, 1), einval);
        assert_eq!(h.aspace.mseal(a + 1, PAGE_SIZE, 0), einval);
        assert_eq!(h.aspace.mseal(a, u64::MAX - 10, 0), einval);
        assert_eq!(h.aspace.mseal(!0xfff, 0x2000, 0), einval);
        assert_eq!(h.aspace.mseal(a, 0, 0), Ok(()));
        assert_eq!(
            h.aspace.mseal(a, 5 * PAGE_SIZE, 0),
            Err(MmError::NoMemory),
            "a hole after the mapping"
        );
        assert_eq!(h.aspace.vma_count(), 1, "nothing sealed");
        h.aspace.mseal(a, PAGE_SIZE, 0).unwrap();
        // The unsealed rest is free to change, and splits keep the seal where it is.
        h.aspace
            .mprotect(a + PAGE_SIZE, PAGE_SIZE, Prot::READ)
            .unwrap();
        h.aspace.munmap(a + 3 * PAGE_SIZE, PAGE_SIZE).unwrap();
        assert!(h
            .aspace
            .vma_at(a)
            .unwrap()
            .flags()
            .contains(VmFlags::SEALED));
        assert!(!h
            .aspace
            .vma_at(a + PAGE_SIZE)
            .unwrap()
            .flags()
            .contains(VmFlags::SEALED));
        let child = fork(&h);
        assert!(child.vma_at(a).unwrap().flags().contains(VmFlags::SEALED));
        assert_eq!(child.munmap(a, PAGE_SIZE), Err(MmError::PermissionDenied));
        // brk cannot shrink into a seal either: teardown is the only way out.
        child.teardown();
        assert_eq!(child.vma_count(), 0);
    }
}
