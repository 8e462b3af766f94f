//! Futexes: wait queues hashed by (address space, user address). FUTEX_WAIT checks the
//! word under the bucket lock and parks as a future; FUTEX_WAKE completes waiters in FIFO
//! order. Timeouts race the wake through a timer future.

use super::{thread::Thread, Process};
use crate::{arch::uaccess::read_user, executor::scheduler};
use alloc::{collections::VecDeque, sync::Arc};
use core::{
    future::poll_fn,
    sync::atomic::{AtomicBool, Ordering},
    task::Poll,
};
use errno::{Errno, SysResult};
use futures_util::task::AtomicWaker;
use spin::Mutex;

const BUCKETS: usize = 256;

struct Waiter {
    key: (u64, u64),
    woken: AtomicBool,
    waker: AtomicWaker,
}

static TABLE: [Mutex<VecDeque<Arc<Waiter>>>; BUCKETS] =
    [const { Mutex::new(VecDeque::new()) }; BUCKETS];

fn bucket(key: (u64, u64)) -> &'static Mutex<VecDeque<Arc<Waiter>>> {
    let h = (key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        >> 56;
    &TABLE[h as usize % BUCKETS]
}

/// Marks keys of shared futexes (the second half is then a physical address).
const SHARED_KEY: u64 = u64::MAX;

/// A private futex is keyed by (address space, address); a shared one in a MAP_SHARED
/// mapping by the physical location of the word, so processes sharing the memory meet
/// whatever address each maps it at.
fn key_of(process: &Process, uaddr: u64, private: bool) -> (u64, u64) {
    if !private {
        let space = process.address_space();
        if space.mm().vma_at(uaddr).is_some_and(|v| v.is_shared()) {
            if let Some(frame) = space.frame_of(uaddr) {
                return (SHARED_KEY, frame + (uaddr & 4095));
            }
        }
    }
    (process.address_space_id(), uaddr)
}

/// FUTEX_WAIT: sleeps while `*uaddr == expected`, until woken, interrupted or `deadline_ns`.
/// `private`: FUTEX_PRIVATE_FLAG was given. `uaddr` is 4-byte aligned (the syscall checks).
pub async fn wait(
    thread: &Thread,
    uaddr: u64,
    expected: u32,
    deadline_ns: Option<u64>,
    private: bool,
) -> SysResult<u64> {
    // Fault the word in first: a shared key needs its frame.
    let _: u32 = read_user(uaddr)?;
    let key = key_of(&thread.process, uaddr, private);
    let waiter = Arc::new(Waiter {
        key,
        woken: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    {
        let mut q = bucket(key).lock();
        // Read under the bucket lock so a waker that changes the word and then wakes cannot
        // slip between the check and the enqueue.
        let value: u32 = read_user(uaddr)?;
        if value != expected {
            return Err(Errno::EAGAIN);
        }
        q.push_back(waiter.clone());
    }
    thread.clear_interrupt();
    let mut timer = deadline_ns.map(|d| scheduler().sleep_until(d));
    let result = poll_fn(|cx| {
        waiter.waker.register(cx.waker());
        thread.interrupt_waker.register(cx.waker());
        if waiter.woken.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(0));
        }
        if thread.is_interrupted() {
            return Poll::Ready(Err(Errno::EINTR));
        }
        if let Some(t) = timer.as_mut() {
            if core::pin::Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(Err(Errno::ETIMEDOUT));
            }
        }
        Poll::Pending
    })
    .await;
    if result.is_err() {
        let mut q = bucket(key).lock();
        q.retain(|w| !Arc::ptr_eq(w, &waiter));
        // A wake that raced with the timeout or signal still counts as a wake.
        if waiter.woken.load(Ordering::SeqCst) {
            return Ok(0);
        }
    }
    result
}

/// FUTEX_WAKE: wakes up to `count` waiters on `uaddr`; returns how many. `process` is
/// the caller's (its address space is the one loaded). As Linux's get_futex_key: EFAULT
/// for an address outside user space; a shared futex's word is faulted in (its key is
/// the page), so an unmapped one is EFAULT too, while a private futex only needs the
/// address (an unmapped private word has no waiters: 0).
pub fn wake(process: &Process, uaddr: u64, count: u32, private: bool) -> SysResult<u64> {
    crate::arch::uaccess::check_user_range(uaddr, 4)?;
    if !private {
        let _: u32 = read_user(uaddr)?;
    }
    let key = key_of(process, uaddr, private);
    let mut woken = 0u64;
    let mut q = bucket(key).lock();
    let mut i = 0;
    while i < q.len() && woken < u64::from(count) {
        if q[i].key == key {
            if let Some(w) = q.remove(i) {
                w.woken.store(true, Ordering::SeqCst);
                w.waker.wake();
                woken += 1;
            }
        } else {
            i += 1;
        }
    }
    Ok(woken)
}

use core::future::Future as _;
