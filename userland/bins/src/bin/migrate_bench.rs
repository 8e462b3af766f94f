//! Benchmark: page migration throughput with move_pages on a two-node guest. Maps
//! `--mb` MiB (64), touches every page, then moves them all to the other node and back
//! `--rounds` times (4), 512 pages per call, and prints
//! `migrate_bench.pages_per_sec=<x>` (pages moved over the time spent in move_pages)
//! and `migrate_bench.moved=<n>`. Exits 1 if a page did not move. With `--memfd` the
//! memory is a shared mapping of a memfd (page-cache pages) instead of anonymous.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use peios_rt::prelude::*;
use peios_rt::sys::fs;
use peios_rt::sys::mm::{mmap, mmap_anon, MapFlags, Prot, PAGE_SIZE};
use peios_rt::syscall::syscall6;
use peios_rt::time::monotonic_ns as now_ns;

peios_rt::main!(main);

const BATCH: usize = 512;

fn move_batch(pages: &[usize], node: i32, status: &mut [i32]) -> Result<(), Errno> {
    let nodes = vec![node; pages.len()];
    // SAFETY: the arrays are locals of `pages.len()` entries; the pages are ours.
    let r = unsafe {
        syscall6(
            279,
            0,
            pages.len(),
            pages.as_ptr() as usize,
            nodes.as_ptr() as usize,
            status.as_mut_ptr() as usize,
            2,
        )
    };
    Errno::result(r).map(|_| ())
}

fn main(args: &Args) -> i32 {
    let (Ok(mb), Ok(rounds)) = (args.opt_u64("--mb", 64), args.opt_u64("--rounds", 4)) else {
        eprintln!("usage: migrate_bench [--mb N] [--rounds N] [--memfd]");
        return 2;
    };
    let len = mb as usize * 1024 * 1024;
    let memfd = args.iter().any(|a| a == "--memfd");
    let mapped = if memfd {
        fs::memfd_create(c"migrate_bench", fs::MFD_CLOEXEC).and_then(|fd| {
            fs::ftruncate(fd, len as u64)?;
            // SAFETY: a fresh shared mapping of our own memfd where the kernel chooses.
            unsafe { mmap(0, len, Prot::RW, MapFlags::SHARED, fd, 0) }
        })
    } else {
        mmap_anon(len, Prot::RW)
    };
    let Ok(base) = mapped else {
        eprintln!("migrate_bench: mmap failed: {:?}", mapped.err());
        return 1;
    };
    let count = len / PAGE_SIZE;
    let pages: Vec<usize> = (0..count).map(|i| base as usize + i * PAGE_SIZE).collect();
    for &p in &pages {
        // SAFETY: inside the fresh mapping.
        unsafe { (p as *mut u8).write_volatile(1) };
    }
    let mut status = vec![0i32; BATCH];
    // Where the first page is: the moves alternate away from it and back.
    let mut here = [0i32; 1];
    if move_batch_query(&pages[..1], &mut here).is_err() || here[0] < 0 {
        eprintln!("migrate_bench: cannot query page nodes: {:?}", here);
        return 1;
    }
    let (mut moved, mut failed, mut spent_ns) = (0u64, 0u64, 0u64);
    for round in 0..rounds * 2 {
        let to = if round % 2 == 0 { 1 - here[0] } else { here[0] };
        for chunk in pages.chunks(BATCH) {
            let start = now_ns();
            if let Err(e) = move_batch(chunk, to, &mut status[..chunk.len()]) {
                eprintln!("migrate_bench: move_pages: {}", e);
                return 1;
            }
            spent_ns += now_ns() - start;
            for s in &status[..chunk.len()] {
                if *s == to {
                    moved += 1;
                } else {
                    failed += 1;
                }
            }
        }
    }
    let rate = moved * 1_000_000_000 / spent_ns.max(1);
    println!("migrate_bench.pages_per_sec={}", rate);
    println!(
        "migrate_bench.moved={} failed={} mb={} rounds={} memory={}",
        moved,
        failed,
        mb,
        rounds,
        if memfd { "memfd" } else { "anon" }
    );
    i32::from(failed != 0)
}

fn move_batch_query(pages: &[usize], status: &mut [i32]) -> Result<(), Errno> {
    // SAFETY: the arrays are locals of `pages.len()` entries.
    let r = unsafe {
        syscall6(
            279,
            0,
            pages.len(),
            pages.as_ptr() as usize,
            0,
            status.as_mut_ptr() as usize,
            0,
        )
    };
    Errno::result(r).map(|_| ())
}
