//! `chmod`, `fchmod`, `fchmodat` and `fchmodat2`: new permission bits for a file,
//! which on Peios rewrite its security descriptor's DACL (the mapping
//! `SecurityDescriptor::for_file` documents). Who may: whoever holds `WRITE_DAC` on
//! the descriptor, i.e. the owner (implicitly) or SYSTEM and Administrators (Linux's
//! owner-or-CAP_FOWNER rule); EPERM for anyone else. A memfd with `F_SEAL_EXEC`
//! refuses a change of its exec bits (EPERM). Filesystems that cannot change a mode
//! answer EROFS.

use super::fs::{caller, file_of, read_path, start_dir, AT_FDCWD};
use crate::{proc::thread::Thread, vfs::mount};
use errno::{Errno, SysResult};

/// `AT_SYMLINK_NOFOLLOW`: a last symbolic link is not followed (EOPNOTSUPP on one).
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `AT_EMPTY_PATH`: an empty path names `dirfd` itself.
const AT_EMPTY_PATH: u64 = 0x1000;
/// `S_IFMT` and `S_IFDIR`.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;

/// `fchmod(fd, mode)`: EBADF for an `O_PATH` descriptor.
pub fn fchmod(thread: &Thread, fd: u64, mode: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    let who = caller(thread);
    let mode = mode as u32 & 0o7777;
    // An open directory has no descriptor of its own here: its name has.
    if file.file().stat().mode & S_IFMT == S_IFDIR {
        if let Some(path) = file.path() {
            mount::chmod(&who, "/", path, mode, true)?;
            return Ok(0);
        }
    }
    file.file().chmod(mode, &who)?;
    Ok(0)
}

/// `fchmodat2(dirfd, path, mode, flags)` (`chmod` and `fchmodat` pass no flags):
/// `AT_SYMLINK_NOFOLLOW` and `AT_EMPTY_PATH`, EINVAL for any other flag.
pub fn fchmodat2(thread: &Thread, dirfd: i64, path: u64, mode: u64, flags: u64) -> SysResult {
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
            mount::chmod(&caller(thread), "/", &cwd, mode as u32 & 0o7777, true)?;
            return Ok(0);
        }
        let fd = u64::try_from(dirfd).map_err(|_| Errno::EBADF)?;
        return fchmod(thread, fd, mode);
    }
    let from = start_dir(thread, dirfd, &name)?;
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    mount::chmod(&caller(thread), &from, &name, mode as u32 & 0o7777, follow)?;
    Ok(0)
}
