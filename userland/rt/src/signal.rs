//! Signal handling: installing handlers with the `sa_restorer` trampoline that
//! x86_64 requires, and the `siginfo_t` / `ucontext_t` layouts a handler receives.

use crate::sys::signal::{rt_sigaction, KernelSigaction, SigSet};
use crate::Errno;

/// `SIGHUP`.
pub const SIGHUP: i32 = 1;
/// `SIGINT`.
pub const SIGINT: i32 = 2;
/// `SIGQUIT`.
pub const SIGQUIT: i32 = 3;
/// `SIGILL`.
pub const SIGILL: i32 = 4;
/// `SIGTRAP`.
pub const SIGTRAP: i32 = 5;
/// `SIGABRT`.
pub const SIGABRT: i32 = 6;
/// `SIGBUS`.
pub const SIGBUS: i32 = 7;
/// `SIGFPE`.
pub const SIGFPE: i32 = 8;
/// `SIGKILL`.
pub const SIGKILL: i32 = 9;
/// `SIGUSR1`.
pub const SIGUSR1: i32 = 10;
/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;
/// `SIGUSR2`.
pub const SIGUSR2: i32 = 12;
/// `SIGPIPE`.
pub const SIGPIPE: i32 = 13;
/// `SIGALRM`.
pub const SIGALRM: i32 = 14;
/// `SIGTERM`.
pub const SIGTERM: i32 = 15;
/// `SIGCHLD`.
pub const SIGCHLD: i32 = 17;
/// `SIGCONT`.
pub const SIGCONT: i32 = 18;
/// `SIGSTOP`.
pub const SIGSTOP: i32 = 19;
/// `SIGSYS`.
pub const SIGSYS: i32 = 31;

/// `SA_SIGINFO`: the handler takes `(sig, *siginfo, *ucontext)`.
pub const SA_SIGINFO: u64 = 0x4;
/// `SA_ONSTACK`.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `SA_RESTART`.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `SA_NODEFER`.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `SA_RESETHAND`.
pub const SA_RESETHAND: u64 = 0x8000_0000;
/// `SA_RESTORER`: `restorer` holds the return trampoline (always set here).
pub const SA_RESTORER: u64 = 0x0400_0000;

/// `si_code` for SIGSEGV: address not mapped.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` for SIGSEGV: access not permitted by the mapping.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` for SIGBUS: non-existent physical address (e.g. past end of file).
pub const BUS_ADRERR: i32 = 2;
/// `si_code`: sent by kill().
pub const SI_USER: i32 = 0;
/// `si_code`: sent by tkill()/tgkill().
pub const SI_TKILL: i32 = -6;

/// The name of signal `sig`, e.g. `"SIGSEGV"`.
pub fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        0..=31 => NAMES[sig as usize],
        32..=64 => "SIGRT",
        _ => "SIG?",
    }
}

/// The kernel's `siginfo_t` (128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SigInfo {
    /// Signal number.
    pub signo: i32,
    /// An errno value (rarely used).
    pub errno: i32,
    /// Why the signal was sent (`SEGV_MAPERR`, `SI_USER`, ...).
    pub code: i32,
    _pad: i32,
    fields: [u64; 14],
}

impl SigInfo {
    /// `si_addr`: the faulting address for SIGSEGV, SIGBUS, SIGILL, SIGFPE.
    pub fn addr(&self) -> usize {
        self.fields[0] as usize
    }

    /// `si_pid`: the sender's pid for kill/tgkill signals.
    pub fn pid(&self) -> i32 {
        self.fields[0] as u32 as i32
    }

    /// `si_uid`: the sender's real uid for kill/tgkill signals.
    pub fn uid(&self) -> u32 {
        (self.fields[0] >> 32) as u32
    }
}

/// Indexes into [`MContext::gregs`] (`REG_*` of `<sys/ucontext.h>`).
pub mod reg {
    #![allow(missing_docs)]
    pub const R8: usize = 0;
    pub const R9: usize = 1;
    pub const R10: usize = 2;
    pub const R11: usize = 3;
    pub const R12: usize = 4;
    pub const R13: usize = 5;
    pub const R14: usize = 6;
    pub const R15: usize = 7;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RBP: usize = 10;
    pub const RBX: usize = 11;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RCX: usize = 14;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const EFL: usize = 17;
    pub const CSGSFS: usize = 18;
    pub const ERR: usize = 19;
    pub const TRAPNO: usize = 20;
    pub const OLDMASK: usize = 21;
    pub const CR2: usize = 22;
}

/// `stack_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StackT {
    /// Stack base.
    pub sp: usize,
    /// `SS_*` flags.
    pub flags: i32,
    /// Size in bytes.
    pub size: usize,
}

/// `mcontext_t` (the kernel's `struct sigcontext`, in glibc's gregs view).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MContext {
    /// Saved general registers, indexed by [`reg`].
    pub gregs: [u64; 23],
    /// Pointer to the saved FPU state.
    pub fpregs: usize,
    _reserved: [u64; 8],
}

/// `ucontext_t` as the kernel builds it on the signal frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UContext {
    /// `UC_*` flags.
    pub flags: u64,
    /// Linked context (unused by Linux).
    pub link: usize,
    /// The alternate stack in effect.
    pub stack: StackT,
    /// The interrupted registers; written back by `rt_sigreturn`.
    pub mcontext: MContext,
    /// The signal mask to restore.
    pub sigmask: SigSet,
}

impl UContext {
    /// The interrupted instruction pointer.
    pub fn rip(&self) -> usize {
        self.mcontext.gregs[reg::RIP] as usize
    }

    /// Sets the instruction pointer `rt_sigreturn` resumes at.
    pub fn set_rip(&mut self, rip: usize) {
        self.mcontext.gregs[reg::RIP] = rip as u64;
    }
}

/// A handler taking `(signal, siginfo, ucontext)` (`SA_SIGINFO`).
pub type SiginfoHandler = extern "C" fn(i32, *mut SigInfo, *mut UContext);

/// What to do on a signal.
#[derive(Clone, Copy)]
pub enum Handler {
    /// `SIG_DFL`.
    Default,
    /// `SIG_IGN`.
    Ignore,
    /// A plain handler `fn(signal)`.
    Simple(extern "C" fn(i32)),
    /// An `SA_SIGINFO` handler.
    Siginfo(SiginfoHandler),
}

core::arch::global_asm!(
    ".globl peios_rt_sigreturn",
    ".type peios_rt_sigreturn,@function",
    // The handler returns here; rsp points at the kernel's rt_sigframe.
    "peios_rt_sigreturn:",
    "mov eax, 15",
    "syscall",
    "ud2",
);

extern "C" {
    fn peios_rt_sigreturn();
}

/// Installs `handler` for `sig` with extra `SA_*` flags and `mask` blocked while it
/// runs; returns the previous action.
///
/// # Safety
/// The handler runs asynchronously: it must only do async-signal-safe work (atomics,
/// raw syscalls; no allocation, no locks a handled thread may hold).
pub unsafe fn set_handler(
    sig: i32,
    handler: Handler,
    flags: u64,
    mask: SigSet,
) -> Result<KernelSigaction, Errno> {
    let (addr, extra) = match handler {
        Handler::Default => (0usize, 0u64),
        Handler::Ignore => (1usize, 0u64),
        Handler::Simple(f) => (f as usize, 0),
        Handler::Siginfo(f) => (f as usize, SA_SIGINFO),
    };
    let act = KernelSigaction {
        handler: addr,
        flags: flags | extra | SA_RESTORER,
        restorer: peios_rt_sigreturn as *const () as usize,
        mask,
    };
    let mut old = KernelSigaction::default();
    // SAFETY: the restorer is the rt_sigreturn trampoline above; the caller vouches
    // for the handler.
    unsafe { rt_sigaction(sig, Some(&act), Some(&mut old)) }?;
    Ok(old)
}
