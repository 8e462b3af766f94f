//! `swapfill`: the swap acceptance run. A forked child maps `--mib` MiB of private
//! anonymous memory (default 1536), fills it with a pattern from `--threads` threads
//! (default 4; thread `t` writes pages `t, t + threads, ...`, every word a function of
//! its page and offset), then reads every byte back from as many threads.
//!
//! With swap on (`SwapTotal` > 0) the child checks that nothing differs, that its
//! `VmSwap` holds at least what cannot fit in RAM (the fill less `MemTotal`), and that
//! `/proc/swaps` shows at least that much used; the parent checks that the child
//! exited 0.
//!
//! Without swap the fill cannot fit: the child must be killed by the OOM killer
//! (SIGKILL) before it verifies anything, never report a wrong byte, and the parent
//! goes on: it fills and verifies 64 MiB of its own and sees `MemFree` come back.
//!
//! Prints the fill's and the verification's wall-clock times. Runs on Linux too (the
//! anchor's `--swap`).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{meminfo_kb, read_file};
use peios_bins::pattern::Region;
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;

peios_rt::main!(main);

const PAGE: usize = 4096;
/// The pattern's seed in the child's region.
const SEED: u64 = 0x5a5a_f111;
/// The parent's own region after the child is gone (MiB).
const PARENT_MIB: usize = 64;

/// `VmSwap` of this process (kB).
fn vm_swap_kb() -> u64 {
    peios_bins::files::status_kb("VmSwap").unwrap_or(0)
}

/// The `Used` column (kB) summed over every area of `/proc/swaps`, and the number of
/// areas.
fn swaps_used_kb() -> (u64, usize) {
    let text = read_file("/proc/swaps").unwrap_or_default();
    let mut used = 0;
    let mut areas = 0;
    for line in text.lines().skip(1) {
        // Filename Type Size Used Priority
        if let Some(v) = line
            .split_whitespace()
            .nth(3)
            .and_then(|f| f.parse::<u64>().ok())
        {
            used += v;
            areas += 1;
        }
    }
    (used, areas)
}

fn now_ms() -> u64 {
    peios_rt::time::monotonic_ns() / 1_000_000
}

/// Runs `work(t)` on `threads` threads and sums the results; `None` if a thread could
/// not be started.
fn on_threads(
    threads: usize,
    work: impl Fn(usize) -> usize + Copy + Send + 'static,
) -> Option<usize> {
    let handles: Vec<_> = (0..threads)
        .filter_map(|t| peios_rt::thread::spawn(move || work(t)).ok())
        .collect();
    let started = handles.len();
    let sum = handles.into_iter().map(|h| h.join()).sum();
    (started == threads).then_some(sum)
}

/// The child: fill, look at the swap counters, verify. Its exit status is its checks'.
fn child(pages: usize, threads: usize, mem_kb: u64) -> i32 {
    let mut checks = Checks::new("swapfill");
    let region = match Region::new(pages) {
        Ok(r) => r,
        Err(e) => {
            checks.check("map", false, format_args!("{} pages: {}", pages, e));
            return checks.finish();
        }
    };
    let start = now_ms();
    let filled = on_threads(threads, move |t| {
        region.fill(SEED, t, threads);
        0
    });
    let fill_ms = now_ms() - start;
    let swap_kb = vm_swap_kb();
    let (used_kb, areas) = swaps_used_kb();
    let start = now_ms();
    let bad = on_threads(threads, move |t| region.mismatches(SEED, t, threads));
    let verify_ms = now_ms() - start;
    let fill_kb = (pages * PAGE / 1024) as u64;
    println!(
        "swapfill: {} MiB by {} threads: fill {} ms, verify {} ms; VmSwap {} kB, /proc/swaps used {} kB",
        (pages * PAGE) >> 20,
        threads,
        fill_ms,
        verify_ms,
        swap_kb,
        used_kb
    );
    checks.check(
        "fill_and_verify",
        filled.is_some() && bad == Some(0),
        format_args!("{} threads, {:?} of {} pages differ", threads, bad, pages),
    );
    // What does not fit in RAM must be on the swap device while the fill is held.
    let must_swap_kb = fill_kb.saturating_sub(mem_kb);
    checks.check(
        "vmswap",
        swap_kb >= must_swap_kb && must_swap_kb > 0,
        format_args!(
            "VmSwap {} kB, the fill less MemTotal is {} kB",
            swap_kb, must_swap_kb
        ),
    );
    checks.check(
        "proc_swaps",
        areas > 0 && used_kb >= must_swap_kb,
        format_args!("{} areas, {} kB used", areas, used_kb),
    );
    region.unmap();
    checks.finish()
}

fn main(args: &Args) -> i32 {
    let mut checks = Checks::new("swapfill");
    let mib = args.opt_u64("--mib", 1536).unwrap_or(1536) as usize;
    let threads = args.opt_u64("--threads", 4).unwrap_or(4).max(1) as usize;
    let pages = (mib << 20) >> 12;
    let mem_kb = meminfo_kb("MemTotal").unwrap_or(0);
    let swap_total_kb = meminfo_kb("SwapTotal").unwrap_or(0);
    let free_before_kb = meminfo_kb("MemFree").unwrap_or(0);
    let start = now_ms();
    let status = in_child(|| child(pages, threads, mem_kb));
    let ms = now_ms() - start;
    println!(
        "swapfill: child {:?} after {} ms ({} MiB RAM, {} MiB swap)",
        status,
        ms,
        mem_kb >> 10,
        swap_total_kb >> 10
    );
    if swap_total_kb > 0 {
        checks.check(
            "child_passed",
            matches!(status, Ok(WaitStatus::Exited(0))),
            format_args!("{:?}", status),
        );
        return checks.finish();
    }
    // No swap: the OOM killer ends the child; the parent and the kernel go on.
    checks.check(
        "child_oom_killed",
        matches!(status, Ok(WaitStatus::Signaled { signal: 9, .. })),
        format_args!("{:?}", status),
    );
    let mine = Region::new(PARENT_MIB << 20 >> 12);
    let bad = mine.map(|r| {
        r.fill(SEED + 1, 0, 1);
        let bad = r.mismatches(SEED + 1, 0, 1);
        r.unmap();
        bad
    });
    checks.check(
        "parent_goes_on",
        bad == Ok(0),
        format_args!(
            "{} MiB of the parent's own: {:?} pages differ",
            PARENT_MIB, bad
        ),
    );
    // The child's memory came back (a reaped victim leaks nothing); a little slack
    // for page tables and caches the run left behind.
    let back = |kb: u64| kb + free_before_kb / 10 >= free_before_kb;
    let mut free_after_kb = meminfo_kb("MemFree").unwrap_or(0);
    for _ in 0..50 {
        if back(free_after_kb) {
            break;
        }
        peios_rt::time::sleep_ms(100);
        free_after_kb = meminfo_kb("MemFree").unwrap_or(0);
    }
    checks.check(
        "memory_back",
        back(free_after_kb),
        format_args!(
            "MemFree {} kB before, {} kB after",
            free_before_kb, free_after_kb
        ),
    );
    checks.finish()
}
