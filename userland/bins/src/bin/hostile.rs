//! `hostile`: values a hostile program picks get Linux's answer, and the kernel survives.
//!
//! Overflows: a `/proc/self/pagemap` read far past user space reads nothing; mremap
//! with a huge old length is EINVAL; wait4 and kill with INT_MIN are ESRCH, and a pid
//! argument is an int (`i64::MIN` is pid 0), as are descriptors and open flags (upper
//! bits of the register ignored). FUTEX_WAKE outside user space, or on an
//! unmapped shared word, is EFAULT (an unmapped private word: 0). `/proc/sys` writes:
//! a second write on the same descriptor is ignored, `+5` is EINVAL, `0x..` is hex.
//! execve: a 1 MiB argument is E2BIG; an ELF with a 64 TiB .bss (`/bin/hugebss`,
//! written by build.sh) fails with ENOMEM at once. A restricted process may kill its
//! own child but not init. A SIGSEGV handler that faults again on its alternate stack
//! ends with the process killed by SIGSEGV; so does rt_sigreturn to a non-canonical
//! RIP. vfork suspends the parent until the child exits; a `CLONE_VM` child's exit
//! leaves the parent's memory alone.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use peios_bins::files::{open, read_file, write_file};
use peios_bins::{peios::in_restricted_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::{execve, fork, wait_pid, Fork, WaitStatus};
use peios_rt::signal::{set_handler, Handler, SA_NODEFER, SA_ONSTACK, SIGKILL, SIGSEGV};
use peios_rt::sys::fs::{self, lseek_set, O_RDONLY, O_WRONLY};
use peios_rt::sys::mm::{mmap_anon, mremap, MremapFlags, Prot, PAGE_SIZE};
use peios_rt::sys::nr;
use peios_rt::sys::process::{exit_group, kill, wait4};
use peios_rt::sys::signal::SigSet;
use peios_rt::sys::time::{nanosleep, Timespec};
use peios_rt::syscall::*;

peios_rt::main!(main);

/// A non-canonical pointer (bit 47 clear, bits 48..63 not a sign extension).
const NONCANONICAL_PTR: usize = 0x0000_8000_0000_1000;
/// A pointer in the kernel half.
const KERNEL_PTR: usize = 0xffff_8000_0000_0000;
/// `CLONE_VM`, `CLONE_VFORK` and the exit signal for clone.
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const SIGCHLD: u64 = 17;
/// `sigaltstack`.
const SYS_SIGALTSTACK: usize = 131;
/// `WNOHANG`.
const WNOHANG: u32 = 1;

fn raw(r: isize) -> Result<usize, Errno> {
    Errno::result(r)
}

fn sleep_ms(ms: u64) {
    let _ = nanosleep(&Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    });
}

/// Waits up to `ms` for child `pid`; kills and reaps it if it is still running
/// (`None`: it did not end by itself).
fn wait_with_timeout(pid: i32, ms: u64) -> Option<WaitStatus> {
    for _ in 0..ms / 20 {
        match wait4(pid, WNOHANG) {
            Ok((0, _)) | Err(Errno::EINTR) => sleep_ms(20),
            Ok((_, raw)) => return Some(WaitStatus::from_raw(raw)),
            Err(_) => return None,
        }
    }
    let _ = kill(pid, SIGKILL);
    let _ = wait_pid(pid);
    None
}

/// Runs `child` in a forked child with a deadline of `ms`.
fn in_child_with_timeout(ms: u64, child: impl FnOnce() -> i32) -> Option<WaitStatus> {
    match fork() {
        Ok(Fork::Child) => exit_group(child()),
        Ok(Fork::Parent(pid)) => wait_with_timeout(pid, ms),
        Err(_) => None,
    }
}

fn is_signaled(status: Option<WaitStatus>, sig: i32) -> bool {
    matches!(status, Some(WaitStatus::Signaled { signal, .. }) if signal == sig)
}

fn check_pagemap(c: &mut Checks) {
    let fd = match open("/proc/self/pagemap", O_RDONLY) {
        Ok(fd) => fd,
        Err(e) => {
            c.check("pagemap-open", false, format_args!("{}", e));
            return;
        }
    };
    let mut buf = [0u8; 64];
    let first = fs::read(fd, &mut buf[..8]);
    c.check(
        "pagemap-reads-an-entry",
        first == Ok(8),
        format_args!("{:?}", first),
    );
    // The entry of the first page above user space, and one a multiply would overflow.
    for (name, offset) in [
        (
            "pagemap-past-user-space-reads-nothing",
            (1u64 << 47) / 4096 * 8,
        ),
        ("pagemap-huge-offset-reads-nothing", 0x7fff_ffff_ffff_fff8),
    ] {
        let got = lseek_set(fd, offset).and_then(|_| fs::read(fd, &mut buf));
        c.check(name, got == Ok(0), format_args!("{:?}", got));
    }
    let _ = fs::close(fd);
}

fn check_mremap(c: &mut Checks) {
    let Ok(a) = mmap_anon(2 * PAGE_SIZE, Prot::RW) else {
        c.check("mremap-setup", false, format_args!("mmap failed"));
        return;
    };
    // SAFETY: a huge old length must be refused before anything is unmapped.
    let r = unsafe {
        mremap(
            a,
            usize::MAX - PAGE_SIZE + 1,
            PAGE_SIZE,
            MremapFlags::empty(),
            0,
        )
    };
    c.expect_errno("mremap-huge-old-len-einval", r, Errno::EINVAL);
    // SAFETY: as above.
    let r = unsafe {
        mremap(
            a,
            usize::MAX - a as usize,
            PAGE_SIZE,
            MremapFlags::MAYMOVE,
            0,
        )
    };
    c.expect_errno("mremap-wrapping-old-range-einval", r, Errno::EINVAL);
    // SAFETY: our own mapping, still mapped.
    let still = unsafe { core::ptr::read_volatile(a.add(PAGE_SIZE)) };
    c.check(
        "mremap-refusal-keeps-mapping",
        still == 0,
        format_args!("read {}", still),
    );
    // A restricted process may not move a mapping below vm.mmap_min_addr (64 KiB) any
    // more than it may mmap there: EPERM, and the mapping stays where it was.
    let status = in_restricted_child(|| {
        let Ok(p) = mmap_anon(PAGE_SIZE, Prot::RW) else {
            return 10;
        };
        for low in [0usize, 0x1000, 0xf000] {
            let flags = MremapFlags::MAYMOVE | MremapFlags::FIXED;
            // SAFETY: a refused move changes nothing; a granted one is a bug we report.
            let r = unsafe { mremap(p, PAGE_SIZE, PAGE_SIZE, flags, low) };
            if r != Err(Errno::EPERM) {
                return 11;
            }
        }
        // SAFETY: still our mapping.
        unsafe { p.write_volatile(7) };
        0
    });
    c.check(
        "mremap-fixed-below-mmap_min_addr-eperm",
        status == Ok(WaitStatus::Exited(0)),
        format_args!("restricted child {:?}", status),
    );
}

/// Arguments Linux declares `int`/`unsigned int` are the low half of the register:
/// garbage above it (musl sign-extends) changes nothing.
fn check_int_args(c: &mut Checks) {
    const AT_FDCWD_ZERO_EXTENDED: usize = 0xffff_ff9c; // -100 as a u32
    let msg = b"hostile: a descriptor with upper bits set still names stdout\n";
    // SAFETY: write of our own buffer to fd 1 (the low half of the argument).
    let r = raw(unsafe {
        syscall3(
            nr::WRITE,
            0xdead_0000_0000_0001,
            msg.as_ptr() as usize,
            msg.len(),
        )
    });
    c.check(
        "fd-upper-bits-ignored",
        r == Ok(msg.len()),
        format_args!("{:?}", r),
    );
    let path = b"/proc/self/status\0";
    // SAFETY: openat of a NUL-terminated path we own; the descriptor is closed below.
    let r = raw(unsafe {
        syscall4(
            nr::OPENAT,
            AT_FDCWD_ZERO_EXTENDED,
            path.as_ptr() as usize,
            0xffff_ffff_0000_0000,
            0,
        )
    });
    if let Ok(fd) = r {
        let _ = fs::close(fd as i32);
    }
    c.check(
        "openat-dirfd-and-flags-are-ints",
        r.is_ok(),
        format_args!("{:?}", r),
    );
}

fn check_pid_args(c: &mut Checks) {
    c.expect_errno(
        "wait4-int-min-esrch",
        wait4(i32::MIN, WNOHANG),
        Errno::ESRCH,
    );
    // SAFETY: wait4 with no status pointer; i64::MIN is int 0: our group, no children.
    let r = raw(unsafe { syscall4(nr::WAIT4, i64::MIN as usize, 0, WNOHANG as usize, 0) });
    c.expect_errno("wait4-i64-min-is-pid-0", r, Errno::ECHILD);
    c.expect_errno("kill-int-min-esrch", kill(i32::MIN, 0), Errno::ESRCH);
    // SAFETY: kill with signal 0 only checks; i64::MIN is int 0 (our own group).
    let r = raw(unsafe { syscall2(nr::KILL, i64::MIN as usize, 0) });
    c.check(
        "kill-i64-min-is-own-group",
        r == Ok(0),
        format_args!("{:?}", r),
    );
}

fn check_futex_wake(c: &mut Checks, unmapped: usize) {
    const FUTEX_WAKE: usize = 1;
    const FUTEX_PRIVATE_FLAG: usize = 128;
    for (name, addr, op) in [
        (
            "futex-wake-noncanonical-efault",
            NONCANONICAL_PTR,
            FUTEX_WAKE,
        ),
        (
            "futex-wake-private-noncanonical-efault",
            NONCANONICAL_PTR,
            FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
        ),
        ("futex-wake-kernel-efault", KERNEL_PTR, FUTEX_WAKE),
        ("futex-wake-unmapped-shared-efault", unmapped, FUTEX_WAKE),
    ] {
        // SAFETY: FUTEX_WAKE only looks the word up; nothing of ours is written.
        let r = raw(unsafe { syscall6(nr::FUTEX, addr, op, 1, 0, 0, 0) });
        c.expect_errno(name, r, Errno::EFAULT);
    }
    // SAFETY: as above.
    let r = raw(unsafe {
        syscall6(
            nr::FUTEX,
            unmapped,
            FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            1,
            0,
            0,
            0,
        )
    });
    c.check(
        "futex-wake-unmapped-private-wakes-none",
        r == Ok(0),
        format_args!("{:?} (Linux keys a private futex by address only)", r),
    );
}

fn check_sysctl(c: &mut Checks) {
    const PATH: &str = "/proc/sys/vm/stat_interval";
    let Ok(before) = read_file(PATH) else {
        c.check("sysctl-setup", false, format_args!("cannot read {}", PATH));
        return;
    };
    let value = || read_file(PATH).map(|s| String::from(s.trim()));
    match open(PATH, O_WRONLY) {
        Ok(fd) => {
            let first = fs::write(fd, b"5");
            let second = fs::write(fd, b"7");
            let _ = fs::close(fd);
            let now = value();
            c.check(
                "sysctl-second-write-ignored",
                first == Ok(1) && second == Ok(1) && now.as_deref() == Ok("5"),
                format_args!("writes {:?} {:?}, value {:?}", first, second, now),
            );
        }
        Err(e) => {
            c.check("sysctl-second-write-ignored", false, format_args!("{}", e));
        }
    }
    c.expect_errno(
        "sysctl-plus-sign-einval",
        write_file(PATH, "+6"),
        Errno::EINVAL,
    );
    c.expect_errno(
        "sysctl-trailing-junk-einval",
        write_file(PATH, "6x"),
        Errno::EINVAL,
    );
    let hex = write_file(PATH, "0x6\n");
    let now = value();
    c.check(
        "sysctl-base-0-hex",
        hex.is_ok() && now.as_deref() == Ok("6"),
        format_args!("{:?}, value {:?}", hex, now),
    );
    let _ = write_file(PATH, before.trim());
}

fn check_exec(c: &mut Checks) {
    let long = "a".repeat(1 << 20);
    let e = execve("/bin/hello", &["hello", &long], &[]);
    c.check(
        "execve-1mib-arg-e2big",
        e == Errno::E2BIG,
        format_args!("got {}", e),
    );
    let over = "b".repeat(32 * 4096);
    let e = execve("/bin/hello", &["hello"], &[&over]);
    c.check(
        "execve-env-over-max-arg-strlen-e2big",
        e == Errno::E2BIG,
        format_args!("got {}", e),
    );
    // A 64 TiB .bss: refused at once (the child exits with the errno), not after a
    // walk over 16 billion pages.
    let status = in_child_with_timeout(20_000, || execve("/bin/hugebss", &["hugebss"], &[]).raw());
    c.check(
        "execve-64tib-bss-enomem",
        status == Some(WaitStatus::Exited(Errno::ENOMEM.raw())),
        format_args!("{:?} (ENOMEM is {})", status, Errno::ENOMEM.raw()),
    );
}

fn check_restricted_kill(c: &mut Checks) {
    let status = in_restricted_child(|| {
        let victim = match fork() {
            Ok(Fork::Child) => loop {
                sleep_ms(1000);
            },
            Ok(Fork::Parent(pid)) => pid,
            Err(_) => return 10,
        };
        if kill(victim, SIGKILL).is_err() {
            let _ = wait_with_timeout(victim, 100);
            return 11;
        }
        if !is_signaled(wait_pid(victim).ok(), SIGKILL as i32) {
            return 12;
        }
        if kill(1, 0) != Err(Errno::EPERM) {
            return 13;
        }
        0
    });
    c.check(
        "restricted-kills-own-child",
        status == Ok(WaitStatus::Exited(0)),
        format_args!(
            "{:?} (11: kill refused, 12: child not killed, 13: init not EPERM)",
            status
        ),
    );
}

/// The page the SIGSEGV handler below faults on.
static FAULT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// Faults again, on the alternate stack, from inside the SIGSEGV handler.
extern "C" fn fault_again(_sig: i32) {
    let p = FAULT_PAGE.load(Ordering::Relaxed) as *const u8;
    // SAFETY: deliberately reads an unmapped page: another SIGSEGV.
    let _ = unsafe { core::ptr::read_volatile(p) };
}

fn check_altstack_overflow(c: &mut Checks, unmapped: usize) {
    FAULT_PAGE.store(unmapped, Ordering::Relaxed);
    let status = in_child_with_timeout(10_000, || {
        let Ok(stack) = mmap_anon(2 * PAGE_SIZE, Prot::RW) else {
            return 20;
        };
        let ss: [usize; 3] = [stack as usize, 0, 2 * PAGE_SIZE];
        // SAFETY: the alternate stack is our own fresh mapping.
        if raw(unsafe { syscall2(SYS_SIGALTSTACK, ss.as_ptr() as usize, 0) }).is_err() {
            return 21;
        }
        // SAFETY: the handler only reads an unmapped page (async-signal-safe).
        let set = unsafe {
            set_handler(
                SIGSEGV,
                Handler::Simple(fault_again),
                SA_ONSTACK | SA_NODEFER,
                SigSet::EMPTY,
            )
        };
        if set.is_err() {
            return 22;
        }
        fault_again(0);
        23
    });
    c.check(
        "altstack-overflow-killed-by-sigsegv",
        is_signaled(status, SIGSEGV),
        format_args!("{:?}", status),
    );
}

fn check_sigreturn_noncanonical(c: &mut Checks) {
    let status = in_child_with_timeout(10_000, || {
        // An rt_sigframe: the restorer slot, then the ucontext; mcontext at +48.
        let mut frame = [0u64; 128];
        let gregs = 48 / 8;
        frame[gregs + 15] = frame.as_ptr() as u64 + 512; // rsp
        frame[gregs + 16] = 0x8000_0000_0000_0000; // rip: non-canonical
        frame[gregs + 17] = 0x202; // eflags
        frame[gregs + 18] = 0x33 | (0x2b << 48); // cs, ss
        let rsp = frame.as_ptr() as usize + 8;
        // SAFETY: rt_sigreturn with our own frame; it does not come back here.
        unsafe {
            core::arch::asm!(
                "mov rsp, {rsp}",
                "mov eax, 15",
                "syscall",
                "ud2",
                rsp = in(reg) rsp,
                options(noreturn)
            )
        }
    });
    c.check(
        "sigreturn-noncanonical-rip-sigsegv",
        is_signaled(status, SIGSEGV),
        format_args!("{:?}", status),
    );
}

core::arch::global_asm!(
    ".globl hostile_clone_store_exit",
    ".type hostile_clone_store_exit,@function",
    // fn(flags: u64, stack: usize) -> isize. The child starts on `stack`, which holds
    // [word address, value]: it stores the value and exits; the parent returns.
    "hostile_clone_store_exit:",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "mov eax, 56",
    "syscall",
    "test rax, rax",
    "jnz 1f",
    "pop rax",
    "pop rcx",
    "mov [rax], rcx",
    "mov eax, 60",
    "xor edi, edi",
    "syscall",
    "ud2",
    "1:",
    "ret",
);

extern "C" {
    fn hostile_clone_store_exit(flags: u64, stack: usize) -> isize;
}

/// Starts a child with `flags` (CLONE_VM...) on a fresh stack; it stores `value` in
/// `word` and exits. Returns the child's pid.
fn clone_storing(flags: u64, word: &AtomicU64, value: u64) -> Result<i32, Errno> {
    let stack = mmap_anon(16 * PAGE_SIZE, Prot::RW)?;
    let top = stack as usize + 16 * PAGE_SIZE - 16;
    // SAFETY: the top of our fresh stack mapping.
    unsafe {
        (top as *mut usize).write(word as *const AtomicU64 as usize);
        ((top + 8) as *mut u64).write(value);
    }
    // SAFETY: the child runs only the trampoline's store and exit on its own stack.
    let r = unsafe { hostile_clone_store_exit(flags, top) };
    raw(r).map(|pid| pid as i32)
}

fn check_vfork(c: &mut Checks) {
    static SHARED: AtomicU64 = AtomicU64::new(0);
    let status = in_child_with_timeout(10_000, || {
        let Ok(pid) = clone_storing(CLONE_VM | CLONE_VFORK | SIGCHLD, &SHARED, 0x5eed) else {
            return 30;
        };
        // The parent ran again only once the child had exited: its store is here.
        let seen = SHARED.load(Ordering::SeqCst);
        let waited = wait_pid(pid);
        match (seen, waited) {
            (0x5eed, Ok(WaitStatus::Exited(0))) => 0,
            (0x5eed, _) => 31,
            _ => 32,
        }
    });
    c.check(
        "vfork-parent-sees-child-write",
        status == Some(WaitStatus::Exited(0)),
        format_args!("{:?} (32: parent ran before the child's write)", status),
    );
}

fn check_clone_vm_exit(c: &mut Checks) {
    static SHARED: AtomicU64 = AtomicU64::new(0);
    let status = in_child_with_timeout(10_000, || {
        let Ok(region) = mmap_anon(4 * PAGE_SIZE, Prot::RW) else {
            return 40;
        };
        // SAFETY: our own fresh mapping.
        unsafe { region.write_bytes(0x77, 4 * PAGE_SIZE) };
        let Ok(pid) = clone_storing(CLONE_VM | SIGCHLD, &SHARED, 0xc10e) else {
            return 41;
        };
        if wait_pid(pid) != Ok(WaitStatus::Exited(0)) {
            return 42;
        }
        // The child has exited: our memory (mapping, heap, stack) must still be there.
        // SAFETY: our own mapping.
        let kept = (0..4 * PAGE_SIZE).all(|i| unsafe { region.add(i).read_volatile() } == 0x77);
        let heap = vec![3u8; 1 << 16];
        if !kept || heap.iter().any(|&b| b != 3) || SHARED.load(Ordering::SeqCst) != 0xc10e {
            return 43;
        }
        0
    });
    c.check(
        "clone-vm-child-exit-keeps-parent-memory",
        status == Some(WaitStatus::Exited(0)),
        format_args!("{:?}", status),
    );
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("hostile");
    let Some(unmapped) = peios_bins::unmapped_page() else {
        c.check(
            "setup-unmapped-page",
            false,
            format_args!("mmap/munmap failed"),
        );
        return c.finish();
    };
    check_pagemap(&mut c);
    check_mremap(&mut c);
    check_pid_args(&mut c);
    check_int_args(&mut c);
    check_futex_wake(&mut c, unmapped);
    check_sysctl(&mut c);
    check_exec(&mut c);
    check_restricted_kill(&mut c);
    check_altstack_overflow(&mut c, unmapped);
    check_sigreturn_noncanonical(&mut c);
    check_vfork(&mut c);
    check_clone_vm_exit(&mut c);
    c.check(
        "still-alive",
        fs::write(1, b"").is_ok(),
        format_args!("after every hostile call"),
    );
    c.finish()
}
