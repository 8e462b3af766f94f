//! `JoinHandle`: await a spawned task's output, or drop it to detach the task.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// The joinable side of a task, whatever its future type.
pub(crate) trait Join<T>: Send + Sync {
    /// Ready with the output once the task completed (registers `cx`'s waker otherwise).
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<T>;
    /// Whether the task completed.
    fn is_finished(&self) -> bool;
}

/// Owned permission to await a spawned task's output.
///
/// A future yielding the task's output. Dropping it detaches the task: the
/// task still runs to completion and its output is dropped with the task.
/// Awaiting it again after it returned panics.
#[must_use = "dropping a JoinHandle detaches the task; use `drop(handle)` to say so"]
pub struct JoinHandle<T> {
    task: Arc<dyn Join<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Arc<dyn Join<T>>) -> Self {
        Self { task }
    }

    /// Whether the task completed (its output is ready to be taken).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.task.poll_join(cx)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
