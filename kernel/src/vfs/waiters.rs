//! A list of wakers to wake when a file's state changes (pipes, eventfds, epoll).

use alloc::vec::Vec;
use core::task::Waker;
use spin::Mutex;

/// Tasks waiting for a change.
#[derive(Default)]
pub struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    /// Registers `waker` (once) for the next [`Waiters::wake_all`].
    pub fn register(&self, waker: &Waker) {
        let mut list = self.0.lock();
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    /// Wakes and forgets every registered waker (woken outside the lock).
    pub fn wake_all(&self) {
        let list = core::mem::take(&mut *self.0.lock());
        for w in list {
            w.wake();
        }
    }
}
