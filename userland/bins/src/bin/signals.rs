//! `signals`: synchronous fault signals and their recovery, plus basic delivery.
//!
//! Checks: a write and a read of an unmapped page raise SIGSEGV with SEGV_MAPERR and
//! the exact si_addr, and the handler recovers by moving the saved RIP past the
//! access (peios-rt's fault probes); a write to a PROT_READ page raises SEGV_ACCERR;
//! a handler that mprotects the page writable lets the write complete on return;
//! tgkill to self runs an SA_SIGINFO handler with SI_TKILL and our pid; a blocked
//! signal stays pending until unblocked by rt_sigprocmask; a child that
//! dereferences NULL with no handler dies and the parent sees WTERMSIG == SIGSEGV;
//! a child killed with SIGKILL shows WTERMSIG == SIGKILL.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use peios_bins::Checks;
use peios_rt::fault;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::signal::*;
use peios_rt::sys::mm::{mmap_anon, mprotect, munmap, Prot, PAGE_SIZE};
use peios_rt::sys::process::{
    exit_group, getpid, gettid, kill, prlimit64, tgkill, Rlimit, RLIMIT_CORE,
};
use peios_rt::sys::signal::{rt_sigprocmask, SigSet, SIG_BLOCK, SIG_UNBLOCK};
use peios_rt::sys::time::{nanosleep, Timespec};

peios_rt::main!(main);

static SEGV_COUNT: AtomicU32 = AtomicU32::new(0);
static SEGV_SIGNO: AtomicI32 = AtomicI32::new(0);
static SEGV_CODE: AtomicI32 = AtomicI32::new(0);
static SEGV_ADDR: AtomicUsize = AtomicUsize::new(0);
/// When non-zero, the SIGSEGV handler repairs by mprotect'ing this page RW.
static UNPROTECT_PAGE: AtomicUsize = AtomicUsize::new(0);

static USR_COUNT: AtomicU32 = AtomicU32::new(0);
static USR_CODE: AtomicI32 = AtomicI32::new(0);
static USR_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_segv(sig: i32, info: *mut SigInfo, uc: *mut UContext) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to an
    // SA_SIGINFO handler; nothing else touches them while it runs.
    let (info, uc) = unsafe { (&*info, &mut *uc) };
    SEGV_COUNT.fetch_add(1, Ordering::AcqRel);
    SEGV_SIGNO.store(sig, Ordering::Release);
    SEGV_CODE.store(info.code, Ordering::Release);
    SEGV_ADDR.store(info.addr(), Ordering::Release);
    let page = UNPROTECT_PAGE.swap(0, Ordering::AcqRel);
    if page != 0 {
        // SAFETY: the page is the test's own PROT_READ page; making it writable is
        // what the test asks for.
        if unsafe { mprotect(page as *mut u8, PAGE_SIZE, Prot::RW) }.is_ok() {
            return;
        }
    }
    if !fault::fixup(uc) {
        // A fault outside the probes: returning would loop on it forever.
        peios_rt::eprintln!(
            "signals: unexpected SIGSEGV at rip {:#x} addr {:#x}",
            uc.rip(),
            info.addr()
        );
        exit_group(99);
    }
}

extern "C" fn on_usr(_sig: i32, info: *mut SigInfo, _uc: *mut UContext) {
    // SAFETY: valid siginfo from the kernel for an SA_SIGINFO handler.
    let info = unsafe { &*info };
    USR_CODE.store(info.code, Ordering::Release);
    USR_PID.store(info.pid(), Ordering::Release);
    USR_COUNT.fetch_add(1, Ordering::AcqRel);
}

fn reset_segv() {
    SEGV_COUNT.store(0, Ordering::Release);
    SEGV_SIGNO.store(0, Ordering::Release);
    SEGV_CODE.store(0, Ordering::Release);
    SEGV_ADDR.store(0, Ordering::Release);
}

fn check_segv(checks: &mut Checks, name: &str, faulted: bool, code: i32, addr: usize) {
    let (n, signo, got_code, got_addr) = (
        SEGV_COUNT.load(Ordering::Acquire),
        SEGV_SIGNO.load(Ordering::Acquire),
        SEGV_CODE.load(Ordering::Acquire),
        SEGV_ADDR.load(Ordering::Acquire),
    );
    checks.check(
        name,
        faulted && n == 1 && signo == SIGSEGV && got_code == code && got_addr == addr,
        format_args!(
            "recovered={} handler calls={} si_signo={} si_code={} (want {}) si_addr={:#x} (want {:#x})",
            faulted, n, signo, got_code, code, got_addr, addr
        ),
    );
}

/// A child dereferences NULL without a handler; the parent must see SIGSEGV.
fn null_child(checks: &mut Checks) {
    match fork() {
        Err(e) => {
            checks.check("null-deref-child", false, format_args!("fork: {}", e));
        }
        Ok(Fork::Child) => {
            // No core file from the deliberate crash.
            let _ = prlimit64(0, RLIMIT_CORE, Some(&Rlimit { cur: 0, max: 0 }));
            // SAFETY: restoring the default action in this child only.
            let _ = unsafe { set_handler(SIGSEGV, Handler::Default, 0, SigSet::EMPTY) };
            // SAFETY: deliberately loads from address 0, which is never mapped
            // (mmap_min_addr); the resulting SIGSEGV kills this child.
            unsafe {
                core::arch::asm!("xor ecx, ecx", "mov al, byte ptr [rcx]", out("al") _, out("ecx") _, options(nostack));
            }
            exit_group(0)
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait_pid(pid);
            let ok = matches!(
                st,
                Ok(WaitStatus::Signaled {
                    signal: SIGSEGV,
                    ..
                })
            );
            checks.check("null-deref-child", ok, format_args!("child {:?}", st));
        }
    }
}

/// A child waits; the parent SIGKILLs it and must see WTERMSIG == SIGKILL.
fn kill_child(checks: &mut Checks) {
    match fork() {
        Err(e) => {
            checks.check("sigkill-child", false, format_args!("fork: {}", e));
        }
        Ok(Fork::Child) => loop {
            let _ = nanosleep(&Timespec::from_ns(1_000_000_000));
        },
        Ok(Fork::Parent(pid)) => {
            let sent = kill(pid, SIGKILL);
            let st = wait_pid(pid);
            let ok = sent.is_ok()
                && matches!(
                    st,
                    Ok(WaitStatus::Signaled {
                        signal: SIGKILL,
                        ..
                    })
                );
            checks.check(
                "sigkill-child",
                ok,
                format_args!("kill: {:?}, child {:?}", sent, st),
            );
        }
    }
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("signals");
    // SAFETY: the handlers only use atomics, mprotect and the probe fix-up.
    let installed = unsafe {
        set_handler(
            SIGSEGV,
            Handler::Siginfo(on_segv),
            SA_NODEFER,
            SigSet::EMPTY,
        )
    };
    if !checks.check(
        "sigaction-segv",
        installed.is_ok(),
        format_args!("{:?}", installed.map(|_| ())),
    ) {
        return checks.finish();
    }

    // SEGV_MAPERR: a page-sized hole between two reserved pages.
    match peios_bins::unmapped_page() {
        None => {
            checks.check(
                "maperr-write",
                false,
                format_args!("mmap/munmap of the hole failed"),
            );
        }
        Some(hole) => {
            let target = (hole + 123) as *mut u8;
            reset_segv();
            // SAFETY: the address is unmapped; the handler fixes up the fault.
            let faulted = unsafe { fault::probe_write(target, 1) };
            check_segv(
                &mut checks,
                "maperr-write",
                faulted,
                SEGV_MAPERR,
                target as usize,
            );
            reset_segv();
            // SAFETY: as above, a read.
            let faulted = unsafe { fault::probe_read(target) }.is_err();
            check_segv(
                &mut checks,
                "maperr-read",
                faulted,
                SEGV_MAPERR,
                target as usize,
            );
        }
    }

    // SEGV_ACCERR: a write to a read-only page, recovered by skipping the store,
    // then by a handler that makes the page writable.
    match mmap_anon(PAGE_SIZE, Prot::READ) {
        Err(e) => {
            checks.check("accerr-write", false, format_args!("mmap: {}", e));
        }
        Ok(p) => {
            let target = p.wrapping_add(8);
            reset_segv();
            // SAFETY: our read-only page; the store faults and is skipped.
            let faulted = unsafe { fault::probe_write(target, 7) };
            check_segv(
                &mut checks,
                "accerr-write",
                faulted,
                SEGV_ACCERR,
                target as usize,
            );
            // SAFETY: reading our own mapped page.
            let value = unsafe { fault::probe_read(target) };
            checks.check(
                "accerr-no-store",
                value == Ok(0),
                format_args!("byte after skipped store: {:?}", value),
            );

            reset_segv();
            UNPROTECT_PAGE.store(p as usize, Ordering::Release);
            // SAFETY: our page; the handler makes it writable and the store retries.
            let faulted = unsafe { fault::probe_write(target, 9) };
            // SAFETY: reading our own mapped page.
            let value = unsafe { fault::probe_read(target) };
            let n = SEGV_COUNT.load(Ordering::Acquire);
            let code = SEGV_CODE.load(Ordering::Acquire);
            checks.check(
                "mprotect-recovery",
                !faulted && n == 1 && code == SEGV_ACCERR && value == Ok(9),
                format_args!(
                    "handler calls={} si_code={} store retried={} byte={:?}",
                    n, code, !faulted, value
                ),
            );
            // SAFETY: our own page, no references into it.
            let _ = unsafe { munmap(p, PAGE_SIZE) };
        }
    }

    // tgkill to self with an SA_SIGINFO handler.
    // SAFETY: the handler only stores atomics.
    let usr = unsafe { set_handler(SIGUSR1, Handler::Siginfo(on_usr), 0, SigSet::EMPTY) };
    let sent = tgkill(getpid(), gettid(), SIGUSR1);
    let (n, code, pid) = (
        USR_COUNT.load(Ordering::Acquire),
        USR_CODE.load(Ordering::Acquire),
        USR_PID.load(Ordering::Acquire),
    );
    checks.check(
        "tgkill-self",
        usr.is_ok() && sent.is_ok() && n == 1 && code == SI_TKILL && pid == getpid(),
        format_args!(
            "sigaction {:?} tgkill {:?} handler calls={} si_code={} si_pid={}",
            usr.map(|_| ()),
            sent,
            n,
            code,
            pid
        ),
    );

    // A blocked signal stays pending until unblocked.
    // SAFETY: the handler only stores atomics.
    let _ = unsafe { set_handler(SIGUSR2, Handler::Siginfo(on_usr), 0, SigSet::EMPTY) };
    USR_COUNT.store(0, Ordering::Release);
    let blocked = rt_sigprocmask(SIG_BLOCK, Some(&SigSet::of(SIGUSR2)));
    let _ = tgkill(getpid(), gettid(), SIGUSR2);
    let while_blocked = USR_COUNT.load(Ordering::Acquire);
    let unblocked = rt_sigprocmask(SIG_UNBLOCK, Some(&SigSet::of(SIGUSR2)));
    let after = USR_COUNT.load(Ordering::Acquire);
    checks.check(
        "sigprocmask-pending",
        blocked.is_ok() && unblocked.is_ok() && while_blocked == 0 && after == 1,
        format_args!(
            "handler calls while blocked={} after unblock={}",
            while_blocked, after
        ),
    );

    null_child(&mut checks);
    kill_child(&mut checks);
    checks.finish()
}
