//! Per-CPU statistics: relaxed atomic counters and the snapshot callers read.

use core::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one CPU's executor counters (see [`crate::Scheduler::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Tasks spawned onto this CPU (floating ones placed here, pinned ones homed here).
    pub spawned: u64,
    /// Polls of a task future on this CPU.
    pub polls: u64,
    /// Wakes of a task bound for this CPU issued on this CPU (counting the
    /// ones that queued or notified it, not redundant ones).
    pub local_wakes: u64,
    /// Wakes of a task bound for this CPU issued elsewhere (another CPU, a
    /// foreign thread), counted the same way.
    pub remote_wakes: u64,
    /// Kicks (wake IPIs) sent to this CPU.
    pub kicks: u64,
    /// Times this CPU parked in `Platform::idle`.
    pub idles: u64,
    /// Floating tasks this CPU stole from another CPU's queue.
    pub steals: u64,
    /// Floating tasks this CPU took, while busy itself, from a CPU stalled in
    /// one long poll.
    pub stall_steals: u64,
    /// Timers that expired on this CPU.
    pub timers_fired: u64,
    /// Pushes to this CPU's queues that found the ring full and used the
    /// (allocating) overflow.
    pub ring_overflows: u64,
}

/// A counter only ever incremented; relaxed, it orders nothing.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Add `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Add one.
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The live counters of one CPU, field for field those of [`CpuStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) spawned: Counter,
    pub(crate) polls: Counter,
    pub(crate) local_wakes: Counter,
    pub(crate) remote_wakes: Counter,
    pub(crate) kicks: Counter,
    pub(crate) idles: Counter,
    pub(crate) steals: Counter,
    pub(crate) stall_steals: Counter,
    pub(crate) timers_fired: Counter,
    pub(crate) ring_overflows: Counter,
}

impl Counters {
    /// Read every counter (each individually; the set is not atomic).
    pub(crate) fn snapshot(&self) -> CpuStats {
        CpuStats {
            spawned: self.spawned.get(),
            polls: self.polls.get(),
            local_wakes: self.local_wakes.get(),
            remote_wakes: self.remote_wakes.get(),
            kicks: self.kicks.get(),
            idles: self.idles.get(),
            steals: self.steals.get(),
            stall_steals: self.stall_steals.get(),
            timers_fired: self.timers_fired.get(),
            ring_overflows: self.ring_overflows.get(),
        }
    }
}
