//! `statfs` and `fstatfs`: which filesystem holds a file, with Linux's magic numbers.
//! The memory-backed filesystems (tmpfs, devtmpfs, the initramfs root) report the
//! machine's memory as their blocks, since they have no size limit of their own; the
//! pseudo filesystems (proc, sysfs) report none, as on Linux.

use super::fs::{caller, file_of, read_path};
use crate::{
    arch::uaccess::write_user,
    proc::thread::Thread,
    vfs::{mount, FsUsage},
};
use errno::{Errno, SysResult};

const PAGE_SIZE: u64 = 4096;
/// The longest name these filesystems allow.
const NAME_MAX: u64 = 255;
/// `ST_VALID`: Linux sets it in every `f_flags`.
const ST_VALID: u64 = 0x20;
/// `ST_RDONLY`.
const ST_RDONLY: u64 = 1;

/// The Linux magic number (`f_type`) of a filesystem, by the name the mount table shows.
fn magic(name: &str) -> u64 {
    match name {
        "proc" => 0x9fa0,
        "sysfs" => 0x6265_6572,
        "tmpfs" | "devtmpfs" => 0x0102_1994,
        "ext4" | "ext3" | "ext2" => 0xef53,
        "pipefs" => 0x5049_5045,
        "anon_inodefs" => 0x0904_1934,
        "hugetlbfs" => 0x9584_58f6,
        // The initramfs root, and anything else memory-backed: ramfs.
        _ => 0x8584_58f6,
    }
}

/// Writes a `struct statfs` for filesystem `name`, with its own counts if it keeps
/// them (a hugetlbfs: its page size as the block size).
fn write_statfs(buf: u64, name: &str, read_only: bool, usage: Option<FsUsage>) -> SysResult {
    let memory_backed = matches!(name, "tmpfs" | "devtmpfs" | "rootfs" | "initramfs");
    let usage = usage.unwrap_or_else(|| {
        let mut usage = FsUsage {
            block_size: PAGE_SIZE,
            ..Default::default()
        };
        if memory_backed {
            let (total, free, _, _) = mm::frame::report::totals(crate::mem::frames::allocator());
            (usage.blocks, usage.free_blocks) = (total.0, free.0);
        }
        usage
    });
    let flags = ST_VALID | if read_only { ST_RDONLY } else { 0 };
    // f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid,
    // f_namelen, f_frsize, f_flags, f_spare[4].
    let fields: [u64; 15] = [
        magic(name),
        usage.block_size,
        usage.blocks,
        usage.free_blocks,
        usage.free_blocks,
        usage.files,
        usage.free_files,
        0,
        NAME_MAX,
        usage.block_size,
        flags,
        0,
        0,
        0,
        0,
    ];
    write_user(buf, &fields)?;
    Ok(0)
}

/// `statfs(path, buf)`.
pub fn statfs(thread: &Thread, path: u64, buf: u64) -> SysResult {
    let name = read_path(path)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    let cwd = thread.process.fs.lock().cwd.clone();
    let who = caller(thread);
    let (fs, read_only) = mount::filesystem_of(&who, &cwd, &name)?;
    write_statfs(buf, fs, read_only, mount::usage_of(&who, &cwd, &name)?)
}

/// `fstatfs(fd, buf)`: a file opened by path reports its filesystem; pipes pipefs,
/// memfds tmpfs, the other path-less files (eventfd, epoll, timerfd, ...) the
/// anonymous-inode filesystem.
pub fn fstatfs(thread: &Thread, fd: u64, buf: u64) -> SysResult {
    let open = file_of(thread, fd)?;
    if let Some((fs, read_only)) = open.path().and_then(mount::filesystem_at) {
        let usage = open.path().and_then(mount::usage_at);
        return write_statfs(buf, fs, read_only, usage);
    }
    let shown = open.file().proc_name();
    // An MFD_HUGETLB memfd lives on Linux's internal hugetlbfs (no limits).
    let huge_page = open
        .file()
        .mmap_object()
        .ok()
        .and_then(|object| object.hugetlb().map(|pages| pages.page_bytes()));
    if let Some(block_size) = huge_page {
        let usage = FsUsage {
            block_size,
            ..Default::default()
        };
        return write_statfs(buf, "hugetlbfs", false, Some(usage));
    }
    let fs = if shown.starts_with("pipe:") {
        "pipefs"
    } else if shown.starts_with("/memfd:") {
        "tmpfs"
    } else {
        "anon_inodefs"
    };
    write_statfs(buf, fs, false, None)
}
