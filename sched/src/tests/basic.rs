//! Spawn, join, the task state machine seen from outside, foreign-thread wakes.

use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::boxed::Box;
use std::string::String;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use super::util::{wait, Chan};
use crate::host::HostMachine;
use crate::CpuId;

#[test]
fn spawn_and_join_on_one_cpu() {
    let m = HostMachine::boot(1);
    let sched = m.sched();
    let pinned = sched.spawn_on(CpuId(0), async { 6 * 7 });
    // Spawned from a thread that is not a CPU: lands on CPU 0.
    let floating = sched.spawn(async move { String::from("floating") });
    let nested = sched.spawn_on(CpuId(0), async move {
        let child = sched.spawn(async { 1u64 << 40 });
        child.await + 1
    });
    assert_eq!(wait(&m, pinned), 42);
    assert_eq!(wait(&m, floating), "floating");
    assert_eq!(wait(&m, nested), (1 << 40) + 1);
    let stats = sched.stats(CpuId(0));
    assert_eq!(stats.spawned, 4);
    assert!(stats.polls >= 4);
    m.shutdown();
}

#[test]
fn dropped_handle_detaches_but_task_runs() {
    let m = HostMachine::boot(2);
    let sched = m.sched();
    let chan = Chan::new();
    let tx = chan.clone();
    drop(sched.spawn_on(CpuId(1), async move { tx.send(7u32) }));
    assert_eq!(wait(&m, chan.recv()), 7);
    m.shutdown();
}

/// A future that records its polls and obeys a script.
struct Scripted {
    polls: Arc<AtomicUsize>,
    saved: Arc<Mutex<Option<Waker>>>,
}

impl Future for Scripted {
    type Output = &'static str;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.polls.fetch_add(1, Ordering::SeqCst) {
            // Woken three times while running: must be polled again exactly once.
            0 => {
                for _ in 0..3 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            // No wake this time: must not be polled until someone wakes it.
            1 => {
                *self.saved.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready("done"),
        }
    }
}

fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

#[test]
fn wake_while_running_repolls_exactly_once_and_wake_after_done_is_harmless() {
    let m = HostMachine::boot(2);
    let sched = m.sched();
    let polls = Arc::new(AtomicUsize::new(0));
    let saved = Arc::new(Mutex::new(None));
    let handle = sched.spawn_on(
        CpuId(1),
        Scripted {
            polls: polls.clone(),
            saved: saved.clone(),
        },
    );
    let waker = wait(
        &m,
        poll_fn(|cx| match saved.lock().unwrap().clone() {
            Some(w) => Poll::Ready(w),
            None => {
                std::thread::sleep(Duration::from_millis(1));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }),
    );
    settle();
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "three wakes while running gave one re-poll"
    );
    assert!(!handle.is_finished());

    // A wake from this thread, which is not a CPU.
    let remote_before = sched.stats(CpuId(1)).remote_wakes;
    waker.wake_by_ref();
    assert_eq!(wait(&m, handle), "done");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert!(sched.stats(CpuId(1)).remote_wakes > remote_before);

    let polls_on_cpu = sched.stats(CpuId(1)).polls;
    for _ in 0..100 {
        waker.wake_by_ref();
    }
    waker.wake();
    settle();
    assert_eq!(
        polls.load(Ordering::SeqCst),
        3,
        "a done task is never polled again"
    );
    assert_eq!(sched.stats(CpuId(1)).polls, polls_on_cpu);
    m.shutdown();
}

#[test]
fn wakes_from_foreign_threads_are_delivered() {
    const MESSAGES: u32 = 2_000;
    let m = HostMachine::boot(2);
    let sched = m.sched();
    let chan = Chan::new();
    let rx = chan.clone();
    let consumer = sched.spawn_on(CpuId(1), async move {
        let mut got = Vec::new();
        for _ in 0..MESSAGES {
            got.push(rx.recv().await);
        }
        got
    });
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let tx = chan.clone();
            std::thread::spawn(move || {
                for i in 0..MESSAGES / 2 {
                    tx.send(p * MESSAGES + i);
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let got = wait(&m, consumer);
    assert_eq!(got.len(), MESSAGES as usize);
    for p in 0..2 {
        let mine: Vec<u32> = got.iter().copied().filter(|v| v / MESSAGES == p).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "per-producer order kept"
        );
        assert_eq!(mine.len(), (MESSAGES / 2) as usize);
    }
    m.shutdown();
}

#[test]
fn ring_overflow_keeps_fifo_and_loses_nothing() {
    use crate::host::HostPlatform;
    use crate::Scheduler;
    const TASKS: usize = 100;
    let sched = Box::leak(Box::new(Scheduler::with_ring_capacity(
        HostPlatform::new(1),
        1,
        4,
    )));
    // Queue every task before the CPU starts, so the ring overflows.
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let order = order.clone();
            sched.spawn_on(CpuId(0), async move { order.lock().unwrap().push(i) })
        })
        .collect();
    assert!(sched.stats(CpuId(0)).ring_overflows >= (TASKS - 4) as u64);
    let m = HostMachine::boot_with(sched);
    for h in handles {
        wait(&m, h);
    }
    assert!(
        order.lock().unwrap().iter().copied().eq(0..TASKS),
        "FIFO across ring and overflow"
    );
    m.shutdown();
}
