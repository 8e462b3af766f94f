//! The userfaultfd seam: registering a [`FaultInterceptor`] on a range (it then sees
//! every missing-page fault there) and resolving such a fault by installing a page
//! with given contents (`UFFDIO_COPY`/`UFFDIO_ZEROPAGE`).

use alloc::sync::Arc;

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::fault::{fresh_hw_bits, intercept_mode, vma_pte_perms, Access, FaultInterceptor};
use crate::frame::PAGE_SIZE;
use crate::pagecache::FileKind;
use crate::pagetable::{InstallError, PageTable, Pte, PteFlags};
use crate::phys::{AllocFailure, PAGE_BYTES};
use crate::tlb::TlbBatch;
use crate::vma::{Backing, Vma};

/// Whether two hooks are the same object (data pointers; vtables may differ).
fn same_hook(a: &Arc<dyn FaultInterceptor>, b: &Arc<dyn FaultInterceptor>) -> bool {
    core::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Whether `vma` can be intercepted in `modes`: missing and write-protect modes on
/// private anonymous memory, minor mode on shared memory.
fn vma_takes_modes(vma: &Vma, modes: u8) -> bool {
    let anon = matches!(vma.backing, Backing::Anon) && vma.is_private() && vma.hugetlb.is_none();
    let shmem = vma.file().is_some_and(|f| f.kind() == FileKind::Shmem);
    let anon_modes = intercept_mode::MISSING | intercept_mode::WP;
    (modes & anon_modes == 0 || anon) && (modes & intercept_mode::MINOR == 0 || shmem)
}

impl<P: PageTable> AddressSpace<P> {
    /// Registers `hook` on the VMAs in `[addr, addr + len)` (or unregisters with
    /// `None`), splitting them at the edges; holes are skipped, as on Linux. `EINVAL`
    /// for an unaligned range, one with no VMA, or (registering) one with file or
    /// shared memory; `EBUSY` when another hook holds part of it; `ENOMEM` over
    /// `max_map_count`.
    pub fn set_interceptor(
        &self,
        addr: u64,
        len: u64,
        hook: Option<Arc<dyn FaultInterceptor>>,
    ) -> Result<(), MmError> {
        self.register_interceptor(addr, len, hook, intercept_mode::MISSING)
    }

    /// Registers `hook` for the faults `modes` (`fault::intercept_mode` bits) names on
    /// the VMAs in `[addr, addr + len)`, or unregisters with `None`, as
    /// [`set_interceptor`](Self::set_interceptor). Missing and write-protect modes take
    /// private anonymous memory only, minor mode shared memory (shmem files) only:
    /// `EINVAL` otherwise, and for an empty or unknown mode.
    pub fn register_interceptor(
        &self,
        addr: u64,
        len: u64,
        hook: Option<Arc<dyn FaultInterceptor>>,
        modes: u8,
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(MmError::InvalidArgument);
        }
        let end = addr.checked_add(len).ok_or(MmError::InvalidArgument)?;
        let mut st = self.state().write();
        if st.tree.is_free(addr, end) {
            return Err(MmError::InvalidArgument);
        }
        if let Some(h) = &hook {
            if modes == 0 || modes & !intercept_mode::ALL != 0 {
                return Err(MmError::InvalidArgument);
            }
            for v in st.tree.overlapping(addr, end) {
                if !vma_takes_modes(v, modes) {
                    return Err(MmError::InvalidArgument);
                }
                if v.interceptor.as_ref().is_some_and(|o| !same_hook(o, h)) {
                    return Err(MmError::Busy);
                }
            }
        }
        let modes = if hook.is_some() { modes } else { 0 };
        let max = self.tunables().max_map_count();
        st.tree.edit_each(addr, end, max, &mut |n: &mut Vma| {
            n.interceptor = hook.clone();
            n.intercept_modes = modes;
        })?;
        Ok(())
    }

    /// Every interceptor registered on a VMA meeting `[addr, addr + len)`, once each
    /// (for the events of an operation on the range). Empty for a bad range.
    pub fn interceptors_in(
        &self,
        addr: u64,
        len: u64,
    ) -> alloc::vec::Vec<Arc<dyn FaultInterceptor>> {
        let mut out: alloc::vec::Vec<Arc<dyn FaultInterceptor>> = alloc::vec::Vec::new();
        let Some(end) = addr.checked_add(len) else {
            return out;
        };
        let st = self.state().read();
        for v in st.tree.overlapping(addr, end) {
            if let Some(h) = &v.interceptor {
                if !out.iter().any(|o| same_hook(o, h)) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// Every intercepted range a fork child inherits (VMAs without `MADV_DONTFORK`),
    /// in address order: `(start, end, interceptor, modes)`, one per VMA.
    pub fn inherited_registrations(
        &self,
    ) -> alloc::vec::Vec<(u64, u64, Arc<dyn FaultInterceptor>, u8)> {
        let st = self.state().read();
        st.tree
            .iter()
            .filter(|v| !v.flags.contains(crate::vma::VmFlags::DONTCOPY))
            .filter_map(|v| {
                let hook = v.interceptor.clone()?;
                Some((v.start, v.end, hook, v.intercept_modes))
            })
            .collect()
    }

    /// The intercept modes of the VMA at `addr` if `hook` intercepts it (0 otherwise).
    pub fn intercept_modes_at(&self, addr: u64, hook: &Arc<dyn FaultInterceptor>) -> u8 {
        let st = self.state().read();
        st.tree
            .find(addr)
            .filter(|v| v.interceptor.as_ref().is_some_and(|o| same_hook(o, hook)))
            .map_or(0, |v| v.intercept_modes)
    }

    /// Write-protects (`protect`) or unprotects the pages of `[addr, addr + len)`, all of
    /// which must lie in VMAs `hook` intercepts in write-protect mode (`ENOENT`
    /// otherwise, changing nothing). Protecting calls `mark(page)` for every present
    /// page, then takes its write permission away (one TLB flush for the range);
    /// unprotecting calls `mark(page)` for every page and leaves the entries read-only,
    /// so the next write goes through the ordinary fault path (copy-on-write or reuse).
    /// Pages with nothing behind them are left alone, as on Linux without
    /// `UFFD_FEATURE_WP_UNPOPULATED`.
    pub fn write_protect_range(
        &self,
        addr: u64,
        len: u64,
        hook: &Arc<dyn FaultInterceptor>,
        protect: bool,
        mark: &mut dyn FnMut(u64),
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(MmError::InvalidArgument);
        }
        let end = addr.checked_add(len).ok_or(MmError::InvalidArgument)?;
        let st = self.state().read();
        let all_wp = st.tree.is_covered(addr, end)
            && st.tree.overlapping(addr, end).all(|v| {
                v.interceptor.as_ref().is_some_and(|o| same_hook(o, hook))
                    && v.intercept_modes & intercept_mode::WP != 0
            });
        if !all_wp {
            return Err(MmError::NoEntry);
        }
        if !protect {
            for page in (addr..end).step_by(PAGE_SIZE as usize) {
                mark(page);
            }
            return Ok(());
        }
        let mut batch = TlbBatch::new();
        for page in (addr..end).step_by(PAGE_SIZE as usize) {
            if self.page_table().query(VirtAddr::new(page)).is_none() {
                continue;
            }
            mark(page);
            if let Some(old) = self
                .page_table()
                .update_flags(VirtAddr::new(page), &mut |f| f - PteFlags::WRITE)
            {
                if old.flags.contains(PteFlags::WRITE) {
                    batch.add_page(VirtAddr::new(page));
                }
            }
        }
        if !batch.is_empty() {
            self.tlb().flush(&batch);
        }
        Ok(())
    }

    /// `UFFDIO_MOVE` of one page: takes the page mapped at `src` (private anonymous,
    /// held by this entry alone) and maps it at the empty page `dst`, which must lie in
    /// a VMA `hook` intercepts. Both VMAs must be private anonymous, unlocked, with the
    /// same permissions (`EINVAL`). `Ok(false)` when `src` holds nothing (a hole);
    /// `EEXIST` when `dst` is mapped; `EBUSY` when the page is shared (after fork, KSM)
    /// or swapped out; `ENOENT` outside any VMA.
    pub fn move_page(
        &self,
        src: u64,
        dst: u64,
        hook: &Arc<dyn FaultInterceptor>,
    ) -> Result<bool, MmError> {
        if !src.is_multiple_of(PAGE_SIZE) || !dst.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let st = self.state().read();
        let dst_vma = st.tree.find(dst).ok_or(MmError::NoEntry)?;
        let src_vma = st.tree.find(src).ok_or(MmError::NoEntry)?;
        if !dst_vma
            .interceptor
            .as_ref()
            .is_some_and(|o| same_hook(o, hook))
        {
            return Err(MmError::NoEntry);
        }
        let movable = |v: &Vma| {
            matches!(v.backing, Backing::Anon)
                && v.is_private()
                && v.hugetlb.is_none()
                && !v.flags.intersects(crate::vma::VmFlags::LOCKED_MASK)
        };
        let same_access = (src_vma.flags & crate::vma::VmFlags::ACCESS)
            == (dst_vma.flags & crate::vma::VmFlags::ACCESS)
            && src_vma.flags.pkey() == dst_vma.flags.pkey();
        if !movable(src_vma) || !movable(dst_vma) || !same_access {
            return Err(MmError::InvalidArgument);
        }
        if self.page_table().query(VirtAddr::new(dst)).is_some()
            || self.page_table().query_swap(VirtAddr::new(dst)).is_some()
        {
            return Err(MmError::Exists);
        }
        let Some(pte) = self.page_table().query(VirtAddr::new(src)) else {
            return if self.page_table().query_swap(VirtAddr::new(src)).is_some() {
                Err(MmError::Busy)
            } else {
                Ok(false)
            };
        };
        if pte.flags.contains(PteFlags::BUSY) || self.frames().count(pte.pfn) != 1 {
            return Err(MmError::Busy);
        }
        // Lock the entry read-only (only if it is still the one looked at: faults there
        // retry meanwhile) and flush it from every TLB, so no write is lost; then map
        // the frame at its new place and drop the old entry.
        let locked = pte.with_flags((pte.flags | PteFlags::BUSY) - PteFlags::WRITE);
        if self
            .page_table()
            .replace(VirtAddr::new(src), pte, locked)
            .is_err()
        {
            return Err(MmError::Busy);
        }
        let mut batch = TlbBatch::new();
        batch.add_page(VirtAddr::new(src));
        self.tlb().flush(&batch);
        let hw = pte.flags & (PteFlags::ACCESSED | PteFlags::DIRTY);
        let mut flags = vma_pte_perms(dst_vma.flags) | hw;
        if !pte.flags.contains(PteFlags::WRITE) {
            flags -= PteFlags::WRITE;
        }
        match self
            .page_table()
            .install(VirtAddr::new(dst), Pte::new(pte.pfn, flags))
        {
            Ok(()) => {
                self.page_table().unmap(VirtAddr::new(src));
                Ok(true)
            }
            Err(e) => {
                // Put it back where it was.
                let _ = self.page_table().replace(VirtAddr::new(src), locked, pte);
                Err(match e {
                    InstallError::Occupied(_) => MmError::Exists,
                    InstallError::NoMemory => MmError::NoMemory,
                })
            }
        }
    }

    /// `UFFDIO_CONTINUE`: maps the page-cache page behind the empty page `addr` of a
    /// shared-memory VMA that `hook` intercepts in minor mode, with the VMA's
    /// permissions (read-only in a private mapping, which copies on write; and without
    /// write permission when `write_protect`). `ENOENT` outside such a VMA, `EFAULT`
    /// when the cache does not hold the page, `EEXIST` when a page is mapped there.
    pub fn continue_page(
        &self,
        addr: u64,
        hook: &Arc<dyn FaultInterceptor>,
        write_protect: bool,
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let st = self.state().read();
        let vma = st.tree.find(addr).ok_or(MmError::NoEntry)?;
        if !vma.interceptor.as_ref().is_some_and(|o| same_hook(o, hook))
            || vma.intercept_modes & intercept_mode::MINOR == 0
        {
            return Err(MmError::NoEntry);
        }
        let file = vma.file().ok_or(MmError::NoEntry)?;
        if self.page_table().query(VirtAddr::new(addr)).is_some() {
            return Err(MmError::Exists);
        }
        let index = vma.file_index(addr);
        // A page in swap is in the cache (read back by `get_page`; while its read is
        // in flight the caller is told to try again, Linux's EAGAIN).
        if file.cache().peek(index).is_none() && !file.cache().is_swapped(index) {
            return Err(MmError::BadAddress);
        }
        let pfn = file.get_page(index).map_err(|e| match e {
            crate::pagecache::PageError::Wait(_) => MmError::Again,
            _ => MmError::BadAddress,
        })?;
        let mut flags = vma_pte_perms(vma.flags) | fresh_hw_bits(Access::Read);
        if vma.is_private() || write_protect {
            flags -= PteFlags::WRITE;
        }
        match self
            .page_table()
            .install(VirtAddr::new(addr), Pte::new(pfn, flags))
        {
            Ok(()) => Ok(()),
            Err(InstallError::Occupied(_)) => {
                self.frames().put(pfn);
                Err(MmError::Exists)
            }
            Err(InstallError::NoMemory) => {
                self.frames().put(pfn);
                Err(MmError::NoMemory)
            }
        }
    }

    /// Removes `hook` from every VMA that carries it (its last descriptor closed).
    pub fn clear_interceptor(&self, hook: &Arc<dyn FaultInterceptor>) {
        let mut st = self.state().write();
        let held: alloc::vec::Vec<(u64, u64)> = st
            .tree
            .iter()
            .filter(|v| v.interceptor.as_ref().is_some_and(|o| same_hook(o, hook)))
            .map(|v| (v.start, v.end))
            .collect();
        for (start, end) in held {
            // Clearing merges VMAs back, so it never needs a VMA more.
            let _ = st
                .tree
                .edit_each(start, end, usize::MAX, &mut |n: &mut Vma| {
                    n.interceptor = None;
                    n.intercept_modes = 0;
                });
        }
    }

    /// Whether every page of `[addr, addr + len)` lies in a VMA that `hook` intercepts.
    pub fn intercepted_by(&self, addr: u64, len: u64, hook: &Arc<dyn FaultInterceptor>) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let held = |v: &Vma| v.interceptor.as_ref().is_some_and(|o| same_hook(o, hook));
        let st = self.state().read();
        // The common case (a handler filling a page or a run inside one VMA): one lookup.
        if let Some(v) = st.tree.find(addr) {
            if v.end >= end {
                return held(v);
            }
        }
        // One pass over the VMAs: no hole, each held by `hook`.
        let mut at = addr;
        for v in st.tree.overlapping(addr, end) {
            if v.start > at || !held(v) {
                return false;
            }
            at = v.end;
        }
        at >= end
    }

    /// Installs a page holding `data` (zero-padded) at the empty page `addr`, with the
    /// VMA's permissions (anonymous VMAs only for now). `EEXIST` if a page is there, `ENOENT` if no VMA covers it,
    /// `ENOMEM` without memory, `EINVAL` for an unaligned address or over-long data.
    pub fn fill_missing_page(&self, addr: u64, data: &[u8]) -> Result<(), MmError> {
        self.fill_missing_page_with(addr, data, false)
    }

    /// [`fill_missing_page`](Self::fill_missing_page), installing the page without
    /// write permission when `write_protect` (`UFFDIO_COPY_MODE_WP`).
    pub fn fill_missing_page_with(
        &self,
        addr: u64,
        data: &[u8],
        write_protect: bool,
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) || data.len() > PAGE_BYTES {
            return Err(MmError::InvalidArgument);
        }
        {
            // Cheap refusals before a frame is taken.
            let st = self.state().read();
            let vma = st.tree.find(addr).ok_or(MmError::NoEntry)?;
            if vma.file().is_some() {
                return Err(MmError::InvalidArgument);
            }
            if self.page_table().query(VirtAddr::new(addr)).is_some() {
                return Err(MmError::Exists);
            }
        }
        let pfn = self
            .frames()
            .alloc_zeroed(VirtAddr::new(addr))
            .map_err(|e| match e {
                AllocFailure::OutOfMemory | AllocFailure::Wait(_) => MmError::NoMemory,
            })?;
        if !data.is_empty() {
            self.frames().write(pfn, 0, data);
        }
        self.map_missing_frame(addr, pfn, write_protect)
    }

    /// Maps `pfn`, whose contents the caller filled and whose one reference it hands
    /// over, at the empty page `addr` of a private anonymous VMA, with the VMA's
    /// permissions (without write permission when `write_protect`): the kernel's
    /// `UFFDIO_COPY` copies the user's bytes straight into the frame. On any error the
    /// reference is put back. Errors as [`fill_missing_page`](Self::fill_missing_page).
    pub fn map_missing_frame(
        &self,
        addr: u64,
        pfn: crate::frame::Pfn,
        write_protect: bool,
    ) -> Result<(), MmError> {
        let refuse = |e: MmError| {
            self.frames().put(pfn);
            Err(e)
        };
        if !addr.is_multiple_of(PAGE_SIZE) {
            return refuse(MmError::InvalidArgument);
        }
        let st = self.state().read();
        let Some(vma) = st.tree.find(addr) else {
            return refuse(MmError::NoEntry);
        };
        if vma.file().is_some() {
            // File and shmem pages go through their page cache.
            return refuse(MmError::InvalidArgument);
        }
        let mut flags = vma_pte_perms(vma.flags) | fresh_hw_bits(Access::Write);
        if write_protect {
            flags -= PteFlags::WRITE;
        }
        match self
            .page_table()
            .install(VirtAddr::new(addr), Pte::new(pfn, flags))
        {
            Ok(()) => Ok(()),
            Err(InstallError::Occupied(_)) => refuse(MmError::Exists),
            Err(InstallError::NoMemory) => refuse(MmError::NoMemory),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, harness};
    use crate::fault::{Completion, FaultError, FaultFuture, FaultResolved, Intercept, WaitReason};
    use std::sync::Mutex;
    use std::vec::Vec;

    /// Records missing faults and parks them on one completion.
    struct Uffd {
        seen: Mutex<Vec<u64>>,
        done: Arc<Completion>,
    }

    impl FaultInterceptor for Uffd {
        fn missing(&self, addr: u64, _access: Access, _user: bool) -> Option<Intercept> {
            self.seen.lock().unwrap().push(addr);
            Some(Intercept::Wait(FaultFuture::new(
                WaitReason::Userfault { addr },
                self.done.clone(),
            )))
        }
    }

    #[test]
    fn missing_fault_waits_until_page_is_supplied() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let uffd = Arc::new(Uffd {
            seen: Mutex::new(Vec::new()),
            done: Completion::new(),
        });
        h.aspace
            .set_interceptor(a + PAGE_SIZE, PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        assert_eq!(h.aspace.vma_count(), 3);
        // Outside the registered range: normal demand-zero.
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::DemandZero
        );
        let Err(FaultError::NeedsWait(wait)) =
            h.aspace.fault(a + PAGE_SIZE + 8, Access::Write, true)
        else {
            panic!("expected a wait");
        };
        assert_eq!(
            wait.reason(),
            WaitReason::Userfault {
                addr: a + PAGE_SIZE
            }
        );
        assert_eq!(*uffd.seen.lock().unwrap(), [a + PAGE_SIZE]);
        h.aspace
            .fill_missing_page(a + PAGE_SIZE, b"from uffd")
            .unwrap();
        assert_eq!(
            h.aspace.fill_missing_page(a + PAGE_SIZE, b"again"),
            Err(MmError::Exists)
        );
        uffd.done.complete();
        assert!(wait.is_ready());
        assert_eq!(
            h.aspace.fault(a + PAGE_SIZE, Access::Write, true).unwrap(),
            FaultResolved::Spurious
        );
        let mut b = [0u8; 9];
        h.aspace.read_bytes(a + PAGE_SIZE, &mut b).unwrap();
        assert_eq!(&b, b"from uffd");
        h.aspace
            .set_interceptor(a + PAGE_SIZE, PAGE_SIZE, None)
            .unwrap();
        assert_eq!(h.aspace.vma_count(), 1);
        assert_eq!(
            h.aspace.fill_missing_page(0x10_0000, b""),
            Err(MmError::NoEntry)
        );
    }
}
