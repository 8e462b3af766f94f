//! The kind of access a fault is for (a leaf: the VMA and page-cache code name it
//! without the fault path).

use crate::pagetable::PteFlags;

/// The kind of access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Exec,
}

impl Access {
    /// The entry permission the access needs.
    pub fn pte_flag(self) -> PteFlags {
        match self {
            Access::Read => PteFlags::READ,
            Access::Write => PteFlags::WRITE,
            Access::Exec => PteFlags::EXEC,
        }
    }
}
