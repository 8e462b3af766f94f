//! The error of the address-space operations, one variant per Linux errno they can
//! return; the kernel converts it at the syscall boundary with [`MmError::errno`].

use core::fmt;

pub use ::errno::Errno;

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
    /// `ENOSPC`: no protection key left to allocate.
    NoSpace,
    /// `EOPNOTSUPP`: an unknown flag under `MAP_SHARED_VALIDATE`, or a hole punch the
    /// backing cannot do.
    NotSupported,
    /// `EBADF`: a name for anonymous memory over a file-backed mapping.
    BadFile,
}

impl MmError {
    /// The Linux errno this error is returned as.
    pub const fn errno(self) -> Errno {
        match self {
            MmError::PermissionDenied => Errno::EPERM,
            MmError::NoEntry => Errno::ENOENT,
            MmError::Again => Errno::EAGAIN,
            MmError::NoMemory => Errno::ENOMEM,
            MmError::AccessDenied => Errno::EACCES,
            MmError::BadAddress => Errno::EFAULT,
            MmError::Busy => Errno::EBUSY,
            MmError::Exists => Errno::EEXIST,
            MmError::NoDevice => Errno::ENODEV,
            MmError::InvalidArgument => Errno::EINVAL,
            MmError::Overflow => Errno::EOVERFLOW,
            MmError::NotSupported => Errno::EOPNOTSUPP,
            MmError::NoSpace => Errno::ENOSPC,
            MmError::BadFile => Errno::EBADF,
        }
    }

    /// Linux's symbolic name (`"EINVAL"`, ...), for logs.
    pub const fn name(self) -> &'static str {
        self.errno().name()
    }
}

impl From<MmError> for Errno {
    fn from(e: MmError) -> Errno {
        e.errno()
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
        assert_eq!(MmError::InvalidArgument.errno().value(), 22);
        assert_eq!(MmError::NoMemory.errno().value(), 12);
        assert_eq!(MmError::Exists.errno().value(), 17);
        assert_eq!(MmError::PermissionDenied.errno().value(), 1);
        assert_eq!(MmError::NotSupported.errno().value(), 95);
        assert_eq!(MmError::BadAddress.to_string_for_test(), "EFAULT");
    }

    impl MmError {
        fn to_string_for_test(self) -> std::string::String {
            use std::string::ToString;
            self.to_string()
        }
    }
}
