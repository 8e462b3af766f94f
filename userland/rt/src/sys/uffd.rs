//! userfaultfd: creating one, its `UFFDIO_*` ioctls and its fault messages.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// `UFFD_USER_MODE_ONLY`: only faults taken in user mode are reported.
pub const UFFD_USER_MODE_ONLY: u32 = 1;
/// `O_NONBLOCK` for [`userfaultfd`]: reads return `EAGAIN` instead of waiting.
pub const O_NONBLOCK: u32 = 0o4000;
/// The API version `UFFDIO_API` expects.
pub const UFFD_API: u64 = 0xAA;
/// `UFFDIO_REGISTER_MODE_MISSING`.
pub const MODE_MISSING: u64 = 1;
/// `UFFDIO_REGISTER_MODE_WP`.
pub const MODE_WP: u64 = 2;
/// `UFFDIO_REGISTER_MODE_MINOR`.
pub const MODE_MINOR: u64 = 4;
/// `UFFDIO_COPY_MODE_DONTWAKE` (also `UFFDIO_ZEROPAGE_MODE_DONTWAKE`).
pub const MODE_DONTWAKE: u64 = 1;
/// `UFFDIO_COPY_MODE_WP` (also `UFFDIO_CONTINUE_MODE_WP`): the page arrives
/// write-protected.
pub const COPY_MODE_WP: u64 = 2;
/// `UFFDIO_WRITEPROTECT_MODE_WP`.
pub const WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFDIO_WRITEPROTECT_MODE_DONTWAKE`.
pub const WRITEPROTECT_MODE_DONTWAKE: u64 = 2;
/// `UFFD_PAGEFAULT_FLAG_WP`.
pub const PAGEFAULT_FLAG_WP: u64 = 2;
/// `UFFD_PAGEFAULT_FLAG_MINOR`.
pub const PAGEFAULT_FLAG_MINOR: u64 = 4;
/// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`.
pub const FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
/// `UFFD_FEATURE_EVENT_REMAP`.
pub const FEATURE_EVENT_REMAP: u64 = 1 << 2;
/// `UFFD_FEATURE_EVENT_REMOVE`.
pub const FEATURE_EVENT_REMOVE: u64 = 1 << 3;
/// `UFFD_FEATURE_EVENT_UNMAP`.
pub const FEATURE_EVENT_UNMAP: u64 = 1 << 6;
/// `UFFD_FEATURE_SIGBUS`.
pub const FEATURE_SIGBUS: u64 = 1 << 7;
/// `UFFD_FEATURE_THREAD_ID`.
pub const FEATURE_THREAD_ID: u64 = 1 << 8;
/// `UFFD_FEATURE_MINOR_SHMEM`.
pub const FEATURE_MINOR_SHMEM: u64 = 1 << 10;
/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WRITE`.
pub const PAGEFAULT_FLAG_WRITE: u64 = 1;

const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (0xAA << 8) | nr
}
/// `UFFDIO_API`.
pub const UFFDIO_API: u64 = ioc(3, 0x3F, 24);
/// `UFFDIO_REGISTER`.
pub const UFFDIO_REGISTER: u64 = ioc(3, 0x00, 32);
/// `UFFDIO_UNREGISTER`.
pub const UFFDIO_UNREGISTER: u64 = ioc(2, 0x01, 16);
/// `UFFDIO_WAKE`.
pub const UFFDIO_WAKE: u64 = ioc(2, 0x02, 16);
/// `UFFDIO_COPY`.
pub const UFFDIO_COPY: u64 = ioc(3, 0x03, 40);
/// `UFFDIO_ZEROPAGE`.
pub const UFFDIO_ZEROPAGE: u64 = ioc(3, 0x04, 32);
/// `UFFDIO_WRITEPROTECT`.
pub const UFFDIO_WRITEPROTECT: u64 = ioc(3, 0x06, 24);
/// `UFFDIO_CONTINUE`.
pub const UFFDIO_CONTINUE: u64 = ioc(3, 0x07, 32);
/// `UFFDIO_MOVE`.
pub const UFFDIO_MOVE: u64 = ioc(3, 0x05, 40);
/// `UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES`.
pub const MOVE_MODE_ALLOW_SRC_HOLES: u64 = 2;
/// `UFFD_FEATURE_MOVE`.
pub const FEATURE_MOVE: u64 = 1 << 16;
/// Bit of `_UFFDIO_MOVE` in the ioctl masks.
pub const IOCTL_MOVE_BIT: u64 = 1 << 0x05;
/// Bit of `_UFFDIO_WRITEPROTECT` in the ioctl masks.
pub const IOCTL_WRITEPROTECT_BIT: u64 = 1 << 0x06;
/// Bit of `_UFFDIO_CONTINUE` in the ioctl masks.
pub const IOCTL_CONTINUE_BIT: u64 = 1 << 0x07;
/// Bit of `_UFFDIO_COPY` in the ioctl masks.
pub const IOCTL_COPY_BIT: u64 = 1 << 0x03;
/// Bit of `_UFFDIO_REGISTER` in the ioctl masks.
pub const IOCTL_REGISTER_BIT: u64 = 1 << 0x00;

/// `userfaultfd(flags)` (`O_CLOEXEC`, [`O_NONBLOCK`], [`UFFD_USER_MODE_ONLY`]).
pub fn userfaultfd(flags: u32) -> Result<i32, Errno> {
    // SAFETY: no memory is passed.
    Errno::result(unsafe { syscall1(nr::USERFAULTFD, flags as usize) }).map(|fd| fd as i32)
}

/// `ioctl(fd, request, words)` on a struct of 64-bit words, read and written back.
pub fn ioctl_words(fd: i32, request: u64, words: &mut [u64]) -> Result<(), Errno> {
    // SAFETY: `words` is valid for reads and writes of its whole length, which is the
    // struct size each request encodes.
    Errno::result(unsafe {
        syscall3(
            nr::IOCTL,
            fd as usize,
            request as usize,
            words.as_mut_ptr() as usize,
        )
    })
    .map(|_| ())
}

/// `UFFDIO_API` with `api` and `features`: on success `(features, ioctls)`.
pub fn api(fd: i32, api: u64, features: u64) -> Result<(u64, u64), Errno> {
    let mut w = [api, features, 0];
    ioctl_words(fd, UFFDIO_API, &mut w)?;
    Ok((w[1], w[2]))
}

/// `UFFDIO_REGISTER` of `[start, start + len)` in `mode`: the ioctls the range allows.
pub fn register(fd: i32, start: usize, len: usize, mode: u64) -> Result<u64, Errno> {
    let mut w = [start as u64, len as u64, mode, 0];
    ioctl_words(fd, UFFDIO_REGISTER, &mut w)?;
    Ok(w[3])
}

/// `UFFDIO_UNREGISTER`.
pub fn unregister(fd: i32, start: usize, len: usize) -> Result<(), Errno> {
    ioctl_words(fd, UFFDIO_UNREGISTER, &mut [start as u64, len as u64])
}

/// `UFFDIO_WAKE`.
pub fn wake(fd: i32, start: usize, len: usize) -> Result<(), Errno> {
    ioctl_words(fd, UFFDIO_WAKE, &mut [start as u64, len as u64])
}

/// `UFFDIO_COPY` of `len` bytes from `src` to `dst`: the result and the `copy` field
/// (bytes copied, or -errno).
pub fn copy(fd: i32, dst: usize, src: usize, len: usize, mode: u64) -> (Result<(), Errno>, i64) {
    let mut w = [dst as u64, src as u64, len as u64, mode, 0];
    let r = ioctl_words(fd, UFFDIO_COPY, &mut w);
    (r, w[4] as i64)
}

/// `UFFDIO_ZEROPAGE`: the result and the `zeropage` field.
pub fn zeropage(fd: i32, start: usize, len: usize, mode: u64) -> (Result<(), Errno>, i64) {
    let mut w = [start as u64, len as u64, mode, 0];
    let r = ioctl_words(fd, UFFDIO_ZEROPAGE, &mut w);
    (r, w[3] as i64)
}

/// `UFFDIO_WRITEPROTECT` of `[start, start + len)` with `mode`
/// ([`WRITEPROTECT_MODE_WP`] protects, 0 unprotects and wakes).
pub fn writeprotect(fd: i32, start: usize, len: usize, mode: u64) -> Result<(), Errno> {
    ioctl_words(
        fd,
        UFFDIO_WRITEPROTECT,
        &mut [start as u64, len as u64, mode],
    )
}

/// `UFFDIO_CONTINUE`: the result and the `mapped` field (bytes mapped, or -errno).
pub fn continue_range(fd: i32, start: usize, len: usize, mode: u64) -> (Result<(), Errno>, i64) {
    let mut w = [start as u64, len as u64, mode, 0];
    let r = ioctl_words(fd, UFFDIO_CONTINUE, &mut w);
    (r, w[3] as i64)
}

/// `UFFDIO_MOVE` of `len` bytes from `src` to `dst`: the result and the `move` field
/// (bytes moved, or -errno).
pub fn move_range(
    fd: i32,
    dst: usize,
    src: usize,
    len: usize,
    mode: u64,
) -> (Result<(), Errno>, i64) {
    let mut w = [dst as u64, src as u64, len as u64, mode, 0];
    let r = ioctl_words(fd, UFFDIO_MOVE, &mut w);
    (r, w[4] as i64)
}

/// One `struct uffd_msg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// `event`.
    pub event: u8,
    /// `arg.pagefault.flags`.
    pub flags: u64,
    /// `arg.pagefault.address`.
    pub address: u64,
    /// `arg.pagefault.feat.ptid` (`UFFD_FEATURE_THREAD_ID`).
    pub tid: u32,
}

/// Reads one message (waits unless the descriptor is non-blocking).
pub fn read_message(fd: i32) -> Result<Message, Errno> {
    let mut w = [0u64; 4];
    // SAFETY: `w` is 32 writable bytes.
    let n = unsafe { super::fs::read_raw(fd, w.as_mut_ptr() as *mut u8, 32) }?;
    if n != 32 {
        return Err(Errno::EIO);
    }
    Ok(Message {
        event: w[0] as u8,
        flags: w[1],
        address: w[2],
        tid: w[3] as u32,
    })
}
