//! Stack growth: a fault just below a `VM_GROWSDOWN` VMA extends it down to the
//! faulting page, unless that would exceed `RLIMIT_STACK`, go below
//! `mmap_min_addr`, or come within the stack guard gap of the mapping below.

use super::FaultError;
use crate::aspace::AddressSpace;
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma, VmaTree};

/// Whether the first VMA above `addr` (which no VMA contains) is a stack.
pub(super) fn below_stack(tree: &VmaTree, addr: u64) -> bool {
    tree.next_from(addr)
        .is_some_and(|v| v.flags.contains(VmFlags::GROWSDOWN))
}

impl<P: PageTable> AddressSpace<P> {
    /// Extends the stack above `page` down to `page` (takes the tree write lock).
    pub(super) fn grow_stack(&self, page: u64) -> Result<(), FaultError> {
        let mut st = self.state().write();
        if st.tree.find(page).is_some() {
            return Ok(()); // another thread grew it
        }
        let stack = st
            .tree
            .next_from(page)
            .filter(|v| v.flags.contains(VmFlags::GROWSDOWN))
            .cloned()
            .ok_or(FaultError::MapErr)?;
        if stack.end - page > self.layout().stack_rlimit_bytes
            || page < self.tunables().mmap_min_addr()
        {
            return Err(FaultError::MapErr);
        }
        if let Some(prev) = st.tree.prev(page) {
            let guarded = !prev.flags.contains(VmFlags::GROWSDOWN) && prev.flags.accessible();
            if guarded && page - prev.end < self.gap_bytes() {
                return Err(FaultError::MapErr);
            }
        }
        let grown_pages = (stack.start - page) / crate::frame::PAGE_SIZE;
        let mut piece: Vma = stack.clip(stack.start, stack.end);
        piece.end = stack.start;
        piece.start = page;
        if piece.file().is_some() {
            piece.pgoff = stack
                .pgoff
                .checked_sub(grown_pages)
                .ok_or(FaultError::MapErr)?;
        }
        let max = self.tunables().max_map_count();
        st.tree
            .rewrite(page, stack.start, max, &mut |_| None, Some(piece))
            .map_err(|_| FaultError::MapErr)?;
        st.note_vm_size();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::harness;
    use crate::aspace::MmapRequest;
    use crate::fault::{Access, FaultError, FaultResolved};
    use crate::frame::PAGE_SIZE;
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn grows_down_and_stops_at_guard_gap() {
        let h = harness();
        let gap = h.aspace.tunables().stack_guard_gap_bytes();
        let top = 0x7000_0000_0000u64;
        let req = MmapRequest::anon(
            top - 4 * PAGE_SIZE,
            4 * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED | MapFlags::GROWSDOWN,
        );
        let s = h.aspace.mmap(&req, false).unwrap();
        let below = s - 3 * PAGE_SIZE;
        assert_eq!(
            h.aspace.fault(below + 8, Access::Write, true).unwrap(),
            FaultResolved::DemandZero
        );
        assert_eq!(h.aspace.vma_at(below).unwrap().start(), below);
        assert_eq!(h.aspace.vma_count(), 1);

        // A mapping lower down: growth stops a guard gap above it.
        let low_end = below - gap - 2 * PAGE_SIZE;
        let req = MmapRequest::anon(
            low_end - PAGE_SIZE,
            PAGE_SIZE,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED,
        );
        h.aspace.mmap(&req, false).unwrap();
        assert!(h
            .aspace
            .fault(low_end + gap - 1, Access::Write, true)
            .is_err());
        assert!(h
            .aspace
            .fault(low_end + gap + PAGE_SIZE, Access::Write, true)
            .is_ok());
        assert!(matches!(
            h.aspace.fault(low_end + 8, Access::Read, true),
            Err(FaultError::MapErr)
        ));
        // Not a stack above: a plain MAPERR.
        assert!(matches!(
            h.aspace.fault(0x10_0000, Access::Read, true),
            Err(FaultError::MapErr)
        ));
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn rlimit_bounds_growth() {
        let h = harness();
        let top = 0x7000_0000_0000u64;
        let req = MmapRequest::anon(
            top - PAGE_SIZE,
            PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED | MapFlags::GROWSDOWN,
        );
        h.aspace.mmap(&req, false).unwrap();
        let limit = h.aspace.layout().stack_rlimit_bytes;
        assert!(h.aspace.fault(top - limit, Access::Write, true).is_ok());
        assert!(matches!(
            h.aspace.fault(top - limit - PAGE_SIZE, Access::Write, true),
            Err(FaultError::MapErr)
        ));
    }
}
