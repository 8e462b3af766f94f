//! `uffd_modes`: userfaultfd beyond user-mode missing faults.
//!
//! * Kernel-mode faults that wait: `read(2)` from a pipe into a registered missing page
//!   parks until the handler's `UFFDIO_COPY`, then completes with the pipe's bytes on
//!   top of the handler's page; `write(2)` from a missing page sends the handler's
//!   bytes; `read(2)` of a memfd into one moves the file position once.
//! * Write-protect mode: a live snapshot (a writer faults on every protected page, the
//!   handler saves the old page and unprotects; the snapshot equals the pre-write
//!   contents); a `read(2)` into a protected page waits for the unprotect;
//!   `UFFDIO_COPY_MODE_WP`; the errors of `UFFDIO_WRITEPROTECT`.
//! * Minor mode on a memfd mapped twice: the page cache is filled through one mapping,
//!   a fault on the other is reported as minor and `UFFDIO_CONTINUE` maps the cache's
//!   page; a page not in the cache faults in without a message.
//! * `UFFDIO_API`: the features reported, an unknown one refused (struct zeroed),
//!   `UFFD_FEATURE_SIGBUS` (SIGBUS for a user access, EFAULT for a kernel one) and
//!   `UFFD_FEATURE_THREAD_ID`.
//! * Events: `madvise(MADV_DONTNEED)`, `mremap` (a move: the remap, then the unmap of
//!   the old range, as Linux reports it) and `munmap` of registered memory are reported
//!   as `UFFD_EVENT_REMOVE`, `REMAP` and `UNMAP`, and each call returns only once the
//!   handler has read its events.
//! * `UFFDIO_MOVE`: a fault resolved by moving pages in from elsewhere (the source
//!   then reads as zero), a source hole (ENOENT, accepted with
//!   `MODE_ALLOW_SRC_HOLES`), a mapped destination (EEXIST), a page shared with a
//!   child after fork (EBUSY).
//!
//! Every check passes on Linux 6.12 too (run as root).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::fs::{
    close, ftruncate, memfd_create, poll, read, read_raw, write, PollFd, MFD_CLOEXEC, O_CLOEXEC,
    POLLIN,
};
use peios_rt::sys::mm::{
    madvise, mmap, mmap_anon, mremap, munmap, MapFlags, MremapFlags, Prot, MADV_DONTNEED,
};
use peios_rt::sys::process::gettid;
use peios_rt::sys::uffd::{self, Message};
use peios_rt::thread::spawn;

peios_rt::main!(main);

const PAGE: usize = 4096;

/// A userfaultfd past its `UFFDIO_API` handshake with `features`.
fn ready_uffd(flags: u32, features: u64) -> Result<i32, Errno> {
    let fd = uffd::userfaultfd(O_CLOEXEC | flags)?;
    uffd::api(fd, uffd::UFFD_API, features)?;
    Ok(fd)
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
fn pipe() -> Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is two writable ints.
    Errno::result(unsafe {
        peios_rt::syscall::syscall2(293, fds.as_mut_ptr() as usize, O_CLOEXEC as usize)
    })?;
    Ok((fds[0], fds[1]))
}

/// The next message of a non-blocking descriptor, waiting up to 5 s for it.
fn wait_message(fd: i32) -> Result<Message, Errno> {
    let mut set = [PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    }];
    poll(&mut set, 5000)?;
    uffd::read_message(fd)
}

/// The bytes of `[addr, addr + len)` of a live mapping of ours.
fn bytes(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: callers pass ranges of their own live, populated mappings.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

/// Fills the page at `addr` with `byte` (volatile, so each store really faults).
fn fill_page(addr: usize, byte: u8) {
    for i in 0..PAGE {
        // SAFETY: `addr` is a page of our own live writable mapping.
        unsafe { core::ptr::write_volatile((addr + i) as *mut u8, byte) };
    }
}

fn is_fault(m: &Result<Message, Errno>, address: usize, flags: u64) -> bool {
    matches!(m, Ok(m) if m.event == uffd::EVENT_PAGEFAULT
        && m.address == address as u64 && m.flags == flags)
}

static READ_DONE: AtomicBool = AtomicBool::new(false);

/// `read(2)` and `write(2)` through registered missing pages wait for the handler.
fn kernel_faults_wait(c: &mut Checks) {
    let setup = (|| {
        let fd = ready_uffd(uffd::O_NONBLOCK, 0)?;
        let region = mmap_anon(3 * PAGE, Prot::RW)? as usize;
        uffd::register(fd, region, 3 * PAGE, uffd::MODE_MISSING)?;
        let (r, w) = pipe()?;
        Ok::<_, Errno>((fd, region, r, w))
    })();
    let Ok((fd, region, r, w)) = setup else {
        c.check("kernel-wait-setup", false, format_args!("{:?}", setup));
        return;
    };
    let handler_page = [b'H'; PAGE];

    // read(2) from a pipe into the empty page.
    let _ = write(w, b"from the pipe");
    READ_DONE.store(false, Ordering::SeqCst);
    let reader = spawn(move || {
        // SAFETY: the kernel writes at most 64 bytes into our registered page.
        let n = unsafe { read_raw(r, region as *mut u8, 64) };
        READ_DONE.store(true, Ordering::SeqCst);
        n
    });
    let msg = wait_message(fd);
    let waited = !READ_DONE.load(Ordering::SeqCst);
    c.check(
        "kernel-read-parks-and-reports",
        is_fault(&msg, region, uffd::PAGEFAULT_FLAG_WRITE) && waited,
        format_args!("{:x?}, read still waiting {}", msg, waited),
    );
    let (copied, _) = uffd::copy(fd, region, handler_page.as_ptr() as usize, PAGE, 0);
    let n = reader.map(|t| t.join());
    let page = bytes(region, PAGE);
    c.check(
        "read-completes-with-handler-page",
        copied.is_ok()
            && n == Ok(Ok(13))
            && &page[..13] == b"from the pipe"
            && page[13..].iter().all(|&b| b == b'H'),
        format_args!(
            "copy {:?}, read {:?}, page starts {:?}",
            copied,
            n,
            &page[..16]
        ),
    );

    // write(2) from an empty page sends what the handler puts there.
    let src = region + PAGE;
    let writer = spawn(move || write(w, bytes(src, 16)));
    let msg = wait_message(fd);
    let mut supplied = [0u8; PAGE];
    supplied[..16].copy_from_slice(b"handler says hi!");
    let (copied, _) = uffd::copy(fd, src, supplied.as_ptr() as usize, PAGE, 0);
    let wrote = writer.map(|t| t.join());
    let mut got = [0u8; 16];
    let n = read(r, &mut got);
    c.check(
        "write-sends-handler-bytes",
        is_fault(&msg, src, 0)
            && copied.is_ok()
            && wrote == Ok(Ok(16))
            && n == Ok(16)
            && &got == b"handler says hi!",
        format_args!(
            "{:x?}, copy {:?}, write {:?}, pipe {:?}",
            msg, copied, wrote, &got
        ),
    );

    // read(2) of a file moves its position once, however long it waited.
    let file_read = (|| {
        let mfd = memfd_create(c"uffd-kernel", MFD_CLOEXEC)?;
        write(mfd, b"0123456789abcdef")?;
        peios_rt::sys::fs::lseek_set(mfd, 0)?;
        Ok::<_, Errno>(mfd)
    })();
    match file_read {
        Ok(mfd) => {
            let dst = region + 2 * PAGE;
            let reader = spawn(move || {
                // SAFETY: the kernel writes at most 10 bytes into our registered page.
                unsafe { read_raw(mfd, dst as *mut u8, 10) }
            });
            let msg = wait_message(fd);
            let (zeroed, _) = uffd::zeropage(fd, dst, PAGE, 0);
            let n = reader.map(|t| t.join());
            let mut rest = [0u8; 6];
            let next = read(mfd, &mut rest);
            c.check(
                "file-read-waits-and-advances-once",
                is_fault(&msg, dst, uffd::PAGEFAULT_FLAG_WRITE)
                    && zeroed.is_ok()
                    && n == Ok(Ok(10))
                    && bytes(dst, 10) == b"0123456789"
                    && next == Ok(6)
                    && &rest == b"abcdef",
                format_args!(
                    "{:x?}, zeropage {:?}, read {:?}, then {:?} {:?}",
                    msg, zeroed, n, next, rest
                ),
            );
            let _ = close(mfd);
        }
        Err(e) => {
            c.check("file-read-setup", false, format_args!("{:?}", e));
        }
    }
    let _ = close(r);
    let _ = close(w);
    let _ = close(fd);
}

/// Write-protect mode: a live snapshot, a kernel write into a protected page, COPY_MODE_WP.
fn write_protect(c: &mut Checks) {
    const PAGES: usize = 4;
    let setup = (|| {
        let fd = ready_uffd(uffd::O_NONBLOCK, 0)?;
        let region = mmap_anon(PAGES * PAGE, Prot::RW)? as usize;
        Ok::<_, Errno>((fd, region))
    })();
    let Ok((fd, region)) = setup else {
        c.check("wp-setup", false, format_args!("{:?}", setup));
        return;
    };
    for i in 0..PAGES {
        fill_page(region + i * PAGE, 0x10 + i as u8);
    }
    let ioctls = uffd::register(fd, region, PAGES * PAGE, uffd::MODE_WP);
    c.check(
        "register-wp-offers-writeprotect",
        matches!(ioctls, Ok(i) if i & uffd::IOCTL_WRITEPROTECT_BIT != 0
            && i & uffd::IOCTL_CONTINUE_BIT == 0),
        format_args!("{:x?}", ioctls),
    );
    let protected = uffd::writeprotect(fd, region, PAGES * PAGE, uffd::WRITEPROTECT_MODE_WP);
    let sum: u64 = (0..PAGES)
        .map(|i| u64::from(bytes(region + i * PAGE, PAGE)[9]))
        .sum();
    let quiet = uffd::read_message(fd);
    c.check(
        "wp-reads-pass-silently",
        protected.is_ok()
            && sum == (0..PAGES as u64).map(|i| 0x10 + i).sum::<u64>()
            && quiet == Err(Errno::EAGAIN),
        format_args!(
            "protect {:?}, byte sum {}, message {:x?}",
            protected, sum, quiet
        ),
    );

    let writer = spawn(move || {
        for i in 0..PAGES {
            fill_page(region + i * PAGE, 0xEE);
        }
    });
    let mut snapshot = vec![0u8; PAGES * PAGE];
    let mut messages = 0;
    let mut bad = None;
    for _ in 0..PAGES {
        let m = wait_message(fd);
        let page = match m {
            Ok(m)
                if m.flags == uffd::PAGEFAULT_FLAG_WRITE | uffd::PAGEFAULT_FLAG_WP
                    && (m.address as usize) >= region
                    && (m.address as usize) < region + PAGES * PAGE =>
            {
                m.address as usize
            }
            other => {
                bad = Some(other);
                break;
            }
        };
        let at = page - region;
        snapshot[at..at + PAGE].copy_from_slice(bytes(page, PAGE));
        if let Err(e) = uffd::writeprotect(fd, page, PAGE, 0) {
            bad = Some(Err(e));
            break;
        }
        messages += 1;
    }
    let joined = writer.map(|t| t.join());
    c.check(
        "wp-write-faults-reported",
        messages == PAGES && bad.is_none() && joined.is_ok(),
        format_args!(
            "{} messages, bad {:x?}, writer {:?}",
            messages,
            bad,
            joined.is_ok()
        ),
    );
    let snapshot_ok = (0..PAGES).all(|i| {
        snapshot[i * PAGE..(i + 1) * PAGE]
            .iter()
            .all(|&b| b == 0x10 + i as u8)
    });
    c.check(
        "snapshot-equals-pre-write-contents",
        snapshot_ok,
        format_args!(
            "first bytes {:x?}",
            [snapshot[0], snapshot[PAGE], snapshot[3 * PAGE]]
        ),
    );
    c.check(
        "live-pages-hold-the-writes",
        bytes(region, PAGES * PAGE).iter().all(|&b| b == 0xEE),
        format_args!("first byte {:#x}", bytes(region, 1)[0]),
    );

    // A kernel write (read(2) from a pipe) into a protected page waits for the unprotect.
    let kernel = (|| {
        uffd::writeprotect(fd, region, PAGE, uffd::WRITEPROTECT_MODE_WP)?;
        let (r, w) = pipe()?;
        write(w, b"kernel")?;
        Ok::<_, Errno>((r, w))
    })();
    match kernel {
        Ok((r, w)) => {
            READ_DONE.store(false, Ordering::SeqCst);
            let reader = spawn(move || {
                // SAFETY: the kernel writes at most 6 bytes into our protected page.
                let n = unsafe { read_raw(r, region as *mut u8, 6) };
                READ_DONE.store(true, Ordering::SeqCst);
                n
            });
            let m = wait_message(fd);
            let waited = !READ_DONE.load(Ordering::SeqCst);
            let before = bytes(region, 6) == [0xEE; 6];
            let un = uffd::writeprotect(fd, region, PAGE, 0);
            let n = reader.map(|t| t.join());
            c.check(
                "kernel-write-to-protected-page-waits",
                is_fault(
                    &m,
                    region,
                    uffd::PAGEFAULT_FLAG_WRITE | uffd::PAGEFAULT_FLAG_WP,
                ) && waited
                    && before
                    && un.is_ok()
                    && n == Ok(Ok(6))
                    && bytes(region, 6) == b"kernel",
                format_args!(
                    "{:x?}, waited {}, unprotect {:?}, read {:?}",
                    m, waited, un, n
                ),
            );
            let _ = close(r);
            let _ = close(w);
        }
        Err(e) => {
            c.check("kernel-wp-setup", false, format_args!("{:?}", e));
        }
    }

    c.expect_errno(
        "writeprotect-wp-and-dontwake",
        uffd::writeprotect(
            fd,
            region,
            PAGE,
            uffd::WRITEPROTECT_MODE_WP | uffd::WRITEPROTECT_MODE_DONTWAKE,
        ),
        Errno::EINVAL,
    );
    let more = mmap_anon(3 * PAGE, Prot::RW).map(|p| p as usize);
    if let Ok(other) = more {
        let _ = uffd::register(fd, other, 2 * PAGE, uffd::MODE_MISSING | uffd::MODE_WP);
        let _ = uffd::register(fd, other + 2 * PAGE, PAGE, uffd::MODE_MISSING);
        c.expect_errno(
            "writeprotect-outside-wp-range",
            uffd::writeprotect(fd, other + 2 * PAGE, PAGE, uffd::WRITEPROTECT_MODE_WP),
            Errno::ENOENT,
        );
        // COPY_MODE_WP: the page arrives protected; the next write is reported.
        let reader = spawn(move || bytes(other, 4)[0]);
        let first = wait_message(fd);
        let src = [b'C'; PAGE];
        let (copied, _) = uffd::copy(fd, other, src.as_ptr() as usize, PAGE, uffd::COPY_MODE_WP);
        let read_back = reader.map(|t| t.join());
        let writer = spawn(move || fill_page(other, b'W'));
        let second = wait_message(fd);
        let unprotected = uffd::writeprotect(fd, other, PAGE, 0);
        let joined = writer.map(|t| t.join());
        c.check(
            "copy-mode-wp-protects-the-page",
            is_fault(&first, other, 0)
                && copied.is_ok()
                && read_back == Ok(b'C')
                && is_fault(
                    &second,
                    other,
                    uffd::PAGEFAULT_FLAG_WRITE | uffd::PAGEFAULT_FLAG_WP,
                )
                && unprotected.is_ok()
                && joined.is_ok()
                && bytes(other, PAGE).iter().all(|&b| b == b'W'),
            format_args!(
                "{:x?}, copy {:?}, read {:?}, {:x?}, unprotect {:?}",
                first, copied, read_back, second, unprotected
            ),
        );
    }
    let _ = close(fd);
}

/// Minor mode on a memfd mapped twice.
fn minor(c: &mut Checks) {
    let setup = (|| {
        let mfd = memfd_create(c"uffd-minor", MFD_CLOEXEC)?;
        ftruncate(mfd, 2 * PAGE as u64)?;
        // SAFETY: fresh shared mappings at addresses the kernel picks.
        let filler = unsafe { mmap(0, 2 * PAGE, Prot::RW, MapFlags::SHARED, mfd, 0)? } as usize;
        // SAFETY: as above.
        let watched = unsafe { mmap(0, 2 * PAGE, Prot::RW, MapFlags::SHARED, mfd, 0)? } as usize;
        let fd = ready_uffd(uffd::O_NONBLOCK, 0)?;
        Ok::<_, Errno>((mfd, filler, watched, fd))
    })();
    let Ok((mfd, filler, watched, fd)) = setup else {
        c.check("minor-setup", false, format_args!("{:?}", setup));
        return;
    };
    let anon = mmap_anon(PAGE, Prot::RW).map(|p| p as usize).unwrap_or(0);
    c.expect_errno(
        "minor-on-anonymous-memory",
        uffd::register(fd, anon, PAGE, uffd::MODE_MINOR),
        Errno::EINVAL,
    );
    let ioctls = uffd::register(fd, watched, 2 * PAGE, uffd::MODE_MINOR);
    c.check(
        "register-minor-offers-continue",
        matches!(ioctls, Ok(i) if i & uffd::IOCTL_CONTINUE_BIT != 0
            && i & uffd::IOCTL_WRITEPROTECT_BIT == 0),
        format_args!("{:x?}", ioctls),
    );
    const TEXT: &[u8] = b"filled through the other mapping";
    // SAFETY: `filler` is our live shared mapping, 2 pages long.
    unsafe { core::ptr::copy_nonoverlapping(TEXT.as_ptr(), filler as *mut u8, TEXT.len()) };
    let reader = spawn(move || {
        let mut got = [0u8; 32];
        got.copy_from_slice(bytes(watched, 32));
        got
    });
    let m = wait_message(fd);
    // The handler may still change the page through the other mapping before mapping it.
    // SAFETY: as above.
    unsafe { core::ptr::copy_nonoverlapping(b"fixed up".as_ptr(), (filler + 40) as *mut u8, 8) };
    let (r, mapped) = uffd::continue_range(fd, watched, PAGE, 0);
    let got = reader.map(|t| t.join());
    c.check(
        "minor-fault-continue-maps-cache-page",
        is_fault(&m, watched, uffd::PAGEFAULT_FLAG_MINOR)
            && r.is_ok()
            && mapped == PAGE as i64
            && got.as_ref().is_ok_and(|g| &g[..] == TEXT)
            && bytes(watched + 40, 8) == b"fixed up",
        format_args!(
            "{:x?}, continue {:?} {}, read {:?}",
            m,
            r,
            mapped,
            got.map(|g| g[0])
        ),
    );
    let (r, mapped) = uffd::continue_range(fd, watched, PAGE, 0);
    c.check(
        "continue-onto-mapped-page",
        r == Err(Errno::EEXIST) && mapped == -17,
        format_args!("{:?}, mapped {}", r, mapped),
    );
    // A page the cache does not hold yet faults in normally.
    let hole = spawn(move || bytes(watched + PAGE, 8)[3]);
    let byte = hole.map(|t| t.join());
    let quiet = uffd::read_message(fd);
    c.check(
        "uncached-page-faults-without-message",
        byte == Ok(0) && quiet == Err(Errno::EAGAIN),
        format_args!("read {:?}, message {:x?}", byte, quiet),
    );
    // A write through the minor-registered mapping reaches the other one.
    // SAFETY: `watched` is our live shared mapping, now mapped.
    unsafe { core::ptr::write_volatile((watched + 100) as *mut u8, 0x77) };
    c.check(
        "continued-page-is-shared",
        bytes(filler + 100, 1)[0] == 0x77,
        format_args!("{:#x}", bytes(filler + 100, 1)[0]),
    );
    let _ = close(fd);
    let _ = close(mfd);
}

static FAULTER_TID: AtomicI32 = AtomicI32::new(0);

/// UFFDIO_API's features: what is reported, refusal of an unknown one, SIGBUS and
/// THREAD_ID.
fn features(c: &mut Checks) {
    let wanted = uffd::FEATURE_PAGEFAULT_FLAG_WP
        | uffd::FEATURE_SIGBUS
        | uffd::FEATURE_THREAD_ID
        | uffd::FEATURE_MINOR_SHMEM;
    let reported = uffd::userfaultfd(O_CLOEXEC).and_then(|fd| {
        let r = uffd::api(fd, uffd::UFFD_API, 0);
        let _ = close(fd);
        r
    });
    c.check(
        "api-reports-features",
        matches!(reported, Ok((f, _)) if f & wanted == wanted),
        format_args!("{:x?}", reported),
    );
    let unknown = uffd::userfaultfd(O_CLOEXEC).and_then(|fd| {
        let mut w = [uffd::UFFD_API, 1 << 50, 0x55];
        let r = uffd::ioctl_words(fd, uffd::UFFDIO_API, &mut w);
        let _ = close(fd);
        r.map(|()| w).map_err(|e| (e, w)).or_else(
            |(e, w)| {
                if w == [0, 0, 0] {
                    Err(e)
                } else {
                    Ok(w)
                }
            },
        )
    });
    c.expect_errno("api-unknown-feature-zeroes-struct", unknown, Errno::EINVAL);

    let status = in_child(|| {
        let Ok(fd) = ready_uffd(0, uffd::FEATURE_SIGBUS) else {
            return 3;
        };
        let Ok(page) = mmap_anon(PAGE, Prot::RW).map(|p| p as usize) else {
            return 4;
        };
        if uffd::register(fd, page, PAGE, uffd::MODE_MISSING).is_err() {
            return 5;
        }
        let Ok((r, w)) = pipe() else { return 6 };
        let _ = write(w, b"x");
        // SAFETY: the kernel writes at most one byte into our registered page.
        if unsafe { read_raw(r, page as *mut u8, 1) } != Err(Errno::EFAULT) {
            return 7;
        }
        bytes(page, 1)[0] as i32 + 8
    });
    c.check(
        "sigbus-feature",
        matches!(status, Ok(WaitStatus::Signaled { signal: 7, .. })),
        format_args!("{:?} (exit 7: a kernel access did not get EFAULT)", status),
    );

    let tid = (|| {
        let fd = ready_uffd(uffd::O_NONBLOCK, uffd::FEATURE_THREAD_ID)?;
        let page = mmap_anon(PAGE, Prot::RW)? as usize;
        uffd::register(fd, page, PAGE, uffd::MODE_MISSING)?;
        let faulter = spawn(move || {
            FAULTER_TID.store(gettid(), Ordering::SeqCst);
            bytes(page, 1)[0]
        })?;
        let m = wait_message(fd);
        let _ = uffd::zeropage(fd, page, PAGE, 0);
        let _ = faulter.join();
        let _ = close(fd);
        Ok::<_, Errno>(m)
    })();
    let want = FAULTER_TID.load(Ordering::SeqCst);
    c.check(
        "thread-id-feature",
        matches!(tid, Ok(Ok(m)) if m.tid as i32 == want && want > 0),
        format_args!("{:x?}, faulter tid {}", tid, want),
    );
}

static OP_DONE: AtomicBool = AtomicBool::new(false);

/// Runs `op` on a thread and reads the events it causes until none comes for a
/// second: (messages, whether `op` was still waiting when the first arrived, `op`'s
/// result).
fn event_of<T: Send + 'static>(
    fd: i32,
    op: impl FnOnce() -> Result<T, Errno> + Send + 'static,
) -> (Vec<Message>, bool, Result<T, Errno>) {
    OP_DONE.store(false, Ordering::SeqCst);
    let worker = spawn(move || {
        let r = op();
        OP_DONE.store(true, Ordering::SeqCst);
        r
    });
    let mut messages = Vec::new();
    let mut waited = false;
    let mut timeout = 5000;
    loop {
        let mut set = [PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        }];
        if poll(&mut set, timeout) != Ok(1) {
            break;
        }
        if messages.is_empty() {
            waited = !OP_DONE.load(Ordering::SeqCst);
        }
        match uffd::read_message(fd) {
            Ok(m) => messages.push(m),
            Err(_) => break,
        }
        timeout = 1000;
    }
    let r = match worker {
        Ok(t) => t.join(),
        Err(e) => Err(e),
    };
    (messages, waited, r)
}

/// An event message: (event, its three argument words).
fn event(m: &Message) -> (u8, u64, u64, u64) {
    (m.event, m.flags, m.address, u64::from(m.tid))
}

/// UFFD_EVENT_REMOVE, REMAP and UNMAP.
fn events(c: &mut Checks) {
    const UFFD_EVENT_REMAP: u8 = 0x14;
    const UFFD_EVENT_REMOVE: u8 = 0x15;
    const UFFD_EVENT_UNMAP: u8 = 0x16;
    let features =
        uffd::FEATURE_EVENT_REMAP | uffd::FEATURE_EVENT_REMOVE | uffd::FEATURE_EVENT_UNMAP;
    let setup = (|| {
        let fd = ready_uffd(uffd::O_NONBLOCK, features)?;
        let region = mmap_anon(4 * PAGE, Prot::RW)? as usize;
        let target = mmap_anon(2 * PAGE, Prot::RW)? as usize;
        uffd::register(fd, region, 4 * PAGE, uffd::MODE_MISSING)?;
        let (r, _) = uffd::zeropage(fd, region, PAGE, 0);
        r?;
        Ok::<_, Errno>((fd, region, target))
    })();
    let Ok((fd, region, target)) = setup else {
        c.check("events-setup", false, format_args!("{:?}", setup));
        return;
    };
    let (start, mid, end) = (
        region as u64,
        (region + PAGE) as u64,
        (region + 2 * PAGE) as u64,
    );
    // SAFETY: the page is ours; its contents may go.
    let (m, waited, r) = event_of(fd, move || unsafe {
        madvise(region as *mut u8, PAGE, MADV_DONTNEED)
    });
    let got: Vec<_> = m.iter().map(event).collect();
    c.check(
        "madvise-dontneed-reports-remove",
        got == [(UFFD_EVENT_REMOVE, start, mid, 0)] && waited && r.is_ok(),
        format_args!("{:x?}, madvise waited {}, {:?}", got, waited, r),
    );
    // SAFETY: both ranges are ours and nothing refers into them.
    let (m, waited, r) = event_of(fd, move || unsafe {
        mremap(
            (region + 2 * PAGE) as *mut u8,
            2 * PAGE,
            2 * PAGE,
            MremapFlags::MAYMOVE | MremapFlags::FIXED,
            target,
        )
        .map(|p| p as usize)
    });
    let got: Vec<_> = m.iter().map(event).collect();
    c.check(
        "mremap-move-reports-remap",
        got == [
            (UFFD_EVENT_REMAP, end, target as u64, 2 * PAGE as u64),
            (UFFD_EVENT_UNMAP, end, end + 2 * PAGE as u64, 0),
        ] && waited
            && r == Ok(target),
        format_args!("{:x?}, mremap waited {}, {:x?}", got, waited, r),
    );
    // SAFETY: as above.
    let (m, waited, r) = event_of(fd, move || unsafe {
        munmap((region + PAGE) as *mut u8, PAGE)
    });
    let got: Vec<_> = m.iter().map(event).collect();
    c.check(
        "munmap-reports-unmap",
        got == [(UFFD_EVENT_UNMAP, mid, end, 0)] && waited && r.is_ok(),
        format_args!("{:x?}, munmap waited {}, {:?}", got, waited, r),
    );
    let quiet = uffd::read_message(fd);
    c.check(
        "one-message-per-event",
        quiet == Err(Errno::EAGAIN),
        format_args!("{:x?}", quiet),
    );
    let _ = close(fd);
}

/// UFFDIO_MOVE.
fn moves(c: &mut Checks) {
    let setup = (|| {
        let fd = ready_uffd(uffd::O_NONBLOCK, 0)?;
        let src = mmap_anon(2 * PAGE, Prot::RW)? as usize;
        let dst = mmap_anon(4 * PAGE, Prot::RW)? as usize;
        let ioctls = uffd::register(fd, dst, 4 * PAGE, uffd::MODE_MISSING)?;
        Ok::<_, Errno>((fd, src, dst, ioctls))
    })();
    let Ok((fd, src, dst, ioctls)) = setup else {
        c.check("move-setup", false, format_args!("{:?}", setup));
        return;
    };
    c.check(
        "register-offers-move",
        ioctls & uffd::IOCTL_MOVE_BIT != 0,
        format_args!("{:x}", ioctls),
    );
    fill_page(src, b'M');
    fill_page(src + PAGE, b'N');
    let reader = spawn(move || bytes(dst, 1)[0]);
    let m = wait_message(fd);
    let (r, moved) = uffd::move_range(fd, dst, src, 2 * PAGE, 0);
    let got = reader.map(|t| t.join());
    c.check(
        "move-resolves-fault",
        is_fault(&m, dst, 0)
            && r.is_ok()
            && moved == 2 * PAGE as i64
            && got == Ok(b'M')
            && bytes(dst + PAGE, PAGE).iter().all(|&b| b == b'N')
            && bytes(src, 1)[0] == 0,
        format_args!("{:x?}, move {:?} {}, read {:?}", m, r, moved, got),
    );
    // `src` reads as a fresh zero page now; page 1 of it is still a hole.
    let (r, moved) = uffd::move_range(fd, dst + 2 * PAGE, src + PAGE, PAGE, 0);
    c.check(
        "move-from-hole",
        r == Err(Errno::ENOENT) && moved == -2,
        format_args!("{:?}, move {}", r, moved),
    );
    let (r, _) = uffd::move_range(
        fd,
        dst + 2 * PAGE,
        src + PAGE,
        PAGE,
        uffd::MOVE_MODE_ALLOW_SRC_HOLES,
    );
    c.check("move-allowing-holes", r.is_ok(), format_args!("{:?}", r));
    fill_page(src, b'O');
    let (r, moved) = uffd::move_range(fd, dst, src, PAGE, 0);
    c.check(
        "move-onto-mapped-page",
        r == Err(Errno::EEXIST) && moved == -17,
        format_args!("{:?}, move {}", r, moved),
    );
    // A page shared with a child since fork cannot move.
    let shared = pipe().and_then(|(r, w)| match peios_rt::process::fork()? {
        peios_rt::process::Fork::Child => {
            let mut b = [0u8; 1];
            let _ = read(r, &mut b);
            peios_rt::sys::process::exit_group(0)
        }
        peios_rt::process::Fork::Parent(pid) => {
            let (res, moved) = uffd::move_range(fd, dst + 3 * PAGE, src, PAGE, 0);
            let _ = write(w, b"x");
            let _ = peios_rt::process::wait_pid(pid);
            let _ = close(r);
            let _ = close(w);
            Ok((res, moved))
        }
    });
    c.check(
        "move-shared-page-busy",
        matches!(shared, Ok((Err(Errno::EBUSY), -16))),
        format_args!("{:?}", shared),
    );
    let _ = close(fd);
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("uffd_modes");
    kernel_faults_wait(&mut checks);
    write_protect(&mut checks);
    minor(&mut checks);
    features(&mut checks);
    events(&mut checks);
    moves(&mut checks);
    checks.finish()
}
