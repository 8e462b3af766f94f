//! `posix`: the file layer's POSIX surface, checked value by value and errno by errno
//! against what Linux 6.12 answers (the same binary passes there): pipes (`pipe2`
//! flags, EOF, EPIPE and SIGPIPE, PIPE_BUF atomicity, a blocked reader woken by a
//! writer, poll readiness), `dup2`/`dup3`/`close_range`, vectored and positional I/O,
//! the stat family (`newfstatat`, `lstat`, `statx`, `AT_EMPTY_PATH`), `faccessat2`,
//! path walking (ENOENT, ENOTDIR, ENAMETOOLONG, trailing slashes, `..`), `getcwd`,
//! `chdir`, `fchdir`, `openat` from a directory descriptor, `readlink` of
//! `/proc/self/exe`, `getdents64`, `umask`, `/dev/null` and `/dev/zero`; then
//! `eventfd2` (counter and semaphore modes), `ppoll` and epoll (create, ctl errors,
//! level-triggered and one-shot reports, a blocked wait woken by another process,
//! entries dropped when their file closes); `/dev/userfaultfd` (`USERFAULTFD_IOC_NEW`
//! makes a userfaultfd that answers `UFFDIO_API`; refused to a restricted process on
//! Peios).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::{string::String, vec, vec::Vec};
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::signal::{set_handler, Handler, SIGPIPE};
use peios_rt::sys::signal::SigSet;
use peios_rt::sys::time::{nanosleep, Timespec};

peios_rt::main!(main);

mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const OPEN: usize = 2;
    pub const CLOSE: usize = 3;
    pub const STAT: usize = 4;
    pub const FSTAT: usize = 5;
    pub const LSTAT: usize = 6;
    pub const POLL: usize = 7;
    pub const LSEEK: usize = 8;
    pub const PREAD64: usize = 17;
    pub const PWRITE64: usize = 18;
    pub const READV: usize = 19;
    pub const WRITEV: usize = 20;
    pub const ACCESS: usize = 21;
    pub const PIPE: usize = 22;
    pub const DUP2: usize = 33;
    pub const FCNTL: usize = 72;
    pub const GETCWD: usize = 79;
    pub const CHDIR: usize = 80;
    pub const FCHDIR: usize = 81;
    pub const READLINK: usize = 89;
    pub const UMASK: usize = 95;
    pub const GETPID: usize = 39;
    pub const GETDENTS64: usize = 217;
    pub const OPENAT: usize = 257;
    pub const NEWFSTATAT: usize = 262;
    pub const READLINKAT: usize = 267;
    pub const DUP3: usize = 292;
    pub const PIPE2: usize = 293;
    pub const PREADV: usize = 295;
    pub const STATX: usize = 332;
    pub const MEMFD_CREATE: usize = 319;
    pub const CLOSE_RANGE: usize = 436;
    pub const PPOLL: usize = 271;
    pub const EVENTFD2: usize = 290;
    pub const EPOLL_CREATE: usize = 213;
    pub const EPOLL_CREATE1: usize = 291;
    pub const EPOLL_CTL: usize = 233;
    pub const EPOLL_WAIT: usize = 232;
    pub const IOCTL: usize = 16;
    pub const FACCESSAT2: usize = 439;
}

const O_RDONLY: usize = 0;
const O_WRONLY: usize = 1;
const O_NONBLOCK: usize = 0o4000;
const O_DIRECTORY: usize = 0o200000;
const O_NOFOLLOW: usize = 0o400000;
const O_CLOEXEC: usize = 0o2000000;
const AT_FDCWD: usize = -100isize as usize;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const AT_EMPTY_PATH: usize = 0x1000;
const F_GETFD: usize = 1;
const F_GETFL: usize = 3;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const POLLIN: i16 = 1;
const POLLOUT: i16 = 4;
const POLLHUP: i16 = 0x10;

/// A raw system call with up to six arguments.
fn sc(nr: usize, a: &[usize]) -> Result<usize, Errno> {
    let mut r = [0usize; 6];
    r[..a.len()].copy_from_slice(a);
    // SAFETY: every pointer argument passed here points into this program's own live
    // buffers of the length given beside it (or is deliberately invalid for an errno
    // check, which the kernel must refuse without touching memory).
    let ret = unsafe { peios_rt::syscall::syscall6(nr, r[0], r[1], r[2], r[3], r[4], r[5]) };
    Errno::result(ret)
}

/// A NUL-terminated copy of `s`.
fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

fn open(path: &str, flags: usize) -> Result<usize, Errno> {
    let p = cstr(path);
    sc(nr::OPEN, &[p.as_ptr() as usize, flags, 0])
}

fn close(fd: usize) {
    let _ = sc(nr::CLOSE, &[fd]);
}

fn write(fd: usize, data: &[u8]) -> Result<usize, Errno> {
    sc(nr::WRITE, &[fd, data.as_ptr() as usize, data.len()])
}

fn read(fd: usize, buf: &mut [u8]) -> Result<usize, Errno> {
    sc(nr::READ, &[fd, buf.as_mut_ptr() as usize, buf.len()])
}

fn pipe2(flags: usize) -> Result<(usize, usize), Errno> {
    let mut fds = [0i32; 2];
    sc(nr::PIPE2, &[fds.as_mut_ptr() as usize, flags])?;
    Ok((fds[0] as usize, fds[1] as usize))
}

/// `struct stat` as its 18 words.
#[derive(Clone, Copy, Debug, Default)]
struct Stat([u64; 18]);

impl Stat {
    fn ino(&self) -> u64 {
        self.0[1]
    }
    fn dev(&self) -> u64 {
        self.0[0]
    }
    fn mode(&self) -> u32 {
        self.0[3] as u32
    }
    fn kind(&self) -> u32 {
        self.mode() & S_IFMT
    }
    fn size(&self) -> u64 {
        self.0[6]
    }
}

fn stat_call(nr: usize, path: &str) -> Result<Stat, Errno> {
    let p = cstr(path);
    let mut st = Stat::default();
    sc(nr, &[p.as_ptr() as usize, st.0.as_mut_ptr() as usize])?;
    Ok(st)
}

fn fstatat(dirfd: usize, path: &str, flags: usize) -> Result<Stat, Errno> {
    let p = cstr(path);
    let mut st = Stat::default();
    sc(
        nr::NEWFSTATAT,
        &[
            dirfd,
            p.as_ptr() as usize,
            st.0.as_mut_ptr() as usize,
            flags,
        ],
    )?;
    Ok(st)
}

fn fstat(fd: usize) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    sc(nr::FSTAT, &[fd, st.0.as_mut_ptr() as usize])?;
    Ok(st)
}

fn getcwd() -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    let n = sc(nr::GETCWD, &[buf.as_mut_ptr() as usize, buf.len()])?;
    Ok(String::from_utf8_lossy(&buf[..n.saturating_sub(1)]).into_owned())
}

fn readlink(path: &str) -> Result<String, Errno> {
    let p = cstr(path);
    let mut buf = [0u8; 256];
    let n = sc(
        nr::READLINK,
        &[p.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len()],
    )?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn sleep_ms(ms: u64) {
    let _ = nanosleep(&Timespec::from_ns(ms * 1_000_000));
}

/// `poll` of one descriptor; the revents.
fn poll1(fd: usize, events: i16, timeout_ms: isize) -> Result<i16, Errno> {
    let mut pfd = [fd as i32 as u32 as u64 | ((events as u16 as u64) << 32)];
    sc(
        nr::POLL,
        &[pfd.as_mut_ptr() as usize, 1, timeout_ms as usize],
    )?;
    Ok((pfd[0] >> 48) as i16)
}

fn pipes(c: &mut Checks) {
    match pipe2(0) {
        Ok((r, w)) => {
            let sent = write(w, b"hello");
            let mut buf = [0u8; 16];
            let got = read(r, &mut buf);
            c.check(
                "pipe-roundtrip",
                sent == Ok(5) && got == Ok(5) && &buf[..5] == b"hello",
                format_args!("write {:?} read {:?}", sent, got),
            );
            let st = fstat(r);
            c.check(
                "pipe-fstat-fifo",
                st.is_ok_and(|s| s.kind() == S_IFIFO),
                format_args!("mode {:o}", st.map(|s| s.mode()).unwrap_or(0)),
            );
            let fl = (sc(nr::FCNTL, &[r, F_GETFL]), sc(nr::FCNTL, &[w, F_GETFL]));
            c.check(
                "pipe-access-modes",
                fl == (Ok(O_RDONLY), Ok(O_WRONLY)),
                format_args!("{:?}", fl),
            );
            c.check(
                "pipe-empty-poll-nothing",
                poll1(r, POLLIN, 0) == Ok(0),
                format_args!("{:?}", poll1(r, POLLIN, 0)),
            );
            let _ = write(w, b"x");
            c.check(
                "pipe-data-poll-in",
                poll1(r, POLLIN, 0) == Ok(POLLIN),
                format_args!("{:?}", poll1(r, POLLIN, 0)),
            );
            c.check(
                "pipe-writer-poll-out",
                poll1(w, POLLOUT, 0) == Ok(POLLOUT),
                format_args!("{:?}", poll1(w, POLLOUT, 0)),
            );
            close(w);
            let ev = poll1(r, POLLIN, 0);
            c.check(
                "pipe-writer-gone-pollhup",
                ev == Ok(POLLIN | POLLHUP),
                format_args!("{:?}", ev),
            );
            let a = read(r, &mut buf);
            let b = read(r, &mut buf);
            c.check(
                "pipe-eof-without-writer",
                a == Ok(1) && b == Ok(0),
                format_args!("{:?} then {:?}", a, b),
            );
            close(r);
        }
        Err(e) => {
            c.check("pipe-roundtrip", false, format_args!("pipe2: {}", e));
        }
    }
    let mut fds = [0i32; 2];
    let p = sc(nr::PIPE, &[fds.as_mut_ptr() as usize]);
    c.check(
        "pipe-syscall",
        p == Ok(0) && fds[0] >= 0 && fds[1] > fds[0],
        format_args!("{:?} {:?}", p, fds),
    );
    close(fds[0] as usize);
    close(fds[1] as usize);
    c.expect_errno("pipe2-bad-flags", pipe2(1), Errno::EINVAL);
    c.expect_errno("pipe-efault", sc(nr::PIPE, &[8]), Errno::EFAULT);
    if let Ok((r, w)) = pipe2(O_CLOEXEC | O_NONBLOCK) {
        let fd = sc(nr::FCNTL, &[r, F_GETFD]);
        let fl = sc(nr::FCNTL, &[w, F_GETFL]);
        c.check(
            "pipe2-cloexec-nonblock",
            fd == Ok(1) && fl == Ok(O_WRONLY | O_NONBLOCK),
            format_args!("F_GETFD {:?} F_GETFL {:?}", fd, fl),
        );
        let mut buf = [0u8; 8];
        c.expect_errno(
            "pipe-nonblock-empty-eagain",
            read(r, &mut buf),
            Errno::EAGAIN,
        );
        // Fill it: 64 KiB, then nothing more fits.
        let big = vec![7u8; 65536];
        let filled = write(w, &big);
        c.check(
            "pipe-capacity-64k",
            filled == Ok(65536),
            format_args!("{:?}", filled),
        );
        c.expect_errno("pipe-full-eagain", write(w, b"z"), Errno::EAGAIN);
        c.check(
            "pipe-full-no-pollout",
            poll1(w, POLLOUT, 0) == Ok(0),
            format_args!("{:?}", poll1(w, POLLOUT, 0)),
        );
        let mut page = vec![0u8; 4096];
        let _ = read(r, &mut page);
        let again = write(w, &page);
        c.check(
            "pipe-page-freed-takes-page",
            again == Ok(4096),
            format_args!("{:?}", again),
        );
        // Drain, then leave 100 bytes free: an atomic 4096-byte write must not split.
        let mut sink = vec![0u8; 65536];
        let _ = read(r, &mut sink);
        let _ = write(w, &big[..65536 - 100]);
        c.expect_errno("pipe-buf-atomic-eagain", write(w, &page), Errno::EAGAIN);
        let small = write(w, &page[..100]);
        c.check(
            "pipe-small-write-fits",
            small == Ok(100),
            format_args!("{:?}", small),
        );
        close(r);
        close(w);
    }
    // No reader: EPIPE (SIGPIPE ignored here) ...
    // SAFETY: SIG_IGN needs no handler code.
    let _ = unsafe { set_handler(SIGPIPE, Handler::Ignore, 0, SigSet::EMPTY) };
    if let Ok((r, w)) = pipe2(0) {
        close(r);
        c.expect_errno("pipe-no-reader-epipe", write(w, b"x"), Errno::EPIPE);
        close(w);
    }
    // SAFETY: back to the default action.
    let _ = unsafe { set_handler(SIGPIPE, Handler::Default, 0, SigSet::EMPTY) };
    // ... and by default SIGPIPE kills the writer.
    if let Ok((r, w)) = pipe2(0) {
        close(r);
        match fork() {
            Ok(Fork::Child) => {
                let _ = write(w, b"x");
                peios_rt::sys::process::exit_group(0);
            }
            Ok(Fork::Parent(pid)) => {
                let st = wait_pid(pid);
                c.check(
                    "pipe-no-reader-sigpipe-kills",
                    matches!(st, Ok(WaitStatus::Signaled { signal: 13, .. })),
                    format_args!("{:?}", st),
                );
            }
            Err(e) => {
                c.check(
                    "pipe-no-reader-sigpipe-kills",
                    false,
                    format_args!("fork: {}", e),
                );
            }
        }
        close(w);
    }
    // A blocked reader wakes when another process writes; a blocked writer when one reads.
    if let Ok((r, w)) = pipe2(0) {
        match fork() {
            Ok(Fork::Child) => {
                close(r);
                sleep_ms(50);
                let _ = write(w, b"late");
                sleep_ms(100);
                let mut big = vec![0u8; 65536 + 4096];
                // Blocks until the parent reads: more than the pipe holds.
                let n = write(w, &big[..]).unwrap_or(0);
                big.clear();
                peios_rt::sys::process::exit_group(if n == 65536 + 4096 { 0 } else { 1 });
            }
            Ok(Fork::Parent(pid)) => {
                // Only the child writes: its exit ends the stream.
                close(w);
                let mut buf = [0u8; 8];
                let got = read(r, &mut buf);
                c.check(
                    "pipe-blocked-reader-woken",
                    got == Ok(4) && &buf[..4] == b"late",
                    format_args!("{:?}", got),
                );
                sleep_ms(200);
                let mut total = got.unwrap_or(0).saturating_sub(4);
                let mut sink = vec![0u8; 8192];
                while total < 65536 + 4096 {
                    match read(r, &mut sink) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
                let st = wait_pid(pid);
                c.check(
                    "pipe-blocked-writer-completes",
                    total == 65536 + 4096 && st == Ok(WaitStatus::Exited(0)),
                    format_args!("read {} bytes, child {:?}", total, st),
                );
            }
            Err(e) => {
                c.check(
                    "pipe-blocked-reader-woken",
                    false,
                    format_args!("fork: {}", e),
                );
                close(w);
            }
        }
        close(r);
    }
}

fn dups(c: &mut Checks) {
    let Ok((r, w)) = pipe2(0) else {
        c.check("dup2-pipe", false, format_args!("pipe2 failed"));
        return;
    };
    let d = sc(nr::DUP2, &[w, 100]);
    let _ = write(100, b"via100");
    let mut buf = [0u8; 8];
    let got = read(r, &mut buf);
    c.check(
        "dup2-shares-description",
        d == Ok(100) && got == Ok(6) && &buf[..6] == b"via100",
        format_args!("dup2 {:?} read {:?}", d, got),
    );
    c.check(
        "dup2-same-fd",
        sc(nr::DUP2, &[w, w]) == Ok(w),
        format_args!("{:?}", sc(nr::DUP2, &[w, w])),
    );
    c.expect_errno("dup2-bad-old", sc(nr::DUP2, &[999, 5]), Errno::EBADF);
    c.expect_errno(
        "dup2-new-past-limit",
        sc(nr::DUP2, &[w, 1 << 20]),
        Errno::EBADF,
    );
    c.expect_errno(
        "dup3-same-fd-einval",
        sc(nr::DUP3, &[w, w, 0]),
        Errno::EINVAL,
    );
    c.expect_errno("dup3-bad-flags", sc(nr::DUP3, &[w, 101, 1]), Errno::EINVAL);
    let d3 = sc(nr::DUP3, &[w, 101, O_CLOEXEC]);
    let cloexec = sc(nr::FCNTL, &[101, F_GETFD]);
    c.check(
        "dup3-cloexec",
        d3 == Ok(101) && cloexec == Ok(1),
        format_args!("{:?} F_GETFD {:?}", d3, cloexec),
    );
    let cr = sc(nr::CLOSE_RANGE, &[100, 101, 0]);
    c.check(
        "close-range-closes",
        cr == Ok(0) && sc(nr::FCNTL, &[100, F_GETFD]) == Err(Errno::EBADF),
        format_args!("{:?}", cr),
    );
    c.expect_errno(
        "close-range-reversed",
        sc(nr::CLOSE_RANGE, &[5, 4, 0]),
        Errno::EINVAL,
    );
    close(r);
    close(w);
}

fn vectored(c: &mut Checks) {
    if let Ok((r, w)) = pipe2(0) {
        let (a, b) = (b"abc", b"defg");
        let iov = [a.as_ptr() as usize, a.len(), b.as_ptr() as usize, b.len()];
        let n = sc(nr::WRITEV, &[w, iov.as_ptr() as usize, 2]);
        let (mut x, mut y) = ([0u8; 2], [0u8; 8]);
        let iov = [x.as_mut_ptr() as usize, 2, y.as_mut_ptr() as usize, 8];
        let m = sc(nr::READV, &[r, iov.as_ptr() as usize, 2]);
        c.check(
            "writev-readv-pipe",
            n == Ok(7) && m == Ok(7) && &x == b"ab" && &y[..5] == b"cdefg",
            format_args!("writev {:?} readv {:?}", n, m),
        );
        c.expect_errno(
            "readv-too-many-segments",
            sc(nr::READV, &[r, iov.as_ptr() as usize, 1025]),
            Errno::EINVAL,
        );
        let mut buf = [0u8; 4];
        c.expect_errno(
            "pread-pipe-espipe",
            sc(nr::PREAD64, &[r, buf.as_mut_ptr() as usize, 4, 0]),
            Errno::ESPIPE,
        );
        close(r);
        close(w);
    }
    match open("/proc/self/exe", O_RDONLY) {
        Ok(fd) => {
            let mut buf = [0u8; 3];
            let n = sc(nr::PREAD64, &[fd, buf.as_mut_ptr() as usize, 3, 1]);
            let pos = sc(nr::LSEEK, &[fd, 0, 1]);
            c.check(
                "pread-at-offset-keeps-position",
                n == Ok(3) && &buf == b"ELF" && pos == Ok(0),
                format_args!("pread {:?} pos {:?}", n, pos),
            );
            let mut one = [0u8; 1];
            let mut two = [0u8; 2];
            let iov = [one.as_mut_ptr() as usize, 1, two.as_mut_ptr() as usize, 2];
            let m = sc(nr::PREADV, &[fd, iov.as_ptr() as usize, 2, 1]);
            c.check(
                "preadv-at-offset",
                m == Ok(3) && one == *b"E" && two == *b"LF",
                format_args!("{:?}", m),
            );
            c.expect_errno(
                "pread-negative-offset",
                sc(nr::PREAD64, &[fd, buf.as_mut_ptr() as usize, 3, usize::MAX]),
                Errno::EINVAL,
            );
            c.expect_errno(
                "pwrite-readonly-ebadf",
                sc(nr::PWRITE64, &[fd, buf.as_ptr() as usize, 3, 0]),
                Errno::EBADF,
            );
            close(fd);
        }
        Err(e) => {
            c.check(
                "pread-at-offset-keeps-position",
                false,
                format_args!("open: {}", e),
            );
        }
    }
    let name = cstr("posix");
    if let Ok(fd) = sc(nr::MEMFD_CREATE, &[name.as_ptr() as usize, 0]) {
        let w = sc(nr::PWRITE64, &[fd, b"xyz".as_ptr() as usize, 3, 10]);
        let mut back = [0u8; 3];
        let r = sc(nr::PREAD64, &[fd, back.as_mut_ptr() as usize, 3, 10]);
        let size = fstat(fd).map(|s| s.size());
        c.check(
            "pwrite-pread-memfd",
            w == Ok(3) && r == Ok(3) && &back == b"xyz" && size == Ok(13),
            format_args!("pwrite {:?} pread {:?} size {:?}", w, r, size),
        );
        close(fd);
    }
}

fn stats(c: &mut Checks) {
    let root = stat_call(nr::STAT, "/");
    c.check(
        "stat-root-dir",
        root.is_ok_and(|s| s.kind() == S_IFDIR),
        format_args!("{:o}", root.map(|s| s.mode()).unwrap_or(0)),
    );
    let exe = stat_call(nr::STAT, "/proc/self/exe");
    let link = stat_call(nr::LSTAT, "/proc/self/exe");
    c.check(
        "stat-follows-lstat-does-not",
        exe.is_ok_and(|s| s.kind() == S_IFREG && s.size() > 0)
            && link.is_ok_and(|s| s.kind() == S_IFLNK),
        format_args!(
            "stat {:o} lstat {:o}",
            exe.map(|s| s.mode()).unwrap_or(0),
            link.map(|s| s.mode()).unwrap_or(0)
        ),
    );
    let nofollow = fstatat(AT_FDCWD, "/proc/self/exe", AT_SYMLINK_NOFOLLOW);
    c.check(
        "fstatat-nofollow-link",
        nofollow.is_ok_and(|s| s.kind() == S_IFLNK),
        format_args!("{:o}", nofollow.map(|s| s.mode()).unwrap_or(0)),
    );
    c.expect_errno(
        "stat-missing-enoent",
        stat_call(nr::STAT, "/no/such/file"),
        Errno::ENOENT,
    );
    c.expect_errno(
        "stat-through-file-enotdir",
        stat_call(nr::STAT, "/proc/self/exe/x"),
        Errno::ENOTDIR,
    );
    c.expect_errno(
        "stat-file-trailing-slash-enotdir",
        stat_call(nr::STAT, "/proc/meminfo/"),
        Errno::ENOTDIR,
    );
    let long = String::from("/") + &"n".repeat(300);
    c.expect_errno(
        "stat-long-name",
        stat_call(nr::STAT, &long),
        Errno::ENAMETOOLONG,
    );
    let huge = "/a".repeat(2100);
    c.expect_errno(
        "stat-path-max",
        stat_call(nr::STAT, &huge),
        Errno::ENAMETOOLONG,
    );
    c.expect_errno("stat-empty-enoent", stat_call(nr::STAT, ""), Errno::ENOENT);
    c.expect_errno(
        "fstatat-bad-flags",
        fstatat(AT_FDCWD, "/", 0x1),
        Errno::EINVAL,
    );
    let dots = stat_call(nr::STAT, "/proc/../proc/./self/..");
    let proc_ = stat_call(nr::STAT, "/proc");
    c.check(
        "stat-dots-resolve",
        dots.is_ok() && dots.map(|s| s.ino()) == proc_.map(|s| s.ino()),
        format_args!(
            "{:?} vs {:?}",
            dots.map(|s| s.ino()),
            proc_.map(|s| s.ino())
        ),
    );
    if let Ok(fd) = open("/proc/self/exe", O_RDONLY) {
        let by_fd = fstat(fd);
        let empty = fstatat(fd, "", AT_EMPTY_PATH);
        c.check(
            "fstatat-empty-path-is-fstat",
            by_fd.is_ok()
                && by_fd.map(|s| (s.ino(), s.dev(), s.size()))
                    == empty.map(|s| (s.ino(), s.dev(), s.size())),
            format_args!("fstat ok {} empty-path ok {}", by_fd.is_ok(), empty.is_ok()),
        );
        c.check(
            "fstat-matches-stat",
            by_fd.map(|s| (s.ino(), s.dev())) == exe.map(|s| (s.ino(), s.dev())),
            format_args!("{:?} vs {:?}", by_fd.map(|s| s.ino()), exe.map(|s| s.ino())),
        );
        close(fd);
    }
    let p = cstr("/proc/self/exe");
    let mut sx = [0u64; 32];
    let r = sc(
        nr::STATX,
        &[
            AT_FDCWD,
            p.as_ptr() as usize,
            0,
            0x7ff,
            sx.as_mut_ptr() as usize,
        ],
    );
    let mask = sx[0] as u32;
    let mode = (sx[3] >> 32) as u16 as u32;
    c.check(
        "statx-basic",
        r == Ok(0)
            && mask & 0x7ff == 0x7ff
            && mode & S_IFMT == S_IFREG
            && Ok(sx[5]) == exe.map(|s| s.size()),
        format_args!("{:?} mask {:#x} mode {:o} size {}", r, mask, mode, sx[5]),
    );
    c.expect_errno(
        "statx-bad-flags",
        sc(
            nr::STATX,
            &[
                AT_FDCWD,
                p.as_ptr() as usize,
                0x6000,
                0x7ff,
                sx.as_mut_ptr() as usize,
            ],
        ),
        Errno::EINVAL,
    );
    let null = stat_call(nr::STAT, "/dev/null");
    c.check(
        "stat-dev-null-chr",
        null.is_ok_and(|s| s.kind() == S_IFCHR && s.0[5] == (1 << 8 | 3)),
        format_args!("mode {:o}", null.map(|s| s.mode()).unwrap_or(0)),
    );
}

fn access(c: &mut Checks) {
    let exe = cstr("/proc/self/exe");
    c.check(
        "access-exe-x-ok",
        sc(nr::ACCESS, &[exe.as_ptr() as usize, 1]) == Ok(0),
        format_args!("{:?}", sc(nr::ACCESS, &[exe.as_ptr() as usize, 1])),
    );
    let missing = cstr("/no/such");
    c.expect_errno(
        "access-missing",
        sc(nr::ACCESS, &[missing.as_ptr() as usize, 0]),
        Errno::ENOENT,
    );
    c.expect_errno(
        "access-bad-mode",
        sc(nr::ACCESS, &[exe.as_ptr() as usize, 8]),
        Errno::EINVAL,
    );
    c.expect_errno(
        "faccessat2-bad-flags",
        sc(nr::FACCESSAT2, &[AT_FDCWD, exe.as_ptr() as usize, 0, 1]),
        Errno::EINVAL,
    );
    c.check(
        "faccessat2-read",
        sc(nr::FACCESSAT2, &[AT_FDCWD, exe.as_ptr() as usize, 4, 0]) == Ok(0),
        format_args!(
            "{:?}",
            sc(nr::FACCESSAT2, &[AT_FDCWD, exe.as_ptr() as usize, 4, 0])
        ),
    );
}

fn paths(c: &mut Checks, pid: usize) {
    let start = getcwd();
    c.check(
        "getcwd-root",
        start.as_deref() == Ok("/"),
        format_args!("{:?}", start),
    );
    let mut tiny = [0u8; 1];
    c.expect_errno(
        "getcwd-erange",
        sc(nr::GETCWD, &[tiny.as_mut_ptr() as usize, 1]),
        Errno::ERANGE,
    );
    let proc_ = cstr("/proc");
    let r = sc(nr::CHDIR, &[proc_.as_ptr() as usize]);
    c.check(
        "chdir-proc",
        r == Ok(0) && getcwd().as_deref() == Ok("/proc"),
        format_args!("{:?} cwd {:?}", r, getcwd()),
    );
    c.check(
        "open-relative-to-cwd",
        open("meminfo", O_RDONLY).map(close).is_ok(),
        format_args!("{:?}", open("meminfo", O_RDONLY)),
    );
    let selfdir = cstr("self");
    let _ = sc(nr::CHDIR, &[selfdir.as_ptr() as usize]);
    let want = alloc::format!("/proc/{pid}");
    c.check(
        "chdir-through-link",
        getcwd().as_deref() == Ok(want.as_str()),
        format_args!("{:?}", getcwd()),
    );
    let up = cstr("..");
    let _ = sc(nr::CHDIR, &[up.as_ptr() as usize]);
    c.check(
        "chdir-dotdot",
        getcwd().as_deref() == Ok("/proc"),
        format_args!("{:?}", getcwd()),
    );
    let file = cstr("/proc/meminfo");
    c.expect_errno(
        "chdir-file-enotdir",
        sc(nr::CHDIR, &[file.as_ptr() as usize]),
        Errno::ENOTDIR,
    );
    c.expect_errno(
        "chdir-missing-enoent",
        sc(nr::CHDIR, &[missing_ptr(), 0]),
        Errno::ENOENT,
    );
    match open("/proc/self", O_RDONLY | O_DIRECTORY) {
        Ok(dir) => {
            let status = cstr("status");
            let at = sc(nr::OPENAT, &[dir, status.as_ptr() as usize, O_RDONLY]);
            c.check("openat-dirfd", at.is_ok(), format_args!("{:?}", at));
            if let Ok(fd) = at {
                close(fd);
            }
            let fc = sc(nr::FCHDIR, &[dir]);
            c.check(
                "fchdir",
                fc == Ok(0) && getcwd().as_deref() == Ok(want.as_str()),
                format_args!("{:?} cwd {:?}", fc, getcwd()),
            );
            getdents(c, dir);
            close(dir);
        }
        Err(e) => {
            c.check(
                "openat-dirfd",
                false,
                format_args!("open /proc/self: {}", e),
            );
        }
    }
    if let Ok(fd) = open("/proc/meminfo", O_RDONLY) {
        let x = cstr("x");
        c.expect_errno(
            "openat-file-dirfd-enotdir",
            sc(nr::OPENAT, &[fd, x.as_ptr() as usize, O_RDONLY]),
            Errno::ENOTDIR,
        );
        let mut buf = [0u8; 64];
        c.expect_errno(
            "getdents-file-enotdir",
            sc(nr::GETDENTS64, &[fd, buf.as_mut_ptr() as usize, 64]),
            Errno::ENOTDIR,
        );
        close(fd);
    }
    let root = cstr("/");
    let _ = sc(nr::CHDIR, &[root.as_ptr() as usize]);
    c.expect_errno(
        "open-file-o-directory",
        open("/proc/meminfo", O_DIRECTORY),
        Errno::ENOTDIR,
    );
    c.expect_errno(
        "open-dir-for-writing",
        open("/proc", O_WRONLY),
        Errno::EISDIR,
    );
    c.expect_errno(
        "open-nofollow-link",
        open("/proc/self/exe", O_NOFOLLOW),
        Errno::ELOOP,
    );
    if let Ok(fd) = open("/proc", O_RDONLY) {
        let mut buf = [0u8; 8];
        c.expect_errno("read-directory-eisdir", read(fd, &mut buf), Errno::EISDIR);
        close(fd);
    }
    let exe = readlink("/proc/self/exe");
    let same = exe
        .as_ref()
        .ok()
        .map(|p| stat_call(nr::STAT, p).map(|s| s.ino()))
        == Some(stat_call(nr::STAT, "/proc/self/exe").map(|s| s.ino()));
    c.check(
        "readlink-proc-self-exe",
        exe.as_ref().is_ok_and(|p| p.starts_with('/')) && same,
        format_args!("{:?} same file {}", exe, same),
    );
    let me = readlink("/proc/self");
    c.check(
        "readlink-proc-self",
        me.as_deref() == Ok(alloc::format!("{pid}").as_str()),
        format_args!("{:?}", me),
    );
    c.expect_errno("readlink-not-link", readlink("/proc"), Errno::EINVAL);
    let p = cstr("/proc/self/exe");
    let mut buf = [0u8; 4];
    let cut = sc(
        nr::READLINKAT,
        &[AT_FDCWD, p.as_ptr() as usize, buf.as_mut_ptr() as usize, 4],
    );
    c.check(
        "readlinkat-truncates",
        cut == Ok(4),
        format_args!("{:?}", cut),
    );
    c.expect_errno(
        "readlink-size-zero",
        sc(
            nr::READLINK,
            &[p.as_ptr() as usize, buf.as_mut_ptr() as usize, 0],
        ),
        Errno::EINVAL,
    );
    let old = sc(nr::UMASK, &[0o077]);
    let again = sc(nr::UMASK, &[0o022]);
    c.check(
        "umask-returns-old",
        old == Ok(0o022) && again == Ok(0o077),
        format_args!("{:?} then {:?}", old, again),
    );
}

/// A pointer to a path that names nothing.
fn missing_ptr() -> usize {
    c"/no/such/dir".as_ptr() as usize
}

/// The names in `linux_dirent64` records.
fn dirent_names(buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at + 19 < buf.len() {
        let len = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
        if len < 20 || at + len > buf.len() {
            break;
        }
        let name = &buf[at + 19..at + len];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        at += len;
    }
    names
}

fn getdents(c: &mut Checks, dir: usize) {
    let mut buf = vec![0u8; 8192];
    let _ = sc(nr::LSEEK, &[dir, 0, 0]);
    let n = sc(nr::GETDENTS64, &[dir, buf.as_mut_ptr() as usize, buf.len()]);
    let names = n.map(|n| dirent_names(&buf[..n])).unwrap_or_default();
    let has = |x: &str| names.iter().any(|n| n == x);
    c.check(
        "getdents64-proc-self",
        has(".") && has("..") && has("status") && has("maps") && has("exe"),
        format_args!("{:?}: {} names", n, names.len()),
    );
    let _ = sc(nr::LSEEK, &[dir, 0, 0]);
    c.expect_errno(
        "getdents64-small-buffer",
        sc(nr::GETDENTS64, &[dir, buf.as_mut_ptr() as usize, 8]),
        Errno::EINVAL,
    );
}

fn devices(c: &mut Checks) {
    if let Ok(fd) = open("/dev/null", 2) {
        let w = write(fd, b"gone");
        let mut buf = [1u8; 4];
        let r = read(fd, &mut buf);
        c.check(
            "dev-null",
            w == Ok(4) && r == Ok(0),
            format_args!("write {:?} read {:?}", w, r),
        );
        close(fd);
    } else {
        c.check("dev-null", false, format_args!("open failed"));
    }
    if let Ok(fd) = open("/dev/zero", O_RDONLY) {
        let mut buf = [1u8; 100];
        let r = read(fd, &mut buf);
        c.check(
            "dev-zero",
            r == Ok(100) && buf.iter().all(|&b| b == 0),
            format_args!("{:?}", r),
        );
        close(fd);
    } else {
        c.check("dev-zero", false, format_args!("open failed"));
    }
}

fn eventfds(c: &mut Checks) {
    const EFD_SEMAPHORE: usize = 1;
    match sc(nr::EVENTFD2, &[5, O_NONBLOCK]) {
        Ok(fd) => {
            let mut v = 0u64;
            let p = &mut v as *mut u64 as usize;
            let r = sc(nr::READ, &[fd, p, 8]);
            c.check(
                "eventfd-read-initial",
                r == Ok(8) && v == 5,
                format_args!("{:?} {}", r, v),
            );
            c.expect_errno(
                "eventfd-empty-eagain",
                sc(nr::READ, &[fd, p, 8]),
                Errno::EAGAIN,
            );
            c.check(
                "eventfd-empty-poll-out-only",
                poll1(fd, POLLIN | POLLOUT, 0) == Ok(POLLOUT),
                format_args!("{:?}", poll1(fd, POLLIN | POLLOUT, 0)),
            );
            let three = 3u64;
            let four = 4u64;
            let _ = sc(nr::WRITE, &[fd, &three as *const u64 as usize, 8]);
            let _ = sc(nr::WRITE, &[fd, &four as *const u64 as usize, 8]);
            let r = sc(nr::READ, &[fd, p, 8]);
            c.check(
                "eventfd-writes-add",
                r == Ok(8) && v == 7,
                format_args!("{:?} {}", r, v),
            );
            c.expect_errno(
                "eventfd-short-read",
                sc(nr::READ, &[fd, p, 4]),
                Errno::EINVAL,
            );
            let all = u64::MAX;
            c.expect_errno(
                "eventfd-write-max-einval",
                sc(nr::WRITE, &[fd, &all as *const u64 as usize, 8]),
                Errno::EINVAL,
            );
            let most = u64::MAX - 1;
            let _ = sc(nr::WRITE, &[fd, &most as *const u64 as usize, 8]);
            let one = 1u64;
            c.expect_errno(
                "eventfd-overflow-eagain",
                sc(nr::WRITE, &[fd, &one as *const u64 as usize, 8]),
                Errno::EAGAIN,
            );
            let fl = sc(nr::FCNTL, &[fd, F_GETFL]);
            c.check(
                "eventfd-flags",
                fl == Ok(2 | O_NONBLOCK),
                format_args!("{:?}", fl),
            );
            close(fd);
        }
        Err(e) => {
            c.check(
                "eventfd-read-initial",
                false,
                format_args!("eventfd2: {}", e),
            );
        }
    }
    if let Ok(fd) = sc(nr::EVENTFD2, &[2, EFD_SEMAPHORE | O_NONBLOCK]) {
        let mut v = 0u64;
        let p = &mut v as *mut u64 as usize;
        let a = sc(nr::READ, &[fd, p, 8]).map(|_| v);
        let b = sc(nr::READ, &[fd, p, 8]).map(|_| v);
        let e = sc(nr::READ, &[fd, p, 8]);
        c.check(
            "eventfd-semaphore",
            a == Ok(1) && b == Ok(1) && e == Err(Errno::EAGAIN),
            format_args!("{:?} {:?} {:?}", a, b, e),
        );
        close(fd);
    }
    c.expect_errno(
        "eventfd-bad-flags",
        sc(nr::EVENTFD2, &[0, 2]),
        Errno::EINVAL,
    );
}

fn ppolls(c: &mut Checks) {
    let Ok((r, w)) = pipe2(0) else { return };
    let mut pfd = [r as u32 as u64 | ((POLLIN as u16 as u64) << 32)];
    let short = [0i64, 1_000_000];
    let n = sc(
        nr::PPOLL,
        &[pfd.as_mut_ptr() as usize, 1, short.as_ptr() as usize, 0, 8],
    );
    c.check("ppoll-times-out", n == Ok(0), format_args!("{:?}", n));
    let bad = [0i64, 1_000_000_000];
    c.expect_errno(
        "ppoll-bad-timespec",
        sc(
            nr::PPOLL,
            &[pfd.as_mut_ptr() as usize, 1, bad.as_ptr() as usize, 0, 8],
        ),
        Errno::EINVAL,
    );
    let mask = 0u64;
    c.expect_errno(
        "ppoll-bad-sigsetsize",
        sc(
            nr::PPOLL,
            &[
                pfd.as_mut_ptr() as usize,
                1,
                short.as_ptr() as usize,
                &mask as *const u64 as usize,
                4,
            ],
        ),
        Errno::EINVAL,
    );
    let _ = write(w, b"!");
    let n = sc(
        nr::PPOLL,
        &[
            pfd.as_mut_ptr() as usize,
            1,
            0,
            &mask as *const u64 as usize,
            8,
        ],
    );
    c.check(
        "ppoll-ready-no-timeout",
        n == Ok(1) && (pfd[0] >> 48) as i16 == POLLIN,
        format_args!("{:?} revents {:#x}", n, pfd[0] >> 48),
    );
    close(r);
    close(w);
}

/// `epoll_wait` into `out`: the count and the first event's (events, data).
fn epoll_wait(ep: usize, timeout_ms: isize) -> Result<(usize, u32, u64), Errno> {
    let mut out = [0u8; 12 * 4];
    let n = sc(
        nr::EPOLL_WAIT,
        &[ep, out.as_mut_ptr() as usize, 4, timeout_ms as usize],
    )?;
    let ev = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
    let mut d = [0u8; 8];
    d.copy_from_slice(&out[4..12]);
    Ok((n, ev, u64::from_le_bytes(d)))
}

fn epoll_ctl(ep: usize, op: usize, fd: usize, events: u32, data: u64) -> Result<usize, Errno> {
    let mut ev = [0u8; 12];
    ev[..4].copy_from_slice(&events.to_le_bytes());
    ev[4..].copy_from_slice(&data.to_le_bytes());
    sc(nr::EPOLL_CTL, &[ep, op, fd, ev.as_ptr() as usize])
}

fn epolls(c: &mut Checks) {
    const ADD: usize = 1;
    const DEL: usize = 2;
    const MOD: usize = 3;
    const EPOLLIN: u32 = 1;
    const EPOLLONESHOT: u32 = 1 << 30;
    c.expect_errno(
        "epoll-create1-bad-flags",
        sc(nr::EPOLL_CREATE1, &[1]),
        Errno::EINVAL,
    );
    c.expect_errno(
        "epoll-create-size-zero",
        sc(nr::EPOLL_CREATE, &[0]),
        Errno::EINVAL,
    );
    let (Ok(ep), Ok((r, w))) = (sc(nr::EPOLL_CREATE1, &[O_CLOEXEC]), pipe2(0)) else {
        c.check(
            "epoll-create1",
            false,
            format_args!("epoll_create1 or pipe2 failed"),
        );
        return;
    };
    c.check(
        "epoll-create1-cloexec",
        sc(nr::FCNTL, &[ep, F_GETFD]) == Ok(1),
        format_args!("{:?}", sc(nr::FCNTL, &[ep, F_GETFD])),
    );
    let add = epoll_ctl(ep, ADD, r, EPOLLIN, 42);
    c.check("epoll-ctl-add", add == Ok(0), format_args!("{:?}", add));
    c.expect_errno(
        "epoll-ctl-add-twice",
        epoll_ctl(ep, ADD, r, EPOLLIN, 42),
        Errno::EEXIST,
    );
    c.expect_errno(
        "epoll-ctl-mod-missing",
        epoll_ctl(ep, MOD, w, EPOLLIN, 0),
        Errno::ENOENT,
    );
    c.expect_errno(
        "epoll-ctl-self",
        epoll_ctl(ep, ADD, ep, EPOLLIN, 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "epoll-ctl-not-epoll",
        epoll_ctl(r, ADD, w, EPOLLIN, 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "epoll-ctl-bad-fd",
        epoll_ctl(ep, ADD, 999, EPOLLIN, 0),
        Errno::EBADF,
    );
    if let Ok(file) = open("/proc/self/exe", O_RDONLY) {
        c.expect_errno(
            "epoll-ctl-regular-file-eperm",
            epoll_ctl(ep, ADD, file, EPOLLIN, 0),
            Errno::EPERM,
        );
        close(file);
    }
    c.check(
        "epoll-wait-nothing-ready",
        epoll_wait(ep, 0).map(|x| x.0) == Ok(0),
        format_args!("{:?}", epoll_wait(ep, 0)),
    );
    let _ = write(w, b"e");
    let got = epoll_wait(ep, 0);
    c.check(
        "epoll-wait-reports-data",
        got == Ok((1, EPOLLIN, 42)),
        format_args!("{:?}", got),
    );
    c.check(
        "epoll-level-triggered-again",
        epoll_wait(ep, 0).map(|x| x.0) == Ok(1),
        format_args!("{:?}", epoll_wait(ep, 0)),
    );
    c.check(
        "epoll-fd-polls-readable",
        poll1(ep, POLLIN, 0) == Ok(POLLIN),
        format_args!("{:?}", poll1(ep, POLLIN, 0)),
    );
    let _ = epoll_ctl(ep, MOD, r, EPOLLIN | EPOLLONESHOT, 7);
    let once = epoll_wait(ep, 0);
    let twice = epoll_wait(ep, 0).map(|x| x.0);
    let _ = epoll_ctl(ep, MOD, r, EPOLLIN, 8);
    let rearmed = epoll_wait(ep, 0);
    c.check(
        "epoll-oneshot",
        once == Ok((1, EPOLLIN, 7)) && twice == Ok(0) && rearmed == Ok((1, EPOLLIN, 8)),
        format_args!("{:?} {:?} {:?}", once, twice, rearmed),
    );
    let _ = epoll_ctl(ep, DEL, r, 0, 0);
    c.check(
        "epoll-del",
        epoll_wait(ep, 0).map(|x| x.0) == Ok(0),
        format_args!("{:?}", epoll_wait(ep, 0)),
    );
    let mut out = [0u8; 12];
    c.expect_errno(
        "epoll-wait-maxevents-zero",
        sc(nr::EPOLL_WAIT, &[ep, out.as_mut_ptr() as usize, 0, 0]),
        Errno::EINVAL,
    );
    // A blocked wait woken by another process's write.
    let mut one = [0u8; 1];
    let _ = read(r, &mut one);
    let _ = epoll_ctl(ep, ADD, r, EPOLLIN, 9);
    match fork() {
        Ok(Fork::Child) => {
            sleep_ms(50);
            let _ = write(w, b"w");
            peios_rt::sys::process::exit_group(0);
        }
        Ok(Fork::Parent(pid)) => {
            let got = epoll_wait(ep, 5000);
            let _ = wait_pid(pid);
            c.check(
                "epoll-blocked-wait-woken",
                got == Ok((1, EPOLLIN, 9)),
                format_args!("{:?}", got),
            );
        }
        Err(e) => {
            c.check(
                "epoll-blocked-wait-woken",
                false,
                format_args!("fork: {}", e),
            );
        }
    }
    // The last close of a watched file drops it from the set.
    close(r);
    c.check(
        "epoll-closed-file-dropped",
        epoll_wait(ep, 0).map(|x| x.0) == Ok(0),
        format_args!("{:?}", epoll_wait(ep, 0)),
    );
    if let Ok(efd) = sc(nr::EVENTFD2, &[1, 0]) {
        let _ = epoll_ctl(ep, ADD, efd, EPOLLIN, 77);
        let got = epoll_wait(ep, 0);
        c.check(
            "epoll-eventfd",
            got == Ok((1, EPOLLIN, 77)),
            format_args!("{:?}", got),
        );
        close(efd);
    }
    close(w);
    close(ep);
}

fn dev_userfaultfd(c: &mut Checks) {
    const USERFAULTFD_IOC_NEW: usize = 0xAA00;
    const UFFDIO_API: usize = 0xC018_AA3F;
    match open("/dev/userfaultfd", 2 | O_CLOEXEC) {
        Ok(dev) => {
            let fd = sc(nr::IOCTL, &[dev, USERFAULTFD_IOC_NEW, O_CLOEXEC]);
            let mut api = [0xAAu64, 0, 0];
            let r = fd.and_then(|fd| sc(nr::IOCTL, &[fd, UFFDIO_API, api.as_mut_ptr() as usize]));
            c.check(
                "dev-userfaultfd-ioc-new",
                r == Ok(0) && api[0] == 0xAA,
                format_args!("IOC_NEW {:?} UFFDIO_API {:?}", fd, r),
            );
            if let Ok(fd) = fd {
                close(fd);
            }
            c.expect_errno(
                "dev-userfaultfd-bad-ioctl",
                sc(nr::IOCTL, &[dev, 0x1234, 0]),
                Errno::EINVAL,
            );
            c.expect_errno(
                "dev-userfaultfd-bad-flags",
                sc(nr::IOCTL, &[dev, USERFAULTFD_IOC_NEW, 0x10]),
                Errno::EINVAL,
            );
            close(dev);
        }
        Err(e) => {
            c.check(
                "dev-userfaultfd-ioc-new",
                false,
                format_args!("open: {}", e),
            );
        }
    }
    // Peios: the device needs SeDebugPrivilege (status 99: not Peios, skipped).
    let st = peios_bins::peios::in_restricted_child(|| match open("/dev/userfaultfd", 2) {
        Err(Errno::EACCES) => 0,
        _ => 1,
    });
    c.check(
        "dev-userfaultfd-restricted-eacces",
        matches!(st, Ok(WaitStatus::Exited(0 | 99))),
        format_args!("{:?}", st),
    );
}

fn proc_fd_links(c: &mut Checks) {
    let (Ok((r, w)), Ok(file), Ok(efd)) = (
        pipe2(0),
        open("/proc/meminfo", O_RDONLY),
        sc(nr::EVENTFD2, &[0, 0]),
    ) else {
        c.check("proc-fd-links", false, format_args!("setup failed"));
        return;
    };
    let rl = readlink(&alloc::format!("/proc/self/fd/{r}"));
    let wl = readlink(&alloc::format!("/proc/self/fd/{w}"));
    c.check(
        "proc-fd-pipe-link",
        rl.as_ref()
            .is_ok_and(|l| l.starts_with("pipe:[") && l.ends_with(']'))
            && rl == wl,
        format_args!("{:?} {:?}", rl, wl),
    );
    let fl = readlink(&alloc::format!("/proc/self/fd/{file}"));
    c.check(
        "proc-fd-path-link",
        fl.as_deref() == Ok("/proc/meminfo"),
        format_args!("{:?}", fl),
    );
    let el = readlink(&alloc::format!("/proc/self/fd/{efd}"));
    c.check(
        "proc-fd-eventfd-link",
        el.as_deref() == Ok("anon_inode:[eventfd]"),
        format_args!("{:?}", el),
    );
    c.expect_errno(
        "proc-fd-closed-enoent",
        readlink("/proc/self/fd/999"),
        Errno::ENOENT,
    );
    // Reopening a path's link opens that path.
    let again = open(&alloc::format!("/proc/self/fd/{file}"), O_RDONLY);
    let mut head = [0u8; 9];
    let got = again.and_then(|fd| {
        let n = read(fd, &mut head);
        close(fd);
        n
    });
    c.check(
        "proc-fd-reopen-path",
        got == Ok(9) && &head == b"MemTotal:",
        format_args!("{:?}", got),
    );
    if let Ok(dir) = open("/proc/self/fd", O_RDONLY | O_DIRECTORY) {
        let mut buf = vec![0u8; 4096];
        let n = sc(nr::GETDENTS64, &[dir, buf.as_mut_ptr() as usize, buf.len()]).unwrap_or(0);
        let names = dirent_names(&buf[..n]);
        let want = [r, w, file, efd, dir].map(|fd| alloc::format!("{fd}"));
        let all = want.iter().all(|w| names.contains(w));
        c.check("proc-fd-lists-open-fds", all, format_args!("{:?}", names));
        close(dir);
    }
    close(r);
    close(w);
    close(file);
    close(efd);
    let root = cstr("/proc");
    let _ = sc(nr::CHDIR, &[root.as_ptr() as usize]);
    let cwd = readlink("/proc/self/cwd");
    let back = cstr("/");
    let _ = sc(nr::CHDIR, &[back.as_ptr() as usize]);
    c.check(
        "proc-self-cwd",
        cwd.as_deref() == Ok("/proc"),
        format_args!("{:?}", cwd),
    );
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("posix");
    let pid = sc(nr::GETPID, &[]).unwrap_or(0);
    pipes(&mut checks);
    dups(&mut checks);
    vectored(&mut checks);
    stats(&mut checks);
    access(&mut checks);
    paths(&mut checks, pid);
    devices(&mut checks);
    eventfds(&mut checks);
    ppolls(&mut checks);
    epolls(&mut checks);
    dev_userfaultfd(&mut checks);
    proc_fd_links(&mut checks);
    checks.finish()
}
