//! `mount` and `umount2`, for the filesystems a program may mount itself: hugetlbfs
//! (`pagesize=`, `size=`, `min_size=`, `nr_inodes=`, `mode=`, `uid=`, `gid=`).
//!
//! Mounting changes what every process sees, so both calls need the caller's token to
//! hold SeTcbPrivilege (Linux's CAP_SYS_ADMIN; EPERM without it). Peios keeps one
//! mount per mount point: mounting where something is already mounted is EBUSY
//! (Linux would stack the new mount on top). Bind, move and remount requests, and
//! read-only mounts, are not supported (EINVAL).

use super::fs::{caller, read_path};
use crate::{
    arch::uaccess::read_user_cstr,
    proc::thread::Thread,
    vfs::{
        mount,
        tmpfs::{HugetlbfsLimits, HugetlbfsOptions, Tmpfs},
    },
};
use alloc::{string::String, sync::Arc};
use errno::{Errno, SysResult};
use mm::hugetlb::HugeSize;
use security::Privilege;

/// The magic number that old callers put in the top half of the flags.
const MS_MGC_VAL: u64 = 0xc0ed_0000;
const MS_MGC_MSK: u64 = 0xffff_0000;
/// Flags that change nothing on these filesystems (nosuid, nodev, noexec, silent and
/// the access-time ones).
const MS_HARMLESS: u64 = 0x2 | 0x4 | 0x8 | 0x400 | 0x800 | 0x8000 | 0x20_0000 | 0x100_0000;
/// The most bytes of the options string (Linux copies one page).
const OPTIONS_MAX: usize = 4095;
/// Longest filesystem type name read.
const TYPE_MAX: usize = 255;

/// EPERM unless the caller may change the mount table.
fn check_privilege(thread: &Thread) -> SysResult<()> {
    if thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeTcbPrivilege)
    {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `mount(source, target, fstype, flags, data)`: mounts a new hugetlbfs at the
/// directory `target` (`source` is not used). ENODEV for another type, EINVAL for
/// unsupported flags or options, ENOENT/ENOTDIR for a bad target, EBUSY where
/// something is mounted already.
pub fn mount(
    thread: &Thread,
    _source: u64,
    target: u64,
    fstype: u64,
    flags: u64,
    data: u64,
) -> SysResult {
    check_privilege(thread)?;
    let flags = if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags & !MS_MGC_MSK
    } else {
        flags
    };
    if flags & !MS_HARMLESS != 0 {
        return Err(Errno::EINVAL);
    }
    let fstype = read_user_cstr(fstype, TYPE_MAX)?;
    let options = if data == 0 {
        String::new()
    } else {
        let raw = read_user_cstr(data, OPTIONS_MAX)?;
        String::from_utf8(raw).map_err(|_| Errno::EINVAL)?
    };
    let path = read_path(target)?;
    let cwd = thread.process.fs.lock().cwd.clone();
    let at = mount::directory(&caller(thread), &cwd, &path)?;
    let frames = crate::mem::frames::mm_frames().clone();
    let fs = match fstype.as_slice() {
        b"hugetlbfs" => {
            let (perm, options, limits) = hugetlbfs_options(&options)?;
            if mount::is_mount_point(&at) {
                return Err(Errno::EBUSY);
            }
            // `min_size=` is reserved here (ENOMEM), and released with the mount.
            Tmpfs::hugetlbfs_limited(&at, perm, options, limits, frames)?
        }
        _ => return Err(Errno::ENODEV),
    };
    if mount::is_mount_point(&at) {
        return Err(Errno::EBUSY);
    }
    mount::mount(&at, Arc::new(fs));
    Ok(0)
}

/// `umount2(target, flags)`: removes the mount at `target`. EINVAL for unknown flags
/// or a directory nothing is mounted on.
pub fn umount2(thread: &Thread, target: u64, flags: u64) -> SysResult {
    const MNT_FORCE: u64 = 1;
    const MNT_DETACH: u64 = 2;
    const UMOUNT_NOFOLLOW: u64 = 8;
    check_privilege(thread)?;
    if flags & !(MNT_FORCE | MNT_DETACH | UMOUNT_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(target)?;
    let cwd = thread.process.fs.lock().cwd.clone();
    let at = mount::directory(&caller(thread), &cwd, &path)?;
    mount::unmount(&at)?;
    Ok(0)
}

/// A size as `memparse` reads it: a number (decimal, or `0x` hex) with an optional
/// K, M or G suffix.
fn parse_bytes(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    value.checked_mul(1 << shift)
}

/// hugetlbfs's options, as Linux reads them: `pagesize=` (2M or 1G; the default 2M),
/// `size=` (bytes, or a percentage of the pool's pages, as a page limit for all the
/// mount's files), `min_size=` (the same, reserved for them while mounted; more than
/// `size=` is EINVAL), `nr_inodes=` (files and directories at most, with a K/M/G
/// suffix), `mode=` (octal permission bits of the root; default 0755), `uid=` and
/// `gid=` (the root's owner and group). Sizes and counts must start with a digit;
/// an unknown option or a bad value is EINVAL.
fn hugetlbfs_options(options: &str) -> SysResult<(u32, HugetlbfsOptions, HugetlbfsLimits)> {
    let mut size = HugeSize::Mib2;
    let mut limit: Option<&str> = None;
    let mut min_size: Option<&str> = None;
    let mut limits = HugetlbfsLimits::default();
    let mut perm = 0o755;
    let starts_with_digit = |v: &str| v.as_bytes().first().is_some_and(u8::is_ascii_digit);
    // A uid or gid: a u32 that is not -1 (Linux's invalid id).
    let id = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|&id| id != u32::MAX)
            .ok_or(Errno::EINVAL)
    };
    for option in options.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = option.split_once('=').ok_or(Errno::EINVAL)?;
        match key {
            "pagesize" => {
                let bytes = parse_bytes(value).ok_or(Errno::EINVAL)?;
                size = HugeSize::from_kib(bytes / 1024)
                    .filter(|s| s.order().bytes() == bytes)
                    .ok_or(Errno::EINVAL)?;
            }
            "size" | "min_size" if !starts_with_digit(value) => return Err(Errno::EINVAL),
            "size" => limit = Some(value),
            "min_size" => min_size = Some(value),
            "nr_inodes" => {
                if !starts_with_digit(value) {
                    return Err(Errno::EINVAL);
                }
                limits.max_inodes = Some(parse_bytes(value).ok_or(Errno::EINVAL)?);
            }
            "mode" => perm = u32::from_str_radix(value, 8).map_err(|_| Errno::EINVAL)? & 0o7777,
            "uid" => limits.uid = id(value)?,
            "gid" => limits.gid = id(value)?,
            _ => return Err(Errno::EINVAL),
        }
    }
    // A size in pages of `size` (rounded down), or a percentage of the pool's.
    let pages = |text: &str| -> SysResult<u64> {
        Ok(match text.strip_suffix('%') {
            Some(percent) => {
                let percent: u64 = percent.parse().map_err(|_| Errno::EINVAL)?;
                crate::mem::hugetlb::pools().total(size) * percent / 100
            }
            None => parse_bytes(text).ok_or(Errno::EINVAL)? / size.order().bytes(),
        })
    };
    let max_pages = limit.map(pages).transpose()?;
    limits.min_pages = min_size.map(pages).transpose()?;
    if let (Some(max), Some(min)) = (max_pages, limits.min_pages) {
        if min > max {
            return Err(Errno::EINVAL);
        }
    }
    Ok((perm, HugetlbfsOptions { size, max_pages }, limits))
}
