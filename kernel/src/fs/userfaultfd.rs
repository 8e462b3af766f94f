//! The userfaultfd descriptor: reads of fault messages (EAGAIN while none waits, so a
//! blocking reader parks in the syscall layer), the ioctls, and poll.

use crate::{
    memd::userfaultfd::{self, UserfaultFile},
    vfs::{flags::O_NONBLOCK, File, Stat},
};
use alloc::sync::Arc;
use core::task::Waker;
use errno::{Errno, SysResult};

/// An open userfaultfd (closing its last descriptor releases the context).
pub struct UserfaultFd(pub Arc<UserfaultFile>);

impl File for UserfaultFd {
    fn proc_name(&self) -> alloc::string::String {
        alloc::string::String::from("anon_inode:[userfaultfd]")
    }

    fn pollable(&self) -> bool {
        true
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count < userfaultfd::MSG_SIZE {
            return Err(Errno::EINVAL);
        }
        match userfaultfd::read_messages(&self.0, buf, count, &|f| Arc::new(UserfaultFd(f)))? {
            0 => Err(Errno::EAGAIN),
            n => Ok(n),
        }
    }

    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        userfaultfd::ioctl(&self.0, u64::from(request), arg)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        if let Some(w) = waker {
            self.0.register_reader(w);
        }
        self.0.poll_events()
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: 0o600, // an anonymous inode
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
    }

    fn status_flags_changed(&self, status: u32) {
        self.0.set_nonblocking(status & O_NONBLOCK != 0);
    }
}
