//! Read-only files whose bytes are fixed at open: generated `/proc` and `/sys` text (a
//! snapshot, as Linux's single-show files) and the read side of registry and DAMON
//! control files.

use super::{seek_position, File, Stat, Whence};
use crate::arch::uaccess::copy_to_user;
use alloc::{borrow::Cow, vec::Vec};
use errno::SysResult;
use spin::Mutex;

/// A read-only text or byte file with its position.
pub struct TextFile {
    data: Cow<'static, [u8]>,
    pos: Mutex<usize>,
    stat: Stat,
}

impl TextFile {
    /// A file showing `data` (mode `0444`).
    pub fn new(data: Vec<u8>) -> TextFile {
        TextFile::with_stat(Cow::Owned(data), Stat::regular(0o444, 0))
    }

    /// A file showing `data` with `stat` (its size is the data's).
    pub fn with_stat(data: Cow<'static, [u8]>, stat: Stat) -> TextFile {
        let stat = Stat {
            size: data.len() as u64,
            ..stat
        };
        TextFile {
            data,
            pos: Mutex::new(0),
            stat,
        }
    }

    fn copy_out(&self, buf: u64, count: u64, from: usize) -> SysResult<u64> {
        let start = from.min(self.data.len());
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.data.len() - start);
        copy_to_user(buf, &self.data[start..start + n])?;
        Ok(n as u64)
    }
}

impl File for TextFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let n = self.copy_out(buf, count, *pos)?;
        *pos = (*pos).min(self.data.len()) + n as usize;
        Ok(n)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.copy_out(buf, count, usize::try_from(offset).unwrap_or(usize::MAX))
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let new = seek_position(*pos as u64, self.data.len() as u64, whence, offset)?;
        *pos = usize::try_from(new).unwrap_or(usize::MAX);
        Ok(new)
    }

    fn stat(&self) -> Stat {
        self.stat
    }
}
