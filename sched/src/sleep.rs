//! The `Sleep` future, over the per-CPU timers of `timer.rs`.
//!
//! A `Sleep` registers on the CPU that polls it, and only that CPU's executor
//! fires it. A `Sleep` of a floating task that is polled again on another CPU
//! before its deadline registers there and removes its old entry if that CPU's
//! lock is free; an entry left behind only wakes the task spuriously at its
//! deadline, which futures must tolerate. Dropping a `Sleep` removes its entry
//! (if the owning CPU's lock is free: drop never spins, since it may run in an
//! interrupt handler that drops a task).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::executor::Scheduler;
use crate::{CpuId, Platform};

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
