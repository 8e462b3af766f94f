//! `fuzz [--count N] [--seed S] [--timeout SECS] [--list]`: a syscall fuzz smoke
//! test. `fuzz --mm [--count N] [--seed S] [--timeout SECS] [--budget SECS] [--workers W]
//! [--touchers T] [--no-fork]` fuzzes the mm calls instead (see [`mm`]); `--budget`
//! ends a long run after SECS with success if calls kept being answered and nothing
//! failed (`--timeout` is a hang limit: not done by then is a failure).
//!
//! Default mode: A forked child makes N (default 100000) syscalls with random numbers and
//! random arguments from a fixed-seed LCG; the parent checks that the child exits
//! normally (status 0) within the timeout, then prints how often each errno came
//! back. The kernel must answer every call with a result or an errno and stay up.
//!
//! Safety: the numbers are drawn from [`ALLOWED`] (calls reviewed to be harmless
//! even as root on a real Linux host), and one call in eight from ranges that no
//! kernel assigns (which must give ENOSYS). Left out on purpose: anything that ends, forks, execs,
//! signals, sleeps, polls or waits; every mm call (mmap/munmap/mprotect/brk/...);
//! anything that creates descriptors, files or IPC objects (so every fd call sees
//! a closed descriptor); anything that changes names, permissions, times,
//! credentials, limits, scheduling, affinity, mounts, modules, the clock, the
//! host name or the machine state; ptrace and cross-process calls; futex, rseq,
//! prctl, arch_prctl, seccomp and rt_sigaction. Before fuzzing, the child closes
//! every descriptor below 1024, so nothing reaches the console or a file.
//! Pointer arguments point into a scratch buffer fenced by a read-only page and a
//! guard page, at unmapped, kernel-half or non-canonical addresses, or at NULL.
//! Results go to the parent through a MAP_SHARED page (without one, only the
//! child's exit status is reported).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod mm;

use core::sync::atomic::{AtomicU64, Ordering};
use peios_rt::prelude::*;
use peios_rt::process::{fork, Fork, WaitStatus};
use peios_rt::signal::SIGKILL;
use peios_rt::sys::fs::close;
use peios_rt::sys::mm::{mmap, mmap_anon, mprotect, munmap, MapFlags, Prot, PAGE_SIZE};
use peios_rt::sys::process::{exit_group, kill, wait4, WNOHANG};
use peios_rt::syscall::syscall6;
use peios_rt::time::{monotonic_ns, sleep_ms};

peios_rt::main!(main);

/// The syscalls the fuzzer may call, by number (Linux x86_64 table), with names.
pub const ALLOWED: &[(usize, &str)] = &[
    (0, "read"),
    (1, "write"),
    (3, "close"),
    (4, "stat"),
    (5, "fstat"),
    (6, "lstat"),
    (8, "lseek"),
    (14, "rt_sigprocmask"),
    (16, "ioctl"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (21, "access"),
    (24, "sched_yield"),
    (36, "getitimer"),
    (39, "getpid"),
    (40, "sendfile"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (48, "shutdown"),
    (49, "bind"),
    (50, "listen"),
    (51, "getsockname"),
    (52, "getpeername"),
    (54, "setsockopt"),
    (55, "getsockopt"),
    (63, "uname"),
    (72, "fcntl"),
    (73, "flock"),
    (74, "fsync"),
    (75, "fdatasync"),
    (78, "getdents"),
    (79, "getcwd"),
    (80, "chdir"),
    (81, "fchdir"),
    (89, "readlink"),
    (95, "umask"),
    (96, "gettimeofday"),
    (97, "getrlimit"),
    (98, "getrusage"),
    (99, "sysinfo"),
    (100, "times"),
    (102, "getuid"),
    (104, "getgid"),
    (107, "geteuid"),
    (108, "getegid"),
    (110, "getppid"),
    (111, "getpgrp"),
    (115, "getgroups"),
    (118, "getresuid"),
    (120, "getresgid"),
    (121, "getpgid"),
    (124, "getsid"),
    (125, "capget"),
    (127, "rt_sigpending"),
    (131, "sigaltstack"),
    (136, "ustat"),
    (137, "statfs"),
    (138, "fstatfs"),
    (139, "sysfs"),
    (140, "getpriority"),
    (143, "sched_getparam"),
    (145, "sched_getscheduler"),
    (146, "sched_get_priority_max"),
    (147, "sched_get_priority_min"),
    (148, "sched_rr_get_interval"),
    (156, "_sysctl"),
    (174, "create_module"),
    (177, "get_kernel_syms"),
    (178, "query_module"),
    (180, "nfsservctl"),
    (181, "getpmsg"),
    (182, "putpmsg"),
    (183, "afs_syscall"),
    (184, "tuxcall"),
    (185, "security"),
    (186, "gettid"),
    (187, "readahead"),
    (191, "getxattr"),
    (192, "lgetxattr"),
    (193, "fgetxattr"),
    (194, "listxattr"),
    (195, "llistxattr"),
    (196, "flistxattr"),
    (201, "time"),
    (204, "sched_getaffinity"),
    (211, "get_thread_area"),
    (212, "lookup_dcookie"),
    (214, "epoll_ctl_old"),
    (217, "getdents64"),
    (218, "set_tid_address"),
    (219, "restart_syscall"),
    (221, "fadvise64"),
    (224, "timer_gettime"),
    (225, "timer_getoverrun"),
    (228, "clock_gettime"),
    (229, "clock_getres"),
    (233, "epoll_ctl"),
    (236, "vserver"),
    (252, "ioprio_get"),
    (254, "inotify_add_watch"),
    (255, "inotify_rm_watch"),
    (262, "newfstatat"),
    (267, "readlinkat"),
    (269, "faccessat"),
    (273, "set_robust_list"),
    (274, "get_robust_list"),
    (275, "splice"),
    (276, "tee"),
    (277, "sync_file_range"),
    (278, "vmsplice"),
    (285, "fallocate"),
    (286, "timerfd_settime"),
    (287, "timerfd_gettime"),
    (288, "accept4"),
    (295, "preadv"),
    (296, "pwritev"),
    (299, "recvmmsg"),
    (303, "name_to_handle_at"),
    (306, "syncfs"),
    (307, "sendmmsg"),
    (309, "getcpu"),
    (315, "sched_getattr"),
    (318, "getrandom"),
    (324, "membarrier"),
    (326, "copy_file_range"),
    (327, "preadv2"),
    (328, "pwritev2"),
    (332, "statx"),
    (439, "faccessat2"),
    (451, "cachestat"),
    (457, "statmount"),
    (458, "listmount"),
    (459, "lsm_get_self_attr"),
    (461, "lsm_list_modules"),
];

/// Number ranges no Linux x86_64 kernel assigns (the gap before pidfd_send_signal
/// and the x32 numbers without the x32 bit); every call there must give ENOSYS.
/// 335 is not in it: Linux 6.11 gave it to `uretprobe`, which SIGILLs any caller
/// that is not the uretprobe trampoline.
pub const UNASSIGNED: &[(usize, usize)] = &[(336, 423), (512, 600)];

const SCRATCH_BYTES: usize = 64 << 10;
/// Strings placed in the scratch buffer so path arguments sometimes name real files.
const STRINGS: &[&[u8]] = &[
    b"/\0",
    b".\0",
    b"/init\0",
    b"/bin\0",
    b"/bin/hello\0",
    b"/proc/self/maps\0",
    b"/tmp\0",
    b"\0",
];
const STRING_SLOT: usize = 256;

const HUGE: &[usize] = &[
    usize::MAX >> 1,
    1 << 63,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    0xffff_8000_0000_0000,
    0x0000_8000_0000_0000,
];

/// What the child reports through the shared page.
#[repr(C)]
struct Report {
    /// Calls made so far.
    done: AtomicU64,
    /// The syscall number in flight (for a hang or crash).
    current_nr: AtomicU64,
    /// Calls that returned a non-error value.
    success: AtomicU64,
    /// Calls that returned a value outside Linux's errno table (1..=133).
    unknown: AtomicU64,
    /// The last such value.
    unknown_last: AtomicU64,
    /// Per-errno counts, index = errno.
    errno: [AtomicU64; 134],
}

/// A 64-bit LCG (Knuth's MMIX constants); fixed seed, so every run is the same.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Arena {
    scratch: usize,
    readonly: usize,
    unmapped: usize,
}

impl Arena {
    /// `[guard][scratch 64 KiB RW][read-only page][guard]`: kernel writes that run
    /// past the scratch buffer stop at the read-only page with EFAULT.
    fn new() -> Result<Arena, Errno> {
        let total = PAGE_SIZE + SCRATCH_BYTES + 2 * PAGE_SIZE;
        let base = mmap_anon(total, Prot::RW)? as usize;
        let scratch = base + PAGE_SIZE;
        let readonly = scratch + SCRATCH_BYTES;
        // SAFETY: the pages belong to our fresh mapping and hold nothing yet.
        unsafe {
            mprotect(base as *mut u8, PAGE_SIZE, Prot::NONE)?;
            mprotect(readonly as *mut u8, PAGE_SIZE, Prot::READ)?;
            mprotect((readonly + PAGE_SIZE) as *mut u8, PAGE_SIZE, Prot::NONE)?;
        }
        let unmapped = peios_bins::unmapped_page().ok_or(Errno::ENOMEM)?;
        Ok(Arena {
            scratch,
            readonly,
            unmapped,
        })
    }

    /// Refills the scratch buffer: random bytes, with known strings in the first slots.
    fn refill(&self, rng: &mut Lcg) {
        // SAFETY: the scratch buffer is our RW mapping; nothing holds references to it.
        let buf =
            unsafe { core::slice::from_raw_parts_mut(self.scratch as *mut u8, SCRATCH_BYTES) };
        for chunk in buf.chunks_mut(4) {
            let v = rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        for (i, s) in STRINGS.iter().enumerate() {
            buf[i * STRING_SLOT..i * STRING_SLOT + s.len()].copy_from_slice(s);
        }
    }

    fn arg(&self, rng: &mut Lcg) -> usize {
        match rng.below(16) {
            0..=3 => rng.below(64),
            4 => usize::MAX,
            5 => HUGE[rng.below(HUGE.len())],
            6..=8 => {
                let off = rng.below(SCRATCH_BYTES);
                self.scratch + if rng.below(2) == 0 { off & !7 } else { off }
            }
            9 => self.scratch + rng.below(STRINGS.len()) * STRING_SLOT,
            10 => self.unmapped + rng.below(PAGE_SIZE),
            11 => self.readonly + rng.below(PAGE_SIZE),
            12 => 0,
            13 => [1usize, 8, 16, 4096, 8192, 65536][rng.below(6)],
            14 => rng.below(PAGE_SIZE),
            _ => (rng.next() << 31) as usize ^ rng.next() as usize,
        }
    }
}

/// One call in [`UNASSIGNED_ONE_IN`] goes to an unassigned number.
const UNASSIGNED_ONE_IN: usize = 8;

fn unassigned() -> Vec<usize> {
    UNASSIGNED.iter().flat_map(|&(lo, hi)| lo..=hi).collect()
}

fn pick(rng: &mut Lcg, unassigned: &[usize]) -> usize {
    if rng.below(UNASSIGNED_ONE_IN) == 0 {
        unassigned[rng.below(unassigned.len())]
    } else {
        ALLOWED[rng.below(ALLOWED.len())].0
    }
}

fn name_of(nr: usize) -> &'static str {
    ALLOWED
        .iter()
        .find(|&&(n, _)| n == nr)
        .map_or("unassigned", |&(_, s)| s)
}

fn child(report: &Report, count: u64, seed: u64) -> ! {
    // Nothing the fuzzer does may reach the console or a file.
    for fd in 0..1024 {
        let _ = close(fd);
    }
    let Ok(arena) = Arena::new() else {
        exit_group(3)
    };
    let unassigned = unassigned();
    let mut rng = Lcg(seed);
    for i in 0..count {
        if i % 256 == 0 {
            arena.refill(&mut rng);
        }
        let nr = pick(&mut rng, &unassigned);
        let a: [usize; 6] = core::array::from_fn(|_| arena.arg(&mut rng));
        report.current_nr.store(nr as u64, Ordering::Relaxed);
        // SAFETY: `nr` is from the reviewed list (or unassigned), so the call can
        // only write through pointer arguments, which point into the fenced scratch
        // buffer or at memory the kernel must refuse; no descriptor is open.
        let r = unsafe { syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        match Errno::result(r) {
            Ok(_) => report.success.fetch_add(1, Ordering::Relaxed),
            Err(Errno::Unknown(v)) => {
                report.unknown_last.store(v as u64, Ordering::Relaxed);
                report.unknown.fetch_add(1, Ordering::Relaxed)
            }
            Err(e) => report.errno[e.raw() as usize].fetch_add(1, Ordering::Relaxed),
        };
        report.done.store(i + 1, Ordering::Release);
    }
    exit_group(0)
}

fn main(args: &Args) -> i32 {
    if args.has("--mm") {
        return mm_main(args);
    }
    if args.has("--list") {
        for &(n, name) in ALLOWED {
            println!("{:3} {}", n, name);
        }
        for &(lo, hi) in UNASSIGNED {
            println!("{}..={} unassigned (ENOSYS)", lo, hi);
        }
        return 0;
    }
    let (count, seed, timeout_s) = match (
        args.opt_u64("--count", 100_000),
        args.opt_u64("--seed", 0x5eed),
        args.opt_u64("--timeout", 600),
    ) {
        (Ok(c), Ok(s), Ok(t)) => (c, s, t),
        _ => {
            eprintln!("usage: fuzz [--count N] [--seed S] [--timeout SECS] [--list]");
            return 2;
        }
    };
    println!(
        "fuzz: {} calls, seed {:#x}, {} allowed syscalls + {} unassigned numbers (1 call in {}), timeout {} s",
        count,
        seed,
        ALLOWED.len(),
        unassigned().len(),
        UNASSIGNED_ONE_IN,
        timeout_s
    );
    let len = core::mem::size_of::<Report>().next_multiple_of(PAGE_SIZE);
    // SAFETY: a fresh shared anonymous mapping (no MAP_FIXED), zero-filled, which is
    // a valid Report (all atomics zero).
    let shared = unsafe {
        mmap(
            0,
            len,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    };
    let (page, counts_valid) = match shared {
        Ok(p) => (p, true),
        Err(e) => {
            println!(
                "fuzz: MAP_SHARED|MAP_ANONYMOUS failed ({}); errno counts unavailable",
                e.name()
            );
            match mmap_anon(len, Prot::RW) {
                Ok(p) => (p, false),
                Err(e) => {
                    println!("fuzz: FAILED: cannot map the report page: {}", e);
                    return 1;
                }
            }
        }
    };
    // SAFETY: the page is zeroed, page-aligned and large enough for a Report; it is
    // only accessed through atomics.
    let report = unsafe { &*(page as *const Report) };
    let start = monotonic_ns();
    let pid = match fork() {
        Err(e) => {
            println!("fuzz: FAILED: fork: {}", e);
            return 1;
        }
        Ok(Fork::Child) => child(report, count, seed),
        Ok(Fork::Parent(pid)) => pid,
    };
    let deadline = start + timeout_s * 1_000_000_000;
    let status = loop {
        match wait4(pid, WNOHANG) {
            Ok((0, _)) => {}
            Ok((_, raw)) => break Some(WaitStatus::from_raw(raw)),
            Err(Errno::EINTR) => {}
            Err(e) => {
                println!("fuzz: FAILED: wait4: {}", e);
                return 1;
            }
        }
        if timeout_s > 0 && monotonic_ns() > deadline {
            break None;
        }
        sleep_ms(20);
    };
    let elapsed_ms = (monotonic_ns() - start) / 1_000_000;
    let done = report.done.load(Ordering::Acquire);
    let nr = report.current_nr.load(Ordering::Acquire) as usize;
    let ok = match status {
        None => {
            let _ = kill(pid, SIGKILL);
            let _ = wait4(pid, 0);
            println!(
                "fuzz: FAILED: child still running after {} s, in syscall {} ({}) after {} calls",
                timeout_s,
                nr,
                name_of(nr),
                done
            );
            false
        }
        Some(WaitStatus::Exited(0)) => true,
        Some(st) => {
            println!(
                "fuzz: FAILED: child {} after {} calls, last syscall {} ({})",
                st,
                done,
                nr,
                name_of(nr)
            );
            false
        }
    };
    if counts_valid {
        println!(
            "fuzz: {} calls in {} ms: {} succeeded",
            done,
            elapsed_ms,
            report.success.load(Ordering::Acquire)
        );
        for e in Errno::ALL {
            let n = report.errno[e.raw() as usize].load(Ordering::Acquire);
            if n > 0 {
                println!("fuzz.errno.{}={}", e.name(), n);
            }
        }
        let unknown = report.unknown.load(Ordering::Acquire);
        if unknown > 0 {
            println!(
                "fuzz: WARNING: {} results outside Linux's errno table (last {})",
                unknown,
                report.unknown_last.load(Ordering::Acquire) as i64
            );
        }
    }
    // SAFETY: the child is gone; nothing uses the page any more.
    let _ = unsafe { munmap(page, len) };
    if ok && (done == count || !counts_valid) {
        println!(
            "fuzz: ok: the child made its {} calls and exited normally",
            count
        );
        0
    } else {
        if ok {
            println!("fuzz: FAILED: child reported {} of {} calls", done, count);
        }
        1
    }
}

fn mm_main(args: &Args) -> i32 {
    let parsed = (
        args.opt_u64("--count", 20_000),
        args.opt_u64("--seed", 0x5eed),
        args.opt_u64("--timeout", 600),
        args.opt_u64("--workers", 3),
        args.opt_u64("--touchers", 2),
        args.opt_u64("--budget", 0),
    );
    let (Ok(count), Ok(seed), Ok(timeout_s), Ok(workers), Ok(touchers), Ok(budget_s)) = parsed
    else {
        eprintln!("usage: fuzz --mm [--count N] [--seed S] [--timeout SECS] [--budget SECS] [--workers 1..=6] [--touchers T] [--no-fork] [--trace]");
        return 2;
    };
    if !(1..=mm::MAX_WORKERS as u64).contains(&workers) || touchers > 8 {
        eprintln!("fuzz --mm: --workers must be 1..=6 and --touchers at most 8");
        return 2;
    }
    mm::run(mm::Params {
        count,
        seed,
        timeout_s,
        budget_s,
        workers: workers as usize,
        touchers: touchers as usize,
        fork: !args.has("--no-fork"),
        trace: args.has("--trace"),
    })
}
