//! Linux errno values as a typed enum; every syscall handler returns `Result<_, Errno>`.

/// A Linux errno (x86_64 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(missing_docs, clippy::upper_case_acronyms, dead_code)] // the whole Linux table
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    EMFILE = 24,
    ENODEV = 19,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EPIPE = 32,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
    ETIMEDOUT = 110,
}

impl Errno {
    /// The value a syscall returns in RAX (`-errno`).
    pub fn as_return(self) -> u64 {
        (-(self as i64)) as u64
    }
}

/// A syscall result.
pub type SysResult<T = u64> = Result<T, Errno>;

impl Errno {
    /// The enum value for a positive Linux errno number (EINVAL for one this table lacks).
    pub fn from_raw(value: i32) -> Errno {
        const ALL: [Errno; 36] = [
            Errno::EPERM,
            Errno::ENOENT,
            Errno::ESRCH,
            Errno::EINTR,
            Errno::EIO,
            Errno::E2BIG,
            Errno::ENOEXEC,
            Errno::EBADF,
            Errno::ECHILD,
            Errno::EAGAIN,
            Errno::ENOMEM,
            Errno::EACCES,
            Errno::EFAULT,
            Errno::EBUSY,
            Errno::EEXIST,
            Errno::ENODEV,
            Errno::ENOTDIR,
            Errno::EISDIR,
            Errno::EINVAL,
            Errno::EMFILE,
            Errno::ENOTTY,
            Errno::EFBIG,
            Errno::ENOSPC,
            Errno::ESPIPE,
            Errno::EROFS,
            Errno::EPIPE,
            Errno::ERANGE,
            Errno::EDEADLK,
            Errno::ENAMETOOLONG,
            Errno::ENOSYS,
            Errno::ENOTEMPTY,
            Errno::ELOOP,
            Errno::EOVERFLOW,
            Errno::EOPNOTSUPP,
            Errno::ETIMEDOUT,
            Errno::EINVAL,
        ];
        ALL.iter()
            .copied()
            .find(|e| *e as i32 == value)
            .unwrap_or(Errno::EINVAL)
    }
}

impl From<mm::MmError> for Errno {
    fn from(e: mm::MmError) -> Errno {
        Errno::from_raw(e.errno())
    }
}
