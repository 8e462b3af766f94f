//! Waiting on many files: `poll`, `ppoll`, the epoll calls, and `eventfd2`. A wait
//! scans the files (each registering the waiting task's waker), and sleeps until one
//! of them changes, the timeout passes, or a signal comes.

use super::{fs::file_of, Outcome};
use crate::{
    arch::uaccess::{copy_to_user, read_user, write_user},
    proc::thread::Thread,
    vfs::{
        epoll::Epoll,
        eventfd::EventFd,
        events::{POLLERR, POLLHUP, POLLNVAL},
        flags::{O_CLOEXEC, O_NONBLOCK, O_RDWR},
        OpenFile,
    },
};
use alloc::{sync::Arc, vec::Vec};
use core::{future::poll_fn, future::Future as _, sync::atomic::Ordering, task::Poll};
use errno::{Errno, SysResult};

/// Most descriptors one `poll` takes (Linux's default `RLIMIT_NOFILE`).
const MAX_POLL_FDS: u64 = 1024;
/// Signals that no mask can block.
const UNBLOCKABLE: u64 = (1 << (9 - 1)) | (1 << (19 - 1));

/// A timeout: `None` waits forever, else the deadline in `time::now_ns` terms.
type Deadline = Option<u64>;

fn deadline_after_ms(timeout_ms: i64) -> Deadline {
    (timeout_ms >= 0).then(|| crate::time::now_ns().saturating_add(timeout_ms as u64 * 1_000_000))
}

/// A `struct timespec` timeout (NULL: forever); EINVAL for a negative or
/// out-of-range one.
fn deadline_from_timespec(addr: u64) -> SysResult<Deadline> {
    if addr == 0 {
        return Ok(None);
    }
    let [sec, nsec]: [i64; 2] = [read_user::<i64>(addr)?, read_user::<i64>(addr + 8)?];
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    let ns = (sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64);
    Ok(Some(crate::time::now_ns().saturating_add(ns)))
}

/// A temporary signal mask for the wait (`ppoll`, `epoll_pwait`): read from `addr`
/// (size must be 8), installed now and put back when the wait ends. (Linux keeps it
/// until a signal it let through is delivered; here that signal stays pending under
/// the old mask if it blocks it.)
fn temporary_mask(thread: &Thread, addr: u64, size: u64) -> SysResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = read_user(addr)?;
    Ok(Some(
        thread.sigmask.swap(mask & !UNBLOCKABLE, Ordering::SeqCst),
    ))
}

/// Waits until `scan` finds something (a non-zero count), the deadline passes (0) or
/// a signal comes (EINTR); `old_mask` is restored at the end.
fn wait_scanning<S>(
    thread: &Arc<Thread>,
    deadline: Deadline,
    old_mask: Option<u64>,
    mut scan: S,
) -> Outcome
where
    S: FnMut(&Thread, Option<&core::task::Waker>) -> SysResult + Send + 'static,
{
    let restore = move |thread: &Thread| {
        if let Some(mask) = old_mask {
            thread.sigmask.store(mask, Ordering::SeqCst);
        }
    };
    match scan(thread, None) {
        Ok(0) if deadline.is_none_or(|d| d > crate::time::now_ns()) => {}
        other => {
            restore(thread);
            return other.into();
        }
    }
    let thread = thread.clone();
    super::wait(async move {
        thread.clear_interrupt();
        let mut timer = crate::executor::scheduler().sleep_until(deadline.unwrap_or(u64::MAX));
        let result = poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            match scan(&thread, Some(cx.waker())) {
                Ok(0) => {}
                other => return Poll::Ready(other),
            }
            if core::pin::Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Ok(0));
            }
            if thread.is_interrupted() {
                return Poll::Ready(Err(Errno::EINTR));
            }
            Poll::Pending
        })
        .await;
        restore(&thread);
        result
    })
}

/// One pass over a `pollfd` array: writes every `revents`, returns how many are set.
/// `POLLERR` and `POLLHUP` are reported whether asked or not, `POLLNVAL` for a closed
/// descriptor; with `waker`, every file in the set wakes it at its next change.
fn poll_scan(thread: &Thread, fds: u64, nfds: u64, waker: Option<&core::task::Waker>) -> SysResult {
    let mut ready = 0u64;
    for i in 0..nfds {
        let at = fds.checked_add(i * 8).ok_or(Errno::EFAULT)?;
        let entry: u64 = read_user(at)?;
        let (fd, events) = (entry as u32, (entry >> 32) as u16);
        let revents = if (fd as i32) < 0 {
            0
        } else {
            match file_of(thread, u64::from(fd)) {
                Ok(file) if file.is_path_only() => POLLNVAL,
                Ok(file) => file.file().poll(waker) & (events | POLLERR | POLLHUP),
                Err(_) => POLLNVAL,
            }
        };
        if revents != 0 {
            ready += 1;
        }
        let word = u32::from(events) | (u32::from(revents) << 16);
        write_user(at.wrapping_add(4), &word)?;
    }
    Ok(ready)
}

/// `poll(fds, nfds, timeout_ms)`.
pub fn poll(thread: &Arc<Thread>, fds: u64, nfds: u64, timeout_ms: i64) -> Outcome {
    if nfds > MAX_POLL_FDS {
        return Err(Errno::EINVAL).into();
    }
    let deadline = deadline_after_ms(timeout_ms);
    wait_scanning(thread, deadline, None, move |t, w| {
        poll_scan(t, fds, nfds, w)
    })
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`.
pub fn ppoll(
    thread: &Arc<Thread>,
    fds: u64,
    nfds: u64,
    timeout: u64,
    mask: u64,
    size: u64,
) -> Outcome {
    if nfds > MAX_POLL_FDS {
        return Err(Errno::EINVAL).into();
    }
    let setup =
        deadline_from_timespec(timeout).and_then(|d| Ok((d, temporary_mask(thread, mask, size)?)));
    match setup {
        Ok((deadline, old)) => wait_scanning(thread, deadline, old, move |t, w| {
            poll_scan(t, fds, nfds, w)
        }),
        Err(e) => Err(e).into(),
    }
}

/// `eventfd2(initval, flags)`: `EFD_SEMAPHORE` (1), `EFD_NONBLOCK`, `EFD_CLOEXEC`.
pub fn eventfd2(thread: &Thread, initval: u64, flags: u64) -> SysResult {
    const EFD_SEMAPHORE: u32 = 1;
    let flags = flags as u32;
    if flags & !(EFD_SEMAPHORE | O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let file = EventFd::new(initval & 0xffff_ffff, flags & EFD_SEMAPHORE != 0);
    let file = OpenFile::new(Arc::new(file), O_RDWR | (flags & O_NONBLOCK), None);
    thread
        .process
        .files
        .lock()
        .insert(file, flags & O_CLOEXEC != 0)
}

/// `epoll_create1(flags)`: `EPOLL_CLOEXEC` only.
pub fn epoll_create1(thread: &Thread, flags: u64) -> SysResult {
    if flags as u32 & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let file = OpenFile::new(Arc::new(Epoll::default()), O_RDWR, None);
    thread
        .process
        .files
        .lock()
        .insert(file, flags as u32 & O_CLOEXEC != 0)
}

/// `epoll_create(size)`: EINVAL unless `size` > 0.
pub fn epoll_create(thread: &Thread, size: u64) -> SysResult {
    if size as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    epoll_create1(thread, 0)
}

/// The epoll open at `epfd`; EINVAL if it is another kind of file.
fn epoll_of(thread: &Thread, epfd: u64) -> SysResult<Arc<OpenFile>> {
    let file = file_of(thread, epfd)?;
    if !file.file().as_any().is::<Epoll>() {
        return Err(Errno::EINVAL);
    }
    Ok(file)
}

/// `epoll_ctl(epfd, op, fd, event)`.
pub fn epoll_ctl(thread: &Thread, epfd: u64, op: u64, fd: u64, event: u64) -> SysResult {
    use crate::vfs::epoll::{EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
    let op = op as u32;
    let (events, data) = if op == EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let raw: [u32; 3] = [
            read_user::<u32>(event)?,
            read_user::<u32>(event + 4)?,
            read_user::<u32>(event + 8)?,
        ];
        (raw[0], u64::from(raw[1]) | (u64::from(raw[2]) << 32))
    };
    let ep = file_of(thread, epfd)?;
    let target = file_of(thread, fd)?;
    if !target.file().pollable() {
        return Err(Errno::EPERM);
    }
    if epfd == fd || !ep.file().as_any().is::<Epoll>() {
        return Err(Errno::EINVAL);
    }
    if !matches!(op, EPOLL_CTL_ADD | EPOLL_CTL_DEL | EPOLL_CTL_MOD) {
        return Err(Errno::EINVAL);
    }
    let epoll = ep
        .file()
        .as_any()
        .downcast_ref::<Epoll>()
        .ok_or(Errno::EINVAL)?;
    epoll.ctl(op, fd as u32, &target, events, data)?;
    Ok(0)
}

/// `epoll_pwait2(epfd, events, maxevents, timeout, sigmask, sigsetsize)` and the
/// calls built on it (`epoll_wait`, `epoll_pwait`): the ready entries as packed
/// `struct epoll_event`s (12 bytes).
fn epoll_wait_until(
    thread: &Arc<Thread>,
    epfd: u64,
    events: u64,
    maxevents: u64,
    deadline: SysResult<Deadline>,
    mask: u64,
    size: u64,
) -> Outcome {
    const EVENT_BYTES: u64 = 12;
    let max = maxevents as i32;
    let setup = (|| {
        if max <= 0 || max as u64 > i32::MAX as u64 / EVENT_BYTES {
            return Err(Errno::EINVAL);
        }
        let ep = epoll_of(thread, epfd)?;
        crate::arch::uaccess::check_user_range(events, max as usize * EVENT_BYTES as usize)?;
        let deadline = deadline?;
        Ok((ep, deadline, temporary_mask(thread, mask, size)?))
    })();
    let (ep, deadline, old) = match setup {
        Ok(x) => x,
        Err(e) => return Err(e).into(),
    };
    wait_scanning(thread, deadline, old, move |_, waker| {
        let epoll = ep
            .file()
            .as_any()
            .downcast_ref::<Epoll>()
            .ok_or(Errno::EINVAL)?;
        let ready = epoll.ready(max as usize, waker, true);
        let mut out: Vec<u8> = crate::mem::kbuf::with_capacity(ready.len() * EVENT_BYTES as usize)?;
        for (ev, data) in &ready {
            out.extend_from_slice(&ev.to_le_bytes());
            out.extend_from_slice(&data.to_le_bytes());
        }
        copy_to_user(events, &out)?;
        Ok(ready.len() as u64)
    })
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)`.
pub fn epoll_wait(
    thread: &Arc<Thread>,
    epfd: u64,
    events: u64,
    maxevents: u64,
    timeout_ms: i64,
) -> Outcome {
    epoll_wait_until(
        thread,
        epfd,
        events,
        maxevents,
        Ok(deadline_after_ms(timeout_ms)),
        0,
        0,
    )
}

/// `epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask, sigsetsize)`.
pub fn epoll_pwait(
    thread: &Arc<Thread>,
    epfd: u64,
    events: u64,
    maxevents: u64,
    timeout_ms: i64,
    mask: u64,
    size: u64,
) -> Outcome {
    let deadline = Ok(deadline_after_ms(timeout_ms));
    epoll_wait_until(thread, epfd, events, maxevents, deadline, mask, size)
}

/// `epoll_pwait2(epfd, events, maxevents, timeout, sigmask, sigsetsize)`.
pub fn epoll_pwait2(
    thread: &Arc<Thread>,
    epfd: u64,
    events: u64,
    maxevents: u64,
    timeout: u64,
    mask: u64,
    size: u64,
) -> Outcome {
    let deadline = deadline_from_timespec(timeout);
    epoll_wait_until(thread, epfd, events, maxevents, deadline, mask, size)
}
