//! The Linux x86_64 system-call ABI: the dispatch table maps syscall numbers to handlers
//! and nothing else. Handlers decode their raw arguments, validate them (returning a typed
//! `Errno`), and act. Most complete at once; the few that can wait return a future, so
//! the fast path allocates nothing.

#![deny(unsafe_code)]

mod caps;
mod chmod;
mod clone3;
pub mod entry;
pub mod fault;
mod fd;
mod fs;
mod info;
mod itimer;
mod membarrier;
mod memctl;
mod memory;
mod mount;
mod names;
mod numa;
mod pagecache;
mod path;
mod pidfd;
mod poll;
mod prctl;
mod process;
mod rusage;
mod rw;
mod signal;
mod sigwait;
mod statfs;
mod time;
mod timerfd;

use crate::{arch::usermode::UserContext, proc::thread::Thread};
use alloc::{boxed::Box, sync::Arc};
use core::{future::Future, pin::Pin};
use errno::{Errno, SysResult};

pub use numa::current_thread_policy;

/// A syscall's outcome as seen by the thread loop.
pub enum Outcome {
    /// Return this value in RAX now.
    Done(u64),
    /// Await this future for the value.
    Wait(Pin<Box<dyn Future<Output = u64> + Send>>),
    /// The thread gives its CPU to the other runnable tasks, then returns 0.
    Yield,
    /// The thread exits.
    Exit,
}

impl From<SysResult> for Outcome {
    fn from(r: SysResult) -> Self {
        Outcome::Done(match r {
            Ok(v) => v,
            Err(e) => e.as_return(),
        })
    }
}

/// sched_yield: returns at once when nothing else on this CPU could run (no queued
/// task, no due timer), as on Linux; otherwise the thread loop yields (no allocation).
fn sched_yield() -> Outcome {
    let sched = crate::executor::scheduler();
    if sched.has_other_work(crate::arch::percpu::current_cpu()) {
        Outcome::Yield
    } else {
        Outcome::Done(0)
    }
}

/// `ioctl`. A userfaultfd ioctl that woke parked faults gives the CPU to them first
/// when they wait on this CPU (see `memd::userfaultfd::take_woke_faults`); its result,
/// 0, is what a yield returns.
fn ioctl(thread: &Arc<Thread>, fd: u64, request: u64, arg: u64) -> Outcome {
    let result = fs::ioctl(thread, fd, request, arg);
    if crate::memd::userfaultfd::take_woke_faults()
        && result == Ok(0)
        && crate::executor::scheduler().has_local_work(crate::arch::percpu::current_cpu())
    {
        return Outcome::Yield;
    }
    result.into()
}

/// Wraps an async handler's result for the thread loop.
pub fn wait<F>(future: F) -> Outcome
where
    F: Future<Output = SysResult> + Send + 'static,
{
    Outcome::Wait(Box::pin(async move {
        match future.await {
            Ok(v) => v,
            Err(e) => e.as_return(),
        }
    }))
}

/// A handler's "run me again" (Linux's internal ERESTARTNOINTR): the thread loop rewinds
/// to the `syscall` instruction with the same arguments. Never reaches user mode.
pub const RESTART: u64 = (-513i64) as u64;

/// A blocking call a signal interrupted (Linux's internal ERESTARTSYS): the thread loop
/// runs it again after the signal if the handler has `SA_RESTART` (or none runs), else
/// returns EINTR. Never reaches user mode.
pub const RESTART_IF_SA_RESTART: u64 = (-512i64) as u64;

/// `execve`: the thread loop refreshes its address space after it.
pub const SYS_EXECVE: u64 = 59;

/// Peios-specific: replace the caller's token with its restricted form (drops every
/// privilege, lowers the integrity level). Dropping rights needs no right.
pub const SYS_PEIOS_RESTRICT_SELF: u64 = 1024;

/// The exit signal fork and vfork ask for.
const SIGCHLD: u64 = crate::proc::signal::SIGCHLD as u64;

/// A `pid_t` argument: Linux's is an `int`, so only the low 32 bits count (and the
/// sign is the int's: `i64::MIN` is pid 0, 0xffff_ffff is -1).
fn pid_arg(raw: u64) -> i64 {
    i64::from(raw as i32)
}

/// The low 32 bits of a register: what the kernel reads of an argument Linux declares
/// `int` or `unsigned int` (the upper half of the register is not part of it; musl, for
/// one, passes `int`s sign-extended). Applied in the table to the descriptor, flag and
/// command arguments of the file calls; the other families keep their own decoding.
fn lower32(reg: u64) -> u64 {
    reg & 0xffff_ffff
}

/// A directory-descriptor argument (an `int`: `AT_FDCWD` is -100).
fn dirfd(reg: u64) -> i64 {
    i64::from(reg as i32)
}

/// Dispatches system call `nr`.
pub fn dispatch(thread: &Arc<Thread>, ctx: &mut UserContext, nr: u64, a: [u64; 6]) -> Outcome {
    match nr {
        0 => fs::read(thread, lower32(a[0]), a[1], a[2]),
        1 => fs::write(thread, lower32(a[0]), a[1], a[2]),
        2 => fs::openat(thread, fs::AT_FDCWD, a[0], lower32(a[1]), lower32(a[2])).into(),
        3 => fs::close(thread, lower32(a[0])).into(),
        5 => fs::fstat(thread, lower32(a[0]), a[1]).into(),
        7 => poll::poll(thread, a[0], lower32(a[1]), a[2] as i32 as i64),
        8 => fs::lseek(thread, lower32(a[0]), a[1] as i64, lower32(a[2])).into(),
        9 => memory::mmap(thread, a[0], a[1], a[2], a[3], a[4], a[5]),
        10 => memory::mprotect(thread, a[0], a[1], a[2]).into(),
        11 => memory::munmap(thread, a[0], a[1]).into(),
        12 => memory::brk(thread, a[0]).into(),
        13 => signal::rt_sigaction(thread, a[0], a[1], a[2], a[3]).into(),
        14 => signal::rt_sigprocmask(thread, a[0], a[1], a[2], a[3]).into(),
        15 => signal::rt_sigreturn(thread, ctx),
        // fd and request are `unsigned int` (musl's ioctl() sign-extends the request).
        16 => ioctl(thread, lower32(a[0]), lower32(a[1]), a[2]),
        4 => path::newfstatat(thread, fs::AT_FDCWD, a[0], a[1], 0).into(),
        6 => path::newfstatat(thread, fs::AT_FDCWD, a[0], a[1], 0x100).into(),
        17 => rw::pread64(thread, lower32(a[0]), a[1], a[2], a[3]),
        18 => rw::pwrite64(thread, lower32(a[0]), a[1], a[2], a[3]),
        19 => rw::readv(thread, lower32(a[0]), a[1], a[2]),
        20 => rw::writev(thread, lower32(a[0]), a[1], a[2]),
        21 => path::faccessat2(thread, fs::AT_FDCWD, a[0], lower32(a[1]), 0).into(),
        22 => fd::pipe2(thread, a[0], 0).into(),
        33 => fd::dup2(thread, lower32(a[0]), lower32(a[1])).into(),
        79 => path::getcwd(thread, a[0], a[1]).into(),
        80 => path::chdir(thread, a[0]).into(),
        81 => path::fchdir(thread, lower32(a[0])).into(),
        89 => path::readlinkat(thread, fs::AT_FDCWD, a[0], a[1], a[2]).into(),
        95 => path::umask(thread, lower32(a[0])).into(),
        217 => path::getdents64(thread, lower32(a[0]), a[1], lower32(a[2])).into(),
        262 => path::newfstatat(thread, dirfd(a[0]), a[1], a[2], lower32(a[3])).into(),
        267 => path::readlinkat(thread, dirfd(a[0]), a[1], a[2], a[3]).into(),
        269 => path::faccessat2(thread, dirfd(a[0]), a[1], lower32(a[2]), 0).into(),
        292 => fd::dup3(thread, lower32(a[0]), lower32(a[1]), lower32(a[2])).into(),
        293 => fd::pipe2(thread, a[0], lower32(a[1])).into(),
        295 => rw::preadv(thread, lower32(a[0]), a[1], lower32(a[2]), a[3]),
        296 => rw::pwritev(thread, lower32(a[0]), a[1], lower32(a[2]), a[3]),
        332 => path::statx(
            thread,
            dirfd(a[0]),
            a[1],
            lower32(a[2]),
            lower32(a[3]),
            a[4],
        )
        .into(),
        213 => poll::epoll_create(thread, lower32(a[0])).into(),
        232 => poll::epoll_wait(
            thread,
            lower32(a[0]),
            a[1],
            lower32(a[2]),
            a[3] as i32 as i64,
        ),
        233 => poll::epoll_ctl(thread, lower32(a[0]), lower32(a[1]), lower32(a[2]), a[3]).into(),
        271 => poll::ppoll(thread, a[0], lower32(a[1]), a[2], a[3], a[4]),
        281 => poll::epoll_pwait(
            thread,
            lower32(a[0]),
            a[1],
            lower32(a[2]),
            a[3] as i32 as i64,
            a[4],
            a[5],
        ),
        284 => poll::eventfd2(thread, lower32(a[0]), 0).into(),
        290 => poll::eventfd2(thread, lower32(a[0]), lower32(a[1])).into(),
        291 => poll::epoll_create1(thread, lower32(a[0])).into(),
        441 => poll::epoll_pwait2(thread, lower32(a[0]), a[1], lower32(a[2]), a[3], a[4], a[5]),
        436 => fd::close_range(thread, lower32(a[0]), lower32(a[1]), lower32(a[2])).into(),
        439 => path::faccessat2(thread, dirfd(a[0]), a[1], lower32(a[2]), lower32(a[3])).into(),
        24 => sched_yield(),
        25 => memory::mremap(thread, a[0], a[1], a[2], a[3], a[4]).into(),
        26 => memory::msync(thread, a[0], a[1], a[2]).into(),
        27 => memory::mincore(thread, a[0], a[1], a[2]).into(),
        28 => memory::madvise(thread, a[0], a[1], a[2]),
        187 => pagecache::readahead(thread, a[0], a[1], a[2]).into(),
        221 => pagecache::fadvise64(thread, a[0], a[1], a[2], a[3]).into(),
        77 => fs::ftruncate(thread, lower32(a[0]), a[1]).into(),
        149 => memctl::mlock(thread, a[0], a[1]),
        150 => memctl::munlock(thread, a[0], a[1]).into(),
        151 => memctl::mlockall(thread, a[0]),
        152 => memctl::munlockall(thread).into(),
        325 => memctl::mlock2(thread, a[0], a[1], a[2]),
        462 => memctl::mseal(thread, a[0], a[1], a[2]).into(),
        237 => numa::mbind(thread, a[0], a[1], a[2], a[3], a[4], a[5]).into(),
        238 => numa::set_mempolicy(thread, a[0], a[1], a[2]).into(),
        239 => numa::get_mempolicy(thread, a[0], a[1], a[2], a[3], a[4]).into(),
        256 => numa::migrate_pages(thread, a[0], a[1], a[2], a[3]).into(),
        279 => numa::move_pages(thread, a[0], a[1], a[2], a[3], a[4], a[5]).into(),
        329 => memctl::pkey_mprotect(thread, a[0], a[1], a[2], a[3]).into(),
        330 => memctl::pkey_alloc(thread, ctx, a[0], a[1]).into(),
        331 => memctl::pkey_free(thread, a[0]).into(),
        216 => memory::remap_file_pages(thread, a[0], a[1], a[2], a[3], a[4]).into(),
        319 => fs::memfd_create(thread, a[0], lower32(a[1])).into(),
        323 => fs::userfaultfd(thread, lower32(a[0])).into(),
        32 => fs::dup(thread, lower32(a[0])).into(),
        35 => time::nanosleep(thread, a[0], a[1]),
        98 => rusage::getrusage(thread, a[0], a[1]).into(),
        100 => rusage::times(thread, a[0]).into(),
        283 => timerfd::timerfd_create(thread, a[0], a[1]).into(),
        285 => fs::fallocate(thread, lower32(a[0]), a[1], a[2], a[3]),
        286 => timerfd::timerfd_settime(thread, lower32(a[0]), a[1], a[2], a[3]).into(),
        287 => timerfd::timerfd_gettime(thread, lower32(a[0]), a[1]).into(),
        137 => statfs::statfs(thread, a[0], a[1]).into(),
        138 => statfs::fstatfs(thread, lower32(a[0]), a[1]).into(),
        127 => sigwait::rt_sigpending(thread, a[0], a[1]).into(),
        128 => sigwait::rt_sigtimedwait(thread, a[0], a[1], a[2], a[3]),
        34 => sigwait::pause(thread),
        130 => sigwait::rt_sigsuspend(thread, a[0], a[1]),
        125 => caps::capget(thread, a[0], a[1]).into(),
        126 => caps::capset(thread, a[0], a[1]).into(),
        36 => itimer::getitimer(thread, a[0], a[1]).into(),
        37 => itimer::alarm(thread, a[0]).into(),
        38 => itimer::setitimer(thread, a[0], a[1], a[2]).into(),
        39 => Ok(u64::from(thread.process.pid)).into(),
        56 => process::clone(thread, ctx, a[0], a[1], a[2], a[3], a[4]),
        57 => process::clone(thread, ctx, SIGCHLD, 0, 0, 0, 0),
        435 => clone3::clone3(thread, ctx, a[0], a[1]),
        324 => membarrier::membarrier(thread, a[0], a[1], a[2]).into(),
        // vfork: the child borrows the caller's memory and the caller waits for it.
        58 => process::clone(thread, ctx, 0x4000 | 0x100 | SIGCHLD, 0, 0, 0, 0),
        SYS_EXECVE => process::execve(thread, ctx, a[0], a[1], a[2]),
        60 => process::exit(thread, a[0]),
        61 => process::wait4(thread, pid_arg(a[0]), a[1], a[2], a[3]),
        247 => pidfd::waitid(thread, a[0], a[1], a[2], a[3], a[4]),
        424 => pidfd::pidfd_send_signal(thread, lower32(a[0]), a[1], a[2], a[3]).into(),
        434 => pidfd::pidfd_open(thread, a[0], a[1]).into(),
        448 => pidfd::process_mrelease(thread, lower32(a[0]), a[1]),
        62 => signal::kill(thread, pid_arg(a[0]), a[1]).into(),
        63 => info::uname(a[0]).into(),
        72 => fs::fcntl(thread, lower32(a[0]), lower32(a[1]), a[2]).into(),
        96 => time::gettimeofday(a[0], a[1]).into(),
        97 => info::prlimit64(thread, 0, a[0], 0, a[1]).into(),
        99 => info::sysinfo(a[0]).into(),
        102 | 107 => Ok(u64::from(info::uid(thread))).into(),
        104 | 108 => Ok(u64::from(info::gid(thread))).into(),
        109 => process::setpgid(thread, a[0], a[1]).into(),
        110 => Ok(u64::from(
            thread
                .process
                .ppid
                .load(core::sync::atomic::Ordering::Relaxed),
        ))
        .into(),
        131 => signal::sigaltstack(thread, a[0], a[1], ctx.rsp).into(),
        111 => process::getpgid(thread, 0).into(),
        112 => process::setsid(thread).into(),
        121 => process::getpgid(thread, a[0]).into(),
        124 => process::getsid(thread, a[0]).into(),
        135 => prctl::personality(thread, a[0]).into(),
        157 => prctl::prctl(thread, a[0], [a[1], a[2], a[3], a[4]]).into(),
        158 => process::arch_prctl(ctx, a[0], a[1]).into(),
        160 => info::prlimit64(thread, 0, a[0], a[1], 0).into(),
        165 => mount::mount(thread, a[0], a[1], a[2], a[3], a[4]).into(),
        166 => mount::umount2(thread, a[0], lower32(a[1])).into(),
        167 => match crate::memd::swap::swapon(thread, a[0], lower32(a[1])) {
            Ok(activate) => wait(activate),
            Err(e) => Err::<u64, _>(e).into(),
        },
        168 => match crate::memd::swap::swapoff(thread, a[0]) {
            Ok(drain) => wait(drain),
            Err(e) => Err::<u64, _>(e).into(),
        },
        186 => Ok(u64::from(thread.tid)).into(),
        200 => signal::tgkill(thread, -1, pid_arg(a[0]), a[1]).into(),
        201 => time::time(a[0]).into(),
        202 => process::futex(thread, a[0], a[1], a[2], a[3], a[5]),
        203 => process::sched_setaffinity(thread, a[0], a[1], a[2]).into(),
        204 => process::sched_getaffinity(thread, a[0], a[1], a[2]).into(),
        218 => {
            thread
                .clear_child_tid
                .store(a[0], core::sync::atomic::Ordering::SeqCst);
            Ok(u64::from(thread.tid)).into()
        }
        228 => time::clock_gettime(a[0], a[1]).into(),
        229 => time::clock_getres(a[0], a[1]).into(),
        230 => time::clock_nanosleep(thread, a[0], a[1], a[2], a[3]),
        231 => process::exit_group(thread, a[0]),
        234 => signal::tgkill(thread, pid_arg(a[0]), pid_arg(a[1]), a[2]).into(),
        257 => fs::openat(thread, dirfd(a[0]), a[1], lower32(a[2]), lower32(a[3])).into(),
        85 => fs::openat(thread, fs::AT_FDCWD, a[0], 0o1101, lower32(a[1])).into(), // creat
        76 => names::truncate(thread, a[0], a[1]).into(),
        90 => chmod::fchmodat2(thread, fs::AT_FDCWD, a[0], a[1], 0).into(),
        91 => chmod::fchmod(thread, lower32(a[0]), a[1]).into(),
        268 => chmod::fchmodat2(thread, dirfd(a[0]), a[1], a[2], 0).into(),
        452 => chmod::fchmodat2(thread, dirfd(a[0]), a[1], a[2], lower32(a[3])).into(),
        92 => chmod::fchownat(thread, fs::AT_FDCWD, a[0], a[1], a[2], 0).into(),
        93 => chmod::fchown(thread, lower32(a[0]), a[1], a[2]).into(),
        94 => chmod::fchownat(thread, fs::AT_FDCWD, a[0], a[1], a[2], 0x100).into(),
        260 => chmod::fchownat(thread, dirfd(a[0]), a[1], a[2], a[3], lower32(a[4])).into(),
        82 => names::renameat2(thread, fs::AT_FDCWD, a[0], fs::AT_FDCWD, a[1], 0).into(),
        264 => names::renameat2(thread, dirfd(a[0]), a[1], dirfd(a[2]), a[3], 0).into(),
        316 => names::renameat2(thread, dirfd(a[0]), a[1], dirfd(a[2]), a[3], lower32(a[4])).into(),
        83 => names::mkdirat(thread, fs::AT_FDCWD, a[0], lower32(a[1])).into(),
        258 => names::mkdirat(thread, dirfd(a[0]), a[1], lower32(a[2])).into(),
        84 => names::unlinkat(thread, fs::AT_FDCWD, a[0], 0x200).into(),
        87 => names::unlinkat(thread, fs::AT_FDCWD, a[0], 0).into(),
        263 => names::unlinkat(thread, dirfd(a[0]), a[1], lower32(a[2])).into(),
        273 => Ok(0).into(), // set_robust_list: accepted; robust futexes are not walked at exit
        302 => info::prlimit64(thread, a[0], a[1], a[2], a[3]).into(),
        309 => process::getcpu(a[0], a[1]).into(),
        310 => memory::process_vm_rw(thread, a[0], a[1], a[2], a[3], a[4], a[5], false).into(),
        311 => memory::process_vm_rw(thread, a[0], a[1], a[2], a[3], a[4], a[5], true).into(),
        318 => info::getrandom(a[0], a[1], a[2]).into(),
        SYS_PEIOS_RESTRICT_SELF => process::restrict_self(thread).into(),
        _ => {
            log::debug!(
                "pid {} tid {}: unimplemented syscall {nr}",
                thread.process.pid,
                thread.tid
            );
            Err::<u64, _>(Errno::ENOSYS).into()
        }
    }
}
