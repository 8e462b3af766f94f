//! `chmod`, `fchmod`, `fchmodat`, `fchmodat2` and `chown`, `fchown`, `lchown`,
//! `fchownat`: new permission bits or a new owner for a file, which on Peios rewrite
//! its security descriptor (`vfs::attrs` gives the rules: `WRITE_DAC` to change the
//! bits, the owner's implicitly; `WRITE_OWNER` to give the file away, SYSTEM's and
//! Administrators'; EPERM for anyone else). A memfd with `F_SEAL_EXEC` refuses a
//! change of its exec bits (EPERM). Filesystems that cannot change them answer EROFS.

use super::fs::{caller, file_of, read_path, start_dir, AT_FDCWD};
use crate::{
    proc::thread::Thread,
    vfs::{attrs::SetAttr, mount},
};
use errno::{Errno, SysResult};

/// `AT_SYMLINK_NOFOLLOW`: a last symbolic link is not followed (EOPNOTSUPP on one).
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_EMPTY_PATH`: an empty path names `dirfd` itself.
const AT_EMPTY_PATH: u64 = 0x1000;
/// `S_IFMT` and `S_IFDIR`.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

/// A uid or gid argument: `None` for -1 (leave it as it is).
fn id_arg(reg: u64) -> Option<u32> {
    let id = reg as u32;
    (id != u32::MAX).then_some(id)
}

/// Applies `change` to what `fd` has open: EBADF for an `O_PATH` descriptor.
fn set_attr_fd(thread: &Thread, fd: u64, change: SetAttr) -> SysResult {
    let file = file_of(thread, fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    let who = caller(thread);
    // An open directory has no descriptor of its own here: its name has.
    if file.file().stat().mode & S_IFMT == S_IFDIR {
        if let Some(path) = file.path() {
            mount::set_attr(&who, "/", path, change, true)?;
            return Ok(0);
        }
    }
    match change {
        SetAttr::Mode(mode) => file.file().chmod(mode, &who)?,
        SetAttr::Owner(uid, gid) => file.file().chown(uid, gid, &who)?,
    }
    Ok(0)
}

/// Applies `change` to what `dirfd` and `path` name, with `AT_SYMLINK_NOFOLLOW` and
/// `AT_EMPTY_PATH` (EINVAL for any other flag).
fn set_attr_at(thread: &Thread, dirfd: i64, path: u64, change: SetAttr, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_path(path)?;
    if name.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd == AT_FDCWD {
            let cwd = thread.process.fs.lock().cwd.clone();
            mount::set_attr(&caller(thread), "/", &cwd, change, true)?;
            return Ok(0);
        }
        let fd = u64::try_from(dirfd).map_err(|_| Errno::EBADF)?;
        return set_attr_fd(thread, fd, change);
    }
    let from = start_dir(thread, dirfd, &name)?;
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    mount::set_attr(&caller(thread), &from, &name, change, follow)?;
    Ok(0)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(thread: &Thread, fd: u64, mode: u64) -> SysResult {
    set_attr_fd(thread, fd, SetAttr::Mode(mode as u32 & 0o7777))
}

/// `fchmodat2(dirfd, path, mode, flags)` (`chmod` and `fchmodat` pass no flags).
pub fn fchmodat2(thread: &Thread, dirfd: i64, path: u64, mode: u64, flags: u64) -> SysResult {
    set_attr_at(
        thread,
        dirfd,
        path,
        SetAttr::Mode(mode as u32 & 0o7777),
        flags,
    )
}

/// `fchown(fd, uid, gid)`: -1 leaves one as it is.
pub fn fchown(thread: &Thread, fd: u64, uid: u64, gid: u64) -> SysResult {
    set_attr_fd(thread, fd, SetAttr::Owner(id_arg(uid), id_arg(gid)))
}

/// `fchownat(dirfd, path, uid, gid, flags)` (`chown` passes no flags, `lchown`
/// `AT_SYMLINK_NOFOLLOW`).
pub fn fchownat(
    thread: &Thread,
    dirfd: i64,
    path: u64,
    uid: u64,
    gid: u64,
    flags: u64,
) -> SysResult {
    let change = SetAttr::Owner(id_arg(uid), id_arg(gid));
    set_attr_at(thread, dirfd, path, change, flags)
}
