//! Shared-memory pages leaving every process's mappings: a hole punched in a tmpfs
//! file or a memfd (`fallocate(PUNCH_HOLE)`, `mm::pagecache::FileObject::punch_range`)
//! calls [`unmap_everywhere`] (installed at boot with
//! `mm::pagecache::set_hole_unmap_hook`), which walks every address space, each once,
//! since there is no reverse map to name the few that map the file. See
//! `mm::aspace::AddressSpace::unmap_shmem_hole`.

use alloc::sync::Arc;
use alloc::vec::Vec;

use mm::pagecache::{FileObject, PunchedPages};

use crate::mem::aspace::AddressSpace;

/// Unmaps the pages `hole` names of `file` from every process's mappings.
pub fn unmap_everywhere(file: &FileObject, hole: &PunchedPages) {
    let mut seen: Vec<Arc<AddressSpace>> = Vec::new();
    for p in crate::proc::all() {
        let space = p.address_space();
        // `CLONE_VM` processes share one.
        if seen.iter().any(|s| Arc::ptr_eq(s, &space)) {
            continue;
        }
        space.mm().unmap_shmem_hole(file, hole);
        seen.push(space);
    }
}
