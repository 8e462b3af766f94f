//! Descriptor-table calls beyond open/close/dup: `pipe`/`pipe2`, `dup2`/`dup3`,
//! `close_range`.

use super::fs::file_of;
use crate::{
    arch::uaccess::write_user,
    proc::thread::Thread,
    vfs::{
        flags::{O_CLOEXEC, O_NONBLOCK, O_WRONLY},
        pipe, OpenFile,
    },
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};

/// `pipe2(fds, flags)`: `O_CLOEXEC` and `O_NONBLOCK` (on both ends); `pipe` is
/// `pipe2(fds, 0)`. Any other flag is EINVAL (`O_DIRECT`'s packet mode included).
pub fn pipe2(thread: &Thread, fds: u64, flags: u64) -> SysResult {
    let flags = flags as u32;
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    crate::arch::uaccess::check_user_range(fds, 8)?;
    let (reader, writer) = pipe::new_pipe();
    let status = flags & O_NONBLOCK;
    let reader = OpenFile::new(Arc::new(reader), status, None);
    let writer = OpenFile::new(Arc::new(writer), O_WRONLY | status, None);
    let cloexec = flags & O_CLOEXEC != 0;
    let (r, w) = {
        let mut files = thread.process.files.lock();
        let r = files.insert(reader, cloexec)?;
        match files.insert(writer, cloexec) {
            Ok(w) => (r, w),
            Err(e) => {
                let _ = files.close(r);
                return Err(e);
            }
        }
    };
    if let Err(e) = write_user(fds, &(r | (w << 32))) {
        let mut files = thread.process.files.lock();
        let _ = files.close(r);
        let _ = files.close(w);
        return Err(e);
    }
    Ok(0)
}

/// `dup3(old, new, flags)`: EINVAL when they are equal or for a flag but `O_CLOEXEC`.
pub fn dup3(thread: &Thread, old: u64, new: u64, flags: u64) -> SysResult {
    if flags as u32 & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    install(thread, old, new, flags as u32 & O_CLOEXEC != 0)
}

/// `dup2(old, new)`: `new` when they are equal and `old` is open.
pub fn dup2(thread: &Thread, old: u64, new: u64) -> SysResult {
    if old == new {
        file_of(thread, old)?;
        return Ok(new);
    }
    install(thread, old, new, false)
}

/// Puts `old`'s description at `new`, closing what was there (after the lock).
fn install(thread: &Thread, old: u64, new: u64, cloexec: bool) -> SysResult {
    let limit = thread.process.rlimits.lock()[7].cur; // RLIMIT_NOFILE
    let replaced = {
        let mut files = thread.process.files.lock();
        let file = files.get(old)?;
        if new >= limit {
            return Err(Errno::EBADF);
        }
        files.install_at(new, file, cloexec)?
    };
    drop(replaced);
    Ok(new)
}

/// `close_range(first, last, flags)`: `CLOSE_RANGE_CLOEXEC` marks instead of closing;
/// `CLOSE_RANGE_UNSHARE` is accepted (the table is the process's own).
pub fn close_range(thread: &Thread, first: u64, last: u64, flags: u64) -> SysResult {
    const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    let (first, last) = (first as u32, last as u32);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    let closed = thread.process.files.lock().close_range(
        first as usize,
        last as usize,
        flags & CLOSE_RANGE_CLOEXEC != 0,
    );
    drop(closed);
    Ok(0)
}
