//! `uffd`: userfaultfd's missing mode, as a handler uses it. The API handshake and its
//! errors; registering (errors for bad ranges and modes); a thread's write fault
//! reported as a message and resolved by `UFFDIO_COPY` (the thread then sees the copied
//! page with its own write on top); `UFFDIO_ZEROPAGE`; `EEXIST`/`ENOENT` for filled and
//! unregistered pages; non-blocking reads; `poll` (POLLERR before the handshake and on a
//! blocking descriptor, as on Linux); `UFFDIO_WAKE` without a page (the fault is reported
//! again); a blocking read; `UFFD_USER_MODE_ONLY` (a syscall reading the range gets
//! `EFAULT`); closing the descriptor lets parked faults fill with zeros; SIGKILL ends a
//! process parked on a fault nobody answers. Runs the same on Linux (as root).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::{unmapped_page, Checks};
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{close, poll, read_raw, write, PollFd, O_CLOEXEC, POLLERR, POLLIN};
use peios_rt::sys::mm::{mmap_anon, Prot};
use peios_rt::sys::process::{exit_group, kill};
use peios_rt::sys::uffd::{self, Message};
use peios_rt::thread::spawn;
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

const PAGE: usize = 4096;

/// A userfaultfd past its `UFFDIO_API` handshake.
fn ready_uffd(flags: u32) -> Result<i32, Errno> {
    let fd = uffd::userfaultfd(O_CLOEXEC | flags)?;
    uffd::api(fd, uffd::UFFD_API, 0)?;
    Ok(fd)
}

/// Reads byte `offset` of the page at `page` (faulting it in).
fn peek(page: usize, offset: usize) -> u8 {
    // SAFETY: callers pass pages of their own live anonymous mappings.
    unsafe { core::ptr::read_volatile((page + offset) as *const u8) }
}

/// Polls `fd` for input: (descriptors ready, revents).
fn poll_in(fd: i32, timeout_ms: i32) -> Result<(usize, i16), Errno> {
    let mut set = [PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    }];
    poll(&mut set, timeout_ms).map(|n| (n, set[0].revents))
}

/// The next message of a non-blocking descriptor, waiting up to 5 s for it.
fn wait_message(fd: i32) -> Result<Message, Errno> {
    poll_in(fd, 5000)?;
    uffd::read_message(fd)
}

fn is_fault_at(m: &Result<Message, Errno>, address: usize, write: bool) -> bool {
    matches!(m, Ok(m) if m.event == uffd::EVENT_PAGEFAULT
        && m.address == address as u64
        && (m.flags & uffd::PAGEFAULT_FLAG_WRITE != 0) == write)
}

fn handshake(checks: &mut Checks, region: usize) -> Option<i32> {
    checks.expect_errno(
        "unknown-flags",
        uffd::userfaultfd(O_CLOEXEC | 0x100),
        Errno::EINVAL,
    );
    let fd = match uffd::userfaultfd(O_CLOEXEC | uffd::O_NONBLOCK) {
        Ok(fd) => fd,
        Err(e) => {
            checks.check("create", false, format_args!("{:?}", e));
            return None;
        }
    };
    checks.expect_errno(
        "register-before-api",
        uffd::register(fd, region, PAGE, uffd::MODE_MISSING),
        Errno::EINVAL,
    );
    let before_api = poll_in(fd, 0);
    checks.check(
        "poll-before-api-is-error",
        before_api == Ok((1, POLLERR)),
        format_args!("{:?}", before_api),
    );
    checks.expect_errno("api-wrong-version", uffd::api(fd, 0xAB, 0), Errno::EINVAL);
    let api = uffd::api(fd, uffd::UFFD_API, 0);
    checks.check(
        "api",
        matches!(api, Ok((_, ioctls)) if ioctls & uffd::IOCTL_REGISTER_BIT != 0),
        format_args!("{:x?}", api),
    );
    checks.expect_errno("api-twice", uffd::api(fd, uffd::UFFD_API, 0), Errno::EINVAL);
    // The request is an `unsigned int`: musl's ioctl() passes UFFDIO_API (0xC018AA3F)
    // sign-extended, and Linux reads only the low half.
    let sign_extended = uffd::userfaultfd(O_CLOEXEC).and_then(|fd2| {
        let mut words = [uffd::UFFD_API, 0, 0];
        let request = uffd::UFFDIO_API as u32 as i32 as i64 as u64;
        let r = uffd::ioctl_words(fd2, request, &mut words);
        let _ = peios_rt::sys::fs::close(fd2);
        r.map(|()| words[2])
    });
    checks.check(
        "api-sign-extended-request",
        matches!(sign_extended, Ok(ioctls) if ioctls & uffd::IOCTL_REGISTER_BIT != 0),
        format_args!("{:x?}", sign_extended),
    );
    Some(fd)
}

fn registration(checks: &mut Checks, fd: i32, region: usize) {
    checks.expect_errno(
        "register-unaligned",
        uffd::register(fd, region + 1, PAGE, uffd::MODE_MISSING),
        Errno::EINVAL,
    );
    checks.expect_errno(
        "register-mode-0",
        uffd::register(fd, region, PAGE, 0),
        Errno::EINVAL,
    );
    checks.expect_errno(
        "register-length-0",
        uffd::register(fd, region, 0, uffd::MODE_MISSING),
        Errno::EINVAL,
    );
    if let Some(hole) = unmapped_page() {
        checks.expect_errno(
            "register-unmapped",
            uffd::register(fd, hole, PAGE, uffd::MODE_MISSING),
            Errno::EINVAL,
        );
    }
    let ioctls = uffd::register(fd, region, 8 * PAGE, uffd::MODE_MISSING);
    checks.check(
        "register",
        matches!(ioctls, Ok(i) if i & uffd::IOCTL_COPY_BIT != 0),
        format_args!("{:x?}", ioctls),
    );
}

/// A thread's write fault, reported (read after poll) and resolved by UFFDIO_COPY; then the errors of
/// filling a filled or unregistered page, and a zero page.
fn copy_and_zeropage(checks: &mut Checks, fd: i32, region: usize) {
    let target = region + PAGE;
    let faulter = spawn(move || {
        // SAFETY: `target` is a page of the live registered mapping.
        unsafe { core::ptr::write_volatile((target + 10) as *mut u8, 0x5a) };
        (0..PAGE).map(|i| u64::from(peek(target, i))).sum::<u64>()
    });
    let msg = wait_message(fd);
    checks.check(
        "write-fault-message",
        is_fault_at(&msg, target, true),
        format_args!("{:x?} (page {:#x})", msg, target),
    );
    let src = vec![7u8; PAGE];
    let (r, copied) = uffd::copy(fd, target, src.as_ptr() as usize, PAGE, 0);
    checks.check(
        "copy",
        r.is_ok() && copied == PAGE as i64,
        format_args!("{:?}, copy {}", r, copied),
    );
    let sum = faulter.map(|t| t.join());
    checks.check(
        "faulting-thread-sees-copy",
        sum == Ok(7 * (PAGE as u64 - 1) + 0x5a),
        format_args!("byte sum {:?}", sum),
    );
    let (r, copied) = uffd::copy(fd, target, src.as_ptr() as usize, PAGE, 0);
    checks.check(
        "copy-onto-filled-page",
        r == Err(Errno::EEXIST) && copied == -17,
        format_args!("{:?}, copy {}", r, copied),
    );
    let (r, copied) = uffd::copy(fd, target, src.as_ptr() as usize, PAGE, 4);
    checks.expect_errno("copy-unknown-mode", r.map(|_| copied), Errno::EINVAL);
    let elsewhere = mmap_anon(PAGE, Prot::RW).map(|p| p as usize).unwrap_or(0);
    let (r, copied) = uffd::copy(fd, elsewhere, src.as_ptr() as usize, PAGE, 0);
    checks.check(
        "copy-to-unregistered",
        r == Err(Errno::ENOENT) && copied == -2,
        format_args!("{:?}, copy {}", r, copied),
    );
    if let Some(hole) = unmapped_page() {
        let (r, copied) = uffd::copy(fd, region + 4 * PAGE, hole, PAGE, 0);
        checks.check(
            "copy-from-unmapped-source",
            r == Err(Errno::EFAULT) && copied == -14,
            format_args!("{:?}, copy {}", r, copied),
        );
    }
    // SAFETY: the kernel is handed an unmapped struct address and must refuse it.
    let bad_arg = Errno::result(unsafe {
        peios_rt::syscall::syscall3(
            peios_rt::sys::nr::IOCTL,
            fd as usize,
            uffd::UFFDIO_COPY as usize,
            unmapped_page().unwrap_or(0),
        )
    });
    checks.expect_errno("ioctl-bad-struct-pointer", bad_arg, Errno::EFAULT);
    let zero_at = region + 2 * PAGE;
    let (r, zeroed) = uffd::zeropage(fd, zero_at, PAGE, 0);
    checks.check(
        "zeropage",
        r.is_ok() && zeroed == PAGE as i64 && peek(zero_at, 100) == 0,
        format_args!("{:?}, zeropage {}", r, zeroed),
    );
}

/// poll, a wake without a page (reported again), then a zero page.
fn poll_and_wake(checks: &mut Checks, fd: i32, region: usize) {
    let idle = poll_in(fd, 0);
    let target = region + 3 * PAGE;
    let faulter = spawn(move || peek(target, 5));
    let woke = poll_in(fd, 5000);
    checks.check(
        "poll",
        idle == Ok((0, 0)) && woke == Ok((1, POLLIN)),
        format_args!("idle {:?}, after a fault {:?}", idle, woke),
    );
    let first = uffd::read_message(fd);
    let wake = uffd::wake(fd, target, PAGE);
    let second = wait_message(fd);
    checks.check(
        "wake-without-page-refaults",
        is_fault_at(&first, target, false) && wake.is_ok() && is_fault_at(&second, target, false),
        format_args!("{:x?}, wake {:?}, {:x?}", first, wake, second),
    );
    let (r, _) = uffd::zeropage(fd, target, PAGE, 0);
    let byte = faulter.map(|t| t.join());
    checks.check(
        "read-fault-resolved",
        r.is_ok() && byte == Ok(0),
        format_args!("zeropage {:?}, thread read {:?}", r, byte),
    );
}

fn nonblocking_and_user_mode_only(checks: &mut Checks) {
    match ready_uffd(uffd::O_NONBLOCK) {
        Ok(fd) => {
            let mut buf = [0u8; 32];
            // SAFETY: `buf` is 32 writable bytes.
            let empty = unsafe { read_raw(fd, buf.as_mut_ptr(), 32) };
            checks.expect_errno("nonblocking-read-empty", empty, Errno::EAGAIN);
            // SAFETY: as above; the kernel writes at most 16 bytes.
            let short = unsafe { read_raw(fd, buf.as_mut_ptr(), 16) };
            checks.expect_errno("read-shorter-than-message", short, Errno::EINVAL);
            let _ = close(fd);
        }
        Err(e) => {
            checks.check("nonblocking-create", false, format_args!("{:?}", e));
        }
    }
    let kernel_read = ready_uffd(uffd::UFFD_USER_MODE_ONLY).and_then(|fd| {
        let page = mmap_anon(PAGE, Prot::RW)? as usize;
        uffd::register(fd, page, PAGE, uffd::MODE_MISSING)?;
        // SAFETY: the kernel reads 16 bytes of our registered, still empty page.
        let slice = unsafe { core::slice::from_raw_parts(page as *const u8, 16) };
        let r = write(1, slice);
        let _ = close(fd);
        r
    });
    checks.expect_errno(
        "user-mode-only-syscall-gets-efault",
        kernel_read,
        Errno::EFAULT,
    );
}

/// Closing the descriptor releases a parked fault, which then fills with zeros.
fn close_releases(checks: &mut Checks) {
    let setup = ready_uffd(0).and_then(|fd| {
        let page = mmap_anon(PAGE, Prot::RW)? as usize;
        uffd::register(fd, page, PAGE, uffd::MODE_MISSING)?;
        Ok((fd, page))
    });
    let Ok((fd, page)) = setup else {
        checks.check("close-setup", false, format_args!("{:?}", setup));
        return;
    };
    let blocking_poll = poll_in(fd, 0);
    checks.check(
        "poll-on-blocking-descriptor-is-error",
        blocking_poll == Ok((1, POLLERR)),
        format_args!("{:?}", blocking_poll),
    );
    let faulter = spawn(move || peek(page, 1));
    let parked = uffd::read_message(fd);
    let closed = close(fd);
    let byte = faulter.map(|t| t.join());
    checks.check(
        "close-releases-parked-fault",
        is_fault_at(&parked, page, false) && closed.is_ok() && byte == Ok(0),
        format_args!(
            "blocking read {:x?}, close {:?}, thread read {:?}",
            parked, closed, byte
        ),
    );
}

/// A process parked on a fault nobody answers still dies of SIGKILL.
fn sigkill_ends_a_parked_process(checks: &mut Checks) {
    let status = match fork() {
        Ok(Fork::Child) => {
            let page = match ready_uffd(0).and_then(|fd| {
                let page = mmap_anon(PAGE, Prot::RW)? as usize;
                uffd::register(fd, page, PAGE, uffd::MODE_MISSING)?;
                Ok(page)
            }) {
                Ok(p) => p,
                Err(_) => exit_group(3),
            };
            peek(page, 0);
            exit_group(4)
        }
        Ok(Fork::Parent(pid)) => {
            sleep_ms(300);
            let _ = kill(pid, 9);
            wait_pid(pid)
        }
        Err(e) => Err(e),
    };
    checks.check(
        "sigkill-ends-parked-process",
        matches!(status, Ok(WaitStatus::Signaled { signal: 9, .. })),
        format_args!("{:?}", status),
    );
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("uffd");
    let region = match mmap_anon(8 * PAGE, Prot::RW) {
        Ok(p) => p as usize,
        Err(e) => {
            checks.check("mmap", false, format_args!("{:?}", e));
            return checks.finish();
        }
    };
    if let Some(fd) = handshake(&mut checks, region) {
        registration(&mut checks, fd, region);
        copy_and_zeropage(&mut checks, fd, region);
        poll_and_wake(&mut checks, fd, region);
        let _ = close(fd);
    }
    nonblocking_and_user_mode_only(&mut checks);
    close_releases(&mut checks);
    sigkill_ends_a_parked_process(&mut checks);
    checks.finish()
}
