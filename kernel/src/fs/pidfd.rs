//! The pidfd: a descriptor naming one process (`pidfd_open`, `CLONE_PIDFD`). Like
//! Linux's, which holds the `struct pid` and not the task, it holds the pid and a weak
//! reference: the process is freed when it is reaped, whoever holds pidfds to it.
//! It polls readable once the process has exited (a zombie), and readable and hung up
//! once it has been reaped. Reads and writes are EINVAL, as on Linux.

use crate::{
    proc::{self, Pid, Process},
    vfs::{
        anon_inode_number,
        events::{POLLHUP, POLLIN, POLLRDNORM},
        File, OpenFile, Stat,
    },
};
use alloc::{
    string::String,
    sync::{Arc, Weak},
};
use core::{sync::atomic::Ordering, task::Waker};
use errno::{Errno, SysResult};

/// A descriptor for one process.
pub struct PidFd {
    pid: Pid,
    process: Weak<Process>,
    ino: u64,
}

impl PidFd {
    /// A pidfd for `process`.
    pub fn new(process: &Arc<Process>) -> PidFd {
        PidFd {
            pid: process.pid,
            process: Arc::downgrade(process),
            ino: anon_inode_number(),
        }
    }

    /// The pid it names.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The process, while it has not been reaped; ESRCH after.
    pub fn process(&self) -> SysResult<Arc<Process>> {
        let process = self.process.upgrade().ok_or(Errno::ESRCH)?;
        // Reaped but still referenced elsewhere (an OOM reap in flight): gone all the same.
        match proc::lookup(self.pid) {
            Some(listed) if Arc::ptr_eq(&listed, &process) => Ok(process),
            _ => Err(Errno::ESRCH),
        }
    }
}

/// The pidfd behind an open file; EBADF if it is another kind of file (Linux's
/// `pidfd_pid`).
pub fn of(file: &OpenFile) -> SysResult<&PidFd> {
    file.file()
        .as_any()
        .downcast_ref::<PidFd>()
        .ok_or(Errno::EBADF)
}

impl File for PidFd {
    fn proc_name(&self) -> String {
        String::from("anon_inode:[pidfd]")
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        let Ok(process) = self.process() else {
            return POLLIN | POLLRDNORM | POLLHUP;
        };
        if let Some(w) = waker {
            process.exit_waiters.register(w);
        }
        if process.zombie.load(Ordering::SeqCst) {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn pollable(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
        .at(crate::vfs::stat::encode_dev(0, 7), self.ino)
    }
}
