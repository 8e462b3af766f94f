//! Each node's list of parked allocations: the waiters a free that brings the node
//! above `min` wakes (`wait.rs` registers them).

use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicUsize, Ordering};
use core::task::Waker;

/// Number of registered waiters, on its own cache line: the free hot path reads it.
#[repr(align(64))]
struct WaiterCount(AtomicUsize);

/// One node's parked allocations.
pub(crate) struct WaitList {
    count: WaiterCount,
    entries: spin::Mutex<Vec<(u64, Waker)>>,
}

impl WaitList {
    /// An empty list.
    pub(crate) fn new() -> WaitList {
        WaitList {
            count: WaiterCount(AtomicUsize::new(0)),
            entries: spin::Mutex::new(Vec::new()),
        }
    }

    /// Whether anyone waits. Sequentially consistent with [`register`](Self::register)
    /// so that a free that does not see a waiter happened before the waiter's retry.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.count.0.load(Ordering::SeqCst) != 0
    }

    /// Adds (or refreshes) waiter `id`'s waker.
    pub(crate) fn register(&self, id: u64, waker: &Waker) {
        let mut entries = self.entries.lock();
        match entries.iter_mut().find(|e| e.0 == id) {
            Some(e) => e.1.clone_from(waker),
            None => entries.push((id, waker.clone())),
        }
        self.count.0.store(entries.len(), Ordering::SeqCst);
        drop(entries);
        // Orders the count store before the caller's retry reads the buddy and the
        // remote-free queue; pairs with the fences on the free side.
        fence(Ordering::SeqCst);
    }

    /// Removes waiter `id` if it is still listed.
    pub(crate) fn unregister(&self, id: u64) {
        let mut entries = self.entries.lock();
        entries.retain(|e| e.0 != id);
        self.count.0.store(entries.len(), Ordering::SeqCst);
    }

    /// Wakes and removes every waiter; each re-registers if it still cannot allocate.
    pub(crate) fn wake_all(&self) {
        let woken = {
            let mut entries = self.entries.lock();
            self.count.0.store(0, Ordering::SeqCst);
            core::mem::take(&mut *entries)
        };
        for (_, waker) in woken {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use core::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn wake_all_empties_the_list() {
        let list = WaitList::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        list.register(1, &waker);
        list.register(1, &waker);
        list.register(2, &waker);
        assert!(list.has_waiters());
        list.unregister(2);
        assert_eq!(list.entries.lock().len(), 1);
        list.wake_all();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(!list.has_waiters());
    }
}
