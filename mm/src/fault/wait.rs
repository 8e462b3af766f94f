//! The wait seam of the fault path: a fault that cannot finish at once returns a
//! [`FaultFuture`] naming its [`WaitReason`]; the kernel parks the faulting thread on
//! it and retries the fault when it completes. Whoever resolves the wait (a page-cache
//! fill, a frame becoming free, a userfaultfd reply, a swap-in completion) holds the
//! shared [`Completion`] and calls [`Completion::complete`] from any CPU.
//!
//! Faults that complete inline (demand-zero, copy-on-write, a page-cache hit) never
//! build one of these.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use crate::pagecache::file_id::FileId;

/// Wakers waiting for one event, without duplicates. The first is held inline, so the
/// common case (one waiter) registers and wakes without touching the heap.
#[derive(Default)]
pub struct WakerSet {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl WakerSet {
    /// Adds `waker` unless one that wakes the same task is already there.
    pub fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(w) if w.will_wake(waker) => {}
            Some(_) => {
                if !self.rest.iter().any(|w| w.will_wake(waker)) {
                    self.rest.push(waker.clone());
                }
            }
        }
    }

    /// Whether no waker is held.
    pub fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    /// Moves every waker out (to be woken outside the lock that guards the set),
    /// leaving the set empty.
    pub fn take(&mut self) -> WakerSet {
        WakerSet {
            first: self.first.take(),
            rest: core::mem::take(&mut self.rest),
        }
    }

    /// Wakes every waker held.
    pub fn wake_all(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        for w in self.rest {
            w.wake();
        }
    }
}

/// A one-shot event that any number of futures can wait for.
#[derive(Default)]
pub struct Completion {
    done: AtomicBool,
    wakers: spin::Mutex<WakerSet>,
}

impl Completion {
    /// A new, incomplete event.
    pub fn new() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    /// Marks the event complete and wakes every waiter. Idempotent.
    pub fn complete(&self) {
        self.done.store(true, Ordering::Release);
        let wakers = self.wakers.lock().take();
        wakers.wake_all();
    }

    /// Whether [`complete`](Self::complete) has been called.
    pub fn is_complete(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn register(&self, waker: &Waker) {
        self.wakers.lock().register(waker);
    }
}

/// What a parked fault waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Another fault is reading this page of the file into the page cache.
    PageLocked {
        /// The file.
        file: FileId,
        /// The page index in the file.
        index: u64,
    },
    /// This page of the file is already being read (readahead put it in the cache
    /// before the fault came): a minor fault that waits, as Linux counts it.
    PageReading {
        /// The file.
        file: FileId,
        /// The page index in the file.
        index: u64,
    },
    /// No frame is free now; the frame source will signal when one is.
    Memory,
    /// A userfaultfd (or other interceptor) must supply the page at this address.
    Userfault {
        /// The page-aligned faulting address.
        addr: u64,
    },
    /// The page is being read back from swap (reserved for the swap issue).
    SwapIn {
        /// The page-aligned faulting address.
        addr: u64,
    },
}

/// A parked fault: resolves (to `()`) when the fault should be retried. It carries no
/// borrowed state, so it may be polled from any CPU; dropping it cancels the wait.
#[must_use = "a parked fault must be awaited and then retried"]
pub struct FaultFuture {
    reason: WaitReason,
    completion: Arc<Completion>,
}

impl FaultFuture {
    /// A future completing with `completion`.
    pub fn new(reason: WaitReason, completion: Arc<Completion>) -> FaultFuture {
        FaultFuture { reason, completion }
    }

    /// Why the fault waits.
    pub fn reason(&self) -> WaitReason {
        self.reason
    }

    /// Whether the wait is already over (a retry would make progress).
    pub fn is_ready(&self) -> bool {
        self.completion.is_complete()
    }
}

impl core::fmt::Debug for FaultFuture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FaultFuture")
            .field("reason", &self.reason)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Future for FaultFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.completion.is_complete() {
            return Poll::Ready(());
        }
        self.completion.register(cx.waker());
        // A completion between the check and the registration took the waker list
        // before we pushed: look again.
        if self.completion.is_complete() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_once_completed() {
        let c = Completion::new();
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = pin!(FaultFuture::new(WaitReason::Memory, c.clone()));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        assert!(!f.is_ready());
        c.complete();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "one registration, one wake"
        );
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(f.reason(), WaitReason::Memory);
    }

    #[test]
    fn completed_before_poll_is_ready() {
        let c = Completion::new();
        c.complete();
        let f = FaultFuture::new(WaitReason::Userfault { addr: 0x1000 }, c);
        assert!(f.is_ready());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(pin!(f).poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn waker_set_keeps_one_waker_per_task_and_wakes_each_once() {
        let a = Arc::new(CountWake(AtomicUsize::new(0)));
        let b = Arc::new(CountWake(AtomicUsize::new(0)));
        let c = Arc::new(CountWake(AtomicUsize::new(0)));
        let (wa, wb, wc) = (
            Waker::from(a.clone()),
            Waker::from(b.clone()),
            Waker::from(c.clone()),
        );
        let mut set = WakerSet::default();
        assert!(set.is_empty());
        for w in [&wa, &wb, &wa, &wc, &wb, &wc] {
            set.register(w);
        }
        let taken = set.take();
        assert!(set.is_empty(), "take leaves the set empty");
        assert!(!taken.is_empty());
        taken.wake_all();
        for (name, n) in [("a", &a), ("b", &b), ("c", &c)] {
            assert_eq!(n.0.load(Ordering::SeqCst), 1, "{name} woken once");
        }
        // Empty again: a second round registers afresh.
        set.register(&wb);
        set.take().wake_all();
        assert_eq!(b.0.load(Ordering::SeqCst), 2);
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn completion_wakes_every_distinct_waiter() {
        let c = Completion::new();
        let counters: Vec<Arc<CountWake>> = (0..3)
            .map(|_| Arc::new(CountWake(AtomicUsize::new(0))))
            .collect();
        let wakers: Vec<Waker> = counters.iter().map(|k| Waker::from(k.clone())).collect();
        let mut futures: Vec<FaultFuture> = (0..3)
            .map(|_| FaultFuture::new(WaitReason::Memory, c.clone()))
            .collect();
        for (f, w) in futures.iter_mut().zip(&wakers) {
            let mut cx = Context::from_waker(w);
            assert_eq!(Pin::new(&mut *f).poll(&mut cx), Poll::Pending);
            assert_eq!(Pin::new(&mut *f).poll(&mut cx), Poll::Pending);
        }
        c.complete();
        for k in &counters {
            assert_eq!(
                k.0.load(Ordering::SeqCst),
                1,
                "each waiter woken exactly once"
            );
        }
    }
}
