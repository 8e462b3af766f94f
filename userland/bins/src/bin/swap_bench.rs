//! `swap_bench`: swap throughput. A private anonymous mapping of `--ratio` percent of
//! RAM (default 150) is written sequentially once (the sweep, MB/s), then `--threads`
//! threads (default 4) each touch random pages of it for `--seconds` (default 10): a
//! read and a write of one word per touch; the figure is touches (pages) per second.
//! Every touched word is checked, so a lost page counts as a failure. Same binary on
//! Linux (the anchor's `--swap`) and on Peios.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicBool, Ordering};
use peios_bins::files::meminfo_kb;
use peios_rt::prelude::*;
use peios_rt::sys::mm::{mmap_anon, Prot};
use peios_rt::time::monotonic_ns;

peios_rt::main!(main);

const PAGE: usize = 4096;

static STOP: AtomicBool = AtomicBool::new(false);

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn main(args: &Args) -> i32 {
    let ratio = args.opt_u64("--ratio", 150).unwrap_or(150) as usize;
    let threads = args.opt_u64("--threads", 4).unwrap_or(4).max(1) as usize;
    let seconds = args.opt_u64("--seconds", 10).unwrap_or(10).max(1);
    let mem_kb = meminfo_kb("MemTotal").unwrap_or(0) as usize;
    let pages = mem_kb / 4 * ratio / 100;
    let base = match mmap_anon(pages * PAGE, Prot::RW) {
        Ok(p) => p as usize,
        Err(e) => {
            println!("swap_bench: mmap of {} pages: {}", pages, e);
            return 1;
        }
    };
    // The sweep: every page written once, in order; each page's first word names it.
    let start = monotonic_ns();
    for p in 0..pages {
        let w = (base + p * PAGE) as *mut u64;
        // SAFETY: inside the mapping; the stride writes one word a cache line.
        unsafe {
            for i in (0..PAGE / 8).step_by(8) {
                w.add(i).write_volatile(p as u64);
            }
        }
    }
    let sweep_ns = monotonic_ns() - start;
    let sweep_mb_s = (pages * PAGE) as u64 * 1000 / sweep_ns.max(1);
    println!(
        "swap_bench: sweep {} MiB ({}% of {} MiB RAM) in {} ms: {} MB/s",
        pages * PAGE >> 20,
        ratio,
        mem_kb >> 10,
        sweep_ns / 1_000_000,
        sweep_mb_s
    );
    STOP.store(false, Ordering::SeqCst);
    let start = monotonic_ns();
    let handles: Vec<_> = (0..threads)
        .filter_map(|t| {
            peios_rt::thread::spawn(move || {
                let mut seed = 0x2545_f491_4f6c_dd1d ^ ((t as u64 + 1) << 32);
                let (mut touches, mut bad) = (0u64, 0u64);
                while !STOP.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        let p = (xorshift(&mut seed) % pages as u64) as usize;
                        let w = (base + p * PAGE) as *mut u64;
                        // SAFETY: inside the mapping; word 0 of a page only ever holds
                        // its page number (threads write the same value).
                        unsafe {
                            if w.read_volatile() != p as u64 {
                                bad += 1;
                            }
                            w.write_volatile(p as u64);
                        }
                        touches += 1;
                    }
                }
                (touches, bad)
            })
            .ok()
        })
        .collect();
    peios_rt::time::sleep_ms(seconds * 1000);
    STOP.store(true, Ordering::SeqCst);
    let (mut touches, mut bad) = (0, 0);
    let n = handles.len();
    for h in handles {
        let (t, b) = h.join();
        touches += t;
        bad += b;
    }
    let ns = monotonic_ns() - start;
    println!(
        "swap_bench: random: {} threads, {} touches in {} ms: {} pages/s; {} bad",
        n,
        touches,
        ns / 1_000_000,
        touches * 1_000_000_000 / ns.max(1),
        bad
    );
    if bad == 0 && n == threads {
        0
    } else {
        1
    }
}
