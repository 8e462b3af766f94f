//! The address space's one lock, over its VMA tree: a reader-writer spin lock that
//! prefers writers and whose read side touches no cache line another CPU writes.
//! Faults and other lookups take the read side; mmap, munmap, mprotect, mremap, brk,
//! madvise splits, stack growth and fork take the write side.
//!
//! Readers are counted per CPU: one counter per slot, each on its own cache line, the
//! slot chosen by [`crate::cpu`]. A reader adds one to its slot, then looks at the
//! writer flag; if a writer holds or wants the lock it takes its one back and waits
//! for the flag to clear. A writer raises the flag (writers take turns on it), then
//! waits until every slot reads zero. Both sides store first and load second with
//! `SeqCst`, so at least one of them sees the other: either the reader sees the flag,
//! or the writer sees the reader's count. New readers back off while the flag is up,
//! so a stream of readers cannot starve a writer. The read side costs one atomic add
//! and one load of a line that only writers write; the write side reads every slot.
//!
//! A reader keeps the counter it incremented in its guard and decrements that one, so
//! it may move to another CPU while it holds the lock. The slot is only a place to
//! count: any CPU number gives a correct lock, a good one gives a fast one.
//!
//! `unsafe` here, and only here: handing out `&T` and `&mut T` from an `UnsafeCell`
//! under the protocol above, and declaring the lock `Sync`. Each use says which part
//! of the protocol makes it sound.

use crate::cpu::Backoff;
use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use sched::MAX_CPUS;

/// Reader counters: one per CPU the kernel can run.
const SLOTS: usize = MAX_CPUS;

/// One slot's count of readers inside, alone on its cache line.
#[repr(align(64))]
struct ReaderSlot(AtomicUsize);

/// Whether a writer holds or waits for the lock, alone on its cache line.
#[repr(align(64))]
struct WriterFlag(AtomicBool);

/// A writer-preferring reader-writer spin lock with per-CPU reader counts.
pub(crate) struct TreeLock<T> {
    writer: WriterFlag,
    /// `SLOTS` counters, on the heap: 4 KiB that `AddressSpace` moves need not copy.
    readers: Box<[ReaderSlot]>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands `&T` to several threads at once (needs `T: Sync`) and `&mut T`
// to one thread at a time, possibly not the one that created it (needs `T: Send`);
// `read` and `write` exclude each other as the module doc explains.
unsafe impl<T: Send + Sync> Sync for TreeLock<T> {}

impl<T> TreeLock<T> {
    /// A lock around `value`.
    pub(crate) fn new(value: T) -> TreeLock<T> {
        TreeLock {
            writer: WriterFlag(AtomicBool::new(false)),
            readers: (0..SLOTS)
                .map(|_| ReaderSlot(AtomicUsize::new(0)))
                .collect(),
            value: UnsafeCell::new(value),
        }
    }

    /// Shared access (the fault path): waits only while a writer holds or wants it.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        let count = &self.readers[crate::cpu::current_cpu().index() % SLOTS].0;
        loop {
            // Store (count) then load (flag), both SeqCst: pairs with `write`.
            count.fetch_add(1, Ordering::SeqCst);
            if !self.writer.0.load(Ordering::SeqCst) {
                return ReadGuard { lock: self, count };
            }
            count.fetch_sub(1, Ordering::Release);
            let mut backoff = Backoff::new();
            while self.writer.0.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
    }

    /// Shared access if no writer holds or wants the lock now, else `None` (for a
    /// caller that already holds another address space's lock and must not wait).
    pub(crate) fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        let count = &self.readers[crate::cpu::current_cpu().index() % SLOTS].0;
        // Store (count) then load (flag), both SeqCst: pairs with `write`.
        count.fetch_add(1, Ordering::SeqCst);
        if !self.writer.0.load(Ordering::SeqCst) {
            return Some(ReadGuard { lock: self, count });
        }
        count.fetch_sub(1, Ordering::Release);
        None
    }

    /// Exclusive access; new readers wait from the moment this starts waiting.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        // Store (flag) then load (counts), both SeqCst: pairs with `read`.
        while self
            .writer
            .0
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            let mut backoff = Backoff::new();
            while self.writer.0.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
        let mut backoff = Backoff::new();
        for slot in self.readers.iter() {
            while slot.0.load(Ordering::SeqCst) != 0 {
                backoff.snooze();
            }
        }
        WriteGuard { lock: self }
    }
}

/// Shared access to a [`TreeLock`]'s value; dropping it leaves.
pub(crate) struct ReadGuard<'a, T> {
    lock: &'a TreeLock<T>,
    /// The counter this reader incremented, whichever CPU it now runs on.
    count: &'a AtomicUsize,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this reader's count is non-zero and it saw the writer flag clear after
        // raising it, so no writer holds the lock until the count drops (in `drop`),
        // and the acquire load of the flag ordered the last writer's changes before us.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: our reads of the value happen before a writer that sees the count.
        self.count.fetch_sub(1, Ordering::Release);
    }
}

/// Exclusive access to a [`TreeLock`]'s value; dropping it lets others in.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a TreeLock<T>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard owns the writer flag and saw every reader count at zero
        // after raising it; readers arriving since back off, so nothing else touches
        // the value until `drop`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference through
        // this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<'a, T> WriteGuard<'a, T> {
    /// Turns exclusive access into shared access without letting a writer in between:
    /// readers (faults) may enter again, writers still wait (munmap zaps this way).
    pub(crate) fn downgrade(self) -> ReadGuard<'a, T> {
        let lock = self.lock;
        let count = &lock.readers[crate::cpu::current_cpu().index() % SLOTS].0;
        // Count ourselves as a reader before dropping the flag: a writer that sees the flag
        // clear then sees our count and waits for it.
        count.fetch_add(1, Ordering::SeqCst);
        core::mem::forget(self);
        lock.writer.0.store(false, Ordering::Release);
        ReadGuard { lock, count }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // Release: our changes happen before the next reader or writer that sees it clear.
        self.lock.writer.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrade_lets_readers_in_and_keeps_writers_out() {
        let lock = std::sync::Arc::new(TreeLock::new(1u64));
        let mut w = lock.write();
        *w = 2;
        let r = w.downgrade();
        assert_eq!(*r, 2);
        // Another reader gets in while we hold the downgraded guard.
        assert_eq!(*lock.read(), 2);
        // A writer waits for the downgraded reader.
        let entered = std::sync::Arc::new(AtomicBool::new(false));
        let (l2, e2) = (lock.clone(), entered.clone());
        let writer = std::thread::spawn(move || {
            *l2.write() = 3;
            e2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !entered.load(Ordering::SeqCst),
            "a writer got in past a downgraded guard"
        );
        drop(r);
        writer.join().unwrap();
        assert_eq!(*lock.read(), 3);
    }
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::vec::Vec;

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

    /// Readers on several slots never see a half-done write (the writers keep both
    /// halves equal but change them one at a time), and no write is lost.
    #[test]
    fn readers_see_whole_writes_and_no_write_is_lost() {
        const WRITERS: u64 = 2;
        const WRITES: u64 = 300;
        let lock = Arc::new(TreeLock::new((0u64, 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Mutex::new(BTreeSet::new()));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (lock, stop, slots) = (lock.clone(), stop.clone(), slots.clone());
                thread::spawn(move || {
                    slots
                        .lock()
                        .unwrap()
                        .insert(crate::cpu::current_cpu().index() % SLOTS);
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let g = lock.read();
                        let (a, b) = *g;
                        assert_eq!(a, b, "torn read");
                        assert!(a <= WRITERS * WRITES);
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    for _ in 0..WRITES {
                        let mut g = lock.write();
                        g.0 += 1;
                        core::hint::black_box(&mut *g);
                        for _ in 0..50 {
                            core::hint::spin_loop();
                        }
                        g.1 += 1;
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(reads > 0);
        assert!(slots.lock().unwrap().len() > 1, "readers shared one slot");
        assert_eq!(*lock.read(), (WRITERS * WRITES, WRITERS * WRITES));
    }

    /// A read guard dropped on another thread (another slot) still lets writers in: the
    /// guard decrements the counter it incremented.
    #[test]
    fn read_guard_released_elsewhere_decrements_its_own_slot() {
        let lock = TreeLock::new(1u32);
        let guard = lock.read();
        thread::scope(|s| {
            s.spawn(move || {
                assert_eq!(*guard, 1);
                drop(guard);
            });
        });
        *lock.write() += 1;
        assert_eq!(*lock.read(), 2);
        assert!(lock
            .readers
            .iter()
            .all(|slot| slot.0.load(Ordering::Relaxed) == 0));
    }
}
