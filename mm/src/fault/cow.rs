//! Copy-on-write: a write to a private page whose entry is read-only. If the frame
//! has other owners (a fork sibling, the page cache) it is copied into a new frame;
//! if this entry is its only owner, the entry is just made writable.
//!
//! While it decides and copies, the fault holds the entry's `BUSY` bit, so no other
//! fault replaces the entry and the old frame keeps this entry's reference until the
//! new entry is in place and the TLB flushed.

use super::{vma_pte_perms, FaultError, FaultResolved};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::tlb::TlbBatch;
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// Resolves a write to the read-only private entry `pte` at `page`.
    pub(super) fn cow_fault(
        &self,
        vma: &Vma,
        page: u64,
        pte: Pte,
    ) -> Result<FaultResolved, FaultError> {
        let pt = self.page_table();
        let locked = pte.with_flags(pte.flags | PteFlags::BUSY);
        if pt.replace(VirtAddr::new(page), pte, locked).is_err() {
            return Ok(FaultResolved::Spurious);
        }
        let old = pte.pfn;
        let writable = vma_pte_perms(vma.flags) | PteFlags::ACCESSED | PteFlags::DIRTY;
        if self.frames().count(old) == 1 {
            self.unlock_entry(page, Pte::new(old, writable));
            return Ok(FaultResolved::CowReused);
        }
        let new = match self.frames().alloc_copy_placed(
            old,
            VirtAddr::new(page),
            self.placement(vma, page),
        ) {
            Ok(pfn) => pfn,
            Err(e) => {
                self.unlock_entry(page, pte);
                return Err(e.into());
            }
        };
        self.unlock_entry(page, Pte::new(new, writable));
        let mut batch = TlbBatch::new();
        batch.add_page(VirtAddr::new(page));
        batch.flush(&**self.tlb());
        self.frames().put(old);
        Ok(FaultResolved::CowCopied)
    }

    /// Stores `new` over an entry this thread holds `BUSY`, keeping hardware bits set
    /// meanwhile.
    pub(crate) fn unlock_entry(&self, page: u64, new: Pte) {
        let pt = self.page_table();
        loop {
            let Some(cur) = pt.query(VirtAddr::new(page)) else {
                debug_assert!(false, "a BUSY entry vanished");
                return;
            };
            let hw = if cur.pfn == new.pfn {
                cur.flags & PteFlags::HW
            } else {
                PteFlags::empty()
            };
            let store = new.with_flags((new.flags | hw) - PteFlags::BUSY);
            if pt.replace(VirtAddr::new(page), cur, store).is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use crate::fault::{Access, FaultResolved};
    use crate::pagetable::{PageTable, PteFlags};

    #[test]
    fn write_after_fork_copies_then_reuses() {
        let h = harness();
        let a = anon_rw(&h.aspace, 1);
        h.aspace.write_bytes(a, b"parent").unwrap();
        let child = fork(&h);
        let ppte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        let cpte = child.page_table().query(VirtAddr::new(a)).unwrap();
        assert_eq!(ppte.pfn, cpte.pfn);
        assert!(!ppte.flags.contains(PteFlags::WRITE) && !cpte.flags.contains(PteFlags::WRITE));
        assert_eq!(h.frames.count(ppte.pfn), 2);

        assert_eq!(
            child.fault(a, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        let cpte2 = child.page_table().query(VirtAddr::new(a)).unwrap();
        assert_ne!(cpte2.pfn, ppte.pfn);
        assert!(cpte2.flags.contains(PteFlags::WRITE | PteFlags::DIRTY));
        assert_eq!(h.frames.count(ppte.pfn), 1);
        // The parent is now the only owner: no copy.
        assert_eq!(
            h.aspace.fault(a, Access::Write, true).unwrap(),
            FaultResolved::CowReused
        );
        assert_eq!(
            h.aspace.page_table().query(VirtAddr::new(a)).unwrap().pfn,
            ppte.pfn
        );
        let mut buf = [0u8; 6];
        child.read_bytes(a, &mut buf).unwrap();
        assert_eq!(&buf, b"parent");
        assert!(h.tlb.flushes() >= 1);
        drop(child);
        assert_eq!(h.soft.live(), 1);
    }
}
