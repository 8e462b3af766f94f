//! `eventfd2`: a 64-bit counter. A write adds to it (waiting while the sum would pass
//! `u64::MAX - 1`); a read takes it whole and zeroes it, or takes 1 in semaphore mode
//! (waiting while it is 0). Readable while non-zero, writable while another 1 fits.

use super::{
    anon_inode_number,
    events::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM},
    waiters::Waiters,
    File, Stat,
};
use crate::arch::uaccess::{read_user, write_user};
use core::task::Waker;
use errno::{Errno, SysResult};
use spin::Mutex;

/// The largest value the counter holds.
const MAX: u64 = u64::MAX - 1;

/// An eventfd.
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    waiters: Waiters,
    ino: u64,
}

impl EventFd {
    /// A counter starting at `initial`; `semaphore` reads take 1 at a time.
    pub fn new(initial: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(initial),
            semaphore,
            waiters: Waiters::default(),
            ino: anon_inode_number(),
        }
    }
}

impl File for EventFd {
    fn proc_name(&self) -> alloc::string::String {
        alloc::string::String::from("anon_inode:[eventfd]")
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count < 8 {
            return Err(Errno::EINVAL);
        }
        let mut c = self.count.lock();
        if *c == 0 {
            return Err(Errno::EAGAIN);
        }
        let taken = if self.semaphore { 1 } else { *c };
        write_user(buf, &taken)?;
        *c -= taken;
        drop(c);
        self.waiters.wake_all();
        Ok(8)
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count < 8 {
            return Err(Errno::EINVAL);
        }
        let value: u64 = read_user(buf)?;
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let mut c = self.count.lock();
        if MAX - *c < value {
            return Err(Errno::EAGAIN);
        }
        *c += value;
        drop(c);
        self.waiters.wake_all();
        Ok(8)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        if let Some(w) = waker {
            self.waiters.register(w);
        }
        let c = *self.count.lock();
        let mut events = 0;
        if c > 0 {
            events |= POLLIN | POLLRDNORM;
        }
        if c < MAX {
            events |= POLLOUT | POLLWRNORM;
        }
        events
    }

    fn pollable(&self) -> bool {
        true
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
        .at(super::stat::encode_dev(0, 7), self.ino)
    }
}
