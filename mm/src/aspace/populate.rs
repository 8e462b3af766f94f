//! Pre-faulting a range (`MAP_POPULATE`, `MAP_LOCKED`, `MADV_POPULATE_READ/WRITE`):
//! the same faults userland would take, page by page, stopping at a wait so the
//! kernel can `.await` it and resume.

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::fault::{Access, FaultError, FaultFuture};
use crate::frame::PAGE_SIZE;
use crate::pagetable::{PageTable, PteFlags};

/// How far [`AddressSpace::populate_range`] got.
#[derive(Debug)]
pub enum PopulateStep {
    /// Every page is mapped with the access.
    Done,
    /// A page must wait: `.await` this, then call again from `resume_at`.
    Wait {
        /// The wait.
        wait: FaultFuture,
        /// The first page not yet populated.
        resume_at: u64,
    },
}

impl<P: PageTable> AddressSpace<P> {
    /// Faults in every page of `[start, end)` (page-aligned) for `access`, returning at
    /// the first page that must wait. Errors follow `MADV_POPULATE_*`: an unmapped
    /// page is `ENOMEM`, a forbidden access or `SIGBUS` is `EFAULT`.
    pub fn populate_range(
        &self,
        start: u64,
        end: u64,
        access: Access,
    ) -> Result<PopulateStep, MmError> {
        let mut va = start;
        while va < end {
            let mapped = self
                .page_table()
                .query(VirtAddr::new(va))
                .is_some_and(|p| p.flags.contains(access.pte_flag() | PteFlags::READ));
            if !mapped {
                match self.fault(va, access, false) {
                    Ok(_) => {}
                    Err(FaultError::NeedsWait(wait)) => {
                        return Ok(PopulateStep::Wait {
                            wait,
                            resume_at: va,
                        })
                    }
                    Err(FaultError::MapErr) | Err(FaultError::Oom) => {
                        return Err(MmError::NoMemory)
                    }
                    Err(FaultError::AccErr) | Err(FaultError::SigBus) => {
                        return Err(MmError::BadAddress)
                    }
                }
            }
            va += PAGE_SIZE;
        }
        Ok(PopulateStep::Done)
    }

    /// [`populate_range`](Self::populate_range) to the end, awaiting every wait.
    pub async fn populate(&self, start: u64, end: u64, access: Access) -> Result<(), MmError> {
        let mut at = start;
        loop {
            match self.populate_range(at, end, access)? {
                PopulateStep::Done => return Ok(()),
                PopulateStep::Wait { wait, resume_at } => {
                    wait.await;
                    at = resume_at;
                }
            }
        }
    }

    /// Pre-faults `[start, end)`, skipping pages that would wait and ignoring errors
    /// (`MAP_POPULATE` is best effort). Returns false when it stopped early (no
    /// mapping, no access or no memory there: the rest is not tried either).
    pub fn prefault_best_effort(&self, start: u64, end: u64, write: bool) -> bool {
        let access = if write { Access::Write } else { Access::Read };
        let mut va = start;
        while va < end {
            if let Err(FaultError::MapErr | FaultError::AccErr | FaultError::Oom) =
                self.fault(va, access, false)
            {
                return false;
            }
            va += PAGE_SIZE;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, block_on, harness};

    #[test]
    fn populate_read_and_write() {
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        assert!(matches!(
            h.aspace.populate_range(a, a + 3 * PAGE_SIZE, Access::Write),
            Ok(PopulateStep::Done)
        ));
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 3 * PAGE_SIZE)),
            3
        );
        assert_eq!(
            h.aspace
                .populate_range(a, a + 4 * PAGE_SIZE, Access::Read)
                .unwrap_err(),
            MmError::NoMemory
        );
        assert_eq!(
            h.aspace
                .populate_range(a, a + PAGE_SIZE, Access::Exec)
                .unwrap_err(),
            MmError::BadAddress
        );
        block_on(h.aspace.populate(a, a + 3 * PAGE_SIZE, Access::Read)).unwrap();
    }
}
