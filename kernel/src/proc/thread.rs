//! A user thread: its identity, signal state, affinity and wait interruption. Its exit
//! is `thread_exit`; the loop that runs it (`syscall::entry`) sits above, beside the
//! system calls.

use super::{Pid, Process};
use crate::arch::percpu;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use drivers::apic::vectors;
use futures_util::task::AtomicWaker;
use sched::CpuId;

/// A user thread.
pub struct Thread {
    /// Thread id.
    pub tid: Pid,
    /// Its process.
    pub process: Arc<Process>,
    /// Blocked signals.
    pub sigmask: AtomicU64,
    /// Signals pending for this thread.
    pub pending: AtomicU64,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID` word, cleared and futex-woken at exit.
    pub clear_child_tid: AtomicU64,
    /// CPUs the thread may run on (bit per CPU).
    pub affinity: AtomicU64,
    /// The alternate signal stack (`sigaltstack`): base, size; size 0 = none.
    pub altstack: spin::Mutex<(u64, u64)>,
    /// Woken when the thread must leave a wait (signal or exit).
    pub interrupt_waker: AtomicWaker,
    /// The thread is asked to leave its current wait.
    interrupted: AtomicBool,
    /// The thread must exit (another thread of its process is in execve).
    exit_requested: AtomicBool,
    /// CPU the thread last ran on (for getcpu and reports).
    pub last_cpu: AtomicU64,
    /// CPUs the thread has run on (bit per CPU), for reports.
    pub cpus_used: AtomicU64,
    /// Its tid's slot in the task limits, given back at exit (a process's first thread
    /// has none: the process holds its pid until it is reaped).
    pub(super) task_slot: spin::Mutex<Option<super::limits::TaskSlot>>,
    /// Its NUMA policy (`set_mempolicy`; `None`: the default), inherited by the threads
    /// and processes it creates and kept across execve, as on Linux.
    pub mempolicy: spin::Mutex<Option<mm::aspace::MemPolicy>>,
    /// CPU time and page faults (getrusage `RUSAGE_THREAD`; folded into the process
    /// at exit).
    pub usage: super::rusage::Usage,
    /// The mask `rt_sigsuspend` replaced ([`NO_SAVED_SIGMASK`]: none): the next signal
    /// frame saves it instead of the current mask, so the handler's return restores
    /// it; if no handler runs, delivery puts it back at once (Linux's
    /// `set_restore_sigmask`).
    pub saved_sigmask: AtomicU64,
    /// The signals an `rt_sigtimedwait` of this thread is waiting for: they wake it and
    /// are never dropped as ignored (Linux's `real_blocked`).
    pub sigwait_set: AtomicU64,
    /// Since when (ns since boot) the thread has waited in the kernel; 0 while it runs.
    blocked_since: AtomicU64,
    /// What it waits for ([`Blocked`], encoded), valid while `blocked_since` is set.
    blocked_on: AtomicU64,
}

/// What a thread waits for in the kernel (for the hung-thread report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// A system call's wait (its number).
    Syscall(u64),
    /// A parked page fault: why, and the page.
    Fault(mm::fault::WaitReason, u64),
}

/// The wait reasons in [`Blocked::Fault`]'s encoding (the kind in the top byte, the
/// page address below).
const FAULT_KINDS: [&str; 5] = [
    "page locked",
    "memory",
    "userfaultfd",
    "swap-in",
    "page being read",
];

impl Blocked {
    fn encode(self) -> u64 {
        use mm::fault::WaitReason;
        match self {
            Blocked::Syscall(nr) => nr & 0xffff,
            Blocked::Fault(reason, addr) => {
                let kind: u64 = match reason {
                    WaitReason::PageLocked { .. } => 0,
                    WaitReason::Memory => 1,
                    WaitReason::Userfault { .. } => 2,
                    WaitReason::SwapIn { .. } => 3,
                    WaitReason::PageReading { .. } => 4,
                };
                ((kind + 1) << 56) | (addr & ((1 << 56) - 1))
            }
        }
    }
}

/// [`Thread::saved_sigmask`] when nothing is saved (a real mask never blocks SIGKILL).
pub const NO_SAVED_SIGMASK: u64 = u64::MAX;

/// A [`Blocked`] as the thread recorded it.
#[derive(Clone, Copy, Debug)]
pub struct BlockedOn(u64);

impl BlockedOn {
    /// Whether it is a parked page fault (not a system call's wait).
    pub fn is_fault(self) -> bool {
        self.0 >> 56 != 0
    }

    /// Whether it is system call `nr`'s wait.
    pub fn is_syscall(self, nr: u64) -> bool {
        self.0 == nr
    }
}

impl core::fmt::Display for BlockedOn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.0 >> 56) as usize {
            0 => write!(f, "system call {}", self.0),
            k => write!(
                f,
                "a page fault at {:#x} waiting for {}",
                self.0 & ((1 << 56) - 1),
                FAULT_KINDS.get(k - 1).copied().unwrap_or("?")
            ),
        }
    }
}

impl Thread {
    /// The thread starts waiting in the kernel for `on`.
    pub fn block(&self, on: Blocked) {
        self.blocked_on.store(on.encode(), Ordering::Relaxed);
        self.blocked_since
            .store(crate::time::now_ns().max(1), Ordering::Release);
    }

    /// The wait is over.
    pub fn unblock(&self) {
        self.blocked_since.store(0, Ordering::Release);
    }

    /// How long (ns) the thread has been waiting in the kernel and for what, if it is.
    pub fn blocked(&self) -> Option<(u64, BlockedOn)> {
        let since = self.blocked_since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let on = BlockedOn(self.blocked_on.load(Ordering::Relaxed));
        Some((crate::time::now_ns().saturating_sub(since), on))
    }

    /// A new thread of `process`: its first (`slot` `None`, tid = pid) or another one
    /// (with the slot of its tid).
    pub fn new(
        tid: Pid,
        process: Arc<Process>,
        sigmask: u64,
        affinity: u64,
        slot: Option<super::limits::TaskSlot>,
    ) -> Arc<Thread> {
        Arc::new(Thread {
            tid,
            process,
            sigmask: AtomicU64::new(sigmask),
            pending: AtomicU64::new(0),
            clear_child_tid: AtomicU64::new(0),
            affinity: AtomicU64::new(affinity),
            altstack: spin::Mutex::new((0, 0)),
            blocked_since: AtomicU64::new(0),
            blocked_on: AtomicU64::new(0),
            interrupt_waker: AtomicWaker::new(),
            interrupted: AtomicBool::new(false),
            exit_requested: AtomicBool::new(false),
            last_cpu: AtomicU64::new(0),
            cpus_used: AtomicU64::new(0),
            task_slot: spin::Mutex::new(slot),
            mempolicy: spin::Mutex::new(None),
            usage: super::rusage::Usage::new(),
            saved_sigmask: AtomicU64::new(NO_SAVED_SIGMASK),
            sigwait_set: AtomicU64::new(0),
        })
    }

    /// Asks the thread to leave any wait (a signal arrived or the process is exiting); if it
    /// is running user code on another CPU, that CPU is poked so it enters the kernel.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.interrupt_waker.wake();
        let cpu = self.last_cpu.load(Ordering::Relaxed) as u32;
        if let Some(target) = percpu::get(CpuId(cpu)) {
            if target.current_thread.load(Ordering::Relaxed) == self as *const Thread as u64
                && cpu != percpu::current_cpu().0
            {
                crate::arch::apic::send_ipi(target.apic_id, vectors::WAKE);
            }
        }
    }

    /// Makes the thread exit at its next return to the kernel loop (execve de-threading).
    pub fn request_exit(&self) {
        self.exit_requested.store(true, Ordering::SeqCst);
        self.interrupt();
    }

    /// Whether the thread is asked to exit ([`request_exit`](Self::request_exit)).
    pub fn exit_requested(&self) -> bool {
        self.exit_requested.load(Ordering::SeqCst)
    }

    /// Whether a wait should end early (and clears the request when it is only a signal
    /// that is no longer deliverable).
    pub fn is_interrupted(&self) -> bool {
        self.process.exiting.load(Ordering::SeqCst)
            || self.exit_requested.load(Ordering::SeqCst)
            || self.has_deliverable_signal()
            || self.interrupted.load(Ordering::SeqCst)
    }

    /// Clears a stale interrupt request before a new wait.
    pub fn clear_interrupt(&self) {
        self.interrupted.store(false, Ordering::SeqCst);
    }

    /// The thread must leave its loop: its process is exiting, or execve ends it.
    pub fn must_exit(&self) -> bool {
        self.process.exiting.load(Ordering::SeqCst) || self.exit_requested.load(Ordering::SeqCst)
    }

    /// Counts and lists a thread that is about to start running in its process.
    pub fn enter_process(self: &Arc<Self>) {
        self.process.live_threads.fetch_add(1, Ordering::SeqCst);
        self.process.threads_started.fetch_add(1, Ordering::Relaxed);
        self.process.threads.lock().push(self.clone());
    }

    /// Pending and unblocked signals exist (thread or process directed).
    pub fn has_deliverable_signal(&self) -> bool {
        self.pending.load(Ordering::SeqCst) & !self.sigmask.load(Ordering::SeqCst) != 0
    }
}
