//! The scheduler: per-CPU queues, spawning, waking, work stealing and the
//! executor loop every CPU runs.
//!
//! Per CPU there are two run queues: the *inbox* for pinned tasks (spawned
//! with [`Scheduler::spawn_on`]; only that CPU pops it) and the *stealable*
//! queue for floating tasks (spawned with [`Scheduler::spawn`]; an idle CPU
//! may pop from it). Both are lock-free and take pushes from any CPU, so a
//! remote wake is a push plus, only if the target announced it is idle, one
//! kick (see `idle.rs`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll};

use crate::idle::IdleMask;
use crate::join::JoinHandle;
use crate::queue::{Pushed, RunQueue};
use crate::stats::{Counters, CpuStats};
use crate::task::{Task, TaskRef};
use crate::timer::TimerQueue;
use crate::{CpuId, Platform, MAX_CPUS};

/// Ring slots per run queue when built with [`Scheduler::new`]: waking never
/// allocates until more than this many tasks wait on one queue.
pub const DEFAULT_RING_CAPACITY: usize = 256;

/// The most tasks polled from one queue per loop iteration, so the inbox, the
/// stealable queue and the timers are all served in turn.
const POLL_BATCH: usize = 32;

/// The most timers fired per loop iteration.
const TIMER_BATCH: usize = 64;

/// `next_deadline_ns` when no timer is pending.
const NO_DEADLINE: u64 = u64::MAX;

/// A CPU inside one poll for longer than this is *stalled*: a long system call
/// (populating or unmapping a large range) or a vCPU the host has not run. Busy
/// CPUs then take its floating tasks and fire its due timers (see
/// `Scheduler::relieve_stalled`). A user thread's poll lasts up to one 10 ms slice
/// plus the system calls it makes, so two slices mark a stall.
pub const STALL_NS: u64 = 20_000_000;

/// Everything one CPU owns. Aligned so that two CPUs' hot fields never share a
/// cache line.
#[repr(align(128))]
struct PerCpu {
    /// Pinned tasks bound for this CPU.
    inbox: RunQueue<TaskRef>,
    /// Floating tasks queued here; other CPUs steal from it when idle.
    stealable: RunQueue<TaskRef>,
    /// Tasks woken during their own poll (a yield), held until the end of the
    /// loop iteration so that they run after everything already runnable here,
    /// whichever queue that is in.
    requeue: RunQueue<TaskRef>,
    /// This CPU's timers. This CPU locks it; a `Sleep` dropped elsewhere and a
    /// CPU relieving this one while it is stalled only `try_lock` it, so this
    /// CPU waits on it at most for their short turn: there is no global timer
    /// lock.
    timers: spin::Mutex<TimerQueue>,
    /// The earliest deadline in `timers` (`u64::MAX`: none), stored under its
    /// lock after every change, so a due timer is noticed with one load.
    next_deadline_ns: AtomicU64,
    /// When the poll this CPU is inside began (0: not polling), for other CPUs
    /// to tell a stalled CPU (see [`STALL_NS`]).
    poll_started_ns: AtomicU64,
    stats: Counters,
}

/// The per-CPU async executor for `cpu_count` CPUs.
///
/// Created once, then shared as `&'static Scheduler<P>` (the kernel keeps it
/// in a static `OnceCell`); every CPU calls [`Scheduler::run`] on it.
pub struct Scheduler<P: Platform> {
    platform: P,
    cpus: Box<[PerCpu]>,
    idle: IdleMask,
}

impl<P: Platform> Scheduler<P> {
    /// A scheduler for CPUs `0..cpu_count`, with [`DEFAULT_RING_CAPACITY`].
    ///
    /// Panics unless `1 <= cpu_count <= MAX_CPUS`.
    pub fn new(platform: P, cpu_count: usize) -> Self {
        Self::with_ring_capacity(platform, cpu_count, DEFAULT_RING_CAPACITY)
    }

    /// A scheduler whose run queues preallocate `ring_capacity` slots each
    /// (two queues per CPU, 24 bytes a slot).
    ///
    /// Panics unless `1 <= cpu_count <= MAX_CPUS` and `ring_capacity >= 1`.
    pub fn with_ring_capacity(platform: P, cpu_count: usize, ring_capacity: usize) -> Self {
        assert!(
            (1..=MAX_CPUS).contains(&cpu_count),
            "cpu_count {cpu_count} outside 1..={MAX_CPUS}"
        );
        assert!(ring_capacity >= 1, "ring_capacity must be at least 1");
        let cpus: Vec<PerCpu> = (0..cpu_count)
            .map(|_| PerCpu {
                inbox: RunQueue::new(ring_capacity),
                stealable: RunQueue::new(ring_capacity),
                requeue: RunQueue::new(ring_capacity),
                timers: spin::Mutex::new(TimerQueue::new()),
                next_deadline_ns: AtomicU64::new(NO_DEADLINE),
                poll_started_ns: AtomicU64::new(0),
                stats: Counters::default(),
            })
            .collect();
        Self {
            platform,
            cpus: cpus.into_boxed_slice(),
            idle: IdleMask::new(),
        }
    }

    /// The platform this scheduler runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// How many CPUs the scheduler drives.
    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// The CPU the caller runs on (asked of the platform).
    pub fn current_cpu(&self) -> CpuId {
        self.platform.current_cpu()
    }

    /// Monotonic nanoseconds since boot (asked of the platform).
    pub fn now_ns(&self) -> u64 {
        self.platform.now_ns()
    }

    /// A snapshot of `cpu`'s counters. Panics if `cpu` is not one of ours.
    pub fn stats(&self, cpu: CpuId) -> CpuStats {
        self.per_cpu(cpu).stats.snapshot()
    }

    /// Run `future` as a floating task: queued on the calling CPU, it may be
    /// stolen by an idle CPU, and a wake queues it on the CPU that polled it
    /// last. Called from outside any CPU, it is queued on CPU 0.
    ///
    /// One allocation (the task); no lock.
    pub fn spawn<F>(&'static self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let here = self.platform.current_cpu();
        let cpu = if self.is_ours(here) { here } else { CpuId(0) };
        self.spawn_task(future, cpu, false, here)
    }

    /// Run `future` as a task pinned to `cpu`: it is polled only there, and
    /// every wake queues it on that CPU's inbox (kicking it if idle).
    ///
    /// Panics if `cpu` is not one of this scheduler's CPUs.
    pub fn spawn_on<F>(&'static self, cpu: CpuId, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        assert!(
            self.is_ours(cpu),
            "spawn_on: {cpu} is not a CPU of this scheduler"
        );
        let here = self.platform.current_cpu();
        self.spawn_task(future, cpu, true, here)
    }

    fn spawn_task<F>(
        &'static self,
        future: F,
        cpu: CpuId,
        pinned: bool,
        here: CpuId,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = Arc::new(Task::new(future, cpu, pinned, self));
        let handle = JoinHandle::new(task.clone());
        self.per_cpu(cpu).stats.spawned.inc();
        self.enqueue(cpu, here, task);
        handle
    }

    /// Kick every idle CPU so that it re-evaluates its loop (for instance a
    /// [`Scheduler::run_until`] stop condition that just became true).
    pub fn unpark_all(&self) {
        let here = self.platform.current_cpu();
        let mask = self.idle.claim_all();
        for cpu in (0..self.cpus.len()).map(|c| CpuId(c as u32)) {
            if mask & (1 << cpu.0) != 0 && cpu != here {
                self.kick(cpu);
            }
        }
    }

    /// The executor loop of the calling CPU; never returns.
    ///
    /// Each iteration fires expired timers, polls a bounded batch from the
    /// pinned inbox and one from the stealable queue, relieves a stalled CPU
    /// (one of its floating tasks and its due timers), and only when all that
    /// found nothing steals one floating task from another CPU or, failing
    /// that, parks in [`Platform::idle`] until a kick or the next timer
    /// deadline.
    ///
    /// Panics if the calling CPU is not one of this scheduler's CPUs.
    pub fn run(&self) -> ! {
        self.run_loop(&|| false);
        unreachable!("the executor loop only returns when asked to stop")
    }

    /// [`Scheduler::run`], returning once `stop()` is true.
    ///
    /// `stop` is checked once per iteration and before parking; a parked CPU
    /// re-checks it only when kicked, so whoever makes it true should call
    /// [`Scheduler::unpark_all`] afterwards.
    pub fn run_until(&self, stop: impl Fn() -> bool) {
        self.run_loop(&stop);
    }

    fn run_loop(&self, stop: &dyn Fn() -> bool) {
        let cpu = self.platform.current_cpu();
        assert!(self.is_ours(cpu), "{cpu}: not a CPU of this scheduler");
        log::debug!("{cpu}: executor loop started");
        let local = self.per_cpu(cpu);
        while !stop() {
            let mut progress = self.fire_timers(cpu);
            progress += self.poll_batch(cpu, &local.inbox);
            progress += self.poll_batch(cpu, &local.stealable);
            progress += self.relieve_stalled(cpu);
            while let Some(task) = local.requeue.pop() {
                self.enqueue(cpu, cpu, task);
            }
            if progress > 0 {
                continue;
            }
            if let Some(task) = self.steal(cpu) {
                local.stats.steals.inc();
                self.poll_task(cpu, task);
                if let Some(task) = local.requeue.pop() {
                    self.enqueue(cpu, cpu, task);
                }
                continue;
            }
            self.park(cpu, stop);
        }
        log::debug!("{cpu}: executor loop stopped");
    }

    /// Poll up to `POLL_BATCH` tasks from `queue`, and no more than it held on
    /// entry: a task that yields goes to the back and waits for the next batch,
    /// so the other queue and the timers get their turn between its slices.
    /// Returns how many were polled.
    fn poll_batch(&self, cpu: CpuId, queue: &RunQueue<TaskRef>) -> usize {
        let limit = queue.len().min(POLL_BATCH);
        let mut polled = 0;
        while polled < limit {
            let Some(task) = queue.pop() else { break };
            self.poll_task(cpu, task);
            polled += 1;
        }
        polled
    }

    /// Poll one task taken off a queue; if it was woken while running, hold it
    /// for the end of the loop iteration (see `PerCpu::requeue`).
    fn poll_task(&self, cpu: CpuId, task: TaskRef) {
        let header = task.header();
        header.state.begin_poll();
        header.set_running_on(cpu);
        let local = self.per_cpu(cpu);
        local.stats.polls.inc();
        local
            .poll_started_ns
            .store(self.platform.now_ns().max(1), Ordering::Relaxed);
        let waker = task.clone().into_waker();
        let ready = task.poll(&mut Context::from_waker(&waker));
        local.poll_started_ns.store(0, Ordering::Relaxed);
        drop(waker);
        // A poll may have run a user thread's whole slice: timers that came due
        // meanwhile fire now, so the tasks they wake queue ahead of this one if
        // it yielded.
        if self.timer_due(cpu) {
            self.fire_timers(cpu);
        }
        if ready == Poll::Pending && task.header().state.end_poll_pending() {
            self.per_cpu(cpu).requeue.push(task);
        }
    }

    /// Relieves every other CPU that has been inside one poll for over
    /// [`STALL_NS`] (a system call that runs long without awaiting, or a vCPU
    /// the host descheduled): fires its due timers (if its timer lock is free)
    /// and runs one of its floating tasks here, so a long system call on one
    /// CPU does not hold back the threads and sleepers queued behind it while
    /// this CPU is busy too (an idle CPU steals anyway). Returns the tasks run.
    fn relieve_stalled(&self, cpu: CpuId) -> usize {
        let n = self.cpus.len();
        if n == 1 {
            return 0;
        }
        let now_ns = self.platform.now_ns();
        let mut ran = 0;
        for i in 1..n {
            let victim_id = CpuId(((cpu.index() + i) % n) as u32);
            let victim = self.per_cpu(victim_id);
            let since = victim.poll_started_ns.load(Ordering::Relaxed);
            if since == 0 || now_ns.saturating_sub(since) < STALL_NS {
                continue;
            }
            self.fire_timers_of_stalled(victim_id, now_ns);
            if let Some(task) = victim.stealable.pop() {
                self.per_cpu(cpu).stats.stall_steals.inc();
                self.poll_task(cpu, task);
                ran += 1;
            }
        }
        ran
    }

    /// Fires up to `TIMER_BATCH` due timers of the stalled `victim`, if its
    /// timer lock is free; the tasks they wake queue on `victim` as usual, where
    /// [`Scheduler::relieve_stalled`] finds the floating ones.
    fn fire_timers_of_stalled(&self, victim: CpuId, now_ns: u64) {
        if self.next_timer_ns(victim).is_none_or(|d| d > now_ns) {
            return;
        }
        let mut fired = 0;
        while fired < TIMER_BATCH {
            let Some(Some(waker)) = self.try_with_timers(victim, |t| t.pop_expired(now_ns)) else {
                break;
            };
            waker.wake();
            fired += 1;
        }
        self.per_cpu(victim).stats.timers_fired.add(fired as u64);
    }

    /// Take one floating task from another CPU's stealable queue, searching
    /// upwards from `cpu` so thieves spread over victims.
    fn steal(&self, cpu: CpuId) -> Option<TaskRef> {
        let n = self.cpus.len();
        (1..n)
            .map(|i| &self.cpus[(cpu.index() + i) % n])
            .find_map(|victim| victim.stealable.pop())
    }

    /// Whether a task other than the one `cpu` is polling could run there now:
    /// a queued task (its own, or one to steal) or a due timer. What a
    /// `sched_yield` asks before giving the CPU away.
    pub fn has_other_work(&self, cpu: CpuId) -> bool {
        self.has_work(cpu) || !self.per_cpu(cpu).requeue.is_empty() || self.timer_due(cpu)
    }

    /// Whether a task waits in `cpu`'s own queues (its inbox or its stealable queue),
    /// where a task polled there next would find it.
    pub fn has_local_work(&self, cpu: CpuId) -> bool {
        let local = self.per_cpu(cpu);
        !local.inbox.is_empty() || !local.stealable.is_empty()
    }

    /// Whether `cpu` has anything to run, its own queues or a steal.
    fn has_work(&self, cpu: CpuId) -> bool {
        !self.per_cpu(cpu).inbox.is_empty() || self.cpus.iter().any(|any| !any.stealable.is_empty())
    }

    /// Announce `cpu` idle, re-check, and park until a kick or the next timer.
    fn park(&self, cpu: CpuId, stop: &dyn Fn() -> bool) {
        let local = self.per_cpu(cpu);
        self.idle.announce(cpu);
        let deadline_ns = self.next_timer_ns(cpu);
        let timer_due = deadline_ns.is_some_and(|d| d <= self.platform.now_ns());
        if timer_due || stop() || self.has_work(cpu) {
            self.idle.withdraw(cpu);
            return;
        }
        local.stats.idles.inc();
        let still_idle = || self.idle.is_announced(cpu) && !stop() && !self.has_work(cpu);
        self.platform.idle(deadline_ns, &still_idle);
        self.idle.withdraw(cpu);
    }

    /// The earliest pending timer deadline on `cpu` (one load, no lock).
    pub fn next_timer_ns(&self, cpu: CpuId) -> Option<u64> {
        let deadline = self.per_cpu(cpu).next_deadline_ns.load(Ordering::Acquire);
        (deadline != NO_DEADLINE).then_some(deadline)
    }

    /// Whether a timer of `cpu` has reached its deadline (one load, and a clock
    /// read only when a timer is pending).
    pub fn timer_due(&self, cpu: CpuId) -> bool {
        self.next_timer_ns(cpu)
            .is_some_and(|deadline| deadline <= self.platform.now_ns())
    }

    /// Fire up to `TIMER_BATCH` of `cpu`'s expired timers; returns how many.
    fn fire_timers(&self, cpu: CpuId) -> usize {
        let local = self.per_cpu(cpu);
        let Some(deadline) = self.next_timer_ns(cpu) else {
            return 0;
        };
        let now_ns = self.platform.now_ns();
        // Nothing due (the common case on every loop iteration): no lock taken.
        if deadline > now_ns {
            return 0;
        }
        let mut fired = 0;
        while fired < TIMER_BATCH {
            // Wake outside the lock: a wake may run arbitrary waker code.
            let Some(waker) = self.with_timers(cpu, |timers| timers.pop_expired(now_ns)) else {
                break;
            };
            waker.wake();
            fired += 1;
        }
        local.stats.timers_fired.add(fired as u64);
        fired
    }

    /// Queue a task that a waker moved from idle to scheduled.
    pub(crate) fn schedule(&self, task: TaskRef) {
        let target = task.header().cpu();
        let here = self.count_wake(target);
        self.enqueue(target, here, task);
    }

    /// Count a wake of a task bound for `target`, local or remote; returns
    /// the waker's CPU.
    pub(crate) fn count_wake(&self, target: CpuId) -> CpuId {
        let here = self.platform.current_cpu();
        let stats = &self.per_cpu(target).stats;
        if here == target {
            stats.local_wakes.inc();
        } else {
            stats.remote_wakes.inc();
        }
        here
    }

    /// Push `task` on `target`'s queue (inbox if pinned, stealable otherwise)
    /// and make sure some CPU will run it: kick `target` if it announced idle;
    /// if it is busy and floating work is piling up behind it, kick one idle
    /// thief instead. Allocation-free unless the ring is full.
    fn enqueue(&self, target: CpuId, here: CpuId, task: TaskRef) {
        let pinned = task.header().is_pinned();
        let local = self.per_cpu(target);
        let queue = if pinned {
            &local.inbox
        } else {
            &local.stealable
        };
        if queue.push(task) == Pushed::Overflow {
            local.stats.ring_overflows.inc();
        }
        self.idle.after_push();
        if self.idle.claim(target) {
            // A CPU waking its own task while announced idle is an interrupt
            // handler on that CPU: `idle` returns after it, no IPI needed.
            if target != here {
                self.kick(target);
            }
        } else if !pinned && queue.len() > 1 {
            if let Some(thief) = self.idle.claim_other(target) {
                if thief != here {
                    self.kick(thief);
                }
            }
        }
    }

    fn kick(&self, cpu: CpuId) {
        self.per_cpu(cpu).stats.kicks.inc();
        self.platform.kick(cpu);
    }

    fn is_ours(&self, cpu: CpuId) -> bool {
        cpu.index() < self.cpus.len()
    }

    fn per_cpu(&self, cpu: CpuId) -> &PerCpu {
        &self.cpus[cpu.index()]
    }

    /// Runs `change` on `cpu`'s timer queue under its lock, then publishes the
    /// queue's earliest deadline (for [`Scheduler::next_timer_ns`]).
    pub(crate) fn with_timers<R>(
        &self,
        cpu: CpuId,
        change: impl FnOnce(&mut TimerQueue) -> R,
    ) -> R {
        let local = self.per_cpu(cpu);
        let mut timers = local.timers.lock();
        let result = change(&mut timers);
        Self::publish_deadline(local, &timers);
        result
    }

    /// [`Scheduler::with_timers`] if the lock is free right now (for drops,
    /// which must never spin); `None` if it was held.
    pub(crate) fn try_with_timers<R>(
        &self,
        cpu: CpuId,
        change: impl FnOnce(&mut TimerQueue) -> R,
    ) -> Option<R> {
        let local = self.per_cpu(cpu);
        let mut timers = local.timers.try_lock()?;
        let result = change(&mut timers);
        Self::publish_deadline(local, &timers);
        Some(result)
    }

    fn publish_deadline(local: &PerCpu, timers: &TimerQueue) {
        let deadline = timers.next_deadline_ns().unwrap_or(NO_DEADLINE);
        local.next_deadline_ns.store(deadline, Ordering::Release);
    }
}

impl<P: Platform> fmt::Debug for Scheduler<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("cpu_count", &self.cpus.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    //! The idle protocol, driven step by step on the calling thread.

    use super::*;
    use crate::host::HostPlatform;
    use std::boxed::Box;
    use std::thread;
    use std::time::{Duration, Instant};

    fn scheduler(cpus: usize) -> &'static Scheduler<HostPlatform> {
        Box::leak(Box::new(Scheduler::new(HostPlatform::new(cpus), cpus)))
    }

    /// Park `cpu` on its own thread; true if it came back within 2 s.
    fn park_returns(
        sched: &'static Scheduler<HostPlatform>,
        cpu: CpuId,
        before: impl FnOnce(),
    ) -> bool {
        let parked = thread::spawn(move || {
            HostPlatform::enter_cpu(cpu);
            sched.park(cpu, &|| false);
        });
        before();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !parked.is_finished() {
            if Instant::now() > deadline {
                return false; // the thread stays parked; the test fails
            }
            thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn work_queued_before_the_announcement_is_not_slept_on() {
        // Pushed while CPU 0 was busy: nobody kicks it, its own checks must see the task.
        let sched = scheduler(2);
        drop(sched.spawn_on(CpuId(0), async {}));
        assert!(
            park_returns(sched, CpuId(0), || {}),
            "parked on a non-empty inbox"
        );
        assert_eq!(sched.stats(CpuId(0)).kicks, 0, "a busy CPU is never kicked");
    }

    #[test]
    fn local_work_is_only_what_waits_in_the_cpus_own_queues() {
        let sched = scheduler(2);
        assert!(!sched.has_local_work(CpuId(0)) && !sched.has_local_work(CpuId(1)));
        // A floating task queued on CPU 1: local there, stealable (other work) for 0.
        thread::spawn(move || {
            HostPlatform::enter_cpu(CpuId(1));
            drop(sched.spawn(async {}));
        })
        .join()
        .unwrap();
        assert!(sched.has_local_work(CpuId(1)));
        assert!(!sched.has_local_work(CpuId(0)));
        assert!(sched.has_other_work(CpuId(0)), "CPU 0 could steal it");
        // A task pinned to CPU 0.
        drop(sched.spawn_on(CpuId(0), async {}));
        assert!(sched.has_local_work(CpuId(0)));
    }

    #[test]
    fn stealable_work_elsewhere_keeps_an_idle_cpu_awake() {
        let sched = scheduler(2);
        thread::spawn(move || {
            HostPlatform::enter_cpu(CpuId(1));
            drop(sched.spawn(async {}));
        })
        .join()
        .unwrap();
        assert!(
            park_returns(sched, CpuId(0), || {}),
            "parked while cpu1 had stealable work"
        );
    }

    #[test]
    fn a_parked_cpu_is_kicked_exactly_once_by_a_remote_push() {
        let sched = scheduler(2);
        let returned = park_returns(sched, CpuId(0), || {
            while !sched.idle.is_announced(CpuId(0)) {
                thread::yield_now();
            }
            drop(sched.spawn_on(CpuId(0), async {}));
            drop(sched.spawn_on(CpuId(0), async {}));
        });
        assert!(returned, "the kick did not wake the parked CPU");
        assert_eq!(
            sched.stats(CpuId(0)).kicks,
            1,
            "one kick per idle announcement"
        );
    }
}
