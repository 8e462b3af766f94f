//! A task that wakes itself forever goes to the back each time and cannot
//! starve others, whichever queue (pinned inbox, stealable) each one is on.

use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Poll;
use std::sync::Arc;

use super::util::wait;
use crate::host::HostMachine;
use crate::{yield_now, CpuId};

fn busy_vs_normal(busy_pinned: bool, normal_pinned: bool) {
    let m = HostMachine::boot(1);
    let sched = m.sched();
    let done = Arc::new(AtomicBool::new(false));
    let spins = Arc::new(AtomicU64::new(0));
    let busy = {
        let (done, spins) = (done.clone(), spins.clone());
        // Re-wakes itself on every poll without ever yielding for real.
        poll_fn(move |cx| {
            if done.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            spins.fetch_add(1, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    };
    let normal = {
        let done = done.clone();
        async move {
            for _ in 0..200 {
                yield_now().await;
            }
            done.store(true, Ordering::SeqCst);
        }
    };
    let busy = if busy_pinned {
        sched.spawn_on(CpuId(0), busy)
    } else {
        sched.spawn(busy)
    };
    let normal = if normal_pinned {
        sched.spawn_on(CpuId(0), normal)
    } else {
        sched.spawn(normal)
    };
    wait(&m, normal);
    wait(&m, busy);
    // Same queue: strict alternation (~200 spins). Different queues: batches
    // of up to 32 each, in turn (at least ~100).
    assert!(
        spins.load(Ordering::Relaxed) >= 100,
        "they really did take turns"
    );
    m.shutdown();
}

#[test]
fn busy_task_does_not_starve_normal_task_same_queue() {
    busy_vs_normal(true, true);
    busy_vs_normal(false, false);
}

#[test]
fn busy_task_does_not_starve_normal_task_other_queue() {
    busy_vs_normal(true, false);
    busy_vs_normal(false, true);
}
