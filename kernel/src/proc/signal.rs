//! Signals: dispositions (`rt_sigaction`), masks, sending, and delivery on the way back to
//! user mode with a Linux-layout `rt_sigframe` (so musl and our runtime read `si_addr` and
//! the saved registers where they expect them), and `rt_sigreturn`.

use super::{thread::Thread, ExitStatus, Process};
use crate::arch::{
    uaccess::{copy_from_user, copy_to_user, read_user, write_user},
    usermode::{TrapKind, UserContext},
};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};

pub const SIGILL: u8 = 4;
pub const SIGTRAP: u8 = 5;
pub const SIGBUS: u8 = 7;
pub const SIGFPE: u8 = 8;
pub const SIGKILL: u8 = 9;
pub const SIGSEGV: u8 = 11;
/// `SIGPIPE`: a write to a pipe with no reader.
pub const SIGPIPE: u8 = 13;
pub const SIGCHLD: u8 = 17;
pub const SIGCONT: u8 = 18;
pub const SIGSTOP: u8 = 19;
pub const SIGURG: u8 = 23;
pub const SIGWINCH: u8 = 28;
/// Highest signal number.
pub const NSIG: u8 = 64;

/// `SA_RESTORER`.
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `SA_ONSTACK`.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `SA_NODEFER`.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `SA_RESETHAND`.
pub const SA_RESETHAND: u64 = 0x8000_0000;
/// `SA_RESTART`: a system call the signal interrupts is restarted after the handler.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `SIG_DFL`.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN`.
pub const SIG_IGN: u64 = 1;

/// `si_code` values used by the kernel.
pub mod code {
    /// Sent by kill().
    pub const SI_USER: i32 = 0;
    /// Sent by tgkill().
    pub const SI_TKILL: i32 = -6;
    /// Sent by the kernel.
    pub const SI_KERNEL: i32 = 0x80;
    /// Address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// Access denied by the page's protection key (PKRU).
    pub const SEGV_PKUERR: i32 = 4;
    /// Object-specific hardware error (SIGBUS).
    pub const BUS_ADRERR: i32 = 2;
    /// Integer divide by zero.
    pub const FPE_INTDIV: i32 = 1;
    /// Illegal operand.
    pub const ILL_ILLOPN: i32 = 2;
}

/// The kernel's `struct sigaction` (x86_64 layout for `rt_sigaction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SigAction {
    /// Handler address, SIG_DFL or SIG_IGN.
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// Return trampoline.
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

impl SigAction {
    /// From its user-memory layout (`struct sigaction`: four u64 words in field order).
    pub fn from_words([handler, flags, restorer, mask]: [u64; 4]) -> Self {
        Self {
            handler,
            flags,
            restorer,
            mask,
        }
    }

    /// Its user-memory layout.
    pub fn to_words(self) -> [u64; 4] {
        [self.handler, self.flags, self.restorer, self.mask]
    }
}

/// What a pending signal carries into `siginfo_t`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SigInfo {
    /// `si_code`.
    pub code: i32,
    /// Faulting address (SIGSEGV/SIGBUS/SIGILL/SIGFPE) or sender pid in the low 32 bits and
    /// uid in the high 32 bits (kill).
    pub value: u64,
}

/// Per-process signal dispositions.
pub struct Dispositions {
    /// Index 0 unused; 1..=64.
    pub actions: [SigAction; 65],
    /// Per-signal info of the most recent pending instance.
    pub info: [SigInfo; 65],
}

impl Default for Dispositions {
    fn default() -> Self {
        Self {
            actions: [SigAction::default(); 65],
            info: [SigInfo::default(); 65],
        }
    }
}

impl Dispositions {
    /// exec: handlers go back to default, ignored stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}

/// The signals no mask can block and no handler's mask may hold.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

const fn bit(sig: u8) -> u64 {
    1u64 << (sig - 1)
}

/// Default action of `sig` is to ignore it.
fn ignored_by_default(sig: u8) -> bool {
    // Job control (stop/continue) is not implemented: stop signals are ignored.
    matches!(
        sig,
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH | SIGSTOP | 20..=22
    )
}

/// Makes `sig` pending on `thread` with `info`.
pub fn send_to_thread(thread: &Thread, sig: u8, info: SigInfo) {
    if sig == 0 || sig > NSIG {
        return;
    }
    {
        let mut d = thread.process.signals.lock();
        let action = d.actions[usize::from(sig)];
        // A blocked signal is never dropped here: its action may change before it is
        // unblocked, and sigtimedwait takes blocked signals (Linux's sig_ignored).
        let waited_for = thread.sigwait_set.load(Ordering::SeqCst) & bit(sig) != 0;
        let blocked = thread.sigmask.load(Ordering::SeqCst) & bit(sig) != 0 || waited_for;
        if sig != SIGKILL
            && !blocked
            && (action.handler == SIG_IGN || (action.handler == SIG_DFL && ignored_by_default(sig)))
        {
            return;
        }
        d.info[usize::from(sig)] = info;
    }
    thread.pending.fetch_or(bit(sig), Ordering::SeqCst);
    if sig == SIGKILL
        || thread.sigmask.load(Ordering::SeqCst) & bit(sig) == 0
        || thread.sigwait_set.load(Ordering::SeqCst) & bit(sig) != 0
    {
        thread.interrupt();
    }
}

/// Makes `sig` pending on the process: on the first thread that does not block it.
pub fn send_to_process(process: &Arc<Process>, sig: u8) {
    send_to_process_with(
        process,
        sig,
        SigInfo {
            code: code::SI_KERNEL,
            value: 0,
        },
    );
}

/// As [`send_to_process`], with the info the receiver sees.
pub fn send_to_process_with(process: &Arc<Process>, sig: u8, info: SigInfo) {
    let threads = process.threads.lock().clone();
    let target = threads
        .iter()
        .find(|t| t.sigwait_set.load(Ordering::SeqCst) & bit(sig) != 0)
        .or_else(|| {
            threads
                .iter()
                .find(|t| t.sigmask.load(Ordering::SeqCst) & bit(sig) == 0)
        })
        .or(threads.first());
    if let Some(t) = target {
        send_to_thread(t, sig, info);
    }
}

/// A synchronous fault signal: if it is blocked or ignored the process dies (as in Linux).
pub fn force_fault_signal(thread: &Thread, sig: u8, info: SigInfo) {
    {
        let mut d = thread.process.signals.lock();
        let action = &mut d.actions[usize::from(sig)];
        if thread.sigmask.load(Ordering::SeqCst) & bit(sig) != 0 || action.handler == SIG_IGN {
            *action = SigAction::default();
            thread.sigmask.fetch_and(!bit(sig), Ordering::SeqCst);
        }
    }
    send_to_thread(thread, sig, info);
}

/// Whether `thread` must leave a killable wait (Linux's `fatal_signal_pending`): its
/// process is exiting, it is asked to exit, or a signal pending and not blocked will end
/// the process (SIGKILL, or one whose action is the default and that default is not to
/// ignore it: Linux turns such a signal into SIGKILL as it is sent).
pub fn fatal_signal_pending(thread: &Thread) -> bool {
    if thread.process.exiting.load(Ordering::SeqCst) || thread.exit_requested() {
        return true;
    }
    let deliverable = thread.pending.load(Ordering::SeqCst)
        & (!thread.sigmask.load(Ordering::SeqCst) | bit(SIGKILL));
    if deliverable & bit(SIGKILL) != 0 {
        return true;
    }
    if deliverable == 0 {
        return false;
    }
    let d = thread.process.signals.lock();
    (1..=NSIG).any(|sig| {
        deliverable & bit(sig) != 0
            && d.actions[usize::from(sig)].handler == SIG_DFL
            && !ignored_by_default(sig)
    })
}

/// Whether a system call that a signal interrupted (Linux's ERESTARTSYS) is run again:
/// the signal about to be delivered runs no handler (its default action or ignored:
/// the call goes on, or the process ends), or its handler was installed with
/// `SA_RESTART`. Otherwise the call fails with EINTR.
pub fn restarts_interrupted_call(thread: &Thread) -> bool {
    let deliverable = thread.pending.load(Ordering::SeqCst)
        & (!thread.sigmask.load(Ordering::SeqCst) | bit(SIGKILL));
    if deliverable == 0 {
        // Woken for something else than a signal (an exit): nothing will run.
        return true;
    }
    let sig = if deliverable & bit(SIGKILL) != 0 {
        SIGKILL
    } else {
        deliverable.trailing_zeros() as u8 + 1
    };
    let action = thread.process.signals.lock().actions[usize::from(sig)];
    action.handler == SIG_DFL || action.handler == SIG_IGN || action.flags & SA_RESTART != 0
}

/// Layout of the signal frame (offsets from the frame base, where RSP points on entry).
mod frame {
    pub const UCONTEXT: u64 = 8;
    pub const MCONTEXT: u64 = UCONTEXT + 40;
    pub const SIGMASK: u64 = UCONTEXT + 296;
    pub const SIGINFO: u64 = UCONTEXT + 304;
    pub const SIZE: u64 = SIGINFO + 128;
    pub const FPSTATE_BYTES: u64 = 512;
}

/// Delivers the lowest pending unblocked signal of `thread` (SIGKILL first): runs the
/// default action or sets up a handler frame.
pub fn deliver(thread: &Thread, ctx: &mut UserContext) -> Result<(), Undelivered> {
    let deliverable = thread.pending.load(Ordering::SeqCst)
        & (!thread.sigmask.load(Ordering::SeqCst) | bit(SIGKILL));
    if deliverable == 0 {
        return Ok(());
    }
    let sig = if deliverable & bit(SIGKILL) != 0 {
        SIGKILL
    } else {
        deliverable.trailing_zeros() as u8 + 1
    };
    thread.pending.fetch_and(!bit(sig), Ordering::SeqCst);
    // The mask a sigsuspend replaced: saved in the frame, or restored now if no
    // handler runs.
    let saved = thread
        .saved_sigmask
        .swap(super::thread::NO_SAVED_SIGMASK, Ordering::SeqCst);
    let frame_mask = if saved == super::thread::NO_SAVED_SIGMASK {
        thread.sigmask.load(Ordering::SeqCst)
    } else {
        saved
    };
    let restore_saved = || {
        if saved != super::thread::NO_SAVED_SIGMASK {
            thread.sigmask.store(saved, Ordering::SeqCst);
        }
    };
    let (action, info) = {
        let mut d = thread.process.signals.lock();
        let action = d.actions[usize::from(sig)];
        if action.flags & SA_RESETHAND != 0 && action.handler > SIG_IGN {
            d.actions[usize::from(sig)] = SigAction::default();
        }
        (action, d.info[usize::from(sig)])
    };
    if sig == SIGKILL || action.handler == SIG_DFL {
        if !ignored_by_default(sig) {
            if matches!(sig, SIGSEGV | SIGBUS | SIGILL | SIGFPE) {
                let page_fault = if ctx.kind == TrapKind::Trap && ctx.vector == 14 {
                    let e = ctx.error_code;
                    alloc::format!(
                        " [page fault: {}, {}]",
                        if e & 1 != 0 {
                            "protection violation"
                        } else {
                            "page not present"
                        },
                        if e & 16 != 0 {
                            "instruction fetch"
                        } else if e & 2 != 0 {
                            "write"
                        } else {
                            "read"
                        }
                    )
                } else {
                    alloc::string::String::new()
                };
                crate::kprintln!(
                    "pid {} tid {}: fatal signal {} (si_code {}, address {:#x}) at rip {:#x}{}",
                    thread.process.pid,
                    thread.tid,
                    sig,
                    info.code,
                    info.value,
                    ctx.rip,
                    page_fault
                );
            }
            thread.process.begin_exit(ExitStatus::Signaled(sig));
        }
        restore_saved();
        return Ok(());
    }
    if action.handler == SIG_IGN {
        restore_saved();
        return Ok(());
    }
    if let Err(e) = setup_frame(thread, ctx, sig, &action, &info, frame_mask) {
        // Everything as before the attempt: the caller may wait for the stack's page
        // (a slow swap-in) and deliver again, or kill the process.
        thread.pending.fetch_or(bit(sig), Ordering::SeqCst);
        thread.saved_sigmask.store(saved, Ordering::SeqCst);
        if action.flags & SA_RESETHAND != 0 && action.handler > SIG_IGN {
            thread.process.signals.lock().actions[usize::from(sig)] = action;
        }
        return Err(Undelivered {
            sig,
            overflowed: e == Errno::ENOMEM,
        });
    }
    let mut mask = thread.sigmask.load(Ordering::SeqCst) | action.mask;
    if action.flags & SA_NODEFER == 0 {
        mask |= bit(sig);
    }
    thread.sigmask.store(mask & !UNBLOCKABLE, Ordering::SeqCst);
    Ok(())
}

/// A signal whose handler frame could not be written; the thread is left as before
/// the attempt (the signal pending again).
#[derive(Debug)]
pub struct Undelivered {
    sig: u8,
    /// The frame would have overflowed the alternate stack (else: not writable).
    overflowed: bool,
}

/// The frame of `undelivered` cannot be written (a bad stack, or one that would
/// overflow the alternate stack): the process dies of SIGSEGV, as Linux's
/// force_sigsegv.
pub fn kill_undeliverable(thread: &Thread, undelivered: Undelivered) {
    crate::kprintln!(
        "pid {} tid {}: cannot deliver signal {} ({}): killed by SIGSEGV",
        thread.process.pid,
        thread.tid,
        undelivered.sig,
        if undelivered.overflowed {
            "overflowed sigaltstack"
        } else {
            "signal frame not writable"
        }
    );
    thread.process.begin_exit(ExitStatus::Signaled(SIGSEGV));
}

fn setup_frame(
    thread: &Thread,
    ctx: &mut UserContext,
    sig: u8,
    action: &SigAction,
    info: &SigInfo,
    frame_mask: u64,
) -> SysResult<()> {
    if action.flags & SA_RESTORER == 0 || action.restorer == 0 {
        return Err(Errno::EFAULT);
    }
    crate::arch::usermode::save_fpu(ctx);
    // The frame is written with the thread's own rights, as user mode would see them.
    crate::arch::usermode::load_pkru(ctx.pkru);
    // SA_ONSTACK: the frame goes on the alternate stack unless the thread is already on it.
    let (alt_base, alt_size) = *thread.altstack.lock();
    let nested = on_altstack(ctx.rsp, alt_base, alt_size);
    let entering = action.flags & SA_ONSTACK != 0 && alt_size != 0 && !nested;
    let stack_top = if entering {
        alt_base.wrapping_add(alt_size)
    } else {
        ctx.rsp
    };
    // User-controlled addresses: wrapping arithmetic, and the copies below refuse
    // anything that is not user memory.
    let fpstate = (stack_top.wrapping_sub(128 + frame::FPSTATE_BYTES)) & !63;
    let base = (fpstate.wrapping_sub(frame::SIZE) & !15).wrapping_sub(8);
    // A frame that would run off the bottom of the alternate stack is not written (it
    // would land below it, or wrap to its top and loop forever): Linux's get_sigframe
    // answers with a bogus address, so the process dies of SIGSEGV.
    if (nested || entering) && !on_altstack(base, alt_base, alt_size) {
        return Err(Errno::ENOMEM);
    }
    copy_to_user(fpstate, &ctx.fpu.0)?;

    let mut mcontext = [0u64; 32];
    let regs = [
        ctx.r8, ctx.r9, ctx.r10, ctx.r11, ctx.r12, ctx.r13, ctx.r14, ctx.r15, ctx.rdi, ctx.rsi,
        ctx.rbp, ctx.rbx, ctx.rdx, ctx.rax, ctx.rcx, ctx.rsp, ctx.rip, ctx.rflags,
    ];
    mcontext[..18].copy_from_slice(&regs);
    mcontext[18] = 0x33 | (0x2b << 48); // cs, gs, fs, ss
    mcontext[19] = ctx.error_code;
    mcontext[20] = ctx.vector;
    mcontext[21] = frame_mask;
    mcontext[22] = ctx.cr2;
    mcontext[23] = fpstate;
    // The interrupted PKRU goes in the frame's first reserved word (tagged), for
    // rt_sigreturn to restore; the handler runs with the default rights (Linux).
    mcontext[24] = PKRU_TAG | u64::from(ctx.pkru);
    write_user(base.wrapping_add(frame::MCONTEXT), &mcontext)?;
    write_user(base, &action.restorer)?;
    // uc_flags, uc_link, uc_stack
    write_user::<[u64; 5]>(base.wrapping_add(frame::UCONTEXT), &[0; 5])?;
    write_user(base.wrapping_add(frame::SIGMASK), &frame_mask)?;
    let mut siginfo = [0u64; 16];
    siginfo[0] = u64::from(sig);
    siginfo[1] = info.code as u32 as u64;
    siginfo[2] = info.value;
    if sig == SIGSEGV && info.code == code::SEGV_PKUERR {
        // si_pkey: the key of the VMA the access was refused in.
        let vma = thread.process.address_space().mm().vma_at(info.value);
        siginfo[4] = vma.map_or(0, |v| u64::from(v.flags().pkey()));
    }
    write_user(base.wrapping_add(frame::SIGINFO), &siginfo)?;
    ctx.pkru = crate::arch::usermode::INIT_PKRU;

    ctx.rsp = base;
    ctx.rip = action.handler;
    ctx.rdi = u64::from(sig);
    ctx.rsi = base + frame::SIGINFO;
    ctx.rdx = base + frame::UCONTEXT;
    ctx.rax = 0;
    ctx.rflags &= !(1 << 10); // DF clear for the handler
    ctx.kind = TrapKind::Fresh;
    Ok(())
}

/// Marks the PKRU saved in a signal frame (`mcontext` word 24, the first of
/// `__reserved1`): "PKRU" in the high half, the value in the low one. Linux keeps it in
/// the XSAVE image instead; this kernel's frame holds only the FXSAVE part.
const PKRU_TAG: u64 = 0x504b_5255 << 32;

/// Whether `sp` is on the alternate stack `[base, base + size)` (Linux's
/// `on_sig_stack`, written so that no user value can overflow it).
pub fn on_altstack(sp: u64, base: u64, size: u64) -> bool {
    size != 0 && sp > base && sp - base <= size
}

/// Whether `addr` is canonical (bits 63..47 all equal): the only kind of address
/// `iretq` may return to.
pub fn is_canonical(addr: u64) -> bool {
    let high = addr >> 47;
    high == 0 || high == (1 << 17) - 1
}

/// `rt_sigreturn`: restores the registers, mask and FPU state saved in the frame at RSP-8.
/// EFAULT (the caller turns it into SIGSEGV) if the frame cannot be read or names a
/// non-canonical RIP: returning there would fault on the kernel's `iretq` itself, where
/// Linux's fixup also ends in SIGSEGV.
pub fn sigreturn(thread: &Thread, ctx: &mut UserContext) -> SysResult<()> {
    let base = ctx.rsp.wrapping_sub(8);
    let mcontext: [u64; 32] = read_user(base.wrapping_add(frame::MCONTEXT))?;
    let mask: u64 = read_user(base.wrapping_add(frame::SIGMASK))?;
    if !is_canonical(mcontext[16]) {
        return Err(Errno::EFAULT);
    }
    if mcontext[24] & !0xffff_ffff == PKRU_TAG {
        ctx.pkru = mcontext[24] as u32;
    }
    let fpstate = mcontext[23];
    if fpstate != 0 {
        let mut image = [0u8; 512];
        copy_from_user(&mut image, fpstate)?;
        // Reserved MXCSR bits would fault on FXRSTOR: keep only the architectural ones.
        let mxcsr = u32::from_le_bytes([image[24], image[25], image[26], image[27]]) & 0xffff;
        image[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        ctx.fpu.0 = image;
        crate::arch::percpu::current()
            .fpu_owner
            .store(0, Ordering::Relaxed);
    }
    [
        ctx.r8, ctx.r9, ctx.r10, ctx.r11, ctx.r12, ctx.r13, ctx.r14, ctx.r15,
    ] = [
        mcontext[0],
        mcontext[1],
        mcontext[2],
        mcontext[3],
        mcontext[4],
        mcontext[5],
        mcontext[6],
        mcontext[7],
    ];
    [
        ctx.rdi, ctx.rsi, ctx.rbp, ctx.rbx, ctx.rdx, ctx.rax, ctx.rcx, ctx.rsp, ctx.rip, ctx.rflags,
    ] = [
        mcontext[8],
        mcontext[9],
        mcontext[10],
        mcontext[11],
        mcontext[12],
        mcontext[13],
        mcontext[14],
        mcontext[15],
        mcontext[16],
        mcontext[17],
    ];
    thread.sigmask.store(mask & !UNBLOCKABLE, Ordering::SeqCst);
    ctx.kind = TrapKind::Fresh;
    Ok(())
}
