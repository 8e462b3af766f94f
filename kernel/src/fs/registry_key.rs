//! A registry key's file (under `/proc/sys` or `/sys`) opened for writing: each write
//! is one value, parsed whole (sysctl syntax under `/proc/sys`, sysfs syntax under
//! `/sys`) and validated by the key; reading shows the current value.

use crate::{
    arch::uaccess::{copy_from_user, copy_to_user},
    registry::Key,
    vfs::{seek_position, File, Stat, Whence},
};
use errno::{Errno, SysResult};
use spin::Mutex;

/// A registry key file open for writing.
pub struct RegistryKeyFile {
    key: &'static Key,
    /// Position: a `/proc/sys` write not at 0 is ignored (Linux's strict
    /// `sysctl_writes_strict`).
    pos: Mutex<u64>,
    /// Opened through `/proc/sys` (sysctl syntax), not `/sys`.
    sysctl: bool,
}

impl RegistryKeyFile {
    /// `key`'s file, opened through `/proc/sys` when `sysctl`.
    pub fn new(key: &'static Key, sysctl: bool) -> RegistryKeyFile {
        RegistryKeyFile {
            key,
            pos: Mutex::new(0),
            sysctl,
        }
    }
}

impl File for RegistryKeyFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let text = self.key.render();
        let mut pos = self.pos.lock();
        let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(text.len());
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(text.len() - start);
        copy_to_user(buf, &text.as_bytes()[start..start + n])?;
        *pos = (start + n) as u64;
        Ok(n as u64)
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        // Linux (sysctl_writes_strict = 1): a /proc/sys write that does not start at
        // position 0 changes nothing but still "writes" its bytes.
        if self.sysctl && *pos != 0 {
            *pos = pos.saturating_add(count);
            return Ok(count);
        }
        // A sysctl write is one value: at most a page, parsed whole.
        let n = usize::try_from(count).unwrap_or(usize::MAX).min(4095);
        let mut text = alloc::vec![0u8; n];
        copy_from_user(&mut text, buf)?;
        if self.sysctl {
            self.key.set_sysctl(&text)?;
        } else {
            let text = core::str::from_utf8(&text).map_err(|_| Errno::EINVAL)?;
            self.key.set(text)?;
        }
        *pos = pos.saturating_add(count);
        Ok(count)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = seek_position(*pos, 0, whence, offset)?;
        Ok(*pos)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o644, 0)
    }
}
