//! Reading and writing an address space's memory through its page table, with the
//! permission checks and faults a user access would take: the slow path for
//! `/proc/<pid>/mem`, `process_vm_readv/writev` and the ELF loader's stack setup, and
//! how host tests play the MMU. (Syscall `copy_from_user` goes through the real MMU.)
//!
//! Each page is pinned by holding its entry's `BUSY` bit while the bytes are copied,
//! so no concurrent copy-on-write or zap can release the frame under the copy.

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::fault::{Access, FaultError};
use crate::frame::{Pfn, PAGE_SIZE};
use crate::pagetable::{PageTable, PteFlags};

/// Why a remote access failed: the fault it could not resolve.
pub type AccessError = FaultError;

impl<P: PageTable> AddressSpace<P> {
    /// Copies `buf.len()` bytes at `addr` into `buf`, faulting pages in as a user read
    /// would.
    pub fn read_bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), AccessError> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = addr + done as u64;
            let off = (va % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            let chunk = &mut buf[done..done + n];
            self.with_page(va - off as u64, Access::Read, |pfn| {
                self.frames().read(pfn, off, chunk)
            })?;
            done += n;
        }
        Ok(())
    }

    /// Copies `data` to `addr`, faulting pages in (and breaking copy-on-write) as a
    /// user write would.
    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), AccessError> {
        let mut done = 0usize;
        while done < data.len() {
            let va = addr + done as u64;
            let off = (va % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(data.len() - done);
            let chunk = &data[done..done + n];
            self.with_page(va - off as u64, Access::Write, |pfn| {
                self.frames().write(pfn, off, chunk)
            })?;
            done += n;
        }
        Ok(())
    }

    /// Runs `f` on the frame at `page` once its entry allows `access`, holding the
    /// entry's `BUSY` bit; sets the accessed (and dirty) bits as the MMU would.
    fn with_page(&self, page: u64, access: Access, f: impl FnOnce(Pfn)) -> Result<(), AccessError> {
        let need = access.pte_flag() | PteFlags::READ;
        let mut f = Some(f);
        let mut backoff = crate::cpu::Backoff::new();
        loop {
            {
                let _st = self.state().read();
                if let Some(head) = self.page_table().query_huge(VirtAddr::new(page)) {
                    match self.with_huge_page(page, head, need, access, &mut f) {
                        Some(true) => return Ok(()),
                        Some(false) => continue,
                        None => {}
                    }
                } else if let Some(pte) = self.page_table().query(VirtAddr::new(page)) {
                    if pte.flags.contains(PteFlags::BUSY) {
                        backoff.snooze();
                        continue;
                    }
                    if pte.flags.contains(need) {
                        let locked = pte.with_flags(pte.flags | PteFlags::BUSY);
                        if self
                            .page_table()
                            .replace(VirtAddr::new(page), pte, locked)
                            .is_err()
                        {
                            continue;
                        }
                        if let Some(f) = f.take() {
                            f(pte.pfn);
                        }
                        let hw = match access {
                            Access::Write => PteFlags::ACCESSED | PteFlags::DIRTY,
                            _ => PteFlags::ACCESSED,
                        };
                        self.unlock_entry(page, pte.with_flags(pte.flags | hw));
                        return Ok(());
                    }
                }
            }
            match self.fault(page, access, true) {
                // A swap-in whose read already finished (a synchronous device): retry.
                Err(crate::fault::FaultError::NeedsWait(wait)) if wait.is_ready() => {}
                other => {
                    other?;
                }
            }
        }
    }

    /// `with_page` for a page under the huge leaf `head` (a leaf is locked whole, so
    /// it is not split for a remote access). `Some(true)`: done; `Some(false)`: the
    /// leaf changed, look again; `None`: the access needs a fault.
    fn with_huge_page(
        &self,
        page: u64,
        head: crate::pagetable::Pte,
        need: PteFlags,
        access: Access,
        f: &mut Option<impl FnOnce(Pfn)>,
    ) -> Option<bool> {
        let base = crate::pagetable::huge_base(page);
        if head.flags.contains(PteFlags::BUSY) {
            crate::cpu::Backoff::new().snooze();
            return Some(false);
        }
        if !head.flags.contains(need) {
            return None;
        }
        let pt = self.page_table();
        let locked = head.with_flags(head.flags | PteFlags::BUSY);
        if pt.replace_huge(VirtAddr::new(base), head, locked).is_err() {
            return Some(false);
        }
        if let Some(f) = f.take() {
            f(Pfn(head.pfn.0 + ((page - base) >> crate::frame::PAGE_SHIFT)));
        }
        let hw = match access {
            Access::Write => PteFlags::ACCESSED | PteFlags::DIRTY,
            _ => PteFlags::ACCESSED,
        };
        // Only this thread changes a BUSY leaf (the CPU may set hardware bits).
        let mut cur = locked;
        loop {
            let done = cur.with_flags((cur.flags | hw) - PteFlags::BUSY);
            match pt.replace_huge(VirtAddr::new(base), cur, done) {
                Ok(()) => return Some(true),
                Err(Some(now)) => cur = now,
                Err(None) => return Some(true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, harness};
    use crate::fault::FaultError;
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, PteFlags};
    use crate::vma::Prot;

    #[test]
    fn round_trip_across_pages_sets_dirty() {
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        let data: std::vec::Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        h.aspace.write_bytes(a + 3000, &data).unwrap();
        let mut back = std::vec![0u8; 6000];
        h.aspace.read_bytes(a + 3000, &mut back).unwrap();
        assert_eq!(back, data);
        let pte = h
            .aspace
            .page_table()
            .query(VirtAddr::new(a + PAGE_SIZE))
            .unwrap();
        assert!(pte.flags.contains(PteFlags::DIRTY | PteFlags::ACCESSED));
        assert!(!pte.flags.contains(PteFlags::BUSY));
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 3 * PAGE_SIZE)),
            3
        );
    }

    #[test]
    fn permissions_are_checked() {
        let h = harness();
        let a = anon_rw(&h.aspace, 1);
        h.aspace.mprotect(a, PAGE_SIZE, Prot::READ).unwrap();
        assert!(matches!(
            h.aspace.write_bytes(a, b"x"),
            Err(FaultError::AccErr)
        ));
        let mut b = [1u8];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(b, [0]);
        assert!(matches!(
            h.aspace.read_bytes(a + PAGE_SIZE, &mut b),
            Err(FaultError::MapErr)
        ));
    }
}
