//! A host `Platform`: std threads stand in for CPUs, a condition variable for
//! `hlt` and the wake IPI. For host tests of this crate and of crates whose
//! futures run on it (feature `host`); never built into the kernel.
//!
//! [`HostMachine::boot`] starts one thread per CPU running the executor loop;
//! the test thread itself is not a CPU and waits for results with
//! [`HostMachine::block_on`], which gives up after a timeout so that a lost
//! wake-up fails a test instead of hanging it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::{CpuId, Platform, Scheduler};

std::thread_local! {
    /// The CPU this thread plays, like the kernel's GS-based per-CPU data.
    static CURRENT_CPU: Cell<CpuId> = const { Cell::new(HostPlatform::NOT_A_CPU) };
}

/// One simulated CPU's wake-up line.
#[derive(Default)]
struct HostCpu {
    /// A kick arrived and `idle` has not consumed it yet (the pending IPI).
    kicked: Mutex<bool>,
    wakeup: Condvar,
    idle_calls: AtomicU64,
    kicks: AtomicU64,
}

/// The std-thread [`Platform`].
pub struct HostPlatform {
    cpus: Box<[HostCpu]>,
    epoch: Instant,
}

impl HostPlatform {
    /// What [`Platform::current_cpu`] returns on a thread that is not a CPU.
    pub const NOT_A_CPU: CpuId = CpuId(u32::MAX);

    /// A platform with `cpu_count` CPUs; the clock starts now.
    pub fn new(cpu_count: usize) -> Self {
        Self {
            cpus: (0..cpu_count).map(|_| HostCpu::default()).collect(),
            epoch: Instant::now(),
        }
    }

    /// Make the calling thread play `cpu` from now on.
    pub fn enter_cpu(cpu: CpuId) {
        CURRENT_CPU.with(|c| c.set(cpu));
    }

    /// How many times `cpu` called [`Platform::idle`].
    pub fn idle_calls(&self, cpu: CpuId) -> u64 {
        self.cpus[cpu.index()].idle_calls.load(Ordering::Relaxed)
    }

    /// How many kicks `cpu` received.
    pub fn kicks(&self, cpu: CpuId) -> u64 {
        self.cpus[cpu.index()].kicks.load(Ordering::Relaxed)
    }
}

impl Platform for HostPlatform {
    fn current_cpu(&self) -> CpuId {
        CURRENT_CPU.with(Cell::get)
    }

    fn kick(&self, cpu: CpuId) {
        let line = &self.cpus[cpu.index()];
        line.kicks.fetch_add(1, Ordering::Relaxed);
        *line.kicked.lock().unwrap_or_else(PoisonError::into_inner) = true;
        line.wakeup.notify_one();
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn idle(&self, deadline_ns: Option<u64>, still_idle: &dyn Fn() -> bool) {
        let line = &self.cpus[self.current_cpu().index()];
        line.idle_calls.fetch_add(1, Ordering::Relaxed);
        // Holding the lock plays `cli`: a kick cannot slip in between the
        // check and the wait.
        let mut kicked = line.kicked.lock().unwrap_or_else(PoisonError::into_inner);
        if !*kicked && !still_idle() {
            return;
        }
        while !*kicked {
            let now_ns = self.now_ns();
            kicked = match deadline_ns {
                None => line
                    .wakeup
                    .wait(kicked)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) if d > now_ns => {
                    let timeout = Duration::from_nanos(d - now_ns);
                    line.wakeup
                        .wait_timeout(kicked, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                Some(_) => return,
            };
        }
        *kicked = false;
    }
}

/// A booted host machine: a scheduler and one std thread per CPU running its loop.
pub struct HostMachine {
    sched: &'static Scheduler<HostPlatform>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl HostMachine {
    /// Boot `cpu_count` CPUs on a new scheduler (leaked: it must be `'static`).
    pub fn boot(cpu_count: usize) -> Self {
        let sched = Scheduler::new(HostPlatform::new(cpu_count), cpu_count);
        Self::boot_with(Box::leak(Box::new(sched)))
    }

    /// Start one thread per CPU of `sched`.
    pub fn boot_with(sched: &'static Scheduler<HostPlatform>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..sched.cpu_count())
            .map(|i| {
                let stop = stop.clone();
                thread::Builder::new()
                    .name(std::format!("cpu{i}"))
                    .spawn(move || {
                        HostPlatform::enter_cpu(CpuId(i as u32));
                        sched.run_until(|| stop.load(Ordering::SeqCst));
                    })
                    .expect("spawn a CPU thread")
            })
            .collect();
        Self {
            sched,
            stop,
            threads,
        }
    }

    /// The machine's scheduler.
    pub fn sched(&self) -> &'static Scheduler<HostPlatform> {
        self.sched
    }

    /// Poll `future` on the calling (non-CPU) thread until it completes, or
    /// return `None` after `timeout`.
    pub fn block_on<F: Future>(&self, future: F, timeout: Duration) -> Option<F::Output> {
        block_on_timeout(future, timeout)
    }

    /// Stop every CPU loop and join the threads; panics if one does not stop
    /// within 5 s (a task that never yields).
    pub fn shutdown(mut self) {
        self.request_stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        for t in self.threads.drain(..) {
            while !t.is_finished() {
                assert!(Instant::now() < deadline, "a CPU thread did not stop");
                thread::sleep(Duration::from_millis(1));
            }
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.sched.unpark_all();
    }
}

impl Drop for HostMachine {
    /// Without `shutdown` (a failed test): ask the CPUs to stop, do not wait.
    fn drop(&mut self) {
        self.request_stop();
    }
}

/// Wakes a blocked non-CPU thread.
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Poll `future` on this thread until it completes, or `None` after `timeout`.
pub fn block_on_timeout<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let signal = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        loop {
            // Checked even when woken: a future that keeps waking itself must
            // still time out.
            let left = deadline.checked_duration_since(Instant::now())?;
            if signal.woken.swap(false, Ordering::SeqCst) {
                break;
            }
            thread::park_timeout(left);
        }
    }
}
