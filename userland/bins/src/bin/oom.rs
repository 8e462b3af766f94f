//! `oom`: the OOM killer. `oom_score_adj`: default 0 and inherited, valid writes read
//! back, out-of-range values EINVAL, lowering it refused to a restricted process (EACCES)
//! and allowed to a privileged one; `oom_score` grows with resident memory and with
//! `oom_score_adj`. Kills: a process allocating without end dies of SIGKILL while a big
//! bystander with -1000 lives on; a small process with +1000 is chosen before the one
//! allocating; with `vm.oom_kill_allocating_task` = 1 the allocating process is killed
//! even though a +1000 one exists; a process filling a shared memfd is killed alone and
//! its memory comes back. Peios-only (restricted tokens, the knob); meant for
//! a small guest (`--mem 512M`), where a fill takes well under a second.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, Ordering};
use peios_bins::files::{meminfo_kb, read_file, write_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{ftruncate, memfd_create};
use peios_rt::sys::mm::{mmap, mmap_anon, MapFlags, Prot};
use peios_rt::sys::process::{exit_group, getpid, kill, wait4, WNOHANG};
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

const MIB: usize = 1 << 20;

fn adj_path(pid: i32) -> String {
    format!("/proc/{}/oom_score_adj", pid)
}

fn read_num(path: &str) -> Option<i64> {
    read_file(path).ok()?.trim().parse().ok()
}

/// Writes to every page of `len` fresh bytes (they become resident).
fn touch(len: usize) -> Result<(), Errno> {
    let p = mmap_anon(len, Prot::RW)?;
    for off in (0..len).step_by(4096) {
        // SAFETY: inside our own fresh mapping.
        unsafe { p.add(off).write_volatile(1) };
    }
    Ok(())
}

/// Allocates and touches memory until it is killed.
fn hog() -> ! {
    loop {
        if touch(32 * MIB).is_err() {
            exit_group(3);
        }
    }
}

/// A child that sets its `oom_score_adj`, makes `mib` resident, raises `ready` and
/// waits to be killed. Its pid.
fn bystander(ready: &AtomicU32, adj: &str, mib: usize) -> Result<i32, Errno> {
    match fork()? {
        Fork::Child => {
            if write_file("/proc/self/oom_score_adj", adj).is_err() || touch(mib * MIB).is_err() {
                exit_group(2);
            }
            ready.store(1, Ordering::SeqCst);
            loop {
                sleep_ms(1000);
            }
        }
        Fork::Parent(pid) => {
            for _ in 0..1000 {
                if ready.load(Ordering::SeqCst) == 1 {
                    ready.store(0, Ordering::SeqCst);
                    return Ok(pid);
                }
                sleep_ms(10);
            }
            Err(Errno::ETIMEDOUT)
        }
    }
}

fn start_hog() -> Result<i32, Errno> {
    match fork()? {
        Fork::Child => hog(),
        Fork::Parent(pid) => Ok(pid),
    }
}

/// Whether child `pid` has not exited (a zombie has: it is reaped here).
fn still_running(pid: i32) -> bool {
    matches!(wait4(pid, WNOHANG), Ok((0, _)))
}

fn killed(status: &Result<WaitStatus, Errno>) -> bool {
    matches!(status, Ok(WaitStatus::Signaled { signal: 9, .. }))
}

/// Kills child `pid` if it still runs and reaps it.
fn end(pid: i32) -> Result<WaitStatus, Errno> {
    let _ = kill(pid, 9);
    match wait_pid(pid) {
        Err(Errno::ECHILD) => Ok(WaitStatus::Exited(0)), // already reaped
        other => other,
    }
}

fn adj_checks(checks: &mut Checks) {
    let me = getpid();
    checks.check(
        "adj-default",
        read_num(&adj_path(me)) == Some(0),
        format_args!("{:?}", read_num(&adj_path(me))),
    );
    let raised = write_file("/proc/self/oom_score_adj", "500");
    checks.check(
        "adj-write",
        raised.is_ok() && read_num("/proc/self/oom_score_adj") == Some(500),
        format_args!(
            "{:?}, reads {:?}",
            raised,
            read_num("/proc/self/oom_score_adj")
        ),
    );
    let inherited = in_child(|| i32::from(read_num("/proc/self/oom_score_adj") != Some(500)));
    checks.check(
        "adj-inherited",
        inherited == Ok(WaitStatus::Exited(0)),
        format_args!("{:?}", inherited),
    );
    for bad in ["1001", "-1001", "x"] {
        checks.expect_errno(
            &format!("adj-invalid-{}", bad),
            write_file("/proc/self/oom_score_adj", bad),
            Errno::EINVAL,
        );
    }
    // Restricted: raising is fine, lowering (opting out) is refused.
    let restricted = in_restricted_child(|| {
        let up = write_file("/proc/self/oom_score_adj", "600");
        let down = write_file("/proc/self/oom_score_adj", "-1000");
        let kept = read_num("/proc/self/oom_score_adj");
        i32::from(!(up.is_ok() && down == Err(Errno::EACCES) && kept == Some(600)))
    });
    checks.check(
        "adj-lowering-needs-privilege",
        restricted == Ok(WaitStatus::Exited(0)),
        format_args!(
            "restricted child (0: raise ok, lower EACCES) {:?}",
            restricted
        ),
    );
    let lowered = write_file("/proc/self/oom_score_adj", "0");
    checks.check(
        "adj-privileged-lowering",
        lowered.is_ok() && read_num("/proc/self/oom_score_adj") == Some(0),
        format_args!("{:?}", lowered),
    );
    // oom_score: resident memory and adj both raise it.
    let small = read_num("/proc/self/oom_score");
    let big = touch(64 * MIB).map(|_| read_num("/proc/self/oom_score"));
    let _ = write_file("/proc/self/oom_score_adj", "1000");
    let adjusted = read_num("/proc/self/oom_score");
    let _ = write_file("/proc/self/oom_score_adj", "0");
    checks.check(
        "oom_score-follows-rss-and-adj",
        matches!((small, &big, adjusted), (Some(s), Ok(Some(b)), Some(a)) if s >= 1000 && *b > s && a > *b),
        format_args!("{:?} -> with 64 MiB {:?} -> with +1000 {:?}", small, big, adjusted),
    );
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("oom");
    adj_checks(&mut checks);
    // SAFETY: a fresh shared anonymous page for the children's "ready" flag.
    let shared = unsafe {
        mmap(
            0,
            4096,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    };
    let Ok(shared) = shared else {
        checks.check("shared-page", false, format_args!("{:?}", shared));
        return checks.finish();
    };
    // SAFETY: the page is mapped for the whole run and only used atomically.
    let ready = unsafe { &*(shared as *const AtomicU32) };

    let mut free_kib = vec![meminfo_kb("MemFree")];
    // The biggest process is killed; a -1000 bystander survives.
    let result = bystander(ready, "-1000", 48).and_then(|b| {
        let h = start_hog()?;
        let hog_status = wait_pid(h);
        let survived = still_running(b);
        Ok((hog_status, survived, end(b)))
    });
    checks.check(
        "hog-killed-bystander-spared",
        matches!(&result, Ok((h, true, _)) if killed(h)),
        format_args!("(hog status, -1000 bystander alive, its end) {:?}", result),
    );

    free_kib.push(meminfo_kb("MemFree"));
    // A small +1000 process goes first.
    let result = bystander(ready, "1000", 8).and_then(|v| {
        let h = start_hog()?;
        let hog_status = wait_pid(h);
        // The +1000 process went at the first shortage, the hog at the next one.
        let victim_gone = !still_running(v);
        Ok((victim_gone, hog_status, end(v)))
    });
    checks.check(
        "adj-1000-chosen-first",
        matches!(&result, Ok((true, h, _)) if killed(h)),
        format_args!("(+1000 process gone, hog status, end) {:?}", result),
    );

    free_kib.push(meminfo_kb("MemFree"));
    // oom_kill_allocating_task: the allocating process, not the +1000 one.
    let set = write_file("/proc/sys/vm/oom_kill_allocating_task", "1");
    let result = bystander(ready, "1000", 8).and_then(|v| {
        let h = start_hog()?;
        let hog_status = wait_pid(h);
        let survived = still_running(v);
        Ok((hog_status, survived, end(v)))
    });
    let _ = write_file("/proc/sys/vm/oom_kill_allocating_task", "0");
    checks.check(
        "oom_kill_allocating_task-kills-the-allocator",
        set.is_ok() && matches!(&result, Ok((h, true, _)) if killed(h)),
        format_args!(
            "knob {:?}; (hog, +1000 process alive, its end) {:?}",
            set, result
        ),
    );

    // A process filling a shared memfd mapping is the one killed (its mapped shmem
    // pages count as resident), its pages come back when it dies, and nothing else
    // (this program, its parent init) is killed along with it.
    let free_before = meminfo_kb("MemFree");
    free_kib.push(free_before);
    // Every killed process's memory is back by the time its parent has reaped it (an
    // exit forced by the OOM killer once skipped its teardown, so the next shortage
    // killed an innocent process).
    let start = free_kib[0].unwrap_or(0);
    checks.check(
        "memory-back-after-each-kill",
        free_kib
            .iter()
            .all(|f| matches!(f, Some(kib) if kib + 16 * 1024 >= start)),
        format_args!("MemFree before the kills and after each check: {free_kib:?} kB"),
    );
    let eater = match fork() {
        Ok(Fork::Child) => exit_group(memfd_eater()),
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => Err(e),
    };
    let free_after = meminfo_kb("MemFree");
    checks.check(
        "memfd-eater-killed-alone-memory-back",
        killed(&eater)
            && matches!((free_before, free_after), (Some(b), Some(a)) if a + 16 * 1024 >= b),
        format_args!(
            "eater {:?}; MemFree before {:?} kB, after {:?} kB",
            eater, free_before, free_after
        ),
    );
    checks.finish()
}

/// Maps a 1 GiB memfd shared and touches it until the OOM killer ends it (status 4 if
/// it never does, 5 if the memfd cannot be set up).
fn memfd_eater() -> i32 {
    let len = 1024 * MIB;
    let Ok(fd) = memfd_create(c"eater", 0) else {
        return 5;
    };
    if ftruncate(fd, len as u64).is_err() {
        return 5;
    }
    // SAFETY: no MAP_FIXED: a fresh range nothing else uses.
    let Ok(p) = (unsafe { mmap(0, len, Prot::RW, MapFlags::SHARED, fd, 0) }) else {
        return 5;
    };
    for off in (0..len).step_by(4096) {
        // SAFETY: inside our own shared mapping of the memfd.
        unsafe { p.add(off).write_volatile(1) };
    }
    4
}
