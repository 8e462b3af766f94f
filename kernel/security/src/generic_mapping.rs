//! Generic mappings: what GENERIC_READ/WRITE/EXECUTE/ALL mean for each object type.
//!
//! The same mapping also sorts an object's rights into read-, write- and
//! execute-type buckets, which is what the mandatory integrity label filters by.

use crate::access_mask::AccessMask;

/// The specific rights each generic right stands for, for one object type
/// (NT `GENERIC_MAPPING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericMapping {
    /// What `GENERIC_READ` means.
    pub read: AccessMask,
    /// What `GENERIC_WRITE` means.
    pub write: AccessMask,
    /// What `GENERIC_EXECUTE` means.
    pub execute: AccessMask,
    /// What `GENERIC_ALL` means: every right of the type.
    pub all: AccessMask,
}

impl GenericMapping {
    /// Processes (NT's process object mapping). Write-type rights are the ones
    /// that change the target; `PROCESS_QUERY_LIMITED_INFORMATION` and
    /// `SYNCHRONIZE` are execute-type, the rights a lower-integrity caller keeps.
    pub const PROCESS: GenericMapping = GenericMapping {
        read: AccessMask::STANDARD_RIGHTS_READ
            .union(AccessMask::PROCESS_VM_READ)
            .union(AccessMask::PROCESS_QUERY_INFORMATION),
        write: AccessMask::STANDARD_RIGHTS_WRITE
            .union(AccessMask::PROCESS_TERMINATE)
            .union(AccessMask::PROCESS_CREATE_THREAD)
            .union(AccessMask::PROCESS_VM_OPERATION)
            .union(AccessMask::PROCESS_VM_WRITE)
            .union(AccessMask::PROCESS_DUP_HANDLE)
            .union(AccessMask::PROCESS_CREATE_PROCESS)
            .union(AccessMask::PROCESS_SET_QUOTA)
            .union(AccessMask::PROCESS_SET_INFORMATION)
            .union(AccessMask::PROCESS_SUSPEND_RESUME),
        execute: AccessMask::STANDARD_RIGHTS_EXECUTE
            .union(AccessMask::SYNCHRONIZE)
            .union(AccessMask::PROCESS_QUERY_LIMITED_INFORMATION),
        all: AccessMask::PROCESS_ALL_ACCESS,
    };

    /// Registry keys (NT's key mapping).
    pub const KEY: GenericMapping = GenericMapping {
        read: AccessMask::KEY_READ,
        write: AccessMask::KEY_WRITE,
        execute: AccessMask::KEY_EXECUTE,
        all: AccessMask::KEY_ALL_ACCESS,
    };

    /// File-like objects: shm objects, memfds (NT's file mapping).
    pub const FILE: GenericMapping = GenericMapping {
        read: AccessMask::FILE_GENERIC_READ,
        write: AccessMask::FILE_GENERIC_WRITE,
        execute: AccessMask::FILE_GENERIC_EXECUTE,
        all: AccessMask::FILE_ALL_ACCESS,
    };

    /// Replaces the generic rights in `mask` by the specific rights they stand
    /// for; the result has no generic bits left.
    pub const fn map(&self, mask: AccessMask) -> AccessMask {
        let mut out = mask.difference(AccessMask::GENERIC_RIGHTS);
        if mask.contains(AccessMask::GENERIC_READ) {
            out = out.union(self.read);
        }
        if mask.contains(AccessMask::GENERIC_WRITE) {
            out = out.union(self.write);
        }
        if mask.contains(AccessMask::GENERIC_EXECUTE) {
            out = out.union(self.execute);
        }
        if mask.contains(AccessMask::GENERIC_ALL) {
            out = out.union(self.all);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_bits_become_specific() {
        let m = GenericMapping::PROCESS;
        assert_eq!(
            m.map(AccessMask::GENERIC_ALL),
            AccessMask::PROCESS_ALL_ACCESS
        );
        let read = m.map(AccessMask::GENERIC_READ | AccessMask::SYNCHRONIZE);
        assert!(read.contains(AccessMask::PROCESS_VM_READ | AccessMask::SYNCHRONIZE));
        assert!(!read.intersects(AccessMask::GENERIC_RIGHTS));
        assert!(m
            .map(AccessMask::GENERIC_WRITE)
            .contains(AccessMask::PROCESS_TERMINATE));
        assert_eq!(
            GenericMapping::KEY.map(AccessMask::GENERIC_WRITE),
            AccessMask::KEY_WRITE
        );
        assert_eq!(
            GenericMapping::FILE.map(AccessMask::GENERIC_ALL),
            AccessMask::FILE_ALL_ACCESS
        );
        // Specific bits pass through untouched.
        assert_eq!(
            m.map(AccessMask::PROCESS_VM_READ),
            AccessMask::PROCESS_VM_READ
        );
    }

    #[test]
    fn every_process_right_is_in_a_bucket_or_standard() {
        let m = GenericMapping::PROCESS;
        let buckets = m.read | m.write | m.execute | AccessMask::STANDARD_RIGHTS_REQUIRED;
        // Bits 0x0004 and 0x2000+ are unassigned process rights.
        let assigned = AccessMask::PROCESS_ALL_ACCESS & !AccessMask::from_bits_retain(0xE004);
        assert!(buckets.contains(assigned));
    }
}
