//! `/proc/<pid>/oom_score_adj` opened for writing: the writer's token decides whether
//! the value may go down (SeIncreaseQuotaPrivilege), at the time of the write.

use crate::{
    arch::uaccess::copy_from_user,
    proc::{self, Process},
    vfs::{File, Stat},
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};

/// `oom_score_adj` of `0`, open for writing.
pub struct OomScoreAdjFile(pub Arc<Process>);

impl File for OomScoreAdjFile {
    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let writer = proc::current_thread().ok_or(Errno::ESRCH)?;
        let n = usize::try_from(count).unwrap_or(usize::MAX).min(64);
        let mut text = alloc::vec![0u8; n];
        copy_from_user(&mut text, buf)?;
        crate::memd::oom::write_score_adj(&writer.process, &self.0, &text)?;
        Ok(count)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o644, 0)
    }
}
