//! Linux x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) used by
//! the runtime and the programs.

#![allow(missing_docs)]

pub const READ: usize = 0;
/// `lseek`.
pub const LSEEK: usize = 8;
pub const WRITE: usize = 1;
pub const CLOSE: usize = 3;
pub const MMAP: usize = 9;
pub const MPROTECT: usize = 10;
pub const MUNMAP: usize = 11;
pub const BRK: usize = 12;
pub const RT_SIGACTION: usize = 13;
pub const RT_SIGPROCMASK: usize = 14;
pub const RT_SIGRETURN: usize = 15;
pub const SCHED_YIELD: usize = 24;
pub const MREMAP: usize = 25;
pub const MSYNC: usize = 26;
pub const MINCORE: usize = 27;
pub const MADVISE: usize = 28;
pub const DUP2: usize = 33;
pub const NANOSLEEP: usize = 35;
pub const GETPID: usize = 39;
pub const CLONE: usize = 56;
pub const FORK: usize = 57;
pub const EXECVE: usize = 59;
pub const EXIT: usize = 60;
pub const WAIT4: usize = 61;
pub const KILL: usize = 62;
pub const UNAME: usize = 63;
pub const FTRUNCATE: usize = 77;
pub const GETUID: usize = 102;
pub const GETPPID: usize = 110;
pub const ARCH_PRCTL: usize = 158;
pub const REMAP_FILE_PAGES: usize = 216;
pub const GETTID: usize = 186;
pub const FUTEX: usize = 202;
pub const SCHED_SETAFFINITY: usize = 203;
pub const SCHED_GETAFFINITY: usize = 204;
pub const SET_TID_ADDRESS: usize = 218;
pub const CLOCK_GETTIME: usize = 228;
pub const EXIT_GROUP: usize = 231;
pub const TGKILL: usize = 234;
pub const OPENAT: usize = 257;
pub const UNLINKAT: usize = 263;
pub const PRLIMIT64: usize = 302;
pub const GETCPU: usize = 309;
pub const GETRANDOM: usize = 318;
pub const MEMFD_CREATE: usize = 319;
/// `userfaultfd`.
pub const USERFAULTFD: usize = 323;
/// `ioctl`.
pub const IOCTL: usize = 16;
/// `poll`.
pub const POLL: usize = 7;
