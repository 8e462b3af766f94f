//! `swapfiletest`: swap to a file on an ext4 disk, beside a swap partition. Needs the
//! partition (`--swap MIB`, on at boot) and a writable ext4 disk at `/mnt` (`--disk-rw
//! IMAGE` from `tools/mkext4.sh --swapfile-mib N`) holding `swapfile` and
//! `swaphole.bin`; runs as root.
//!
//! - The gate: a restricted process gets EPERM from swapon and swapoff of the file.
//! - Refusals: a swap file with holes and a file without a swap header are EINVAL, a
//!   missing file ENOENT; swapon of the active file EBUSY, swapoff of a file that is
//!   no area EINVAL.
//! - `/proc/swaps` lists the file with Type `file`, its size and priority, beside the
//!   partition.
//! - Priorities: with the file above the partition, MADV_PAGEOUT fills the file first;
//!   a fill past RAM and the file's size then spills onto the partition, and every
//!   byte reads back.
//! - swapoff of the file with half of it in use brings each page back (the area
//!   leaves `/proc/swaps`), and every byte verifies; swapon
//!   without a priority (the next default one, below the partition's) then leaves the
//!   file unused by a pageout.
//!
//! `--boot-check DEV` instead: only that the partition DEV was turned on at boot
//! (`/proc/swaps`) and takes a pageout that reads back (the `--rootfs` boot).
//!
//! Runs on Linux too (as root, the anchor's `--disk-rw`; the restricted-token checks
//! are Peios-only).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;
use peios_bins::files::{meminfo_kb, read_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::swap::{swapoff, swapon};

use peios_bins::pattern::Region;

peios_rt::main!(main);

const SWAP_FLAG_PREFER: u32 = 0x8000;

/// The `/proc/swaps` line of `name`: (type, size kB, used kB, priority).
fn swaps_entry(name: &str) -> Option<(String, u64, u64, i64)> {
    let text = read_file("/proc/swaps").ok()?;
    text.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        if f.next()? != name {
            return None;
        }
        let kind = String::from(f.next()?);
        let size = f.next()?.parse().ok()?;
        let used = f.next()?.parse().ok()?;
        let prio = f.next()?.parse().ok()?;
        Some((kind, size, used, prio))
    })
}

fn used_kb(name: &str) -> u64 {
    swaps_entry(name).map_or(0, |e| e.2)
}

/// Waits (up to 10 s) until `name`'s Used reaches `kb`.
fn await_used(name: &str, kb: u64) -> u64 {
    for _ in 0..1000 {
        let used = used_kb(name);
        if used >= kb {
            return used;
        }
        peios_rt::time::sleep_ms(10);
    }
    used_kb(name)
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

fn c(v: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(v).unwrap_or(c"")
}

/// `--boot-check`: `part` is on, and a pageout to it reads back.
fn boot_check(mut checks: Checks, part: &str) -> i32 {
    let listed = swaps_entry(part);
    checks.check(
        "boot_swapon",
        listed
            .as_ref()
            .is_some_and(|e| e.0 == "partition" && e.1 > 0),
        format_args!(
            "/proc/swaps:\n{}",
            read_file("/proc/swaps").unwrap_or_default().trim_end()
        ),
    );
    match Region::new(256) {
        Ok(r) => {
            let before = used_kb(part);
            r.fill(11, 0, 1);
            let advised = r.page_out();
            let used = await_used(part, before + 1024);
            checks.check(
                "boot_pageout",
                advised.is_ok() && used >= before + 1024 && r.mismatches(11, 0, 1) == 0,
                format_args!("madvise {advised:?}: Used {before} -> {used} kB"),
            );
            r.unmap();
        }
        Err(e) => {
            checks.check("boot_pageout", false, format_args!("map: {e}"));
        }
    }
    checks.finish()
}

fn main(args: &peios_rt::Args) -> i32 {
    let checks = Checks::new("swapfiletest");
    if let Some(part) = args.opt("--boot-check") {
        return boot_check(checks, part);
    }
    let mut checks = checks;
    let dir = args.opt("--dir").unwrap_or("/mnt");
    let part = args.opt("--dev").unwrap_or("/dev/vda");
    let file = alloc::format!("{dir}/swapfile");
    let file_c = cstr(&file);

    let denied = in_restricted_child(|| {
        let on = swapon(c(&cstr(&alloc::format!("{dir}/swapfile"))), 0);
        let off = swapoff(c(&cstr(part)));
        match (on, off) {
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
    let hole = cstr(&alloc::format!("{dir}/swaphole.bin"));
    checks.expect_errno("holes_einval", swapon(c(&hole), 0), Errno::EINVAL);
    let no_header = cstr(&alloc::format!("{dir}/big.bin"));
    checks.expect_errno("no_header_einval", swapon(c(&no_header), 0), Errno::EINVAL);
    let missing = cstr(&alloc::format!("{dir}/no-such-file"));
    checks.expect_errno("missing_enoent", swapon(c(&missing), 0), Errno::ENOENT);

    // On above the partition.
    let on = swapon(c(&file_c), SWAP_FLAG_PREFER | 10);
    let entry = swaps_entry(&file);
    let part_entry = swaps_entry(part);
    let file_kb = entry.as_ref().map_or(0, |e| e.1);
    checks.check(
        "swapon_file",
        on.is_ok()
            && entry.as_ref().is_some_and(|(kind, size, used, prio)| {
                kind == "file" && *size > 0 && *used == 0 && *prio == 10
            })
            && part_entry.as_ref().is_some_and(|e| e.0 == "partition"),
        format_args!(
            "swapon {on:?}; /proc/swaps:\n{}",
            read_file("/proc/swaps").unwrap_or_default().trim_end()
        ),
    );
    if on.is_err() {
        return checks.finish();
    }
    checks.expect_errno("swapon_busy", swapon(c(&file_c), 0), Errno::EBUSY);
    checks.expect_errno("swapoff_not_area", swapoff(c(&no_header)), Errno::EINVAL);

    // A pageout smaller than the file goes to the file alone.
    let part_before = used_kb(part);
    let small_pages = (file_kb as usize / 4 / 2).max(1);
    match Region::new(small_pages) {
        Ok(r) => {
            r.fill(3, 0, 1);
            let advised = r.page_out();
            let used = await_used(&file, (small_pages * 4) as u64);
            checks.check(
                "priority_file_first",
                advised.is_ok() && used >= (small_pages * 4) as u64 && used_kb(part) <= part_before,
                format_args!(
                    "madvise {advised:?}: file Used {used} kB for {} kB paged out, partition {} -> {} kB",
                    small_pages * 4,
                    part_before,
                    used_kb(part)
                ),
            );
            let bad = r.mismatches(3, 0, 1);
            checks.check(
                "file_reads_back",
                bad == 0,
                format_args!("{bad} of {small_pages} pages differ"),
            );
            r.unmap();
        }
        Err(e) => {
            checks.check("priority_file_first", false, format_args!("map: {e}"));
        }
    }

    // Past RAM and the file: the file fills, the rest spills onto the partition.
    let mem_kb = meminfo_kb("MemTotal").unwrap_or(0);
    let fill_pages = ((mem_kb + file_kb) / 4) as usize;
    let region = match Region::new(fill_pages) {
        Ok(r) => r,
        Err(e) => {
            checks.check("fill", false, format_args!("{fill_pages} pages: {e}"));
            return checks.finish();
        }
    };
    let part_before = used_kb(part);
    region.fill(9, 0, 1);
    let file_used = used_kb(&file);
    let part_used = used_kb(part);
    checks.check(
        "spill_to_partition",
        file_used + 1024 >= file_kb && part_used > part_before,
        format_args!(
            "after {} kB: file Used {file_used} of {file_kb} kB, partition Used {part_before} -> {part_used} kB",
            fill_pages * 4
        ),
    );
    let bad = region.mismatches(9, 0, 1);
    checks.check(
        "fill_reads_back",
        bad == 0,
        format_args!("{bad} of {fill_pages} pages differ"),
    );

    region.unmap();

    // swapoff with the file in use: every page comes back.
    let back_pages = (file_kb as usize / 4 / 2).max(1);
    match Region::new(back_pages) {
        Ok(r) => {
            r.fill(13, 0, 1);
            let advised = r.page_out();
            let held = await_used(&file, (back_pages * 4) as u64);
            let off = swapoff(c(&file_c));
            let gone = swaps_entry(&file).is_none();
            checks.check(
                "swapoff_file",
                advised.is_ok() && held >= (back_pages * 4) as u64 && off.is_ok() && gone,
                format_args!(
                    "madvise {advised:?}: file held {held} kB; swapoff {off:?}; listed after: {}",
                    !gone
                ),
            );
            let bad = r.mismatches(13, 0, 1);
            checks.check(
                "swapoff_reads_back",
                bad == 0,
                format_args!("{bad} of {back_pages} pages differ after swapoff"),
            );
            r.unmap();
        }
        Err(e) => {
            checks.check("swapoff_file", false, format_args!("map: {e}"));
        }
    }

    // Below the partition (no priority given: the next default one, below the
    // partition's): a pageout leaves the file unused.
    let low = swapon(c(&file_c), 0);
    let below = matches!(
        (swaps_entry(&file), swaps_entry(part)),
        (Some(f), Some(p)) if f.3 < p.3
    );
    let part_before = used_kb(part);
    match Region::new(256) {
        Ok(r) if low.is_ok() => {
            r.fill(5, 0, 1);
            let advised = r.page_out();
            let part_after = await_used(part, part_before + 1024);
            checks.check(
                "priority_partition_first",
                below && advised.is_ok() && part_after >= part_before + 1024 && used_kb(&file) == 0,
                format_args!(
                    "file at priority {:?}, partition at {:?}: partition {part_before} -> {part_after} kB, file Used {} kB",
                    swaps_entry(&file).map(|e| e.3),
                    swaps_entry(part).map(|e| e.3),
                    used_kb(&file)
                ),
            );
            checks.check(
                "partition_reads_back",
                r.mismatches(5, 0, 1) == 0,
                format_args!("256 pages"),
            );
            r.unmap();
        }
        got => {
            checks.check(
                "priority_partition_first",
                false,
                format_args!("swapon {low:?}, map {:?}", got.map(|_| ())),
            );
        }
    }
    let denied_off =
        in_restricted_child(
            || match swapoff(c(&cstr(&alloc::format!("{dir}/swapfile")))) {
                Err(Errno::EPERM) => 0,
                _ => 1,
            },
        );
    if !matches!(denied_off, Ok(WaitStatus::Exited(99))) {
        checks.check(
            "restricted_swapoff_eperm",
            matches!(denied_off, Ok(WaitStatus::Exited(0))),
            format_args!("restricted child: {:?}", denied_off.map(|s| s.code())),
        );
    }
    let off = swapoff(c(&file_c));
    checks.check(
        "swapoff_empty",
        off.is_ok() && swaps_entry(&file).is_none(),
        format_args!("swapoff {off:?}"),
    );
    checks.finish()
}
