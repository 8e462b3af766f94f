//! `getppid_bench [--iters N]`: the cost of a trivial syscall round trip; calls
//! getppid N times (default 1000000) and prints `getppid.calls_per_sec=<x>`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_rt::prelude::*;
use peios_rt::sys::process::getppid;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

fn main(args: &Args) -> i32 {
    let Ok(iters) = args.opt_u64("--iters", 1_000_000) else {
        eprintln!("usage: getppid_bench [--iters N]");
        return 2;
    };
    let start = monotonic_ns();
    let mut sum = 0i64;
    for _ in 0..iters {
        sum = sum.wrapping_add(getppid() as i64);
    }
    let ns = monotonic_ns() - start;
    println!(
        "getppid.config iters={} ppid={}",
        iters,
        if iters > 0 { sum / iters as i64 } else { 0 }
    );
    println!("getppid.calls_per_sec={}", per_second(iters, ns));
    println!("getppid.ns_per_call={}", ns.checked_div(iters).unwrap_or(0));
    0
}
