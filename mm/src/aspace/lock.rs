//! The address space's one lock, over its VMA tree: a reader-writer spin lock that
//! prefers writers. Faults and other lookups take the read side (one atomic add on
//! the lock word, no waiting unless a writer holds or wants it); mmap, munmap,
//! mprotect, mremap, brk, madvise splits, stack growth and fork take the write side.
//!
//! `spin::RwLock` lets a stream of readers starve a writer; taking the upgradeable
//! guard first raises a flag that makes new readers wait, so a writer gets in once
//! the readers inside drain.

use spin::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A writer-preferring reader-writer spin lock.
pub(crate) struct TreeLock<T>(RwLock<T>);

impl<T> TreeLock<T> {
    /// A lock around `value`.
    pub(crate) const fn new(value: T) -> TreeLock<T> {
        TreeLock(RwLock::new(value))
    }

    /// Shared access (the fault path).
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read()
    }

    /// Exclusive access; new readers wait while this waits.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.upgradeable_read().upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn writer_gets_in_under_reader_stream() {
        let lock = Arc::new(TreeLock::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let (lock, stop) = (lock.clone(), stop.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let g = lock.read();
                        core::hint::black_box(*g);
                    }
                })
            })
            .collect();
        for _ in 0..100 {
            *lock.write() += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(*lock.read(), 100);
    }
}
