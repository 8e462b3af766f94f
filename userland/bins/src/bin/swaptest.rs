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
use core::sync::atomic::{AtomicU32, Ordering};
use peios_bins::files::{meminfo_kb, read_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::mm::{madvise, mincore, munmap, MADV_COLD, MADV_HUGEPAGE, MADV_PAGEOUT};
use peios_rt::sys::swap::{swapoff, swapon};

use peios_bins::pattern::{word, Region};

peios_rt::main!(main);

const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;

fn vmstat(name: &str) -> u64 {
    peios_bins::files::vmstat(name).unwrap_or(0)
}

fn vm_swap_kb() -> u64 {
    peios_bins::files::status_kb("VmSwap").unwrap_or(0)
}

/// Reads completed on disk `name` (`/proc/diskstats`' first counter).
fn disk_reads(name: &str) -> u64 {
    read_file("/proc/diskstats")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split_whitespace().skip(2);
                (f.next()? == name).then(|| f.next()?.parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// Waits (up to 5 s) until `/proc/vmstat`'s `name` reaches `target`.
fn await_vmstat(name: &str, target: u64) -> u64 {
    for _ in 0..500 {
        let v = vmstat(name);
        if v >= target {
            return v;
        }
        peios_rt::time::sleep_ms(10);
    }
    vmstat(name)
}

/// MADV_PAGEOUT and MADV_COLD, swap readahead, and one device read for two threads
/// faulting on one swapped-out page.
fn pageout_checks(checks: &mut Checks, disk: &str) {
    const PAGES: usize = 64;
    let Ok(r) = Region::new(PAGES) else {
        checks.check(
            "pageout",
            false,
            format_args!("no memory for {} pages", PAGES),
        );
        return;
    };
    r.fill(7, 0, 1);
    let swap_before = vm_swap_kb();
    let out_before = vmstat("pswpout");
    let res = unsafe { madvise(r.base as *mut u8, PAGES * PAGE, MADV_PAGEOUT) };
    let swap_after = vm_swap_kb();
    checks.check(
        "pageout",
        res.is_ok() && swap_after >= swap_before + (PAGES * 4) as u64,
        format_args!(
            "madvise {:?}, VmSwap {} -> {} kB",
            res, swap_before, swap_after
        ),
    );
    let out_after = await_vmstat("pswpout", out_before + PAGES as u64);
    checks.check(
        "pageout_written",
        out_after >= out_before + PAGES as u64,
        format_args!("pswpout {} -> {}", out_before, out_after),
    );
    let ra_before = vmstat("swap_ra");
    let bad = r.mismatches(7, 0, 1);
    let ra = vmstat("swap_ra") - ra_before;
    let ra_hit = vmstat("swap_ra_hit");
    checks.check(
        "pageout_reads_back",
        bad == 0 && vm_swap_kb() <= swap_before,
        format_args!("{} mismatched pages, VmSwap {} kB", bad, vm_swap_kb()),
    );
    checks.check(
        "swap_readahead",
        ra > 0 && ra_hit > 0,
        format_args!(
            "a sequential read-back read {} pages ahead (swap_ra_hit {})",
            ra, ra_hit
        ),
    );
    let cold = unsafe { madvise(r.base as *mut u8, PAGES * PAGE, MADV_COLD) };
    checks.check(
        "cold",
        cold.is_ok() && r.mismatches(7, 0, 1) == 0,
        format_args!("MADV_COLD {:?}", cold),
    );

    // One page out, no readahead: two threads touch it at once, one device read.
    let cluster = read_file("/proc/sys/vm/page-cluster").unwrap_or_default();
    let _ = peios_bins::files::write_file("/proc/sys/vm/page-cluster", "0");
    let out_before = vmstat("pswpout");
    let _ = unsafe { madvise(r.base as *mut u8, PAGE, MADV_PAGEOUT) };
    await_vmstat("pswpout", out_before + 1);
    // The write freed the frame: the page is only on the disk now.
    let (reads_before, in_before) = (disk_reads(disk), vmstat("pswpin"));
    static GO: AtomicU32 = AtomicU32::new(0);
    let base = r.base;
    let reader = move || {
        while GO.load(Ordering::Acquire) == 0 {
            core::hint::spin_loop();
        }
        unsafe { (base as *const u64).read_volatile() }
    };
    let t1 = peios_rt::thread::spawn(reader);
    let t2 = peios_rt::thread::spawn(reader);
    GO.store(1, Ordering::Release);
    let got: Vec<Option<u64>> = [t1, t2]
        .into_iter()
        .map(|t| t.ok().map(|h| h.join()))
        .collect();
    let (reads, ins) = (
        disk_reads(disk) - reads_before,
        vmstat("pswpin") - in_before,
    );
    let _ = peios_bins::files::write_file("/proc/sys/vm/page-cluster", cluster.trim());
    checks.check(
        "two_faults_one_read",
        got.iter().all(|v| *v == Some(word(7, 0, 0))) && reads == 1 && ins == 1,
        format_args!("values {:?}, {} device reads, pswpin +{}", got, reads, ins),
    );
    r.unmap();
}

/// Transparent huge pages go to swap too: a 4 MiB MADV_HUGEPAGE region faults in as
/// huge pages (AnonHugePages), MADV_PAGEOUT splits them and writes all 1024 pages
/// (pswpout), and every word reads back.
fn thp_checks(checks: &mut Checks) {
    const HUGE: usize = 2 << 20;
    const PAGES: usize = 2 * HUGE / PAGE;
    let Ok(raw) = peios_rt::sys::mm::mmap_anon(3 * HUGE, peios_rt::sys::mm::Prot::RW) else {
        checks.check("thp_pageout", false, format_args!("no memory"));
        return;
    };
    let base = (raw as usize).next_multiple_of(HUGE);
    let advised = unsafe { madvise(base as *mut u8, 2 * HUGE, MADV_HUGEPAGE) };
    let huge_before = meminfo_kb("AnonHugePages").unwrap_or(0);
    let fill = |p: usize| {
        for i in 0..PAGE / 8 {
            // SAFETY: inside the region this test mapped.
            unsafe { ((base + p * PAGE + i * 8) as *mut u64).write_volatile(word(13, p, i)) };
        }
    };
    (0..PAGES).for_each(fill);
    let huge_kb = meminfo_kb("AnonHugePages")
        .unwrap_or(0)
        .saturating_sub(huge_before);
    let (out_before, split_before) = (vmstat("pswpout"), vmstat("thp_split_pmd"));
    let res = unsafe { madvise(base as *mut u8, 2 * HUGE, MADV_PAGEOUT) };
    let out = await_vmstat("pswpout", out_before + PAGES as u64) - out_before;
    let splits = vmstat("thp_split_pmd") - split_before;
    checks.check(
        "thp_pageout",
        advised.is_ok() && huge_kb >= 4096 && res.is_ok() && out >= PAGES as u64,
        format_args!(
            "MADV_HUGEPAGE {:?}: AnonHugePages +{} kB; MADV_PAGEOUT {:?}: pswpout +{}, thp_split_pmd +{}",
            advised, huge_kb, res, out, splits
        ),
    );
    let bad = (0..PAGES)
        .filter(|&p| {
            // SAFETY: as above.
            (0..PAGE / 8).any(|i| unsafe { ((base + p * PAGE + i * 8) as *const u64).read_volatile() } != word(13, p, i))
        })
        .count();
    checks.check(
        "thp_reads_back",
        bad == 0,
        format_args!("{} of {} pages differ", bad, PAGES),
    );
    let _ = unsafe { munmap(raw, 3 * HUGE) };
}

/// Pages of `r` that mincore says are resident.
fn resident(r: &Region) -> usize {
    let mut vec = vec![0u8; r.pages];
    match mincore(r.base, r.pages * PAGE, &mut vec) {
        Ok(()) => vec.iter().filter(|&&b| b & 1 != 0).count(),
        Err(_) => usize::MAX,
    }
}

/// DAMOS pageout through the registry: with one kdamond watching this process and
/// `mm.damon.pageout_min_age` at 3 aggregations, a region left alone goes to swap
/// while a region a loop keeps reading stays resident; both read back intact.
fn damos_checks(checks: &mut Checks) {
    use peios_bins::files::write_file;
    const COLD: usize = 128;
    const HOT: usize = 16;
    let (Ok(cold), Ok(hot)) = (Region::new(COLD), Region::new(HOT)) else {
        checks.check("damos_pageout", false, format_args!("no memory"));
        return;
    };
    cold.fill(11, 0, 1);
    hot.fill(12, 0, 1);
    // Its own VMA (different flags), so no DAMON region straddles hot and cold pages
    // (the two mappings may be adjacent and would merge into one): a straddling region
    // sampled on its cold pages once took 4 hot pages out with it.
    // SAFETY: advice on our own mapping.
    let _ = unsafe {
        madvise(
            hot.base as *mut u8,
            HOT * PAGE,
            peios_rt::sys::mm::MADV_NOHUGEPAGE,
        )
    };
    let admin = "/sys/kernel/mm/damon/admin/kdamonds";
    let setup = write_file(&format!("{}/nr_kdamonds", admin), "1")
        .and_then(|_| {
            write_file(
                &format!("{}/0/contexts/0/targets/0/pid_target", admin),
                &format!("{}", peios_rt::sys::process::getpid()),
            )
        })
        // Unaccessed for 8 aggregations (0.8 s): a vCPU the host leaves unscheduled for
        // a few hundred ms must not make the hot region look cold (with 3, the swap
        // test failed on a host at load 12 now and then).
        .and_then(|_| write_file(&format!("{}/pageout_min_age", admin), "8"))
        .and_then(|_| write_file(&format!("{}/0/state", admin), "on"));
    let start = peios_rt::time::monotonic_ns() / 1_000_000;
    let mut sum = 0u64;
    let (mut cold_left, mut hot_left) = (resident(&cold), resident(&hot));
    while setup.is_ok() && (peios_rt::time::monotonic_ns() / 1_000_000) - start < 5000 {
        for _ in 0..50 {
            for p in 0..HOT {
                sum = sum.wrapping_add(unsafe { hot.page(p).read_volatile() });
            }
        }
        cold_left = resident(&cold);
        hot_left = resident(&hot);
        if cold_left <= COLD / 8 {
            break;
        }
    }
    let _ = write_file(&format!("{}/0/state", admin), "off");
    let _ = write_file(&format!("{}/pageout_min_age", admin), "0");
    let _ = write_file(&format!("{}/nr_kdamonds", admin), "0");
    checks.check(
        "damos_pageout",
        setup.is_ok() && cold_left <= COLD / 8 && hot_left == HOT && vmstat("damos_pageout") > 0,
        format_args!(
            "setup {:?}: cold {} of {} resident, hot {} of {} after {} ms (damos_pageout {}, {:x})",
            setup,
            cold_left,
            COLD,
            hot_left,
            HOT,
            (peios_rt::time::monotonic_ns() / 1_000_000) - start,
            vmstat("damos_pageout"),
            sum & 0xf
        ),
    );
    let (bad_cold, bad_hot) = (cold.mismatches(11, 0, 1), hot.mismatches(12, 0, 1));
    checks.check(
        "damos_reads_back",
        bad_cold == 0 && bad_hot == 0,
        format_args!("{} cold, {} hot mismatched pages", bad_cold, bad_hot),
    );
    cold.unmap();
    hot.unmap();
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

    if total_kb > 0 {
        pageout_checks(&mut checks, dev.rsplit('/').next().unwrap_or("vda"));
        thp_checks(&mut checks);
        damos_checks(&mut checks);
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

    // Across fork: the child sees the same data, its writes stay its own. The first
    // quarter of the region (written first, so mostly in swap now) keeps the traffic
    // of two processes' copies within the suite's time.
    let head = Region {
        pages: region.pages / 4,
        ..region
    };
    let in_before_fork = vmstat("pswpin");
    let child = in_child(|| {
        let same = head.mismatches(1, 0, 1);
        head.fill(2, 0, 2);
        let odd = head.mismatches(1, 1, 2);
        let even = head.mismatches(2, 0, 2);
        if same == 0 && odd == 0 && even == 0 {
            0
        } else {
            println!("swaptest: child: {} {} {} pages differ", same, odd, even);
            1
        }
    });
    let parent_bad = head.mismatches(1, 0, 1);
    let fork_swapins = vmstat("pswpin") - in_before_fork;
    checks.check(
        "fork",
        matches!(child, Ok(WaitStatus::Exited(0))) && parent_bad == 0 && fork_swapins > 0,
        format_args!(
            "child {:?}, {} parent pages differ, pswpin +{} over {} pages",
            child.map(|s| s.code()),
            parent_bad,
            fork_swapins,
            head.pages
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
        // Whatever of the kept half reclaim left resident goes out now (which pages the
        // fill pushed out depends on where the clock hand stood), so swapoff has nearly
        // all of it to bring back.
        // SAFETY: the kept half is mapped and ours.
        let _ = unsafe { madvise(keep.base as *mut u8, keep.pages * PAGE, MADV_PAGEOUT) };
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
                && out_kb * 4 > (keep.pages * 4 * 3) as u64
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
