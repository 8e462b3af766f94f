//! A file read or write that must wait for a page (a shared-memory page being read
//! back from swap, or a frame reclaim has to free): it answers EAGAIN, remembering
//! the wait, and the syscall layer waits through [`File::poll`](super::File::poll)
//! until the wait is over, then runs the call again. Regular files do this whatever
//! `O_NONBLOCK` says.

use alloc::vec::Vec;
use core::{
    future::Future,
    pin::Pin,
    task::{Context, Waker},
};
use errno::{Errno, SysResult};
use mm::fault::FaultFuture;
use spin::Mutex;

/// Most wakers remembered (threads waiting on one description at once).
const MAX_WAKERS: usize = 8;

/// The wait of the last call that answered EAGAIN, and who polled for it.
#[derive(Default)]
pub struct PageWait {
    pending: Mutex<Option<FaultFuture>>,
    wakers: Mutex<Vec<Waker>>,
}

impl PageWait {
    /// Parks the caller on `wait`: EAGAIN, or EINTR when the wait is already over
    /// (the caller runs again at once). Every task that polled is registered with it,
    /// so whichever waits is woken (a spurious wake only retries).
    pub fn park(&self, mut wait: FaultFuture) -> SysResult<u64> {
        let wakers = self.wakers.lock().clone();
        for w in &wakers {
            let mut cx = Context::from_waker(w);
            if Pin::new(&mut wait).poll(&mut cx).is_ready() {
                return Err(Errno::EINTR);
            }
        }
        if wait.is_ready() {
            return Err(Errno::EINTR);
        }
        *self.pending.lock() = Some(wait);
        Err(Errno::EAGAIN)
    }

    /// [`File::poll`](super::File::poll)'s answer: 0 while the parked wait is not
    /// over (registering `waker` to be woken), else the default events.
    pub fn poll(&self, waker: Option<&Waker>) -> u16 {
        if let Some(w) = waker {
            let mut wakers = self.wakers.lock();
            if !wakers.iter().any(|x| x.will_wake(w)) {
                if wakers.len() == MAX_WAKERS {
                    wakers.remove(0);
                }
                wakers.push(w.clone());
            }
        }
        let mut pending = self.pending.lock();
        if let Some(wait) = pending.as_mut() {
            let ready = match waker {
                Some(w) => Pin::new(wait).poll(&mut Context::from_waker(w)).is_ready(),
                None => wait.is_ready(),
            };
            if !ready {
                return 0;
            }
            *pending = None;
        }
        super::events::DEFAULT
    }
}
