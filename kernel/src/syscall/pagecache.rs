//! Page-cache advice: `fadvise64` (the readahead mode of an open disk file, reading a
//! range in ahead, dropping one) and `readahead`.

use super::fs::file_of;
use crate::{fs::ext4::DiskFile, proc::thread::Thread, vfs::stat::mode};
use errno::{Errno, SysResult};
use mm::{frame::PAGE_SIZE, pagecache::readahead::Advice};

/// `POSIX_FADV_*`.
const FADV_NORMAL: u64 = 0;
const FADV_RANDOM: u64 = 1;
const FADV_SEQUENTIAL: u64 = 2;
const FADV_WILLNEED: u64 = 3;
const FADV_DONTNEED: u64 = 4;
const FADV_NOREUSE: u64 = 5;

/// The pages `[first, first + count)` a byte range covers; `len` 0 means to the end
/// of a file of `size` bytes.
fn page_range(offset: u64, len: u64, size: u64) -> (u64, u64) {
    let end = if len == 0 {
        size
    } else {
        offset.saturating_add(len)
    };
    let first = offset / PAGE_SIZE;
    let last = end.div_ceil(PAGE_SIZE);
    (first, last.saturating_sub(first))
}

/// `fadvise64(fd, offset, len, advice)`: EBADF for a bad descriptor, ESPIPE for a
/// pipe, EINVAL for unknown advice or a negative range. On a disk file NORMAL,
/// SEQUENTIAL and RANDOM set the readahead window's mode, WILLNEED starts reading the
/// range, DONTNEED drops its cached pages no mapping holds; NOREUSE changes nothing.
/// Files in memory (tmpfs, memfd) have nothing to read or drop.
pub fn fadvise64(thread: &Thread, fd: u64, offset: u64, len: u64, advice: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    if file.file().stat().mode & mode::S_IFMT == mode::S_IFIFO {
        return Err(Errno::ESPIPE);
    }
    if advice > FADV_NOREUSE || (offset as i64) < 0 || (len as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let Ok(object) = file.file().mmap_object() else {
        return Ok(0);
    };
    let (first, count) = page_range(offset, len, object.size_bytes());
    let disk = file.file().as_any().downcast_ref::<DiskFile>();
    match advice {
        FADV_NORMAL | FADV_RANDOM | FADV_SEQUENTIAL => {
            if let Some(d) = disk {
                d.advise(match advice {
                    FADV_RANDOM => Advice::Random,
                    FADV_SEQUENTIAL => Advice::Sequential,
                    _ => Advice::Normal,
                });
            }
        }
        FADV_WILLNEED if disk.is_some() => {
            object.read_ahead(first, count);
        }
        FADV_DONTNEED if disk.is_some() => {
            object.drop_clean_range(first, count);
        }
        _ => {}
    }
    Ok(0)
}

/// `readahead(fd, offset, count)`: starts reading the range into the page cache and
/// returns at once. EBADF unless open for reading, EINVAL for a file without a page
/// cache.
pub fn readahead(thread: &Thread, fd: u64, offset: u64, count: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    if !file.readable() {
        return Err(Errno::EBADF);
    }
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let object = file.file().mmap_object().map_err(|_| Errno::EINVAL)?;
    if count == 0 {
        return Ok(0);
    }
    let (first, pages) = page_range(offset, count, object.size_bytes());
    if object.is_async() {
        object.read_ahead(first, pages);
    }
    Ok(0)
}
