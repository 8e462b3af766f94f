//! The mount table and path lookup: a path is resolved component by component (the
//! rules are `pathwalk`'s), each canonical prefix answered by the filesystem mounted
//! at its longest mount point; then the filesystem opens, lists or describes the name.

use super::{
    flags::{O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_PATH},
    Caller, File, Filesystem, Node, OpenFile, OpenRequest, Stat,
};
use alloc::{string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use pathwalk::{Found, Kind, Namespace, Resolved};
use spin::RwLock;

struct Mount {
    /// The mount point, canonical (`/`, `/proc`).
    at: String,
    fs: Arc<dyn Filesystem>,
}

/// Mounts, longest mount point first.
static MOUNTS: RwLock<Vec<Mount>> = RwLock::new(Vec::new());

/// Mounts `fs` at the canonical path `at` (replacing what was mounted there).
pub fn mount(at: &str, fs: Arc<dyn Filesystem>) {
    let mut mounts = MOUNTS.write();
    mounts.retain(|m| m.at != at);
    mounts.push(Mount {
        at: String::from(at),
        fs,
    });
    mounts.sort_by_key(|m| core::cmp::Reverse(m.at.len()));
}

/// `(mount point, filesystem name)` of every mount, for `/proc/mounts`.
pub fn mounts() -> Vec<(String, &'static str)> {
    let mut list: Vec<_> = MOUNTS
        .read()
        .iter()
        .map(|m| (m.at.clone(), m.fs.name()))
        .collect();
    list.sort();
    list
}

/// The filesystem holding canonical `path` and the path inside it.
fn locate(path: &str) -> SysResult<(Arc<dyn Filesystem>, String)> {
    let mounts = MOUNTS.read();
    for m in mounts.iter() {
        let rel = if m.at == "/" {
            Some(path.trim_start_matches('/'))
        } else if path == m.at {
            Some("")
        } else {
            path.strip_prefix(m.at.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        if let Some(rel) = rel {
            return Ok((m.fs.clone(), String::from(rel)));
        }
    }
    Err(Errno::ENOENT)
}

/// The namespace as the walk sees it.
struct Names<'a> {
    caller: &'a Caller,
}

impl Namespace for Names<'_> {
    fn kind(&mut self, path: &str) -> Result<Kind, Errno> {
        let (fs, rel) = locate(path)?;
        Ok(match fs.lookup(&rel, self.caller)? {
            Node::Dir => Kind::Dir,
            Node::File | Node::Device => Kind::NonDir,
            Node::Symlink(target) => Kind::Symlink(target),
        })
    }
}

/// Resolves `path` from `cwd` for `caller`.
pub fn resolve(caller: &Caller, cwd: &str, path: &str, follow_last: bool) -> SysResult<Resolved> {
    pathwalk::resolve(&mut Names { caller }, cwd, path, follow_last)
}

/// The node at the end of `r` (its filesystem, path inside it, and kind); ENOENT for a
/// missing one.
fn node_of(r: &Resolved, caller: &Caller) -> SysResult<(Arc<dyn Filesystem>, String, Node)> {
    let (fs, rel) = locate(&r.path)?;
    let node = match &r.found {
        Found::Missing => return Err(Errno::ENOENT),
        Found::Symlink(target) => Node::Symlink(target.clone()),
        _ => fs.lookup(&rel, caller)?,
    };
    Ok((fs, rel, node))
}

/// A description that only names a place (`O_PATH`).
struct PathOnly(Stat);

impl File for PathOnly {
    fn stat(&self) -> Stat {
        self.0
    }
}

/// `open`: resolves `path` from `cwd` and opens it as `flags` ask; `O_CREAT` of a
/// missing name creates it with permission bits `perm` (umask applied) where the
/// filesystem allows (EROFS elsewhere).
pub fn open(
    caller: &Caller,
    cwd: &str,
    path: &str,
    flags: u32,
    perm: u32,
) -> SysResult<Arc<OpenFile>> {
    let req = OpenRequest { flags };
    let r = resolve(caller, cwd, path, flags & O_NOFOLLOW == 0)?;
    if r.found == Found::Missing {
        if flags & O_CREAT == 0 {
            return Err(Errno::ENOENT);
        }
        if r.wants_dir {
            return Err(Errno::EISDIR);
        }
        let (fs, rel) = locate(&r.path)?;
        let file = fs.create(&rel, perm, &req, caller)?;
        return Ok(OpenFile::new(file, flags, Some(r.path)));
    }
    if flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL {
        return Err(Errno::EEXIST);
    }
    let (fs, rel, node) = node_of(&r, caller)?;
    if flags & O_PATH != 0 {
        let stat = fs.stat(&rel, &node, caller)?;
        return Ok(OpenFile::new(Arc::new(PathOnly(stat)), flags, Some(r.path)));
    }
    match node {
        Node::Symlink(_) => return Err(Errno::ELOOP), // O_NOFOLLOW
        Node::Dir if req.write() || flags & O_CREAT != 0 => return Err(Errno::EISDIR),
        Node::File | Node::Device if flags & O_DIRECTORY != 0 => return Err(Errno::ENOTDIR),
        _ => {}
    }
    let file = fs.open(&rel, &node, &req, caller)?;
    Ok(OpenFile::new(file, flags, Some(r.path)))
}

/// `mkdir`: creates the directory `path` (EEXIST if the name is taken).
pub fn mkdir(caller: &Caller, cwd: &str, path: &str, perm: u32) -> SysResult<()> {
    let r = resolve(caller, cwd, path, false)?;
    if r.found != Found::Missing {
        return Err(Errno::EEXIST);
    }
    let (fs, rel) = locate(&r.path)?;
    if rel.is_empty() {
        return Err(Errno::EEXIST); // a mount point
    }
    fs.mkdir(&rel, perm, caller)
}

/// The filesystem and inner path of an existing name (not following a last link), for
/// the calls that change names; EBUSY for a mount point.
fn existing_name(
    caller: &Caller,
    cwd: &str,
    path: &str,
) -> SysResult<(Arc<dyn Filesystem>, String, Node)> {
    let r = resolve(caller, cwd, path, false)?;
    let (fs, rel, node) = node_of(&r, caller)?;
    if rel.is_empty() {
        return Err(Errno::EBUSY);
    }
    Ok((fs, rel, node))
}

/// `unlink` (`dir` false) or `rmdir` (`dir` true) of `path`.
pub fn remove(caller: &Caller, cwd: &str, path: &str, dir: bool) -> SysResult<()> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if dir && last == "." {
        return Err(Errno::EINVAL);
    }
    if dir && last == ".." {
        return Err(Errno::ENOTEMPTY);
    }
    let (fs, rel, node) = existing_name(caller, cwd, path)?;
    match (node, dir) {
        (Node::Dir, false) => Err(Errno::EISDIR),
        (Node::Dir, true) => fs.remove(&rel, true, caller),
        (_, true) => Err(Errno::ENOTDIR),
        (_, false) => fs.remove(&rel, false, caller),
    }
}

/// `rename(from, to)`: EXDEV when the names are in different filesystems.
pub fn rename(
    caller: &Caller,
    from_cwd: &str,
    from: &str,
    to_cwd: &str,
    to: &str,
) -> SysResult<()> {
    let (fs, from_rel, _) = existing_name(caller, from_cwd, from)?;
    let r = resolve(caller, to_cwd, to, false)?;
    let (to_fs, to_rel) = locate(&r.path)?;
    if Arc::as_ptr(&fs) as *const u8 != Arc::as_ptr(&to_fs) as *const u8 {
        return Err(Errno::EXDEV);
    }
    if to_rel.is_empty() {
        return Err(Errno::EBUSY);
    }
    fs.rename(&from_rel, &to_rel, caller)
}

/// `truncate(path, length)`: EISDIR for a directory.
pub fn truncate(caller: &Caller, cwd: &str, path: &str, length: u64) -> SysResult<()> {
    let r = resolve(caller, cwd, path, true)?;
    let (fs, rel, node) = node_of(&r, caller)?;
    match node {
        Node::Dir => Err(Errno::EISDIR),
        Node::Device => Err(Errno::EINVAL),
        _ => fs.truncate(&rel, length, caller),
    }
}

/// `chmod` or `chown` of `path` (following a last link when `follow`).
pub fn set_attr(
    caller: &Caller,
    cwd: &str,
    path: &str,
    change: super::attrs::SetAttr,
    follow: bool,
) -> SysResult<()> {
    let r = resolve(caller, cwd, path, follow)?;
    let (fs, rel, node) = node_of(&r, caller)?;
    match (node, change) {
        // Linux has no permission bits on a link to change.
        (Node::Symlink(_), super::attrs::SetAttr::Mode(_)) => Err(Errno::EOPNOTSUPP),
        _ => fs.set_attr(&rel, change, caller),
    }
}

/// `stat` of `path` (following a last link when `follow`).
pub fn stat(caller: &Caller, cwd: &str, path: &str, follow: bool) -> SysResult<Stat> {
    let r = resolve(caller, cwd, path, follow)?;
    let (fs, rel, node) = node_of(&r, caller)?;
    fs.stat(&rel, &node, caller)
}

/// What the symbolic link at `path` points to; EINVAL if it is not a link.
pub fn readlink(caller: &Caller, cwd: &str, path: &str) -> SysResult<String> {
    let r = resolve(caller, cwd, path, false)?;
    match r.found {
        Found::Symlink(target) => Ok(target),
        Found::Missing => Err(Errno::ENOENT),
        _ => Err(Errno::EINVAL),
    }
}

/// The canonical path of the directory `path` names (`chdir`); ENOTDIR if it is not one.
pub fn directory(caller: &Caller, cwd: &str, path: &str) -> SysResult<String> {
    let r = resolve(caller, cwd, path, true)?;
    match r.found {
        Found::Dir => Ok(r.path),
        Found::Missing => Err(Errno::ENOENT),
        _ => Err(Errno::ENOTDIR),
    }
}

/// The filesystem that holds what `path` names (following a last link): its name and
/// whether it is read-only (`statfs`).
pub fn filesystem_of(caller: &Caller, cwd: &str, path: &str) -> SysResult<(&'static str, bool)> {
    let r = resolve(caller, cwd, path, true)?;
    let (fs, _, _) = node_of(&r, caller)?;
    Ok((fs.name(), fs.read_only()))
}

/// The counts of the filesystem that holds what `path` names (following a last link),
/// if it keeps its own ([`Filesystem::usage`]).
pub fn usage_of(caller: &Caller, cwd: &str, path: &str) -> SysResult<Option<super::FsUsage>> {
    let r = resolve(caller, cwd, path, true)?;
    let (fs, _, _) = node_of(&r, caller)?;
    Ok(fs.usage())
}

/// The counts of the filesystem holding canonical `path`, if it keeps its own.
pub fn usage_at(path: &str) -> Option<super::FsUsage> {
    locate(path).ok().and_then(|(fs, _)| fs.usage())
}

/// The name and read-only state of the filesystem holding canonical `path`, if any.
pub fn filesystem_at(path: &str) -> Option<(&'static str, bool)> {
    locate(path).ok().map(|(fs, _)| (fs.name(), fs.read_only()))
}

/// Whether the filesystem holding canonical `path` is read-only.
pub fn is_read_only(path: &str) -> bool {
    locate(path).is_ok_and(|(fs, _)| fs.read_only())
}

/// Removes the mount at canonical `at` (what was beneath shows again). EINVAL when
/// nothing is mounted exactly there, EBUSY for the root. Files still open on it stay
/// usable (each holds its own objects), as after Linux's lazy unmount.
pub fn unmount(at: &str) -> SysResult<()> {
    if at == "/" {
        return Err(Errno::EBUSY);
    }
    let mut mounts = MOUNTS.write();
    let before = mounts.len();
    mounts.retain(|m| m.at != at);
    if mounts.len() == before {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Whether a filesystem is mounted exactly at canonical `at`.
pub fn is_mount_point(at: &str) -> bool {
    MOUNTS.read().iter().any(|m| m.at == at)
}
