//! `errno`: bad input gets Linux's errno, and the process survives it.
//!
//! EFAULT: write from / read into an unmapped buffer, clock_gettime, uname and
//! getrandom into NULL-ish, kernel-half and non-canonical pointers, execve of an
//! unmapped path, futex on an unmapped word. EBADF: write, read and close on fd
//! 9999. ENOSYS: syscalls 1000, 4096 and -1. EINVAL: munmap of an unaligned
//! address, mmap of length 0, mmap with neither MAP_PRIVATE nor MAP_SHARED,
//! mprotect of an unaligned address, nanosleep with tv_nsec >= 1e9, kill with
//! signal 1000, sigaction on SIGKILL, futex on a misaligned word. ENOENT: openat of
//! a missing path. lseek: SEEK_END/SEEK_CUR positions, EINVAL below zero and for an
//! unknown whence, the position kept. tgkill: ESRCH for a missing tid or the wrong
//! thread group, EINVAL for group 0. (MAP_UNINITIALIZED is deliberately not tested here: Linux
//! usually ignores it and Peios rejects it.)
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::CStr;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::signal::{set_handler, Handler, SIGKILL};
use peios_rt::sys::fs::{self, AT_FDCWD, O_CLOEXEC, O_RDONLY};
use peios_rt::sys::mm::{mmap, mmap_anon, mprotect, munmap, MapFlags, Prot, PAGE_SIZE};
use peios_rt::sys::nr;
use peios_rt::sys::process::{getpid, gettid, kill, tgkill};
use peios_rt::sys::signal::SigSet;
use peios_rt::sys::time::{nanosleep, Timespec, CLOCK_MONOTONIC};
use peios_rt::syscall::*;

peios_rt::main!(main);

/// A pointer in the kernel half of the address space.
const KERNEL_PTR: usize = 0xffff_8000_0000_0000;
/// A non-canonical pointer (bit 47 clear, bits 48..63 not a sign extension).
const NONCANONICAL_PTR: usize = 0x0000_8000_0000_1000;
/// A NULL-ish pointer well below mmap_min_addr.
const LOW_PTR: usize = 8;

fn raw(r: isize) -> Result<usize, Errno> {
    Errno::result(r)
}

/// `lseek(fd, offset, whence)` as a raw call.
fn lseek(fd: i32, offset: i64, whence: usize) -> Result<usize, Errno> {
    // SAFETY: lseek only moves the descriptor's position.
    raw(unsafe { syscall3(nr::LSEEK, fd as usize, offset as usize, whence) })
}

/// lseek on a regular file: SEEK_END and SEEK_CUR land where they should, a position
/// below zero and an unknown `whence` are EINVAL and leave the position alone.
fn check_lseek(c: &mut Checks, fd: i32) {
    const SEEK_SET: usize = 0;
    const SEEK_CUR: usize = 1;
    const SEEK_END: usize = 2;
    let size = lseek(fd, 0, SEEK_END);
    c.check(
        "lseek-end-is-size",
        matches!(size, Ok(n) if n > 0),
        format_args!("{:?}", size),
    );
    let size = size.unwrap_or(0);
    let back = lseek(fd, -1, SEEK_END);
    c.check(
        "lseek-end-minus-one",
        back == Ok(size - 1),
        format_args!("{:?} for size {}", back, size),
    );
    c.expect_errno(
        "lseek-negative-einval",
        lseek(fd, -2, SEEK_SET),
        Errno::EINVAL,
    );
    c.expect_errno(
        "lseek-before-start-einval",
        lseek(fd, -(size as i64) - 1, SEEK_CUR),
        Errno::EINVAL,
    );
    c.expect_errno("lseek-bad-whence-einval", lseek(fd, 0, 77), Errno::EINVAL);
    let here = lseek(fd, 0, SEEK_CUR);
    c.check(
        "lseek-errors-keep-position",
        here == Ok(size - 1),
        format_args!("{:?}", here),
    );
    let mut byte = [0u8; 2];
    let got = fs::read(fd, &mut byte);
    c.check(
        "lseek-read-last-byte",
        got == Ok(1),
        format_args!("{:?}", got),
    );
    let _ = lseek(fd, 0, SEEK_SET);
}

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("errno");
    let Some(unmapped) = peios_bins::unmapped_page() else {
        c.check(
            "setup-unmapped-page",
            false,
            format_args!("mmap/munmap failed"),
        );
        return c.finish();
    };

    // EFAULT from copies to and from user memory.
    // SAFETY (all raw syscalls below): the pointers are unmapped or kernel/non-canonical,
    // so the kernel must refuse them; no memory of ours is written.
    c.expect_errno(
        "write-unmapped-efault",
        raw(unsafe { syscall3(nr::WRITE, 1, unmapped, 16) }),
        Errno::EFAULT,
    );
    let self_path = args.get_cstr(0).unwrap_or(c"/init");
    match fs::openat(AT_FDCWD, self_path, O_RDONLY | O_CLOEXEC, 0) {
        Ok(fd) => {
            // SAFETY: destination unmapped (see above).
            c.expect_errno(
                "read-unmapped-efault",
                unsafe { fs::read_raw(fd, unmapped as *mut u8, 16) },
                Errno::EFAULT,
            );
            check_lseek(&mut c, fd);
            let _ = fs::close(fd);
        }
        Err(e) => {
            c.check(
                "read-unmapped-efault",
                false,
                format_args!("cannot open {:?} to read from: {}", self_path, e),
            );
        }
    }
    for (name, ptr) in [
        ("low", LOW_PTR),
        ("unmapped", unmapped),
        ("kernel", KERNEL_PTR),
        ("noncanonical", NONCANONICAL_PTR),
    ] {
        // SAFETY: `ptr` is not writable memory of ours.
        let r = raw(unsafe { syscall2(nr::CLOCK_GETTIME, CLOCK_MONOTONIC as usize, ptr) });
        c.expect_errno(&format!("clock_gettime-{}-efault", name), r, Errno::EFAULT);
    }
    // SAFETY: as above.
    c.expect_errno(
        "uname-null-efault",
        raw(unsafe { syscall1(nr::UNAME, 0) }),
        Errno::EFAULT,
    );
    // SAFETY: as above.
    c.expect_errno(
        "getrandom-kernel-efault",
        raw(unsafe { syscall3(nr::GETRANDOM, KERNEL_PTR, 16, 0) }),
        Errno::EFAULT,
    );
    let argv: [usize; 1] = [0];
    // SAFETY: the path pointer is unmapped, so execve fails before replacing us.
    c.expect_errno(
        "execve-unmapped-path-efault",
        raw(unsafe {
            syscall3(
                nr::EXECVE,
                unmapped,
                argv.as_ptr() as usize,
                argv.as_ptr() as usize,
            )
        }),
        Errno::EFAULT,
    );
    // SAFETY: FUTEX_WAIT reads the (unmapped) word and fails; nothing waits.
    c.expect_errno(
        "futex-unmapped-efault",
        raw(unsafe { syscall4(nr::FUTEX, unmapped, 0, 0, 0) }),
        Errno::EFAULT,
    );

    // EBADF.
    c.expect_errno("write-ebadf", fs::write(9999, b"x"), Errno::EBADF);
    let mut buf = [0u8; 8];
    c.expect_errno("read-ebadf", fs::read(9999, &mut buf), Errno::EBADF);
    c.expect_errno("close-ebadf", fs::close(9999), Errno::EBADF);

    // ENOSYS.
    for n in [1000usize, 4096, usize::MAX] {
        // SAFETY: no such syscall; nothing happens.
        let r = raw(unsafe { syscall0(n) });
        c.expect_errno(&format!("syscall-{}-enosys", n as isize), r, Errno::ENOSYS);
    }

    // EINVAL.
    match mmap_anon(2 * PAGE_SIZE, Prot::RW) {
        Ok(p) => {
            // SAFETY: unaligned address: refused, nothing unmapped.
            c.expect_errno(
                "munmap-unaligned-einval",
                unsafe { munmap(p.wrapping_add(1), PAGE_SIZE) },
                Errno::EINVAL,
            );
            // SAFETY: unaligned address: refused, protection unchanged.
            c.expect_errno(
                "mprotect-unaligned-einval",
                unsafe { mprotect(p.wrapping_add(1), PAGE_SIZE, Prot::READ) },
                Errno::EINVAL,
            );
            // SAFETY: our own mapping, unused.
            let _ = unsafe { munmap(p, 2 * PAGE_SIZE) };
        }
        Err(e) => {
            c.check(
                "munmap-unaligned-einval",
                false,
                format_args!("setup mmap: {}", e),
            );
        }
    }
    c.expect_errno("mmap-len0-einval", mmap_anon(0, Prot::RW), Errno::EINVAL);
    // SAFETY: not MAP_FIXED; refused anyway for lacking PRIVATE/SHARED.
    let r = unsafe { mmap(0, PAGE_SIZE, Prot::RW, MapFlags::ANONYMOUS, -1, 0) };
    c.expect_errno("mmap-no-type-einval", r, Errno::EINVAL);
    c.expect_errno(
        "nanosleep-nsec-einval",
        nanosleep(&Timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000_000,
        }),
        Errno::EINVAL,
    );
    c.expect_errno("kill-badsig-einval", kill(getpid(), 1000), Errno::EINVAL);
    // SAFETY: SIGKILL cannot be caught, so no handler is installed.
    let r = unsafe { set_handler(SIGKILL, Handler::Ignore, 0, SigSet::EMPTY) };
    c.expect_errno("sigaction-sigkill-einval", r.map(|_| ()), Errno::EINVAL);
    let word = [0u32; 2];
    // SAFETY: misaligned futex word: refused before any wait.
    let r = raw(unsafe { syscall4(nr::FUTEX, word.as_ptr() as usize + 1, 0, 0, 0) });
    c.expect_errno("futex-misaligned-einval", r, Errno::EINVAL);

    // ENOENT.
    let missing: &CStr = c"/nonexistent/peios-errno-test";
    // ESRCH and EINVAL from tgkill: a tid no one has, our tid under another thread
    // group, and a zero thread group id. Signal 0 only checks.
    c.expect_errno(
        "tgkill-missing-tid-esrch",
        tgkill(getpid(), 0x3fff_fff0, 0),
        Errno::ESRCH,
    );
    c.expect_errno(
        "tgkill-wrong-group-esrch",
        tgkill(getpid() + 100_000, gettid(), 0),
        Errno::ESRCH,
    );
    c.expect_errno(
        "tgkill-zero-group-einval",
        tgkill(0, gettid(), 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "openat-missing-enoent",
        fs::openat(AT_FDCWD, missing, O_RDONLY, 0),
        Errno::ENOENT,
    );

    // And the process is fine afterwards.
    c.check(
        "still-alive",
        fs::write(1, b"").is_ok(),
        format_args!("zero-length write after the bad calls"),
    );
    c.finish()
}
