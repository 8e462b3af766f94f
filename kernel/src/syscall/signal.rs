//! Signal syscalls: rt_sigaction, rt_sigprocmask, rt_sigreturn, kill, tgkill.

use super::Outcome;
use crate::{
    arch::{
        uaccess::{read_user, write_user},
        usermode::UserContext,
    },
    proc::{
        self,
        signal::{self, code, SigAction, SigInfo},
        thread::Thread,
    },
};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};
use security::AccessMask;

fn valid_signal(sig: u64) -> SysResult<u8> {
    if (1..=u64::from(signal::NSIG)).contains(&sig) {
        Ok(sig as u8)
    } else {
        Err(Errno::EINVAL)
    }
}

pub fn rt_sigaction(
    thread: &Thread,
    sig: u64,
    act: u64,
    oldact: u64,
    sigsetsize: u64,
) -> SysResult {
    if sigsetsize != 8 {
        return Err(Errno::EINVAL);
    }
    let sig = valid_signal(sig)?;
    let new = if act != 0 {
        Some(SigAction::from_words(read_user::<[u64; 4]>(act)?))
    } else {
        None
    };
    if new.is_some() && (sig == signal::SIGKILL || sig == signal::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let old = {
        let mut d = thread.process.signals.lock();
        let old = d.actions[usize::from(sig)];
        if let Some(mut a) = new {
            a.mask &= !signal::UNBLOCKABLE;
            d.actions[usize::from(sig)] = a;
        }
        old
    };
    if oldact != 0 {
        write_user(oldact, &old.to_words())?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(
    thread: &Thread,
    how: u64,
    set: u64,
    oldset: u64,
    sigsetsize: u64,
) -> SysResult {
    const SIG_BLOCK: u64 = 0;
    const SIG_UNBLOCK: u64 = 1;
    const SIG_SETMASK: u64 = 2;
    if sigsetsize != 8 {
        return Err(Errno::EINVAL);
    }
    let old = thread.sigmask.load(Ordering::SeqCst);
    if set != 0 {
        let requested: u64 = read_user(set)?;
        let new = match how {
            SIG_BLOCK => old | requested,
            SIG_UNBLOCK => old & !requested,
            SIG_SETMASK => requested,
            _ => return Err(Errno::EINVAL),
        };
        thread
            .sigmask
            .store(new & !signal::UNBLOCKABLE, Ordering::SeqCst);
    }
    if oldset != 0 {
        write_user(oldset, &old)?;
    }
    Ok(0)
}

pub fn rt_sigreturn(thread: &Thread, ctx: &mut UserContext) -> Outcome {
    match signal::sigreturn(thread, ctx) {
        Ok(()) => Outcome::Done(ctx.rax),
        Err(_) => {
            signal::force_fault_signal(
                thread,
                signal::SIGSEGV,
                SigInfo {
                    code: code::SI_KERNEL,
                    value: 0,
                },
            );
            Outcome::Done(ctx.rax)
        }
    }
}

fn sender_info(thread: &Thread, code: i32) -> SigInfo {
    let uid = u64::from(thread.process.token.read().uid());
    SigInfo {
        code,
        value: u64::from(thread.process.pid) | (uid << 32),
    }
}

fn signal_process(thread: &Thread, target: &Arc<proc::Process>, sig: u8) -> SysResult<()> {
    proc::check_access(&thread.process, target, AccessMask::PROCESS_TERMINATE)?;
    if sig != 0 && !target.zombie.load(Ordering::SeqCst) {
        signal::send_to_process_with(target, sig, sender_info(thread, code::SI_USER));
    }
    Ok(())
}

pub fn kill(thread: &Thread, pid: i64, sig: u64) -> SysResult {
    let sig = if sig == 0 { 0 } else { valid_signal(sig)? };
    if pid > 0 {
        let target = proc::process_by_id(pid as u64)?;
        signal_process(thread, &target, sig)?;
        return Ok(0);
    }
    // Groups: 0 is the caller's, -n is group n, -1 every process the caller may signal
    // except init and itself. Success if at least one was signalled; EPERM if all refused.
    // Linux: -INT_MIN is undefined, so INT_MIN is ESRCH.
    let group = match pid {
        0 => Some(thread.process.pgid.load(Ordering::Relaxed)),
        -1 => None,
        p => Some(
            p.checked_neg()
                .and_then(|g| u32::try_from(g).ok())
                .filter(|_| p != i64::from(i32::MIN))
                .ok_or(Errno::ESRCH)?,
        ),
    };
    let targets: alloc::vec::Vec<_> = proc::all()
        .into_iter()
        .filter(|p| !p.zombie.load(Ordering::SeqCst))
        .filter(|p| match group {
            Some(g) => p.pgid.load(Ordering::Relaxed) == g,
            None => p.pid != 1 && p.pid != thread.process.pid,
        })
        .collect();
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    let sent = targets
        .iter()
        .filter(|t| signal_process(thread, t, sig).is_ok())
        .count();
    if sent == 0 {
        Err(Errno::EPERM)
    } else {
        Ok(0)
    }
}

pub fn tgkill(thread: &Thread, tgid: i64, tid: i64, sig: u64) -> SysResult {
    if tid <= 0 || (tgid != -1 && tgid <= 0) {
        return Err(Errno::EINVAL);
    }
    let sig = if sig == 0 { 0 } else { valid_signal(sig)? };
    let target = proc::thread_by_id(tid as u64)?;
    // tgkill names the thread group too (tkill passes -1): it must be the thread's.
    if tgid != -1 && u64::from(target.process.pid) != tgid as u64 {
        return Err(Errno::ESRCH);
    }
    proc::check_access(
        &thread.process,
        &target.process,
        AccessMask::PROCESS_TERMINATE,
    )?;
    if sig != 0 {
        signal::send_to_thread(&target, sig, sender_info(thread, code::SI_TKILL));
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`: the alternate stack SA_ONSTACK handlers run on.
pub fn sigaltstack(thread: &Thread, ss: u64, old: u64, rsp: u64) -> SysResult {
    const SS_ONSTACK: u64 = 1;
    const SS_DISABLE: u64 = 2;
    const MINSIGSTKSZ: u64 = 2048;
    let (base, size) = *thread.altstack.lock();
    let on_stack = signal::on_altstack(rsp, base, size);
    if old != 0 {
        let flags = if size == 0 {
            SS_DISABLE
        } else if on_stack {
            SS_ONSTACK
        } else {
            0
        };
        write_user(old, &[base, flags, size])?;
    }
    if ss != 0 {
        let [new_base, flags, new_size]: [u64; 3] = read_user(ss)?;
        if on_stack {
            return Err(Errno::EPERM);
        }
        let flags = flags & 0xffff_ffff;
        if flags & !(SS_DISABLE | (1 << 31)) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & SS_DISABLE != 0 {
            *thread.altstack.lock() = (0, 0);
        } else {
            if new_size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            *thread.altstack.lock() = (new_base, new_size);
        }
    }
    Ok(0)
}
