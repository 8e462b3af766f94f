//! `userfaultfd(2)`: the descriptor over `mm::userfaultfd::Userfault` (which parks the
//! faults and queues their messages), its ioctls (`UFFDIO_API`, `REGISTER`,
//! `UNREGISTER`, `WAKE`, `COPY`, `ZEROPAGE`, `MOVE`, `WRITEPROTECT`, `CONTINUE`), `read` of
//! `struct uffd_msg`, the creation gate of `vm.unprivileged_userfaultfd`, and the
//! kernel-mode waits:
//!
//! * 0: only callers holding SeDebugPrivilege (Linux's CAP_SYS_PTRACE) get one;
//! * 1: everyone;
//! * 2: callers without the privilege must ask for `UFFD_USER_MODE_ONLY`.
//!
//! A context made without `UFFD_USER_MODE_ONLY` (the dangerous mode the knob gates)
//! also holds faults taken by the kernel's user copies: the copy fails, the wait is
//! kept per CPU for the faulting thread ([`park_kernel_access`]), and the thread loop,
//! seeing the syscall fail with a wait kept, awaits it and runs the syscall again
//! ([`take_kernel_wait`]), so the syscall completes with the handler's data. The
//! syscalls that copy user memory commit nothing before their copies succeed (a pipe
//! drains, a file position moves, after the copy), so running one again is safe. A
//! signal ends the wait and the syscall returns its error (`EFAULT`), as on Linux.
//!
//! Missing and write-protect modes take private anonymous memory, minor mode shared
//! memory (memfd, tmpfs, shared anonymous); other combinations are EINVAL.

use crate::mem::aspace::{AddressSpace, PAGE};
use crate::tunable::{keep, key, Key, KeyKind};
use crate::{
    arch::uaccess::{read_user, write_user},
    proc::thread::Thread,
};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use errno::{Errno, SysResult};
use mm::addr::VirtAddr;
use mm::{
    fault::{intercept_mode, FaultFuture, FaultInterceptor, InterceptEvent, WaitReason},
    userfaultfd::{events, Config, Message, Userfault},
};
use sched::MAX_CPUS;
use security::Privilege;
use spin::Mutex;

/// `UFFD_USER_MODE_ONLY`.
pub const UFFD_USER_MODE_ONLY: u64 = 1;
/// `O_NONBLOCK`.
pub const O_NONBLOCK: u64 = 0o4000;
/// `O_CLOEXEC`.
pub const O_CLOEXEC: u64 = 0o2000000;
/// Size of `struct uffd_msg`.
pub const MSG_SIZE: u64 = 32;

const UFFD_API: u64 = 0xAA;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFD_EVENT_FORK: u8 = 0x13;
const UFFD_EVENT_REMAP: u8 = 0x14;
const UFFD_EVENT_REMOVE: u8 = 0x15;
const UFFD_EVENT_UNMAP: u8 = 0x16;

/// `UFFD_FEATURE_*` bits.
pub mod feature {
    /// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`.
    pub const PAGEFAULT_FLAG_WP: u64 = 1 << 0;
    /// `UFFD_FEATURE_EVENT_FORK`.
    pub const EVENT_FORK: u64 = 1 << 1;
    /// `UFFD_FEATURE_EVENT_REMAP`.
    pub const EVENT_REMAP: u64 = 1 << 2;
    /// `UFFD_FEATURE_EVENT_REMOVE`.
    pub const EVENT_REMOVE: u64 = 1 << 3;
    /// `UFFD_FEATURE_EVENT_UNMAP`.
    pub const EVENT_UNMAP: u64 = 1 << 6;
    /// `UFFD_FEATURE_SIGBUS`.
    pub const SIGBUS: u64 = 1 << 7;
    /// `UFFD_FEATURE_THREAD_ID`.
    pub const THREAD_ID: u64 = 1 << 8;
    /// `UFFD_FEATURE_MINOR_SHMEM`.
    pub const MINOR_SHMEM: u64 = 1 << 10;
    /// `UFFD_FEATURE_MOVE`.
    pub const MOVE: u64 = 1 << 16;
}

/// Every feature `UFFDIO_API` reports: exactly what this kernel implements.
pub const SUPPORTED_FEATURES: u64 = feature::PAGEFAULT_FLAG_WP
    | feature::EVENT_FORK
    | feature::EVENT_REMAP
    | feature::EVENT_REMOVE
    | feature::EVENT_UNMAP
    | feature::SIGBUS
    | feature::THREAD_ID
    | feature::MINOR_SHMEM
    | feature::MOVE;

const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;
const UFFDIO_REGISTER_MODE_MINOR: u64 = 4;
const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1;
const UFFDIO_COPY_MODE_WP: u64 = 2;
const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 2;
const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1;
const UFFDIO_CONTINUE_MODE_WP: u64 = 2;
const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1;
const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 2;

/// `_IOC` request numbers: direction (1 write, 2 read), size, type 0xAA, number.
const fn uffd_ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (0xAA << 8) | nr
}
const NR_REGISTER: u64 = 0x00;
const NR_UNREGISTER: u64 = 0x01;
const NR_WAKE: u64 = 0x02;
const NR_COPY: u64 = 0x03;
const NR_ZEROPAGE: u64 = 0x04;
const NR_MOVE: u64 = 0x05;
const NR_WRITEPROTECT: u64 = 0x06;
const NR_CONTINUE: u64 = 0x07;
const NR_API: u64 = 0x3F;
const UFFDIO_API: u64 = uffd_ioc(3, NR_API, 24);
const UFFDIO_REGISTER: u64 = uffd_ioc(3, NR_REGISTER, 32);
const UFFDIO_UNREGISTER: u64 = uffd_ioc(2, NR_UNREGISTER, 16);
const UFFDIO_WAKE: u64 = uffd_ioc(2, NR_WAKE, 16);
const UFFDIO_COPY: u64 = uffd_ioc(3, NR_COPY, 40);
const UFFDIO_ZEROPAGE: u64 = uffd_ioc(3, NR_ZEROPAGE, 32);
const UFFDIO_WRITEPROTECT: u64 = uffd_ioc(3, NR_WRITEPROTECT, 24);
const UFFDIO_CONTINUE: u64 = uffd_ioc(3, NR_CONTINUE, 32);
const UFFDIO_MOVE: u64 = uffd_ioc(3, NR_MOVE, 40);
/// The ioctls `UFFDIO_API` reports.
const API_IOCTLS: u64 = (1 << NR_REGISTER) | (1 << NR_UNREGISTER) | (1 << NR_API);
/// The ioctls `UFFDIO_REGISTER` reports for every range.
const RANGE_IOCTLS: u64 = (1 << NR_WAKE) | (1 << NR_COPY) | (1 << NR_ZEROPAGE);

/// An open userfaultfd: its context and the address space it serves. The last
/// descriptor's close releases it.
pub struct UserfaultFile {
    ctx: Arc<Userfault>,
    space: Weak<AddressSpace>,
    api_done: AtomicBool,
    nonblock: AtomicBool,
    /// The features negotiated at `UFFDIO_API`.
    features: AtomicU64,
    /// The flags it was made with (`O_CLOEXEC`, `O_NONBLOCK`, `UFFD_USER_MODE_ONLY`),
    /// which a fork child's descriptor gets too.
    flags: u64,
}

impl UserfaultFile {
    /// Whether reads return EAGAIN instead of waiting.
    pub fn nonblocking(&self) -> bool {
        self.nonblock.load(Ordering::Relaxed)
    }

    /// `fcntl(F_SETFL)`'s `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblock.store(on, Ordering::Relaxed);
    }

    /// The poll events: `POLLERR` before the API handshake and for a blocking
    /// descriptor (as on Linux: poll cannot promise that a read will not block, since
    /// a fault may be woken before it is read), else `POLLIN` while a message waits.
    pub fn poll_events(&self) -> u16 {
        const POLLIN: u16 = 0x1;
        const POLLERR: u16 = 0x8;
        if !self.api_done.load(Ordering::SeqCst) || !self.nonblocking() {
            POLLERR
        } else if self.ctx.has_message() {
            POLLIN
        } else {
            0
        }
    }

    /// Wakes `waker` at the next message (poll and blocking reads).
    pub fn register_reader(&self, waker: &core::task::Waker) {
        self.ctx.register_reader(waker);
    }

    fn hook(&self) -> Arc<dyn FaultInterceptor> {
        self.ctx.clone()
    }

    fn space(&self) -> SysResult<Arc<AddressSpace>> {
        self.space.upgrade().ok_or(Errno::ESRCH)
    }
}

impl Drop for UserfaultFile {
    fn drop(&mut self) {
        if self.features.load(Ordering::SeqCst) & EVENT_FEATURES != 0 {
            REPORTING_EVENTS.fetch_sub(1, Ordering::SeqCst);
        }
        if self.features.load(Ordering::SeqCst) & feature::EVENT_FORK != 0 {
            forget_fork_source(&self.ctx);
        }
        self.ctx.release();
        if let Some(space) = self.space.upgrade() {
            space.mm().clear_interceptor(&self.hook());
        }
    }
}

/// The thread id of the faulting thread (`UFFD_FEATURE_THREAD_ID`).
fn current_tid() -> u32 {
    crate::proc::current_thread().map_or(0, |t| t.tid as u32)
}

/// `userfaultfd(flags)`: a new context on the caller's address space.
pub fn create(thread: &Thread, flags: u64) -> SysResult<Arc<UserfaultFile>> {
    if flags & !(UFFD_USER_MODE_ONLY | O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let privileged = thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeDebugPrivilege);
    let user_mode_only = flags & UFFD_USER_MODE_ONLY != 0;
    let allowed = match UNPRIVILEGED_USERFAULTFD.get() {
        1 => true,
        2 => privileged || user_mode_only,
        _ => privileged,
    };
    if !allowed {
        return Err(Errno::EPERM);
    }
    create_ungated(thread, flags)
}

/// A new context without the `vm.unprivileged_userfaultfd` gate: for
/// `/dev/userfaultfd`'s `USERFAULTFD_IOC_NEW`, whose opener the device already
/// checked (as on Linux, where the device's permissions replace the knob).
pub fn create_ungated(thread: &Thread, flags: u64) -> SysResult<Arc<UserfaultFile>> {
    if flags & !(UFFD_USER_MODE_ONLY | O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let config = Config {
        user_mode_only: flags & UFFD_USER_MODE_ONLY != 0,
    };
    Ok(Arc::new(UserfaultFile {
        ctx: Userfault::with_config(config, current_tid),
        space: Arc::downgrade(&thread.process.address_space()),
        api_done: AtomicBool::new(false),
        nonblock: AtomicBool::new(flags & O_NONBLOCK != 0),
        features: AtomicU64::new(0),
        flags,
    }))
}

/// The `struct uffd_msg` of `m` as four words.
fn encode(m: &Message) -> [u64; 4] {
    match *m {
        Message::PageFault {
            address,
            flags,
            tid,
        } => [
            u64::from(UFFD_EVENT_PAGEFAULT),
            flags,
            address,
            u64::from(tid),
        ],
        Message::Fork { token } => [u64::from(UFFD_EVENT_FORK), token, 0, 0],
        Message::Remap { from, to, len } => [u64::from(UFFD_EVENT_REMAP), from, to, len],
        Message::Remove { start, end } => [u64::from(UFFD_EVENT_REMOVE), start, end, 0],
        Message::Unmap { start, end } => [u64::from(UFFD_EVENT_UNMAP), start, end, 0],
    }
}

/// Makes the open file of a userfaultfd (the file layer above supplies it).
pub type AsFile<'a> = &'a dyn Fn(Arc<UserfaultFile>) -> Arc<dyn crate::vfs::File>;

/// Writes up to `count / 32` queued messages to `buf`; the bytes written (0: none
/// queued). A message whose copy fails goes back to its queue. A fork event's new
/// descriptor is made with `as_file`.
pub fn read_messages(
    file: &UserfaultFile,
    buf: u64,
    count: u64,
    as_file: AsFile,
) -> SysResult<u64> {
    let mut written = 0;
    while written + MSG_SIZE <= count {
        let Some(m) = file.ctx.next_message() else {
            break;
        };
        let mut words = encode(&m);
        if let Message::Fork { token } = m {
            // `arg.fork.ufd`: the child's descriptor, made as the message is read.
            match fork_descriptor(file, token, as_file) {
                Ok(fd) => words[1] = fd,
                Err(e) => return if written > 0 { Ok(written) } else { Err(e) },
            }
        }
        if let Err(e) = write_user(buf + written, &words) {
            if let (Message::Fork { .. }, Some(thread)) = (m, crate::proc::current_thread()) {
                // The descriptor made for the lost message goes again.
                let _ = thread.process.files.lock().close(words[1]);
            } else {
                file.ctx.unread(m);
            }
            return if written > 0 { Ok(written) } else { Err(e) };
        }
        written += MSG_SIZE;
    }
    Ok(written)
}

/// A page-aligned, non-empty user range; EINVAL otherwise.
fn user_range(start: u64, len: u64) -> SysResult<(u64, u64)> {
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if !start.is_multiple_of(PAGE)
        || !len.is_multiple_of(PAGE)
        || len == 0
        || end > mm::aspace::TASK_SIZE
    {
        return Err(Errno::EINVAL);
    }
    Ok((start, end))
}

/// `UFFDIO_API`: the handshake. Reports every supported feature; asking for one this
/// kernel lacks is EINVAL (the struct comes back zeroed, as on Linux).
fn api(file: &UserfaultFile, arg: u64) -> SysResult {
    let mut api: [u64; 3] = read_user(arg)?;
    let asked = api[1];
    let refuse = |e: Errno| -> SysResult {
        write_user(arg, &[0u64; 3])?;
        Err(e)
    };
    if api[0] != UFFD_API {
        return refuse(Errno::EINVAL);
    }
    if asked & !SUPPORTED_FEATURES != 0 {
        return refuse(Errno::EINVAL);
    }
    if file.api_done.swap(true, Ordering::SeqCst) {
        return Err(Errno::EINVAL);
    }
    api[1] = SUPPORTED_FEATURES;
    api[2] = API_IOCTLS;
    if let Err(e) = write_user(arg, &api) {
        file.api_done.store(false, Ordering::SeqCst);
        return Err(e);
    }
    note_negotiated(file, asked);
    Ok(0)
}

/// Makes the negotiated features `asked` act on `file`'s context (the handshake, or a
/// fork child's descriptor, which starts with its parent's).
fn note_negotiated(file: &UserfaultFile, asked: u64) {
    file.features.store(asked, Ordering::SeqCst);
    file.ctx.set_features(
        asked & feature::SIGBUS != 0,
        asked & feature::THREAD_ID != 0,
    );
    if asked & EVENT_FEATURES != 0 {
        REPORTING_EVENTS.fetch_add(1, Ordering::SeqCst);
    }
    if asked & feature::EVENT_FORK != 0 {
        FORK_SOURCES.lock().push(ForkSource {
            ctx: Arc::downgrade(&file.ctx),
            features: asked,
            flags: file.flags,
        });
    }
    let events = [
        (feature::EVENT_FORK, events::FORK),
        (feature::EVENT_REMAP, events::REMAP),
        (feature::EVENT_REMOVE, events::REMOVE),
        (feature::EVENT_UNMAP, events::UNMAP),
    ]
    .iter()
    .filter(|(f, _)| asked & f != 0)
    .fold(0, |acc, (_, e)| acc | e);
    file.ctx.set_events(events);
}

/// The features that ask for events.
const EVENT_FEATURES: u64 = feature::EVENT_REMAP | feature::EVENT_REMOVE | feature::EVENT_UNMAP;

/// A live context that negotiated `UFFD_FEATURE_EVENT_FORK`, with what a fork child's
/// descriptor inherits from it.
struct ForkSource {
    ctx: Weak<Userfault>,
    features: u64,
    flags: u64,
}

/// The contexts a fork reports to (few: looked through only when a forking process
/// has registered ranges).
static FORK_SOURCES: Mutex<Vec<ForkSource>> = Mutex::new(Vec::new());

/// A fork reported and not yet read: the child's address space and what its
/// descriptor inherits, by the parent context and the message's token.
struct PendingFork {
    parent: Weak<Userfault>,
    token: u64,
    space: Weak<AddressSpace>,
    features: u64,
    flags: u64,
}

static PENDING_FORKS: Mutex<Vec<PendingFork>> = Mutex::new(Vec::new());

/// `ctx`'s last descriptor closed: forks no longer report to it, and the children it
/// was told of and never read are dropped.
fn forget_fork_source(ctx: &Arc<Userfault>) {
    FORK_SOURCES
        .lock()
        .retain(|s| s.ctx.strong_count() > 0 && !core::ptr::eq(s.ctx.as_ptr(), Arc::as_ptr(ctx)));
    PENDING_FORKS.lock().retain(|p| {
        p.parent.strong_count() > 0 && !core::ptr::eq(p.parent.as_ptr(), Arc::as_ptr(ctx))
    });
}

/// A fork of a process whose address space is `parent` made `child`: every context
/// with ranges registered in `parent` that negotiated `UFFD_FEATURE_EVENT_FORK` gets
/// a child context registered on the same ranges of `child` (same modes, same
/// write-protected pages) and a `UFFD_EVENT_FORK` message, whose reading installs a
/// descriptor for the child context in the reader's process. Returns the waits the
/// forking caller completes after: each ends when its handler has read the event, as
/// Linux's fork waits. Contexts without the feature are simply not inherited.
pub fn fork_events(parent: &AddressSpace, child: &Arc<AddressSpace>) -> Vec<FaultFuture> {
    if FORK_SOURCES.lock().is_empty() {
        return Vec::new();
    }
    let registrations = parent.mm().inherited_registrations();
    // (parent context, the source's inheritance, the child context)
    let mut made: Vec<(Arc<Userfault>, u64, u64, Arc<Userfault>)> = Vec::new();
    for (start, end, hook, modes) in registrations {
        let hook_at = Arc::as_ptr(&hook) as *const ();
        let known = made
            .iter()
            .find(|(p, ..)| core::ptr::eq(Arc::as_ptr(p) as *const (), hook_at))
            .map(|(.., c)| c.clone());
        let child_ctx = match known {
            Some(c) => c,
            None => {
                let source = FORK_SOURCES.lock().iter().find_map(|s| {
                    let ctx = s.ctx.upgrade()?;
                    core::ptr::eq(Arc::as_ptr(&ctx) as *const (), hook_at)
                        .then_some((ctx, s.features, s.flags))
                });
                let Some((ctx, features, flags)) = source else {
                    continue;
                };
                let c = ctx.fork_child();
                made.push((ctx, features, flags, c.clone()));
                c
            }
        };
        let child_hook: Arc<dyn FaultInterceptor> = child_ctx;
        if let Err(e) = child
            .mm()
            .register_interceptor(start, end - start, Some(child_hook), modes)
        {
            log::warn!("userfaultfd: fork child range {start:#x}..{end:#x} not registered: {e:?}");
        }
    }
    let mut waits = Vec::new();
    for (ctx, features, flags, child_ctx) in made {
        if let Some((token, done)) = ctx.report_fork(child_ctx) {
            PENDING_FORKS.lock().push(PendingFork {
                parent: Arc::downgrade(&ctx),
                token,
                space: Arc::downgrade(child),
                features,
                flags,
            });
            waits.push(FaultFuture::new(WaitReason::Userfault { addr: 0 }, done));
        }
    }
    waits
}

/// The descriptor a `UFFD_EVENT_FORK` message of `file` (under `token`) carries: a
/// new userfaultfd over the child context, installed in the reading process with the
/// parent descriptor's `O_CLOEXEC`/`O_NONBLOCK`, already past its handshake with the
/// parent's features.
fn fork_descriptor(file: &UserfaultFile, token: u64, as_file: AsFile) -> SysResult<u64> {
    let thread = crate::proc::current_thread().ok_or(Errno::ESRCH)?;
    let pending = {
        let mut all = PENDING_FORKS.lock();
        let i = all
            .iter()
            .position(|p| {
                p.token == token && core::ptr::eq(p.parent.as_ptr(), Arc::as_ptr(&file.ctx))
            })
            .ok_or(Errno::EINVAL)?;
        all.swap_remove(i)
    };
    let ctx = file.ctx.take_fork_child(token).ok_or(Errno::EINVAL)?;
    let child = Arc::new(UserfaultFile {
        ctx,
        space: pending.space,
        api_done: AtomicBool::new(true),
        nonblock: AtomicBool::new(pending.flags & O_NONBLOCK != 0),
        features: AtomicU64::new(0),
        flags: pending.flags,
    });
    note_negotiated(&child, pending.features);
    let status = crate::vfs::flags::O_RDWR | (pending.flags as u32 & crate::vfs::flags::O_NONBLOCK);
    let open = crate::vfs::OpenFile::new(as_file(child), status, None);
    thread
        .process
        .files
        .lock()
        .insert(open, pending.flags & O_CLOEXEC != 0)
}

/// Live descriptors that negotiated an event: while there are none, munmap, madvise
/// and mremap skip looking for interceptors to tell.
static REPORTING_EVENTS: AtomicUsize = AtomicUsize::new(0);

/// The interceptors on `[addr, addr + len)` of `space` that may want to hear of an
/// operation there (none, without a walk, while no descriptor asked for events).
pub fn listeners(space: &AddressSpace, addr: u64, len: u64) -> Vec<Arc<dyn FaultInterceptor>> {
    if REPORTING_EVENTS.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    space.mm().interceptors_in(addr, len)
}

/// Tells `listeners` of `event`: the completions the operation's caller waits on (each
/// completes when its handler has read the event, or closed its descriptor).
pub fn report(listeners: &[Arc<dyn FaultInterceptor>], event: InterceptEvent) -> Vec<FaultFuture> {
    listeners
        .iter()
        .filter_map(|l| l.notify(event))
        .map(|done| FaultFuture::new(WaitReason::Userfault { addr: 0 }, done))
        .collect()
}

/// The userfaultfd ioctls.
pub fn ioctl(file: &UserfaultFile, request: u64, arg: u64) -> SysResult {
    if request == UFFDIO_API {
        return api(file, arg);
    }
    if !file.api_done.load(Ordering::SeqCst) {
        return Err(Errno::EINVAL);
    }
    match request {
        UFFDIO_REGISTER => register(file, arg),
        UFFDIO_UNREGISTER => {
            let range: [u64; 2] = read_user(arg)?;
            let (start, end) = user_range(range[0], range[1])?;
            file.space()?
                .mm()
                .register_interceptor(start, end - start, None, 0)?;
            file.ctx.forget_range(start, end);
            note_woken(file.ctx.wake_range(start, end));
            Ok(0)
        }
        UFFDIO_WAKE => {
            let range: [u64; 2] = read_user(arg)?;
            let (start, end) = user_range(range[0], range[1])?;
            note_woken(file.ctx.wake_range(start, end));
            Ok(0)
        }
        UFFDIO_COPY => {
            let copy: [u64; 5] = read_user(arg)?;
            let [dst, src, len, mode, _] = copy;
            if mode & !(UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP) != 0 {
                return Err(Errno::EINVAL);
            }
            user_range(dst, len)?;
            src.checked_add(len)
                .filter(|&e| e <= mm::aspace::TASK_SIZE)
                .ok_or(Errno::EINVAL)?;
            let fill = Fill::Copy {
                src,
                write_protect: mode & UFFDIO_COPY_MODE_WP != 0,
            };
            fill_range(
                file,
                arg + 32,
                dst,
                len,
                fill,
                mode & UFFDIO_COPY_MODE_DONTWAKE == 0,
            )
        }
        UFFDIO_ZEROPAGE => {
            let zero: [u64; 4] = read_user(arg)?;
            let [start, len, mode, _] = zero;
            if mode & !UFFDIO_ZEROPAGE_MODE_DONTWAKE != 0 {
                return Err(Errno::EINVAL);
            }
            user_range(start, len)?;
            fill_range(
                file,
                arg + 24,
                start,
                len,
                Fill::Zero,
                mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE == 0,
            )
        }
        UFFDIO_WRITEPROTECT => write_protect(file, arg),
        UFFDIO_MOVE => move_range(file, arg),
        UFFDIO_CONTINUE => {
            let cont: [u64; 4] = read_user(arg)?;
            let [start, len, mode, _] = cont;
            if mode & !(UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP) != 0 {
                return Err(Errno::EINVAL);
            }
            user_range(start, len)?;
            let fill = Fill::Continue {
                write_protect: mode & UFFDIO_CONTINUE_MODE_WP != 0,
            };
            fill_range(
                file,
                arg + 24,
                start,
                len,
                fill,
                mode & UFFDIO_CONTINUE_MODE_DONTWAKE == 0,
            )
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `UFFDIO_REGISTER`: the modes' ranges and the ioctls they allow.
fn register(file: &UserfaultFile, arg: u64) -> SysResult {
    let mut reg: [u64; 4] = read_user(arg)?;
    let (start, end) = user_range(reg[0], reg[1])?;
    let mode = reg[2];
    let known = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR;
    if mode == 0 || mode & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let modes = [
        (UFFDIO_REGISTER_MODE_MISSING, intercept_mode::MISSING),
        (UFFDIO_REGISTER_MODE_WP, intercept_mode::WP),
        (UFFDIO_REGISTER_MODE_MINOR, intercept_mode::MINOR),
    ]
    .iter()
    .filter(|(m, _)| mode & m != 0)
    .fold(0, |acc, (_, bit)| acc | bit);
    file.space()?
        .mm()
        .register_interceptor(start, end - start, Some(file.hook()), modes)?;
    // A fresh registration starts with nothing write-protected.
    file.ctx.forget_range(start, end);
    let mut ioctls = RANGE_IOCTLS;
    if mode & UFFDIO_REGISTER_MODE_MINOR == 0 {
        // Anonymous memory: pages can be moved in.
        ioctls |= 1 << NR_MOVE;
    }
    if mode & UFFDIO_REGISTER_MODE_WP != 0 {
        ioctls |= 1 << NR_WRITEPROTECT;
    }
    if mode & UFFDIO_REGISTER_MODE_MINOR != 0 {
        ioctls |= 1 << NR_CONTINUE;
    }
    reg[3] = ioctls;
    write_user(arg, &reg)?;
    Ok(0)
}

/// `UFFDIO_WRITEPROTECT`: protects (`MODE_WP`) or unprotects a range registered in
/// write-protect mode (ENOENT otherwise); unprotecting wakes the range's faults unless
/// `MODE_DONTWAKE`.
fn write_protect(file: &UserfaultFile, arg: u64) -> SysResult {
    let wp: [u64; 3] = read_user(arg)?;
    let [start, len, mode] = wp;
    if mode & !(UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE) != 0 {
        return Err(Errno::EINVAL);
    }
    let protect = mode & UFFDIO_WRITEPROTECT_MODE_WP != 0;
    let dontwake = mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE != 0;
    if protect && dontwake {
        return Err(Errno::EINVAL);
    }
    let (start, end) = user_range(start, len)?;
    let ctx = &file.ctx;
    file.space()?.mm().write_protect_range(
        start,
        end - start,
        &file.hook(),
        protect,
        &mut |page| ctx.protect(page, protect),
    )?;
    if !protect && !dontwake {
        note_woken(ctx.wake_range(start, end));
    }
    Ok(0)
}

/// `UFFDIO_MOVE`: moves the pages of `[src, src + len)` to the empty pages of
/// `[dst, dst + len)` (registered with this context), writes the bytes moved (or
/// -errno when none) to the struct's `move` field and wakes the destination unless
/// `MODE_DONTWAKE`. A hole in the source is ENOENT unless `MODE_ALLOW_SRC_HOLES`;
/// EAGAIN for a partial move. Overlapping ranges move page by page, as on Linux 6.12.
fn move_range(file: &UserfaultFile, arg: u64) -> SysResult {
    let mv: [u64; 5] = read_user(arg)?;
    let [dst, src, len, mode, _] = mv;
    if mode & !(UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) != 0 {
        return Err(Errno::EINVAL);
    }
    user_range(dst, len)?;
    user_range(src, len)?;
    let space = file.space()?;
    let hook = file.hook();
    let mut done = 0;
    let mut err = None;
    while done < len {
        match space.mm().move_page(src + done, dst + done, &hook) {
            Ok(true) => {}
            Ok(false) if mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES != 0 => {}
            Ok(false) => {
                err = Some(Errno::ENOENT);
                break;
            }
            Err(e) => {
                err = Some(Errno::from(e));
                break;
            }
        }
        done += PAGE;
    }
    let reported = match (done, err) {
        (0, Some(e)) => e.as_return() as i64,
        _ => done as i64,
    };
    write_user(arg + 32, &reported)?;
    if done > 0 && mode & UFFDIO_MOVE_MODE_DONTWAKE == 0 {
        note_woken(file.ctx.wake_range(dst, dst + done));
    }
    match (done, err) {
        (_, None) => Ok(0),
        (0, Some(e)) => Err(e),
        _ => Err(Errno::EAGAIN),
    }
}

/// What [`fill_range`] puts in each page.
#[derive(Clone, Copy)]
enum Fill {
    /// `UFFDIO_COPY` from user memory at `src`.
    Copy { src: u64, write_protect: bool },
    /// `UFFDIO_ZEROPAGE`.
    Zero,
    /// `UFFDIO_CONTINUE`: the page cache's page.
    Continue { write_protect: bool },
}

/// `UFFDIO_COPY`, `ZEROPAGE` and `CONTINUE`: fills the empty pages of
/// `[dst, dst + len)`, writes the bytes filled (or -errno when none) to `result_at`,
/// wakes the filled range unless told not to. EAGAIN for a partial fill.
fn fill_range(
    file: &UserfaultFile,
    result_at: u64,
    dst: u64,
    len: u64,
    fill: Fill,
    wake: bool,
) -> SysResult {
    let space = file.space()?;
    let hook = file.hook();
    let outcome = if space.mm().intercepted_by(dst, len, &hook) {
        let mut done = 0;
        let mut err = None;
        while done < len {
            let at = dst + done;
            let step = match fill {
                Fill::Copy { src, write_protect } => {
                    if write_protect {
                        file.ctx.protect(at, true);
                    }
                    let r = copy_page_in(&space, at, src + done, write_protect);
                    if r.is_err() && write_protect {
                        file.ctx.protect(at, false);
                    }
                    r
                }
                Fill::Zero => space.mm().fill_missing_page(at, &[]).map_err(Errno::from),
                Fill::Continue { write_protect } => {
                    if write_protect {
                        file.ctx.protect(at, true);
                    }
                    let r = space.mm().continue_page(at, &hook, write_protect);
                    if r.is_err() && write_protect {
                        file.ctx.protect(at, false);
                    }
                    r.map_err(Errno::from)
                }
            };
            if let Err(e) = step {
                err = Some(e);
                break;
            }
            done += PAGE;
        }
        (done, err)
    } else {
        (0, Some(Errno::ENOENT))
    };
    let (done, err) = outcome;
    let reported = match (done, err) {
        (0, Some(e)) => e.as_return() as i64,
        _ => done as i64,
    };
    write_user(result_at, &reported)?;
    if done > 0 && wake {
        note_woken(file.ctx.wake_range(dst, dst + done));
    }
    match (done, err) {
        (_, None) => Ok(0),
        (0, Some(e)) => Err(e),
        _ => Err(Errno::EAGAIN),
    }
}

/// `vm.unprivileged_userfaultfd`: 0 privileged only, 1 everyone, 2 user-mode faults only.
pub static UNPRIVILEGED_USERFAULTFD: Key = key(
    "vm.unprivileged_userfaultfd",
    &["/proc/sys/vm/unprivileged_userfaultfd"],
    KeyKind::Int { min: 0, max: 2 },
    0,
    keep,
);

/// One page of `UFFDIO_COPY`: a frame is taken, the user's page at `src` copied
/// straight into it through the direct map (one pass over the bytes, as Linux's
/// copy into a fresh page), and mapped at the empty page `dst`.
fn copy_page_in(space: &AddressSpace, dst: u64, src: u64, write_protect: bool) -> SysResult<()> {
    let mm = space.mm();
    let pfn = mm
        .frames()
        .alloc(VirtAddr::new(dst))
        .map_err(|_| Errno::ENOMEM)?;
    if let Err(e) = crate::mem::frames::copy_user_page_into(pfn, src) {
        mm.frames().put(pfn);
        return Err(e);
    }
    Ok(mm.map_missing_frame(dst, pfn, write_protect)?)
}

/// Per CPU: a userfaultfd wait that a kernel access of the thread `.0` (by tid) hit,
/// kept for the thread loop to await before running the syscall again.
static KERNEL_WAIT: [Mutex<Option<(u64, FaultFuture)>>; MAX_CPUS] =
    [const { Mutex::new(None) }; MAX_CPUS];
/// Per CPU: [`KERNEL_WAIT`] may hold a wait (a cheap check on every syscall).
static KERNEL_WAIT_SET: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Per CPU: the ioctl running here woke parked faults (see [`take_woke_faults`]).
static WOKE_FAULTS: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Records that the running ioctl woke `woken` parked faults.
fn note_woken(woken: usize) {
    if woken > 0 {
        WOKE_FAULTS[this_cpu()].store(true, Ordering::Relaxed);
    }
}

/// Whether the ioctl that just ran on this CPU woke parked faults (and forgets it).
/// The syscall layer then lets the woken faulter run before the handler goes on, when
/// it waits on this CPU: the handler's next `read` finds the next message instead of
/// parking, and the faulter's wait does not include the handler's way back to user
/// mode and into `read` (Linux's wakeup preemption does the same for a woken task).
pub fn take_woke_faults() -> bool {
    let flag = &WOKE_FAULTS[this_cpu()];
    flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Relaxed)
}

fn this_cpu() -> usize {
    crate::arch::percpu::current_cpu().0 as usize
}

/// A kernel access (a syscall's user copy) faulted on a page a userfaultfd holds:
/// keeps `wait` for the current thread; the copy then fails, and the thread loop
/// awaits the wait and runs the syscall again.
pub fn park_kernel_access(wait: FaultFuture) {
    let Some(thread) = crate::proc::current_thread() else {
        return;
    };
    let cpu = this_cpu();
    *KERNEL_WAIT[cpu].lock() = Some((thread.tid as u64, wait));
    KERNEL_WAIT_SET[cpu].store(true, Ordering::Release);
}

/// Drops a wait kept by an access outside a syscall (signal delivery, exit), before
/// the next syscall on this CPU.
pub fn clear_kernel_wait() {
    let cpu = this_cpu();
    if KERNEL_WAIT_SET[cpu].load(Ordering::Relaxed) {
        KERNEL_WAIT_SET[cpu].store(false, Ordering::Relaxed);
        *KERNEL_WAIT[cpu].lock() = None;
    }
}

/// The wait a kernel access of thread `tid` kept during its syscall, if any.
pub fn take_kernel_wait(tid: u64) -> Option<FaultFuture> {
    let cpu = this_cpu();
    if !KERNEL_WAIT_SET[cpu].load(Ordering::Acquire) {
        return None;
    }
    KERNEL_WAIT_SET[cpu].store(false, Ordering::Relaxed);
    let (owner, wait) = KERNEL_WAIT[cpu].lock().take()?;
    (owner == tid).then_some(wait)
}
