//! `uffd_bench [--pages N] [--rounds R] [--slowest K] [--split]`: the userfaultfd round trip. A thread reads
//! one byte of each page of a region registered in missing mode (default 2000 pages,
//! 3 rounds over fresh regions); a handler thread blocks in `read` on the descriptor
//! and answers each message with `UFFDIO_COPY`. Each access is timed from just before
//! the fault to its resumption (fault -> message read -> COPY -> wake -> resume) and
//! the program prints the median and the 99th percentile in nanoseconds, and the
//! round trips per second:
//! `uffd.round_trip_median_ns=<x>`, `uffd.round_trip_p99_ns=<x>`, `uffd.faults_per_sec=<x>`,
//! and before them each round's own figures (`uffd.round=<r> median_ns=<x> p99_ns=<x>
//! max_ns=<x>`). `--slowest K` also lists each round's K slowest accesses (page index
//! and nanoseconds), to see where the tail comes from. `--split` pins the faulting
//! thread to CPU 0 and the handler to CPU 1 (a machine of two CPUs or more), so every
//! round trip crosses CPUs.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, O_CLOEXEC};
use peios_rt::sys::mm::{mmap_anon, munmap, Prot};
use peios_rt::sys::sched::{sched_setaffinity, CpuSet};
use peios_rt::sys::uffd;
use peios_rt::thread::spawn;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

const PAGE: usize = 4096;

/// One round over `pages` fresh pages: the latency of each access, in nanoseconds.
/// With `split`, the handler runs on CPU 1 (the faulting thread is on CPU 0).
fn round(fd: i32, pages: usize, split: bool) -> Result<Vec<u64>, Errno> {
    let region = mmap_anon(pages * PAGE, Prot::RW)? as usize;
    uffd::register(fd, region, pages * PAGE, uffd::MODE_MISSING)?;
    let handler = spawn(move || {
        if split {
            sched_setaffinity(0, &CpuSet::single(1))?;
        }
        let src = [0x5au8; PAGE];
        for _ in 0..pages {
            let m = uffd::read_message(fd)?;
            let (r, _) = uffd::copy(fd, m.address as usize, src.as_ptr() as usize, PAGE, 0);
            // EEXIST: another access already had it filled (cannot happen with one
            // faulting thread, but is no error).
            match r {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<(), Errno>(())
    })?;
    let mut latencies = Vec::with_capacity(pages);
    let mut sum = 0u64;
    for i in 0..pages {
        let at = (region + i * PAGE + (i * 64) % PAGE) as *const u8;
        let t0 = monotonic_ns();
        // SAFETY: `at` lies in our live registered mapping; the handler fills it.
        let byte = unsafe { core::ptr::read_volatile(at) };
        let t1 = monotonic_ns();
        sum += u64::from(byte);
        latencies.push(t1 - t0);
    }
    handler.join()?;
    if sum != 0x5a * pages as u64 {
        eprintln!("uffd_bench: wrong contents (sum {sum})");
        return Err(Errno::EIO);
    }
    uffd::unregister(fd, region, pages * PAGE)?;
    // SAFETY: the region is ours and nothing refers to it any more.
    unsafe { munmap(region as *mut u8, pages * PAGE)? };
    Ok(latencies)
}

/// The median and 99th percentile of `sorted` (ascending, not empty).
fn median_p99(sorted: &[u64]) -> (u64, u64) {
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    (sorted[sorted.len() / 2], p99)
}

/// Prints one round's figures, and its `slowest` slowest accesses.
fn report_round(index: usize, latencies: &[u64], slowest: usize) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let (median, p99) = median_p99(&sorted);
    let max = sorted[sorted.len() - 1];
    println!("uffd.round={index} median_ns={median} p99_ns={p99} max_ns={max}");
    if slowest > 0 {
        let mut by_cost: Vec<(u64, usize)> = latencies
            .iter()
            .enumerate()
            .map(|(i, &ns)| (ns, i))
            .collect();
        by_cost.sort_unstable_by(|a, b| b.cmp(a));
        for (ns, page) in by_cost.into_iter().take(slowest) {
            println!("uffd.slow round={index} page={page} ns={ns}");
        }
    }
}

fn main(args: &Args) -> i32 {
    let (Ok(pages), Ok(rounds), Ok(slowest)) = (
        args.opt_u64("--pages", 2000),
        args.opt_u64("--rounds", 3),
        args.opt_u64("--slowest", 0),
    ) else {
        eprintln!("usage: uffd_bench [--pages N] [--rounds R] [--slowest K] [--split]");
        return 2;
    };
    let split = args.has("--split");
    if split {
        if let Err(e) = sched_setaffinity(0, &CpuSet::single(0)) {
            eprintln!("uffd_bench: --split: pinning to CPU 0: {e:?}");
            return 1;
        }
    }
    let (pages, rounds) = (pages.max(1) as usize, rounds.max(1) as usize);
    let fd = match uffd::userfaultfd(O_CLOEXEC).and_then(|fd| {
        uffd::api(fd, uffd::UFFD_API, 0)?;
        Ok(fd)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("uffd_bench: userfaultfd: {e:?}");
            return 1;
        }
    };
    let mut all = Vec::with_capacity(pages * rounds);
    let start = monotonic_ns();
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        match round(fd, pages, split) {
            Ok(l) => per_round.push(l),
            Err(e) => {
                eprintln!("uffd_bench: round failed: {e:?}");
                return 1;
            }
        }
    }
    let elapsed = monotonic_ns() - start;
    let _ = close(fd);
    for (r, latencies) in per_round.iter().enumerate() {
        report_round(r + 1, latencies, slowest as usize);
        all.extend_from_slice(latencies);
    }
    all.sort_unstable();
    let (median, p99) = median_p99(&all);
    println!(
        "uffd.config pages={pages} rounds={rounds} split={}",
        u8::from(split)
    );
    println!("uffd.round_trip_median_ns={median}");
    println!("uffd.round_trip_p99_ns={p99}");
    println!(
        "uffd.faults_per_sec={}",
        per_second(all.len() as u64, elapsed)
    );
    0
}
