//! `cliff_bench [--case fork,yield,mprotect] [--seconds 3] [--fork-mb 256]`: the
//! workloads where this kernel once fell off a cliff against Linux.
//!
//! - `fork`: a process with `fork-mb` MiB of touched private memory forks a child that
//!   exits at once, and waits for it, in a loop: `cliff_bench.fork_<mb>mb.forks_per_sec=`
//!   (4 KiB pages: MADV_NOHUGEPAGE, so Linux copies 4 KiB entries too).
//! - `yield`: one thread pinned to one CPU calls sched_yield in a loop with nothing
//!   else to run: `cliff_bench.yield.calls_per_sec=`.
//! - `mprotect`: one thread faults 16 MiB in and unmaps it (page_fault1) while a
//!   second thread of the same process flips the protection of a separate 64 KiB
//!   mapping in a loop: `cliff_bench.mprotect_beside.faults_per_sec=` (and the
//!   same workload without the mprotect thread: `cliff_bench.mprotect_alone...`).
//!
//! Every figure is a rate over `seconds`; the program runs unchanged on Linux.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use peios_bins::allowed_cpus;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork};
use peios_rt::sys::mm::{madvise, mmap_anon, mprotect, munmap, Prot, MADV_NOHUGEPAGE, PAGE_SIZE};
use peios_rt::sys::process::exit_group;
use peios_rt::sys::sched::{sched_setaffinity, sched_yield, CpuSet};
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

const MB: usize = 1 << 20;

fn touch(p: *mut u8, len: usize) {
    let mut off = 0;
    while off < len {
        // SAFETY: `p + off` lies inside a private RW mapping of `len` bytes we own.
        unsafe { p.add(off).write_volatile(1) };
        off += PAGE_SIZE;
    }
}

fn fork_case(seconds: u64, mb: usize) -> Result<(), Errno> {
    let len = mb * MB;
    let p = mmap_anon(len, Prot::RW)?;
    // SAFETY: advice on our own fresh mapping; its contents are not relied on.
    let _ = unsafe { madvise(p, len, MADV_NOHUGEPAGE) }; // 4 KiB pages on both kernels
    touch(p, len);
    let start = monotonic_ns();
    let end = start + seconds * 1_000_000_000;
    let mut forks = 0u64;
    while monotonic_ns() < end {
        match fork()? {
            Fork::Child => exit_group(0),
            Fork::Parent(pid) => {
                wait_pid(pid)?;
                forks += 1;
            }
        }
    }
    println!(
        "cliff_bench.fork_{mb}mb.forks_per_sec={}",
        per_second(forks, monotonic_ns() - start)
    );
    // SAFETY: the mapping is ours and unused from here on.
    unsafe { munmap(p, len) }
}

fn yield_case(seconds: u64) {
    let cpus = allowed_cpus();
    let _ = sched_setaffinity(0, &CpuSet::single(cpus[0]));
    let start = monotonic_ns();
    let end = start + seconds * 1_000_000_000;
    let mut calls = 0u64;
    while monotonic_ns() < end {
        for _ in 0..1000 {
            sched_yield();
        }
        calls += 1000;
    }
    println!(
        "cliff_bench.yield.calls_per_sec={}",
        per_second(calls, monotonic_ns() - start)
    );
}

static STOP: AtomicBool = AtomicBool::new(false);
static FLIPS: AtomicU64 = AtomicU64::new(0);

fn faults_for(seconds: u64) -> Result<u64, Errno> {
    let len = 16 * MB;
    let start = monotonic_ns();
    let end = start + seconds * 1_000_000_000;
    let mut faults = 0u64;
    while monotonic_ns() < end {
        let p = mmap_anon(len, Prot::RW)?;
        // SAFETY: advice on our own fresh mapping; its contents are not relied on.
        let _ = unsafe { madvise(p, len, MADV_NOHUGEPAGE) };
        touch(p, len);
        // SAFETY: the mapping is ours and unused from here on.
        unsafe { munmap(p, len) }?;
        faults += (len / PAGE_SIZE) as u64;
    }
    Ok(per_second(faults, monotonic_ns() - start))
}

fn mprotect_case(seconds: u64) -> Result<(), Errno> {
    let cpus = allowed_cpus();
    let _ = sched_setaffinity(0, &CpuSet::single(cpus[0]));
    let alone = faults_for(seconds)?;
    println!("cliff_bench.mprotect_alone.faults_per_sec={alone}");
    let flip_len = 64 * 1024;
    let flip = mmap_anon(flip_len, Prot::RW)? as usize;
    touch(flip as *mut u8, flip_len);
    STOP.store(false, Ordering::SeqCst);
    let other = cpus.get(1).copied().unwrap_or(cpus[0]);
    let flipper = thread::spawn(move || {
        let _ = sched_setaffinity(0, &CpuSet::single(other));
        let mut prot = Prot::READ;
        while !STOP.load(Ordering::Relaxed) {
            // SAFETY: only this thread uses the flip mapping, and it never accesses it.
            let _ = unsafe { mprotect(flip as *mut u8, flip_len, prot) };
            prot = if prot == Prot::READ {
                Prot::RW
            } else {
                Prot::READ
            };
            FLIPS.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    let beside = faults_for(seconds)?;
    STOP.store(true, Ordering::SeqCst);
    flipper.join();
    println!(
        "cliff_bench.mprotect_beside.faults_per_sec={beside} mprotect_calls={}",
        FLIPS.load(Ordering::Relaxed)
    );
    Ok(())
}

fn main(args: &Args) -> i32 {
    let argv: Vec<&str> = args.iter().collect();
    let value = |name: &str| argv.windows(2).find(|w| w[0] == name).map(|w| w[1]);
    let seconds = value("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let fork_mb = value("--fork-mb")
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let cases = value("--case").unwrap_or("fork,yield,mprotect");
    let mut status = 0;
    for case in cases.split(',') {
        let result = match case {
            "fork" => fork_case(seconds, fork_mb),
            "yield" => {
                yield_case(seconds);
                Ok(())
            }
            "mprotect" => mprotect_case(seconds),
            other => {
                eprintln!("cliff_bench: unknown case {other}");
                Err(Errno::EINVAL)
            }
        };
        if let Err(e) = result {
            eprintln!("cliff_bench: {case}: {e}");
            status = 1;
        }
    }
    status
}
