//! Process and thread syscalls: clone/fork, execve, exit, wait4, futex, affinity, TLS.

use super::{wait, Outcome};
use crate::{
    arch::{
        percpu, tlb,
        uaccess::{read_user, read_user_cstr, write_user},
        usermode::{TrapKind, UserContext, USER_ADDRESS_END},
    },
    initramfs,
    proc::{self, exec, futex, thread::Thread, ExitStatus},
};
use alloc::{boxed::Box, string::String, sync::Arc, vec::Vec};
use core::sync::atomic::Ordering;
use errno::{Errno, SysResult};
use security::AccessMask;

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const SUPPORTED_CLONE: u64 = 0xff
    | CLONE_VM
    | CLONE_FS
    | CLONE_PIDFD
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_VFORK
    | CLONE_PARENT
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

/// Most argv + envp strings accepted by execve.
const MAX_ARGS: usize = 4096;
/// Most argv + envp bytes accepted by execve.
const MAX_ARG_BYTES: usize = 256 * 1024;
/// Longest single argument or environment string, with its NUL (Linux's
/// `MAX_ARG_STRLEN`, 32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;

fn canonical_user(addr: u64) -> bool {
    addr < USER_ADDRESS_END
}

/// `clone`; with `CLONE_VFORK` the caller waits (as a future) until the child has let go
/// of the address space it was created with, by execve or exit, as Linux's vfork does.
/// Only a fatal signal to the caller ends that wait early.
pub fn clone(
    thread: &Arc<Thread>,
    ctx: &UserContext,
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
) -> Outcome {
    // CLONE_PIDFD writes the descriptor where CLONE_PARENT_SETTID writes the tid (the
    // same argument in `clone`; clone3 has a field for each).
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err::<u64, _>(Errno::EINVAL).into();
    }
    clone_with_pidfd_at(
        thread, ctx, flags, stack, parent_tid, child_tid, tls, parent_tid,
    )
}

/// [`clone`] with the address `CLONE_PIDFD` writes the descriptor to given apart (clone3).
#[allow(clippy::too_many_arguments)]
pub fn clone_with_pidfd_at(
    thread: &Arc<Thread>,
    ctx: &UserContext,
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    pidfd_at: u64,
) -> Outcome {
    // One attempt, from copies of the arguments (the retry below runs it again).
    let start = move |thread: &Arc<Thread>, ctx: &UserContext, waits: &mut Vec<_>| {
        clone_start(
            thread, ctx, flags, stack, parent_tid, child_tid, tls, pidfd_at, waits,
        )
    };
    let mut fork_waits = Vec::new();
    let started = start(thread, ctx, &mut fork_waits);
    if matches!(started, Err(Errno::ENOMEM)) && flags & CLONE_VM == 0 {
        // Perhaps short of frames for the child's page tables: as a fault (and
        // mremap) does, the call waits for a reclaim round while reclaim can make
        // progress and tries again, a few rounds at most (the ENOMEM may have another
        // cause: the commit limit); then ENOMEM. A failed attempt leaves nothing.
        let thread = thread.clone();
        let ctx = crate::arch::usermode::clone_with_live_fpu(ctx);
        return Outcome::Wait(Box::pin(async move {
            let retried = crate::mem::frames::retry_after_reclaim(FORK_RECLAIM_ROUNDS, || {
                if thread.is_interrupted() {
                    return Some((Err(Errno::ENOMEM), Vec::new()));
                }
                let mut fork_waits = Vec::new();
                match start(&thread, &ctx, &mut fork_waits) {
                    Err(Errno::ENOMEM) => None,
                    started => Some((started, fork_waits)),
                }
            })
            .await;
            let Some((started, fork_waits)) = retried else {
                return Errno::ENOMEM.as_return();
            };
            match clone_finish(&thread, flags, started, fork_waits) {
                Outcome::Done(value) => value,
                Outcome::Wait(rest) => rest.await,
                Outcome::Yield | Outcome::Exit => Errno::ENOMEM.as_return(),
            }
        }));
    }
    clone_finish(thread, flags, started, fork_waits)
}

/// Reclaim rounds a fork short of frames waits for before it gives ENOMEM.
const FORK_RECLAIM_ROUNDS: usize = 4;

/// The caller's side of a clone once [`clone_start`] has run: the error, the wait for
/// the userfaultfd fork events, or (`CLONE_VFORK`) the wait for the child to let go of
/// the address space.
fn clone_finish(
    thread: &Arc<Thread>,
    flags: u64,
    started: SysResult<(u32, Option<Arc<proc::Process>>)>,
    fork_waits: Vec<mm::fault::FaultFuture>,
) -> Outcome {
    let (tid, child) = match started {
        Ok(started) => started,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    if !fork_waits.is_empty() {
        return after_fork_events(thread, fork_waits, u64::from(tid));
    }
    let Some(child) = child.filter(|_| flags & CLONE_VFORK != 0) else {
        return Ok(u64::from(tid)).into();
    };
    let thread = thread.clone();
    Outcome::Wait(Box::pin(core::future::poll_fn(move |cx| {
        child.vfork_done.register(cx.waker());
        thread.interrupt_waker.register(cx.waker());
        if child.vfork_released() || thread.process.exiting.load(Ordering::SeqCst) {
            core::task::Poll::Ready(u64::from(tid))
        } else {
            core::task::Poll::Pending
        }
    })))
}

/// Creates and starts the clone; returns its tid and, for a new process, the process.
#[allow(clippy::too_many_arguments)]
fn clone_start(
    thread: &Arc<Thread>,
    ctx: &UserContext,
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    pidfd_at: u64,
    fork_waits: &mut Vec<mm::fault::FaultFuture>,
) -> SysResult<(u32, Option<Arc<proc::Process>>)> {
    if flags & !SUPPORTED_CLONE != 0 {
        return Err(Errno::EINVAL);
    }
    // A pidfd names a process, not a thread.
    if flags & CLONE_PIDFD != 0 && flags & (CLONE_THREAD | CLONE_DETACHED) != 0 {
        return Err(Errno::EINVAL);
    }
    if (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
    {
        return Err(Errno::EINVAL);
    }
    if flags & CLONE_SETTLS != 0 && !canonical_user(tls) {
        return Err(Errno::EPERM);
    }
    let process = &thread.process;
    // EAGAIN past kernel.threads-max, RLIMIT_NPROC or kernel.pid_max; the slot goes
    // back by itself if the clone fails further on.
    let slot = proc::reserve_task(process)?;
    let tid = slot.pid();
    let mut child_ctx = crate::arch::usermode::clone_with_live_fpu(ctx);
    child_ctx.rax = 0;
    child_ctx.kind = TrapKind::Fresh;
    if stack != 0 {
        child_ctx.rsp = stack;
    }
    if flags & CLONE_SETTLS != 0 {
        child_ctx.fs_base = tls;
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        write_user::<u32>(parent_tid, &tid)?;
    }
    // Everything that can fail for the caller's sake happens before the child exists
    // (a child made and then abandoned would never run nor be reaped): the pidfd's
    // number is taken and written back, the child's tid written into shared memory.
    let pidfd = if flags & CLONE_PIDFD != 0 {
        let reserved = super::pidfd::reserve_pidfd(thread)?;
        write_user::<i32>(pidfd_at, &(reserved.fd() as i32))?;
        Some(reserved)
    } else {
        None
    };
    if flags & CLONE_CHILD_SETTID != 0 && flags & CLONE_VM != 0 {
        write_user::<u32>(child_tid, &tid)?;
    }
    let sigmask = thread.sigmask.load(Ordering::SeqCst);
    let affinity = thread.affinity.load(Ordering::Relaxed);
    let child = if flags & CLONE_THREAD != 0 {
        if process.exiting.load(Ordering::SeqCst) {
            return Err(Errno::EAGAIN);
        }
        Thread::new(tid, process.clone(), sigmask, affinity, Some(slot))
    } else {
        let (space, forked_from) = if flags & CLONE_VM != 0 {
            (process.address_space(), None)
        } else {
            let parent = process.address_space();
            // A hugetlb file that drops pages while the copy runs may miss the child
            // (not listed yet): checked again once it is (below).
            let hugetlb_changes = mm::hugetlb_file::changes();
            // The same for a hole punched in shared memory.
            let shmem_punches = mm::pagecache::hole_punches();
            let changes = (hugetlb_changes, shmem_punches);
            (Arc::new(parent.fork()?), Some((parent, changes)))
        };
        let ppid = if flags & CLONE_PARENT != 0 {
            process.ppid.load(Ordering::SeqCst)
        } else {
            process.pid
        };
        let files = process.files.lock().clone();
        if let Some((parent, _)) = &forked_from {
            // Userfaultfd contexts that asked for fork events follow the child (before
            // it runs, after its descriptors are copied, so the handler's new
            // descriptor stays the parent's); the caller returns once their handlers
            // have read the events.
            *fork_waits = crate::memd::userfaultfd::fork_events(parent, &space);
        }
        let fs = process.fs.lock().clone();
        let exe = process.exe.lock().clone();
        let token = process.token.read().clone();
        let name = process.name.lock().clone();
        let rlimits = *process.rlimits.lock();
        let new = proc::new_process(proc::NewProcess {
            slot,
            ppid,
            name,
            aspace: space.clone(),
            files,
            fs,
            exe,
            token,
            rlimits,
        });
        if let Some((_, (hugetlb_changes, shmem_punches))) = forked_from {
            if mm::hugetlb_file::changes() != hugetlb_changes {
                space.mm().unmap_stale_hugetlb();
            }
            if mm::pagecache::hole_punches() != shmem_punches {
                space.mm().unmap_stale_shmem();
            }
        }
        {
            let parent_signals = process.signals.lock();
            let mut s = new.signals.lock();
            s.actions = parent_signals.actions;
        }
        Thread::new(tid, new, sigmask, affinity, None)
    };
    *child.mempolicy.lock() = *thread.mempolicy.lock();
    if flags & CLONE_CHILD_SETTID != 0 && flags & CLONE_VM == 0 {
        // Into the child's own copy of the memory, as Linux's child does at its first
        // run; a bad address is ignored there too.
        let space = child.process.address_space();
        let _ = space.mm().write_bytes(child_tid, &tid.to_ne_bytes());
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid.store(child_tid, Ordering::SeqCst);
    }
    let new_process = (flags & CLONE_THREAD == 0).then(|| child.process.clone());
    if let Some(reserved) = pidfd {
        reserved.bind(&child.process, 0);
    }
    super::entry::start(child, child_ctx);
    Ok((tid, new_process))
}

fn read_string_array(mut at: u64, total: &mut usize, out: &mut Vec<Vec<u8>>) -> SysResult<()> {
    if at == 0 {
        return Ok(());
    }
    loop {
        let ptr: u64 = read_user(at)?;
        if ptr == 0 {
            return Ok(());
        }
        // Linux: a string longer than MAX_ARG_STRLEN, or too many bytes in all, is E2BIG
        // (ENAMETOOLONG is for the path only).
        let s = read_user_cstr(ptr, MAX_ARG_STRLEN).map_err(|e| match e {
            Errno::ENAMETOOLONG => Errno::E2BIG,
            e => e,
        })?;
        if s.len() + 1 > MAX_ARG_STRLEN {
            return Err(Errno::E2BIG);
        }
        *total += s.len() + 1;
        if out.len() >= MAX_ARGS || *total > MAX_ARG_BYTES {
            return Err(Errno::E2BIG);
        }
        crate::mem::kbuf::reserve(out, 1)?;
        out.push(s);
        at = at.checked_add(8).ok_or(Errno::EFAULT)?;
    }
}

/// `execve`; in a multi-threaded process the other threads are made to exit first (the
/// call waits for them, then runs again), as Linux's de-threading does.
pub fn execve(
    thread: &Arc<Thread>,
    ctx: &mut UserContext,
    path: u64,
    argv: u64,
    envp: u64,
) -> Outcome {
    if let Some(wait) = disk_program_wait(thread, path) {
        return Outcome::Wait(wait);
    }
    let process = &thread.process;
    if process.live_threads.load(Ordering::SeqCst) > 1 {
        // The point of no return comes only after the program is known to be loadable:
        // a failing execve must leave the other threads alone.
        if let Err(e) = check_executable(thread, path) {
            return Err::<u64, _>(e).into();
        }
        for other in process
            .threads
            .lock()
            .iter()
            .filter(|t| !Arc::ptr_eq(t, thread))
        {
            other.request_exit();
        }
        let thread = thread.clone();
        return Outcome::Wait(alloc::boxed::Box::pin(core::future::poll_fn(move |cx| {
            thread.process.thread_exited.register(cx.waker());
            if thread.process.live_threads.load(Ordering::SeqCst) <= 1
                || thread.process.exiting.load(Ordering::SeqCst)
            {
                core::task::Poll::Ready(super::RESTART)
            } else {
                core::task::Poll::Pending
            }
        })));
    }
    execve_single(thread, ctx, path, argv, envp).into()
}

/// The program `name` names, resolved from the working directory: its canonical path
/// and image (an initramfs file, or a file of a disk copied out of the page cache,
/// which [`disk_program_wait`] made resident). EACCES for a directory or a file that
/// is neither, or has no execute bit; the walk's ENOENT, ENOTDIR, ELOOP,
/// ENAMETOOLONG.
fn program_image(
    thread: &Thread,
    name: &str,
) -> SysResult<(String, alloc::borrow::Cow<'static, [u8]>)> {
    let cwd = thread.process.fs.lock().cwd.clone();
    let r = crate::vfs::mount::resolve(&super::fs::caller(thread), &cwd, name, true)?;
    match r.found {
        pathwalk::Found::Missing => Err(Errno::ENOENT),
        pathwalk::Found::Dir => Err(Errno::EACCES),
        _ => match initramfs::lookup(&r.path) {
            Some(elf) => Ok((r.path, alloc::borrow::Cow::Borrowed(elf))),
            None => {
                let object = disk_program(thread, &r.path)?;
                let mut bytes = crate::mem::kbuf::zeroed(object.size_bytes() as usize)?;
                match object.read_resident(0, &mut bytes) {
                    (n, None) if n == bytes.len() => Ok((r.path, alloc::borrow::Cow::Owned(bytes))),
                    // Dropped from the cache since the wait: the caller's retry waits again.
                    _ => Err(Errno::EAGAIN),
                }
            }
        },
    }
}

/// Largest program read from a disk (its bytes are copied for loading).
const MAX_DISK_PROGRAM_BYTES: u64 = 64 << 20;

/// The page-cache object of the disk program at canonical `path`: EACCES without an
/// execute bit or for a file that cannot be mapped, ENOMEM past
/// [`MAX_DISK_PROGRAM_BYTES`].
fn disk_program(thread: &Thread, path: &str) -> SysResult<Arc<mm::pagecache::FileObject>> {
    let caller = super::fs::caller(thread);
    let open = crate::vfs::mount::open(&caller, "/", path, 0, 0)?;
    if open.file().stat().mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    let object = open.file().mmap_object().map_err(|_| Errno::EACCES)?;
    if object.size_bytes() > MAX_DISK_PROGRAM_BYTES {
        return Err(Errno::ENOMEM);
    }
    Ok(object)
}

/// For a program on a disk whose pages are not all resident: a future that reads
/// them in (the whole file, as one readahead) and ends when they are, after which
/// execve runs again. `None` when execve can go on now (or fails at once).
fn disk_program_wait(
    thread: &Thread,
    path: u64,
) -> Option<core::pin::Pin<Box<dyn core::future::Future<Output = u64> + Send>>> {
    let raw = read_user_cstr(path, 4096).ok()?;
    let name = core::str::from_utf8(&raw).ok()?;
    if let Some(wait) = disk_file_wait(thread, name) {
        return Some(wait);
    }
    // The program is resident (or not on a disk): then its interpreter.
    let (_, elf) = program_image(thread, name).ok()?;
    let interp = exec::interpreter_path(&elf).ok()??;
    disk_file_wait(thread, &interp)
}

/// For the disk file `name`, if not all its pages are resident: a future that reads
/// them in (as one readahead) and then has execve run again.
fn disk_file_wait(
    thread: &Thread,
    name: &str,
) -> Option<core::pin::Pin<Box<dyn core::future::Future<Output = u64> + Send>>> {
    let cwd = thread.process.fs.lock().cwd.clone();
    let r = crate::vfs::mount::resolve(&super::fs::caller(thread), &cwd, name, true).ok()?;
    if initramfs::lookup(&r.path).is_some() {
        return None;
    }
    let object = disk_program(thread, &r.path).ok()?;
    let pages = object.size_bytes().div_ceil(mm::frame::PAGE_SIZE);
    if (0..pages).all(|i| object.cache().is_ready(i)) {
        return None;
    }
    object.start_reads(0, pages);
    Some(Box::pin(async move {
        for index in 0..pages {
            match object.wait_for_page(index, pages - index) {
                Ok(Some(wait)) => wait.await,
                Ok(None) => {}
                Err(_) => break, // the retry reports the error
            }
        }
        super::RESTART
    }))
}

/// Checks that `path` names a program this kernel can load.
fn check_executable(thread: &Thread, path: u64) -> SysResult<()> {
    let raw = read_user_cstr(path, 4096)?;
    let name = core::str::from_utf8(&raw).map_err(|_| Errno::ENOENT)?;
    let (_, elf) = program_image(thread, name)?;
    let interp = interpreter_image(thread, &elf)?;
    exec::check(&elf, interp.as_deref())
}

/// The interpreter `elf` names, read from the initramfs or a disk as a program is
/// (ENOENT when it is missing, as Linux).
fn interpreter_image(
    thread: &Thread,
    elf: &[u8],
) -> SysResult<Option<alloc::borrow::Cow<'static, [u8]>>> {
    match exec::interpreter_path(elf)? {
        None => Ok(None),
        Some(path) => Ok(Some(program_image(thread, &path)?.1)),
    }
}

fn execve_single(
    thread: &Arc<Thread>,
    ctx: &mut UserContext,
    path: u64,
    argv: u64,
    envp: u64,
) -> SysResult {
    let raw = read_user_cstr(path, 4096)?;
    let name = core::str::from_utf8(&raw).map_err(|_| Errno::ENOENT)?;
    let mut args = Vec::new();
    let mut envs = Vec::new();
    let mut total = 0;
    read_string_array(argv, &mut total, &mut args)?;
    read_string_array(envp, &mut total, &mut envs)?;
    let (full, elf) = program_image(thread, name)?;
    let interp = interpreter_image(thread, &elf)?;
    let process = &thread.process;
    let uid = process.token.read().uid();
    let persona = process.controls.personality.load(Ordering::Relaxed);
    let image = exec::load(&elf, interp.as_deref(), &raw, &args, &envs, uid, persona)?;
    let new_space = Arc::new(image.aspace);
    let (old_space, _) = process.replace_address_space(new_space.clone());
    // PR_SET_THP_DISABLE survives execve, as on Linux.
    new_space
        .mm()
        .set_thp_disabled(old_space.mm().thp_disabled());
    tlb::activate(new_space.tlb_state());
    drop(old_space);
    process.release_vfork();
    crate::arch::usermode::save_fpu(ctx);
    *ctx = *image.ctx;
    percpu::current().fpu_owner.store(0, Ordering::Relaxed);
    process.signals.lock().reset_for_exec();
    process.files.lock().close_on_exec();
    *process.name.lock() = String::from(full.rsplit('/').next().unwrap_or(&full));
    *process.exe.lock() = full;
    Ok(0)
}

pub fn exit(thread: &Thread, code: u64) -> Outcome {
    thread
        .process
        .group_exit_code
        .store((code & 0xff) as i32, Ordering::SeqCst);
    Outcome::Exit
}

pub fn exit_group(thread: &Thread, code: u64) -> Outcome {
    thread
        .process
        .begin_exit(ExitStatus::Exited((code & 0xff) as u8));
    Outcome::Exit
}

pub fn wait4(thread: &Arc<Thread>, pid: i64, wstatus: u64, options: u64, rusage: u64) -> Outcome {
    const KNOWN: u64 = 1 | 2 | 8 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
    if options & !KNOWN != 0 {
        return Err::<u64, _>(Errno::EINVAL).into();
    }
    if pid == i64::from(i32::MIN) {
        return Err::<u64, _>(Errno::ESRCH).into();
    }
    let thread = thread.clone();
    wait(async move {
        let parent = thread.process.clone();
        match proc::wait::wait_child(parent, &thread, pid, options).await? {
            None => Ok(0),
            Some((child, status)) => {
                if wstatus != 0 {
                    write_user::<i32>(wstatus, &status.wait_status())?;
                }
                if rusage != 0 {
                    write_user(rusage, &[0u64; 18])?;
                }
                Ok(u64::from(child))
            }
        }
    })
}

pub fn futex(
    thread: &Arc<Thread>,
    uaddr: u64,
    op: u64,
    val: u64,
    timeout: u64,
    val3: u64,
) -> Outcome {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAKE: u64 = 1;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_WAKE_BITSET: u64 = 10;
    const FUTEX_CLOCK_REALTIME: u64 = 256;
    const FUTEX_PRIVATE_FLAG: u64 = 128;
    // The command is the low seven bits; FUTEX_PRIVATE_FLAG (128) and
    // FUTEX_CLOCK_REALTIME (256) lie above them.
    let cmd = op & 0x7f;
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    match cmd {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            if cmd == FUTEX_WAKE_BITSET && val3 as u32 == 0 {
                return Err::<u64, _>(Errno::EINVAL).into();
            }
            if !uaddr.is_multiple_of(4) {
                return Err::<u64, _>(Errno::EINVAL).into();
            }
            futex::wake(&thread.process, uaddr, val as u32, private).into()
        }
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if cmd == FUTEX_WAIT_BITSET && val3 as u32 == 0 {
                return Err::<u64, _>(Errno::EINVAL).into();
            }
            let deadline = if timeout == 0 {
                None
            } else {
                let ts = match super::time::read_timespec(timeout) {
                    Ok(ts) => ts,
                    Err(e) => return Err::<u64, _>(e).into(),
                };
                Some(if cmd == FUTEX_WAIT {
                    crate::time::now_ns().saturating_add(ts)
                } else {
                    super::time::clock_to_monotonic(op & FUTEX_CLOCK_REALTIME != 0, ts)
                })
            };
            if !uaddr.is_multiple_of(4) {
                return Err::<u64, _>(Errno::EINVAL).into();
            }
            let thread = thread.clone();
            wait(async move { futex::wait(&thread, uaddr, val as u32, deadline, private).await })
        }
        _ => Err::<u64, _>(Errno::ENOSYS).into(),
    }
}

pub fn arch_prctl(ctx: &mut UserContext, code: u64, addr: u64) -> SysResult {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    match code {
        ARCH_SET_FS => {
            if !canonical_user(addr) {
                return Err(Errno::EPERM);
            }
            ctx.fs_base = addr;
            Ok(0)
        }
        ARCH_GET_FS => write_user(addr, &ctx.fs_base).map(|()| 0),
        ARCH_GET_GS => write_user(addr, &0u64).map(|()| 0),
        ARCH_SET_GS => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

/// The thread `tid` names for the sched_* calls (0: the caller), once the caller has
/// been granted `desired` on its process; ESRCH if there is none, EPERM if refused.
fn thread_for(caller: &Arc<Thread>, tid: u64, desired: AccessMask) -> SysResult<Arc<Thread>> {
    let target = if tid == 0 || tid == u64::from(caller.tid) {
        caller.clone()
    } else {
        proc::thread_by_id(tid)?
    };
    proc::check_access(&caller.process, &target.process, desired)?;
    Ok(target)
}

pub fn sched_setaffinity(thread: &Arc<Thread>, tid: u64, len: u64, mask: u64) -> SysResult {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    let target = thread_for(thread, tid, AccessMask::PROCESS_SET_INFORMATION)?;
    let requested: u64 = read_user(mask)?;
    let all = crate::smp::online_mask();
    let allowed = requested & all;
    if allowed == 0 {
        return Err(Errno::EINVAL);
    }
    target.affinity.store(allowed, Ordering::SeqCst);
    if !Arc::ptr_eq(&target, thread) {
        target.interrupt();
    }
    Ok(0)
}

pub fn sched_getaffinity(thread: &Arc<Thread>, tid: u64, len: u64, mask: u64) -> SysResult {
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let target = thread_for(thread, tid, AccessMask::PROCESS_QUERY_LIMITED_INFORMATION)?;
    write_user(mask, &target.affinity.load(Ordering::SeqCst))?;
    Ok(8)
}

pub fn getcpu(cpu: u64, node: u64) -> SysResult {
    let here = percpu::current();
    if cpu != 0 {
        write_user::<u32>(cpu, &here.cpu_id.0)?;
    }
    if node != 0 {
        write_user::<u32>(node, &here.node)?;
    }
    Ok(0)
}

pub fn restrict_self(thread: &Arc<Thread>) -> SysResult {
    let process = &thread.process;
    let mut restricted = process.token.read().restricted();
    // A new session for the restricted token: its logon SID (unique: pids are never
    // reused) is what the descriptors of the processes it starts grant, since its user
    // SID may now be deny-only (Linux: a process may signal its same-uid children).
    if restricted.logon_sid().is_none() {
        restricted =
            restricted.with_group(security::Group::enabled(security::Sid::logon(process.pid)));
    }
    let restricted = Arc::new(restricted);
    *process.sd.write() = security::SecurityDescriptor::for_process(&restricted);
    *process.token.write() = restricted;
    Ok(0)
}

fn target_process(caller: &Arc<Thread>, pid: u64) -> SysResult<Arc<proc::Process>> {
    if pid == 0 {
        return Ok(caller.process.clone());
    }
    proc::lookup(u32::try_from(pid).map_err(|_| Errno::ESRCH)?).ok_or(Errno::ESRCH)
}

/// `setpgid(pid, pgid)`: the caller or one of its children joins or starts a group in the
/// caller's session.
pub fn setpgid(thread: &Arc<Thread>, pid: u64, pgid: u64) -> SysResult {
    if (pgid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let target = target_process(thread, pid)?;
    let caller = &thread.process;
    let is_child = target.ppid.load(Ordering::Relaxed) == caller.pid;
    if !Arc::ptr_eq(&target, caller) && !is_child {
        return Err(Errno::ESRCH);
    }
    let sid = caller.sid.load(Ordering::Relaxed);
    if target.sid.load(Ordering::Relaxed) != sid || target.sid.load(Ordering::Relaxed) == target.pid
    {
        return Err(Errno::EPERM);
    }
    let new = if pgid == 0 {
        target.pid
    } else {
        u32::try_from(pgid).map_err(|_| Errno::EINVAL)?
    };
    if new != target.pid
        && !proc::all()
            .iter()
            .any(|p| p.pgid.load(Ordering::Relaxed) == new && p.sid.load(Ordering::Relaxed) == sid)
    {
        return Err(Errno::EPERM);
    }
    target.pgid.store(new, Ordering::Relaxed);
    Ok(0)
}

/// `getpgid(pid)`.
pub fn getpgid(thread: &Arc<Thread>, pid: u64) -> SysResult {
    Ok(u64::from(
        target_process(thread, pid)?.pgid.load(Ordering::Relaxed),
    ))
}

/// `getsid(pid)`.
pub fn getsid(thread: &Arc<Thread>, pid: u64) -> SysResult {
    Ok(u64::from(
        target_process(thread, pid)?.sid.load(Ordering::Relaxed),
    ))
}

/// `setsid()`: a new session and group led by the caller (EPERM for a group leader).
pub fn setsid(thread: &Arc<Thread>) -> SysResult {
    let p = &thread.process;
    if proc::all()
        .iter()
        .any(|q| q.pgid.load(Ordering::Relaxed) == p.pid)
    {
        return Err(Errno::EPERM);
    }
    p.sid.store(p.pid, Ordering::Relaxed);
    p.pgid.store(p.pid, Ordering::Relaxed);
    Ok(u64::from(p.pid))
}

/// The outcome of a fork that reported `waits` (see `memd::userfaultfd::fork_events`): the child's id,
/// once every handler has read its event; a signal to the caller ends the wait early.
pub fn after_fork_events(
    thread: &Arc<Thread>,
    mut waits: Vec<mm::fault::FaultFuture>,
    value: u64,
) -> super::Outcome {
    let thread = thread.clone();
    super::wait(async move {
        thread.clear_interrupt();
        core::future::poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            waits.retain_mut(|w| {
                core::future::Future::poll(core::pin::Pin::new(w), cx).is_pending()
            });
            if waits.is_empty() || thread.is_interrupted() {
                core::task::Poll::Ready(Ok(value))
            } else {
                core::task::Poll::Pending
            }
        })
        .await
    })
}
