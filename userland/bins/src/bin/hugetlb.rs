//! `hugetlb`: `MAP_HUGETLB` mappings over the 2 MiB pool, as on Linux: with
//! `nr_hugepages` = 4, an mmap of two pages reserves them (`HugePages_Rsvd` 2,
//! `HugePages_Free` 4), a write faults one in (Free 3, Rsvd 1) with its bytes
//! kept, a mapping the unreserved pages cannot cover is `ENOMEM`, an unaligned
//! munmap inside it `EINVAL`, `MAP_HUGE_1GB` with an empty 1 GiB pool `ENOMEM`,
//! munmap gives everything back; a `MAP_NORESERVE` mapping larger than the pool
//! kills its toucher with `SIGBUS` on the first page past it; a shared hugetlb
//! mapping is shared with a fork child. Where node 1 has a free GiB (a 4 GiB
//! guest), a shared 1 GiB mapping is made, written at both ends and by a fork
//! child, and given back. The pool sizes are put back at the end.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{meminfo_kb, read_file, write_file};
use peios_bins::{in_child, Checks};
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};

peios_rt::main!(main);

const HUGE: usize = 2 << 20;
const NR: &str = "/proc/sys/vm/nr_hugepages";
/// `MAP_HUGE_1GB`.
const MAP_HUGE_1GB: u32 = 30 << 26;

fn hugetlb_map(pages: usize, flags: MapFlags) -> Result<*mut u8, Errno> {
    // SAFETY: no MAP_FIXED: a fresh range nothing else uses.
    unsafe {
        mmap(
            0,
            pages * HUGE,
            Prot::RW,
            flags | MapFlags::ANONYMOUS | MapFlags::HUGETLB,
            -1,
            0,
        )
    }
}

/// (HugePages_Total, HugePages_Free, HugePages_Rsvd).
fn pool() -> (u64, u64, u64) {
    let n = |name| meminfo_kb_raw(name).unwrap_or(u64::MAX);
    (
        n("HugePages_Total"),
        n("HugePages_Free"),
        n("HugePages_Rsvd"),
    )
}

/// A count field of /proc/meminfo (no kB unit).
fn meminfo_kb_raw(name: &str) -> Option<u64> {
    let text = read_file("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

fn run(c: &mut Checks) -> Result<(), Errno> {
    c.check(
        "pool_filled",
        pool() == (4, 4, 0),
        format_args!("{:?}", pool()),
    );
    let a = hugetlb_map(2, MapFlags::PRIVATE)?;
    c.check(
        "mmap_reserves",
        (a as usize).is_multiple_of(HUGE) && pool() == (4, 4, 2),
        format_args!("at {:p}, pool {:?}", a, pool()),
    );
    // SAFETY: inside our own fresh mapping.
    unsafe {
        a.add(HUGE + 123).write_volatile(0x5a);
    }
    // SAFETY: as above.
    let back = unsafe {
        (
            a.add(HUGE + 123).read_volatile(),
            a.add(HUGE + 7).read_volatile(),
        )
    };
    c.check(
        "fault_takes_reserved_page",
        pool() == (4, 3, 1) && back == (0x5a, 0),
        format_args!("pool {:?}, bytes {:?}", pool(), back),
    );
    c.expect_errno(
        "mmap_past_unreserved_enomem",
        hugetlb_map(3, MapFlags::PRIVATE),
        Errno::ENOMEM,
    );
    // SAFETY: a page inside our mapping; refused anyway.
    c.expect_errno(
        "unaligned_munmap_einval",
        unsafe { munmap(a.add(4096), 4096) },
        Errno::EINVAL,
    );
    let big = hugetlb_map(
        1,
        MapFlags::PRIVATE | MapFlags::from_bits_retain(MAP_HUGE_1GB),
    );
    c.check(
        "no_1g_page_enomem",
        matches!(big, Err(Errno::ENOMEM)),
        format_args!("{:?}", big.map(|p| p as usize)),
    );
    // SAFETY: our own mapping.
    unsafe { munmap(a, 2 * HUGE)? };
    c.check(
        "munmap_gives_back",
        pool() == (4, 4, 0),
        format_args!("{:?}", pool()),
    );

    // NORESERVE: mapping more than the pool works; touching past it is SIGBUS.
    let n = hugetlb_map(5, MapFlags::PRIVATE | MapFlags::NORESERVE)?;
    let rsvd = pool().2;
    let child = in_child(|| {
        for i in 0..5 {
            // SAFETY: inside the NORESERVE mapping; the fifth page has no page.
            unsafe { n.add(i * HUGE).write_volatile(1) };
        }
        0
    });
    c.check(
        "noreserve_overrun_sigbus",
        rsvd == 0 && matches!(child, Ok(WaitStatus::Signaled { signal: 7, .. })),
        format_args!("Rsvd {rsvd}, child {child:?}"),
    );
    c.check(
        "child_pages_back",
        pool() == (4, 4, 0),
        format_args!("{:?}", pool()),
    );
    // SAFETY: our own mapping.
    unsafe { munmap(n, 5 * HUGE)? };

    // Shared with a fork child.
    let s = hugetlb_map(1, MapFlags::SHARED)?;
    // SAFETY: our own mapping.
    unsafe { s.write_volatile(1) };
    let child = in_child(|| {
        // SAFETY: the inherited shared mapping.
        unsafe {
            let saw = s.read_volatile();
            s.add(HUGE - 1).write_volatile(9);
            if saw == 1 {
                0
            } else {
                1
            }
        }
    });
    // SAFETY: our own mapping.
    let seen = unsafe { s.add(HUGE - 1).read_volatile() };
    c.check(
        "shared_across_fork",
        matches!(child, Ok(WaitStatus::Exited(0))) && seen == 9 && pool() == (4, 3, 0),
        format_args!("child {child:?}, parent sees {seen}, pool {:?}", pool()),
    );
    // SAFETY: our own mapping.
    unsafe { munmap(s, HUGE)? };
    c.check(
        "all_back",
        pool() == (4, 4, 0),
        format_args!("{:?}", pool()),
    );
    gigantic(c)
}

const GIB: usize = 1 << 30;
const GIB_POOL: &str = "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages";
const GIB_FREE: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages";

fn num(path: &str) -> Option<u64> {
    read_file(path).ok()?.trim().parse().ok()
}

/// A 1 GiB page, when node 1 has a whole free GiB for its pool (a 4 GiB guest).
fn gigantic(c: &mut Checks) -> Result<(), Errno> {
    if write_file(GIB_POOL, "1").is_err() || num(GIB_POOL) != Some(1) {
        println!("hugetlb: no free GiB on node 1: 1 GiB mapping not tried");
        let _ = write_file(GIB_POOL, "0");
        return Ok(());
    }
    let flags = MapFlags::SHARED | MapFlags::from_bits_retain(MAP_HUGE_1GB);
    // SAFETY: no MAP_FIXED: a fresh range.
    let g = unsafe {
        mmap(
            0,
            GIB,
            Prot::RW,
            flags | MapFlags::ANONYMOUS | MapFlags::HUGETLB,
            -1,
            0,
        )
    };
    let g = match g {
        Ok(g) => g,
        Err(e) => {
            c.check("gigantic_mapping", false, format_args!("mmap: {e}"));
            let _ = write_file(GIB_POOL, "0");
            return Ok(());
        }
    };
    // SAFETY: inside our own 1 GiB mapping.
    unsafe {
        g.add(5).write_volatile(3);
        g.add(GIB - 1).write_volatile(4);
    }
    let free_mapped = num(GIB_FREE);
    let child = in_child(|| {
        // SAFETY: the inherited shared mapping.
        unsafe { g.add(GIB / 2).write_volatile(5) };
        0
    });
    // SAFETY: as above.
    let seen = unsafe {
        (
            g.add(5).read_volatile(),
            g.add(GIB / 2).read_volatile(),
            g.add(GIB - 1).read_volatile(),
            g.add(GIB - 2).read_volatile(),
        )
    };
    // SAFETY: our own mapping.
    unsafe { munmap(g, GIB)? };
    let free_after = num(GIB_FREE);
    c.check(
        "gigantic_mapping",
        (g as usize).is_multiple_of(GIB)
            && free_mapped == Some(0)
            && seen == (3, 5, 4, 0)
            && matches!(child, Ok(WaitStatus::Exited(0)))
            && free_after == Some(1),
        format_args!(
            "at {:p}, free while mapped {free_mapped:?}, bytes {seen:?}, child {child:?}, free after {free_after:?}",
            g
        ),
    );
    let _ = write_file(GIB_POOL, "0");
    Ok(())
}

fn main(_args: &Args) -> i32 {
    let mut c = Checks::new("hugetlb");
    let old = read_file(NR).unwrap_or_else(|_| String::from("0"));
    let _ = meminfo_kb("MemFree");
    if let Err(e) = write_file(NR, "4") {
        c.check("set_nr_hugepages", false, format_args!("{e}"));
        return c.finish();
    }
    if let Err(e) = run(&mut c) {
        c.check("setup", false, format_args!("{e}"));
    }
    let _ = write_file(NR, old.trim());
    c.finish()
}
