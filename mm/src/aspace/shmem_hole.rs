//! A hole punched in a shmem object (`fallocate(PUNCH_HOLE)` on a tmpfs file or a
//! memfd) leaving the mappings of an address space, as Linux's
//! `unmap_mapping_range(.., even_cows = 0)`: a shared mapping loses its entries over
//! the hole, a private mapping the entries that map the file's own pages there (it
//! reads the hole's zeros on its next access), while the copies its writes made
//! stay (and their swap entries). A truncation (`PunchedPages::even_cows`) takes the
//! copies too, as Linux's `even_cows = 1`. See `crate::pagecache::shmem_falloc`.
//!
//! There is no reverse map: the kernel calls [`AddressSpace::unmap_shmem_hole`] on
//! every address space. It takes the VMA tree's write side, so a fault that found a
//! page before it left the cache has mapped it by then and is undone here, and a
//! later fault finds the hole. A fork child made while a walk ran, and listed too late
//! for it, is repaired by [`AddressSpace::unmap_stale_shmem`] (its shared mappings; a
//! private mapping's stale page of the file cannot be told from its own copy there).

use super::zap::Zap;
use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::frame::PAGE_SIZE;
use crate::pagecache::{FileKind, FileObject, PunchedPages};
use crate::pagetable::PageTable;

impl<P: PageTable> AddressSpace<P> {
    /// Unmaps the pages of `hole` from every VMA mapping `file` here (see the
    /// module). Returns the entries removed.
    pub fn unmap_shmem_hole(&self, file: &FileObject, hole: &PunchedPages) -> u64 {
        // No VMA of the file here: nothing to undo, and none can map a page the hole
        // took (the cache no longer has it), so the write side is not needed. A VMA
        // is in the tree all the while its entries are (a change that moves one
        // holds the write side), so the read side sees it if it maps anything.
        if !self.maps_file(file) {
            return 0;
        }
        let st = self.state().write();
        let pt = self.page_table();
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        // Private ranges whose copies go (a truncation): their swapped copies too.
        let mut copies = alloc::vec::Vec::new();
        for v in st.tree.iter() {
            if !v.file().is_some_and(|f| core::ptr::eq(&**f, file)) || v.hugetlb.is_some() {
                continue;
            }
            // The VMA's part of the hole, in addresses.
            let first = hole.first.max(v.pgoff);
            let end = hole.end.min(v.pgoff + v.pages());
            if first >= end {
                continue;
            }
            let lo = v.start + (first - v.pgoff) * PAGE_SIZE;
            let hi = v.start + (end - v.pgoff) * PAGE_SIZE;
            if !v.is_private() || hole.even_cows {
                zap.vma_range(pt, v, lo, hi);
                if v.is_private() {
                    copies.push((lo, hi));
                }
                continue;
            }
            pt.scan_leaves(
                VirtAddr::new(lo),
                VirtAddr::new(hi),
                &mut |va, pte, huge| {
                    // A private file mapping's huge leaves are anonymous copies.
                    if huge || !hole.was_file_page(pte.pfn) {
                        return;
                    }
                    if let Some(old) = pt.unmap(va) {
                        zap.entry_removed(va.as_u64(), old.pfn);
                    }
                },
            );
        }
        let removed = zap.finish();
        for (lo, hi) in copies {
            self.release_swap_range(lo, hi);
        }
        removed
    }

    /// Whether a VMA here maps `file` (under the tree's read side; one lookup for a
    /// shared-memory file).
    pub fn maps_file(&self, file: &FileObject) -> bool {
        let st = self.state().read();
        let found = if file.kind() == FileKind::Shmem {
            st.tree.maps_shmem_file(file)
        } else {
            st.tree
                .iter()
                .any(|v| v.file().is_some_and(|f| core::ptr::eq(&**f, file)))
        };
        found
    }

    /// Unmaps, in every shared mapping of a shared-memory object here, the entries
    /// that map a frame other than the one the object's cache holds at their index
    /// (a page a hole punch took out). For a fork child made while a punch's walk ran
    /// (see the module). Returns the entries removed.
    pub fn unmap_stale_shmem(&self) -> u64 {
        let st = self.state().write();
        let pt = self.page_table();
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        for v in st.tree.iter() {
            let Some(file) = v.file() else {
                continue;
            };
            if v.is_private() || v.hugetlb.is_some() || file.kind() != FileKind::Shmem {
                continue;
            }
            pt.scan_leaves(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |va, pte, huge| {
                    if huge || file.cache().peek(v.file_index(va.as_u64())) == Some(pte.pfn) {
                        return;
                    }
                    if let Some(old) = pt.unmap(va) {
                        zap.entry_removed(va.as_u64(), old.pfn);
                    }
                },
            );
        }
        zap.finish()
    }
}
