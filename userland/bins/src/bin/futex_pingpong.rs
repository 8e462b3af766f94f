//! `futex_pingpong [--iters N] [--cpus a,b]`: two threads pinned to two CPUs pass a
//! private futex word back and forth (FUTEX_WAIT / FUTEX_WAKE) N times (default
//! 100000); prints `futex_pingpong.round_trips_per_sec=<x>`. Defaults to the first
//! two CPUs the process may use (the same CPU twice when there is only one).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, Ordering};
use peios_bins::{allowed_cpus, parse_list};
use peios_rt::prelude::*;
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::sched::{sched_setaffinity, CpuSet};
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

/// Odd: the partner's turn; even: ours. Round trip i takes it 2i -> 2i+1 -> 2i+2.
static WORD: AtomicU32 = AtomicU32::new(0);

fn wait_while(value: u32) {
    while WORD.load(Ordering::Acquire) == value {
        let _ = futex_wait(&WORD, value, None, true);
    }
}

fn partner(iters: u32, cpu: usize) -> bool {
    let pinned = sched_setaffinity(0, &CpuSet::single(cpu)).is_ok();
    for i in 0..iters {
        wait_while(2 * i);
        WORD.store(2 * i + 2, Ordering::Release);
        let _ = futex_wake(&WORD, 1, true);
    }
    pinned
}

fn main(args: &Args) -> i32 {
    let Ok(iters) = args.opt_u64("--iters", 100_000) else {
        eprintln!("usage: futex_pingpong [--iters N] [--cpus a,b]");
        return 2;
    };
    let iters = iters.min((u32::MAX / 2 - 1) as u64) as u32;
    let allowed = allowed_cpus();
    let (a, b) = match args.opt("--cpus").map(parse_list) {
        Some(Some(l)) if l.len() == 2 => (l[0] as usize, l[1] as usize),
        Some(_) => {
            eprintln!("futex_pingpong: --cpus wants two CPU numbers, e.g. 0,1");
            return 2;
        }
        None => (allowed[0], *allowed.get(1).unwrap_or(&allowed[0])),
    };
    let pinned_a = sched_setaffinity(0, &CpuSet::single(a)).is_ok();
    let handle = match thread::spawn(move || partner(iters, b)) {
        Ok(h) => h,
        Err(e) => {
            println!("futex_pingpong: FAILED: spawn: {}", e);
            return 1;
        }
    };
    let start = monotonic_ns();
    for i in 0..iters {
        WORD.store(2 * i + 1, Ordering::Release);
        let _ = futex_wake(&WORD, 1, true);
        wait_while(2 * i + 1);
    }
    let ns = monotonic_ns() - start;
    let pinned_b = handle.join();
    println!(
        "futex_pingpong.config iters={} cpus={},{} pinned={}",
        iters,
        a,
        b,
        if pinned_a && pinned_b { "yes" } else { "no" }
    );
    println!(
        "futex_pingpong.round_trips_per_sec={}",
        per_second(iters as u64, ns)
    );
    println!(
        "futex_pingpong.ns_per_round_trip={}",
        if iters == 0 { 0 } else { ns / iters as u64 }
    );
    0
}
