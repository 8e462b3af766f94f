//! Shared-memory pages leaving every process's mappings: a hole punched in a tmpfs
//! file or a memfd (`fallocate(PUNCH_HOLE)`, `mm::pagecache::FileObject::punch_range`)
//! calls [`unmap_everywhere`] (installed at boot with
//! `mm::pagecache::set_hole_unmap_hook`), which walks every address space, each once,
//! since there is no reverse map to name the few that map the file. See
//! `mm::aspace::AddressSpace::unmap_shmem_hole`.

use mm::pagecache::{FileObject, PunchedPages};

/// Unmaps the pages `hole` names of `file` from every process's mappings.
pub fn unmap_everywhere(file: &FileObject, hole: &PunchedPages) {
    for space in crate::proc::address_spaces() {
        space.mm().unmap_shmem_hole(file, hole);
    }
}
