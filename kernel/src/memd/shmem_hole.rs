//! Shared-memory pages leaving every process's mappings: a hole punched in a tmpfs
//! file or a memfd (`fallocate(PUNCH_HOLE)`, `mm::pagecache::FileObject::punch_range`)
//! calls [`unmap_everywhere`] (installed at boot with
//! `mm::pagecache::set_hole_unmap_hook`), which walks every address space, each once,
//! since there is no reverse map to name the few that map the file; not called at all
//! when no VMA maps the file (`FileObject::mapped_vmas`: a tmpfs file created, written,
//! truncated and unlinked without a mapping costs no lock of any address space), and
//! an address space whose tree has no VMA of the file is passed over under its read
//! side. See `mm::aspace::AddressSpace::unmap_shmem_hole`.

use mm::pagecache::{FileObject, PunchedPages};

/// Unmaps the pages `hole` names of `file` from every process's mappings.
pub fn unmap_everywhere(file: &FileObject, hole: &PunchedPages) {
    for space in crate::proc::address_spaces() {
        space.mm().unmap_shmem_hole(file, hole);
    }
}
