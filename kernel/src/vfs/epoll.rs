//! epoll: an interest list of (descriptor, open file, events, data). A wait reports
//! every watched file whose poll shows one of its events (level-triggered;
//! `EPOLLONESHOT` disables an entry once reported until `EPOLL_CTL_MOD`;
//! `EPOLLET` is served level-triggered, which only reports more often: an
//! edge-triggered reader drains to EAGAIN anyway). Entries hold their file weakly:
//! the last close of a file drops it from every interest list, as on Linux.

use super::{
    anon_inode_number,
    events::{POLLIN, POLLRDNORM},
    File, OpenFile, Stat,
};
use alloc::{
    sync::{Arc, Weak},
    vec::Vec,
};
use core::{any::Any, task::Waker};
use errno::{Errno, SysResult};
use spin::Mutex;

/// `EPOLL_CTL_ADD`.
pub const EPOLL_CTL_ADD: u32 = 1;
/// `EPOLL_CTL_DEL`.
pub const EPOLL_CTL_DEL: u32 = 2;
/// `EPOLL_CTL_MOD`.
pub const EPOLL_CTL_MOD: u32 = 3;
/// `EPOLLERR`.
const EPOLLERR: u32 = 0x8;
/// `EPOLLHUP`.
const EPOLLHUP: u32 = 0x10;
/// `EPOLLEXCLUSIVE`.
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
/// `EPOLLONESHOT`.
const EPOLLONESHOT: u32 = 1 << 30;

struct Interest {
    fd: u32,
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// A one-shot entry already reported.
    disabled: bool,
}

/// An epoll instance.
pub struct Epoll {
    interests: Mutex<Vec<Interest>>,
    ino: u64,
}

impl Default for Epoll {
    fn default() -> Self {
        Epoll {
            interests: Mutex::new(Vec::new()),
            ino: anon_inode_number(),
        }
    }
}

impl Epoll {
    /// `epoll_ctl`: adds, changes or removes the entry of descriptor `fd` (open as
    /// `file`). EEXIST, ENOENT as Linux; an epoll inside an epoll is refused (EINVAL).
    pub fn ctl(
        &self,
        op: u32,
        fd: u32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> SysResult<()> {
        if file.file().as_any().is::<Epoll>() {
            return Err(Errno::EINVAL);
        }
        let mut list = self.interests.lock();
        list.retain(|i| i.file.strong_count() > 0);
        let at = list
            .iter()
            .position(|i| i.fd == fd && Weak::ptr_eq(&i.file, &Arc::downgrade(file)));
        match (op, at) {
            (EPOLL_CTL_ADD, Some(_)) => Err(Errno::EEXIST),
            (EPOLL_CTL_ADD, None) => {
                list.push(Interest {
                    fd,
                    file: Arc::downgrade(file),
                    events,
                    data,
                    disabled: false,
                });
                Ok(())
            }
            (EPOLL_CTL_DEL, Some(i)) => {
                list.remove(i);
                Ok(())
            }
            (EPOLL_CTL_MOD, Some(i)) => {
                if events & EPOLLEXCLUSIVE != 0 || list[i].events & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                list[i].events = events;
                list[i].data = data;
                list[i].disabled = false;
                Ok(())
            }
            (EPOLL_CTL_DEL | EPOLL_CTL_MOD, None) => Err(Errno::ENOENT),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The ready entries, at most `max`, as `(events, data)`; with `waker`, every
    /// watched file wakes it at its next change. With `consume`, a one-shot entry
    /// reported is disabled.
    pub fn ready(&self, max: usize, waker: Option<&Waker>, consume: bool) -> Vec<(u32, u64)> {
        // Snapshot the list: the files are polled without its lock.
        let watched: Vec<(usize, Arc<OpenFile>, u32, u64)> = {
            let mut list = self.interests.lock();
            list.retain(|i| i.file.strong_count() > 0);
            list.iter()
                .enumerate()
                .filter(|(_, i)| !i.disabled)
                .filter_map(|(n, i)| Some((n, i.file.upgrade()?, i.events, i.data)))
                .collect()
        };
        let mut out = Vec::new();
        let mut fired = Vec::new();
        for (n, file, events, data) in watched {
            let revents = u32::from(file.file().poll(waker)) & (events | EPOLLERR | EPOLLHUP);
            if revents != 0 && out.len() < max {
                out.push((revents, data));
                if events & EPOLLONESHOT != 0 {
                    fired.push(n);
                }
            }
        }
        if consume && !fired.is_empty() {
            let mut list = self.interests.lock();
            for n in fired {
                if let Some(i) = list.get_mut(n) {
                    i.disabled = true;
                }
            }
        }
        out
    }
}

impl File for Epoll {
    fn proc_name(&self) -> alloc::string::String {
        alloc::string::String::from("anon_inode:[eventpoll]")
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        if self.ready(1, waker, false).is_empty() {
            0
        } else {
            POLLIN | POLLRDNORM
        }
    }

    fn pollable(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
        .at(super::stat::encode_dev(0, 8), self.ino)
    }
}
