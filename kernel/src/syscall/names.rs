//! Calls that change names: `mkdirat` (`mkdir`), `unlinkat` (`unlink`, `rmdir`),
//! `renameat2` (`rename`, `renameat`) and `truncate`. Which filesystems allow them is
//! theirs to say (tmpfs does; the others answer EROFS).

use super::fs::{caller, read_path, start_dir};
use crate::{proc::thread::Thread, vfs::mount};
use errno::{Errno, SysResult};

/// `unlinkat`'s flag: remove a directory (`rmdir`).
const AT_REMOVEDIR: u64 = 0x200;
/// `renameat2`: fail with EEXIST if the new name exists.
const RENAME_NOREPLACE: u64 = 1;

/// A non-empty path argument (an empty one is ENOENT) and the directory it is
/// resolved from.
fn name_and_start(
    thread: &Thread,
    dirfd: i64,
    path: u64,
) -> SysResult<(alloc::string::String, alloc::string::String)> {
    let name = read_path(path)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    let from = start_dir(thread, dirfd, &name)?;
    Ok((name, from))
}

/// `mkdirat(dirfd, path, mode)`: the permission bits less the umask.
pub fn mkdirat(thread: &Thread, dirfd: i64, path: u64, mode: u64) -> SysResult {
    let (name, from) = name_and_start(thread, dirfd, path)?;
    let perm = mode as u32 & 0o7777 & !thread.process.fs.lock().umask;
    mount::mkdir(&caller(thread), &from, &name, perm)?;
    Ok(0)
}

/// `unlinkat(dirfd, path, flags)`: `AT_REMOVEDIR` removes an empty directory.
pub fn unlinkat(thread: &Thread, dirfd: i64, path: u64, flags: u64) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let (name, from) = name_and_start(thread, dirfd, path)?;
    mount::remove(&caller(thread), &from, &name, flags & AT_REMOVEDIR != 0)?;
    Ok(0)
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)`: `RENAME_NOREPLACE` is honoured;
/// `RENAME_EXCHANGE` and `RENAME_WHITEOUT` are EINVAL here.
pub fn renameat2(
    thread: &Thread,
    old_dirfd: i64,
    old: u64,
    new_dirfd: i64,
    new: u64,
    flags: u64,
) -> SysResult {
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(Errno::EINVAL);
    }
    let (old_name, old_from) = name_and_start(thread, old_dirfd, old)?;
    let (new_name, new_from) = name_and_start(thread, new_dirfd, new)?;
    let who = caller(thread);
    if flags & RENAME_NOREPLACE != 0 {
        let target = mount::resolve(&who, &new_from, &new_name, false)?;
        if target.found != pathwalk::Found::Missing {
            return Err(Errno::EEXIST);
        }
    }
    mount::rename(&who, &old_from, &old_name, &new_from, &new_name)?;
    Ok(0)
}

/// `truncate(path, length)`: EINVAL for a negative length.
pub fn truncate(thread: &Thread, path: u64, length: u64) -> SysResult {
    if (length as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_path(path)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    let cwd = thread.process.fs.lock().cwd.clone();
    mount::truncate(&caller(thread), &cwd, &name, length)?;
    Ok(0)
}
