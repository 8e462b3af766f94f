//! Process descriptors: `pidfd_open`, `pidfd_send_signal`, `waitid` (with `P_PIDFD`)
//! and `process_mrelease`, the call a user-space OOM daemon makes after SIGKILL to get
//! the victim's memory back without waiting for its threads to leave.
//!
//! Gates: a signal needs PROCESS_TERMINATE in the target's SD and PIP dominance, as
//! `kill`; `process_mrelease` needs PROCESS_SET_QUOTA and PIP dominance and is EPERM
//! otherwise (Linux has no check there: holding a pidfd of a dying process is enough).

use super::{fs::file_of, wait, Outcome};
use crate::{
    arch::uaccess::{read_user, write_user},
    fs::pidfd::{self, PidFd},
    proc::{
        self,
        signal::{self, code, SigInfo},
        thread::Thread,
        ExitStatus, Process,
    },
    vfs::{
        flags::{O_NONBLOCK, O_RDWR},
        OpenFile,
    },
};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};
use security::AccessMask;

/// `PIDFD_NONBLOCK`: the descriptor is `O_NONBLOCK` (`waitid` gives EAGAIN).
const PIDFD_NONBLOCK: u32 = O_NONBLOCK;
/// `pidfd_send_signal`: the whole thread group (the default).
const PIDFD_SIGNAL_THREAD_GROUP: u64 = 2;

/// A new pidfd for `process` in the caller's table (always close-on-exec, as Linux).
/// A descriptor number held for a pidfd whose process does not exist yet (clone takes
/// it before the child is made, as Linux's `copy_process` does, so running out of
/// descriptors fails the clone while nothing is made). Until [`bind`](Self::bind) the
/// slot holds a placeholder that answers every call with its default errno; dropping
/// it unbound closes the slot.
pub(super) struct ReservedPidfd<'a> {
    thread: &'a Thread,
    fd: Option<u64>,
}

impl ReservedPidfd<'_> {
    /// The descriptor number.
    pub(super) fn fd(&self) -> u64 {
        self.fd.unwrap_or(u64::MAX)
    }

    /// Puts the pidfd of `process` in the slot (cannot fail).
    pub(super) fn bind(mut self, process: &Arc<Process>, status: u32) {
        if let Some(fd) = self.fd.take() {
            let file = OpenFile::new(Arc::new(PidFd::new(process)), O_RDWR | status, None);
            let old = self.thread.process.files.lock().install_at(fd, file, true);
            drop(old);
        }
    }
}

impl Drop for ReservedPidfd<'_> {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let closed = self.thread.process.files.lock().close(fd);
            drop(closed);
        }
    }
}

/// The placeholder a [`ReservedPidfd`] slot holds.
struct Reserved;

impl crate::vfs::File for Reserved {
    fn stat(&self) -> crate::vfs::Stat {
        crate::vfs::Stat::default()
    }
}

/// Takes a descriptor number for a pidfd made later (EMFILE when none is free).
pub(super) fn reserve_pidfd(thread: &Thread) -> SysResult<ReservedPidfd<'_>> {
    let placeholder = OpenFile::new(Arc::new(Reserved), O_RDWR, None);
    let fd = thread.process.files.lock().insert(placeholder, true)?;
    Ok(ReservedPidfd {
        thread,
        fd: Some(fd),
    })
}

pub(super) fn install_pidfd(thread: &Thread, process: &Arc<Process>, status: u32) -> SysResult {
    let file = OpenFile::new(Arc::new(PidFd::new(process)), O_RDWR | status, None);
    thread.process.files.lock().insert(file, true)
}

/// `pidfd_open(pid, flags)`: EINVAL for a pid <= 0 or flags other than
/// `PIDFD_NONBLOCK`; ESRCH when no such process exists (or it was reaped); ENOENT
/// for a thread that is not its process's leader (Linux, without `PIDFD_THREAD`).
pub fn pidfd_open(thread: &Thread, pid: u64, flags: u64) -> SysResult {
    let pid = pid as i32;
    if pid <= 0 || flags & !u64::from(PIDFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let process = match proc::lookup(pid as u32) {
        Some(p) => p,
        None => {
            proc::thread_by_id(pid as u64)?;
            return Err(Errno::ENOENT);
        }
    };
    install_pidfd(thread, &process, flags as u32 & PIDFD_NONBLOCK)
}

/// The live (not reaped) process behind descriptor `fd`: EBADF if `fd` is not a
/// pidfd, ESRCH once the process was reaped.
fn pidfd_target(thread: &Thread, fd: u64) -> SysResult<(Arc<OpenFile>, Arc<Process>)> {
    let file = file_of(thread, fd)?;
    let process = pidfd::of(&file)?.process()?;
    Ok((file, process))
}

/// `pidfd_send_signal(pidfd, sig, info, flags)`: as `kill` on the pidfd's process
/// (PROCESS_TERMINATE and PIP dominance, EPERM otherwise). `info`, when given, must
/// carry `sig` (EINVAL) and, towards another process, a negative `si_code` other
/// than `SI_TKILL` (EPERM), as Linux; its pid/uid words reach the receiver.
/// Flags: 0 or `PIDFD_SIGNAL_THREAD_GROUP`; the thread and process-group scopes are
/// EINVAL here (pidfds name processes only).
pub fn pidfd_send_signal(thread: &Thread, fd: u64, sig: u64, info: u64, flags: u64) -> SysResult {
    if flags & !PIDFD_SIGNAL_THREAD_GROUP != 0 {
        return Err(Errno::EINVAL);
    }
    let (_, target) = pidfd_target(thread, fd)?;
    let sig = if sig == 0 {
        0
    } else if sig <= u64::from(signal::NSIG) {
        sig as u8
    } else {
        return Err(Errno::EINVAL);
    };
    let uid = u64::from(thread.process.token.read().uid());
    let mut sent = SigInfo {
        code: code::SI_USER,
        value: u64::from(thread.process.pid) | (uid << 32),
    };
    if info != 0 {
        let raw: [u64; 16] = read_user(info)?;
        let si_signo = raw[0] as u32 as i32;
        let si_code = raw[1] as u32 as i32;
        if si_signo != i32::from(sig) {
            return Err(Errno::EINVAL);
        }
        let other = !Arc::ptr_eq(&target, &thread.process);
        if other && (si_code >= 0 || si_code == code::SI_TKILL) {
            return Err(Errno::EPERM);
        }
        sent = SigInfo {
            code: si_code,
            value: raw[2],
        };
    }
    proc::check_access(&thread.process, &target, AccessMask::PROCESS_TERMINATE)?;
    if sig != 0 && !target.zombie.load(Ordering::SeqCst) {
        signal::send_to_process_with(&target, sig, sent);
    }
    Ok(0)
}

/// `waitid` id types.
const P_ALL: u64 = 0;
const P_PID: u64 = 1;
const P_PGID: u64 = 2;
const P_PIDFD: u64 = 3;
/// `waitid` options.
const WNOHANG: u64 = 1;
const WSTOPPED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;
/// `__WNOTHREAD`, `__WALL`, `__WCLONE`: accepted, as by `wait4`.
const WAIT_THREAD_FLAGS: u64 = 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
/// `SIGCHLD` codes.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;

/// `waitid(idtype, id, infop, options, rusage)` for exits (`WEXITED`; job control
/// stops do not happen here, so `WSTOPPED`/`WCONTINUED` alone never find a child).
/// `P_PIDFD` waits for the pidfd's process (which must be a child: ECHILD); on an
/// `O_NONBLOCK` pidfd a wait that would block is EAGAIN. With `WNOHANG` and nothing
/// ready the call returns 0 with a zeroed `siginfo`.
pub fn waitid(
    thread: &Arc<Thread>,
    idtype: u64,
    id: u64,
    infop: u64,
    options: u64,
    rusage: u64,
) -> Outcome {
    let decoded = (|| {
        if options & !(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | WAIT_THREAD_FLAGS) != 0
            || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
        {
            return Err(Errno::EINVAL);
        }
        let id32 = id as u32;
        let (pid, nonblocking_fd) = match idtype {
            P_ALL => (-1i64, false),
            P_PID if id32 as i32 > 0 => (i64::from(id32), false),
            P_PGID if id32 as i32 >= 0 => (if id32 == 0 { 0 } else { -i64::from(id32) }, false),
            P_PIDFD => {
                let file = file_of(thread, u64::from(id32))?;
                let pid = pidfd::of(&file)?.pid();
                (i64::from(pid), file.nonblocking())
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok((pid, nonblocking_fd))
    })();
    let (pid, nonblocking_fd) = match decoded {
        Ok(d) => d,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    let thread = thread.clone();
    wait(async move {
        let parent = thread.process.clone();
        let nohang = options & WNOHANG != 0 || nonblocking_fd;
        // Only exits are ever reported: a wait without WEXITED finds nothing to wait for.
        let found = if options & WEXITED != 0 {
            proc::wait::wait_child_with(parent, &thread, pid, nohang, options & WNOWAIT == 0)
                .await?
        } else {
            None
        };
        let mut info = [0u64; 16];
        match found {
            None if nonblocking_fd && options & WNOHANG == 0 => return Err(Errno::EAGAIN),
            None => {}
            Some(w) => {
                let (code, status) = match w.status {
                    ExitStatus::Exited(c) => (CLD_EXITED, u32::from(c)),
                    ExitStatus::Signaled(s) => (CLD_KILLED, u32::from(s)),
                };
                // si_signo | si_errno, si_code, si_pid | si_uid, si_status.
                info[0] = u64::from(signal::SIGCHLD);
                info[1] = u64::from(code as u32);
                info[2] = u64::from(w.pid) | (u64::from(w.uid) << 32);
                info[3] = u64::from(status);
            }
        }
        if infop != 0 {
            write_user(infop, &info)?;
        }
        if rusage != 0 {
            write_user(rusage, &[0u64; 18])?;
        }
        Ok(0)
    })
}

/// Whether `process` is on its way out: exiting, or a SIGKILL is pending on one of its
/// threads (Linux marks the group exiting when SIGKILL is sent).
fn dying(process: &Process) -> bool {
    let kill = 1u64 << (signal::SIGKILL - 1);
    process.exiting.load(Ordering::SeqCst)
        || process
            .threads
            .lock()
            .iter()
            .any(|t| t.pending.load(Ordering::SeqCst) & kill != 0)
}

/// `process_mrelease(pidfd, flags)`: tears the dying target's address space down now
/// and returns once its memory is back. Errors, in order: EINVAL for flags; EBADF
/// for a descriptor that is not a pidfd; ESRCH once the target was reaped; EINVAL for
/// the caller itself (Linux: a live caller is not dying); EPERM without
/// PROCESS_SET_QUOTA in the target's SD or without PIP dominance (Linux: no check);
/// ESRCH when the target has already exited (its memory is gone, as Linux finds no
/// mm); EINVAL when it is not dying, or when a process that is not dying shares its
/// address space (`CLONE_VM`).
///
/// The teardown is the one exit and the OOM reaper use ([`mm`]'s `teardown`, under
/// the address space's lock): whichever runs first frees every frame, the others find
/// the space empty, so each frame is freed exactly once.
pub fn process_mrelease(thread: &Arc<Thread>, fd: u64, flags: u64) -> Outcome {
    let target = (|| {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let (_, target) = pidfd_target(thread, fd)?;
        if Arc::ptr_eq(&target, &thread.process) {
            return Err(Errno::EINVAL);
        }
        proc::check_access(&thread.process, &target, AccessMask::PROCESS_SET_QUOTA)?;
        if target.zombie.load(Ordering::SeqCst) {
            return Err(Errno::ESRCH);
        }
        if !dying(&target) {
            return Err(Errno::EINVAL);
        }
        let space_id = target.address_space_id();
        let shared_with_living = proc::all().iter().any(|p| {
            !Arc::ptr_eq(p, &target)
                && !p.zombie.load(Ordering::SeqCst)
                && p.address_space_id() == space_id
                && !dying(p)
        });
        if shared_with_living {
            return Err(Errno::EINVAL);
        }
        Ok(target)
    })();
    let target = match target {
        Ok(t) => t,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    wait(async move {
        let space = target.address_space();
        space.mm().teardown();
        drop(space);
        Ok(0)
    })
}
