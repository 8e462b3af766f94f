//! The task state machine: which of idle, scheduled, running, running+notified
//! or done a task is in, so that every wake queues a task at most once.
//!
//! ```text
//!            wake                 pop                poll → Pending
//!   IDLE ───────────▶ SCHEDULED ───────▶ RUNNING ─────────────────────▶ IDLE
//!    ▲                  ▲  (wake: no-op)   │  │ wake                poll → Ready
//!    │                  │                  │  ▼                          │
//!    │                  └──── requeue ──── NOTIFIED  (wake: no-op)       ▼
//!    │                       (poll → Pending)   └──── poll → Ready ───▶ DONE (wake: no-op)
//! ```
//!
//! Only a wake that moves IDLE → SCHEDULED puts the task on a queue; only the
//! executor that polled it re-queues a NOTIFIED task, once, after the poll. So
//! a task is on at most one queue at a time and is never polled concurrently,
//! and a DONE task is never polled again.

use core::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// What a wake did to a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// It was idle and is now scheduled: the waker must queue it.
    Queue,
    /// It was running: its executor re-queues it after the poll.
    Notified,
    /// Already scheduled, already notified, or done: nothing changed.
    Redundant,
}

/// The atomic state of one task.
pub(crate) struct TaskState(AtomicU8);

impl TaskState {
    /// A freshly spawned task: it is about to be pushed to a queue.
    pub(crate) const fn new_scheduled() -> Self {
        Self(AtomicU8::new(SCHEDULED))
    }

    /// Record a wake and say what the waker must do.
    ///
    /// Every wake is a read-modify-write, even the no-op ones (writing the
    /// same value back), so whatever the waker wrote before waking
    /// happens-before the poll that follows: that poll's own read-modify-write
    /// on this state reads from the wake's.
    pub(crate) fn wake(&self) -> Wake {
        let previous = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| match s {
                IDLE => Some(SCHEDULED),
                RUNNING => Some(NOTIFIED),
                DONE => None,
                other => Some(other),
            });
        match previous {
            Ok(IDLE) => Wake::Queue,
            Ok(RUNNING) => Wake::Notified,
            _ => Wake::Redundant,
        }
    }

    /// The executor took the task off a queue and is about to poll it.
    pub(crate) fn begin_poll(&self) {
        let previous = self.0.swap(RUNNING, Ordering::AcqRel);
        debug_assert_eq!(previous, SCHEDULED, "polled a task that was not scheduled");
    }

    /// The poll returned `Pending`. Returns true when a wake arrived during
    /// the poll: the task is SCHEDULED again and the caller must re-queue it.
    pub(crate) fn end_poll_pending(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(actual) => {
                debug_assert_eq!(actual, NOTIFIED);
                self.0.store(SCHEDULED, Ordering::Release);
                true
            }
        }
    }

    /// The poll returned `Ready`: the task is done for good.
    pub(crate) fn complete(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    /// Whether the task completed (its output, if any, is readable).
    pub(crate) fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) == DONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;

    #[test]
    fn wake_while_idle_schedules_once() {
        let s = TaskState::new_scheduled();
        s.begin_poll();
        assert!(!s.end_poll_pending());
        assert_eq!(
            s.wake(),
            Wake::Queue,
            "first wake of an idle task queues it"
        );
        assert_eq!(
            s.wake(),
            Wake::Redundant,
            "a wake while scheduled is a no-op"
        );
        s.begin_poll();
        assert!(!s.end_poll_pending());
    }

    #[test]
    fn wakes_while_running_requeue_exactly_once() {
        let s = TaskState::new_scheduled();
        s.begin_poll();
        assert_eq!(s.wake(), Wake::Notified);
        assert_eq!(s.wake(), Wake::Redundant);
        assert!(s.end_poll_pending(), "notified during poll: requeue");
        assert_eq!(s.wake(), Wake::Redundant, "now scheduled: no-op");
        s.begin_poll();
        assert!(
            !s.end_poll_pending(),
            "no wake during this poll: stays idle"
        );
    }

    #[test]
    fn done_ignores_wakes() {
        let s = TaskState::new_scheduled();
        s.begin_poll();
        s.wake();
        s.complete();
        assert!(s.is_done());
        assert_eq!(s.wake(), Wake::Redundant);
        assert!(s.is_done());
    }

    /// Two threads hammer wakes while the "executor" polls: the number of
    /// queue insertions equals the number of polls that follow, never more.
    #[test]
    fn concurrent_wakes_never_double_queue() {
        let state = Arc::new(TaskState::new_scheduled());
        let queued = Arc::new(AtomicUsize::new(1)); // the spawn
        let stop = Arc::new(AtomicBool::new(false));
        let wakers: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let (state, queued, stop) = (state.clone(), queued.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if state.wake() == Wake::Queue {
                            queued.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        let mut polls = 0usize;
        let mut pending_in_queue = true;
        for _ in 0..20_000 {
            if pending_in_queue {
                state.begin_poll();
                polls += 1;
                pending_in_queue = state.end_poll_pending();
                if pending_in_queue {
                    queued.fetch_add(1, Ordering::SeqCst);
                }
            }
            // The task is either queued by us (requeue) or by a waker; observe.
            if !pending_in_queue && queued.load(Ordering::SeqCst) > polls {
                pending_in_queue = true;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in wakers {
            w.join().unwrap();
        }
        let queued = queued.load(Ordering::SeqCst);
        // A waker may have queued the task after our last look.
        let outstanding = usize::from(pending_in_queue || queued > polls);
        assert_eq!(
            queued,
            polls + outstanding,
            "each queue insertion is polled once"
        );
    }
}
