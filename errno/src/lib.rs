//! Linux errno values as one typed enum. `mm` and the kernel share it, so an error
//! travels from the memory manager to the syscall return without a round trip
//! through integers.
#![no_std]
#![deny(missing_docs)]

use core::fmt;

macro_rules! errno_table {
    ($($name:ident = $value:literal: $text:literal,)*) => {
        /// A Linux errno (x86_64 values).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $(#[doc = $text] $name = $value,)*
        }

        impl Errno {
            /// Every errno of the table, in ascending value.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// Linux's symbolic name (`"EINVAL"`, ...), for logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Errno::$name => stringify!($name),)*
                }
            }

            /// The errno for a positive Linux value, or `None` for one this table lacks.
            pub const fn from_value(value: i32) -> Option<Errno> {
                match value {
                    $($value => Some(Errno::$name),)*
                    _ => None,
                }
            }
        }
    };
}

errno_table! {
    EPERM = 1: "Operation not permitted.",
    ENOENT = 2: "No such file or directory.",
    ESRCH = 3: "No such process.",
    EINTR = 4: "Interrupted system call.",
    EIO = 5: "I/O error.",
    ENXIO = 6: "No such device or address.",
    E2BIG = 7: "Argument list too long.",
    ENOEXEC = 8: "Exec format error.",
    EBADF = 9: "Bad file descriptor.",
    ECHILD = 10: "No child processes.",
    EAGAIN = 11: "Try again (also EWOULDBLOCK).",
    ENOMEM = 12: "Out of memory.",
    EACCES = 13: "Permission denied.",
    EFAULT = 14: "Bad address.",
    ENOTBLK = 15: "Block device required.",
    EBUSY = 16: "Device or resource busy.",
    EEXIST = 17: "File exists.",
    EXDEV = 18: "Cross-device link.",
    ENODEV = 19: "No such device.",
    ENOTDIR = 20: "Not a directory.",
    EISDIR = 21: "Is a directory.",
    EINVAL = 22: "Invalid argument.",
    ENFILE = 23: "File table overflow.",
    EMFILE = 24: "Too many open files.",
    ENOTTY = 25: "Not a typewriter (inappropriate ioctl).",
    ETXTBSY = 26: "Text file busy.",
    EFBIG = 27: "File too large.",
    ENOSPC = 28: "No space left on device.",
    ESPIPE = 29: "Illegal seek.",
    EROFS = 30: "Read-only file system.",
    EMLINK = 31: "Too many links.",
    EPIPE = 32: "Broken pipe.",
    EDOM = 33: "Math argument out of domain.",
    ERANGE = 34: "Math result not representable.",
    EDEADLK = 35: "Resource deadlock would occur.",
    ENAMETOOLONG = 36: "File name too long.",
    ENOLCK = 37: "No record locks available.",
    ENOSYS = 38: "Invalid system call number.",
    ENOTEMPTY = 39: "Directory not empty.",
    ELOOP = 40: "Too many symbolic links encountered.",
    ENOMSG = 42: "No message of desired type.",
    ENODATA = 61: "No data available.",
    ETIME = 62: "Timer expired.",
    EOVERFLOW = 75: "Value too large for defined data type.",
    EBADFD = 77: "File descriptor in bad state.",
    EILSEQ = 84: "Illegal byte sequence.",
    ENOTSOCK = 88: "Socket operation on non-socket.",
    EMSGSIZE = 90: "Message too long.",
    EOPNOTSUPP = 95: "Operation not supported (also ENOTSUP).",
    EADDRINUSE = 98: "Address already in use.",
    ENOBUFS = 105: "No buffer space available.",
    ETIMEDOUT = 110: "Connection timed out.",
    ESTALE = 116: "Stale file handle.",
    EDQUOT = 122: "Quota exceeded.",
    ECANCELED = 125: "Operation canceled.",
    EOWNERDEAD = 130: "Owner died.",
    EHWPOISON = 133: "Memory page has hardware error.",
}

impl Errno {
    /// The positive Linux value.
    pub const fn value(self) -> i32 {
        self as i32
    }

    /// The value a syscall returns in RAX (`-errno`, two's complement).
    pub const fn as_return(self) -> u64 {
        (-(self as i64)) as u64
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A syscall result: the value for RAX, or the errno.
pub type SysResult<T = u64> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux() {
        assert_eq!(Errno::EINVAL.value(), 22);
        assert_eq!(Errno::ENOSYS.value(), 38);
        assert_eq!(Errno::EOPNOTSUPP.value(), 95);
        assert_eq!(Errno::EHWPOISON.value(), 133);
        assert_eq!(Errno::EPERM.as_return(), u64::MAX);
    }

    #[test]
    fn table_is_ascending_and_round_trips() {
        for pair in Errno::ALL.windows(2) {
            assert!(
                pair[0].value() < pair[1].value(),
                "{} before {}",
                pair[0],
                pair[1]
            );
        }
        for &e in Errno::ALL {
            assert_eq!(Errno::from_value(e.value()), Some(e));
        }
        assert_eq!(Errno::from_value(0), None);
        assert_eq!(Errno::from_value(41), None);
        assert_eq!(Errno::EFAULT.name(), "EFAULT");
    }
}
