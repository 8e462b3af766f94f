//! Vectored and positional reads and writes: `readv`, `writev`, `pread64`, `pwrite64`,
//! `preadv`, `pwritev`. A vector is moved segment by segment and stops at the first
//! short transfer (what was moved is returned; an error only when nothing was).

use super::{
    fs::{file_of, sigpipe_on_epipe, wait_for_file},
    Outcome,
};
use crate::{arch::uaccess::read_user, proc::thread::Thread, vfs::OpenFile};
use alloc::{sync::Arc, vec::Vec};
use errno::{Errno, SysResult};

/// Most segments in one vector (Linux's `UIO_MAXIOV`).
const UIO_MAXIOV: u64 = 1024;
/// Most bytes one call moves (Linux's `MAX_RW_COUNT`: `INT_MAX` rounded down to a page).
const MAX_RW_COUNT: u64 = 0x7fff_f000;

/// Which way, and where.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
    Pread(u64),
    Pwrite(u64),
}

impl Op {
    /// One segment at `done` bytes into the whole transfer.
    fn segment(self, file: &OpenFile, base: u64, len: u64, done: u64) -> SysResult {
        let f = file.file();
        match self {
            Op::Read => f.read(base, len),
            Op::Write => f.write(base, len),
            Op::Pread(at) => f.pread(base, len, at.checked_add(done).ok_or(Errno::EINVAL)?),
            Op::Pwrite(at) => f.pwrite(base, len, at.checked_add(done).ok_or(Errno::EINVAL)?),
        }
    }
}

/// The `(base, len)` pairs of a user `iovec` array, validated as Linux's
/// `import_iovec`: EINVAL past `UIO_MAXIOV` segments or a length above `isize::MAX`,
/// the total clamped to `MAX_RW_COUNT`.
fn read_iovec(iov: u64, iovcnt: u64) -> SysResult<Vec<(u64, u64)>> {
    if iovcnt > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let mut out = crate::mem::kbuf::with_capacity(iovcnt as usize)?;
    let mut total = 0u64;
    for i in 0..iovcnt {
        let at = iov.checked_add(i * 16).ok_or(Errno::EFAULT)?;
        let [base, len]: [u64; 2] = read_user(at)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        let len = len.min(MAX_RW_COUNT - total);
        total += len;
        out.push((base, len));
    }
    Ok(out)
}

/// Moves every segment until one comes up short.
fn transfer(file: &OpenFile, op: Op, segments: &[(u64, u64)]) -> SysResult {
    let mut done = 0u64;
    for &(base, len) in segments {
        if len == 0 {
            continue;
        }
        match op.segment(file, base, len, done) {
            Ok(n) => {
                done += n;
                if n < len {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// The descriptor for `op`: EBADF unless opened for that direction; a positional
/// call on a file without a position is ESPIPE (from the file).
fn open_for(thread: &Thread, fd: u64, writes: bool) -> SysResult<Arc<OpenFile>> {
    let file = file_of(thread, fd)?;
    let allowed = if writes {
        file.writable()
    } else {
        file.readable()
    };
    if !allowed {
        return Err(Errno::EBADF);
    }
    Ok(file)
}

/// A vectored or positional transfer: the descriptor is checked first (EBADF), then
/// the position and vector (`segments`); a blocking descriptor whose file has nothing
/// ready waits for it (a pipe, say).
fn vectored(
    thread: &Arc<Thread>,
    fd: u64,
    op: impl FnOnce() -> SysResult<(Op, Vec<(u64, u64)>)>,
    writes: bool,
) -> Outcome {
    let checked = open_for(thread, fd, writes).and_then(|file| Ok((file, op()?)));
    let (file, (op, segments)) = match checked {
        Ok(x) => x,
        Err(e) => return Err(e).into(),
    };
    match transfer(&file, op, &segments) {
        Err(Errno::EAGAIN) if !file.nonblocking() => {
            let writer = thread.clone();
            wait_for_file(
                thread,
                file,
                move |f| match transfer(f, op, &segments) {
                    Err(Errno::EAGAIN) => None,
                    r if writes => Some(sigpipe_on_epipe(&writer, r)),
                    r => Some(r),
                },
                || Err(Errno::EINTR),
            )
        }
        r if writes => sigpipe_on_epipe(thread, r).into(),
        r => r.into(),
    }
}

/// A positional offset: negative is EINVAL.
fn position(offset: u64) -> SysResult<u64> {
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(offset)
}

/// `readv`.
pub fn readv(thread: &Arc<Thread>, fd: u64, iov: u64, iovcnt: u64) -> Outcome {
    vectored(
        thread,
        fd,
        || Ok((Op::Read, read_iovec(iov, iovcnt)?)),
        false,
    )
}

/// `writev`.
pub fn writev(thread: &Arc<Thread>, fd: u64, iov: u64, iovcnt: u64) -> Outcome {
    vectored(
        thread,
        fd,
        || Ok((Op::Write, read_iovec(iov, iovcnt)?)),
        true,
    )
}

/// `pread64`.
pub fn pread64(thread: &Arc<Thread>, fd: u64, buf: u64, count: u64, offset: u64) -> Outcome {
    let segment = alloc::vec![(buf, count.min(MAX_RW_COUNT))];
    vectored(
        thread,
        fd,
        || Ok((Op::Pread(position(offset)?), segment)),
        false,
    )
}

/// `pwrite64`.
pub fn pwrite64(thread: &Arc<Thread>, fd: u64, buf: u64, count: u64, offset: u64) -> Outcome {
    let segment = alloc::vec![(buf, count.min(MAX_RW_COUNT))];
    vectored(
        thread,
        fd,
        || Ok((Op::Pwrite(position(offset)?), segment)),
        true,
    )
}

/// `preadv` (the offset in one register on x86_64).
pub fn preadv(thread: &Arc<Thread>, fd: u64, iov: u64, iovcnt: u64, offset: u64) -> Outcome {
    vectored(
        thread,
        fd,
        || Ok((Op::Pread(position(offset)?), read_iovec(iov, iovcnt)?)),
        false,
    )
}

/// `pwritev`.
pub fn pwritev(thread: &Arc<Thread>, fd: u64, iov: u64, iovcnt: u64, offset: u64) -> Outcome {
    vectored(
        thread,
        fd,
        || Ok((Op::Pwrite(position(offset)?), read_iovec(iov, iovcnt)?)),
        true,
    )
}
