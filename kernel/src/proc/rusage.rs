//! Resource usage (`getrusage`, `times`): CPU time in user and kernel mode and page
//! faults, counted per thread by the thread loop, folded into the process when a thread
//! exits and into the parent when a zombie is reaped; the peak resident size is the
//! address space's high-water mark, kept by the process at exit.
//!
//! Time is charged at the loop's transitions: from entering user mode to coming back is
//! user time; from coming back to entering again is kernel time, except the stretches the
//! thread spends waiting (awaiting a blocked system call, a fault or a yield), which are
//! nobody's. Minor faults are the page faults resolved at once; a fault that has to wait
//! for a swap-in or a page being read counts as major (Linux: the faults that needed I/O).

use core::sync::atomic::{AtomicU64, Ordering};

/// One thread's or a set of threads' counters.
#[derive(Default)]
pub struct Usage {
    user_ns: AtomicU64,
    system_ns: AtomicU64,
    minor_faults: AtomicU64,
    major_faults: AtomicU64,
}

/// A snapshot of [`Usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Nanoseconds in user mode.
    pub user_ns: u64,
    /// Nanoseconds running in the kernel.
    pub system_ns: u64,
    /// Page faults resolved without waiting.
    pub minor_faults: u64,
    /// Page faults that waited for I/O.
    pub major_faults: u64,
}

impl Totals {
    /// The sum of two snapshots.
    pub fn plus(self, other: Totals) -> Totals {
        Totals {
            user_ns: self.user_ns.saturating_add(other.user_ns),
            system_ns: self.system_ns.saturating_add(other.system_ns),
            minor_faults: self.minor_faults.saturating_add(other.minor_faults),
            major_faults: self.major_faults.saturating_add(other.major_faults),
        }
    }
}

impl Usage {
    /// All zero.
    pub const fn new() -> Usage {
        Usage {
            user_ns: AtomicU64::new(0),
            system_ns: AtomicU64::new(0),
            minor_faults: AtomicU64::new(0),
            major_faults: AtomicU64::new(0),
        }
    }

    /// Charges `ns` of user-mode time.
    pub fn add_user(&self, ns: u64) {
        self.user_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Charges `ns` of kernel time.
    pub fn add_system(&self, ns: u64) {
        self.system_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts a page fault resolved at once.
    pub fn minor_fault(&self) {
        self.minor_faults.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a page fault that waits for I/O.
    pub fn major_fault(&self) {
        self.major_faults.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn totals(&self) -> Totals {
        Totals {
            user_ns: self.user_ns.load(Ordering::Relaxed),
            system_ns: self.system_ns.load(Ordering::Relaxed),
            minor_faults: self.minor_faults.load(Ordering::Relaxed),
            major_faults: self.major_faults.load(Ordering::Relaxed),
        }
    }

    /// Adds a snapshot.
    pub fn add(&self, t: Totals) {
        self.user_ns.fetch_add(t.user_ns, Ordering::Relaxed);
        self.system_ns.fetch_add(t.system_ns, Ordering::Relaxed);
        self.minor_faults
            .fetch_add(t.minor_faults, Ordering::Relaxed);
        self.major_faults
            .fetch_add(t.major_faults, Ordering::Relaxed);
    }
}

/// A process's share: its exited threads, its reaped children (with theirs), and the
/// peak resident sizes.
#[derive(Default)]
pub struct ProcessUsage {
    /// The threads that have exited.
    pub exited_threads: Usage,
    /// Reaped children and, through them, their reaped descendants.
    pub children: Usage,
    /// The process's peak resident size in KiB, recorded when it exits.
    pub max_rss_kib: AtomicU64,
    /// The largest peak of any reaped descendant, KiB.
    pub children_max_rss_kib: AtomicU64,
}

impl ProcessUsage {
    /// All zero.
    pub const fn new() -> ProcessUsage {
        ProcessUsage {
            exited_threads: Usage::new(),
            children: Usage::new(),
            max_rss_kib: AtomicU64::new(0),
            children_max_rss_kib: AtomicU64::new(0),
        }
    }

    /// Folds a reaped child (its own counters and its children's) into these.
    pub fn add_reaped_child(&self, child: &ProcessUsage) {
        self.children
            .add(child.exited_threads.totals().plus(child.children.totals()));
        let peak = child
            .max_rss_kib
            .load(Ordering::Relaxed)
            .max(child.children_max_rss_kib.load(Ordering::Relaxed));
        self.children_max_rss_kib.fetch_max(peak, Ordering::Relaxed);
    }
}
