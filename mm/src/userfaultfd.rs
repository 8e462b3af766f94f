//! userfaultfd's missing mode, hardware-independent: a [`Userfault`] context is the
//! [`FaultInterceptor`] registered on the ranges it handles. A user-mode fault on an
//! empty page there parks the faulting thread on a per-page [`Completion`] and queues a
//! message; the handler reads the messages ([`Userfault::next_message`]), supplies
//! pages ([`AddressSpace::fill_missing_page`](crate::aspace::AddressSpace::fill_missing_page))
//! and wakes the range ([`Userfault::wake_range`]); the woken faults retry.
//!
//! Kernel-mode faults (a syscall copying to or from the range) are never held: the
//! kernel cannot wait inside a user copy, so such a copy fails with `EFAULT` whatever
//! the context's mode, which is what `UFFD_USER_MODE_ONLY` asks for.
//!
//! When the last descriptor closes, [`Userfault::release`] wakes every parked fault and
//! the kernel unregisters the context's ranges; later faults there fill normally.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Waker;

use spin::Mutex;

use crate::fault::{Access, Completion, FaultFuture, FaultInterceptor, WaitReason};
use crate::frame::PAGE_SIZE;

/// One fault the handler is told about (`struct uffd_msg`, `UFFD_EVENT_PAGEFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The page-aligned faulting address.
    pub address: u64,
    /// The fault was a write (`UFFD_PAGEFAULT_FLAG_WRITE`).
    pub write: bool,
}

/// A parked page: every fault on it waits on one completion.
struct Parked {
    page: u64,
    write: bool,
    delivered: bool,
    completion: Arc<Completion>,
}

#[derive(Default)]
struct State {
    parked: Vec<Parked>,
    readers: Vec<Waker>,
}

/// One userfaultfd context.
#[derive(Default)]
pub struct Userfault {
    state: Mutex<State>,
    released: AtomicBool,
}

impl Userfault {
    /// A context with nothing registered and nothing parked.
    pub fn new() -> Arc<Userfault> {
        Arc::new(Userfault::default())
    }

    /// The oldest fault not yet read, marked read.
    pub fn next_message(&self) -> Option<Message> {
        let mut st = self.state.lock();
        let p = st.parked.iter_mut().find(|p| !p.delivered)?;
        p.delivered = true;
        Some(Message {
            address: p.page,
            write: p.write,
        })
    }

    /// Whether a fault is waiting to be read (`POLLIN`).
    pub fn has_message(&self) -> bool {
        self.state.lock().parked.iter().any(|p| !p.delivered)
    }

    /// Wakes `waker` at the next fault (a reader waiting for messages).
    pub fn register_reader(&self, waker: &Waker) {
        let mut st = self.state.lock();
        if !st.readers.iter().any(|w| w.will_wake(waker)) {
            st.readers.push(waker.clone());
        }
    }

    /// Wakes the faults parked on pages in `[start, end)` (`UFFDIO_WAKE`, and after
    /// `UFFDIO_COPY`/`ZEROPAGE`); returns how many pages were woken.
    pub fn wake_range(&self, start: u64, end: u64) -> usize {
        let woken: Vec<Arc<Completion>> = {
            let mut st = self.state.lock();
            let mut out = Vec::new();
            st.parked.retain(|p| {
                let hit = p.page >= start && p.page < end;
                if hit {
                    out.push(p.completion.clone());
                }
                !hit
            });
            out
        };
        for c in &woken {
            c.complete();
        }
        woken.len()
    }

    /// The last descriptor closed: wakes every parked fault; the context takes no
    /// more faults.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.wake_range(0, u64::MAX);
        let readers = core::mem::take(&mut self.state.lock().readers);
        for r in readers {
            r.wake();
        }
    }

    /// Whether [`release`](Self::release) has run.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

impl FaultInterceptor for Userfault {
    fn missing(&self, addr: u64, access: Access, user: bool) -> Option<FaultFuture> {
        if self.is_released() {
            return None;
        }
        let page = addr & !(PAGE_SIZE - 1);
        let reason = WaitReason::Userfault { addr: page };
        if !user {
            // Never held (see the module comment): an already-complete wait, which the
            // kernel's user-copy path turns into EFAULT.
            let done = Completion::new();
            done.complete();
            return Some(FaultFuture::new(reason, done));
        }
        let (completion, readers) = {
            let mut st = self.state.lock();
            if let Some(p) = st.parked.iter().find(|p| p.page == page) {
                (p.completion.clone(), Vec::new())
            } else {
                let completion = Completion::new();
                st.parked.push(Parked {
                    page,
                    write: access == Access::Write,
                    delivered: false,
                    completion: completion.clone(),
                });
                (completion, core::mem::take(&mut st.readers))
            }
        };
        // A release between the check above and the queueing has already swept the
        // queue: do not leave this fault parked.
        if self.is_released() {
            completion.complete();
        }
        for r in readers {
            r.wake();
        }
        Some(FaultFuture::new(reason, completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, harness, map_shared_anon};
    use crate::errno::MmError;
    use crate::fault::{FaultError, FaultResolved};
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn parked(r: Result<FaultResolved, FaultError>) -> FaultFuture {
        match r {
            Err(FaultError::NeedsWait(w)) => w,
            other => panic!("expected a parked fault, got {other:?}"),
        }
    }

    #[test]
    fn faults_queue_one_message_per_page_until_woken() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let uffd = Userfault::new();
        h.aspace
            .set_interceptor(a, 4 * PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        let reader = Arc::new(Count(AtomicUsize::new(0)));
        uffd.register_reader(&Waker::from(reader.clone()));
        let w1 = parked(h.aspace.fault(a + 5, Access::Write, true));
        let w2 = parked(h.aspace.fault(a + 100, Access::Read, true));
        let w3 = parked(h.aspace.fault(a + 2 * PAGE_SIZE, Access::Read, true));
        assert_eq!(
            reader.0.load(Ordering::SeqCst),
            1,
            "the reader is woken once"
        );
        assert_eq!(
            uffd.next_message(),
            Some(Message {
                address: a,
                write: true
            })
        );
        assert_eq!(
            uffd.next_message(),
            Some(Message {
                address: a + 2 * PAGE_SIZE,
                write: false
            })
        );
        assert_eq!(
            uffd.next_message(),
            None,
            "a second fault on a page adds none"
        );
        h.aspace.fill_missing_page(a, b"supplied").unwrap();
        assert_eq!(uffd.wake_range(a, a + PAGE_SIZE), 1);
        assert!(w1.is_ready() && w2.is_ready() && !w3.is_ready());
        let mut b = [0u8; 8];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(&b, b"supplied");
        // Woken without a page: the retry parks again and is reported again.
        uffd.wake_range(a + 2 * PAGE_SIZE, a + 3 * PAGE_SIZE);
        assert!(w3.is_ready());
        let _again = parked(h.aspace.fault(a + 2 * PAGE_SIZE, Access::Read, true));
        assert!(uffd.has_message());
    }

    #[test]
    fn kernel_faults_are_not_held_and_release_frees_everything() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let uffd = Userfault::new();
        h.aspace
            .set_interceptor(a, 2 * PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        let k = parked(h.aspace.fault(a, Access::Read, false));
        assert!(k.is_ready(), "a kernel-mode fault is not parked");
        assert!(!uffd.has_message());
        let u = parked(h.aspace.fault(a, Access::Read, true));
        uffd.release();
        assert!(u.is_ready());
        h.aspace
            .clear_interceptor(&(uffd.clone() as Arc<dyn FaultInterceptor>));
        assert_eq!(h.aspace.vma_count(), 1);
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::DemandZero
        );
    }

    #[test]
    fn registration_rules() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let s = map_shared_anon(&h.aspace, 1);
        let one: Arc<dyn FaultInterceptor> = Userfault::new();
        let two: Arc<dyn FaultInterceptor> = Userfault::new();
        h.aspace
            .set_interceptor(a, PAGE_SIZE, Some(one.clone()))
            .unwrap();
        assert_eq!(
            h.aspace
                .set_interceptor(a, 2 * PAGE_SIZE, Some(two.clone())),
            Err(MmError::Busy),
            "another context holds part of it"
        );
        h.aspace
            .set_interceptor(a, 2 * PAGE_SIZE, Some(one.clone()))
            .unwrap();
        assert!(h.aspace.intercepted_by(a, 2 * PAGE_SIZE, &one));
        assert!(!h.aspace.intercepted_by(a, 3 * PAGE_SIZE, &one));
        assert!(!h.aspace.intercepted_by(a, PAGE_SIZE, &two));
        assert_eq!(
            h.aspace.set_interceptor(s, PAGE_SIZE, Some(two.clone())),
            Err(MmError::InvalidArgument),
            "shared memory is not handled yet"
        );
        h.aspace.clear_interceptor(&one);
        assert!(!h.aspace.intercepted_by(a, PAGE_SIZE, &one));
        h.aspace.check_invariants().unwrap();
    }
}
