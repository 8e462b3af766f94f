//! `threads [N] [--iters K]`: N threads (default 64) each add K (default 20000) to a
//! shared atomic counter, then are joined through their CLONE_CHILD_CLEARTID futex
//! words. Checks the total, that every thread saw its own TLS block through FS
//! (CLONE_SETTLS) with its own tid, that tids are distinct, and that a futex wake
//! released all threads from a start barrier. Prints the set of CPUs the threads ran
//! on (getcpu, syscall 309) when getcpu works; ENOSYS there is not a failure.
//! Then pins a sibling thread by its tid from the main thread (sched_setaffinity),
//! reads the mask back (sched_getaffinity) and checks the sibling runs on that CPU;
//! kill(tid, 0), prlimit64(tid) and /proc/<tid>/maps reach the process through the
//! sibling's tid.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use peios_bins::files;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::process::{getpid, gettid, kill, prlimit64, RLIMIT_CORE};
use peios_rt::sys::sched::{getcpu, sched_getaffinity, sched_setaffinity, sched_yield, CpuSet};
use peios_rt::thread;

peios_rt::main!(main);

static COUNTER: AtomicU64 = AtomicU64::new(0);
static START: AtomicU32 = AtomicU32::new(0);
static WAITING: AtomicU32 = AtomicU32::new(0);

/// What one thread reports back through its join.
struct Report {
    tid: i32,
    tls_ok: bool,
    cpus: [Option<u32>; 2],
}

fn worker(iters: u64) -> Report {
    let tid = gettid();
    let tls_ok = match thread::current_block() {
        Some(b) => b.tid() == tid as u32,
        None => false,
    };
    WAITING.fetch_add(1, Ordering::AcqRel);
    while START.load(Ordering::Acquire) == 0 {
        let _ = futex_wait(&START, 0, None, true);
    }
    let first = getcpu().ok().map(|(c, _)| c);
    for i in 0..iters {
        COUNTER.fetch_add(1, Ordering::Relaxed);
        if i % 4096 == 4095 {
            sched_yield();
        }
    }
    let last = getcpu().ok().map(|(c, _)| c);
    Report {
        tid,
        tls_ok,
        cpus: [first, last],
    }
}

static SIBLING_TID: AtomicU32 = AtomicU32::new(0);
static SIBLING_GO: AtomicU32 = AtomicU32::new(0);

/// A sibling that publishes its tid, waits until released, then says where it runs.
fn pinned_sibling() -> Option<u32> {
    SIBLING_TID.store(gettid() as u32, Ordering::Release);
    let _ = futex_wake(&SIBLING_TID, 1, true);
    while SIBLING_GO.load(Ordering::Acquire) == 0 {
        let _ = futex_wait(&SIBLING_GO, 0, None, true);
    }
    sched_yield();
    getcpu().ok().map(|(cpu, _)| cpu)
}

/// How many bytes the first read of `path` gives.
fn proc_file_starts(path: &str) -> Result<usize, Errno> {
    let fd = files::open(path, O_RDONLY)?;
    let mut buf = [0u8; 256];
    let n = read(fd, &mut buf);
    let _ = close(fd);
    n
}

/// Pins a sibling thread to the last CPU the process may use, by the sibling's tid.
fn check_sibling_affinity(checks: &mut Checks) {
    let Ok(mine) = sched_getaffinity(0) else {
        checks.check(
            "sibling-affinity",
            false,
            format_args!("sched_getaffinity(0) failed"),
        );
        return;
    };
    let Some(cpu) = mine.iter().last() else {
        checks.check(
            "sibling-affinity",
            false,
            format_args!("empty affinity mask"),
        );
        return;
    };
    let handle = match thread::spawn(pinned_sibling) {
        Ok(h) => h,
        Err(e) => {
            checks.check(
                "sibling-affinity",
                false,
                format_args!("spawn: {}", e.name()),
            );
            return;
        }
    };
    while SIBLING_TID.load(Ordering::Acquire) == 0 {
        let _ = futex_wait(&SIBLING_TID, 0, None, true);
    }
    let tid = SIBLING_TID.load(Ordering::Acquire) as i32;
    let set = sched_setaffinity(tid, &CpuSet::single(cpu));
    checks.check(
        "sibling-setaffinity",
        set.is_ok(),
        format_args!("tid {}: {:?}", tid, set),
    );
    let got = sched_getaffinity(tid).map(|s| s.iter().collect::<Vec<usize>>());
    checks.check(
        "sibling-getaffinity",
        got.as_deref() == Ok(&[cpu][..]),
        format_args!("{:?} (wanted [{}])", got, cpu),
    );
    // A thread's tid names its process for kill and prlimit64, as on Linux.
    let killed = kill(tid, 0);
    checks.check(
        "kill-by-sibling-tid",
        killed.is_ok(),
        format_args!("{:?}", killed),
    );
    let by_tid = prlimit64(tid, RLIMIT_CORE, None).map(|r| (r.cur, r.max));
    let by_pid = prlimit64(getpid(), RLIMIT_CORE, None).map(|r| (r.cur, r.max));
    checks.check(
        "prlimit-by-sibling-tid",
        by_tid.is_ok() && by_tid == by_pid,
        format_args!("by tid {:?}, by pid {:?}", by_tid, by_pid),
    );
    let maps = proc_file_starts(&format!("/proc/{}/maps", tid));
    checks.check(
        "proc-by-sibling-tid",
        matches!(maps, Ok(n) if n > 0),
        format_args!("/proc/{}/maps: {:?} bytes", tid, maps),
    );
    SIBLING_GO.store(1, Ordering::Release);
    let _ = futex_wake(&SIBLING_GO, 1, true);
    let ran_on = handle.join();
    checks.check(
        "sibling-runs-there",
        ran_on.is_none() || ran_on == Some(cpu as u32),
        format_args!("ran on {:?}, pinned to {}", ran_on, cpu),
    );
}

fn main(args: &Args) -> i32 {
    let n = match args.get(1).filter(|a| !a.starts_with("--")) {
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("threads: bad thread count {:?}", s);
                return 2;
            }
        },
        None => 64,
    };
    let iters = match args.opt_u64("--iters", 20_000) {
        Ok(v) => v,
        Err(s) => {
            eprintln!("threads: bad --iters {:?}", s);
            return 2;
        }
    };
    let mut checks = Checks::new("threads");
    println!("threads: spawning {} threads x {} increments", n, iters);
    let mut handles = Vec::new();
    for i in 0..n {
        match thread::spawn(move || worker(iters)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                checks.check(
                    "spawn",
                    false,
                    format_args!("thread {} of {}: clone failed: {}", i, n, e),
                );
                break;
            }
        }
    }
    let spawned = handles.len() as u64;
    checks.check(
        "spawn",
        spawned == n,
        format_args!("{} threads started", spawned),
    );
    // Wait until every thread sits at the barrier, then release them with one wake.
    while (WAITING.load(Ordering::Acquire) as u64) < spawned {
        sched_yield();
    }
    START.store(1, Ordering::Release);
    let woken = futex_wake(&START, u32::MAX >> 1, true);
    println!(
        "threads: barrier released (futex_wake returned {:?})",
        woken
    );
    let reports: Vec<Report> = handles.into_iter().map(|h| h.join()).collect();
    checks.check(
        "join",
        reports.len() as u64 == spawned,
        format_args!("{} threads joined", reports.len()),
    );
    let total = COUNTER.load(Ordering::Acquire);
    checks.check(
        "counter",
        total == spawned * iters,
        format_args!("total {} (expected {})", total, spawned * iters),
    );
    let tls_bad = reports.iter().filter(|r| !r.tls_ok).count();
    checks.check(
        "tls",
        tls_bad == 0,
        format_args!("{} threads found a wrong FS block", tls_bad),
    );
    let mut tids: Vec<i32> = reports.iter().map(|r| r.tid).collect();
    tids.sort_unstable();
    tids.dedup();
    checks.check(
        "distinct-tids",
        tids.len() == reports.len(),
        format_args!("{} distinct tids", tids.len()),
    );
    let mut cpus: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.cpus.iter().flatten().copied())
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    match getcpu() {
        Err(e) => println!("threads: getcpu: {} (CPU set unknown)", e.name()),
        Ok(_) => {
            let list: Vec<String> = cpus.iter().map(|c| format!("{}", c)).collect();
            println!(
                "threads: cpus used: {{{}}} ({} distinct)",
                list.join(","),
                cpus.len()
            );
        }
    }
    check_sibling_affinity(&mut checks);
    // Peios counts every CPU each thread of the process ran on (`Cpus_ran_list` in
    // /proc/self/status; Linux has no such line). The guest test checks that every vCPU
    // ran some of these threads.
    let ran = peios_bins::files::read_file("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("Cpus_ran_list:")
                    .map(|v| String::from(v.trim()))
            })
        });
    println!(
        "threads: process ran on cpus {}",
        ran.as_deref().unwrap_or("(not reported)")
    );
    checks.finish()
}
