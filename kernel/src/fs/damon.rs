//! A DAMON control file (`kdamonds/N/state`, `.../pid_target`) opened for writing, by a
//! TCB daemon (the open checks SeTcbPrivilege).

use crate::{
    arch::uaccess::copy_from_user,
    memd::damon::{write_control, Control},
    vfs::{File, Stat},
};
use errno::{Errno, SysResult};

/// A DAMON control file open for writing.
pub struct DamonControlFile(pub Control);

impl File for DamonControlFile {
    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let n = usize::try_from(count).unwrap_or(usize::MAX).min(64);
        let mut text = alloc::vec![0u8; n];
        copy_from_user(&mut text, buf)?;
        let text = core::str::from_utf8(&text).map_err(|_| Errno::EINVAL)?;
        write_control(self.0, text)?;
        Ok(count)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o644, 0)
    }
}
