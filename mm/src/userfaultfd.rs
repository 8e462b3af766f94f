//! userfaultfd, hardware-independent: a [`Userfault`] context is the
//! [`FaultInterceptor`] registered on the ranges it handles, in any of three modes
//! (`fault::intercept_mode`):
//!
//! * missing: a fault on an empty anonymous page parks the faulting thread on a
//!   per-page [`Completion`] and queues a message; the handler supplies the page
//!   ([`AddressSpace::fill_missing_page`](crate::aspace::AddressSpace::fill_missing_page))
//!   and wakes the range ([`Userfault::wake_range`]); the woken faults retry;
//! * write-protect: the context keeps the set of pages it protects
//!   ([`Userfault::protect`], whose entries the address space makes read-only); a
//!   write fault on one parks with `UFFD_PAGEFAULT_FLAG_WP` until it is unprotected;
//! * minor: a fault on a shared-memory page the page cache holds but the VMA does not
//!   map parks with `UFFD_PAGEFAULT_FLAG_MINOR` until `UFFDIO_CONTINUE` maps it.
//!
//! Kernel-mode faults (a syscall copying to or from the range) park like user ones
//! unless the context was made with `UFFD_USER_MODE_ONLY`, in which case they fail
//! (the copy gets `EFAULT`); the kernel turns the parked wait into a restart of the
//! syscall once the handler has answered. With `UFFD_FEATURE_SIGBUS` no fault parks:
//! each one is `SIGBUS` (`EFAULT` for a kernel access).
//!
//! Besides faults, the context queues events (fork, remap, remove, unmap) that the
//! kernel reports when the handler negotiated them ([`Userfault::push_event`]).
//!
//! When the last descriptor closes, [`Userfault::release`] wakes every parked fault and
//! the kernel unregisters the context's ranges; later faults there fill normally.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use core::task::Waker;

use spin::Mutex;

use crate::fault::{
    Access, Completion, FaultFuture, FaultInterceptor, Intercept, InterceptEvent, WaitReason,
    WakerSet,
};
use crate::frame::PAGE_SIZE;

/// `UFFD_PAGEFAULT_FLAG_WRITE`: the fault was a write.
pub const FLAG_WRITE: u64 = 1;
/// `UFFD_PAGEFAULT_FLAG_WP`: a write to a write-protected page.
pub const FLAG_WP: u64 = 2;
/// `UFFD_PAGEFAULT_FLAG_MINOR`: a minor fault (the page cache holds the page).
pub const FLAG_MINOR: u64 = 4;

/// One message the handler reads (`struct uffd_msg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// `UFFD_EVENT_PAGEFAULT`: a fault waits at page `address`.
    PageFault {
        /// The page-aligned faulting address.
        address: u64,
        /// `FLAG_WRITE`, `FLAG_WP`, `FLAG_MINOR`.
        flags: u64,
        /// The faulting thread (`UFFD_FEATURE_THREAD_ID`; 0 when not asked for).
        tid: u32,
    },
    /// `UFFD_EVENT_FORK`: the process forked; the child's context is the one
    /// [`Userfault::take_fork_child`] hands out under `token`.
    Fork {
        /// Identifies the child context until the kernel turns it into a descriptor.
        token: u64,
    },
    /// `UFFD_EVENT_REMAP`: `mremap` moved `[from, from + len)` to `to`.
    Remap {
        /// Old start.
        from: u64,
        /// New start.
        to: u64,
        /// Length in bytes.
        len: u64,
    },
    /// `UFFD_EVENT_REMOVE`: `madvise(MADV_DONTNEED/REMOVE)` dropped `[start, end)`.
    Remove {
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// `UFFD_EVENT_UNMAP`: `munmap` (or a mapping over it) removed `[start, end)`.
    Unmap {
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
}

/// The events a context reports (`UFFD_FEATURE_EVENT_*`, negotiated at the
/// `UFFDIO_API` handshake).
pub mod events {
    /// `UFFD_FEATURE_EVENT_REMAP`.
    pub const REMAP: u8 = 1;
    /// `UFFD_FEATURE_EVENT_REMOVE`.
    pub const REMOVE: u8 = 2;
    /// `UFFD_FEATURE_EVENT_UNMAP`.
    pub const UNMAP: u8 = 4;
    /// `UFFD_FEATURE_EVENT_FORK`.
    pub const FORK: u8 = 8;
}

/// How a context treats faults, fixed at creation and at the `UFFDIO_API` handshake.
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// `UFFD_USER_MODE_ONLY`: kernel-mode faults fail instead of parking.
    pub user_mode_only: bool,
}

/// A parked page: every fault on it waits on one completion.
struct Parked {
    page: u64,
    flags: u64,
    tid: u32,
    delivered: bool,
    completion: Arc<Completion>,
}

#[derive(Default)]
struct State {
    parked: Vec<Parked>,
    /// Queued events, each with the completion its reporter waits on until it is read.
    events: VecDeque<(Message, Option<Arc<Completion>>)>,
    readers: WakerSet,
    protected: BTreeSet<u64>,
    fork_children: Vec<(u64, Arc<Userfault>)>,
}

/// One userfaultfd context.
pub struct Userfault {
    config: Config,
    state: Mutex<State>,
    released: AtomicBool,
    /// `UFFD_FEATURE_SIGBUS` was negotiated.
    sigbus: AtomicBool,
    /// `UFFD_FEATURE_THREAD_ID` was negotiated.
    report_tid: AtomicBool,
    /// The [`events`] negotiated.
    events: AtomicU8,
    /// The faulting thread's id (set by the kernel; messages carry it when asked).
    current_tid: fn() -> u32,
    next_fork_token: AtomicU64,
}

fn no_tid() -> u32 {
    0
}

impl Userfault {
    /// A context with nothing registered and nothing parked, in the default
    /// configuration (kernel-mode faults park).
    pub fn new() -> Arc<Userfault> {
        Userfault::with_config(Config::default(), no_tid)
    }

    /// A context in `config`; `current_tid` names the faulting thread for
    /// `UFFD_FEATURE_THREAD_ID`.
    pub fn with_config(config: Config, current_tid: fn() -> u32) -> Arc<Userfault> {
        Arc::new(Userfault {
            config,
            state: Mutex::new(State::default()),
            released: AtomicBool::new(false),
            sigbus: AtomicBool::new(false),
            report_tid: AtomicBool::new(false),
            events: AtomicU8::new(0),
            current_tid,
            next_fork_token: AtomicU64::new(1),
        })
    }

    /// The configuration it was made with.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Turns `UFFD_FEATURE_SIGBUS` and `UFFD_FEATURE_THREAD_ID` on or off.
    pub fn set_features(&self, sigbus: bool, thread_id: bool) {
        self.sigbus.store(sigbus, Ordering::SeqCst);
        self.report_tid.store(thread_id, Ordering::SeqCst);
    }

    /// Sets the [`events`] reported.
    pub fn set_events(&self, mask: u8) {
        self.events.store(mask, Ordering::SeqCst);
    }

    /// The oldest message not yet read, marked read: faults first, then events (as
    /// Linux reads its fault queue before its event queue).
    pub fn next_message(&self) -> Option<Message> {
        let mut st = self.state.lock();
        if let Some(p) = st.parked.iter_mut().find(|p| !p.delivered) {
            p.delivered = true;
            return Some(Message::PageFault {
                address: p.page,
                flags: p.flags,
                tid: p.tid,
            });
        }
        let (event, reporter) = st.events.pop_front()?;
        drop(st);
        if let Some(done) = reporter {
            done.complete();
        }
        Some(event)
    }

    /// Whether a message is waiting to be read (`POLLIN`).
    pub fn has_message(&self) -> bool {
        let st = self.state.lock();
        !st.events.is_empty() || st.parked.iter().any(|p| !p.delivered)
    }

    /// Wakes `waker` at the next message (a reader waiting for one).
    pub fn register_reader(&self, waker: &Waker) {
        let mut st = self.state.lock();
        st.readers.register(waker);
    }

    /// Queues an event message and wakes the readers.
    pub fn push_event(&self, event: Message) {
        self.queue_event(event, None);
    }

    /// Queues `event` with the completion `reporter` (completed once the event is
    /// read, or at release) and wakes the readers.
    fn queue_event(&self, event: Message, reporter: Option<Arc<Completion>>) {
        let readers = {
            let mut st = self.state.lock();
            st.events.push_back((event, reporter));
            st.readers.take()
        };
        if self.is_released() {
            // Released meanwhile: nobody will read it.
            self.complete_events();
        }
        readers.wake_all();
    }

    /// Completes every queued event's reporter (the context is gone).
    fn complete_events(&self) {
        let events = core::mem::take(&mut self.state.lock().events);
        for (_, reporter) in events {
            if let Some(done) = reporter {
                done.complete();
            }
        }
    }

    /// Queues a fork event for `child` (the child process's context) and returns its
    /// token, under which [`take_fork_child`](Self::take_fork_child) hands it out.
    pub fn push_fork(&self, child: Arc<Userfault>) -> u64 {
        let token = self.next_fork_token.fetch_add(1, Ordering::Relaxed);
        self.state.lock().fork_children.push((token, child));
        self.push_event(Message::Fork { token });
        token
    }

    /// A context for a fork child of the process this one serves: the same
    /// configuration, features and events, and the same write-protected pages (the
    /// child's copies of them stay protected, as Linux keeps its uffd-wp bits).
    pub fn fork_child(&self) -> Arc<Userfault> {
        let child = Userfault::with_config(self.config, self.current_tid);
        child.set_features(
            self.sigbus.load(Ordering::SeqCst),
            self.report_tid.load(Ordering::SeqCst),
        );
        child.set_events(self.events.load(Ordering::SeqCst));
        child.state.lock().protected = self.state.lock().protected.clone();
        child
    }

    /// Queues a fork event for `child` when `UFFD_FEATURE_EVENT_FORK` was negotiated
    /// (and the context is live): its token (see [`take_fork_child`]) and the
    /// completion the forking caller waits on, completed once the event is read (or
    /// the context released). `None` when no event is reported.
    ///
    /// [`take_fork_child`]: Self::take_fork_child
    pub fn report_fork(&self, child: Arc<Userfault>) -> Option<(u64, Arc<Completion>)> {
        if self.is_released() || self.events.load(Ordering::SeqCst) & events::FORK == 0 {
            return None;
        }
        let token = self.next_fork_token.fetch_add(1, Ordering::Relaxed);
        self.state.lock().fork_children.push((token, child));
        let done = Completion::new();
        self.queue_event(Message::Fork { token }, Some(done.clone()));
        Some((token, done))
    }

    /// The child context a fork message names (once).
    pub fn take_fork_child(&self, token: u64) -> Option<Arc<Userfault>> {
        let mut st = self.state.lock();
        let i = st.fork_children.iter().position(|(t, _)| *t == token)?;
        Some(st.fork_children.swap_remove(i).1)
    }

    /// Puts a message read but not delivered (the reader's buffer failed) back at
    /// the front of its queue.
    pub fn unread(&self, message: Message) {
        let mut st = self.state.lock();
        match message {
            Message::PageFault { address, .. } => {
                if let Some(p) = st.parked.iter_mut().find(|p| p.page == address) {
                    p.delivered = false;
                }
            }
            other => st.events.push_front((other, None)),
        }
    }

    /// Wakes the faults parked on pages in `[start, end)` (`UFFDIO_WAKE`, and after
    /// `UFFDIO_COPY`/`ZEROPAGE`/`CONTINUE`/`WRITEPROTECT`); returns how many pages were
    /// woken.
    pub fn wake_range(&self, start: u64, end: u64) -> usize {
        // The common case wakes one page: its completion is held inline, and only a
        // wider wake collects into a vector.
        let mut first: Option<Arc<Completion>> = None;
        let mut rest: Vec<Arc<Completion>> = Vec::new();
        {
            let mut st = self.state.lock();
            st.parked.retain(|p| {
                let hit = p.page >= start && p.page < end;
                if hit {
                    match first {
                        None => first = Some(p.completion.clone()),
                        Some(_) => rest.push(p.completion.clone()),
                    }
                }
                !hit
            });
        }
        let woken = usize::from(first.is_some()) + rest.len();
        for c in first.iter().chain(rest.iter()) {
            c.complete();
        }
        woken
    }

    /// Marks `page` write-protected (the caller then takes the entry's write
    /// permission away) or, with `protect` false, no longer protected.
    pub fn protect(&self, page: u64, protect: bool) {
        let mut st = self.state.lock();
        if protect {
            st.protected.insert(page);
        } else {
            st.protected.remove(&page);
        }
    }

    /// Whether `page` is write-protected.
    pub fn is_protected(&self, page: u64) -> bool {
        self.state.lock().protected.contains(&page)
    }

    /// Forgets the protection of every page in `[start, end)` (unregistered or
    /// unmapped: a new mapping there starts unprotected).
    pub fn forget_range(&self, start: u64, end: u64) {
        let mut st = self.state.lock();
        let doomed: Vec<u64> = st.protected.range(start..end).copied().collect();
        for p in doomed {
            st.protected.remove(&p);
        }
    }

    /// The last descriptor closed: wakes every parked fault; the context takes no
    /// more faults.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.wake_range(0, u64::MAX);
        self.complete_events();
        let readers = {
            let mut st = self.state.lock();
            st.protected.clear();
            st.readers.take()
        };
        readers.wake_all();
    }

    /// Whether [`release`](Self::release) has run.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// Parks a fault at `page` with message `flags` (one message per page however
    /// many faults wait on it), or refuses it as the configuration says.
    fn take(&self, page: u64, flags: u64, user: bool) -> Option<Intercept> {
        if self.is_released() {
            return None;
        }
        if self.sigbus.load(Ordering::SeqCst) || (!user && self.config.user_mode_only) {
            return Some(Intercept::SigBus);
        }
        let reason = WaitReason::Userfault { addr: page };
        let tid = if self.report_tid.load(Ordering::Relaxed) {
            (self.current_tid)()
        } else {
            0
        };
        let (completion, readers) = {
            let mut st = self.state.lock();
            if let Some(p) = st.parked.iter().find(|p| p.page == page) {
                (p.completion.clone(), WakerSet::default())
            } else {
                let completion = Completion::new();
                st.parked.push(Parked {
                    page,
                    flags,
                    tid,
                    delivered: false,
                    completion: completion.clone(),
                });
                (completion, st.readers.take())
            }
        };
        // A release between the check above and the queueing has already swept the
        // queue: do not leave this fault parked.
        if self.is_released() {
            completion.complete();
        }
        readers.wake_all();
        Some(Intercept::Wait(FaultFuture::new(reason, completion)))
    }
}

impl FaultInterceptor for Userfault {
    fn missing(&self, addr: u64, access: Access, user: bool) -> Option<Intercept> {
        let page = addr & !(PAGE_SIZE - 1);
        let flags = if access == Access::Write {
            FLAG_WRITE
        } else {
            0
        };
        self.take(page, flags, user)
    }

    fn write_protected(&self, addr: u64, user: bool) -> Option<Intercept> {
        let page = addr & !(PAGE_SIZE - 1);
        if !self.is_protected(page) {
            return None;
        }
        self.take(page, FLAG_WRITE | FLAG_WP, user)
    }

    fn notify(&self, event: InterceptEvent) -> Option<Arc<Completion>> {
        if self.is_released() {
            return None;
        }
        let wanted = self.events.load(Ordering::SeqCst);
        let (bit, message) = match event {
            InterceptEvent::Unmap { start, end } => (events::UNMAP, Message::Unmap { start, end }),
            InterceptEvent::Remove { start, end } => {
                (events::REMOVE, Message::Remove { start, end })
            }
            InterceptEvent::Remap { from, to, len } => {
                (events::REMAP, Message::Remap { from, to, len })
            }
        };
        if wanted & bit == 0 {
            return None;
        }
        let done = Completion::new();
        self.queue_event(message, Some(done.clone()));
        Some(done)
    }

    fn minor(&self, addr: u64, access: Access, user: bool) -> Option<Intercept> {
        let page = addr & !(PAGE_SIZE - 1);
        let flags = if access == Access::Write {
            FLAG_WRITE | FLAG_MINOR
        } else {
            FLAG_MINOR
        };
        self.take(page, flags, user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, harness, map_file, map_shared_anon};
    use crate::errno::MmError;
    use crate::fault::{intercept_mode, FaultError, FaultResolved};
    use crate::pagecache::FileObject;
    use crate::pagetable::{PageTable, PteFlags};
    use crate::vma::{MapFlags, Prot};
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

    fn fault_at(address: u64, flags: u64) -> Option<Message> {
        Some(Message::PageFault {
            address,
            flags,
            tid: 0,
        })
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
        assert_eq!(uffd.next_message(), fault_at(a, FLAG_WRITE));
        assert_eq!(uffd.next_message(), fault_at(a + 2 * PAGE_SIZE, 0));
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
    fn kernel_faults_park_unless_user_mode_only() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let uffd = Userfault::new();
        h.aspace
            .set_interceptor(a, 2 * PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        let k = parked(h.aspace.fault(a, Access::Write, false));
        assert!(!k.is_ready(), "a kernel-mode fault waits for the handler");
        assert_eq!(uffd.next_message(), fault_at(a, FLAG_WRITE));
        h.aspace.fill_missing_page(a, b"kernel").unwrap();
        uffd.wake_range(a, a + PAGE_SIZE);
        assert!(k.is_ready());
        assert_eq!(
            h.aspace.fault(a, Access::Write, false).unwrap(),
            FaultResolved::Spurious
        );

        let only_user = Userfault::with_config(
            Config {
                user_mode_only: true,
            },
            no_tid,
        );
        let b = anon_rw(&h.aspace, 1);
        h.aspace
            .set_interceptor(b, PAGE_SIZE, Some(only_user.clone()))
            .unwrap();
        assert!(
            matches!(
                h.aspace.fault(b, Access::Read, false),
                Err(FaultError::SigBus)
            ),
            "UFFD_USER_MODE_ONLY: a kernel access fails"
        );
        assert!(!only_user.has_message());
        let _u = parked(h.aspace.fault(b, Access::Read, true));
        assert!(only_user.has_message());
    }

    #[test]
    fn release_frees_everything() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let uffd = Userfault::new();
        h.aspace
            .set_interceptor(a, 2 * PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
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
    fn sigbus_feature_and_thread_ids() {
        fn seven() -> u32 {
            7
        }
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let uffd = Userfault::with_config(Config::default(), seven);
        h.aspace
            .set_interceptor(a, 2 * PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        uffd.set_features(false, true);
        let _w = parked(h.aspace.fault(a, Access::Read, true));
        assert_eq!(
            uffd.next_message(),
            Some(Message::PageFault {
                address: a,
                flags: 0,
                tid: 7
            })
        );
        uffd.set_features(true, false);
        assert!(matches!(
            h.aspace.fault(a + PAGE_SIZE, Access::Read, true),
            Err(FaultError::SigBus)
        ));
        assert!(!uffd.has_message());
    }

    #[test]
    fn write_protect_parks_writes_only_until_unprotected() {
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        let uffd = Userfault::new();
        let hook: Arc<dyn FaultInterceptor> = uffd.clone();
        h.aspace
            .register_interceptor(a, 3 * PAGE_SIZE, Some(hook.clone()), intercept_mode::WP)
            .unwrap();
        // WP only: a missing page fills normally.
        h.aspace.fault(a, Access::Write, true).unwrap();
        h.aspace.write_bytes(a, b"old").unwrap();
        let flushes = h.tlb.flushes();
        h.aspace
            .write_protect_range(a, 3 * PAGE_SIZE, &hook, true, &mut |p| {
                uffd.protect(p, true)
            })
            .unwrap();
        assert_eq!(h.tlb.flushes(), flushes + 1);
        assert!(uffd.is_protected(a) && !uffd.is_protected(a + PAGE_SIZE));
        let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert!(!pte.flags.contains(PteFlags::WRITE));
        assert_eq!(
            h.aspace.fault(a, Access::Read, true).unwrap(),
            FaultResolved::Spurious,
            "reads pass"
        );
        let w = parked(h.aspace.fault(a, Access::Write, true));
        assert_eq!(uffd.next_message(), fault_at(a, FLAG_WRITE | FLAG_WP));
        // The handler saves the old page, then unprotects and wakes.
        let mut saved = [0u8; 3];
        h.aspace.read_bytes(a, &mut saved).unwrap();
        assert_eq!(&saved, b"old");
        h.aspace
            .write_protect_range(a, PAGE_SIZE, &hook, false, &mut |p| uffd.protect(p, false))
            .unwrap();
        uffd.wake_range(a, a + PAGE_SIZE);
        assert!(w.is_ready());
        h.aspace.fault(a, Access::Write, true).unwrap();
        assert!(h
            .aspace
            .page_table()
            .query(VirtAddr::new(a))
            .unwrap()
            .flags
            .contains(PteFlags::WRITE));
        // Pages outside a WP registration are refused.
        let b = anon_rw(&h.aspace, 1);
        assert_eq!(
            h.aspace
                .write_protect_range(b, PAGE_SIZE, &hook, true, &mut |_| {}),
            Err(MmError::NoEntry)
        );
        // COPY_MODE_WP installs a protected page.
        let c = a + 2 * PAGE_SIZE;
        uffd.protect(c, true);
        h.aspace.fill_missing_page_with(c, b"new", true).unwrap();
        let _w = parked(h.aspace.fault(c, Access::Write, true));
        uffd.forget_range(a, a + 3 * PAGE_SIZE);
        assert!(!uffd.is_protected(c));
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn minor_faults_wait_for_continue() {
        let h = harness();
        let shm = FileObject::new_shmem(2 * PAGE_SIZE, h.frames.clone());
        let rw = Prot::READ | Prot::WRITE;
        let filler = map_file(&h.aspace, &shm, 2, rw, MapFlags::SHARED, 0);
        let watched = map_file(&h.aspace, &shm, 2, rw, MapFlags::SHARED, 0);
        let uffd = Userfault::new();
        let hook: Arc<dyn FaultInterceptor> = uffd.clone();
        assert_eq!(
            h.aspace.register_interceptor(
                watched,
                2 * PAGE_SIZE,
                Some(hook.clone()),
                intercept_mode::MISSING
            ),
            Err(MmError::InvalidArgument),
            "missing mode takes anonymous memory only"
        );
        h.aspace
            .register_interceptor(
                watched,
                2 * PAGE_SIZE,
                Some(hook.clone()),
                intercept_mode::MINOR,
            )
            .unwrap();
        // Page 1 is not in the cache yet: an ordinary fault fills it.
        h.aspace
            .fault(watched + PAGE_SIZE, Access::Read, true)
            .unwrap();
        assert!(!uffd.has_message());
        h.aspace.write_bytes(filler, b"through the other").unwrap();
        let w = parked(h.aspace.fault(watched, Access::Read, true));
        assert_eq!(uffd.next_message(), fault_at(watched, FLAG_MINOR));
        assert_eq!(
            h.aspace.continue_page(filler, &hook, false),
            Err(MmError::NoEntry),
            "not a minor-registered range"
        );
        h.aspace.continue_page(watched, &hook, false).unwrap();
        assert_eq!(
            h.aspace.continue_page(watched, &hook, false),
            Err(MmError::Exists)
        );
        uffd.wake_range(watched, watched + PAGE_SIZE);
        assert!(w.is_ready());
        let mut b = [0u8; 17];
        h.aspace.read_bytes(watched, &mut b).unwrap();
        assert_eq!(&b, b"through the other");
        assert_eq!(
            h.aspace
                .page_table()
                .query(VirtAddr::new(watched))
                .unwrap()
                .pfn,
            h.aspace
                .page_table()
                .query(VirtAddr::new(filler))
                .unwrap()
                .pfn,
            "the page cache's own page is mapped"
        );
        let anon = anon_rw(&h.aspace, 1);
        assert_eq!(
            h.aspace
                .register_interceptor(anon, PAGE_SIZE, Some(hook), intercept_mode::MINOR),
            Err(MmError::InvalidArgument),
            "minor mode takes shared memory only"
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn fork_events_only_when_negotiated_and_children_keep_protection() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let uffd = Userfault::new();
        uffd.protect(a, true);
        assert!(
            uffd.report_fork(uffd.fork_child()).is_none(),
            "not negotiated"
        );
        assert!(!uffd.has_message());
        uffd.set_events(events::FORK | events::UNMAP);
        let child = uffd.fork_child();
        assert!(child.is_protected(a) && !child.is_protected(a + PAGE_SIZE));
        let (token, done) = uffd.report_fork(child.clone()).unwrap();
        assert!(!done.is_complete(), "the fork waits for the handler");
        assert_eq!(uffd.next_message(), Some(Message::Fork { token }));
        assert!(done.is_complete(), "read: the fork goes on");
        assert!(Arc::ptr_eq(&uffd.take_fork_child(token).unwrap(), &child));
        // The child reports what the parent negotiated.
        let grandchild = child.fork_child();
        assert!(child.report_fork(grandchild).is_some());
        // A released context reports nothing.
        uffd.release();
        assert!(uffd.report_fork(uffd.fork_child()).is_none());
    }

    #[test]
    fn events_follow_faults_and_fork_children_are_handed_out_once() {
        let uffd = Userfault::new();
        uffd.push_event(Message::Unmap {
            start: 0x1000,
            end: 0x3000,
        });
        let child = Userfault::new();
        let token = uffd.push_fork(child.clone());
        assert!(uffd.has_message());
        let h = harness();
        let a = anon_rw(&h.aspace, 1);
        h.aspace
            .set_interceptor(a, PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        let _w = parked(h.aspace.fault(a, Access::Read, true));
        assert_eq!(uffd.next_message(), fault_at(a, 0), "faults come first");
        let unmap = uffd.next_message();
        assert_eq!(
            unmap,
            Some(Message::Unmap {
                start: 0x1000,
                end: 0x3000
            })
        );
        uffd.unread(unmap.unwrap());
        assert_eq!(uffd.next_message(), unmap, "an unread message comes back");
        assert_eq!(uffd.next_message(), Some(Message::Fork { token }));
        assert!(uffd
            .take_fork_child(token)
            .is_some_and(|c| Arc::ptr_eq(&c, &child)));
        assert!(uffd.take_fork_child(token).is_none());
        assert_eq!(uffd.next_message(), None);
    }

    #[test]
    fn a_handed_over_frame_is_mapped_or_put_back() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let live = h.soft.live();
        let pfn = h.frames.alloc(VirtAddr::new(a)).unwrap();
        h.frames.write(pfn, 0, b"direct");
        h.aspace.map_missing_frame(a, pfn, true).unwrap();
        let pte = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert_eq!(pte.pfn, pfn);
        assert!(!pte.flags.contains(PteFlags::WRITE), "write-protected");
        let mut b = [0u8; 6];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(&b, b"direct");
        let again = h.frames.alloc(VirtAddr::new(a)).unwrap();
        assert_eq!(
            h.aspace.map_missing_frame(a, again, false),
            Err(MmError::Exists)
        );
        let nowhere = h.frames.alloc(VirtAddr::new(0)).unwrap();
        assert_eq!(
            h.aspace.map_missing_frame(0x1000, nowhere, false),
            Err(MmError::NoEntry)
        );
        assert_eq!(h.soft.live(), live + 1, "refused frames went back");
    }

    #[test]
    fn negotiated_events_hold_their_reporter_until_read() {
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        let uffd = Userfault::new();
        h.aspace
            .set_interceptor(a + PAGE_SIZE, PAGE_SIZE, Some(uffd.clone()))
            .unwrap();
        let hooks = h.aspace.interceptors_in(a, 3 * PAGE_SIZE);
        assert_eq!(hooks.len(), 1);
        assert!(h.aspace.interceptors_in(a, PAGE_SIZE).is_empty());
        let unmap = InterceptEvent::Unmap {
            start: a,
            end: a + PAGE_SIZE,
        };
        assert!(hooks[0].notify(unmap).is_none(), "not negotiated");
        uffd.set_events(events::UNMAP | events::REMOVE);
        assert!(hooks[0]
            .notify(InterceptEvent::Remap {
                from: a,
                to: a,
                len: 1
            })
            .is_none());
        let done = hooks[0].notify(unmap).unwrap();
        assert!(!done.is_complete() && uffd.has_message());
        assert_eq!(
            uffd.next_message(),
            Some(Message::Unmap {
                start: a,
                end: a + PAGE_SIZE
            })
        );
        assert!(done.is_complete(), "reading the event lets the reporter go");
        let pending = hooks[0]
            .notify(InterceptEvent::Remove {
                start: a,
                end: a + 1,
            })
            .unwrap();
        uffd.release();
        assert!(pending.is_complete(), "release lets every reporter go");
        assert!(hooks[0].notify(unmap).is_none());
    }

    #[test]
    fn move_takes_exclusive_pages_only() {
        let h = harness();
        let src = anon_rw(&h.aspace, 3);
        let dst = anon_rw(&h.aspace, 3);
        let uffd = Userfault::new();
        let hook: Arc<dyn FaultInterceptor> = uffd.clone();
        h.aspace
            .set_interceptor(dst, 3 * PAGE_SIZE, Some(hook.clone()))
            .unwrap();
        h.aspace.write_bytes(src, b"moving").unwrap();
        let pfn = h.aspace.page_table().query(VirtAddr::new(src)).unwrap().pfn;
        let w = parked(h.aspace.fault(dst, Access::Read, true));
        let flushes = h.tlb.flushes();
        assert_eq!(h.aspace.move_page(src, dst, &hook), Ok(true));
        assert_eq!(h.tlb.flushes(), flushes + 1, "the old entry is flushed");
        assert!(h.aspace.page_table().query(VirtAddr::new(src)).is_none());
        assert_eq!(
            h.aspace.page_table().query(VirtAddr::new(dst)).unwrap().pfn,
            pfn
        );
        uffd.wake_range(dst, dst + PAGE_SIZE);
        assert!(w.is_ready());
        let mut b = [0u8; 6];
        h.aspace.read_bytes(dst, &mut b).unwrap();
        assert_eq!(&b, b"moving");
        assert_eq!(
            h.aspace.move_page(src, dst + PAGE_SIZE, &hook),
            Ok(false),
            "a hole"
        );
        h.aspace.write_bytes(src, b"again").unwrap();
        assert_eq!(
            h.aspace.move_page(src, dst, &hook),
            Err(MmError::Exists),
            "the destination is mapped"
        );
        assert_eq!(
            h.aspace.move_page(dst, src + PAGE_SIZE, &hook),
            Err(MmError::NoEntry),
            "the destination is not registered"
        );
        let child = crate::aspace::tests::fork(&h);
        assert_eq!(
            h.aspace.move_page(src, dst + PAGE_SIZE, &hook),
            Err(MmError::Busy),
            "a page shared with a child stays"
        );
        drop(child);
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn intercepted_by_spans_vmas_and_refuses_holes() {
        let h = harness();
        let a = anon_rw(&h.aspace, 6);
        // Three VMAs: read-only in the middle, so they never merge.
        h.aspace
            .mprotect(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, Prot::READ)
            .unwrap();
        let one: Arc<dyn FaultInterceptor> = Userfault::new();
        let two: Arc<dyn FaultInterceptor> = Userfault::new();
        h.aspace
            .set_interceptor(a, 6 * PAGE_SIZE, Some(one.clone()))
            .unwrap();
        assert!(
            h.aspace.intercepted_by(a, 6 * PAGE_SIZE, &one),
            "three VMAs, one hook"
        );
        assert!(
            h.aspace.intercepted_by(a + PAGE_SIZE, 2 * PAGE_SIZE, &one),
            "two VMAs"
        );
        assert!(
            h.aspace.intercepted_by(a + 2 * PAGE_SIZE, PAGE_SIZE, &one),
            "one page"
        );
        assert!(
            !h.aspace.intercepted_by(a, 6 * PAGE_SIZE, &two),
            "another hook"
        );
        assert!(
            !h.aspace.intercepted_by(a, 7 * PAGE_SIZE, &one),
            "past the end"
        );
        assert!(
            !h.aspace.intercepted_by(a - PAGE_SIZE, 2 * PAGE_SIZE, &one),
            "before it"
        );
        assert!(!h
            .aspace
            .intercepted_by(u64::MAX - PAGE_SIZE + 1, PAGE_SIZE, &one));
        // A hole in the middle.
        h.aspace.munmap(a + 3 * PAGE_SIZE, PAGE_SIZE).unwrap();
        assert!(!h.aspace.intercepted_by(a, 6 * PAGE_SIZE, &one), "a hole");
        assert!(
            h.aspace.intercepted_by(a, 3 * PAGE_SIZE, &one),
            "up to the hole"
        );
        assert!(
            h.aspace
                .intercepted_by(a + 4 * PAGE_SIZE, 2 * PAGE_SIZE, &one),
            "after it"
        );
        // Unregistered in part.
        h.aspace
            .set_interceptor(a + 5 * PAGE_SIZE, PAGE_SIZE, None)
            .unwrap();
        assert!(!h
            .aspace
            .intercepted_by(a + 4 * PAGE_SIZE, 2 * PAGE_SIZE, &one));
        assert!(h.aspace.intercepted_by(a + 4 * PAGE_SIZE, PAGE_SIZE, &one));
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
            "missing mode on shared memory is not handled"
        );
        assert_eq!(
            h.aspace
                .register_interceptor(a, PAGE_SIZE, Some(one.clone()), 0),
            Err(MmError::InvalidArgument),
            "no mode"
        );
        assert_eq!(
            h.aspace
                .register_interceptor(a, PAGE_SIZE, Some(one.clone()), 8),
            Err(MmError::InvalidArgument),
            "unknown mode"
        );
        h.aspace
            .register_interceptor(
                a,
                PAGE_SIZE,
                Some(one.clone()),
                intercept_mode::MISSING | intercept_mode::WP,
            )
            .unwrap();
        assert_eq!(
            h.aspace.intercept_modes_at(a, &one),
            intercept_mode::MISSING | intercept_mode::WP
        );
        assert_eq!(
            h.aspace.intercept_modes_at(a + PAGE_SIZE, &one),
            intercept_mode::MISSING
        );
        assert_eq!(h.aspace.intercept_modes_at(a, &two), 0);
        h.aspace.clear_interceptor(&one);
        assert!(!h.aspace.intercepted_by(a, PAGE_SIZE, &one));
        h.aspace.check_invariants().unwrap();
    }
}
