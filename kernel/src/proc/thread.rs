//! A user thread as a future: enter user mode, come back on a system call or trap, handle
//! it (awaiting when it must wait), deliver signals, repeat. The task wrapper loads the
//! process's address space and marks the thread current for the duration of each poll.

use super::{fault, signal, ExitStatus, Pid, Process};
use crate::{
    arch::{
        percpu, tlb,
        usermode::{self, TrapKind, UserContext},
    },
    executor::scheduler,
    interrupts, syscall,
};
use alloc::{boxed::Box, sync::Arc};
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    task::{Context, Poll},
};
use drivers::apic::vectors;
use futures_util::task::AtomicWaker;
use sched::CpuId;

/// Time a thread runs before yielding to other tasks on its CPU.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// A user thread.
pub struct Thread {
    /// Thread id.
    pub tid: Pid,
    /// Its process.
    pub process: Arc<Process>,
    /// Blocked signals.
    pub sigmask: AtomicU64,
    /// Signals pending for this thread.
    pub pending: AtomicU64,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID` word, cleared and futex-woken at exit.
    pub clear_child_tid: AtomicU64,
    /// CPUs the thread may run on (bit per CPU).
    pub affinity: AtomicU64,
    /// The alternate signal stack (`sigaltstack`): base, size; size 0 = none.
    pub altstack: spin::Mutex<(u64, u64)>,
    /// Woken when the thread must leave a wait (signal or exit).
    pub interrupt_waker: AtomicWaker,
    /// The thread is asked to leave its current wait.
    interrupted: AtomicBool,
    /// The thread must exit (another thread of its process is in execve).
    exit_requested: AtomicBool,
    /// CPU the thread last ran on (for getcpu and reports).
    pub last_cpu: AtomicU64,
    /// CPUs the thread has run on (bit per CPU), for reports.
    pub cpus_used: AtomicU64,
    /// Its tid's slot in the task limits, given back at exit (a process's first thread
    /// has none: the process holds its pid until it is reaped).
    task_slot: spin::Mutex<Option<super::limits::TaskSlot>>,
    /// Its NUMA policy (`set_mempolicy`; `None`: the default), inherited by the threads
    /// and processes it creates and kept across execve, as on Linux.
    pub mempolicy: spin::Mutex<Option<mm::aspace::MemPolicy>>,
    /// CPU time and page faults (getrusage `RUSAGE_THREAD`; folded into the process
    /// at exit).
    pub usage: super::rusage::Usage,
    /// The mask `rt_sigsuspend` replaced ([`NO_SAVED_SIGMASK`]: none): the next signal
    /// frame saves it instead of the current mask, so the handler's return restores
    /// it; if no handler runs, delivery puts it back at once (Linux's
    /// `set_restore_sigmask`).
    pub saved_sigmask: AtomicU64,
    /// The signals an `rt_sigtimedwait` of this thread is waiting for: they wake it and
    /// are never dropped as ignored (Linux's `real_blocked`).
    pub sigwait_set: AtomicU64,
}

/// [`Thread::saved_sigmask`] when nothing is saved (a real mask never blocks SIGKILL).
pub const NO_SAVED_SIGMASK: u64 = u64::MAX;

impl Thread {
    /// A new thread of `process`: its first (`slot` `None`, tid = pid) or another one
    /// (with the slot of its tid).
    pub fn new(
        tid: Pid,
        process: Arc<Process>,
        sigmask: u64,
        affinity: u64,
        slot: Option<super::limits::TaskSlot>,
    ) -> Arc<Thread> {
        Arc::new(Thread {
            tid,
            process,
            sigmask: AtomicU64::new(sigmask),
            pending: AtomicU64::new(0),
            clear_child_tid: AtomicU64::new(0),
            affinity: AtomicU64::new(affinity),
            altstack: spin::Mutex::new((0, 0)),
            interrupt_waker: AtomicWaker::new(),
            interrupted: AtomicBool::new(false),
            exit_requested: AtomicBool::new(false),
            last_cpu: AtomicU64::new(0),
            cpus_used: AtomicU64::new(0),
            task_slot: spin::Mutex::new(slot),
            mempolicy: spin::Mutex::new(None),
            usage: super::rusage::Usage::new(),
            saved_sigmask: AtomicU64::new(NO_SAVED_SIGMASK),
            sigwait_set: AtomicU64::new(0),
        })
    }

    /// Asks the thread to leave any wait (a signal arrived or the process is exiting); if it
    /// is running user code on another CPU, that CPU is poked so it enters the kernel.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.interrupt_waker.wake();
        let cpu = self.last_cpu.load(Ordering::Relaxed) as u32;
        if let Some(target) = percpu::get(CpuId(cpu)) {
            if target.current_thread.load(Ordering::Relaxed) == self as *const Thread as u64
                && cpu != percpu::current_cpu().0
            {
                crate::arch::apic::send_ipi(target.apic_id, vectors::WAKE);
            }
        }
    }

    /// Makes the thread exit at its next return to the kernel loop (execve de-threading).
    pub fn request_exit(&self) {
        self.exit_requested.store(true, Ordering::SeqCst);
        self.interrupt();
    }

    /// Whether a wait should end early (and clears the request when it is only a signal
    /// that is no longer deliverable).
    pub fn is_interrupted(&self) -> bool {
        self.process.exiting.load(Ordering::SeqCst)
            || self.exit_requested.load(Ordering::SeqCst)
            || self.has_deliverable_signal()
            || self.interrupted.load(Ordering::SeqCst)
    }

    /// Clears a stale interrupt request before a new wait.
    pub fn clear_interrupt(&self) {
        self.interrupted.store(false, Ordering::SeqCst);
    }

    /// Pending and unblocked signals exist (thread or process directed).
    pub fn has_deliverable_signal(&self) -> bool {
        self.pending.load(Ordering::SeqCst) & !self.sigmask.load(Ordering::SeqCst) != 0
    }
}

/// Starts `thread` with `ctx` on a CPU it may use.
pub fn start(thread: Arc<Thread>, ctx: Box<UserContext>) {
    thread.process.live_threads.fetch_add(1, Ordering::SeqCst);
    thread
        .process
        .threads_started
        .fetch_add(1, Ordering::Relaxed);
    thread.process.threads.lock().push(thread.clone());
    let affinity = thread.affinity.load(Ordering::Relaxed);
    let task = ThreadTask {
        thread: thread.clone(),
        inner: Box::pin(thread_loop(thread, ctx)),
    };
    spawn_for(affinity, task);
}

/// Spawns a thread task: pinned when its affinity is one CPU, else floating (stealable).
fn spawn_for(affinity: u64, task: ThreadTask) {
    let all = crate::smp::online_mask();
    let allowed = affinity & all;
    let sched = scheduler();
    if allowed.count_ones() == 1 || (allowed != all && allowed != 0) {
        let here = percpu::current_cpu();
        let cpu = if allowed & (1 << here.index()) != 0 {
            here
        } else {
            CpuId(allowed.trailing_zeros())
        };
        drop(sched.spawn_on(cpu, task));
    } else {
        drop(sched.spawn(task));
    }
}

/// Why the loop stopped.
enum LoopEnd {
    /// The thread exited.
    Exit,
    /// The thread must continue on another CPU (affinity changed).
    Migrate(Box<UserContext>),
}

/// Wraps the thread loop: address space and current-thread bookkeeping around each poll.
struct ThreadTask {
    thread: Arc<Thread>,
    inner: Pin<Box<dyn Future<Output = LoopEnd> + Send>>,
}

impl Future for ThreadTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let cpu = percpu::current();
        let thread = self.thread.clone();
        let space = thread.process.address_space();
        tlb::activate(&space);
        cpu.current_thread
            .store(Arc::as_ptr(&thread) as u64, Ordering::Relaxed);
        thread
            .last_cpu
            .store(u64::from(cpu.cpu_id.0), Ordering::Relaxed);
        thread
            .cpus_used
            .fetch_or(1 << cpu.cpu_id.index(), Ordering::Relaxed);
        let result = self.inner.as_mut().poll(cx);
        cpu.current_thread.store(0, Ordering::Relaxed);
        tlb::leave();
        // The address space stays loaded (lazy switching, `tlb::activate`).
        drop(space);
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(LoopEnd::Exit) => Poll::Ready(()),
            Poll::Ready(LoopEnd::Migrate(ctx)) => {
                let affinity = thread.affinity.load(Ordering::Relaxed);
                let task = ThreadTask {
                    thread: thread.clone(),
                    inner: Box::pin(thread_loop(thread, ctx)),
                };
                spawn_for(affinity, task);
                Poll::Ready(())
            }
        }
    }
}

async fn thread_loop(thread: Arc<Thread>, mut ctx: Box<UserContext>) -> LoopEnd {
    let mut slice_end = new_slice_end();
    // Since when the thread has been running in the kernel (not waiting): charged as
    // kernel time before it enters user mode or waits (`charge_kernel`).
    let mut kernel_since = crate::time::now_ns();
    // The address space, kept at hand for faults (execve replaces it: refreshed after).
    let mut space = thread.process.address_space();
    loop {
        if thread.process.exiting.load(Ordering::SeqCst)
            || thread.exit_requested.load(Ordering::SeqCst)
        {
            break;
        }
        if thread.has_deliverable_signal() {
            signal::deliver(&thread, &mut ctx);
            if thread.process.exiting.load(Ordering::SeqCst) {
                break;
            }
        }
        let here = percpu::current_cpu();
        if thread.affinity.load(Ordering::Relaxed) & (1 << here.index()) == 0 {
            usermode::save_fpu(&mut ctx);
            return LoopEnd::Migrate(ctx);
        }
        // Checked on every entry, not remembered: the timer may have fired while this
        // thread was in the kernel (handled there, not seen here as a trap). A thread
        // entering user mode without it armed would never be preempted, starving the
        // timers of every task sleeping on this CPU; and a slice that ran out meanwhile
        // ends here, or a system-call loop would never see it end. The timer is armed
        // for the slice's end or this CPU's next task timer, whichever comes first, so a
        // sleeper beside a busy thread wakes on time.
        // Interrupts stay off from this check until user mode (`run_user` enters with
        // them off): an expiry in between is then taken in user mode as a trap, instead
        // of in the kernel, where it would leave the thread entering user mode with no
        // timer armed.
        let preempt_at = preemption_deadline(here, slice_end);
        x86_64::instructions::interrupts::disable();
        if !crate::arch::apic::timer_armed_by(preempt_at) {
            if crate::time::now_ns() >= preempt_at {
                x86_64::instructions::interrupts::enable();
                usermode::save_fpu(&mut ctx);
                charge_kernel(&thread, &mut kernel_since);
                sched::yield_now().await;
                kernel_since = crate::time::now_ns();
                slice_end = new_slice_end();
                continue;
            }
            crate::arch::apic::arm_timer_by(preempt_at);
        }
        charge_kernel(&thread, &mut kernel_since);
        let entered = kernel_since;
        usermode::run_user(&mut ctx);
        kernel_since = crate::time::now_ns();
        thread.usage.add_user(kernel_since.saturating_sub(entered));
        match ctx.kind {
            TrapKind::Syscall => {
                let (nr, args) = ctx.syscall_args();
                let ret = match syscall::dispatch(&thread, &mut ctx, nr, args) {
                    syscall::Outcome::Done(value) => value,
                    syscall::Outcome::Wait(future) => {
                        usermode::save_fpu(&mut ctx);
                        charge_kernel(&thread, &mut kernel_since);
                        let value = usermode::WithPkru::new(ctx.pkru, future).await;
                        kernel_since = crate::time::now_ns();
                        // The thread gave the CPU up while it waited: a new slice. (The
                        // old one, run out meanwhile, made a woken sleeper yield at once
                        // and wait a whole slice behind a spinner.)
                        slice_end = new_slice_end();
                        value
                    }
                    syscall::Outcome::Yield => {
                        usermode::save_fpu(&mut ctx);
                        charge_kernel(&thread, &mut kernel_since);
                        sched::yield_now().await;
                        kernel_since = crate::time::now_ns();
                        slice_end = new_slice_end();
                        0
                    }
                    syscall::Outcome::Exit => break,
                };
                ctx.rax = ret;
                if ret == syscall::RESTART {
                    // Run the same system call again (its arguments are still in place).
                    ctx.rax = nr;
                    ctx.rip -= 2;
                }
                if nr == syscall::SYS_EXECVE {
                    space = thread.process.address_space();
                }
            }
            TrapKind::Trap => {
                let vector = ctx.vector as u8;
                if vector < 32 {
                    if let fault::UserFault::Wait(wait) =
                        fault::user_exception(&thread, &space, &mut ctx)
                    {
                        usermode::save_fpu(&mut ctx);
                        charge_kernel(&thread, &mut kernel_since);
                        wait_fault(&thread, wait).await;
                        kernel_since = crate::time::now_ns();
                        slice_end = new_slice_end();
                    }
                } else {
                    if vector != vectors::SPURIOUS {
                        interrupts::handle_interrupt(vector);
                    }
                    if vector == vectors::TIMER || vector == vectors::WAKE {
                        let now = crate::time::now_ns();
                        if now >= preemption_deadline(percpu::current_cpu(), slice_end)
                            || vector == vectors::WAKE
                        {
                            usermode::save_fpu(&mut ctx);
                            charge_kernel(&thread, &mut kernel_since);
                            sched::yield_now().await;
                            kernel_since = crate::time::now_ns();
                            slice_end = new_slice_end();
                        }
                    }
                }
            }
            TrapKind::Fresh => {}
        }
    }
    charge_kernel(&thread, &mut kernel_since);
    exit_thread(&thread, &mut ctx);
    LoopEnd::Exit
}

/// Charges the kernel time since `*since` to `thread` and restarts the count now.
fn charge_kernel(thread: &Thread, since: &mut u64) {
    let now = crate::time::now_ns();
    thread.usage.add_system(now.saturating_sub(*since));
    *since = now;
}

/// The end of a slice that starts now (after a yield, a wait, or at the start).
fn new_slice_end() -> u64 {
    crate::time::now_ns() + TIME_SLICE_NS
}

/// When the thread running on `cpu` must give the CPU up: the end of its slice, or
/// the CPU's next task timer if that comes first (its task then runs promptly).
fn preemption_deadline(cpu: CpuId, slice_end: u64) -> u64 {
    scheduler()
        .next_timer_ns(cpu)
        .map_or(slice_end, |timer| timer.min(slice_end))
}

/// The thread leaves: clear_child_tid, and if it was the last one, the process ends.
fn exit_thread(thread: &Arc<Thread>, ctx: &mut UserContext) {
    usermode::save_fpu(ctx); // drops FPU ownership of this context
    let ctid = thread.clear_child_tid.swap(0, Ordering::SeqCst);
    if ctid != 0 && !thread.process.exiting.load(Ordering::SeqCst) {
        let _ = crate::arch::uaccess::write_user::<u32>(ctid, &0);
        // A bad address only means no one can be waiting there.
        let _ = super::futex::wake(&thread.process, ctid, 1, false);
    }
    let process = &thread.process;
    process.usage.exited_threads.add(thread.usage.totals());
    process
        .cpus_used
        .fetch_or(thread.cpus_used.load(Ordering::Relaxed), Ordering::Relaxed);
    process.threads.lock().retain(|t| !Arc::ptr_eq(t, thread));
    drop(thread.task_slot.lock().take());
    let last = process.live_threads.fetch_sub(1, Ordering::SeqCst) == 1;
    process.thread_exited.wake_all();
    if last {
        let status = process.exit_status().unwrap_or(ExitStatus::Exited(
            process.group_exit_code.load(Ordering::SeqCst) as u8,
        ));
        super::wait::process_exited(process, status);
    }
}

/// Waits for a parked fault to be resolved, or for a signal (or exit) to interrupt it:
/// the thread then returns towards user mode, takes its signal, and the access faults
/// again if it is retried. A userfaultfd handler that never answers cannot pin a
/// thread against SIGKILL.
async fn wait_fault(thread: &Thread, mut wait: mm::fault::FaultFuture) {
    thread.clear_interrupt();
    core::future::poll_fn(|cx| {
        thread.interrupt_waker.register(cx.waker());
        if core::pin::Pin::new(&mut wait).poll(cx).is_ready() || thread.is_interrupted() {
            core::task::Poll::Ready(())
        } else {
            core::task::Poll::Pending
        }
    })
    .await
}
