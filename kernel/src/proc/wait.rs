//! Process exit and `wait4`: a zombie keeps its exit status until its parent reaps it;
//! waiters are woken through a wait queue of wakers.

use super::{ExitStatus, Pid, Process};
use crate::kprintln;
use alloc::{sync::Arc, vec::Vec};
use core::{
    future::poll_fn,
    sync::atomic::Ordering,
    task::{Poll, Waker},
};
use errno::{Errno, SysResult};
use spin::Mutex;

/// A list of tasks waiting for an event.
pub struct WaitQueue {
    waiters: Mutex<Vec<Waker>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Registers `waker` to be woken by the next `wake_all`.
    pub fn register(&self, waker: &Waker) {
        let mut w = self.waiters.lock();
        if !w.iter().any(|x| x.will_wake(waker)) {
            w.push(waker.clone());
        }
    }

    /// Wakes every registered waiter.
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for w in waiters {
            w.wake();
        }
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// The last thread of `process` left: release its resources, make it a zombie, tell the
/// parent. Init's exit ends the machine.
pub fn process_exited(process: &Arc<Process>, status: ExitStatus) {
    if let ExitStatus::Signaled(sig) = status {
        kprintln!(
            "pid {} ({}) killed by signal {}",
            process.pid,
            process.name.lock(),
            sig
        );
    }
    // Close files and drop the address space's memory now (the zombie keeps nothing).
    process.files.lock().close_all();
    // The exiting thread's loop still holds the space for a moment, so its last drop
    // would come after the parent (or an OOM kill waiting for this exit) saw the zombie:
    // tear it down here, in place, so the memory is free by then. Only if no other
    // process still runs in it: a `CLONE_VM` child's exit must leave its parent's memory
    // alone. In place, not by installing a fresh space: that needs a frame, and an exit
    // forced by the OOM killer is exactly when there is none (the teardown was skipped
    // then, and the victim's memory came back only with the last reference, after the
    // next OOM kill had picked an innocent process).
    let space = process.address_space();
    if space.drop_user() {
        space.mm().teardown();
    }
    drop(space);
    // A vfork parent waits for this moment (or an exec) to run again.
    process.release_vfork();
    // Orphans go to the nearest living subreaper above, else to init; each that asked
    // for a parent-death signal gets it.
    let orphans: Vec<Arc<Process>> = core::mem::take(&mut *process.children.lock());
    if !orphans.is_empty() {
        if let Some(reaper) = new_reaper(process) {
            for child in orphans {
                child.ppid.store(reaper.pid, Ordering::SeqCst);
                let reap_now = child.zombie.load(Ordering::SeqCst);
                let signal = child.controls.pdeath_signal.load(Ordering::Relaxed);
                if signal != 0 && !reap_now {
                    super::signal::send_to_process(&child, signal);
                }
                reaper.children.lock().push(child);
                if reap_now {
                    reaper.child_exited.wake_all();
                }
            }
        }
    }
    process.set_exit_status_once(status);
    process.zombie.store(true, Ordering::SeqCst);
    process.exit_waiters.wake_all();
    if process.pid == 1 {
        super::shutdown::init_exited(status);
    }
    let ppid = process.ppid.load(Ordering::SeqCst);
    if let Some(parent) = super::lookup(ppid) {
        super::signal::send_to_process(&parent, super::signal::SIGCHLD);
        parent.child_exited.wake_all();
    }
}

/// Who adopts the children of exiting `process` (Linux's find_new_reaper): the nearest
/// ancestor marked `PR_SET_CHILD_SUBREAPER` that is not exiting, else init.
fn new_reaper(process: &Process) -> Option<Arc<Process>> {
    let mut ppid = process.ppid.load(Ordering::SeqCst);
    // Every step goes to a live ancestor; the bound only guards against a cycle.
    for _ in 0..super::limits::PID_MAX_LIMIT {
        if ppid <= 1 {
            break;
        }
        let Some(ancestor) = super::lookup(ppid) else {
            break;
        };
        if ancestor.controls.child_subreaper.load(Ordering::Relaxed)
            && !ancestor.exiting.load(Ordering::SeqCst)
        {
            return Some(ancestor);
        }
        ppid = ancestor.ppid.load(Ordering::SeqCst);
    }
    super::lookup(1).filter(|init| init.pid != process.pid)
}

/// `wait4` options.
pub const WNOHANG: u64 = 1;

/// A child a wait found: its pid, how it ended and its uid (`waitid`'s `si_uid`).
#[derive(Clone, Copy, Debug)]
pub struct Waited {
    /// The child's pid.
    pub pid: Pid,
    /// How it ended.
    pub status: ExitStatus,
    /// The uid of its token.
    pub uid: u32,
}

/// Finds a reapable child matching `pid`: -1 any child, >0 that pid, 0 a child in the
/// caller's process group, < -1 a child in group -pid. With `reap` false (`WNOWAIT`)
/// the zombie stays for a later wait.
fn try_reap(parent: &Process, pid: i64, reap: bool) -> SysResult<Option<Waited>> {
    let mut children = parent.children.lock();
    let own_group = i64::from(parent.pgid.load(Ordering::Relaxed));
    let matches = |c: &Arc<Process>| match pid {
        -1 => true,
        0 => i64::from(c.pgid.load(Ordering::Relaxed)) == own_group,
        p if p < -1 => Some(i64::from(c.pgid.load(Ordering::Relaxed))) == p.checked_neg(),
        p => i64::from(c.pid) == p,
    };
    if !children.iter().any(matches) {
        return Err(Errno::ECHILD);
    }
    let Some(index) = children
        .iter()
        .position(|c| matches(c) && c.zombie.load(Ordering::SeqCst))
    else {
        return Ok(None);
    };
    let found = |c: &Process| Waited {
        pid: c.pid,
        status: c.exit_status().unwrap_or(ExitStatus::Exited(0)),
        uid: c.token.read().uid(),
    };
    if !reap {
        return Ok(Some(found(&children[index])));
    }
    let child = children.remove(index);
    drop(children);
    let waited = found(&child);
    super::remove(child.pid);
    drop(child);
    // A reaped process may have emptied whole heap blocks: give them back.
    crate::mem::heap::trim();
    Ok(Some(waited))
}

/// Waits for a child; returns its pid and status (or `None` with WNOHANG and nothing ready).
pub async fn wait_child(
    parent: Arc<Process>,
    thread: &super::thread::Thread,
    pid: i64,
    options: u64,
) -> SysResult<Option<(Pid, ExitStatus)>> {
    let found = wait_child_with(parent, thread, pid, options & WNOHANG != 0, true).await?;
    Ok(found.map(|w| (w.pid, w.status)))
}

/// Waits for a child matching `pid` (as [`try_reap`]) to be a zombie; `None` at once if
/// `nohang` and none is. `reap` false leaves it a zombie (`WNOWAIT`). EINTR when a
/// signal interrupts the wait.
pub async fn wait_child_with(
    parent: Arc<Process>,
    thread: &super::thread::Thread,
    pid: i64,
    nohang: bool,
    reap: bool,
) -> SysResult<Option<Waited>> {
    thread.clear_interrupt();
    poll_fn(|cx| {
        parent.child_exited.register(cx.waker());
        thread.interrupt_waker.register(cx.waker());
        match try_reap(&parent, pid, reap) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Some(found)) => Poll::Ready(Ok(Some(found))),
            Ok(None) if nohang => Poll::Ready(Ok(None)),
            Ok(None) if thread.is_interrupted() => Poll::Ready(Err(Errno::EINTR)),
            Ok(None) => Poll::Pending,
        }
    })
    .await
}
