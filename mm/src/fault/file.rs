//! File-backed faults (regular files and shmem) through the page cache:
//!
//! * shared mapping: the page-cache page itself is mapped (writable if the VMA is),
//!   so every mapper sees every write;
//! * private mapping, read: the page-cache page is mapped read-only (a later write
//!   copies it through copy-on-write);
//! * private mapping, write: a private copy of the page-cache page is mapped; the
//!   cache is never written.
//!
//! A page wholly past the end of the file is `SIGBUS`. A disk file's missing page is
//! read with the mapping's readahead window (`pagecache::fault_readahead`), steered
//! by `MADV_SEQUENTIAL` and `MADV_RANDOM`.

use alloc::sync::Arc;

use super::{fresh_hw_bits, vma_pte_perms, Access, FaultError, FaultResolved};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::pagecache::fault_readahead::FaultHint;
use crate::pagecache::{FileObject, PageError};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::vma::{VmFlags, Vma};

impl<P: PageTable> AddressSpace<P> {
    /// Maps page `page` of a file-backed VMA (no entry there).
    pub(super) fn file_fault(
        &self,
        vma: &Vma,
        file: &Arc<FileObject>,
        page: u64,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        let index = vma.file_index(page);
        let hint = if vma.flags.contains(VmFlags::RAND_READ) {
            FaultHint::Random
        } else if vma.flags.contains(VmFlags::SEQ_READ) {
            FaultHint::Sequential
        } else {
            FaultHint::Normal
        };
        let ra = vma.fault_readahead.as_deref();
        let (cached, major) = file.fault_page(index, ra, hint).map_err(|e| match e {
            PageError::BeyondEof | PageError::Io => FaultError::SigBus,
            PageError::OutOfMemory => FaultError::Oom,
            PageError::Wait(f) => FaultError::NeedsWait(f),
        })?;
        let perms = vma_pte_perms(vma.flags) | fresh_hw_bits(access);
        let cache_kind = if major {
            FaultResolved::FileMajor
        } else {
            FaultResolved::FileMinor
        };
        let (pfn, flags, kind) = if !vma.is_private() {
            (cached, perms, cache_kind)
        } else if access == Access::Write {
            let copy = self.frames().alloc_copy_placed(
                cached,
                VirtAddr::new(page),
                self.placement(vma, page),
            );
            self.frames().put(cached);
            (copy?, perms, FaultResolved::CowCopied)
        } else {
            (cached, perms - PteFlags::WRITE, cache_kind)
        };
        self.install_or_release(page, Pte::new(pfn, flags), kind)
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{file_bytes, harness, map_file};
    use crate::fault::{Access, FaultError, FaultResolved};
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, PteFlags};
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn private_read_maps_cache_page_read_only() {
        let h = harness();
        let f = h.file(&file_bytes(2 * PAGE_SIZE as usize + 10));
        let a = map_file(
            &h.aspace,
            &f,
            3,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE,
            0,
        );
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::FileMajor
        );
        let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert_eq!(Some(pte.pfn), f.cache().peek(0));
        assert!(!pte.flags.contains(PteFlags::WRITE));
        // Write: copy, cache unchanged.
        assert_eq!(
            h.aspace.fault(a, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        assert_ne!(
            h.aspace.page_table().query(VirtAddr::new(a)).unwrap().pfn,
            pte.pfn
        );
        // A direct write fault on an untouched page copies straight away.
        assert_eq!(
            h.aspace.fault(a + PAGE_SIZE, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        // Page 2 holds the last 10 bytes; page 3 would be past the end.
        assert_eq!(
            h.aspace
                .fault(a + 2 * PAGE_SIZE, Access::Read, true)
                .unwrap(),
            FaultResolved::FileMajor
        );
        assert_eq!(h.frames.count(f.cache().peek(2).unwrap()), 2);
    }

    #[test]
    fn shared_maps_cache_page_writable_and_beyond_eof_is_sigbus() {
        let h = harness();
        let f = h.file(&file_bytes(PAGE_SIZE as usize));
        let a = map_file(
            &h.aspace,
            &f,
            2,
            Prot::READ | Prot::WRITE,
            MapFlags::SHARED,
            0,
        );
        assert_eq!(
            h.aspace.fault(a, Access::Write, true).unwrap(),
            FaultResolved::FileMajor
        );
        let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert_eq!(Some(pte.pfn), f.cache().peek(0));
        assert!(pte.flags.contains(PteFlags::WRITE | PteFlags::DIRTY));
        let e = h
            .aspace
            .fault(a + PAGE_SIZE, Access::Read, true)
            .unwrap_err();
        assert!(matches!(e, FaultError::SigBus));
        assert_eq!(
            e.signal(),
            Some((crate::fault::SIGBUS, crate::fault::BUS_ADRERR))
        );
    }
}
