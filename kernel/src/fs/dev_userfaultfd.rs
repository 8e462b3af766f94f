//! `/dev/userfaultfd`: opened only by a caller holding SeDebugPrivilege (Linux's
//! device is root's, mode 0600), its one ioctl `USERFAULTFD_IOC_NEW` makes a
//! userfaultfd for the caller without consulting `vm.unprivileged_userfaultfd`.

use super::userfaultfd::UserfaultFd;
use crate::{
    memd::userfaultfd,
    proc,
    vfs::{
        flags::{O_CLOEXEC, O_NONBLOCK, O_RDWR},
        Caller, File, OpenFile, OpenRequest, Stat,
    },
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use security::Privilege;

/// `USERFAULTFD_IOC_NEW`: `_IO(0xAA, 0x00)`.
const USERFAULTFD_IOC_NEW: u32 = 0xAA00;

/// The device file.
struct DevUserfaultfd;

impl File for DevUserfaultfd {
    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        if request != USERFAULTFD_IOC_NEW {
            return Err(Errno::EINVAL);
        }
        let thread = proc::current_thread().ok_or(Errno::ESRCH)?;
        let flags = arg & 0xffff_ffff;
        let uffd = userfaultfd::create_ungated(thread, flags)?;
        let status = O_RDWR | (flags as u32 & O_NONBLOCK);
        let file = OpenFile::new(Arc::new(UserfaultFd(uffd)), status, None);
        thread
            .process
            .files
            .lock()
            .insert(file, flags as u32 & O_CLOEXEC != 0)
    }

    fn stat(&self) -> Stat {
        Stat::char_device(0o600, 10, 126)
    }
}

/// Opens the device: EACCES without SeDebugPrivilege.
pub fn open(caller: &Caller, _req: &OpenRequest) -> SysResult<Arc<dyn File>> {
    if !caller.token.has_privilege(Privilege::SeDebugPrivilege) {
        return Err(Errno::EACCES);
    }
    Ok(Arc::new(DevUserfaultfd))
}
