//! `yield_now`: give the CPU to every task already waiting, then continue.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// Let every task already queued on this CPU run before the caller continues.
///
/// The task wakes itself while running, so the executor puts it at the back of
/// its queue once (see `state.rs`).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
