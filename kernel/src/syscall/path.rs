//! Calls that name files by path or move through the namespace: `newfstatat`
//! (`stat`, `lstat`), `statx`, `faccessat2` (`access`, `faccessat`), `readlinkat`
//! (`readlink`), `getcwd`, `chdir`, `fchdir`, `umask`, and `getdents64`.

use super::fs::{caller, file_of, read_path, start_dir, AT_FDCWD};
use crate::{
    arch::uaccess::{check_user_range, copy_to_user},
    proc::thread::Thread,
    vfs::{
        mount,
        stat::mode::{S_IFDIR, S_IFMT, S_IFREG},
        Stat,
    },
};
use alloc::string::String;
use errno::{Errno, SysResult};

/// `AT_SYMLINK_NOFOLLOW`.
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_EACCESS`: check with the effective ids (the same ids here).
const AT_EACCESS: u64 = 0x200;
/// `AT_NO_AUTOMOUNT`.
const AT_NO_AUTOMOUNT: u64 = 0x800;
/// `AT_EMPTY_PATH`: an empty path names `dirfd` itself.
const AT_EMPTY_PATH: u64 = 0x1000;
/// `AT_STATX_SYNC_TYPE` (both bits set is EINVAL).
const AT_STATX_SYNC_TYPE: u64 = 0x6000;

/// The attributes of what `dirfd` and `path` name.
fn stat_at(thread: &Thread, dirfd: i64, path: u64, flags: u64) -> SysResult<Stat> {
    let name = read_path(path)?;
    if name.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd != AT_FDCWD {
            let fd = u64::try_from(dirfd).map_err(|_| Errno::EBADF)?;
            return Ok(file_of(thread, fd)?.file().stat());
        }
        let cwd = thread.process.fs.lock().cwd.clone();
        return mount::stat(&caller(thread), "/", &cwd, true);
    }
    let from = start_dir(thread, dirfd, &name)?;
    mount::stat(
        &caller(thread),
        &from,
        &name,
        flags & AT_SYMLINK_NOFOLLOW == 0,
    )
}

/// `newfstatat(dirfd, path, statbuf, flags)`; `stat` and `lstat` come here too.
pub fn newfstatat(thread: &Thread, dirfd: i64, path: u64, statbuf: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    stat_at(thread, dirfd, path, flags)?.write_stat(statbuf)?;
    Ok(0)
}

/// `statx(dirfd, path, flags, mask, statxbuf)`: the basic fields, whatever `mask` asks.
pub fn statx(thread: &Thread, dirfd: i64, path: u64, flags: u64, mask: u64, buf: u64) -> SysResult {
    const STATX_RESERVED: u64 = 0x8000_0000;
    let known = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE;
    if flags & !known != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || mask & STATX_RESERVED != 0
    {
        return Err(Errno::EINVAL);
    }
    stat_at(thread, dirfd, path, flags)?.write_statx(buf)?;
    Ok(0)
}

/// `faccessat2(dirfd, path, mode, flags)`: whether the caller may read (4), write (2)
/// or execute (1) the file, or (0) whether it exists. The owner of every file here is
/// uid 0; a caller with uid 0 may read and write anything (execute: if any execute bit
/// is set, or a directory), others get the "other" bits. A registry key's security
/// descriptor decides for it. Writing a file of a read-only filesystem is EROFS.
pub fn faccessat2(thread: &Thread, dirfd: i64, path: u64, mode: u64, flags: u64) -> SysResult {
    const R_OK: u64 = 4;
    const W_OK: u64 = 2;
    const X_OK: u64 = 1;
    if mode & !(R_OK | W_OK | X_OK) != 0
        || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0
    {
        return Err(Errno::EINVAL);
    }
    let name = read_path(path)?;
    let who = caller(thread);
    let (stat, full) = if name.is_empty() && flags & AT_EMPTY_PATH != 0 {
        (stat_at(thread, dirfd, path, flags)?, None)
    } else {
        let from = start_dir(thread, dirfd, &name)?;
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        let r = mount::resolve(&who, &from, &name, follow)?;
        if r.found == pathwalk::Found::Missing {
            return Err(Errno::ENOENT);
        }
        (mount::stat(&who, "/", &r.path, follow)?, Some(r.path))
    };
    if mode == 0 {
        return Ok(0);
    }
    if let Some(key) = full.as_deref().and_then(crate::registry::lookup_path) {
        if mode & X_OK != 0 {
            return Err(Errno::EACCES);
        }
        if mode & R_OK != 0 {
            crate::registry::check_access(key, &who.token, false)?;
        }
        if mode & W_OK != 0 {
            crate::registry::check_access(key, &who.token, true)?;
        }
        return Ok(0);
    }
    if mode & W_OK != 0
        && matches!(stat.mode & S_IFMT, S_IFREG | S_IFDIR)
        && full.as_deref().is_some_and(mount::is_read_only)
    {
        return Err(Errno::EROFS);
    }
    let perm = stat.mode & 0o777;
    let allowed = if who.token.uid() == 0 {
        let exec = perm & 0o111 != 0 || stat.mode & S_IFMT == S_IFDIR;
        R_OK | W_OK | if exec { X_OK } else { 0 }
    } else {
        u64::from(perm & 0o7)
    };
    if mode & !allowed != 0 {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// `readlinkat(dirfd, path, buf, size)`: the link's target, not NUL-terminated and
/// cut at `size`; EINVAL for a size of 0 or less or a path that is not a link.
pub fn readlinkat(thread: &Thread, dirfd: i64, path: u64, buf: u64, size: u64) -> SysResult {
    if size as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_path(path)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    let from = start_dir(thread, dirfd, &name)?;
    let target = mount::readlink(&caller(thread), &from, &name)?;
    let n = target.len().min(size as u32 as usize);
    copy_to_user(buf, &target.as_bytes()[..n])?;
    Ok(n as u64)
}

/// `getcwd(buf, size)`: the working directory with its NUL; ERANGE if it does not
/// fit; returns the bytes written.
pub fn getcwd(thread: &Thread, buf: u64, size: u64) -> SysResult {
    let mut cwd = thread.process.fs.lock().cwd.clone();
    cwd.push('\0');
    if (cwd.len() as u64) > size {
        return Err(Errno::ERANGE);
    }
    check_user_range(buf, cwd.len())?;
    copy_to_user(buf, cwd.as_bytes())?;
    Ok(cwd.len() as u64)
}

/// `chdir(path)`.
pub fn chdir(thread: &Thread, path: u64) -> SysResult {
    let name = read_path(path)?;
    let cwd = thread.process.fs.lock().cwd.clone();
    let dir = mount::directory(&caller(thread), &cwd, &name)?;
    thread.process.fs.lock().cwd = dir;
    Ok(0)
}

/// `fchdir(fd)`: ENOTDIR unless `fd` is an open directory.
pub fn fchdir(thread: &Thread, fd: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    let dir = match file.path() {
        Some(p) if file.file().stat().mode & S_IFMT == S_IFDIR => String::from(p),
        _ => return Err(Errno::ENOTDIR),
    };
    thread.process.fs.lock().cwd = dir;
    Ok(0)
}

/// `umask(mask)`: sets the file-creation mask, returns the old one.
pub fn umask(thread: &Thread, mask: u64) -> SysResult {
    let mut fs = thread.process.fs.lock();
    let old = fs.umask;
    fs.umask = mask as u32 & 0o777;
    Ok(u64::from(old))
}

/// `getdents64(fd, buf, count)`.
pub fn getdents64(thread: &Thread, fd: u64, buf: u64, count: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    file.file().getdents(buf, count)
}
