//! `msync`: validated with Linux's rules; a no-op otherwise, since no backing is
//! written back yet (initramfs files are in memory; shmem has no store).

use bitflags::bitflags;

use super::AddressSpace;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::VmFlags;

bitflags! {
    /// `MS_*` flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MsyncFlags: u64 {
        /// `MS_ASYNC`.
        const ASYNC = 1;
        /// `MS_INVALIDATE`.
        const INVALIDATE = 2;
        /// `MS_SYNC`.
        const SYNC = 4;
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// `msync(addr, len, flags)`: `EINVAL` for an unaligned address, unknown flags or
    /// both `MS_ASYNC` and `MS_SYNC`; `ENOMEM` for unmapped pages; `EBUSY` for
    /// `MS_INVALIDATE` over locked pages.
    pub fn msync(&self, addr: u64, len: u64, flag_bits: u64) -> Result<(), MmError> {
        let flags = MsyncFlags::from_bits(flag_bits).ok_or(MmError::InvalidArgument)?;
        if !addr.is_multiple_of(PAGE_SIZE) || flags.contains(MsyncFlags::ASYNC | MsyncFlags::SYNC) {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::NoMemory)?;
        let end = addr.checked_add(len).ok_or(MmError::NoMemory)?;
        if end == addr {
            return Ok(());
        }
        let st = self.state().read();
        if flags.contains(MsyncFlags::INVALIDATE)
            && st
                .tree
                .overlapping(addr, end)
                .any(|v| v.flags.contains(VmFlags::LOCKED))
        {
            return Err(MmError::Busy);
        }
        if !st.tree.is_covered(addr, end) {
            return Err(MmError::NoMemory);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::{anon_rw, harness};
    use crate::errno::MmError;
    use crate::frame::PAGE_SIZE;

    #[test]
    fn validation() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        assert_eq!(h.aspace.msync(a, 2 * PAGE_SIZE, 4), Ok(()));
        assert_eq!(h.aspace.msync(a, 0, 1), Ok(()));
        assert_eq!(h.aspace.msync(a + 1, 10, 4), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.msync(a, 10, 5), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.msync(a, 10, 8), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.msync(a, 3 * PAGE_SIZE, 4), Err(MmError::NoMemory));
    }
}
