//! `swaptest`: swap in a guest with a swap disk (`--swap MIB`, turned on at boot).
//!
//! - The gate: a restricted process gets EPERM from swapon and swapoff; swapon of an
//!   active area is EBUSY, of a name that is no device ENOENT, of a device without a
//!   swap header (`--bad-dev PATH`, a zeroed disk) EINVAL.
//! - Integrity: `--threads` threads fill `--ratio` percent of RAM (default 150) with a
//!   known pattern, then every byte is read back and compared; `pswpout`/`pswpin`
//!   grew, `VmSwap` and `/proc/swaps` showed the traffic.
//! - Fork: a child reads everything back too, rewrites half its pages and checks them;
//!   the parent's copy is untouched.
//! - No leak: after munmap the swap used drops back.
//! - swapoff: with part of a mapping swapped out, swapoff brings every page back
//!   (`VmSwap` 0, the area gone from `/proc/swaps`), the data verifies, and swapon
//!   turns the area back on.
//!
//! Runs on Linux too (as root; the restricted-token checks are Peios-only).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::CStr;
use peios_bins::files::{meminfo_kb, read_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};
use peios_rt::sys::swap::{swapoff, swapon};

peios_rt::main!(main);

const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;

/// Word `i` of page `page` under `seed`.
fn word(seed: u64, page: usize, i: usize) -> u64 {
    (((page as u64) << 20) | i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed
}

/// A region of anonymous memory the test owns.
#[derive(Clone, Copy)]
struct Region {
    base: usize,
    pages: usize,
}

impl Region {
    /// `MAP_NORESERVE`: without swap the fill must reach the OOM killer, not be
    /// refused by the overcommit heuristic up front.
    fn new(pages: usize) -> Result<Region, Errno> {
        // SAFETY: no MAP_FIXED: the kernel picks a free range.
        let base = unsafe {
            mmap(
                0,
                pages * PAGE,
                Prot::RW,
                MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE,
                -1,
                0,
            )
        }?;
        Ok(Region {
            base: base as usize,
            pages,
        })
    }

    fn page(&self, p: usize) -> *mut u64 {
        (self.base + p * PAGE) as *mut u64
    }

    /// Writes the pattern into pages `first, first + step, ...`.
    fn fill(&self, seed: u64, first: usize, step: usize) {
        for p in (first..self.pages).step_by(step) {
            let ptr = self.page(p);
            for i in 0..WORDS {
                // SAFETY: inside the region, which this process owns.
                unsafe { ptr.add(i).write_volatile(word(seed, p, i)) };
            }
        }
    }

    /// Pages `first, first + step, ...` whose contents differ from the pattern.
    fn mismatches(&self, seed: u64, first: usize, step: usize) -> usize {
        let mut bad = 0;
        for p in (first..self.pages).step_by(step) {
            let ptr = self.page(p);
            let ok = (0..WORDS).all(|i| {
                // SAFETY: as in `fill`.
                let got = unsafe { ptr.add(i).read_volatile() };
                got == word(seed, p, i)
            });
            if !ok {
                bad += 1;
            }
        }
        bad
    }

    fn unmap(self) {
        // SAFETY: nothing refers into the region any more.
        let _ = unsafe { munmap(self.base as *mut u8, self.pages * PAGE) };
    }
}

fn vmstat(name: &str) -> u64 {
    read_file("/proc/vmstat")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(0)
}

fn vm_swap_kb() -> u64 {
    read_file("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VmSwap:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn swap_used_kb() -> u64 {
    meminfo_kb("SwapTotal").unwrap_or(0) - meminfo_kb("SwapFree").unwrap_or(0)
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

fn c(v: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(v).unwrap_or(c"")
}

fn main(args: &Args) -> i32 {
    let mut checks = Checks::new("swaptest");
    let dev = args.opt("--dev").unwrap_or("/dev/vda");
    let ratio = args.opt_u64("--ratio", 150).unwrap_or(150) as usize;
    let threads = args.opt_u64("--threads", 2).unwrap_or(2).max(1) as usize;
    let dev_c = cstr(dev);

    let swaps = read_file("/proc/swaps").unwrap_or_default();
    checks.check(
        "area_listed",
        swaps.lines().any(|l| l.starts_with(dev)),
        format_args!("/proc/swaps:\n{}", swaps.trim_end()),
    );
    let total_kb = meminfo_kb("SwapTotal").unwrap_or(0);
    checks.check(
        "swap_total",
        total_kb > 0,
        format_args!("SwapTotal {} kB", total_kb),
    );

    // The gate and the errors.
    let denied = in_restricted_child(|| {
        let a = swapon(c(&cstr(dev)), 0);
        let b = swapoff(c(&cstr(dev)));
        match (a, b) {
            (Err(Errno::EPERM), Err(Errno::EPERM)) => 0,
            _ => 1,
        }
    });
    if !matches!(denied, Ok(WaitStatus::Exited(99))) {
        checks.check(
            "restricted_eperm",
            matches!(denied, Ok(WaitStatus::Exited(0))),
            format_args!("restricted child: {:?}", denied.map(|s| s.code())),
        );
    }
    checks.expect_errno("swapon_busy", swapon(c(&dev_c), 0), Errno::EBUSY);
    checks.expect_errno("swapon_enoent", swapon(c"/dev/vdz", 0), Errno::ENOENT);
    if let Some(bad) = args.opt("--bad-dev") {
        checks.expect_errno("swapon_bad_header", swapon(c(&cstr(bad)), 0), Errno::EINVAL);
    }

    // Integrity under pressure, from several threads.
    let mem_kb = meminfo_kb("MemTotal").unwrap_or(0) as usize;
    let pages = mem_kb / 4 * ratio / 100;
    let used_before = swap_used_kb();
    let out_before = vmstat("pswpout");
    let in_before = vmstat("pswpin");
    let region = match Region::new(pages) {
        Ok(r) => r,
        Err(e) => {
            checks.check("map", false, format_args!("{} pages: {}", pages, e));
            return checks.finish();
        }
    };
    let start = peios_rt::time::monotonic_ns();
    let handles: Vec<_> = (0..threads)
        .filter_map(|t| {
            peios_rt::thread::spawn(move || {
                region.fill(1, t, threads);
            })
            .ok()
        })
        .collect();
    let spawned = handles.len();
    for h in handles {
        h.join();
    }
    let swapped_kb = vm_swap_kb();
    let bad: usize = {
        let handles: Vec<_> = (0..threads)
            .filter_map(|t| peios_rt::thread::spawn(move || region.mismatches(1, t, threads)).ok())
            .collect();
        handles.into_iter().map(|h| h.join()).sum()
    };
    let ms = (peios_rt::time::monotonic_ns() - start) / 1_000_000;
    checks.check(
        "fill_and_verify",
        spawned == threads && bad == 0,
        format_args!(
            "{} MiB ({}% of {} MiB RAM) by {} threads, {} pages differ, {} ms",
            pages * PAGE >> 20,
            ratio,
            mem_kb >> 10,
            spawned,
            bad,
            ms
        ),
    );
    let out = vmstat("pswpout") - out_before;
    let inn = vmstat("pswpin") - in_before;
    checks.check(
        "traffic",
        out > 0 && inn > 0 && swapped_kb > 0,
        format_args!(
            "pswpout +{}, pswpin +{}, VmSwap after the fill {} kB",
            out, inn, swapped_kb
        ),
    );

    // Across fork: the child sees the same data, its writes stay its own.
    let child = in_child(|| {
        let same = region.mismatches(1, 0, 1);
        region.fill(2, 0, 2);
        let odd = region.mismatches(1, 1, 2);
        let even = region.mismatches(2, 0, 2);
        if same == 0 && odd == 0 && even == 0 {
            0
        } else {
            println!("swaptest: child: {} {} {} pages differ", same, odd, even);
            1
        }
    });
    let parent_bad = region.mismatches(1, 0, 1);
    checks.check(
        "fork",
        matches!(child, Ok(WaitStatus::Exited(0))) && parent_bad == 0,
        format_args!(
            "child {:?}, {} parent pages differ",
            child.map(|s| s.code()),
            parent_bad
        ),
    );
    region.unmap();
    let used_after = swap_used_kb();
    checks.check(
        "no_slot_leak",
        used_after <= used_before + 4096,
        format_args!(
            "swap used {} kB before, {} kB after munmap",
            used_before, used_after
        ),
    );

    // swapoff with pages out: all come back.
    let big = Region::new(mem_kb / 4 * 6 / 5);
    if let Ok(big) = big {
        big.fill(3, 0, 1);
        // Keep the first half (written first, so mostly swapped out by now).
        let keep = Region {
            base: big.base,
            pages: big.pages / 2,
        };
        // SAFETY: the second half is not used again.
        let _ = unsafe {
            munmap(
                big.page(keep.pages) as *mut u8,
                (big.pages - keep.pages) * PAGE,
            )
        };
        let out_kb = vm_swap_kb();
        let off = swapoff(c(&dev_c));
        let after_kb = vm_swap_kb();
        let listed = read_file("/proc/swaps")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(dev));
        let mut bad = 0;
        for p in 0..keep.pages {
            let ptr = keep.page(p);
            let orig = p;
            let differs = (0..WORDS).any(|i| {
                // SAFETY: inside the kept half.
                let got = unsafe { ptr.add(i).read_volatile() };
                got != word(3, orig, i)
            });
            if differs {
                bad += 1;
            }
        }
        checks.check(
            "swapoff",
            off.is_ok()
                && out_kb * 4 > (keep.pages * 4) as u64
                && after_kb == 0
                && !listed
                && bad == 0,
            format_args!(
                "{:?}; VmSwap {} kB before, {} kB after; still listed {}; {} pages differ",
                off, out_kb, after_kb, listed, bad
            ),
        );
        keep.unmap();
        checks.check(
            "swapon_again",
            swapon(c(&dev_c), 0).is_ok(),
            format_args!("{}", dev),
        );
    } else {
        checks.check("swapoff_map", false, format_args!("no memory"));
    }
    checks.finish()
}
