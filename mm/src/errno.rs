//! The error of the address-space operations, one variant per Linux errno they can
//! return; the kernel converts it at the syscall boundary with [`MmError::errno`].

use core::fmt;

/// Why an address-space operation (mmap, munmap, mprotect, ...) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmError {
    /// `EPERM`: below `mmap_min_addr` without the privilege, or a sealed range.
    PermissionDenied,
    /// `ENOENT`: the mapping a userfaultfd operation names is gone.
    NoEntry,
    /// `EAGAIN`: a transient shortage (locked memory over its limit).
    Again,
    /// `ENOMEM`: no room, over `max_map_count`, an unmapped range, or no memory.
    NoMemory,
    /// `EACCES`: the file's open mode does not allow the protection asked for.
    AccessDenied,
    /// `EFAULT`: a range that is not one mapping (mremap), or a populate that faulted.
    BadAddress,
    /// `EBUSY`: `MS_INVALIDATE` on locked pages.
    Busy,
    /// `EEXIST`: `MAP_FIXED_NOREPLACE` over an existing mapping.
    Exists,
    /// `ENODEV`: the file cannot be memory-mapped.
    NoDevice,
    /// `EINVAL`: a malformed request.
    InvalidArgument,
    /// `EOVERFLOW`: the file offset plus the length overflows.
    Overflow,
    /// `EOPNOTSUPP`: an unknown flag under `MAP_SHARED_VALIDATE`, or a hole punch the
    /// backing cannot do.
    NotSupported,
}

impl MmError {
    /// The Linux errno value (positive).
    pub const fn errno(self) -> i32 {
        match self {
            MmError::PermissionDenied => 1,
            MmError::NoEntry => 2,
            MmError::Again => 11,
            MmError::NoMemory => 12,
            MmError::AccessDenied => 13,
            MmError::BadAddress => 14,
            MmError::Busy => 16,
            MmError::Exists => 17,
            MmError::NoDevice => 19,
            MmError::InvalidArgument => 22,
            MmError::Overflow => 75,
            MmError::NotSupported => 95,
        }
    }

    /// Linux's symbolic name (`"EINVAL"`, ...), for logs.
    pub const fn name(self) -> &'static str {
        match self {
            MmError::PermissionDenied => "EPERM",
            MmError::NoEntry => "ENOENT",
            MmError::Again => "EAGAIN",
            MmError::NoMemory => "ENOMEM",
            MmError::AccessDenied => "EACCES",
            MmError::BadAddress => "EFAULT",
            MmError::Busy => "EBUSY",
            MmError::Exists => "EEXIST",
            MmError::NoDevice => "ENODEV",
            MmError::InvalidArgument => "EINVAL",
            MmError::Overflow => "EOVERFLOW",
            MmError::NotSupported => "EOPNOTSUPP",
        }
    }
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_values() {
        assert_eq!(MmError::InvalidArgument.errno(), 22);
        assert_eq!(MmError::NoMemory.errno(), 12);
        assert_eq!(MmError::Exists.errno(), 17);
        assert_eq!(MmError::PermissionDenied.errno(), 1);
        assert_eq!(MmError::NotSupported.errno(), 95);
        assert_eq!(MmError::BadAddress.to_string_for_test(), "EFAULT");
    }

    impl MmError {
        fn to_string_for_test(self) -> std::string::String {
            use std::string::ToString;
            self.to_string()
        }
    }
}
