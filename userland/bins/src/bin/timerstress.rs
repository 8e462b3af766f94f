//! `timerstress [--sleeps N] [--rounds N] [--p99-max-us U]`: the preemption timer and
//! wake-up latency under CPU-bound load.
//!
//! 1. Latency: one spinning process pinned to each CPU; the main thread makes N
//!    (default 200) 1 ms nanosleeps and prints how late each woke
//!    (`wake_late_p50_us=`, `wake_late_p99_us=`, `wake_late_max_us=`); the check is
//!    p99 <= U (default 5000 us). Run on 2 vCPUs this is the "1 ms sleep beside two
//!    spinners" figure.
//! 2. Lost timer: N rounds (default 300) of the shapes that lost the timer before: per
//!    CPU a pinned thread alternating a pure CPU loop and a system-call loop for a few
//!    ms, while the main thread sleeps 1 ms twice; every sleep must end within 1 s.
//! 3. Every CPU keeps ticking: a pinned spinner per CPU for 200 ms; each CPU's local
//!    timer count in /proc/interrupts must grow.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use peios_bins::{files, Checks};
use peios_rt::prelude::*;
use peios_rt::process::{fork, Fork};
use peios_rt::signal::SIGKILL;
use peios_rt::sys::process::{exit_group, getppid, kill, wait4};
use peios_rt::sys::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, sleep_ms};

extern crate alloc;

peios_rt::main!(main);

const MS: u64 = 1_000_000;

/// Iterations of `burn` per millisecond, measured once.
static BURN_PER_MS: AtomicU64 = AtomicU64::new(100_000);

/// A pure CPU loop (no system calls) of `iters` iterations.
fn burn(iters: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..iters {
        x = core::hint::black_box(x.rotate_left(7) ^ i);
    }
    x
}

fn calibrate() {
    let start = monotonic_ns();
    let iters = 2_000_000;
    burn(iters);
    let elapsed = (monotonic_ns() - start).max(1);
    BURN_PER_MS.store((iters * MS / elapsed).max(1), Ordering::Relaxed);
}

fn pin(cpu: usize) {
    let _ = sched_setaffinity(0, &CpuSet::single(cpu));
}

/// Each CPU's local timer interrupt count (the `LOC:` line of /proc/interrupts).
fn timer_counts() -> Vec<u64> {
    let text = files::read_file("/proc/interrupts").unwrap_or_default();
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("LOC:"))
        .map(|rest| {
            rest.split_whitespace()
                .map_while(|w| w.parse::<u64>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The `pct` percentile of sorted `values`.
fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

fn latency(checks: &mut Checks, cpus: &[usize], sleeps: usize, p99_max_us: u64) {
    let mut spinners = Vec::new();
    for &cpu in cpus {
        match fork() {
            Ok(Fork::Child) => {
                pin(cpu);
                loop {
                    burn(1_000_000);
                }
            }
            Ok(Fork::Parent(pid)) => spinners.push(pid),
            Err(e) => {
                checks.check("spinners-start", false, format_args!("fork: {e}"));
                return;
            }
        }
    }
    sleep_ms(20); // let the spinners settle on their CPUs
    let mut late_us = Vec::with_capacity(sleeps);
    for _ in 0..sleeps {
        let start = monotonic_ns();
        sleep_ms(1);
        late_us.push((monotonic_ns() - start).saturating_sub(MS) / 1000);
    }
    for &pid in &spinners {
        let _ = kill(pid, SIGKILL);
        let _ = wait4(pid, 0);
    }
    late_us.sort_unstable();
    let (p50, p99, max) = (
        percentile(&late_us, 50),
        percentile(&late_us, 99),
        late_us.last().copied().unwrap_or(0),
    );
    println!(
        "timerstress: spinners={} sleeps={sleeps} wake_late_p50_us={p50} wake_late_p99_us={p99} wake_late_max_us={max}",
        spinners.len()
    );
    checks.check(
        "sleep-beside-spinners-wakes-on-time",
        p99 <= p99_max_us,
        format_args!("p99 {p99} us late, bound {p99_max_us} us; max {max} us"),
    );
}

static STOP: AtomicBool = AtomicBool::new(false);

fn lost_timer_rounds(checks: &mut Checks, cpus: &[usize], rounds: usize) {
    let per_ms = BURN_PER_MS.load(Ordering::Relaxed);
    let mut worst_ns = 0;
    let mut failed_round = None;
    for round in 0..rounds {
        STOP.store(false, Ordering::SeqCst);
        let workers: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                thread::spawn(move || {
                    pin(cpu);
                    let mut calls = 0u64;
                    while !STOP.load(Ordering::Relaxed) {
                        burn(per_ms * 3);
                        for _ in 0..200 {
                            calls += u64::from(getppid() > 0);
                        }
                    }
                    calls
                })
            })
            .collect();
        for _ in 0..2 {
            let start = monotonic_ns();
            sleep_ms(1);
            let took = monotonic_ns() - start;
            worst_ns = worst_ns.max(took);
            if took > 1_000 * MS && failed_round.is_none() {
                failed_round = Some(round);
            }
        }
        STOP.store(true, Ordering::SeqCst);
        for worker in workers.into_iter().flatten() {
            worker.join();
        }
    }
    checks.check(
        "busy-rounds-never-lose-a-sleeper",
        failed_round.is_none(),
        format_args!(
            "{rounds} rounds on {} cpus, worst 1 ms sleep {} us, first slow round {failed_round:?}",
            cpus.len(),
            worst_ns / 1000
        ),
    );
}

fn every_cpu_ticks(checks: &mut Checks, cpus: &[usize]) {
    let before = timer_counts();
    STOP.store(false, Ordering::SeqCst);
    let spinners: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            thread::spawn(move || {
                pin(cpu);
                while !STOP.load(Ordering::Relaxed) {
                    burn(10_000);
                }
            })
        })
        .collect();
    sleep_ms(200);
    let after = timer_counts();
    STOP.store(true, Ordering::SeqCst);
    for spinner in spinners.into_iter().flatten() {
        spinner.join();
    }
    let ticked = cpus
        .iter()
        .all(|&cpu| matches!((before.get(cpu), after.get(cpu)), (Some(b), Some(a)) if a > b));
    checks.check(
        "every-cpu-keeps-ticking",
        ticked && !after.is_empty(),
        format_args!("LOC before {before:?} after {after:?}"),
    );
}

fn main(args: &Args) -> i32 {
    let argv: Vec<&str> = args.iter().collect();
    let flag = |name: &str, default: u64| {
        argv.windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(default)
    };
    let sleeps = flag("--sleeps", 200) as usize;
    let rounds = flag("--rounds", 300) as usize;
    let p99_max_us = flag("--p99-max-us", 5000);
    let mut checks = Checks::new("timerstress");
    let cpus: Vec<usize> = match sched_getaffinity(0) {
        Ok(set) => set.iter().collect(),
        Err(_) => alloc::vec![0],
    };
    calibrate();
    latency(&mut checks, &cpus, sleeps, p99_max_us);
    lost_timer_rounds(&mut checks, &cpus, rounds);
    every_cpu_ticks(&mut checks, &cpus);
    let status = checks.finish();
    exit_group(status)
}
