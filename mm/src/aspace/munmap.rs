//! `munmap`: removes `[addr, addr + len)` from the VMA tree (splitting the VMAs at
//! its edges), zaps its entries and releases their frames after one batched flush.

use super::mseal::check_unsealed;
use super::zap::Zap;
use super::AddressSpace;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;

impl<P: PageTable> AddressSpace<P> {
    /// `munmap(addr, len)`. `EINVAL` for an unaligned address, a zero length or a
    /// range leaving user space; `ENOMEM` (and no change) if splitting would exceed
    /// `max_map_count`. Unmapping nothing is not an error.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidArgument)?;
        let end = addr.checked_add(len).ok_or(MmError::InvalidArgument)?;
        if end > self.layout().task_size {
            return Err(MmError::InvalidArgument);
        }
        let mut st = self.state().write();
        check_unsealed(&st.tree, addr, end)?;
        hugetlb_edges_aligned(&st.tree, addr, end)?;
        let max = self.tunables().max_map_count();
        let old = st.tree.rewrite(addr, end, max, &mut |_| None, None)?;
        // The VMAs are gone: faults in other VMAs may proceed while the pages are
        // zapped (a fault in this range now finds no VMA); mmap and other writers still
        // wait, so nothing new can be mapped into the range before the zap is done.
        let _shared = super::lock::WriteGuard::downgrade(st);
        self.zap_vmas(&old);
        Ok(())
    }

    /// Zaps the pages of `vmas` (already removed from the tree) and frees their frames
    /// after batched flushes, as large as a teardown's (a 64th of free memory): each
    /// flush is a shootdown IPI to every other CPU running the address space.
    pub(super) fn zap_vmas(&self, vmas: &[crate::vma::Vma]) {
        if !vmas.is_empty() {
            let mut zap = Zap::with_batch(self.frames(), &**self.tlb(), self.teardown_batch());
            for v in vmas {
                zap.vma_range(self.page_table(), v, v.start, v.end);
                if let Some(map) = &v.hugetlb {
                    map.unmapped(v.start, v.end);
                }
            }
            zap.finish();
            for v in vmas {
                self.release_swap_range(v.start, v.end);
            }
        }
    }

    /// Unmaps `[start, end)` with the tree write-locked.
    pub(crate) fn unmap_locked(
        &self,
        tree: &mut crate::vma::VmaTree,
        start: u64,
        end: u64,
    ) -> Result<(), MmError> {
        check_unsealed(tree, start, end)?;
        hugetlb_edges_aligned(tree, start, end)?;
        let max = self.tunables().max_map_count();
        let old = tree.rewrite(start, end, max, &mut |_| None, None)?;
        self.zap_vmas(&old);
        Ok(())
    }

    /// Zaps the pages of `parts` (pieces of VMAs still in the tree: `MADV_DONTNEED`,
    /// `MADV_FREE`), their reservations kept; a private hugetlb page of
    /// the mapping's own gets its reservation back, as on Linux 6.12. Swap entries go
    /// too and their slots are released: the next fault finds nothing there and maps a
    /// zeroed page, or the file's page in a private file mapping (as Linux's
    /// `zap_pte_range` frees swap entries).
    pub(super) fn zap_parts(&self, parts: &[crate::vma::Vma]) {
        let own_hugetlb_pages = self.hugetlb_private_pages(parts);
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        for v in parts {
            zap.vma_range(self.page_table(), v, v.start, v.end);
        }
        zap.finish();
        super::hugetlb_trunc::restore_reservations(own_hugetlb_pages);
        for v in parts {
            self.release_swap_range(v.start, v.end);
        }
    }
}

/// `EINVAL` if `start` or `end` falls inside a hugetlb VMA off its page boundary
/// (checked before a change starts; [`VmaTree::rewrite`] checks it again).
///
/// [`VmaTree::rewrite`]: crate::vma::VmaTree
pub(crate) fn hugetlb_edges_aligned(
    tree: &crate::vma::VmaTree,
    start: u64,
    end: u64,
) -> Result<(), MmError> {
    tree.hugetlb_edges_aligned(start, end)
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::{anon_rw, harness};
    use crate::errno::MmError;
    use crate::fault::{Access, FaultError};
    use crate::frame::PAGE_SIZE;

    #[test]
    fn splits_frees_and_flushes_once() {
        let h = harness();
        let a = anon_rw(&h.aspace, 8);
        h.aspace
            .write_bytes(a, &[1u8; 8 * PAGE_SIZE as usize])
            .unwrap();
        assert_eq!(h.soft.live(), 8);
        let flushes = h.tlb.flushes();
        h.aspace
            .munmap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE - 100)
            .unwrap();
        assert_eq!(h.tlb.flushes(), flushes + 1);
        assert_eq!(h.soft.live(), 5);
        assert_eq!(h.aspace.vma_count(), 2);
        assert!(matches!(
            h.aspace.fault(a + 3 * PAGE_SIZE, Access::Read, true),
            Err(FaultError::MapErr)
        ));
        h.aspace.check_invariants().unwrap();
        // Nothing mapped there any more: fine.
        h.aspace.munmap(a + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
    }

    #[test]
    fn errno_and_map_count() {
        let h = harness();
        assert_eq!(h.aspace.munmap(0x10001, 10), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.munmap(0x10000, 0), Err(MmError::InvalidArgument));
        assert_eq!(
            h.aspace.munmap(!0xfff, 0x2000),
            Err(MmError::InvalidArgument)
        );
        let a = anon_rw(&h.aspace, 4);
        h.aspace.tunables().set_max_map_count(1);
        assert_eq!(
            h.aspace.munmap(a + PAGE_SIZE, PAGE_SIZE),
            Err(MmError::NoMemory)
        );
        assert_eq!(h.aspace.vma_count(), 1);
        h.aspace.munmap(a, PAGE_SIZE).unwrap();
        assert_eq!(
            h.aspace.vma_at(a + PAGE_SIZE).unwrap().start(),
            a + PAGE_SIZE
        );
    }
}
