//! Access masks: the rights a caller asks for and an ACE grants, with NT's values.
//!
//! An access mask is 32 bits: the low 16 are *specific* rights whose meaning
//! depends on the object type (process, registry key, file-like object), then
//! the standard rights, `ACCESS_SYSTEM_SECURITY`, `MAXIMUM_ALLOWED`, and the four
//! generic rights that a [`GenericMapping`](crate::generic_mapping::GenericMapping)
//! turns into specific ones. The named flags are the process rights (the
//! kernel's main object); key and file rights are associated constants over the
//! same bits, so `Debug` output names low bits after the process rights.

use bitflags::bitflags;

bitflags! {
    /// A set of access rights (NT `ACCESS_MASK`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct AccessMask: u32 {
        /// Kill the process (kill(2) with a fatal signal, process_mrelease's target).
        const PROCESS_TERMINATE = 0x0001;
        /// Create a thread in the process.
        const PROCESS_CREATE_THREAD = 0x0002;
        /// Change the process's address space (mmap/mprotect on its behalf, migrate_pages).
        const PROCESS_VM_OPERATION = 0x0008;
        /// Read the process's memory (`/proc/<pid>/mem`, process_vm_readv).
        const PROCESS_VM_READ = 0x0010;
        /// Write the process's memory (`/proc/<pid>/mem`, process_vm_writev).
        const PROCESS_VM_WRITE = 0x0020;
        /// Duplicate handles (file descriptors) out of the process (pidfd_getfd).
        const PROCESS_DUP_HANDLE = 0x0040;
        /// Create a process with this one as parent.
        const PROCESS_CREATE_PROCESS = 0x0080;
        /// Change the process's quotas and resource state (prlimit, process_mrelease).
        const PROCESS_SET_QUOTA = 0x0100;
        /// Change process information (priority, affinity, oom_score_adj, mempolicy).
        const PROCESS_SET_INFORMATION = 0x0200;
        /// Read process information (`/proc/<pid>/maps`, smaps, status, numa_maps).
        const PROCESS_QUERY_INFORMATION = 0x0400;
        /// Stop and continue the process (SIGSTOP/SIGCONT).
        const PROCESS_SUSPEND_RESUME = 0x0800;
        /// Read the basic, harmless facts (name, state, exit status: `/proc/<pid>/stat`).
        const PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;

        /// Delete the object.
        const DELETE = 0x0001_0000;
        /// Read the object's security descriptor (not its SACL).
        const READ_CONTROL = 0x0002_0000;
        /// Change the object's DACL.
        const WRITE_DAC = 0x0004_0000;
        /// Change the object's owner.
        const WRITE_OWNER = 0x0008_0000;
        /// Wait on the object (waitid/pidfd poll for a process).
        const SYNCHRONIZE = 0x0010_0000;

        /// Read or write the SACL (needs a privilege this kernel does not grant).
        const ACCESS_SYSTEM_SECURITY = 0x0100_0000;
        /// Ask for every right the descriptor would grant, instead of specific ones.
        const MAXIMUM_ALLOWED = 0x0200_0000;

        /// All rights of the object type (mapped by its `GenericMapping`).
        const GENERIC_ALL = 0x1000_0000;
        /// Execute-type rights of the object type.
        const GENERIC_EXECUTE = 0x2000_0000;
        /// Write-type rights of the object type.
        const GENERIC_WRITE = 0x4000_0000;
        /// Read-type rights of the object type.
        const GENERIC_READ = 0x8000_0000;

        // Every bit may be carried (an ACE can name rights of any object type).
        const _ = !0;
    }
}

impl AccessMask {
    /// The object-type-specific half of a mask.
    pub const SPECIFIC_RIGHTS_ALL: Self = Self::from_bits_retain(0x0000_FFFF);
    /// `DELETE | READ_CONTROL | WRITE_DAC | WRITE_OWNER`.
    pub const STANDARD_RIGHTS_REQUIRED: Self = Self::from_bits_retain(0x000F_0000);
    /// Standard rights implied by read access: `READ_CONTROL`.
    pub const STANDARD_RIGHTS_READ: Self = Self::READ_CONTROL;
    /// Standard rights implied by write access: `READ_CONTROL`.
    pub const STANDARD_RIGHTS_WRITE: Self = Self::READ_CONTROL;
    /// Standard rights implied by execute access: `READ_CONTROL`.
    pub const STANDARD_RIGHTS_EXECUTE: Self = Self::READ_CONTROL;
    /// Every standard right, `SYNCHRONIZE` included.
    pub const STANDARD_RIGHTS_ALL: Self = Self::from_bits_retain(0x001F_0000);
    /// The four generic rights.
    pub const GENERIC_RIGHTS: Self = Self::GENERIC_READ
        .union(Self::GENERIC_WRITE)
        .union(Self::GENERIC_EXECUTE)
        .union(Self::GENERIC_ALL);

    /// Every process right (NT 6.0+ `PROCESS_ALL_ACCESS`, 0x1FFFFF).
    pub const PROCESS_ALL_ACCESS: Self = Self::STANDARD_RIGHTS_REQUIRED
        .union(Self::SYNCHRONIZE)
        .union(Self::SPECIFIC_RIGHTS_ALL);

    /// Read a value of a registry key.
    pub const KEY_QUERY_VALUE: Self = Self::from_bits_retain(0x0001);
    /// Write a value of a registry key.
    pub const KEY_SET_VALUE: Self = Self::from_bits_retain(0x0002);
    /// Create a subkey.
    pub const KEY_CREATE_SUB_KEY: Self = Self::from_bits_retain(0x0004);
    /// List subkeys.
    pub const KEY_ENUMERATE_SUB_KEYS: Self = Self::from_bits_retain(0x0008);
    /// Be told of changes to the key.
    pub const KEY_NOTIFY: Self = Self::from_bits_retain(0x0010);
    /// Create a symbolic link key.
    pub const KEY_CREATE_LINK: Self = Self::from_bits_retain(0x0020);
    /// `READ_CONTROL | KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY` (0x20019).
    pub const KEY_READ: Self = Self::STANDARD_RIGHTS_READ
        .union(Self::KEY_QUERY_VALUE)
        .union(Self::KEY_ENUMERATE_SUB_KEYS)
        .union(Self::KEY_NOTIFY);
    /// `READ_CONTROL | KEY_SET_VALUE | KEY_CREATE_SUB_KEY` (0x20006).
    pub const KEY_WRITE: Self = Self::STANDARD_RIGHTS_WRITE
        .union(Self::KEY_SET_VALUE)
        .union(Self::KEY_CREATE_SUB_KEY);
    /// Same as `KEY_READ`, as in NT.
    pub const KEY_EXECUTE: Self = Self::KEY_READ;
    /// Every key right (0xF003F).
    pub const KEY_ALL_ACCESS: Self = Self::STANDARD_RIGHTS_REQUIRED
        .union(Self::KEY_QUERY_VALUE)
        .union(Self::KEY_SET_VALUE)
        .union(Self::KEY_CREATE_SUB_KEY)
        .union(Self::KEY_ENUMERATE_SUB_KEYS)
        .union(Self::KEY_NOTIFY)
        .union(Self::KEY_CREATE_LINK);

    /// Read the data of a file-like object (a shm object, a memfd).
    pub const FILE_READ_DATA: Self = Self::from_bits_retain(0x0001);
    /// Write the data of a file-like object.
    pub const FILE_WRITE_DATA: Self = Self::from_bits_retain(0x0002);
    /// Append to a file-like object (grow it: ftruncate up).
    pub const FILE_APPEND_DATA: Self = Self::from_bits_retain(0x0004);
    /// Read extended attributes.
    pub const FILE_READ_EA: Self = Self::from_bits_retain(0x0008);
    /// Write extended attributes.
    pub const FILE_WRITE_EA: Self = Self::from_bits_retain(0x0010);
    /// Execute (map with PROT_EXEC).
    pub const FILE_EXECUTE: Self = Self::from_bits_retain(0x0020);
    /// Read attributes (fstat).
    pub const FILE_READ_ATTRIBUTES: Self = Self::from_bits_retain(0x0080);
    /// Write attributes (fchmod, seals).
    pub const FILE_WRITE_ATTRIBUTES: Self = Self::from_bits_retain(0x0100);
    /// NT `FILE_GENERIC_READ` (0x120089).
    pub const FILE_GENERIC_READ: Self = Self::STANDARD_RIGHTS_READ
        .union(Self::FILE_READ_DATA)
        .union(Self::FILE_READ_ATTRIBUTES)
        .union(Self::FILE_READ_EA)
        .union(Self::SYNCHRONIZE);
    /// NT `FILE_GENERIC_WRITE` (0x120116).
    pub const FILE_GENERIC_WRITE: Self = Self::STANDARD_RIGHTS_WRITE
        .union(Self::FILE_WRITE_DATA)
        .union(Self::FILE_WRITE_ATTRIBUTES)
        .union(Self::FILE_WRITE_EA)
        .union(Self::FILE_APPEND_DATA)
        .union(Self::SYNCHRONIZE);
    /// NT `FILE_GENERIC_EXECUTE` (0x1200A0).
    pub const FILE_GENERIC_EXECUTE: Self = Self::STANDARD_RIGHTS_EXECUTE
        .union(Self::FILE_READ_ATTRIBUTES)
        .union(Self::FILE_EXECUTE)
        .union(Self::SYNCHRONIZE);
    /// NT `FILE_ALL_ACCESS` (0x1F01FF).
    pub const FILE_ALL_ACCESS: Self = Self::STANDARD_RIGHTS_REQUIRED
        .union(Self::SYNCHRONIZE)
        .union(Self::from_bits_retain(0x01FF));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_values_match_nt() {
        assert_eq!(AccessMask::PROCESS_ALL_ACCESS.bits(), 0x001F_FFFF);
        assert_eq!(AccessMask::KEY_READ.bits(), 0x0002_0019);
        assert_eq!(AccessMask::KEY_WRITE.bits(), 0x0002_0006);
        assert_eq!(AccessMask::KEY_ALL_ACCESS.bits(), 0x000F_003F);
        assert_eq!(AccessMask::FILE_GENERIC_READ.bits(), 0x0012_0089);
        assert_eq!(AccessMask::FILE_GENERIC_WRITE.bits(), 0x0012_0116);
        assert_eq!(AccessMask::FILE_GENERIC_EXECUTE.bits(), 0x0012_00A0);
        assert_eq!(AccessMask::FILE_ALL_ACCESS.bits(), 0x001F_01FF);
        assert_eq!(AccessMask::GENERIC_RIGHTS.bits(), 0xF000_0000);
    }
}
