//! Hugetlb file pages leaving every process's mappings: a truncation or hole punch of
//! a hugetlb file (`mm::hugetlb_file`) calls [`unmap_everywhere`] (installed at boot
//! with `mm::hugetlb_file::set_unmap_hook`), which walks every address space, each
//! once, since there is no reverse map to name the few that map the file. See
//! `mm::aspace::AddressSpace::unmap_hugetlb_file_range`.

use mm::hugetlb_file::{DroppedPages, HugetlbFile};

/// Unmaps the pages `dropped` names of `file` from every process's mappings.
pub fn unmap_everywhere(file: &HugetlbFile, dropped: &DroppedPages) {
    for space in crate::proc::address_spaces() {
        space.mm().unmap_hugetlb_file_range(file, dropped);
    }
}
