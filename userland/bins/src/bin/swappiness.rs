//! `swappiness`: `vm.swappiness` steers reclaim between the page cache and swap.
//! Needs swap and an ext4 disk at `/mnt` with a large file (`--file PATH`, default
//! `/mnt/seq.bin` from `tools/mkext4.sh --seq-mib 128`); runs as root.
//!
//! For swappiness 0 and then 200 (written through `/proc/sys/vm/swappiness`): the
//! caches are dropped, the file is read whole into the page cache, then anonymous
//! memory is touched past what is free (`--over PERCENT` of what the cache holds,
//! default 50), so reclaim must free about that much. Then:
//!
//! - at 0 reclaim drops file pages and hardly swaps (`Cached` falls, `pswpout` barely
//!   moves);
//! - at 200 it swaps and keeps the page cache (`pswpout` grows by most of the
//!   excess, `Cached` stays);
//! - between the two runs the split moves by at least a quarter of the cached file
//!   both ways (a kernel that ignores the knob behaves the same in both runs and fails);
//! - the anonymous memory reads back intact every time;
//! - a restricted process may not write the knob (EACCES; Peios-only).
//!
//! First, with no page cache at all (`spill`): at swappiness 0, anonymous memory
//! filling most of what is free, more than any one node of a two-node guest holds,
//! must not swap a page while the nodes together have room (an allocation takes
//! another node's free memory before its own node's reclaim runs, as on Linux), and
//! reads back intact. `--spill-only` runs just that.
//!
//! Runs on Linux too (the anchor's `--disk` and `--swap`), where `high_swaps` and
//! `split_moves` fail: Linux 6.12 trims a page cache of once-read pages first whatever
//! the knob (`cache_trim_mode`), so it swaps nothing at 200 either. This kernel has no
//! such trim mode: the knob alone sets the split.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use peios_bins::files::{meminfo_kb, open, read_file, write_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};

use peios_bins::pattern::word;

peios_rt::main!(main);

const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;
const KNOB: &str = "/proc/sys/vm/swappiness";

fn vmstat(name: &str) -> u64 {
    peios_bins::files::vmstat(name).unwrap_or(0)
}

/// Reads `path` whole through the page cache; the bytes read.
fn read_whole(path: &str) -> Result<u64, Errno> {
    let fd = open(path, O_RDONLY)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let result = loop {
        match read(fd, &mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => total += n as u64,
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    result
}

/// What one run saw.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// `Cached` after the file was read, and after the anonymous fill (kB).
    cached_before_kb: u64,
    cached_after_kb: u64,
    /// Pages written to swap during the fill.
    swapped_out: u64,
    /// Anonymous pages touched.
    anon_pages: usize,
    /// Anonymous pages that did not read back.
    bad_pages: usize,
    /// How much the fill went past free memory (kB).
    over_kb: u64,
}

/// One run at `swappiness`: file `path` (`file_bytes` long) cached, then anonymous
/// memory filled past what is free by `over_percent` of what the cache holds.
fn run(swappiness: u32, path: &str, file_bytes: u64, over_percent: u64) -> Result<Run, Errno> {
    write_file(KNOB, &alloc::format!("{swappiness}\n"))?;
    write_file("/proc/sys/vm/drop_caches", "3\n")?;
    if read_whole(path)? != file_bytes {
        return Err(Errno::EIO);
    }
    let cached_before_kb = meminfo_kb("Cached").unwrap_or(0);
    let free_kb = meminfo_kb("MemFree").unwrap_or(0);
    let over_kb = cached_before_kb * over_percent / 100;
    let anon_pages = ((free_kb + over_kb) / 4) as usize;
    let out_before = vmstat("pswpout");
    // SAFETY: no MAP_FIXED: the kernel picks a free range.
    let base = unsafe {
        mmap(
            0,
            anon_pages * PAGE,
            Prot::RW,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE,
            -1,
            0,
        )
    }? as usize;
    let seed = 0x5eed_0000 + u64::from(swappiness);
    for p in 0..anon_pages {
        let ptr = (base + p * PAGE) as *mut u64;
        for i in 0..WORDS {
            // SAFETY: inside the mapping, which this process owns.
            unsafe { ptr.add(i).write_volatile(word(seed, p, i)) };
        }
    }
    let swapped_out = vmstat("pswpout") - out_before;
    let cached_after_kb = meminfo_kb("Cached").unwrap_or(0);
    let mut bad_pages = 0;
    for p in 0..anon_pages {
        let ptr = (base + p * PAGE) as *const u64;
        // SAFETY: as in the fill.
        let ok = (0..WORDS).all(|i| unsafe { ptr.add(i).read_volatile() } == word(seed, p, i));
        if !ok {
            bad_pages += 1;
        }
    }
    // SAFETY: nothing refers into the mapping any more.
    let _ = unsafe { munmap(base as *mut u8, anon_pages * PAGE) };
    Ok(Run {
        cached_before_kb,
        cached_after_kb,
        swapped_out,
        anon_pages,
        bad_pages,
        over_kb,
    })
}

/// The `spill` run: at swappiness 0 with the caches dropped, fills all but an eighth
/// (at least 16 MiB) of `MemFree` and checks that nothing went to swap and that the
/// fill reads back.
fn spill(checks: &mut Checks) {
    if let Err(e) =
        write_file(KNOB, "0\n").and_then(|()| write_file("/proc/sys/vm/drop_caches", "3\n"))
    {
        checks.check("spill", false, format_args!("setup: {e}"));
        return;
    }
    let free_kb = meminfo_kb("MemFree").unwrap_or(0);
    let spare_kb = (free_kb / 8).max(16 << 10);
    let pages = (free_kb.saturating_sub(spare_kb) / 4) as usize;
    let out_before = vmstat("pswpout");
    let region = match peios_bins::pattern::Region::new(pages) {
        Ok(r) => r,
        Err(e) => {
            checks.check("spill", false, format_args!("map {pages} pages: {e}"));
            return;
        }
    };
    region.fill(0x5b111, 0, 1);
    let swapped_out = vmstat("pswpout") - out_before;
    let bad = region.mismatches(0x5b111, 0, 1);
    region.unmap();
    let _ = write_file(KNOB, "60\n");
    checks.check(
        "spill",
        swapped_out == 0 && bad == 0 && pages > 0,
        format_args!(
            "{} of {free_kb} kB free filled at swappiness 0: pswpout +{swapped_out}, {bad} pages differ",
            pages * 4
        ),
    );
}

fn main(args: &peios_rt::Args) -> i32 {
    let mut checks = Checks::new("swappiness");
    if args.has("--spill-only") {
        spill(&mut checks);
        return checks.finish();
    }
    let path = args.opt("--file").unwrap_or("/mnt/seq.bin");
    let over_percent = args.opt_u64("--over", 50).unwrap_or(50);
    let old = read_file(KNOB).unwrap_or_default();
    checks.check(
        "default",
        old.trim() == "60",
        format_args!("{KNOB} reads {:?}", old.trim()),
    );
    spill(&mut checks);
    // The file's size: one read through it (the runs drop the cache first).
    let file_bytes = match read_whole(path) {
        Ok(n) if n > 0 => n,
        got => {
            println!("swappiness: cannot read {path}: {got:?}");
            return 1;
        }
    };
    let file_kb = file_bytes / 1024;
    let mut runs = [Run::default(); 2];
    for (slot, swappiness) in [(0usize, 0u32), (1, 200)] {
        match run(swappiness, path, file_bytes, over_percent) {
            Ok(r) => {
                println!(
                    "swappiness: at {swappiness}: Cached {} -> {} kB, pswpout +{} pages, {} anon pages",
                    r.cached_before_kb, r.cached_after_kb, r.swapped_out, r.anon_pages
                );
                checks.check(
                    &alloc::format!("reads_back_{swappiness}"),
                    r.bad_pages == 0,
                    format_args!("{} of {} pages differ", r.bad_pages, r.anon_pages),
                );
                checks.check(
                    &alloc::format!("file_cached_{swappiness}"),
                    r.cached_before_kb >= file_kb / 2,
                    format_args!(
                        "Cached {} kB after reading {file_kb} kB",
                        r.cached_before_kb
                    ),
                );
                runs[slot] = r;
            }
            Err(e) => {
                checks.check(
                    &alloc::format!("run_{swappiness}"),
                    false,
                    format_args!("{e}"),
                );
            }
        }
    }
    let _ = write_file(KNOB, "60\n");
    let [zero, high] = runs;
    let swapped_kb = |r: &Run| r.swapped_out * 4;
    checks.check(
        "zero_drops_cache",
        zero.cached_after_kb + zero.over_kb / 2 <= zero.cached_before_kb
            && swapped_kb(&zero) < zero.over_kb / 4,
        format_args!(
            "at 0: Cached {} -> {} kB, {} kB swapped out, {} kB to free",
            zero.cached_before_kb,
            zero.cached_after_kb,
            swapped_kb(&zero),
            zero.over_kb
        ),
    );
    checks.check(
        "high_swaps",
        swapped_kb(&high) >= high.over_kb / 2
            && high.cached_after_kb + high.over_kb / 4 >= high.cached_before_kb,
        format_args!(
            "at 200: Cached {} -> {} kB, {} kB swapped out, {} kB to free",
            high.cached_before_kb,
            high.cached_after_kb,
            swapped_kb(&high),
            high.over_kb
        ),
    );
    // A quarter of what the cache held, both ways.
    let margin = zero.cached_before_kb.min(high.cached_before_kb) / 4;
    checks.check(
        "split_moves",
        margin > 0
            && swapped_kb(&high) >= swapped_kb(&zero) + margin
            && high.cached_after_kb >= zero.cached_after_kb + margin,
        format_args!(
            "swapped out {} kB at 200 against {} kB at 0, Cached {} kB against {} kB",
            swapped_kb(&high),
            swapped_kb(&zero),
            high.cached_after_kb,
            zero.cached_after_kb
        ),
    );
    match in_restricted_child(|| match write_file(KNOB, "100\n") {
        Err(Errno::EACCES) => 0,
        Err(_) => 2,
        Ok(()) => 1,
    }) {
        Ok(WaitStatus::Exited(99)) => println!("swappiness: not Peios: restricted check skipped"),
        got => {
            checks.check(
                "restricted_eacces",
                matches!(got, Ok(WaitStatus::Exited(0))),
                format_args!("restricted write: {got:?}"),
            );
        }
    }
    checks.check(
        "restored",
        read_file(KNOB).is_ok_and(|v| v.trim() == "60"),
        format_args!("{KNOB} back to 60"),
    );
    checks.finish()
}
