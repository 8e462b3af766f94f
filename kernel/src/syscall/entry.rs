//! A user thread as a future: enter user mode, come back on a system call or trap, handle
//! it (awaiting when it must wait), deliver signals, repeat. The task wrapper loads the
//! process's address space and marks the thread current for the duration of each poll.

use super::fault;
use crate::{
    arch::{
        percpu, tlb,
        usermode::{self, TrapKind, UserContext},
    },
    executor::scheduler,
    interrupts,
    proc::{self, signal, thread::Thread},
    syscall,
};
use alloc::{boxed::Box, sync::Arc};
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::Ordering,
    task::{Context, Poll},
};
use drivers::apic::vectors;
use sched::CpuId;

/// Time a thread runs before yielding to other tasks on its CPU.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Starts `thread` with `ctx` on a CPU it may use.
pub fn start(thread: Arc<Thread>, ctx: Box<UserContext>) {
    thread.enter_process();
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
        tlb::activate(space.tlb_state());
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
    // kernel time before it enters user mode or waits (`charge_kernel`, getrusage).
    let mut kernel_since = crate::time::now_ns();
    // The address space, kept at hand for faults (execve replaces it: refreshed after).
    let mut space = thread.process.address_space();
    loop {
        if thread.must_exit() {
            break;
        }
        if thread.has_deliverable_signal() {
            crate::memd::userfaultfd::clear_kernel_wait();
            if let Err(undelivered) = signal::deliver(&thread, &mut ctx) {
                // The frame's page may only be slow to come in (a swap-in under heavy
                // swap, a userfaultfd): wait for it as a fault does and deliver again.
                match crate::memd::userfaultfd::take_kernel_wait(u64::from(thread.tid)) {
                    Some(wait) => {
                        usermode::save_fpu(&mut ctx);
                        charge_kernel(&thread, &mut kernel_since);
                        wait_fault(&thread, wait).await;
                        kernel_since = crate::time::now_ns();
                        continue;
                    }
                    None => signal::kill_undeliverable(&thread, undelivered),
                }
            }
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
        let user_ns = kernel_since.saturating_sub(entered);
        thread.usage.add_user(user_ns);
        thread
            .process
            .cpu_timers
            .charge(&thread.process, user_ns, 0);
        match ctx.kind {
            TrapKind::Syscall => {
                let (nr, args) = ctx.syscall_args();
                crate::memd::userfaultfd::clear_kernel_wait();
                let ret = match syscall::dispatch(&thread, &mut ctx, nr, args) {
                    syscall::Outcome::Done(value) => value,
                    syscall::Outcome::Wait(future) => {
                        usermode::save_fpu(&mut ctx);
                        charge_kernel(&thread, &mut kernel_since);
                        thread.block(proc::thread::Blocked::Syscall(nr));
                        let value = usermode::WithPkru::new(ctx.pkru, future).await;
                        thread.unblock();
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
                // A user copy of the syscall hit a page a userfaultfd holds: wait for
                // the handler, then run the syscall again (a signal ends the wait and
                // the syscall keeps its error, EFAULT).
                let ret = match crate::memd::userfaultfd::take_kernel_wait(u64::from(thread.tid)) {
                    Some(wait) if (ret as i64) < 0 && ret != syscall::RESTART => {
                        usermode::save_fpu(&mut ctx);
                        wait_fault(&thread, wait).await;
                        slice_end = new_slice_end();
                        if thread.is_interrupted() {
                            ret
                        } else {
                            syscall::RESTART
                        }
                    }
                    _ => ret,
                };
                ctx.rax = ret;
                if ret == syscall::RESTART_IF_SA_RESTART {
                    ctx.rax = if signal::restarts_interrupted_call(&thread) {
                        syscall::RESTART
                    } else {
                        errno::Errno::EINTR.as_return()
                    };
                }
                if ctx.rax == syscall::RESTART {
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
    let ctid = proc::thread_exit::begin_exit_thread(&thread, &mut ctx);
    if let Some(ctid) = ctid {
        clear_tid_word(&thread, ctid).await;
    }
    proc::thread_exit::exit_thread(&thread, ctid);
    LoopEnd::Exit
}

/// Rounds of waiting [`clear_tid_word`] allows (each one a swap-in or a reclaim round).
const CLEAR_TID_ROUNDS: usize = 8;

/// Writes 0 to the exiting thread's clear_child_tid word at `ctid`, which a joiner
/// waits on. Under heavy swap the word's page may take longer to come back than a
/// kernel access spins for: the write then parks its wait, this awaits it as a fault
/// does and writes again. Without that the word stayed set and the joiner waited
/// forever. A userfaultfd's page is not waited for (Linux's handle_userfault skips an
/// exiting task), nor a bad address: the word is then left as it is.
async fn clear_tid_word(thread: &Thread, ctid: u64) {
    for _ in 0..CLEAR_TID_ROUNDS {
        crate::memd::userfaultfd::clear_kernel_wait();
        if crate::arch::uaccess::write_user::<u32>(ctid, &0).is_ok() {
            return;
        }
        match crate::memd::userfaultfd::take_kernel_wait(u64::from(thread.tid)) {
            Some(wait) if !matches!(wait.reason(), mm::fault::WaitReason::Userfault { .. }) => {
                wait_fault(thread, wait).await;
            }
            _ => return,
        }
    }
}

/// Charges the kernel time since `*since` to `thread` and restarts the count now.
fn charge_kernel(thread: &Thread, since: &mut u64) {
    let now = crate::time::now_ns();
    let system_ns = now.saturating_sub(*since);
    thread.usage.add_system(system_ns);
    thread
        .process
        .cpu_timers
        .charge(&thread.process, 0, system_ns);
    *since = now;
}

/// The end of a slice that starts now (after a yield, a wait, or at the start).
fn new_slice_end() -> u64 {
    crate::time::now_ns() + TIME_SLICE_NS
}

/// When the thread running on `cpu` must give the CPU up: the end of its slice, or
/// the CPU's next task timer if that comes first (its task then runs promptly).
#[inline]
fn preemption_deadline(cpu: CpuId, slice_end: u64) -> u64 {
    scheduler()
        .next_timer_ns(cpu)
        .map_or(slice_end, |timer| timer.min(slice_end))
}

/// Waits for a parked fault to be resolved, or for a signal (or exit) to interrupt it:
/// the thread then returns towards user mode, takes its signal, and the access faults
/// again if it is retried. A userfaultfd handler that never answers cannot pin a
/// thread against SIGKILL.
async fn wait_fault(thread: &Thread, mut wait: mm::fault::FaultFuture) {
    thread.clear_interrupt();
    let page = match wait.reason() {
        mm::fault::WaitReason::SwapIn { addr } | mm::fault::WaitReason::Userfault { addr } => addr,
        _ => 0,
    };
    thread.block(proc::thread::Blocked::Fault(wait.reason(), page));
    core::future::poll_fn(|cx| {
        thread.interrupt_waker.register(cx.waker());
        if core::pin::Pin::new(&mut wait).poll(cx).is_ready() || thread.is_interrupted() {
            core::task::Poll::Ready(())
        } else {
            core::task::Poll::Pending
        }
    })
    .await;
    thread.unblock();
}
