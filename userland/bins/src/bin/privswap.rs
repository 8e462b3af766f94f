//! `privswap`: the pages a process writes through `MAP_PRIVATE` file mappings are
//! anonymous memory and go to swap like it. Needs swap on `/dev/vda` (the guest's
//! default), an ext4 disk at `/mnt` made by `tools/mkext4.sh --seq-mib N` (its
//! `seq.bin`, N MiB given as `--ext4-mib N`), and runs as root (for swapoff).
//!
//! A memfd (`--memfd-mib`, default 64) is written with a pattern through `write(2)`;
//! it and `/mnt/seq.bin` are mapped `MAP_PRIVATE` read-write and every page of both
//! mappings is written over with other patterns: more than the guest's RAM in all.
//! Then:
//!
//! - `VmSwap` holds at least what did not fit in RAM; the disk mapping's `Swap:` in
//!   smaps is not 0, and the two mappings' add up to no more than `VmSwap`;
//! - every byte of both mappings reads back as written (`read_back`), while the memfd
//!   and the disk file still hold their own bytes (`files_untouched`);
//! - a forked child sees the same bytes (a sample of pages) and its writes stay its
//!   own (`fork_child`, `fork_parent_unchanged`);
//! - `MADV_PAGEOUT` of part of the memfd mapping puts it in swap (`Swap:` in smaps)
//!   and it reads back;
//! - `MADV_DONTNEED` of the first MiB of each mapping reveals the files' original
//!   bytes (the private copies, resident or swapped, are dropped), and the rest keeps
//!   the written bytes;
//! - with the disk mapping gone, `swapoff` brings the memfd mapping's pages back
//!   (`VmSwap` 0) and they verify; `swapon` turns the area on again.
//!
//! Runs on Linux too (the anchor's `--swap` and `--disk`), where the same checks pass.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use peios_bins::files::{meminfo_kb, smaps_kb, status_kb};
use peios_bins::in_child;
use peios_bins::pattern::{word, Region};
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::fs::{close, memfd_create, openat, write_all, AT_FDCWD, O_RDONLY};
use peios_rt::sys::mm::{madvise, mmap, MapFlags, Prot, MADV_DONTNEED, MADV_PAGEOUT};
use peios_rt::sys::swap::{swapoff, swapon};

peios_rt::main!(main);

const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;
const MIB: usize = 1 << 20;
const PAGES_PER_MIB: usize = MIB / PAGE;

/// The memfd's own bytes (written through `write(2)`).
const MEMFD_SEED: u64 = 0x5eed_f11e_0000_0001;
/// What the process writes through its private mapping of the memfd.
const MEMFD_PRIVATE: u64 = 0x5eed_c0de_0000_0002;
/// What the process writes through its private mapping of the disk file.
const DISK_PRIVATE: u64 = 0x5eed_c0de_0000_0003;
/// What the forked child writes (the first word of every `CHILD_STEP`th page).
const CHILD_MARK: u64 = 0xc41d_c41d_c41d_c41d;
const CHILD_STEP: usize = 64;
/// The child reads back every `SAMPLE_STEP`th page.
const SAMPLE_STEP: usize = 7;

/// Word `i` of page `page` of `seq.bin` (`tools/mkext4.sh`: the word at byte offset
/// `o` is `o * 0x9e3779b97f4a7c15 ^ 0x5eed`).
fn disk_word(page: usize, i: usize) -> u64 {
    (((page * PAGE + i * 8) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ 0x5eed
}

/// Whether page `p` of `r` holds the file's original bytes (`word_of(p, i)`).
fn holds(r: &Region, p: usize, word_of: &dyn Fn(usize, usize) -> u64) -> bool {
    let ptr = r.page(p);
    // SAFETY: inside the region, which this process maps.
    (0..WORDS).all(|i| unsafe { ptr.add(i).read_volatile() } == word_of(p, i))
}

/// Writes `pages` pages of the memfd pattern into `fd` from a heap buffer.
fn fill_memfd(fd: i32, pages: usize) -> Result<(), Errno> {
    let mut buf = vec![0u8; MIB];
    let mut page = 0;
    while page < pages {
        let n = (pages - page).min(PAGES_PER_MIB);
        for k in 0..n {
            for i in 0..WORDS {
                let at = k * PAGE + i * 8;
                buf[at..at + 8].copy_from_slice(&word(MEMFD_SEED, page + k, i).to_le_bytes());
            }
        }
        write_all(fd, &buf[..n * PAGE])?;
        page += n;
    }
    Ok(())
}

/// A private read-write mapping of `pages` pages of `fd`.
fn map_private(fd: i32, pages: usize) -> Result<Region, Errno> {
    // SAFETY: no MAP_FIXED: the kernel picks a free range.
    let base = unsafe { mmap(0, pages * PAGE, Prot::RW, MapFlags::PRIVATE, fd, 0) }?;
    Ok(Region {
        base: base as usize,
        pages,
    })
}

/// `madvise(advice)` of `pages` pages of `r` from its start.
fn advise(r: &Region, pages: usize, advice: i32) -> Result<(), Errno> {
    // SAFETY: inside this process's own mapping.
    unsafe { madvise(r.base as *mut u8, pages * PAGE, advice) }
}

/// Pages `first, first + step, ...` of `r` that do not hold `seed`'s pattern, the
/// first word of every `CHILD_STEP`th page read as `mark` when one is given.
fn mismatches_marked(r: &Region, seed: u64, step: usize, mark: Option<u64>) -> usize {
    (0..r.pages)
        .step_by(step)
        .filter(|&p| {
            let ptr = r.page(p);
            (0..WORDS).any(|i| {
                let want = match mark {
                    Some(m) if i == 0 && p % CHILD_STEP == 0 => m,
                    _ => word(seed, p, i),
                };
                // SAFETY: inside the region.
                let got = unsafe { ptr.add(i).read_volatile() };
                got != want
            })
        })
        .count()
}

fn main(args: &peios_rt::Args) -> i32 {
    let mut checks = Checks::new("privswap");
    let memfd_pages = args.opt_u64("--memfd-mib", 64).unwrap_or(64) as usize * PAGES_PER_MIB;
    let disk_pages = args.opt_u64("--ext4-mib", 0).unwrap_or(0) as usize * PAGES_PER_MIB;
    let total_kb = meminfo_kb("MemTotal").unwrap_or(0);
    println!(
        "privswap: RAM {} MiB, memfd {} MiB, disk file {} MiB, private writes over both",
        total_kb / 1024,
        memfd_pages / PAGES_PER_MIB,
        disk_pages / PAGES_PER_MIB
    );
    let memfd = memfd_create(c"privswap", 0);
    let disk = openat(AT_FDCWD, c"/mnt/seq.bin", O_RDONLY, 0);
    let (Ok(memfd), Ok(disk)) = (memfd, disk) else {
        checks.check("open", false, format_args!("{memfd:?} {disk:?}"));
        return checks.finish();
    };
    let filled = fill_memfd(memfd, memfd_pages);
    checks.check("memfd_fill", filled.is_ok(), format_args!("{filled:?}"));
    let (m, d) = match (
        map_private(memfd, memfd_pages),
        map_private(disk, disk_pages),
    ) {
        (Ok(m), Ok(d)) => (m, d),
        (m, d) => {
            checks.check("map", false, format_args!("{:?} {:?}", m.err(), d.err()));
            return checks.finish();
        }
    };
    // The private writes: more than RAM in all.
    m.fill(MEMFD_PRIVATE, 0, 1);
    d.fill(DISK_PRIVATE, 0, 1);
    let written_kb = ((memfd_pages + disk_pages) * 4) as u64;
    let swap_kb = status_kb("VmSwap").unwrap_or(0);
    let over_kb = written_kb.saturating_sub(total_kb);
    checks.check(
        "vmswap",
        over_kb > 0 && swap_kb >= over_kb,
        format_args!("VmSwap {swap_kb} kB, {written_kb} kB written, RAM {total_kb} kB"),
    );
    // Reclaim may still be writing: VmSwap read after the mappings' figures (nothing
    // comes back in meanwhile) covers them.
    let (m_swap, d_swap) = (
        smaps_kb(m.base, "Swap").unwrap_or(0),
        smaps_kb(d.base, "Swap").unwrap_or(0),
    );
    let swap_kb = status_kb("VmSwap").unwrap_or(0);
    checks.check(
        "smaps_swap",
        d_swap > 0 && m_swap + d_swap <= swap_kb,
        format_args!("memfd mapping {m_swap} kB, disk mapping {d_swap} kB, VmSwap {swap_kb} kB"),
    );
    let bad = (
        m.mismatches(MEMFD_PRIVATE, 0, 1),
        d.mismatches(DISK_PRIVATE, 0, 1),
    );
    checks.check(
        "read_back",
        bad == (0, 0),
        format_args!("bad pages {bad:?}"),
    );
    // The files keep their own bytes: a second private mapping of each, read only.
    match (
        map_private(memfd, memfd_pages),
        map_private(disk, disk_pages),
    ) {
        (Ok(m2), Ok(d2)) => {
            let bad = (
                m2.mismatches(MEMFD_SEED, 0, SAMPLE_STEP),
                (0..d2.pages)
                    .step_by(SAMPLE_STEP)
                    .filter(|&p| !holds(&d2, p, &disk_word))
                    .count(),
            );
            checks.check(
                "files_untouched",
                bad == (0, 0),
                format_args!("bad pages {bad:?}"),
            );
            m2.unmap();
            d2.unmap();
        }
        (m2, d2) => {
            checks.check(
                "files_untouched",
                false,
                format_args!("{:?} {:?}", m2.err(), d2.err()),
            );
        }
    }
    // A child shares the pages (swapped ones by their slots); its writes are its own.
    let child = in_child(|| {
        let seen = (
            m.mismatches(MEMFD_PRIVATE, 0, SAMPLE_STEP),
            d.mismatches(DISK_PRIVATE, 0, SAMPLE_STEP),
        );
        for r in [&m, &d] {
            for p in (0..r.pages).step_by(CHILD_STEP) {
                // SAFETY: inside the region, the child's copy.
                unsafe { r.page(p).write_volatile(CHILD_MARK) };
            }
        }
        let own = (
            mismatches_marked(&m, MEMFD_PRIVATE, CHILD_STEP, Some(CHILD_MARK)),
            mismatches_marked(&d, DISK_PRIVATE, CHILD_STEP, Some(CHILD_MARK)),
        );
        if seen != (0, 0) || own != (0, 0) {
            println!("privswap: child saw bad pages {seen:?}, own writes bad {own:?}");
            return 1;
        }
        0
    });
    checks.check(
        "fork_child",
        matches!(child, Ok(WaitStatus::Exited(0))),
        format_args!("{child:?}"),
    );
    let bad = (
        mismatches_marked(&m, MEMFD_PRIVATE, CHILD_STEP, None),
        mismatches_marked(&d, DISK_PRIVATE, CHILD_STEP, None),
    );
    checks.check(
        "fork_parent_unchanged",
        bad == (0, 0),
        format_args!("bad pages {bad:?}"),
    );
    // MADV_PAGEOUT of 8 MiB of the memfd mapping (the pages are this process's alone
    // again since the child exited), read in first.
    let out_pages = (8 * PAGES_PER_MIB).min(m.pages);
    let head = Region {
        base: m.base,
        pages: out_pages,
    };
    let head_bad = head.mismatches(MEMFD_PRIVATE, 0, 1);
    let before = smaps_kb(m.base, "Swap").unwrap_or(0);
    let paged = advise(&m, out_pages, MADV_PAGEOUT);
    let after = smaps_kb(m.base, "Swap").unwrap_or(0);
    let bad = m.mismatches(MEMFD_PRIVATE, 0, 1);
    checks.check(
        "pageout",
        paged.is_ok() && after >= (out_pages * 4) as u64 && after > before && head_bad + bad == 0,
        format_args!("{paged:?}, Swap {before} -> {after} kB, bad pages {head_bad} + {bad}"),
    );
    // MADV_DONTNEED of the first MiB: the files show through again.
    let gone = PAGES_PER_MIB.min(m.pages).min(d.pages);
    let dropped = advise(&m, gone, MADV_DONTNEED).and_then(|()| advise(&d, gone, MADV_DONTNEED));
    let revealed = (
        (0..gone)
            .filter(|&p| !holds(&m, p, &|p, i| word(MEMFD_SEED, p, i)))
            .count(),
        (0..gone).filter(|&p| !holds(&d, p, &disk_word)).count(),
    );
    let kept = (
        (gone..m.pages)
            .filter(|&p| !holds(&m, p, &|p, i| word(MEMFD_PRIVATE, p, i)))
            .count(),
        (gone..d.pages)
            .step_by(SAMPLE_STEP)
            .filter(|&p| !holds(&d, p, &|p, i| word(DISK_PRIVATE, p, i)))
            .count(),
    );
    checks.check(
        "dontneed_reveals_file",
        dropped.is_ok() && revealed == (0, 0) && kept == (0, 0),
        format_args!("{dropped:?}, not the file's {revealed:?}, written lost {kept:?}"),
    );
    // With the disk mapping gone, swapoff brings the rest back.
    d.unmap();
    let off = swapoff(c"/dev/vda");
    let swap_kb = status_kb("VmSwap").unwrap_or(u64::MAX);
    let bad = (gone..m.pages)
        .filter(|&p| !holds(&m, p, &|p, i| word(MEMFD_PRIVATE, p, i)))
        .count();
    checks.check(
        "swapoff",
        off.is_ok() && swap_kb == 0 && bad == 0,
        format_args!("{off:?}, VmSwap {swap_kb} kB, bad pages {bad}"),
    );
    let on = swapon(c"/dev/vda", 0);
    checks.check("swapon_again", on.is_ok(), format_args!("{on:?}"));
    m.unmap();
    let _ = close(memfd);
    let _ = close(disk);
    checks.finish()
}
