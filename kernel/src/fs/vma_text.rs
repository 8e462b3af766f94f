//! `/proc/<pid>/maps`, `smaps` and `numa_maps`: rendered a batch of VMAs at a time as
//! they are read (Linux's seq_file), so the text of a huge address space never sits in
//! the kernel heap whole.

use crate::{
    arch::uaccess::copy_to_user,
    procfs::VmaText,
    vfs::{seek_position, File, Stat, Whence},
};
use errno::{Errno, SysResult};
use spin::Mutex;

/// An open per-VMA file.
pub struct VmaTextFile(Mutex<VmaText>);

impl VmaTextFile {
    /// Over `text` (positioned at its start).
    pub fn new(text: VmaText) -> VmaTextFile {
        VmaTextFile(Mutex::new(text))
    }
}

impl File for VmaTextFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        self.0
            .lock()
            .consume(count, |at, piece| copy_to_user(buf + at, piece))
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        if !matches!(whence, Whence::Set | Whence::Current) {
            return Err(Errno::EINVAL); // no size to seek from, as Linux's seq_lseek
        }
        let mut text = self.0.lock();
        let to = seek_position(text.offset(), text.offset(), whence, offset)?;
        text.seek(to)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o444, 0)
    }
}
