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

/// A one-shot event that any number of futures can wait for.
#[derive(Default)]
pub struct Completion {
    done: AtomicBool,
    wakers: spin::Mutex<Vec<Waker>>,
}

impl Completion {
    /// A new, incomplete event.
    pub fn new() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    /// Marks the event complete and wakes every waiter. Idempotent.
    pub fn complete(&self) {
        self.done.store(true, Ordering::Release);
        let wakers = core::mem::take(&mut *self.wakers.lock());
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`complete`](Self::complete) has been called.
    pub fn is_complete(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.lock();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
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
}
