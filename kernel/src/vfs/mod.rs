//! The file layer: the [`File`] trait every open file implements (each operation with
//! Linux's errno as its default), the open file description ([`OpenFile`]: the file,
//! how it was opened, its status flags) that descriptors share, and the namespace
//! ([`mount`]: the mount table and path lookup over [`Filesystem`]s).
//!
//! Reads and writes never wait here: a file that has nothing to give (an empty pipe, a
//! userfaultfd with no fault) answers EAGAIN and reports readiness through
//! [`File::poll`], which also registers a waker; the syscall layer turns that into a
//! future for a blocking descriptor. So a call that can complete at once allocates
//! nothing and a blocked thread costs no stack.
//!
//! This folder depends on no process or memory-policy code (the caller is a
//! [`Caller`]: pid and token); files that need them live in `crate::fs`.

#![deny(unsafe_code)]

pub mod attrs;
pub mod console;
pub mod devfs;
pub mod dir;
pub mod epoll;
pub mod eventfd;
pub mod initramfs;
pub mod memfd;
pub mod mount;
pub mod pagewait;
pub mod pipe;
pub mod stat;
pub mod text;
pub mod timerfd;
pub mod tmpfs;
pub mod waiters;

use alloc::{string::String, sync::Arc, vec::Vec};
use core::{
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    task::Waker,
};
use errno::{Errno, SysResult};

pub use stat::Stat;

/// `poll` event bits (Linux's values).
pub mod events {
    /// Data to read.
    pub const POLLIN: u16 = 0x1;
    /// Writing will not block.
    pub const POLLOUT: u16 = 0x4;
    /// An error condition (always reported).
    pub const POLLERR: u16 = 0x8;
    /// Hung up: the other end is gone (always reported).
    pub const POLLHUP: u16 = 0x10;
    /// Not an open descriptor.
    pub const POLLNVAL: u16 = 0x20;
    /// Normal data to read.
    pub const POLLRDNORM: u16 = 0x40;
    /// Normal data may be written.
    pub const POLLWRNORM: u16 = 0x100;
    /// What a file without a poll method reports: always ready (Linux's
    /// `DEFAULT_POLLMASK`).
    pub const DEFAULT: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
}

/// `fallocate` mode bits (Linux's `FALLOC_FL_*`).
pub mod falloc {
    /// Keep the size even when allocating past the end.
    pub const KEEP_SIZE: u32 = 0x01;
    /// Deallocate the range (with `KEEP_SIZE`).
    pub const PUNCH_HOLE: u32 = 0x02;
    /// Zero the range.
    pub const ZERO_RANGE: u32 = 0x10;
}

/// Open flags (Linux x86_64 values).
pub mod flags {
    /// Access mode mask.
    pub const O_ACCMODE: u32 = 3;
    /// Write only.
    pub const O_WRONLY: u32 = 1;
    /// Read and write.
    pub const O_RDWR: u32 = 2;
    /// Create if missing.
    pub const O_CREAT: u32 = 0o100;
    /// With `O_CREAT`: fail if it exists.
    pub const O_EXCL: u32 = 0o200;
    /// Truncate.
    pub const O_TRUNC: u32 = 0o1000;
    /// Writes append.
    pub const O_APPEND: u32 = 0o2000;
    /// Reads and writes never wait.
    pub const O_NONBLOCK: u32 = 0o4000;
    /// Synchronous writes (data).
    pub const O_DSYNC: u32 = 0o10000;
    /// Signal-driven I/O.
    pub const O_ASYNC: u32 = 0o20000;
    /// Direct I/O.
    pub const O_DIRECT: u32 = 0o40000;
    /// Large files (always on for 64-bit).
    pub const O_LARGEFILE: u32 = 0o100000;
    /// Must be a directory.
    pub const O_DIRECTORY: u32 = 0o200000;
    /// Do not follow a last symbolic link.
    pub const O_NOFOLLOW: u32 = 0o400000;
    /// Do not update the access time.
    pub const O_NOATIME: u32 = 0o1000000;
    /// Close on exec.
    pub const O_CLOEXEC: u32 = 0o2000000;
    /// Synchronous writes (data and metadata).
    pub const O_SYNC: u32 = 0o4010000;
    /// A location only: no reads or writes.
    pub const O_PATH: u32 = 0o10000000;
    /// The status flags `fcntl(F_SETFL)` may change.
    pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
}

/// `lseek` origins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    /// `SEEK_SET`.
    Set,
    /// `SEEK_CUR`.
    Current,
    /// `SEEK_END`.
    End,
    /// `SEEK_DATA`: the next data at or after the offset.
    Data,
    /// `SEEK_HOLE`: the next hole at or after the offset.
    Hole,
}

impl Whence {
    /// Decodes `whence`; EINVAL for anything else.
    pub fn from_raw(raw: u32) -> SysResult<Whence> {
        match raw {
            0 => Ok(Whence::Set),
            1 => Ok(Whence::Current),
            2 => Ok(Whence::End),
            3 => Ok(Whence::Data),
            4 => Ok(Whence::Hole),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// The position `lseek` moves a sized file to; a result below zero (or past
/// `i64::MAX`) is EINVAL, as Linux's `generic_file_llseek` (a file without holes:
/// `SEEK_DATA` stays, `SEEK_HOLE` goes to the end; ENXIO at or past the end).
pub fn seek_position(current: u64, size: u64, whence: Whence, offset: i64) -> SysResult<u64> {
    let base = match whence {
        Whence::Set => 0i64,
        Whence::Current => i64::try_from(current).map_err(|_| Errno::EINVAL)?,
        Whence::End => i64::try_from(size).map_err(|_| Errno::EINVAL)?,
        Whence::Data | Whence::Hole => {
            if offset < 0 || offset as u64 >= size {
                return Err(Errno::ENXIO);
            }
            return Ok(if whence == Whence::Data {
                offset as u64
            } else {
                size
            });
        }
    };
    base.checked_add(offset)
        .filter(|&p| p >= 0)
        .map(|p| p as u64)
        .ok_or(Errno::EINVAL)
}

/// An open file's operations. Buffers are user addresses (`buf`, `count` bytes); every
/// method has Linux's answer for a file that lacks it, so an implementation writes only
/// what it supports. A read or write that would wait returns EAGAIN (see the module).
pub trait File: Send + Sync {
    /// Reads at the file's position (and moves it). Default: EINVAL (no read method).
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let _ = (buf, count);
        Err(Errno::EINVAL)
    }

    /// Writes at the file's position (and moves it). Default: EINVAL.
    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let _ = (buf, count);
        Err(Errno::EINVAL)
    }

    /// Reads at `offset` without moving the position. Default: ESPIPE (not seekable).
    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        let _ = (buf, count, offset);
        Err(Errno::ESPIPE)
    }

    /// Writes at `offset` without moving the position. Default: ESPIPE.
    fn pwrite(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        let _ = (buf, count, offset);
        Err(Errno::ESPIPE)
    }

    /// Moves the position. Default: ESPIPE.
    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let _ = (offset, whence);
        Err(Errno::ESPIPE)
    }

    /// A device-specific request. Default: ENOTTY.
    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        let _ = (request, arg);
        Err(Errno::ENOTTY)
    }

    /// The events ready now; with `waker`, also registers it to be woken when they
    /// change. Default: always readable and writable.
    fn poll(&self, waker: Option<&Waker>) -> u16 {
        let _ = waker;
        events::DEFAULT
    }

    /// The file answers `poll` with its own readiness and wakes on changes (pipes,
    /// eventfds, ...): what `epoll_ctl` asks (EPERM otherwise, as for regular files).
    fn pollable(&self) -> bool {
        false
    }

    /// The file as `Any`, for the calls that work on one kind only (`epoll_ctl` on an
    /// epoll). Default: a unit that is no file kind.
    fn as_any(&self) -> &dyn core::any::Any {
        &()
    }

    /// For swapon of the file (Linux's `swap_activate`): the disk holding it, its
    /// block map and its size. Default: EINVAL (no swap on this kind of file).
    fn swap_blocks(
        &self,
    ) -> SysResult<(
        Arc<dyn mm::block::BlockDevice>,
        mm::pagecache::blockmap::BlockMap,
        u64,
    )> {
        Err(Errno::EINVAL)
    }

    /// The page-cache object a mapping of the file shares. Default: ENODEV.
    fn mmap_object(&self) -> SysResult<Arc<mm::pagecache::FileObject>> {
        Err(Errno::ENODEV)
    }

    /// The file's attributes.
    fn stat(&self) -> Stat;

    /// Directory entries as `linux_dirent64` records into `buf`, from the position on;
    /// returns the bytes written (0 at the end). Default: ENOTDIR.
    fn getdents(&self, buf: u64, count: u64) -> SysResult<u64> {
        let _ = (buf, count);
        Err(Errno::ENOTDIR)
    }

    /// Sets the size (`ftruncate`). Default: EINVAL.
    fn truncate(&self, length: u64) -> SysResult<()> {
        let _ = length;
        Err(Errno::EINVAL)
    }

    /// `fallocate(mode, offset, len)` on a regular file open for writing, the
    /// system call's own checks passed ([`falloc`] names the mode bits). Default:
    /// EOPNOTSUPP (a file without it).
    fn fallocate(&self, mode: u32, offset: u64, len: u64) -> SysResult<()> {
        let _ = (mode, offset, len);
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets the permission bits to `mode` (`fchmod`) for `caller`, who must be
    /// allowed to rewrite the file's DACL (`WRITE_DAC`: its owner, or SYSTEM and
    /// Administrators). Default: EPERM (a file with no descriptor of its own).
    fn chmod(&self, mode: u32, caller: &Caller) -> SysResult<()> {
        let _ = (mode, caller);
        Err(Errno::EPERM)
    }

    /// Sets the owner and group (`fchown`; `None` leaves one as it is) for `caller`
    /// by the rules [`attrs`] gives. Default: EPERM.
    fn chown(&self, uid: Option<u32>, gid: Option<u32>, caller: &Caller) -> SysResult<()> {
        let _ = (uid, gid, caller);
        Err(Errno::EPERM)
    }

    /// What `/proc/<pid>/fd/N` shows for a file opened without a path
    /// (`pipe:[INO]`, `anon_inode:[eventfd]`, ...). Default: `anon_inode:[unknown]`.
    fn proc_name(&self) -> String {
        String::from("anon_inode:[unknown]")
    }

    /// A byte stream (pipe): a blocking write goes on until every byte is written.
    fn is_stream(&self) -> bool {
        false
    }

    /// A file whose reads wait whatever `O_NONBLOCK` says (a regular file on a disk:
    /// its EAGAIN means "the device is reading", never "no data").
    fn always_blocks(&self) -> bool {
        false
    }

    /// Told when the description's status flags change (`fcntl(F_SETFL)`), for files
    /// whose behaviour depends on `O_NONBLOCK` beyond reads and writes waiting.
    fn status_flags_changed(&self, status: u32) {
        let _ = status;
    }
}

/// An open file description: what descriptors (after `dup` and `fork`) share.
pub struct OpenFile {
    file: Arc<dyn File>,
    /// Access mode and status flags (`O_NONBLOCK`, `O_APPEND`, ...).
    flags: AtomicU32,
    /// The canonical path it was opened by (none for pipes, memfds, ...).
    path: Option<String>,
}

impl OpenFile {
    /// A description of `file` opened with `flags` (access mode and status flags).
    pub fn new(file: Arc<dyn File>, flags: u32, path: Option<String>) -> Arc<OpenFile> {
        let kept = flags
            & (flags::O_ACCMODE
                | flags::SETFL_MASK
                | flags::O_PATH
                | flags::O_DSYNC
                | flags::O_SYNC
                | flags::O_LARGEFILE);
        file.status_flags_changed(kept);
        Arc::new(OpenFile {
            file,
            flags: AtomicU32::new(kept),
            path,
        })
    }

    /// The file's operations.
    pub fn file(&self) -> &Arc<dyn File> {
        &self.file
    }

    /// The flags `fcntl(F_GETFL)` shows.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// `fcntl(F_SETFL)`: changes the changeable status flags.
    pub fn set_status_flags(&self, requested: u32) {
        let old = self.flags();
        let new = (old & !flags::SETFL_MASK) | (requested & flags::SETFL_MASK);
        self.flags.store(new, Ordering::Relaxed);
        self.file.status_flags_changed(new);
    }

    /// Opened for reading (not `O_WRONLY`, not `O_PATH`).
    pub fn readable(&self) -> bool {
        let f = self.flags();
        f & flags::O_PATH == 0 && f & flags::O_ACCMODE != flags::O_WRONLY
    }

    /// Opened for writing.
    pub fn writable(&self) -> bool {
        let f = self.flags();
        f & flags::O_PATH == 0 && matches!(f & flags::O_ACCMODE, flags::O_WRONLY | flags::O_RDWR)
    }

    /// Reads and writes return EAGAIN instead of waiting.
    pub fn nonblocking(&self) -> bool {
        self.flags() & flags::O_NONBLOCK != 0 && !self.file.always_blocks()
    }

    /// An `O_PATH` descriptor (a location only).
    pub fn is_path_only(&self) -> bool {
        self.flags() & flags::O_PATH != 0
    }

    /// The canonical path it was opened by.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What `/proc/<pid>/fd/N` shows: the path, or the file's own name.
    pub fn proc_name(&self) -> String {
        match &self.path {
            Some(p) => p.clone(),
            None => self.file.proc_name(),
        }
    }
}

/// Who is opening or looking up: what filesystems need to decide (the process, for
/// `/proc/self`, and its token, for access checks).
#[derive(Clone)]
pub struct Caller {
    /// The calling process's pid.
    pub pid: u32,
    /// Its token.
    pub token: Arc<security::Token>,
}

/// A filesystem's own block and inode counts, as `statfs` reports them (Linux's -1,
/// "no limit", is `u64::MAX`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsUsage {
    /// `f_bsize` (and `f_frsize`).
    pub block_size: u64,
    /// `f_blocks`.
    pub blocks: u64,
    /// `f_bfree` and `f_bavail`.
    pub free_blocks: u64,
    /// `f_files`.
    pub files: u64,
    /// `f_ffree`.
    pub free_files: u64,
}

/// What a name in a filesystem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file (or any other non-directory, see [`Node::Device`]).
    File,
    /// A character device.
    Device,
    /// A symbolic link to this target.
    Symlink(String),
}

/// An open request, decoded from `openat`'s flags.
#[derive(Clone, Copy, Debug)]
pub struct OpenRequest {
    /// Every flag as given.
    pub flags: u32,
}

impl OpenRequest {
    /// Asks to write (`O_WRONLY`, `O_RDWR`).
    pub fn write(&self) -> bool {
        self.flags & flags::O_PATH == 0
            && matches!(
                self.flags & flags::O_ACCMODE,
                flags::O_WRONLY | flags::O_RDWR
            )
    }
}

/// A filesystem: the names below its mount point, as canonical paths relative to it
/// (`""` is its root, `"a/b"` a name two levels down).
pub trait Filesystem: Send + Sync {
    /// Its name (`/proc/mounts` style: `proc`, `sysfs`, `devtmpfs`, `rootfs`).
    fn name(&self) -> &'static str;

    /// What `rel` is; ENOENT when nothing.
    fn lookup(&self, rel: &str, caller: &Caller) -> SysResult<Node>;

    /// Opens `rel` (which [`Filesystem::lookup`] found to be `node`, not a link).
    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>>;

    /// Files here cannot be written (`access(W_OK)` is EROFS).
    fn read_only(&self) -> bool {
        false
    }

    /// What `statfs` reports of this filesystem beyond its name, if it keeps its own
    /// counts (a hugetlbfs). Default: none.
    fn usage(&self) -> Option<FsUsage> {
        None
    }

    /// The names in directory `rel`, with their kinds (without `.` and `..`).
    fn readdir(&self, rel: &str, caller: &Caller) -> SysResult<Vec<(String, Node)>>;

    /// Creates the regular file `rel` (missing; its directory exists) with permission
    /// bits `perm` (umask applied) for `caller` and opens it as `req` asks. Default:
    /// EROFS.
    fn create(
        &self,
        rel: &str,
        perm: u32,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let _ = (rel, perm, req, caller);
        Err(Errno::EROFS)
    }

    /// Creates the directory `rel` with permission bits `perm`. Default: EROFS.
    fn mkdir(&self, rel: &str, perm: u32, caller: &Caller) -> SysResult<()> {
        let _ = (rel, perm, caller);
        Err(Errno::EROFS)
    }

    /// Removes the name `rel`: a directory (`rmdir`, which must be empty) when `dir`,
    /// else a non-directory (`unlink`). Default: EROFS.
    fn remove(&self, rel: &str, dir: bool, caller: &Caller) -> SysResult<()> {
        let _ = (rel, dir, caller);
        Err(Errno::EROFS)
    }

    /// Moves the name `from` to `to` (both in this filesystem), replacing what `to`
    /// names as `rename(2)` does. Default: EROFS.
    fn rename(&self, from: &str, to: &str, caller: &Caller) -> SysResult<()> {
        let _ = (from, to, caller);
        Err(Errno::EROFS)
    }

    /// Changes the permission bits or the owner of `rel` (`chmod(2)`, `chown(2)`), as
    /// [`File::chmod`] and [`File::chown`]. Default: EROFS.
    fn set_attr(&self, rel: &str, change: attrs::SetAttr, caller: &Caller) -> SysResult<()> {
        let _ = (rel, change, caller);
        Err(Errno::EROFS)
    }

    /// Sets the size of the regular file `rel` (`truncate(2)`). Default: EROFS.
    fn truncate(&self, rel: &str, length: u64, caller: &Caller) -> SysResult<()> {
        let _ = (rel, length, caller);
        Err(Errno::EROFS)
    }

    /// The attributes of `rel` (which is `node`): by default those of a file opened
    /// for reading, else a plain entry of its kind.
    fn stat(&self, rel: &str, node: &Node, caller: &Caller) -> SysResult<Stat> {
        match node {
            Node::Dir => Ok(Stat::directory(0o555)),
            Node::Symlink(target) => Ok(Stat::symlink(target.len() as u64)),
            _ => {
                let req = OpenRequest { flags: 0 };
                Ok(self.open(rel, node, &req, caller)?.stat())
            }
        }
    }
}

/// A process's place in the namespace: working directory and file-creation mask
/// (Linux's `fs_struct`).
#[derive(Clone, Debug)]
pub struct FsContext {
    /// The working directory, canonical and absolute.
    pub cwd: String,
    /// `umask`.
    pub umask: u32,
}

impl Default for FsContext {
    fn default() -> Self {
        FsContext {
            cwd: String::from("/"),
            umask: 0o022,
        }
    }
}

/// A fresh inode number for a file that has no name (pipes, memfds, ...).
pub fn anon_inode_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 32);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A stable inode number for the name `path` of filesystem `fs` (FNV-1a), so `stat`
/// of a path and `fstat` of an open file agree.
pub fn path_inode_number(fs: &str, path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in fs.bytes().chain([0]).chain(path.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h & 0xffff_ffff) | 1
}
