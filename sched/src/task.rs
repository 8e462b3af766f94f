//! A task: one allocation holding its scheduling header, its future (later its
//! output), the joiner's waker, and the waker that re-queues it.
//!
//! This file holds the crate's only `unsafe`: the future is pinned in place
//! inside the task's `Arc`, instead of in a second `Box`, so a spawn costs one
//! allocation.

use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;

use crate::join::Join;
use crate::state::{TaskState, Wake as WakeOutcome};
use crate::CpuId;

/// A type-erased reference to a task, as the queues hold it.
pub(crate) type TaskRef = Arc<dyn Runnable>;

/// Where a woken task goes back to be run: the executor as its tasks' wakers see
/// it (the `Scheduler` implements it in `requeue.rs`; a task knows no more of it).
pub(crate) trait RunQueues: Sync + 'static {
    /// Queue a task that a waker moved from idle to scheduled.
    fn schedule(&self, task: TaskRef);
    /// Count a wake of a task bound for `target` that needed no queueing (it was
    /// already queued or running).
    fn count_wake(&self, target: CpuId);
}

/// What the executor and the queues know about every task.
pub(crate) struct Header {
    /// The state machine that makes wakes idempotent.
    pub(crate) state: TaskState,
    /// Pinned tasks always run on `cpu`; floating ones may be stolen.
    pinned: bool,
    /// Pinned: the home CPU. Floating: the CPU that polled it last (or its
    /// spawner), where its wakes queue it: its data is warm there, and the
    /// waker need not be on a CPU at all.
    cpu: AtomicU32,
}

impl Header {
    /// A header for a task about to be queued on `cpu`.
    pub(crate) fn new(cpu: CpuId, pinned: bool) -> Self {
        Self {
            state: TaskState::new_scheduled(),
            pinned,
            cpu: AtomicU32::new(cpu.0),
        }
    }

    /// Whether the task may only run on its home CPU.
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// The CPU a wake queues the task on.
    pub(crate) fn cpu(&self) -> CpuId {
        CpuId(self.cpu.load(Ordering::Relaxed))
    }

    /// The executor on `cpu` is polling the task (floating tasks follow it).
    ///
    /// Relaxed is enough: a waker reads it after reading the state the
    /// executor published with release ordering at the end of this poll.
    pub(crate) fn set_running_on(&self, cpu: CpuId) {
        if !self.pinned {
            self.cpu.store(cpu.0, Ordering::Relaxed);
        }
    }
}

/// A task as the executor drives it, whatever its future type.
pub(crate) trait Runnable: Send + Sync + 'static {
    /// Scheduling data.
    fn header(&self) -> &Header;
    /// A waker that re-queues this task.
    fn into_waker(self: Arc<Self>) -> Waker;
    /// Poll the future once (the caller moved the state to running). On
    /// `Ready` the output is stored, the task is DONE and its joiner woken.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()>;
}

/// What the task's cell holds over its life.
enum Stage<F: Future> {
    /// Not finished: the future, pinned in place (never moved out).
    Running(F),
    /// Finished: the output, waiting for the `JoinHandle`.
    Finished(F::Output),
    /// The `JoinHandle` took the output.
    Consumed,
}

/// The single allocation behind a spawned future.
pub(crate) struct Task<F: Future, Q: RunQueues> {
    header: Header,
    /// Locked only by the executor polling the task (the state machine makes
    /// that one CPU at a time) and by the joiner after DONE: uncontended.
    stage: spin::Mutex<Stage<F>>,
    joiner: AtomicWaker,
    sched: &'static Q,
}

impl<F, Q> Task<F, Q>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    Q: RunQueues,
{
    /// A task about to be queued on `cpu`.
    pub(crate) fn new(future: F, cpu: CpuId, pinned: bool, sched: &'static Q) -> Self {
        Self {
            header: Header::new(cpu, pinned),
            stage: spin::Mutex::new(Stage::Running(future)),
            joiner: AtomicWaker::new(),
            sched,
        }
    }
}

impl<F, Q> Runnable for Task<F, Q>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    Q: RunQueues,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn into_waker(self: Arc<Self>) -> Waker {
        Waker::from(self)
    }

    #[allow(unsafe_code)]
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut stage = self.stage.lock();
        let Stage::Running(future) = &mut *stage else {
            debug_assert!(false, "polled a finished task");
            return Poll::Ready(());
        };
        // SAFETY: `future` lives inside this task's `Arc` allocation, which
        // never moves; no code moves it out of `Stage::Running` (the stage is
        // only ever overwritten in place below, which drops the future where
        // it is, or dropped with the task). So it stays at this address until
        // it is dropped, which is what `Pin` requires.
        let future = unsafe { Pin::new_unchecked(future) };
        match future.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                *stage = Stage::Finished(output);
                drop(stage);
                self.header.state.complete();
                self.joiner.wake();
                Poll::Ready(())
            }
        }
    }
}

impl<F, Q> Wake for Task<F, Q>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    Q: RunQueues,
{
    fn wake(self: Arc<Self>) {
        match self.header.state.wake() {
            WakeOutcome::Queue => self.sched.schedule(self),
            WakeOutcome::Notified => {
                self.sched.count_wake(self.header.cpu());
            }
            WakeOutcome::Redundant => {}
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.header.state.wake() {
            WakeOutcome::Queue => self.sched.schedule(self.clone()),
            WakeOutcome::Notified => {
                self.sched.count_wake(self.header.cpu());
            }
            WakeOutcome::Redundant => {}
        }
    }
}

impl<F, Q> Join<F::Output> for Task<F, Q>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    Q: RunQueues,
{
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.header.state.is_done() {
            self.joiner.register(cx.waker());
            // Re-check: completion may have happened before the register.
            if !self.header.state.is_done() {
                return Poll::Pending;
            }
        }
        let mut stage = self.stage.lock();
        // DONE is published after the output is stored, so the stage is
        // Finished, or Consumed if the handle is polled again. Checked before
        // replacing so that a pinned future could never be moved out.
        if !matches!(*stage, Stage::Finished(_)) {
            panic!("JoinHandle polled after it returned");
        }
        match core::mem::replace(&mut *stage, Stage::Consumed) {
            Stage::Finished(output) => Poll::Ready(output),
            Stage::Running(_) | Stage::Consumed => unreachable!(),
        }
    }

    fn is_finished(&self) -> bool {
        self.header.state.is_done()
    }
}
