//! `shmswap`: shared memory goes to swap and comes back. Needs swap on `/dev/vda`
//! (the guest's default) and runs as root.
//!
//! A tmpfs file (`/tmp`, 16 MiB) and then a memfd larger than the free memory
//! (`MemFree` plus `--over MIB`, default 48) are written with a pattern through
//! `write(2)`. Then:
//!
//! - `pswpout` grew by at least what did not fit, and `Shmem` in `/proc/meminfo` is
//!   below what the two files hold (their pages went to swap);
//! - every byte reads back identical through `read(2)` and through a `MAP_SHARED`
//!   mapping (`pswpin` grew), for both files;
//! - a write through the mapping is seen by `read(2)`;
//! - `ftruncate` of the memfd to a quarter gives its swapped pages' slots back
//!   (`SwapFree` grows);
//! - `swapoff` returns with every page back in memory (no shmem page is lost, the
//!   area is gone from `/proc/swaps`), the rest verifies again, and `swapon`
//!   turns the area back on.
//!
//! Runs on Linux too (the anchor's `--swap`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use peios_bins::files::{meminfo_kb, read_file};
use peios_bins::pattern::word;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::sys::fs::{
    close, ftruncate, lseek_set, memfd_create, openat, read, unlinkat, write_all, AT_FDCWD,
    O_CREAT, O_RDWR, O_TRUNC,
};
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};
use peios_rt::sys::swap::{swapoff, swapon};

peios_rt::main!(main);

const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;
const MIB: usize = 1 << 20;
const PAGES_PER_MIB: usize = MIB / PAGE;

fn vmstat(name: &str) -> u64 {
    peios_bins::files::vmstat(name).unwrap_or(0)
}

/// A file's pattern: every page is the seed's block with the page's number and the
/// seed in its first 16 bytes (built and compared with slice copies, so a debug build
/// checks hundreds of MiB quickly under TCG).
struct Pattern {
    seed: u64,
    block: alloc::vec::Vec<u8>,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        let mut block = vec![0u8; PAGE];
        for i in 0..WORDS {
            block[i * 8..i * 8 + 8].copy_from_slice(&word(seed, 0, i).to_le_bytes());
        }
        Pattern { seed, block }
    }

    /// The bytes of `page` into `out` (a page long).
    fn page(&self, page: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.block);
        out[..8].copy_from_slice(&(page as u64).to_le_bytes());
        out[8..16].copy_from_slice(&self.seed.to_le_bytes());
    }
}

/// A buffer for `read(2)`/`write(2)` that reclaim leaves in memory (`MAP_LOCKED`):
/// the kernel's copy to or from a user page that is in swap waits only a bounded
/// time (then EFAULT), which a loaded host can exceed. Made once, never unmapped.
fn io_buffer() -> Result<&'static mut [u8], Errno> {
    // SAFETY: no MAP_FIXED: the kernel picks a free range, owned by this slice alone
    // and never unmapped.
    let base = unsafe {
        mmap(
            0,
            MIB,
            Prot::RW,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::LOCKED,
            -1,
            0,
        )
    }?;
    // SAFETY: the mapping is MIB bytes, readable and writable, and leaked.
    Ok(unsafe { core::slice::from_raw_parts_mut(base, MIB) })
}

/// Writes `pages` pages of `pat` into `fd` from its start.
fn fill(fd: i32, pat: &Pattern, pages: usize, buf: &mut [u8]) -> Result<(), Errno> {
    lseek_set(fd, 0)?;
    let mut page = 0;
    while page < pages {
        let n = (pages - page).min(PAGES_PER_MIB);
        for k in 0..n {
            pat.page(page + k, &mut buf[k * PAGE..(k + 1) * PAGE]);
        }
        write_all(fd, &buf[..n * PAGE])?;
        page += n;
    }
    Ok(())
}

/// Pages of `fd` (`pages` long) that `read(2)` does not give back as `pat`'s
/// pattern, with page `marked` expected to start with `mark`.
fn bad_by_read(
    fd: i32,
    pat: &Pattern,
    pages: usize,
    marked: Option<(usize, u64)>,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    lseek_set(fd, 0)?;
    let mut want = vec![0u8; PAGE];
    let mut bad = 0;
    let mut page = 0;
    while page < pages {
        let n = (pages - page).min(PAGES_PER_MIB);
        let mut got = 0;
        while got < n * PAGE {
            match read(fd, &mut buf[got..n * PAGE])? {
                0 => return Err(Errno::EIO),
                k => got += k,
            }
        }
        for k in 0..n {
            pat.page(page + k, &mut want);
            if let Some((p, mark)) = marked {
                if p == page + k {
                    want[..8].copy_from_slice(&mark.to_le_bytes());
                }
            }
            if buf[k * PAGE..(k + 1) * PAGE] != want[..] {
                bad += 1;
            }
        }
        page += n;
    }
    Ok(bad)
}

/// A shared mapping of `pages` pages of `fd`.
fn map(fd: i32, pages: usize) -> Result<*mut u64, Errno> {
    // SAFETY: no MAP_FIXED: the kernel picks a free range.
    let base = unsafe { mmap(0, pages * PAGE, Prot::RW, MapFlags::SHARED, fd, 0) }?;
    Ok(base as *mut u64)
}

/// Pages of the mapping at `base` that differ from `pat`.
fn bad_by_map(base: *mut u64, pat: &Pattern, pages: usize) -> usize {
    let mut want = vec![0u8; PAGE];
    (0..pages)
        .filter(|&p| {
            pat.page(p, &mut want);
            // SAFETY: inside the mapping, which this process owns and nothing else
            // writes meanwhile.
            let got =
                unsafe { core::slice::from_raw_parts((base as *const u8).add(p * PAGE), PAGE) };
            got != &want[..]
        })
        .count()
}

fn unmap(base: *mut u64, pages: usize) {
    // SAFETY: nothing refers into the mapping any more.
    let _ = unsafe { munmap(base as *mut u8, pages * PAGE) };
}

fn main(args: &peios_rt::Args) -> i32 {
    let mut checks = Checks::new("shmswap");
    let over_mib = args.opt_u64("--over", 48).unwrap_or(48) as usize;
    let tmp_pages = 16 * PAGES_PER_MIB;
    let free_kb = meminfo_kb("MemFree").unwrap_or(0) as usize;
    let big_pages = (free_kb / 1024 + over_mib) * PAGES_PER_MIB;
    println!(
        "shmswap: free {} MiB, tmpfs file 16 MiB, memfd {} MiB",
        free_kb / 1024,
        big_pages / PAGES_PER_MIB
    );
    let (tmp_seed, big_seed) = (Pattern::new(0x7e57_0001), Pattern::new(0x7e57_0002));
    let (tmp_seed, big_seed) = (&tmp_seed, &big_seed);
    let buf = match io_buffer() {
        Ok(b) => b,
        Err(e) => {
            checks.check("io_buffer", false, format_args!("{e:?}"));
            return checks.finish();
        }
    };
    let tmp = openat(
        AT_FDCWD,
        c"/tmp/shmswap.bin",
        O_CREAT | O_RDWR | O_TRUNC,
        0o600,
    );
    let big = memfd_create(c"shmswap", 0);
    let (Ok(tmp), Ok(big)) = (tmp, big) else {
        checks.check("create", false, format_args!("{tmp:?} {big:?}"));
        return checks.finish();
    };
    let out_before = vmstat("pswpout");
    let filled =
        fill(tmp, tmp_seed, tmp_pages, buf).and_then(|()| fill(big, big_seed, big_pages, buf));
    checks.check("fill", filled.is_ok(), format_args!("{filled:?}"));
    let swapped_out = vmstat("pswpout") - out_before;
    let shmem_kb = meminfo_kb("Shmem").unwrap_or(0);
    let written_kb = ((tmp_pages + big_pages) * 4) as u64;
    let over_pages = (over_mib * PAGES_PER_MIB) as u64;
    checks.check(
        "pswpout",
        swapped_out >= over_pages,
        format_args!("{swapped_out} pages out, {over_pages} did not fit"),
    );
    checks.check(
        "shmem_shrank",
        shmem_kb + over_pages * 4 <= written_kb,
        format_args!("Shmem {shmem_kb} kB of {written_kb} kB written"),
    );
    let in_before = vmstat("pswpin");
    let bad = bad_by_read(tmp, tmp_seed, tmp_pages, None, buf)
        .and_then(|t| Ok((t, bad_by_read(big, big_seed, big_pages, None, buf)?)));
    checks.check(
        "read_back",
        bad == Ok((0, 0)),
        format_args!("bad pages {bad:?}"),
    );
    checks.check(
        "pswpin",
        vmstat("pswpin") > in_before,
        format_args!("{} pages in", vmstat("pswpin") - in_before),
    );
    match (map(tmp, tmp_pages), map(big, big_pages)) {
        (Ok(t), Ok(b)) => {
            let bad = (
                bad_by_map(t, tmp_seed, tmp_pages),
                bad_by_map(b, big_seed, big_pages),
            );
            checks.check("map_back", bad == (0, 0), format_args!("bad pages {bad:?}"));
            // A write through the mapping, seen by read(2).
            let mark = 0xfeed_face_0bad_f00du64;
            // SAFETY: inside the mapping.
            unsafe { t.add(5 * WORDS).write_volatile(mark) };
            let bad = bad_by_read(tmp, tmp_seed, tmp_pages, Some((5, mark)), buf);
            checks.check("map_write_read", bad == Ok(0), format_args!("{bad:?}"));
            unmap(t, tmp_pages);
            unmap(b, big_pages);
        }
        (t, b) => {
            checks.check("map", false, format_args!("{t:?} {b:?}"));
        }
    }
    // A quarter of the memfd stays: the slots of the rest come back.
    let kept = big_pages / 4;
    let free_before = meminfo_kb("SwapFree").unwrap_or(0);
    let cut = ftruncate(big, (kept * PAGE) as u64);
    let freed_kb = meminfo_kb("SwapFree")
        .unwrap_or(0)
        .saturating_sub(free_before);
    checks.check(
        "truncate_frees_swap",
        cut.is_ok() && freed_kb > 0,
        format_args!("{cut:?}, SwapFree +{freed_kb} kB"),
    );
    let off = swapoff(c"/dev/vda");
    let listed = read_file("/proc/swaps").map(|s| s.contains("/dev/vda"));
    checks.check(
        "swapoff",
        off.is_ok() && listed == Ok(false),
        format_args!("{off:?}, listed {listed:?}"),
    );
    let shmem_kb = meminfo_kb("Shmem").unwrap_or(0);
    let resident_kb = ((tmp_pages + kept) * 4) as u64;
    checks.check(
        "shmem_back",
        shmem_kb >= resident_kb,
        format_args!("Shmem {shmem_kb} kB, {resident_kb} kB held"),
    );
    let bad = bad_by_read(
        tmp,
        tmp_seed,
        tmp_pages,
        Some((5, 0xfeed_face_0bad_f00d)),
        buf,
    )
    .and_then(|t| Ok((t, bad_by_read(big, big_seed, kept, None, buf)?)));
    checks.check(
        "read_after_swapoff",
        bad == Ok((0, 0)),
        format_args!("{bad:?}"),
    );
    if let Ok(b) = map(big, kept) {
        let bad = bad_by_map(b, big_seed, kept);
        checks.check(
            "map_after_swapoff",
            bad == 0,
            format_args!("bad pages {bad}"),
        );
        unmap(b, kept);
    }
    let on = swapon(c"/dev/vda", 0);
    checks.check("swapon_again", on.is_ok(), format_args!("{on:?}"));
    let _ = close(big);
    let _ = close(tmp);
    let _ = unlinkat(AT_FDCWD, c"/tmp/shmswap.bin", 0);
    checks.finish()
}
