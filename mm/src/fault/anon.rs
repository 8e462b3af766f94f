//! Demand-zero: the first touch of an anonymous private page maps a fresh zeroed
//! frame, installed by compare-and-swap so that racing faults map exactly one.

use super::{fresh_hw_bits, vma_pte_perms, Access, FaultError, FaultResolved};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::pagetable::{PageTable, Pte};
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// Maps a zeroed frame at `page` (no entry there; the VMA allows `access`).
    pub(super) fn demand_zero(
        &self,
        vma: &Vma,
        page: u64,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        let pfn = self
            .frames()
            .alloc_zeroed_placed(VirtAddr::new(page), self.placement(vma, page))?;
        // The frame is ours alone, so it may be writable from the start.
        let flags = vma_pte_perms(vma.flags) | fresh_hw_bits(access);
        self.install_or_release(page, Pte::new(pfn, flags), FaultResolved::DemandZero)
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, harness};
    use crate::fault::{Access, FaultError, FaultResolved};
    use crate::pagetable::{PageTable, PteFlags};

    #[test]
    fn first_touch_maps_zeroed_page_once() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        assert_eq!(
            h.aspace.fault(a + 5, Access::Read, true).unwrap(),
            FaultResolved::DemandZero
        );
        assert_eq!(
            h.aspace.fault(a + 9, Access::Read, true).unwrap(),
            FaultResolved::Spurious
        );
        let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert!(pte
            .flags
            .contains(PteFlags::READ | PteFlags::WRITE | PteFlags::ACCESSED));
        assert!(!pte.flags.contains(PteFlags::DIRTY));
        let mut buf = [0xffu8; 64];
        h.aspace.read_bytes(a + 100, &mut buf).unwrap();
        assert_eq!(buf, [0; 64]);
        assert_eq!(h.soft.live(), 1);
    }

    #[test]
    fn out_of_memory_is_oom() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        h.soft.set_limit(0);
        assert!(matches!(
            h.aspace.fault(a, Access::Write, true),
            Err(FaultError::Oom)
        ));
        assert_eq!(h.aspace.page_table().query(VirtAddr::new(a)), None);
    }
}
