//! `thp_bench [--case huge,pf1] [--workers 1,2] [--mb 64] [--seconds 5]`: how fast
//! transparent huge pages fault in.
//!
//! Each worker (a thread, pinned to its own CPU when affinity works) repeatedly
//! maps `mb` MiB of private anonymous memory 2 MiB-aligned, advises it
//! `MADV_HUGEPAGE` (so a kernel whose THP mode is `madvise` makes huge pages too),
//! touches it and unmaps it. Cases: `huge` writes one byte per 2 MiB (one huge-page
//! fault each); `pf1` writes one byte per 4 KiB page (will-it-scale page_fault1 with
//! THP: the first write of each 2 MiB faults, the rest hit the huge page).
//!
//! Prints first `thp_bench.verify huge_kb=<k> of=<k> enabled=<mode>` (AnonHugePages of
//! one touched mapping in /proc/self/smaps: whether the kernel really made huge
//! pages; and the THP mode), then per
//! case and worker count `thp_bench.<case>.workers=<n> faults_per_sec=<x>
//! mib_per_sec=<y> touched_mib=<m> elapsed_ms=<ms>`, and last the kernel's
//! `thp_fault*` (and Peios's `thp_prezeroed*`) counters from /proc/vmstat.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use peios_bins::files::read_file;
use peios_bins::{allowed_cpus, parse_list};
use peios_rt::prelude::*;
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::mm::{madvise, mmap_anon, munmap, Prot, MADV_HUGEPAGE, PAGE_SIZE};
use peios_rt::sys::sched::{sched_setaffinity, sched_yield, CpuSet};
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

const HUGE: usize = 2 << 20;
const MAX_WORKERS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Huge,
    Pf1,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Huge => "huge",
            Case::Pf1 => "pf1",
        }
    }

    /// Bytes between two writes.
    fn stride(self) -> usize {
        match self {
            Case::Huge => HUGE,
            Case::Pf1 => PAGE_SIZE,
        }
    }
}

struct Board {
    ready: AtomicU32,
    go: AtomicU32,
    deadline_ns: AtomicU64,
    faults: [AtomicU64; MAX_WORKERS],
    bytes: [AtomicU64; MAX_WORKERS],
    end_ns: [AtomicU64; MAX_WORKERS],
    errors: AtomicU32,
}

/// Maps `len` bytes 2 MiB-aligned and advised `MADV_HUGEPAGE`; returns the aligned
/// start and the whole mapping (to unmap).
fn map_aligned(len: usize) -> Result<(*mut u8, (*mut u8, usize)), Errno> {
    let whole = len + HUGE;
    let raw = mmap_anon(whole, Prot::RW)?;
    let start = (raw as usize).next_multiple_of(HUGE) as *mut u8;
    // SAFETY: advice on our own fresh mapping.
    unsafe { madvise(start, len, MADV_HUGEPAGE)? };
    Ok((start, (raw, whole)))
}

/// One map / touch / unmap cycle; returns (faults, bytes touched).
fn cycle(case: Case, len: usize) -> Result<(u64, u64), Errno> {
    let (p, (raw, whole)) = map_aligned(len)?;
    let mut off = 0;
    while off < len {
        // SAFETY: inside our RW mapping.
        unsafe { p.add(off).write_volatile(1) };
        off += case.stride();
    }
    // SAFETY: our own mapping, no longer used.
    unsafe { munmap(raw, whole)? };
    Ok(((len / case.stride()) as u64, len as u64))
}

fn worker(case: Case, len: usize, board: &Board, idx: usize, cpu: usize) {
    let _ = sched_setaffinity(0, &CpuSet::single(cpu));
    board.ready.fetch_add(1, Ordering::AcqRel);
    while board.go.load(Ordering::Acquire) == 0 {
        let _ = futex_wait(&board.go, 0, None, true);
    }
    let deadline = board.deadline_ns.load(Ordering::Acquire);
    let (mut faults, mut bytes) = (0u64, 0u64);
    loop {
        match cycle(case, len) {
            Ok((f, b)) => {
                faults += f;
                bytes += b;
            }
            Err(e) => {
                eprintln!("thp_bench: worker {}: {}", idx, e);
                board.errors.fetch_add(1, Ordering::AcqRel);
                break;
            }
        }
        if monotonic_ns() >= deadline {
            break;
        }
    }
    board.faults[idx].store(faults, Ordering::Release);
    board.bytes[idx].store(bytes, Ordering::Release);
    board.end_ns[idx].store(monotonic_ns(), Ordering::Release);
}

/// Runs `n` workers; returns (faults, bytes, elapsed ns).
fn run(
    case: Case,
    len: usize,
    n: usize,
    seconds: u64,
    cpus: &[usize],
) -> Result<(u64, u64, u64), String> {
    let board: &'static Board = alloc::boxed::Box::leak(alloc::boxed::Box::new(Board {
        ready: AtomicU32::new(0),
        go: AtomicU32::new(0),
        deadline_ns: AtomicU64::new(0),
        faults: [const { AtomicU64::new(0) }; MAX_WORKERS],
        bytes: [const { AtomicU64::new(0) }; MAX_WORKERS],
        end_ns: [const { AtomicU64::new(0) }; MAX_WORKERS],
        errors: AtomicU32::new(0),
    }));
    let mut threads = Vec::new();
    for idx in 0..n {
        let cpu = cpus[idx % cpus.len()];
        match thread::spawn(move || worker(case, len, board, idx, cpu)) {
            Ok(h) => threads.push(h),
            Err(e) => return Err(format!("spawning a thread: {}", e)),
        }
    }
    while (board.ready.load(Ordering::Acquire) as usize) < n {
        sched_yield();
    }
    let start = monotonic_ns();
    board
        .deadline_ns
        .store(start + seconds * 1_000_000_000, Ordering::Release);
    board.go.store(1, Ordering::Release);
    let _ = futex_wake(&board.go, i32::MAX as u32, true);
    for h in threads {
        h.join();
    }
    let end = (0..n)
        .map(|i| board.end_ns[i].load(Ordering::Acquire))
        .max()
        .unwrap_or(start);
    let faults = (0..n)
        .map(|i| board.faults[i].load(Ordering::Acquire))
        .sum();
    let bytes = (0..n).map(|i| board.bytes[i].load(Ordering::Acquire)).sum();
    if board.errors.load(Ordering::Acquire) > 0 {
        return Err(String::from("a worker failed"));
    }
    Ok((faults, bytes, end.saturating_sub(start)))
}

/// AnonHugePages (kB) of one touched mapping of `len` bytes.
fn verify(len: usize) -> Option<u64> {
    let (p, (raw, whole)) = map_aligned(len).ok()?;
    let mut off = 0;
    while off < len {
        // SAFETY: inside our RW mapping.
        unsafe { p.add(off).write_volatile(1) };
        off += HUGE;
    }
    let text = read_file("/proc/self/smaps").ok();
    // SAFETY: our own mapping.
    let _ = unsafe { munmap(raw, whole) };
    let text = text?;
    let head = format!("{:x}-", p as usize);
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&head));
    lines.next()?;
    lines
        .take_while(|l| !l.starts_with("VmFlags"))
        .find_map(|l| {
            l.strip_prefix("AnonHugePages:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
}

fn usage() -> i32 {
    eprintln!("usage: thp_bench [--case huge,pf1] [--workers 1,2] [--mb 64] [--seconds 5]");
    2
}

fn main(args: &Args) -> i32 {
    let cases: Option<Vec<Case>> = args
        .opt("--case")
        .unwrap_or("huge,pf1")
        .split(',')
        .map(|c| match c {
            "huge" => Some(Case::Huge),
            "pf1" => Some(Case::Pf1),
            _ => None,
        })
        .collect();
    let Some(cases) = cases else { return usage() };
    let Some(workers) = parse_list(args.opt("--workers").unwrap_or("1,2")) else {
        return usage();
    };
    let (Ok(mb), Ok(seconds)) = (args.opt_u64("--mb", 64), args.opt_u64("--seconds", 5)) else {
        return usage();
    };
    if mb < 2 || workers.iter().any(|&w| w == 0 || w as usize > MAX_WORKERS) {
        return usage();
    }
    let len = ((mb as usize) << 20).next_multiple_of(HUGE);
    let cpus = allowed_cpus();
    let got = verify(len);
    let mode = read_file("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    println!(
        "thp_bench.verify huge_kb={} of={} enabled={}",
        got.map_or(-1, |k| k as i64),
        len >> 10,
        mode.trim()
    );
    let mut status = 0;
    for case in cases {
        for &n in &workers {
            match run(case, len, n as usize, seconds, &cpus) {
                Ok((faults, bytes, ns)) => println!(
                    "thp_bench.{}.workers={} faults_per_sec={} mib_per_sec={} touched_mib={} elapsed_ms={}",
                    case.name(),
                    n,
                    per_second(faults, ns),
                    per_second(bytes >> 20, ns),
                    bytes >> 20,
                    ns / 1_000_000
                ),
                Err(e) => {
                    println!("thp_bench.{}.workers={} FAILED: {}", case.name(), n, e);
                    status = 1;
                }
            }
        }
    }
    // The kernel's THP counters after the runs (huge pages really made, fallbacks).
    if let Ok(text) = read_file("/proc/vmstat") {
        for line in text
            .lines()
            .filter(|l| l.starts_with("thp_fault") || l.starts_with("thp_prezeroed"))
        {
            println!("thp_bench.vmstat {}", line);
        }
    }
    status
}
