//! The lock-free run queue: a preallocated ring for the common case and an
//! unbounded overflow, so pushing (waking) does not allocate until more than
//! `ring_capacity` tasks wait on one queue.
//!
//! Both halves are `crossbeam_queue` MPMC queues: any CPU (or interrupt
//! handler) pushes, the owning CPU pops, idle CPUs steal from the floating
//! queues. A plain `SegQueue` would allocate a block every 31 pushes, which
//! the wake path (called from interrupt handlers in the kernel) must not do in
//! the steady state; the ring never allocates after construction.
//!
//! Order is FIFO, so a task that re-wakes itself goes behind every task that
//! was already waiting. While the overflow holds anything, pushes go to it
//! too, so the ring drains first and then the overflow: no task in either half
//! can be starved by the other.

use crossbeam_queue::{ArrayQueue, SegQueue};

/// Where a push landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Into the preallocated ring.
    Ring,
    /// Into the overflow (may have allocated).
    Overflow,
}

/// A multi-producer multi-consumer FIFO queue: ring first, overflow after.
pub(crate) struct RunQueue<T> {
    ring: ArrayQueue<T>,
    overflow: SegQueue<T>,
}

impl<T> RunQueue<T> {
    /// A queue whose ring holds `ring_capacity` items (allocated now).
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Self {
            ring: ArrayQueue::new(ring_capacity),
            overflow: SegQueue::new(),
        }
    }

    /// Append `item` at the back.
    pub(crate) fn push(&self, item: T) -> Pushed {
        if self.overflow.is_empty() {
            match self.ring.push(item) {
                Ok(()) => return Pushed::Ring,
                Err(item) => self.overflow.push(item),
            }
        } else {
            self.overflow.push(item);
        }
        Pushed::Overflow
    }

    /// Take the item at the front.
    pub(crate) fn pop(&self) -> Option<T> {
        self.ring.pop().or_else(|| self.overflow.pop())
    }

    /// Whether the queue looked empty (a snapshot; pushes may race).
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.overflow.is_empty()
    }

    /// How many items the queue held (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.ring.len() + self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::vec::Vec;

    #[test]
    fn fifo_across_ring_and_overflow() {
        let q = RunQueue::new(3);
        let landed: Vec<Pushed> = (0..6).map(|i| q.push(i)).collect();
        assert_eq!(&landed[..3], &[Pushed::Ring; 3]);
        assert_eq!(&landed[3..], &[Pushed::Overflow; 3]);
        assert_eq!(q.len(), 6);
        // Free ring slots while the overflow is non-empty: new items still go
        // behind the overflow.
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.push(6), Pushed::Overflow);
        let rest: Vec<i32> = core::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, [1, 2, 3, 4, 5, 6]);
        assert!(q.is_empty());
        assert_eq!(q.push(7), Pushed::Ring, "back to the ring once drained");
    }

    /// Two producers, two consumers, a tiny ring: every item comes out exactly once.
    #[test]
    fn concurrent_no_loss_no_duplicate() {
        const PER_PRODUCER: u32 = 20_000;
        let q = Arc::new(RunQueue::new(8));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        q.push(p * PER_PRODUCER + i);
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (q, seen, done) = (q.clone(), seen.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        match q.pop() {
                            Some(v) => mine.push(v),
                            None if done.load(Ordering::SeqCst) && q.is_empty() => break,
                            None => std::hint::spin_loop(),
                        }
                    }
                    seen.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for c in consumers {
            c.join().unwrap();
        }
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen.len(), 2 * PER_PRODUCER as usize);
        assert!(seen.iter().copied().eq(0..2 * PER_PRODUCER));
    }
}
