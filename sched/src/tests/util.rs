//! Test helpers: a tiny waker-based channel, a deterministic LCG, a watchdog.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::host::HostMachine;

/// How long a test waits for its tasks before declaring a lost wake-up.
pub const WATCHDOG: Duration = Duration::from_secs(10);

/// Run `future` from the test thread; panic if it does not finish in time.
pub fn wait<F: Future>(machine: &HostMachine, future: F) -> F::Output {
    machine
        .block_on(future, WATCHDOG)
        .expect("watchdog: tasks did not finish (lost wake-up or hang)")
}

/// A multi-producer single-consumer unbounded channel woken through wakers.
pub struct Chan<T> {
    inner: Mutex<(VecDeque<T>, Option<Waker>)>,
}

impl<T> Chan<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new((VecDeque::new(), None)),
        })
    }

    pub fn send(&self, value: T) {
        let waker = {
            let mut inner = self.inner.lock().unwrap();
            inner.0.push_back(value);
            inner.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn recv(&self) -> Recv<'_, T> {
        Recv { chan: self }
    }
}

/// The future returned by [`Chan::recv`].
pub struct Recv<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut inner = self.chan.inner.lock().unwrap();
        match inner.0.pop_front() {
            Some(value) => Poll::Ready(value),
            None => {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Numerical Recipes' 64-bit LCG: deterministic, seedable, good enough to
/// pick targets.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Spin the CPU for `duration` (a CPU-bound task that never yields).
pub fn busy_for(duration: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        core::hint::spin_loop();
    }
}
