//! A thread's exit: its usage goes to the process, the joiner waiting on its
//! clear_child_tid word is woken, and the last thread out ends the process.

use super::thread::Thread;
use super::{futex, wait, ExitStatus};
use crate::arch::usermode::{self, UserContext};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

/// The thread starts to leave: its usage and CPUs go to the process, and the
/// clear_child_tid word is taken; returns that word's address when it is to be cleared
/// (not when the whole process is exiting). The caller writes 0 there (waiting for the
/// page as a fault would), then calls [`exit_thread`].
pub fn begin_exit_thread(thread: &Arc<Thread>, ctx: &mut UserContext) -> Option<u64> {
    usermode::save_fpu(ctx); // drops FPU ownership of this context
    let process = &thread.process;
    process.usage.exited_threads.add(thread.usage.totals());
    // Before the clear_child_tid write: a joiner that reads the process's CPU set after
    // the join sees this thread's CPUs in it.
    process
        .cpus_used
        .fetch_or(thread.cpus_used.load(Ordering::Relaxed), Ordering::Relaxed);
    let ctid = thread.clear_child_tid.swap(0, Ordering::SeqCst);
    (ctid != 0 && !process.exiting.load(Ordering::SeqCst)).then_some(ctid)
}

/// The thread leaves, after [`begin_exit_thread`] (and the write of 0 to `ctid`, the
/// clear_child_tid word it returned): the joiner waiting there is woken, and if it was
/// the last thread, the process ends.
pub fn exit_thread(thread: &Arc<Thread>, ctid: Option<u64>) {
    let process = &thread.process;
    if let Some(ctid) = ctid {
        // A bad address only means no one can be waiting there.
        let _ = futex::wake(&thread.process, ctid, 1, false);
    }
    process.threads.lock().retain(|t| !Arc::ptr_eq(t, thread));
    drop(thread.task_slot.lock().take());
    let last = process.live_threads.fetch_sub(1, Ordering::SeqCst) == 1;
    process.thread_exited.wake_all();
    if last {
        let status = process.exit_status().unwrap_or(ExitStatus::Exited(
            process.group_exit_code.load(Ordering::SeqCst) as u8,
        ));
        wait::process_exited(process, status);
    }
}
