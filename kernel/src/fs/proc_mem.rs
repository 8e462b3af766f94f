//! `/proc/<pid>/mem`: the target's memory, the file offset being the address.

use crate::{
    arch::uaccess::{copy_from_user, copy_to_user},
    proc::Process,
    vfs::{File, Stat, Whence},
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use spin::Mutex;

/// Most bytes one read or write moves.
const MAX_IO_BYTES: usize = 64 * 1024;

/// Another (or the same) process's memory.
pub struct ProcMemFile {
    target: Arc<Process>,
    pos: Mutex<u64>,
}

impl ProcMemFile {
    /// `target`'s memory from address 0 (the caller checked access).
    pub fn new(target: Arc<Process>) -> ProcMemFile {
        ProcMemFile {
            target,
            pos: Mutex::new(0),
        }
    }

    fn access(&self, buf: u64, count: u64, at: u64, write: bool) -> SysResult<u64> {
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES);
        let mut kbuf = crate::mem::kbuf::zeroed(n)?;
        if write {
            copy_from_user(&mut kbuf, buf)?;
        }
        let space = self.target.address_space();
        let done = space.access(at, &mut kbuf, write);
        if done == 0 && n > 0 {
            return Err(Errno::EIO);
        }
        if !write {
            copy_to_user(buf, &kbuf[..done])?;
        }
        Ok(done as u64)
    }
}

impl File for ProcMemFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let at = *self.pos.lock();
        let done = self.access(buf, count, at, false)?;
        *self.pos.lock() = at.wrapping_add(done);
        Ok(done)
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let at = *self.pos.lock();
        let done = self.access(buf, count, at, true)?;
        *self.pos.lock() = at.wrapping_add(done);
        Ok(done)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.access(buf, count, offset, false)
    }

    fn pwrite(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.access(buf, count, offset, true)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = match whence {
            Whence::Set => offset as u64,
            Whence::Current => pos.wrapping_add(offset as u64),
            _ => return Err(Errno::EINVAL),
        };
        Ok(*pos)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o600, 0)
    }
}
