//! Per-CPU timers and the `Sleep` future.
//!
//! Each CPU keeps its own deadline-ordered map of wakers. A `Sleep` registers
//! on the CPU that polls it, and only that CPU's executor fires it, so there
//! is no global timer lock and no cross-CPU traffic on the timer path; the
//! earliest deadline is what the CPU passes to `Platform::idle`.
//!
//! A `Sleep` of a floating task that is polled again on another CPU before
//! its deadline registers there and removes its old entry if that CPU's lock
//! is free; an entry left behind only wakes the task spuriously at its
//! deadline, which futures must tolerate. Dropping
//! a `Sleep` removes its entry (if the owning CPU's lock is free: drop never
//! spins, since it may run in an interrupt handler that drops a task).

use alloc::collections::BTreeMap;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::executor::Scheduler;
use crate::{CpuId, Platform};

/// A timer entry's key: its deadline, then a per-CPU sequence number that
/// keeps equal deadlines in registration order.
type Key = (u64, u64);

/// One CPU's pending timers, earliest first.
pub(crate) struct TimerQueue {
    entries: BTreeMap<Key, Waker>,
    next_seq: u64,
}

impl TimerQueue {
    /// No timers.
    pub(crate) const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Wake `waker` once `deadline_ns` passes; returns the entry's sequence number.
    pub(crate) fn insert(&mut self, deadline_ns: u64, waker: Waker) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert((deadline_ns, seq), waker);
        seq
    }

    /// Point a registered entry at `waker` (if it does not already wake the
    /// same task). False if the entry is gone (fired or removed).
    pub(crate) fn refresh(&mut self, deadline_ns: u64, seq: u64, waker: &Waker) -> bool {
        match self.entries.get_mut(&(deadline_ns, seq)) {
            Some(registered) => {
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Forget an entry (no-op if it already fired).
    pub(crate) fn remove(&mut self, deadline_ns: u64, seq: u64) {
        self.entries.remove(&(deadline_ns, seq));
    }

    /// Take the earliest entry if its deadline is at or before `now_ns`.
    pub(crate) fn pop_expired(&mut self, now_ns: u64) -> Option<Waker> {
        let entry = self.entries.first_entry()?;
        (entry.key().0 <= now_ns).then(|| entry.remove())
    }

    /// The earliest deadline, if any timer is pending.
    pub(crate) fn next_deadline_ns(&self) -> Option<u64> {
        self.entries
            .first_key_value()
            .map(|(&(deadline_ns, _), _)| deadline_ns)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<P: Platform> Scheduler<P> {
    /// A future that completes `duration_ns` nanoseconds from now.
    pub fn sleep(&'static self, duration_ns: u64) -> Sleep<P> {
        self.sleep_until(self.now_ns().saturating_add(duration_ns))
    }

    /// A future that completes once [`Scheduler::now_ns`] reaches `deadline_ns`.
    ///
    /// It must be polled by a task of this scheduler (it registers on the
    /// polling CPU's timer queue).
    pub fn sleep_until(&'static self, deadline_ns: u64) -> Sleep<P> {
        Sleep {
            sched: self,
            deadline_ns,
            registration: None,
        }
    }
}

/// Where a `Sleep` is registered.
#[derive(Clone, Copy, Debug)]
struct Registration {
    cpu: CpuId,
    seq: u64,
}

/// The future returned by [`Scheduler::sleep`] and [`Scheduler::sleep_until`].
///
/// Never completes before its deadline; completes on the first poll at or
/// after it, which the owning CPU's timer queue triggers.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep<P: Platform> {
    sched: &'static Scheduler<P>,
    deadline_ns: u64,
    registration: Option<Registration>,
}

impl<P: Platform> Sleep<P> {
    /// The instant (in [`Scheduler::now_ns`] time) this sleep completes.
    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }

    /// Remove the registration, without waiting for a busy lock.
    fn deregister(&mut self) {
        if let Some(Registration { cpu, seq }) = self.registration.take() {
            let deadline_ns = self.deadline_ns;
            self.sched
                .try_with_timers(cpu, |timers| timers.remove(deadline_ns, seq));
        }
    }
}

impl<P: Platform> Future for Sleep<P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.sched.now_ns() >= this.deadline_ns {
            this.deregister();
            return Poll::Ready(());
        }
        let cpu = this.sched.current_cpu();
        assert!(
            cpu.index() < this.sched.cpu_count(),
            "Sleep polled outside the scheduler's CPUs"
        );
        let deadline_ns = this.deadline_ns;
        let refreshed = this.registration.is_some_and(|r| {
            r.cpu == cpu
                && this
                    .sched
                    .with_timers(cpu, |timers| timers.refresh(deadline_ns, r.seq, cx.waker()))
        });
        if !refreshed {
            // First poll, or polled on another CPU than last time: drop the
            // old entry if that CPU's lock is free; otherwise it stays and
            // fires harmlessly.
            if let Some(old) = this.registration.take().filter(|r| r.cpu != cpu) {
                this.sched
                    .try_with_timers(old.cpu, |theirs| theirs.remove(deadline_ns, old.seq));
            }
            let seq = this
                .sched
                .with_timers(cpu, |timers| timers.insert(deadline_ns, cx.waker().clone()));
            this.registration = Some(Registration { cpu, seq });
        }
        Poll::Pending
    }
}

impl<P: Platform> Drop for Sleep<P> {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl<P: Platform> fmt::Debug for Sleep<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ns", &self.deadline_ns)
            .field("registration", &self.registration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_in_deadline_order_then_registration_order() {
        let mut q = TimerQueue::new();
        let w = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        q.insert(30, w.clone());
        let a = q.insert(10, w.clone());
        let b = q.insert(10, w.clone());
        assert!(a < b);
        assert_eq!(q.next_deadline_ns(), Some(10));
        assert!(
            q.pop_expired(9).is_none(),
            "nothing fires before its deadline"
        );
        assert!(q.pop_expired(10).is_some());
        assert!(q.pop_expired(10).is_some());
        assert!(q.pop_expired(29).is_none());
        assert_eq!(q.next_deadline_ns(), Some(30));
        assert!(q.pop_expired(u64::MAX).is_some());
        assert_eq!(q.next_deadline_ns(), None);
    }

    #[test]
    fn refresh_and_remove() {
        let mut q = TimerQueue::new();
        let c1 = Arc::new(Count(AtomicUsize::new(0)));
        let c2 = Arc::new(Count(AtomicUsize::new(0)));
        let seq = q.insert(5, Waker::from(c1.clone()));
        assert!(q.refresh(5, seq, &Waker::from(c2.clone())));
        q.pop_expired(5).unwrap().wake();
        assert_eq!(c1.0.load(Ordering::SeqCst), 0);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1, "refresh replaced the waker");
        assert!(
            !q.refresh(5, seq, &Waker::from(c2)),
            "fired entries are gone"
        );
        let seq = q.insert(7, Waker::from(c1));
        q.remove(7, seq);
        assert_eq!(q.len(), 0);
    }
}
