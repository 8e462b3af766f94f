//! Process and thread identity and lifetime: exit, getpid, clone, execve, wait4,
//! kill, tgkill, set_tid_address, prlimit64.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// `CLONE_VM`: share the address space.
pub const CLONE_VM: u64 = 0x100;
/// `CLONE_FS`: share cwd/umask/root.
pub const CLONE_FS: u64 = 0x200;
/// `CLONE_FILES`: share the descriptor table.
pub const CLONE_FILES: u64 = 0x400;
/// `CLONE_SIGHAND`: share signal handlers.
pub const CLONE_SIGHAND: u64 = 0x800;
/// `CLONE_VFORK`: parent sleeps until the child execs or exits.
pub const CLONE_VFORK: u64 = 0x4000;
/// `CLONE_THREAD`: same thread group.
pub const CLONE_THREAD: u64 = 0x10000;
/// `CLONE_SYSVSEM`: share SysV semaphore undo lists.
pub const CLONE_SYSVSEM: u64 = 0x40000;
/// `CLONE_SETTLS`: set the child's FS base to the `tls` argument.
pub const CLONE_SETTLS: u64 = 0x80000;
/// `CLONE_PARENT_SETTID`: store the child's tid at `ptid`.
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
/// `CLONE_CHILD_CLEARTID`: zero `ctid` and futex-wake it when the child exits.
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
/// `CLONE_CHILD_SETTID`: store the child's tid at `ctid` in the child.
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// `WNOHANG`: do not block in wait4.
pub const WNOHANG: u32 = 1;
/// `WUNTRACED`: also report stopped children.
pub const WUNTRACED: u32 = 2;
/// `__WALL`: wait for all children, clone or not.
pub const WALL: u32 = 0x4000_0000;

/// `RLIMIT_CORE`.
pub const RLIMIT_CORE: u32 = 4;
/// `RLIMIT_NOFILE`.
pub const RLIMIT_NOFILE: u32 = 7;
/// `RLIMIT_AS`.
pub const RLIMIT_AS: u32 = 9;
/// `RLIMIT_STACK`.
pub const RLIMIT_STACK: u32 = 3;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Ends the calling thread only (`exit(2)`, not `exit_group`).
pub fn exit(status: i32) -> ! {
    // SAFETY: SYS_exit never returns; nothing of this thread is used afterwards.
    unsafe {
        syscall1(nr::EXIT, status as usize);
    }
    unreachable_exit()
}

/// Ends the whole process with `status`.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: SYS_exit_group never returns.
    unsafe {
        syscall1(nr::EXIT_GROUP, status as usize);
    }
    unreachable_exit()
}

fn unreachable_exit() -> ! {
    // Reached only if the kernel returned from exit: trap rather than run on.
    // SAFETY: `ud2` raises SIGILL; it touches no memory.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}

/// The process id (thread-group id).
pub fn getpid() -> i32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall0(nr::GETPID) as i32 }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall0(nr::GETTID) as i32 }
}

/// The parent's process id.
pub fn getppid() -> i32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall0(nr::GETPPID) as i32 }
}

/// The real user id.
pub fn getuid() -> u32 {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall0(nr::GETUID) as u32 }
}

/// Raw `clone(flags, stack, ptid, ctid, tls)`; returns the child's tid in the
/// parent and 0 in the child.
///
/// # Safety
/// With a non-zero `stack` the child starts on that stack in the middle of this
/// function, which Rust cannot express: use [`crate::thread`] for threads. With
/// `stack == 0` and no `CLONE_VM` this is fork-like and sound. `ptid`/`ctid` must be
/// null or valid for the kernel to write for as long as the flags say.
pub unsafe fn clone(
    flags: u64,
    stack: usize,
    ptid: *mut u32,
    ctid: *mut u32,
    tls: usize,
) -> Result<usize, Errno> {
    // SAFETY: the caller upholds the contract above.
    let r = unsafe {
        syscall5(
            nr::CLONE,
            flags as usize,
            stack,
            ptid as usize,
            ctid as usize,
            tls,
        )
    };
    Errno::result(r)
}

/// Raw `execve(path, argv, envp)`; only returns on failure.
///
/// # Safety
/// `path` must be a NUL-terminated string and `argv`/`envp` null-terminated arrays
/// of NUL-terminated strings (or bad pointers, for which the kernel gives EFAULT).
pub unsafe fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> Errno {
    // SAFETY: the kernel only reads the strings (contract above).
    let r = unsafe { syscall3(nr::EXECVE, path as usize, argv as usize, envp as usize) };
    match Errno::result(r) {
        Err(e) => e,
        Ok(_) => Errno::Unknown(0),
    }
}

/// `wait4(pid, &status, options, NULL)`; returns `(pid, raw status)`.
pub fn wait4(pid: i32, options: u32) -> Result<(i32, i32), Errno> {
    let mut status: i32 = 0;
    // SAFETY: `status` is a valid writable i32; rusage is null.
    let r = unsafe {
        syscall4(
            nr::WAIT4,
            pid as usize,
            &mut status as *mut i32 as usize,
            options as usize,
            0,
        )
    };
    Errno::result(r).map(|p| (p as i32, status))
}

/// Sends `sig` to process `pid` (0 = own group, -1 = everyone permitted).
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: no user memory is passed.
    Errno::result(unsafe { syscall2(nr::KILL, pid as usize, sig as usize) }).map(|_| ())
}

/// Sends `sig` to thread `tid` of thread group `tgid`.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: no user memory is passed.
    Errno::result(unsafe { syscall3(nr::TGKILL, tgid as usize, tid as usize, sig as usize) })
        .map(|_| ())
}

/// Sets the address the kernel clears (and futex-wakes) when this thread exits;
/// returns the caller's tid.
///
/// # Safety
/// `addr` must stay valid writable memory until the thread exits (or be null).
pub unsafe fn set_tid_address(addr: *mut u32) -> i32 {
    // SAFETY: the caller keeps `addr` valid (contract above).
    unsafe { syscall1(nr::SET_TID_ADDRESS, addr as usize) as i32 }
}

/// `struct rlimit64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

/// `prlimit64(pid, resource, new, &old)`: reads and optionally sets a limit;
/// returns the previous value.
pub fn prlimit64(pid: i32, resource: u32, new: Option<&Rlimit>) -> Result<Rlimit, Errno> {
    let mut old = Rlimit::default();
    let new_ptr = new.map_or(0, |r| r as *const Rlimit as usize);
    // SAFETY: `new_ptr` is null or a valid Rlimit; `old` is writable.
    let r = unsafe {
        syscall4(
            nr::PRLIMIT64,
            pid as usize,
            resource as usize,
            new_ptr,
            &mut old as *mut Rlimit as usize,
        )
    };
    Errno::result(r).map(|_| old)
}
