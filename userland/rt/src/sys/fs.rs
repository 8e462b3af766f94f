//! File-descriptor syscalls: read, write, openat, close, ftruncate, unlinkat,
//! memfd_create, dup2.

use super::nr;
use crate::syscall::*;
use crate::Errno;
use core::ffi::CStr;

/// `AT_FDCWD`: resolve relative paths against the working directory.
pub const AT_FDCWD: i32 = -100;
/// `O_RDONLY`.
pub const O_RDONLY: u32 = 0;
/// `O_WRONLY`.
pub const O_WRONLY: u32 = 1;
/// `O_RDWR`.
pub const O_RDWR: u32 = 2;
/// `O_CREAT`.
pub const O_CREAT: u32 = 0o100;
/// `O_EXCL`.
pub const O_EXCL: u32 = 0o200;
/// `O_TRUNC`.
pub const O_TRUNC: u32 = 0o1000;
/// `O_CLOEXEC`.
pub const O_CLOEXEC: u32 = 0o2000000;
/// `MFD_CLOEXEC` for [`memfd_create`].
pub const MFD_CLOEXEC: u32 = 1;

/// Reads into `buf`; returns the byte count (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `read(2)` with a raw buffer pointer, for tests that pass bad pointers.
///
/// # Safety
/// If `buf..buf+len` is mapped writable memory of this process, the kernel writes
/// into it: the caller must own that memory.
pub unsafe fn read_raw(fd: i32, buf: *mut u8, len: usize) -> Result<usize, Errno> {
    // SAFETY: the caller owns the destination (contract above).
    Errno::result(unsafe { syscall3(nr::READ, fd as usize, buf as usize, len) })
}

/// Writes from `buf`; returns the byte count written.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel only reads `buf`, which is valid for `buf.len()` bytes.
    Errno::result(unsafe { syscall3(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// Writes all of `buf`, retrying on short writes and `EINTR`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` relative to `dirfd`; returns the new descriptor.
pub fn openat(dirfd: i32, path: &CStr, flags: u32, mode: u32) -> Result<i32, Errno> {
    // SAFETY: `path` is NUL-terminated and only read by the kernel.
    let r = unsafe {
        syscall4(
            nr::OPENAT,
            dirfd as usize,
            path.as_ptr() as usize,
            flags as usize,
            mode as usize,
        )
    };
    Errno::result(r).map(|fd| fd as i32)
}

/// Closes `fd`.
pub fn close(fd: i32) -> Result<(), Errno> {
    // SAFETY: closing a descriptor has no memory effect on this process.
    Errno::result(unsafe { syscall1(nr::CLOSE, fd as usize) }).map(|_| ())
}

/// Sets the size of the file behind `fd`.
pub fn ftruncate(fd: i32, len: u64) -> Result<(), Errno> {
    // SAFETY: no user memory is passed.
    Errno::result(unsafe { syscall2(nr::FTRUNCATE, fd as usize, len as usize) }).map(|_| ())
}

/// Removes the directory entry `path` relative to `dirfd`.
pub fn unlinkat(dirfd: i32, path: &CStr, flags: u32) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and only read by the kernel.
    let r = unsafe {
        syscall3(
            nr::UNLINKAT,
            dirfd as usize,
            path.as_ptr() as usize,
            flags as usize,
        )
    };
    Errno::result(r).map(|_| ())
}

/// Creates an anonymous memory-backed file; returns its descriptor.
pub fn memfd_create(name: &CStr, flags: u32) -> Result<i32, Errno> {
    // SAFETY: `name` is NUL-terminated and only read by the kernel.
    let r = unsafe { syscall2(nr::MEMFD_CREATE, name.as_ptr() as usize, flags as usize) };
    Errno::result(r).map(|fd| fd as i32)
}

/// Duplicates `old` onto `new` (closing `new` first if open).
pub fn dup2(old: i32, new: i32) -> Result<i32, Errno> {
    // SAFETY: no user memory is passed.
    Errno::result(unsafe { syscall2(nr::DUP2, old as usize, new as usize) }).map(|fd| fd as i32)
}

/// `lseek(fd, offset, SEEK_SET)`: the new offset. Offsets above `i64::MAX` (user
/// addresses in `/proc/<pid>/mem` never are) are passed through unchanged.
pub fn lseek_set(fd: i32, offset: u64) -> Result<u64, Errno> {
    // SAFETY: lseek only changes the descriptor's position.
    Errno::result(unsafe { syscall3(nr::LSEEK, fd as usize, offset as usize, 0) }).map(|o| o as u64)
}

/// One `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PollFd {
    /// The descriptor.
    pub fd: i32,
    /// Events asked for.
    pub events: i16,
    /// Events that happened.
    pub revents: i16,
}

/// `POLLIN`.
pub const POLLIN: i16 = 1;
/// `POLLERR`.
pub const POLLERR: i16 = 8;

/// `poll(fds, timeout_ms)`: how many descriptors have events (0 on timeout).
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: `fds` is valid for reads and writes of its whole length.
    Errno::result(unsafe {
        syscall3(
            nr::POLL,
            fds.as_mut_ptr() as usize,
            fds.len(),
            timeout_ms as isize as usize,
        )
    })
}
