//! Waiting for signals: `rt_sigpending`, `pause`, `rt_sigsuspend` and `rt_sigtimedwait`.

use super::{wait, Outcome};
use crate::{
    arch::uaccess::{read_user, write_user},
    executor::scheduler,
    proc::{
        signal::{self, SigInfo},
        thread::Thread,
    },
};
use alloc::sync::Arc;
use core::{
    future::{poll_fn, Future},
    pin::Pin,
    sync::atomic::Ordering,
    task::Poll,
};
use errno::{Errno, SysResult};

/// The only `sigset_t` size the x86-64 ABI has.
const SIGSET_BYTES: u64 = 8;

/// `rt_sigpending(set, sigsetsize)`: the signals pending for the caller that it blocks.
pub fn rt_sigpending(thread: &Thread, set: u64, sigsetsize: u64) -> SysResult {
    if sigsetsize > SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let pending = thread.pending.load(Ordering::SeqCst) & thread.sigmask.load(Ordering::SeqCst);
    let bytes = pending.to_ne_bytes();
    crate::arch::uaccess::copy_to_user(set, &bytes[..sigsetsize as usize])?;
    Ok(0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` as the signal mask until a
/// signal is delivered; always EINTR. The old mask comes back when the handler returns
/// (it is what the signal frame saves).
pub fn rt_sigsuspend(thread: &Arc<Thread>, mask: u64, sigsetsize: u64) -> Outcome {
    if sigsetsize != SIGSET_BYTES {
        return Err::<u64, _>(Errno::EINVAL).into();
    }
    let new: u64 = match read_user(mask) {
        Ok(m) => m,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    let old = thread
        .sigmask
        .swap(new & !signal::UNBLOCKABLE, Ordering::SeqCst);
    thread.saved_sigmask.store(old, Ordering::SeqCst);
    until_a_signal(thread.clone())
}

/// `pause()`: waits until a signal is delivered (its handler runs, or it ends the
/// process); EINTR. musl's and glibc's `pause()` make this call on x86_64.
pub fn pause(thread: &Arc<Thread>) -> Outcome {
    until_a_signal(thread.clone())
}

/// Waits until `thread` has a deliverable signal (or its process is exiting), then
/// EINTR: the wait of `pause` and `rt_sigsuspend`.
fn until_a_signal(thread: Arc<Thread>) -> Outcome {
    wait(async move {
        poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            if thread.has_deliverable_signal() || thread.process.exiting.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            // A wake with nothing deliverable (a blocked signal) keeps waiting.
            thread.clear_interrupt();
            if thread.has_deliverable_signal() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        Err(Errno::EINTR)
    })
}

/// Takes the lowest signal of `set` pending for `thread`, with its info.
fn take_pending(thread: &Thread, set: u64) -> Option<(u8, SigInfo)> {
    loop {
        let pending = thread.pending.load(Ordering::SeqCst) & set;
        if pending == 0 {
            return None;
        }
        let sig = pending.trailing_zeros() as u8 + 1;
        let bit = 1u64 << (sig - 1);
        if thread.pending.fetch_and(!bit, Ordering::SeqCst) & bit != 0 {
            let info = thread.process.signals.lock().info[usize::from(sig)];
            return Some((sig, info));
        }
    }
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a signal of `set` without
/// running its handler and returns its number (with its `siginfo_t` at `info` unless
/// NULL). While it waits, the signals of `set` wake it and process-directed ones come
/// to it (`Thread::sigwait_set`); any other deliverable signal ends the wait with EINTR (it is delivered), the
/// timeout (NULL: none) with EAGAIN. SIGKILL and SIGSTOP cannot be waited for.
pub fn rt_sigtimedwait(
    thread: &Arc<Thread>,
    set: u64,
    info: u64,
    timeout: u64,
    sigsetsize: u64,
) -> Outcome {
    if sigsetsize != SIGSET_BYTES {
        return Err::<u64, _>(Errno::EINVAL).into();
    }
    let setup = || -> SysResult<(u64, Option<u64>)> {
        let set: u64 = read_user(set)?;
        let timeout = match timeout {
            0 => None,
            t => Some(super::time::read_timespec(t)?),
        };
        Ok((set & !signal::UNBLOCKABLE, timeout))
    };
    let (set, timeout_ns) = match setup() {
        Ok(v) => v,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    let finish = move |thread: &Thread, (sig, si): (u8, SigInfo)| -> SysResult {
        if info != 0 {
            let mut siginfo = [0u64; 16];
            siginfo[0] = u64::from(sig);
            siginfo[1] = si.code as u32 as u64;
            siginfo[2] = si.value;
            write_user(info, &siginfo)?;
        }
        let _ = thread;
        Ok(u64::from(sig))
    };
    if let Some(found) = take_pending(thread, set) {
        return finish(thread, found).into();
    }
    if timeout_ns == Some(0) {
        return Err::<u64, _>(Errno::EAGAIN).into();
    }
    let thread = thread.clone();
    wait(async move {
        // While it waits, the set wakes this thread and a process-directed signal of
        // the set comes here (the mask itself stays as it is).
        thread.sigwait_set.store(set, Ordering::SeqCst);
        let deadline = timeout_ns.map(|ns| crate::time::now_ns().saturating_add(ns));
        let mut sleep = deadline.map(|d| scheduler().sleep_until(d));
        let outcome = poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            thread.clear_interrupt();
            if let Some(found) = take_pending(&thread, set) {
                return Poll::Ready(Ok(found));
            }
            if thread.has_deliverable_signal() || thread.process.exiting.load(Ordering::SeqCst) {
                return Poll::Ready(Err(Errno::EINTR));
            }
            if let Some(sleep) = sleep.as_mut() {
                if Pin::new(sleep).poll(cx).is_ready() {
                    return Poll::Ready(Err(Errno::EAGAIN));
                }
            }
            Poll::Pending
        })
        .await;
        thread.sigwait_set.store(0, Ordering::SeqCst);
        finish(&thread, outcome?)
    })
}
