//! `memfd_create` files: anonymous shared memory with a size, read, written, truncated
//! and mapped through one page-cache object.

use super::{anon_inode_number, seek_position, File, Stat, Whence};
use crate::arch::uaccess::{copy_from_user, copy_to_user};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use mm::pagecache::FileObject;
use spin::Mutex;

/// Most bytes one read or write moves (a short count beyond, as Linux may give).
const MAX_IO_BYTES: usize = 64 * 1024;

/// A memfd.
pub struct Memfd {
    object: Arc<FileObject>,
    pos: Mutex<u64>,
    ino: u64,
}

impl Memfd {
    /// A memfd over `object` (from `FileObject::new_memfd`: empty, named).
    pub fn new(object: Arc<FileObject>) -> Memfd {
        Memfd {
            object,
            pos: Mutex::new(0),
            ino: anon_inode_number(),
        }
    }

    fn read_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES);
        let mut kbuf = alloc::vec![0u8; n];
        let got = self
            .object
            .read_at(offset, &mut kbuf)
            .map_err(|_| Errno::EIO)?;
        copy_to_user(buf, &kbuf[..got])?;
        Ok(got as u64)
    }

    fn write_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES);
        let mut kbuf = alloc::vec![0u8; n];
        copy_from_user(&mut kbuf, buf)?;
        let done = self
            .object
            .write_at(offset, &kbuf)
            .map_err(|_| Errno::EIO)?;
        Ok(done as u64)
    }
}

impl File for Memfd {
    fn proc_name(&self) -> alloc::string::String {
        self.object.info().path.clone()
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let got = self.read_at(buf, count, *pos)?;
        *pos += got;
        Ok(got)
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let done = self.write_at(buf, count, *pos)?;
        *pos += done;
        Ok(done)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.read_at(buf, count, offset)
    }

    fn pwrite(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.write_at(buf, count, offset)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = seek_position(*pos, self.object.size_bytes(), whence, offset)?;
        Ok(*pos)
    }

    fn mmap_object(&self) -> SysResult<Arc<FileObject>> {
        Ok(self.object.clone())
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o600, self.object.size_bytes()).at(super::stat::encode_dev(0, 2), self.ino)
    }

    fn truncate(&self, length: u64) -> SysResult<()> {
        self.object.set_size(length);
        Ok(())
    }
}
