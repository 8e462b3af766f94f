//! `tunables`: every registry knob through its Linux file. For each: the default reads
//! back; a valid write takes effect (read back, and for the knobs whose machinery exists,
//! the behaviour changes: max_map_count limits mappings, mmap_min_addr moves the lowest
//! mappable address, watermark_scale_factor moves the zoneinfo watermarks, the overcommit
//! knobs decide which mappings the commit limit refuses, the huge-page pools take and
//! return node memory, unprivileged_userfaultfd decides who may create a userfaultfd, KSM's
//! run merges equal pages and unmerges them, nr_kdamonds starts a monitor that tells a
//! read region from an idle one); an
//! invalid
//! value is EINVAL with the old value kept; a restricted process's write is refused
//! (EACCES). Values are restored afterwards. Peios-only (needs the restrict syscall and
//! the boot-time ksyncd value of vm.stat_interval = 3).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{meminfo_kb, read_file, try_open, write_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::WaitStatus;
use peios_rt::sys::fs::O_WRONLY;
use peios_rt::sys::mm::{mmap, mmap_anon, munmap, MapFlags, Prot};

peios_rt::main!(main);

/// path, default (None: machine-dependent), a valid value, what it reads back as, invalid values.
type Knob = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Every knob through its file.
const KNOBS: &[Knob] = &[
    (
        "/proc/sys/vm/max_map_count",
        Some("65530"),
        "70000",
        "70000",
        &["abc", "0", "-5"],
    ),
    (
        "/proc/sys/vm/mmap_min_addr",
        Some("65536"),
        "131072",
        "131072",
        &["x", "-1"],
    ),
    (
        "/proc/sys/vm/watermark_scale_factor",
        Some("10"),
        "200",
        "200",
        &["0", "5000"],
    ),
    (
        "/proc/sys/vm/min_free_kbytes",
        None,
        "8192",
        "8192",
        &["1", "z"],
    ),
    (
        "/proc/sys/vm/overcommit_memory",
        Some("0"),
        "1",
        "1",
        &["3", "-1"],
    ),
    (
        "/proc/sys/vm/overcommit_ratio",
        Some("50"),
        "80",
        "80",
        &["x"],
    ),
    (
        "/proc/sys/vm/overcommit_kbytes",
        Some("0"),
        "1024",
        "1024",
        &["x"],
    ),
    (
        "/proc/sys/vm/unprivileged_userfaultfd",
        Some("0"),
        "1",
        "1",
        &["3"],
    ),
    (
        "/proc/sys/vm/swappiness",
        Some("60"),
        "10",
        "10",
        &["201", "x"],
    ),
    (
        "/proc/sys/vm/nr_hugepages",
        Some("0"),
        "4",
        "4",
        &["x", "-3"],
    ),
    (
        "/sys/kernel/mm/transparent_hugepage/enabled",
        Some("always [madvise] never"),
        "never",
        "always madvise [never]",
        &["sometimes"],
    ),
    (
        "/sys/kernel/mm/transparent_hugepage/defrag",
        Some("always defer defer+madvise [madvise] never"),
        "defer",
        "always [defer] defer+madvise madvise never",
        &["x"],
    ),
    ("/sys/kernel/mm/ksm/run", Some("0"), "1", "1", &["3"]),
    (
        "/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds",
        Some("0"),
        "1",
        "1",
        &["65"],
    ),
    ("/proc/sys/vm/stat_interval", Some("3"), "2", "2", &["0"]),
    ("/proc/sys/vm/page-cluster", Some("3"), "0", "0", &["11"]),
    (
        "/proc/sys/vm/oom_kill_allocating_task",
        Some("0"),
        "1",
        "1",
        &["2"],
    ),
    (
        "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
        Some("0"),
        "8",
        "8",
        &["x", "-1"],
    ),
    (
        "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages",
        Some("0"),
        "0",
        "0",
        &["x"],
    ),
];

fn value(path: &str) -> String {
    read_file(path)
        .map(|s| String::from(s.trim()))
        .unwrap_or_else(|e| format!("<{}>", e))
}

/// The raw value to write back for a choice file shown as `a [b] c`.
fn chosen(shown: &str) -> String {
    match (shown.find('['), shown.find(']')) {
        (Some(a), Some(b)) if a < b => String::from(&shown[a + 1..b]),
        _ => String::from(shown),
    }
}

fn restricted_writes_refused() -> i32 {
    let mut bad = 0;
    for (path, ..) in KNOBS {
        if try_open(path, O_WRONLY) != Err(Errno::EACCES) {
            eprintln!("tunables(restricted): write-open of {} not refused", path);
            bad += 1;
        }
        if read_file(path).is_err() {
            eprintln!("tunables(restricted): {} not readable", path);
            bad += 1;
        }
    }
    bad
}

fn map_low(addr: usize) -> Result<*mut u8, Errno> {
    // SAFETY: FIXED_NOREPLACE never replaces a mapping; the low range is unused.
    unsafe {
        mmap(
            addr,
            4096,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE,
            -1,
            0,
        )
    }
}

fn restricted_map_0x80000() -> i32 {
    match map_low(0x80000) {
        Ok(p) => {
            // SAFETY: unmapping the page just mapped.
            let _ = unsafe { munmap(p, 4096) };
            0
        }
        Err(Errno::EPERM) => 1,
        Err(_) => 2,
    }
}

/// Maps `path` read-only and reads every page (filling the page cache), then unmaps it.
fn touch_file_mapping(path: &str) -> Result<usize, Errno> {
    use peios_rt::sys::fs::{close, openat, AT_FDCWD, O_RDONLY};
    let mut p = Vec::from(path.as_bytes());
    p.push(0);
    let c = core::ffi::CStr::from_bytes_with_nul(&p).map_err(|_| Errno::EINVAL)?;
    let fd = openat(AT_FDCWD, c, O_RDONLY, 0)?;
    // The file's size, counted in bytes (a text read would expand invalid UTF-8).
    let mut size = 0usize;
    let mut chunk = [0u8; 4096];
    while let Ok(n) = peios_rt::sys::fs::read(fd, &mut chunk) {
        if n == 0 {
            break;
        }
        size += n;
    }
    let len = size.clamp(4096, 64 * 1024);
    // SAFETY: a fresh private read-only mapping of our file at an address the kernel picks.
    let map = unsafe { mmap(0, len, Prot::READ, MapFlags::PRIVATE, fd, 0) };
    let _ = close(fd);
    let map = map?;
    let mut sum = 0usize;
    for page in (0..len).step_by(4096) {
        // SAFETY: inside the mapping and inside the file (`len` is at most its size).
        sum = sum.wrapping_add(unsafe { core::ptr::read_volatile(map.add(page)) } as usize);
    }
    // SAFETY: unmapping what we mapped.
    let _ = unsafe { munmap(map, len) };
    Ok(sum)
}

/// Maps `len` bytes of private anonymous memory (plus `extra` flags) and unmaps it again.
fn try_map(len: usize, prot: Prot, extra: MapFlags) -> Result<(), Errno> {
    let flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | extra;
    // SAFETY: a fresh anonymous mapping at an address the kernel picks, never touched.
    let p = unsafe { mmap(0, len, prot, flags, -1, 0) }?;
    // SAFETY: unmapping what was just mapped.
    unsafe { munmap(p, len) }
}

/// Behaviour of overcommit_memory, overcommit_ratio and overcommit_kbytes: the commit
/// charge (Committed_AS) follows private writable mappings; mode 2 refuses mappings past
/// CommitLimit (ratio% of RAM, or kbytes), NORESERVE included, and a read-only mapping made
/// writable; mode 0 refuses one mapping larger than RAM; mode 1 allows it.
fn overcommit_checks(checks: &mut Checks) {
    const MIB: usize = 1 << 20;
    let base = meminfo_kb("Committed_AS");
    let map = mmap_anon(64 * MIB, Prot::RW);
    let charged = meminfo_kb("Committed_AS");
    if let Ok(p) = map {
        // SAFETY: unmapping the mapping just made.
        let _ = unsafe { munmap(p, 64 * MIB) };
    }
    let released = meminfo_kb("Committed_AS");
    checks.check(
        "overcommit-charge-follows-mappings",
        matches!((base, charged, released), (Some(b), Some(c), Some(r))
            if c.abs_diff(b + 65536) < 512 && r.abs_diff(b) < 512),
        format_args!(
            "Committed_AS {:?} kB, with 64 MiB mapped {:?}, unmapped {:?}",
            base, charged, released
        ),
    );

    // Strict mode. This process's own heap growth meanwhile is far smaller than the room
    // each limit below leaves.
    let total = meminfo_kb("MemTotal").unwrap_or(0) as usize;
    // Swap counts on top of every limit (as on Linux); `qemu-run.sh` gives a guest swap.
    let swap = meminfo_kb("SwapTotal").unwrap_or(0) as usize;
    let _ = write_file("/proc/sys/vm/overcommit_ratio", "50");
    let strict = write_file("/proc/sys/vm/overcommit_memory", "2");
    let limit = meminfo_kb("CommitLimit").unwrap_or(0) as usize;
    let room = limit.saturating_sub(meminfo_kb("Committed_AS").unwrap_or(0) as usize) * 1024;
    let over = try_map(room + 16 * MIB, Prot::RW, MapFlags::empty());
    let over_noreserve = try_map(room + 16 * MIB, Prot::RW, MapFlags::NORESERVE);
    let over_readonly = try_map(room + 16 * MIB, Prot::READ, MapFlags::empty());
    let under = try_map(MIB, Prot::RW, MapFlags::empty());
    let made_writable = match mmap_anon(room + 16 * MIB, Prot::READ) {
        Ok(p) => {
            // SAFETY: changing and then removing the mapping just made.
            let r = unsafe { peios_rt::sys::mm::mprotect(p, room + 16 * MIB, Prot::RW) };
            // SAFETY: as above.
            let _ = unsafe { munmap(p, room + 16 * MIB) };
            r
        }
        Err(e) => Err(e),
    };
    let committed_kb = meminfo_kb("Committed_AS").unwrap_or(0);
    let kbytes = format!("{}", committed_kb + 32 * 1024);
    let _ = write_file("/proc/sys/vm/overcommit_kbytes", &kbytes);
    let kbytes_limit = meminfo_kb("CommitLimit");
    let ratio_cleared = value("/proc/sys/vm/overcommit_ratio");
    let k_over = try_map(64 * MIB + swap * 1024, Prot::RW, MapFlags::empty());
    let k_under = try_map(8 * MIB, Prot::RW, MapFlags::empty());
    let _ = write_file("/proc/sys/vm/overcommit_memory", "0");
    let _ = write_file("/proc/sys/vm/overcommit_ratio", "50");
    checks.check(
        "overcommit-2-limit-is-ratio-of-ram",
        strict.is_ok() && limit.abs_diff(total / 2 + swap) <= 4,
        format_args!(
            "set: {:?}; CommitLimit {} kB, MemTotal {} kB",
            strict, limit, total
        ),
    );
    checks.check(
        "overcommit-2-refuses-past-limit",
        over == Err(Errno::ENOMEM)
            && over_noreserve == Err(Errno::ENOMEM)
            && made_writable == Err(Errno::ENOMEM)
            && over_readonly.is_ok()
            && under.is_ok(),
        format_args!(
            "room {} kB: room+16 MiB rw {:?}, noreserve {:?}, mprotect to rw {:?}, read-only {:?}; 1 MiB {:?}",
            room / 1024,
            over,
            over_noreserve,
            made_writable,
            over_readonly,
            under
        ),
    );
    checks.check(
        "overcommit_kbytes-replaces-ratio",
        kbytes_limit == Some(committed_kb + 32 * 1024 + swap as u64)
            && ratio_cleared == "0"
            && k_over == Err(Errno::ENOMEM)
            && k_under.is_ok(),
        format_args!(
            "kbytes {}: CommitLimit {:?}, ratio reads {:?}, 64 MiB {:?}, 8 MiB {:?}",
            kbytes, kbytes_limit, ratio_cleared, k_over, k_under
        ),
    );

    // Heuristic mode refuses one request larger than all RAM and swap; mode 1 allows it.
    let swap = meminfo_kb("SwapTotal").unwrap_or(0) as usize;
    let huge = (total + swap + 1024 * 1024) * 1024;
    let guess = try_map(huge, Prot::RW, MapFlags::empty());
    let _ = write_file("/proc/sys/vm/overcommit_memory", "1");
    let always = try_map(huge, Prot::RW, MapFlags::empty());
    let _ = write_file("/proc/sys/vm/overcommit_memory", "0");
    checks.check(
        "overcommit-0-and-1",
        guess == Err(Errno::ENOMEM) && always.is_ok(),
        format_args!("RAM + 1 GiB: mode 0 {:?}, mode 1 {:?}", guess, always),
    );
}

/// A figure of node `node`'s meminfo (`Node N Name: value [kB]`).
fn node_meminfo(node: u32, name: &str) -> Option<u64> {
    let text = read_file(&format!("/sys/devices/system/node/node{}/meminfo", node)).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix(&format!("Node {} {}:", node, name))?.trim();
        v.strip_suffix("kB").unwrap_or(v).trim().parse().ok()
    })
}

fn pool_path(node: u32, kib: u64, file: &str) -> String {
    format!(
        "/sys/devices/system/node/node{}/hugepages/hugepages-{}kB/{}",
        node, kib, file
    )
}

/// Behaviour of nr_hugepages and the per-node pool knobs: pool pages leave the node's free
/// memory, show in meminfo (total, per node, Hugetlb), leave the overcommit ratio's share
/// of RAM, and come back when the pool shrinks.
fn hugepage_checks(checks: &mut Checks) {
    let num = |p: &str| value(p).parse::<u64>().ok();
    let free0 = meminfo_kb("MemFree");
    let limit0 = meminfo_kb("CommitLimit");
    let set = write_file("/proc/sys/vm/nr_hugepages", "6");
    let total = meminfo_kb_plain("HugePages_Total");
    let free_pages = meminfo_kb_plain("HugePages_Free");
    let hugetlb = meminfo_kb("Hugetlb");
    let free1 = meminfo_kb("MemFree");
    let limit1 = meminfo_kb("CommitLimit");
    let per_node: Vec<Option<u64>> = (0..2)
        .map(|n| num(&pool_path(n, 2048, "nr_hugepages")))
        .collect();
    let sys_free = num("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
    checks.check(
        "nr_hugepages-fills-the-pools",
        set.is_ok()
            && total == Some(6)
            && free_pages == Some(6)
            && hugetlb == Some(6 * 2048)
            && sys_free == Some(6)
            && per_node == [Some(3), Some(3)]
            && matches!((free0, free1), (Some(a), Some(b)) if a >= b + 6 * 2048 && a - b < 6 * 2048 + 2048)
            && matches!((limit0, limit1), (Some(a), Some(b)) if a == b + 3 * 2048),
        format_args!(
            "{:?}: HugePages_Total {:?} Free {:?} Hugetlb {:?} kB, free_hugepages {:?}, per node {:?}, MemFree {:?} -> {:?} kB, CommitLimit {:?} -> {:?} kB",
            set, total, free_pages, hugetlb, sys_free, per_node, free0, free1, limit0, limit1
        ),
    );

    // A node's own pool: only that node's memory, and the global count follows.
    let node1_free0 = node_meminfo(1, "MemFree");
    let node_set = write_file(&pool_path(1, 2048, "nr_hugepages"), "8");
    let node1 = num(&pool_path(1, 2048, "nr_hugepages"));
    let node1_total = node_meminfo(1, "HugePages_Total");
    let node1_free_pages = num(&pool_path(1, 2048, "free_hugepages"));
    let global = num("/proc/sys/vm/nr_hugepages");
    let node1_free1 = node_meminfo(1, "MemFree");
    checks.check(
        "node-pool-takes-its-nodes-memory",
        node_set.is_ok()
            && node1 == Some(8)
            && node1_total == Some(8)
            && node1_free_pages == Some(8)
            && global == Some(3 + 8)
            && matches!((node1_free0, node1_free1), (Some(a), Some(b)) if a >= b + 5 * 2048 && a - b < 5 * 2048 + 2048),
        format_args!(
            "{:?}: node 1 pool {:?}, its meminfo {:?}, free_hugepages {:?}, nr_hugepages {:?}, node 1 MemFree {:?} -> {:?} kB",
            node_set, node1, node1_total, node1_free_pages, global, node1_free0, node1_free1
        ),
    );

    // 1 GiB pages need a whole aligned free GiB on the node: the pool holds what it got.
    let gib = write_file(&pool_path(1, 1048576, "nr_hugepages"), "1");
    let gib_held = num(&pool_path(1, 1048576, "nr_hugepages"));
    let gib_hugetlb = meminfo_kb("Hugetlb");
    let _ = write_file(&pool_path(1, 1048576, "nr_hugepages"), "0");

    let emptied = write_file("/proc/sys/vm/nr_hugepages", "0");
    let free2 = meminfo_kb("MemFree");
    let node_after = num(&pool_path(1, 2048, "nr_hugepages"));
    checks.check(
        "gigantic-pool-holds-what-it-got",
        gib.is_ok()
            && match gib_held {
                Some(1) => gib_hugetlb == Some(1048576 + 11 * 2048),
                Some(0) => gib_hugetlb == Some(11 * 2048),
                _ => false,
            },
        format_args!(
            "{:?}: node 1 1 GiB pool {:?}, Hugetlb {:?} kB",
            gib, gib_held, gib_hugetlb
        ),
    );
    checks.check(
        "nr_hugepages-0-returns-the-memory",
        emptied.is_ok()
            && node_after == Some(0)
            && matches!((free0, free2), (Some(a), Some(b)) if a.abs_diff(b) < 2048),
        format_args!(
            "{:?}: node 1 pool {:?}, MemFree {:?} -> {:?} kB",
            emptied, node_after, free0, free2
        ),
    );
}

/// A `/proc/meminfo` count without a unit (`HugePages_Total`).
fn meminfo_kb_plain(name: &str) -> Option<u64> {
    let text = read_file("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

/// userfaultfd creation in this process: 1 for each of plain and `UFFD_USER_MODE_ONLY`
/// that succeeds (plain 1, user-mode-only 2), 0 for EPERM, 100 for anything else.
fn userfaultfd_allowed() -> i32 {
    use peios_rt::sys::uffd::{userfaultfd, UFFD_USER_MODE_ONLY};
    let mut code = 0;
    for (bit, flags) in [(1, 0), (2, UFFD_USER_MODE_ONLY)] {
        match userfaultfd(peios_rt::sys::fs::O_CLOEXEC | flags) {
            Ok(fd) => {
                let _ = peios_rt::sys::fs::close(fd);
                code |= bit;
            }
            Err(Errno::EPERM) => {}
            Err(_) => return 100,
        }
    }
    code
}

/// Behaviour of vm.unprivileged_userfaultfd: 0 refuses a restricted process any
/// userfaultfd, 1 allows both kinds, 2 only the user-mode-only kind; a privileged one
/// (SeDebugPrivilege) gets both under 0.
fn userfaultfd_gate_checks(checks: &mut Checks) {
    let path = "/proc/sys/vm/unprivileged_userfaultfd";
    let mut seen = Vec::new();
    for knob in ["0", "1", "2"] {
        let set = write_file(path, knob);
        seen.push((set, in_restricted_child(userfaultfd_allowed)));
    }
    let _ = write_file(path, "0");
    let privileged = userfaultfd_allowed();
    checks.check(
        "unprivileged_userfaultfd-gates-creation",
        seen.iter().all(|(set, _)| set.is_ok())
            && seen[0].1 == Ok(WaitStatus::Exited(0))
            && seen[1].1 == Ok(WaitStatus::Exited(3))
            && seen[2].1 == Ok(WaitStatus::Exited(2))
            && privileged == 3,
        format_args!(
            "restricted child under 0, 1, 2: {:?} (0 none, 3 both, 2 user-mode-only); privileged under 0: {}",
            seen, privileged
        ),
    );
}

fn ksm_stat(name: &str) -> Option<u64> {
    value(&format!("/sys/kernel/mm/ksm/{}", name)).parse().ok()
}

/// Waits up to 10 s for KSM to complete `passes` more full scans; the count reached.
fn ksm_wait_scans(passes: u64) -> Option<u64> {
    let target = ksm_stat("full_scans")? + passes;
    for _ in 0..500 {
        let now = ksm_stat("full_scans")?;
        if now >= target {
            return Some(now);
        }
        peios_rt::time::sleep_ms(20);
    }
    ksm_stat("full_scans")
}

/// Behaviour of KSM's run knob: dormant by default (no scans); with 1, 64 equal pages
/// of a MADV_MERGEABLE mapping become one shared frame (16 unique pages stay apart) and
/// a write still only changes its own page; 0 stops the scans; 2 unmerges everything
/// with every page's contents intact.
fn ksm_checks(checks: &mut Checks) {
    const PAGES: usize = 80;
    const EQUAL: usize = 64;
    let Ok(region) = mmap_anon(PAGES * 4096, Prot::RW) else {
        checks.check("ksm-mmap", false, format_args!("mmap failed"));
        return;
    };
    let page = |i: usize| region.wrapping_add(i * 4096);
    let expected = |i: usize| if i < EQUAL { 0x42u8 } else { 0x80 + i as u8 };
    for i in 0..PAGES {
        // SAFETY: writing whole pages of our own fresh mapping.
        unsafe { core::ptr::write_bytes(page(i), expected(i), 4096) };
    }
    // SAFETY: advice on our own mapping.
    let advised = unsafe {
        peios_rt::sys::mm::madvise(region, PAGES * 4096, peios_rt::sys::mm::MADV_MERGEABLE)
    };
    let scans0 = ksm_stat("full_scans");
    peios_rt::time::sleep_ms(100);
    let dormant = ksm_stat("full_scans") == scans0 && ksm_stat("pages_sharing") == Some(0);

    let started = write_file("/sys/kernel/mm/ksm/run", "1");
    let scanned = ksm_wait_scans(3);
    let (shared, sharing) = (ksm_stat("pages_shared"), ksm_stat("pages_sharing"));
    // SAFETY: a write into page 5 of our mapping (a copy-on-write of the merged frame).
    unsafe { page(5).write_volatile(7) };
    // SAFETY: reading our own mapping.
    let (own, neighbour) = unsafe { (page(5).read_volatile(), page(6).read_volatile()) };
    checks.check(
        "ksm-run-merges-equal-pages",
        advised.is_ok()
            && dormant
            && started.is_ok()
            && scanned.is_some()
            && shared == Some(1)
            && sharing == Some(EQUAL as u64 - 1)
            && (own, neighbour) == (7, 0x42),
        format_args!(
            "madvise {:?}; dormant before: {}; run=1 {:?}, full_scans {:?}; pages_shared {:?} pages_sharing {:?}; after a write page 5 holds {} and page 6 {}",
            advised, dormant, started, scanned, shared, sharing, own, neighbour
        ),
    );

    let _ = write_file("/sys/kernel/mm/ksm/run", "0");
    peios_rt::time::sleep_ms(100);
    let stopped_at = ksm_stat("full_scans");
    peios_rt::time::sleep_ms(200);
    let still = ksm_stat("full_scans");
    let unmerged = write_file("/sys/kernel/mm/ksm/run", "2");
    let after = (ksm_stat("pages_shared"), ksm_stat("pages_sharing"));
    let intact = (0..PAGES).all(|i| {
        (0..4096).step_by(512).all(|o| {
            let want = if (i, o) == (5, 0) { 7 } else { expected(i) };
            // SAFETY: reading our own mapping.
            unsafe { page(i).add(o).read_volatile() == want }
        })
    });
    let _ = write_file("/sys/kernel/mm/ksm/run", "0");
    // SAFETY: unmapping our own mapping.
    let _ = unsafe { munmap(region, PAGES * 4096) };
    checks.check(
        "ksm-stop-and-unmerge",
        stopped_at.is_some()
            && stopped_at == still
            && unmerged.is_ok()
            && after == (Some(0), Some(0))
            && intact,
        format_args!(
            "full_scans after run=0: {:?} then {:?}; run=2 {:?}: shared/sharing {:?}; contents intact {}",
            stopped_at, still, unmerged, after, intact
        ),
    );
}

/// A watermark (`min`, `low`, `high`) of `node`'s zone in /proc/zoneinfo, in pages.
fn zone_watermark(node: &str, which: &str) -> Option<u64> {
    let text = read_file("/proc/zoneinfo").ok()?;
    let mut in_node = false;
    for line in text.lines() {
        if line.starts_with("Node ") {
            in_node = line.starts_with(node);
        } else if in_node {
            let mut words = line.split_whitespace();
            if words.next() == Some(which) {
                return words.next()?.parse().ok();
            }
        }
    }
    None
}

/// The highest `nr_accesses` `/proc/<pid>/damon` shows over `[start, end)`.
fn damon_hottest(report: &str, start: usize, end: usize) -> Option<u64> {
    report
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (lo, hi) = words.next()?.split_once('-')?;
            let lo = usize::from_str_radix(lo, 16).ok()?;
            let hi = usize::from_str_radix(hi, 16).ok()?;
            let n: u64 = words.next()?.parse().ok()?;
            (lo < end && hi > start).then_some(n)
        })
        .max()
}

static DAMON_STOP: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Behaviour of `nr_kdamonds`: with one kdamond watching this process, a region a thread
/// keeps reading shows accesses in `/proc/self/damon` and a region nobody touches shows
/// none; the control files are refused to a restricted writer, and another process's
/// report to a restricted reader.
fn damon_checks(checks: &mut Checks) {
    use core::sync::atomic::Ordering;
    const PAGES: usize = 64;
    let admin = "/sys/kernel/mm/damon/admin/kdamonds";
    // [none][hot: read-write][none][cold: read-only][none]: separate VMAs that cannot
    // merge with anything else of the process.
    let total = (2 * PAGES + 3) * 4096;
    let Ok(base) = mmap_anon(total, Prot::RW) else {
        checks.check("damon-mmap", false, format_args!("mmap failed"));
        return;
    };
    let (hot, cold) = (base as usize + 4096, base as usize + (PAGES + 2) * 4096);
    for p in 0..PAGES {
        // SAFETY: writing our own mapping once, so every page is resident.
        unsafe {
            ((hot + p * 4096) as *mut u8).write_volatile(1);
            ((cold + p * 4096) as *mut u8).write_volatile(1);
        }
    }
    // SAFETY: changing protections inside our own mapping.
    unsafe {
        use peios_rt::sys::mm::mprotect;
        let _ = mprotect(base, 4096, Prot::NONE);
        let _ = mprotect((hot + PAGES * 4096) as *mut u8, 4096, Prot::NONE);
        let _ = mprotect(cold as *mut u8, PAGES * 4096, Prot::READ);
        let _ = mprotect((cold + PAGES * 4096) as *mut u8, 4096, Prot::NONE);
    }
    DAMON_STOP.store(false, Ordering::SeqCst);
    let reader = peios_rt::thread::spawn(move || {
        let mut sum = 0u64;
        while !DAMON_STOP.load(Ordering::Relaxed) {
            for p in 0..PAGES {
                // SAFETY: reading our own live mapping.
                sum += u64::from(unsafe { ((hot + p * 4096) as *const u8).read_volatile() });
            }
        }
        sum
    });
    let me = peios_rt::sys::process::getpid();
    let setup = write_file(&format!("{}/nr_kdamonds", admin), "1").and_then(|_| {
        write_file(
            &format!("{}/0/contexts/0/targets/0/pid_target", admin),
            &format!("{}", me),
        )
    });
    let on = setup.and_then(|_| write_file(&format!("{}/0/state", admin), "on"));
    let state_on = value(&format!("{}/0/state", admin));
    // The last aggregation's counts, read until the hot region shows (a reader thread
    // the host left unscheduled for a whole 100 ms aggregation shows few accesses;
    // seen at host load 12): the hottest of up to 12 reads, the cold one must stay 0.
    peios_rt::time::sleep_ms(800);
    let (mut hot_max, mut cold_max) = (None, None);
    for _ in 0..12 {
        let report = read_file("/proc/self/damon").unwrap_or_default();
        let (h, c) = (
            damon_hottest(&report, hot, hot + PAGES * 4096),
            damon_hottest(&report, cold, cold + PAGES * 4096),
        );
        hot_max = hot_max.max(h);
        cold_max = cold_max.max(c);
        if matches!(hot_max, Some(h) if h >= 5) {
            break;
        }
        peios_rt::time::sleep_ms(150);
    }
    let denied = in_restricted_child(move || {
        let write = write_file("/sys/kernel/mm/damon/admin/kdamonds/0/state", "off");
        let read = read_file(&format!("/proc/{}/damon", me)).map(|_| ());
        i32::from(!(write == Err(Errno::EACCES) && read == Err(Errno::EACCES)))
    });
    let _ = write_file(&format!("{}/0/state", admin), "off");
    let state_off = value(&format!("{}/0/state", admin));
    let _ = write_file(&format!("{}/nr_kdamonds", admin), "0");
    let gone = read_file(&format!("{}/0/state", admin)).is_err();
    DAMON_STOP.store(true, Ordering::SeqCst);
    let _ = reader.map(|t| t.join());
    // SAFETY: unmapping our own mapping.
    let _ = unsafe { munmap(base, total) };
    checks.check(
        "damon-tells-hot-from-cold",
        on.is_ok()
            && state_on == "on"
            && matches!(hot_max, Some(h) if h >= 5)
            && cold_max == Some(0)
            && state_off == "off"
            && gone,
        format_args!(
            "start {:?} (state {:?}); hot region accesses {:?}, cold {:?}; then state {:?}, kdamond 0 removed {}",
            on, state_on, hot_max, cold_max, state_off, gone
        ),
    );
    checks.check(
        "damon-restricted-refused",
        denied == Ok(WaitStatus::Exited(0)),
        format_args!(
            "restricted child (0: state write and report read EACCES) {:?}",
            denied
        ),
    );
}

fn zone_low(node: &str) -> Option<u64> {
    zone_watermark(node, "low")
}

/// Behaviour of min_free_kbytes: the nodes' `min` watermarks add up to it (Linux shares
/// it out by node size).
fn min_free_kbytes_checks(checks: &mut Checks) {
    let before = value("/proc/sys/vm/min_free_kbytes");
    let set = write_file("/proc/sys/vm/min_free_kbytes", "16384");
    let mins: Vec<Option<u64>> = ["Node 0", "Node 1"]
        .iter()
        .map(|n| zone_watermark(n, "min"))
        .collect();
    let _ = write_file("/proc/sys/vm/min_free_kbytes", &before);
    let total: u64 = mins.iter().flatten().sum();
    checks.check(
        "min_free_kbytes-sets-min-watermarks",
        set.is_ok() && mins.iter().all(Option::is_some) && total.abs_diff(16384 / 4) <= 2,
        format_args!(
            "{:?}: node min watermarks {:?} pages (sum {}, want 4096)",
            set, mins, total
        ),
    );
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("tunables");
    // Probe the restrict syscall in a child: this process must keep its privileges.
    if in_restricted_child(|| 0) == Ok(WaitStatus::Exited(99)) {
        println!("tunables: not Peios (no restrict syscall): nothing to check");
        return 0;
    }
    for (path, default, valid, shown, invalid) in KNOBS {
        let before = value(path);
        if let Some(d) = default {
            checks.check(
                &format!("{}-default", path),
                before == *d,
                format_args!("{:?} (expected {:?})", before, d),
            );
        }
        let wrote = write_file(path, valid);
        let now = value(path);
        checks.check(
            &format!("{}-write", path),
            wrote.is_ok() && now == *shown,
            format_args!("wrote {:?}: {:?}, reads {:?}", valid, wrote, now),
        );
        for bad in *invalid {
            let r = write_file(path, bad);
            let after = value(path);
            checks.check(
                &format!("{}-invalid-{}", path, bad),
                r == Err(Errno::EINVAL) && after == now,
                format_args!("{:?}, value {:?}", r, after),
            );
        }
        let _ = write_file(path, &chosen(&before));
    }
    // drop_caches is a write-only trigger: mapping a file fills the page cache (Cached in
    // /proc/meminfo), and `echo 1` empties it again.
    let _ = write_file("/proc/sys/vm/drop_caches", "1");
    let before = meminfo_kb("Cached");
    let filled = touch_file_mapping("/bin/hello");
    let full = meminfo_kb("Cached");
    let dropped = write_file("/proc/sys/vm/drop_caches", "1");
    let after = meminfo_kb("Cached");
    checks.check(
        "drop_caches-empties-page-cache",
        filled.is_ok()
            && dropped.is_ok()
            && matches!((before, full, after), (Some(b), Some(f), Some(a)) if f > b && a < f),
        format_args!(
            "Cached {:?} kB, after mapping /bin/hello {:?} ({:?}), after echo 1 {:?} ({:?})",
            before, full, filled, after, dropped
        ),
    );
    checks.check(
        "drop_caches-valid",
        write_file("/proc/sys/vm/drop_caches", "3").is_ok(),
        format_args!("echo 3"),
    );
    checks.expect_errno(
        "drop_caches-invalid",
        write_file("/proc/sys/vm/drop_caches", "4"),
        Errno::EINVAL,
    );

    // Restricted writers are refused on every knob (readers are not).
    let st = in_restricted_child(restricted_writes_refused);
    checks.check(
        "restricted-writes-refused",
        st == Ok(WaitStatus::Exited(0)),
        format_args!("restricted child {:?}", st),
    );

    // Behaviour: max_map_count bounds the number of mappings.
    let limit_before = value("/proc/sys/vm/max_map_count");
    let _ = write_file("/proc/sys/vm/max_map_count", "200");
    let mut maps = Vec::new();
    let mut result = Ok(());
    for i in 0..400 {
        // Alternate protections so neighbouring mappings cannot merge into one VMA.
        let prot = if i % 2 == 0 {
            Prot::READ
        } else {
            Prot::READ | Prot::WRITE
        };
        match mmap_anon(4096, prot) {
            Ok(p) => maps.push(p),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for p in &maps {
        // SAFETY: unmapping pages this loop mapped.
        let _ = unsafe { munmap(*p, 4096) };
    }
    let _ = write_file("/proc/sys/vm/max_map_count", &limit_before);
    checks.check(
        "max_map_count-limits-mmap",
        result == Err(Errno::ENOMEM) && maps.len() < 200,
        format_args!("{} mappings, then {:?}", maps.len(), result),
    );

    // Behaviour: mmap_min_addr moves the lowest address an unprivileged process may map.
    let _ = write_file("/proc/sys/vm/mmap_min_addr", "1048576");
    let high = in_restricted_child(restricted_map_0x80000);
    let _ = write_file("/proc/sys/vm/mmap_min_addr", "4096");
    let low = in_restricted_child(restricted_map_0x80000);
    let _ = write_file("/proc/sys/vm/mmap_min_addr", "65536");
    checks.check(
        "mmap_min_addr-controls-low-mappings",
        high == Ok(WaitStatus::Exited(1)) && low == Ok(WaitStatus::Exited(0)),
        format_args!(
            "min 1 MiB: {:?} (1 = EPERM), min 4 KiB: {:?} (0 = mapped)",
            high, low
        ),
    );

    overcommit_checks(&mut checks);
    hugepage_checks(&mut checks);
    userfaultfd_gate_checks(&mut checks);
    ksm_checks(&mut checks);
    min_free_kbytes_checks(&mut checks);
    damon_checks(&mut checks);

    // Behaviour: watermark_scale_factor moves the zone watermarks.
    let low_before = zone_low("Node 0");
    let _ = write_file("/proc/sys/vm/watermark_scale_factor", "1000");
    let low_after = zone_low("Node 0");
    let _ = write_file("/proc/sys/vm/watermark_scale_factor", "10");
    checks.check(
        "watermark_scale_factor-moves-watermarks",
        matches!((low_before, low_after), (Some(a), Some(b)) if b > a),
        format_args!("node 0 low {:?} -> {:?}", low_before, low_after),
    );
    checks.finish()
}
