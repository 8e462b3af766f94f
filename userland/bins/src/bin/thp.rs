//! `thp`: transparent huge pages as a program sees them. With `enabled` = madvise, a
//! write into a 2 MiB-aligned `MADV_HUGEPAGE` region maps a huge page (`AnonHugePages`
//! in meminfo and in the region's smaps grow by 2048 kB, `thp_fault_alloc` in
//! /proc/vmstat by one); mprotect of one 4 KiB page splits it (`thp_split_pmd`) with
//! every byte kept; a partial munmap splits it too; after fork both sides keep their
//! own data through copy-on-write; `MADV_NOHUGEPAGE` (even with `always`) and
//! `never` give no huge page, `always` gives one without advice; khugepaged
//! collapses a region populated with 4 KiB pages within a few scan periods
//! (`thp_collapse_alloc`). A restricted process may not change the knobs. The
//! knobs are put back at the end. Runs on Linux too (as root; the restricted check
//! is Peios-only).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{meminfo_kb, read_file, write_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::mm::{
    madvise, mmap_anon, mprotect, munmap, Prot, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
};
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

const HUGE: usize = 2 << 20;
const PAGE: usize = 4096;
const ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const SCAN_SLEEP: &str = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs";

/// `slots` 2 MiB-aligned slots of fresh private anonymous memory (the unaligned
/// ends of a larger mapping are unmapped), with `advice` if any.
fn region(slots: usize, advice: Option<i32>) -> Result<*mut u8, Errno> {
    let len = (slots + 1) * HUGE;
    let raw = mmap_anon(len, Prot::RW)?;
    let start = (raw as usize).next_multiple_of(HUGE);
    let end = start + slots * HUGE;
    // SAFETY: both pieces are parts of our own fresh mapping that nothing uses.
    unsafe {
        if start > raw as usize {
            munmap(raw, start - raw as usize)?;
        }
        if raw as usize + len > end {
            munmap(end as *mut u8, raw as usize + len - end)?;
        }
    }
    let p = start as *mut u8;
    if let Some(advice) = advice {
        // SAFETY: advice on our own mapping.
        unsafe { madvise(p, slots * HUGE, advice)? };
    }
    Ok(p)
}

use peios_bins::files::vmstat;

/// `field` (kB) of the smaps block of the VMA starting at `start`.
fn smaps_kb(start: *mut u8, field: &str) -> Option<u64> {
    peios_bins::files::smaps_kb(start as usize, field)
}

/// Writes a byte identifying each page (and `salt`) at two offsets of every page.
fn fill(p: *mut u8, len: usize, salt: u8) {
    for page in 0..len / PAGE {
        let v = (page as u8).wrapping_mul(7) ^ salt;
        // SAFETY: inside the caller's writable mapping.
        unsafe {
            p.add(page * PAGE + 17).write_volatile(v);
            p.add(page * PAGE + PAGE - 1).write_volatile(!v);
        }
    }
}

/// The first page (index) whose bytes differ from `fill`'s, skipping `skip`.
fn first_bad(p: *mut u8, len: usize, salt: u8, skip: &[usize]) -> Option<usize> {
    (0..len / PAGE).filter(|i| !skip.contains(i)).find(|&page| {
        let v = (page as u8).wrapping_mul(7) ^ salt;
        // SAFETY: inside the caller's readable mapping.
        unsafe {
            p.add(page * PAGE + 17).read_volatile() != v
                || p.add(page * PAGE + PAGE - 1).read_volatile() != !v
        }
    })
}

fn set(path: &str, value: &str) -> bool {
    write_file(path, value).is_ok()
}

/// The selected choice of a `[x] y z` file.
fn selected(path: &str) -> Option<String> {
    let text = read_file(path).ok()?;
    let start = text.find('[')? + 1;
    let end = text[start..].find(']')? + start;
    Some(String::from(&text[start..end]))
}

fn faults_huge(c: &mut Checks) -> Result<(), Errno> {
    set(ENABLED, "madvise");
    let anon0 = meminfo_kb("AnonHugePages").unwrap_or(0);
    let alloc0 = vmstat("thp_fault_alloc").unwrap_or(0);
    let p = region(1, Some(MADV_HUGEPAGE))?;
    // SAFETY: our own writable mapping.
    unsafe { p.add(5 * PAGE + 3).write_volatile(1) };
    let anon1 = meminfo_kb("AnonHugePages").unwrap_or(0);
    c.check(
        "fault_maps_huge_page",
        anon1 >= anon0 + 2048,
        format_args!("AnonHugePages {anon0} -> {anon1} kB"),
    );
    let smaps = smaps_kb(p, "AnonHugePages");
    c.check(
        "smaps_anon_huge",
        smaps == Some(2048),
        format_args!("{smaps:?} kB"),
    );
    let rss = smaps_kb(p, "Rss");
    c.check("smaps_rss", rss == Some(2048), format_args!("{rss:?} kB"));
    let alloc1 = vmstat("thp_fault_alloc").unwrap_or(0);
    c.check(
        "vmstat_fault_alloc",
        alloc1 > alloc0,
        format_args!("thp_fault_alloc {alloc0} -> {alloc1}"),
    );
    // Split by an mprotect of one page: every byte stays.
    fill(p, HUGE, 0x5a);
    let split0 = vmstat("thp_split_pmd").unwrap_or(0);
    // SAFETY: one page of our own mapping.
    unsafe { mprotect(p.add(3 * PAGE), PAGE, Prot::READ)? };
    let split1 = vmstat("thp_split_pmd").unwrap_or(0);
    c.check(
        "mprotect_splits",
        split1 > split0 && smaps_kb(p, "AnonHugePages") == Some(0),
        format_args!("thp_split_pmd {split0} -> {split1}"),
    );
    let bad = first_bad(p, HUGE, 0x5a, &[]);
    c.check(
        "split_keeps_data",
        bad.is_none(),
        format_args!("first bad page {bad:?}"),
    );
    // SAFETY: our own mapping.
    unsafe { munmap(p, HUGE)? };

    // A partial munmap splits too.
    let q = region(1, Some(MADV_HUGEPAGE))?;
    fill(q, HUGE, 0x33);
    let huge = smaps_kb(q, "AnonHugePages");
    // SAFETY: two pages of our own mapping.
    unsafe { munmap(q.add(100 * PAGE), 2 * PAGE)? };
    let bad = first_bad(q, 100 * PAGE, 0x33, &[]).or_else(|| first_bad(q, HUGE, 0x33, &[100, 101]));
    c.check(
        "partial_munmap_keeps_data",
        huge == Some(2048) && bad.is_none() && smaps_kb(q, "AnonHugePages") == Some(0),
        format_args!("huge before {huge:?} kB, first bad page {bad:?}"),
    );
    // SAFETY: our own mapping (the hole unmaps nothing).
    unsafe { munmap(q, HUGE)? };
    Ok(())
}

fn fork_cow(c: &mut Checks) -> Result<(), Errno> {
    let p = region(1, Some(MADV_HUGEPAGE))?;
    fill(p, HUGE, 0x11);
    let huge = smaps_kb(p, "AnonHugePages");
    let child = in_child(|| {
        let saw_parent = first_bad(p, HUGE, 0x11, &[]).is_none();
        fill(p, HUGE, 0x22);
        let own = first_bad(p, HUGE, 0x22, &[]).is_none();
        match (saw_parent, own) {
            (true, true) => 0,
            (false, _) => 1,
            _ => 2,
        }
    });
    c.check(
        "fork_child_sees_then_copies",
        huge == Some(2048) && matches!(child, Ok(WaitStatus::Exited(0))),
        format_args!("huge {huge:?} kB, child {child:?}"),
    );
    let bad = first_bad(p, HUGE, 0x11, &[]);
    c.check(
        "fork_parent_keeps_data",
        bad.is_none(),
        format_args!("first bad page {bad:?}"),
    );
    fill(p, HUGE, 0x44);
    let bad = first_bad(p, HUGE, 0x44, &[]);
    c.check(
        "fork_parent_writes_after",
        bad.is_none(),
        format_args!("first bad page {bad:?}"),
    );
    // SAFETY: our own mapping.
    unsafe { munmap(p, HUGE)? };
    Ok(())
}

fn modes(c: &mut Checks) -> Result<(), Errno> {
    set(ENABLED, "always");
    let p = region(1, Some(MADV_NOHUGEPAGE))?;
    fill(p, HUGE, 1);
    let got = smaps_kb(p, "AnonHugePages");
    c.check(
        "nohugepage_under_always",
        got == Some(0) && smaps_kb(p, "Rss") == Some(2048),
        format_args!("{got:?} kB"),
    );
    let q = region(1, None)?;
    fill(q, HUGE, 1);
    let got = smaps_kb(q, "AnonHugePages");
    c.check(
        "always_without_advice",
        got == Some(2048),
        format_args!("{got:?} kB"),
    );
    set(ENABLED, "never");
    let r = region(1, Some(MADV_HUGEPAGE))?;
    fill(r, HUGE, 1);
    let got = smaps_kb(r, "AnonHugePages");
    c.check(
        "never_gives_none",
        got == Some(0),
        format_args!("{got:?} kB"),
    );
    // SAFETY: our own mappings.
    unsafe {
        munmap(p, HUGE)?;
        munmap(q, HUGE)?;
        munmap(r, HUGE)?;
    }
    Ok(())
}

fn khugepaged(c: &mut Checks) -> Result<(), Errno> {
    set(ENABLED, "madvise");
    let old_sleep = read_file(SCAN_SLEEP).unwrap_or_else(|_| String::from("10000"));
    set(SCAN_SLEEP, "100");
    // Populated with 4 KiB pages first (no advice yet), then advised.
    let p = region(1, None)?;
    fill(p, HUGE, 0x77);
    let before = smaps_kb(p, "AnonHugePages");
    let collapse0 = vmstat("thp_collapse_alloc").unwrap_or(0);
    // SAFETY: advice on our own mapping.
    unsafe { madvise(p, HUGE, MADV_HUGEPAGE)? };
    let mut waited_ms = 0;
    let mut after = before;
    while waited_ms < 10_000 {
        sleep_ms(100);
        waited_ms += 100;
        after = smaps_kb(p, "AnonHugePages");
        if after == Some(2048) {
            break;
        }
    }
    let collapse1 = vmstat("thp_collapse_alloc").unwrap_or(0);
    c.check(
        "khugepaged_collapses",
        before == Some(0) && after == Some(2048) && collapse1 > collapse0,
        format_args!(
            "AnonHugePages {before:?} -> {after:?} kB after {waited_ms} ms, thp_collapse_alloc {collapse0} -> {collapse1}"
        ),
    );
    let bad = first_bad(p, HUGE, 0x77, &[]);
    c.check(
        "collapse_keeps_data",
        bad.is_none(),
        format_args!("first bad page {bad:?}"),
    );
    set(SCAN_SLEEP, old_sleep.trim());
    // SAFETY: our own mapping.
    unsafe { munmap(p, HUGE)? };
    Ok(())
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("thp");
    let original = selected(ENABLED).unwrap_or_else(|| String::from("madvise"));
    c.check(
        "enabled_readable",
        ["always", "madvise", "never"].contains(&original.as_str()),
        format_args!("{original}"),
    );
    for (name, step) in [
        (
            "faults",
            faults_huge as fn(&mut Checks) -> Result<(), Errno>,
        ),
        ("fork", fork_cow),
        ("modes", modes),
        ("khugepaged", khugepaged),
    ] {
        if let Err(e) = step(&mut c) {
            c.check(name, false, format_args!("setup failed: {e}"));
        }
    }
    set(ENABLED, &original);
    // Peios-only: the knobs belong to the administrator.
    if let Ok(status) = in_restricted_child(|| match write_file(ENABLED, "always") {
        Err(Errno::EACCES) => 0,
        _ => 1,
    }) {
        if status != WaitStatus::Exited(99) {
            c.check(
                "restricted_writer_refused",
                status == WaitStatus::Exited(0) && selected(ENABLED).as_deref() == Some(&original),
                format_args!("{status:?}"),
            );
        }
    }
    c.finish()
}
