//! `userfaultfd(2)`, missing mode: the descriptor over `mm::userfaultfd::Userfault`
//! (which parks the faults and queues their messages), its ioctls (`UFFDIO_API`,
//! `REGISTER`, `UNREGISTER`, `WAKE`, `COPY`, `ZEROPAGE`), `read` of `struct uffd_msg`
//! and the creation gate of `vm.unprivileged_userfaultfd`:
//!
//! * 0: only callers holding SeDebugPrivilege (Linux's CAP_SYS_PTRACE) get one;
//! * 1: everyone;
//! * 2: callers without the privilege must ask for `UFFD_USER_MODE_ONLY`.
//!
//! Write-protect and minor modes, and shared or file memory, are refused with EINVAL
//! for now (they come with the userfaultfd issue).

use crate::mem::aspace::{AddressSpace, PAGE};
use crate::tunable::{keep, key, Key, KeyKind};
use crate::{
    arch::uaccess::{copy_from_user, read_user, write_user},
    proc::thread::Thread,
};
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicBool, Ordering};
use errno::{Errno, SysResult};
use mm::{fault::FaultInterceptor, userfaultfd::Userfault};
use security::Privilege;

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
const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;
const UFFDIO_REGISTER_MODE_MINOR: u64 = 4;
const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1;
const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1;

/// `_IOC` request numbers: direction (1 write, 2 read), size, type 0xAA, number.
const fn uffd_ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (0xAA << 8) | nr
}
const NR_REGISTER: u64 = 0x00;
const NR_UNREGISTER: u64 = 0x01;
const NR_WAKE: u64 = 0x02;
const NR_COPY: u64 = 0x03;
const NR_ZEROPAGE: u64 = 0x04;
const NR_API: u64 = 0x3F;
const UFFDIO_API: u64 = uffd_ioc(3, NR_API, 24);
const UFFDIO_REGISTER: u64 = uffd_ioc(3, NR_REGISTER, 32);
const UFFDIO_UNREGISTER: u64 = uffd_ioc(2, NR_UNREGISTER, 16);
const UFFDIO_WAKE: u64 = uffd_ioc(2, NR_WAKE, 16);
const UFFDIO_COPY: u64 = uffd_ioc(3, NR_COPY, 40);
const UFFDIO_ZEROPAGE: u64 = uffd_ioc(3, NR_ZEROPAGE, 32);
/// The ioctls `UFFDIO_API` reports.
const API_IOCTLS: u64 = (1 << NR_REGISTER) | (1 << NR_UNREGISTER) | (1 << NR_API);
/// The ioctls `UFFDIO_REGISTER` reports for a missing-mode range.
const RANGE_IOCTLS: u64 = (1 << NR_WAKE) | (1 << NR_COPY) | (1 << NR_ZEROPAGE);

/// An open userfaultfd: its context and the address space it serves. The last
/// descriptor's close releases it.
pub struct UserfaultFile {
    ctx: Arc<Userfault>,
    space: Weak<AddressSpace>,
    api_done: AtomicBool,
    nonblock: AtomicBool,
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
    /// a fault may be woken before it is read), else `POLLIN` while a fault waits.
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

    /// Wakes `waker` at the next fault (poll and blocking reads).
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
        self.ctx.release();
        if let Some(space) = self.space.upgrade() {
            space.mm().clear_interceptor(&self.hook());
        }
    }
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
    Ok(Arc::new(UserfaultFile {
        ctx: Userfault::new(),
        space: Arc::downgrade(&thread.process.address_space()),
        api_done: AtomicBool::new(false),
        nonblock: AtomicBool::new(flags & O_NONBLOCK != 0),
    }))
}

/// Writes up to `count / 32` queued messages to `buf`; the bytes written (0: none queued).
pub fn read_messages(file: &UserfaultFile, buf: u64, count: u64) -> SysResult<u64> {
    let mut written = 0;
    while written + MSG_SIZE <= count {
        let Some(m) = file.ctx.next_message() else {
            break;
        };
        let flags = if m.write {
            UFFD_PAGEFAULT_FLAG_WRITE
        } else {
            0
        };
        let msg: [u64; 4] = [u64::from(UFFD_EVENT_PAGEFAULT), flags, m.address, 0];
        write_user(buf + written, &msg)?;
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

/// The userfaultfd ioctls.
pub fn ioctl(file: &UserfaultFile, request: u64, arg: u64) -> SysResult {
    if request == UFFDIO_API {
        let mut api: [u64; 3] = read_user(arg)?;
        if api[0] != UFFD_API || api[1] != 0 {
            return Err(Errno::EINVAL);
        }
        if file.api_done.swap(true, Ordering::SeqCst) {
            return Err(Errno::EINVAL);
        }
        api[1] = 0; // no optional features yet
        api[2] = API_IOCTLS;
        write_user(arg, &api)?;
        return Ok(0);
    }
    if !file.api_done.load(Ordering::SeqCst) {
        return Err(Errno::EINVAL);
    }
    match request {
        UFFDIO_REGISTER => {
            let mut reg: [u64; 4] = read_user(arg)?;
            let (start, end) = user_range(reg[0], reg[1])?;
            let mode = reg[2];
            let known =
                UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR;
            if mode & !known != 0 || mode != UFFDIO_REGISTER_MODE_MISSING {
                return Err(Errno::EINVAL);
            }
            file.space()?
                .mm()
                .set_interceptor(start, end - start, Some(file.hook()))?;
            reg[3] = RANGE_IOCTLS;
            write_user(arg, &reg)?;
            Ok(0)
        }
        UFFDIO_UNREGISTER => {
            let range: [u64; 2] = read_user(arg)?;
            let (start, end) = user_range(range[0], range[1])?;
            file.space()?
                .mm()
                .set_interceptor(start, end - start, None)?;
            file.ctx.wake_range(start, end);
            Ok(0)
        }
        UFFDIO_WAKE => {
            let range: [u64; 2] = read_user(arg)?;
            let (start, end) = user_range(range[0], range[1])?;
            file.ctx.wake_range(start, end);
            Ok(0)
        }
        UFFDIO_COPY => {
            let copy: [u64; 5] = read_user(arg)?;
            let [dst, src, len, mode, _] = copy;
            if mode & !UFFDIO_COPY_MODE_DONTWAKE != 0 {
                return Err(Errno::EINVAL);
            }
            user_range(dst, len)?;
            src.checked_add(len)
                .filter(|&e| e <= mm::aspace::TASK_SIZE)
                .ok_or(Errno::EINVAL)?;
            fill(
                file,
                arg + 32,
                dst,
                len,
                Some(src),
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
            fill(
                file,
                arg + 24,
                start,
                len,
                None,
                mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE == 0,
            )
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `UFFDIO_COPY` (from `src`) and `UFFDIO_ZEROPAGE` (`src` None): fills the empty pages
/// of `[dst, dst + len)`, writes the bytes filled (or -errno when none) to `result_at`,
/// wakes the filled range unless told not to. EAGAIN for a partial fill.
fn fill(
    file: &UserfaultFile,
    result_at: u64,
    dst: u64,
    len: u64,
    src: Option<u64>,
    wake: bool,
) -> SysResult {
    let space = file.space()?;
    let outcome = if space.mm().intercepted_by(dst, len, &file.hook()) {
        let mut page = alloc::vec![0u8; PAGE as usize];
        let mut done = 0;
        let mut err = None;
        while done < len {
            let step = match src {
                Some(s) => copy_from_user(&mut page, s + done),
                None => Ok(()),
            }
            .and_then(|()| Ok(space.mm().fill_missing_page(dst + done, &page)?));
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
        file.ctx.wake_range(dst, dst + done);
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
