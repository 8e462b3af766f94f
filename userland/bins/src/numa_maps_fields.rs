//! `/proc/self/numa_maps` field by field (a module of the `numa` program; run alone
//! with `numa maps`): for a few kinds of mapping, the words and counts Linux 6.12's
//! `show_numa_map` prints, checked against what the test did to them. Every line of
//! the file is checked for Linux's order and conditions (`anon`, `dirty`, `mapped`
//! only when the pages differ from both, `mapmax` above one, `swapcache`, `active`,
//! `writeback`, the `N<node>` counts, `kernelpagesize_kB` only when a page is
//! resident); then: untouched and written anonymous memory, a fork child sharing it
//! (`mapmax=2`), a memfd mapped shared by a parent and its fork child, a tmpfs file
//! mapped privately (read, then one page copied), the heap, the stack, and private
//! and shared hugetlb memory when a pool can be had.
//!
//! `active` is left out of the exact comparisons: Linux's figure follows its LRU
//! batching (with MGLRU, a page is active only until its CPU's batch is drained);
//! only `active <= pages` is checked. Read-only touches of anonymous memory are
//! avoided: Linux maps the zero page there, which numa_maps does not count.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use peios_bins::files::{open, read_file, write_file};
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork};
use peios_rt::sys::fs;
use peios_rt::sys::mm::{mmap, mmap_anon, munmap, MapFlags, Prot, PAGE_SIZE};
use peios_rt::sys::process::exit_group;

const P: usize = PAGE_SIZE;
/// The fields after the header, in the order Linux prints them (`N<node>` stands for
/// every node count).
const ORDER: [&str; 9] = [
    "anon",
    "dirty",
    "mapped",
    "mapmax",
    "swapcache",
    "active",
    "writeback",
    "N",
    "kernelpagesize_kB",
];

/// One numa_maps line taken apart.
#[derive(Debug, Default)]
struct NumaLine {
    start: usize,
    policy: String,
    /// `file=<path>` (the path as printed), `heap`, `stack`, `huge`.
    tags: Vec<String>,
    /// `name=value` counts in the order printed (`N0`, `N1` keep their names).
    fields: Vec<(String, u64)>,
}

impl NumaLine {
    fn parse(line: &str) -> Option<NumaLine> {
        let mut words = line.split(' ');
        let start = usize::from_str_radix(words.next()?, 16).ok()?;
        let policy = String::from(words.next()?);
        let mut l = NumaLine {
            start,
            policy,
            ..NumaLine::default()
        };
        for w in words {
            match w.split_once('=') {
                Some(("file", _)) => l.tags.push(String::from(w)),
                Some((name, value)) => l.fields.push((String::from(name), value.parse().ok()?)),
                None => l.tags.push(String::from(w)),
            }
        }
        Some(l)
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Resident pages: the node counts' sum.
    fn pages(&self) -> u64 {
        self.fields
            .iter()
            .filter(|(n, _)| is_node(n))
            .map(|(_, v)| *v)
            .sum()
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn file(&self) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix("file="))
    }

    /// What is wrong with the line by Linux's rules, if anything.
    fn format_error(&self) -> Option<&'static str> {
        let mut prev: Option<usize> = None;
        for (name, _) in &self.fields {
            let key = if is_node(name) { "N" } else { name.as_str() };
            let Some(i) = ORDER.iter().position(|k| *k == key) else {
                return Some("unknown field");
            };
            if prev.is_some_and(|p| i < p || (i == p && key != "N")) {
                return Some("fields out of Linux's order");
            }
            prev = Some(i);
        }
        let pages = self.pages();
        let (anon, dirty) = (
            self.get("anon").unwrap_or(0),
            self.get("dirty").unwrap_or(0),
        );
        let checks = [
            (pages == 0 && !self.fields.is_empty(), "counts with no page"),
            (
                pages > 0 && self.fields.last().map(|f| f.0.as_str()) != Some("kernelpagesize_kB"),
                "kernelpagesize_kB not last",
            ),
            (
                self.fields.iter().any(|(n, v)| *v == 0 && n != "active"),
                "a zero count printed",
            ),
            (
                (pages > 0 && pages != anon && pages != dirty) != self.get("mapped").is_some(),
                "mapped shown against Linux's rule",
            ),
            (
                self.get("mapped").is_some_and(|m| m != pages),
                "mapped is not the pages",
            ),
            (self.get("mapmax").is_some_and(|m| m < 2), "mapmax below 2"),
            (
                anon > pages || dirty > pages,
                "anon or dirty above the pages",
            ),
            (
                self.get("active").is_some_and(|a| a >= pages),
                "active shown though every page is active",
            ),
            (
                self.has_tag("huge") && self.get("active").is_some(),
                "active on hugetlb",
            ),
        ];
        checks.iter().find(|(bad, _)| *bad).map(|(_, why)| *why)
    }
}

fn is_node(name: &str) -> bool {
    name.strip_prefix('N')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The start of the /proc/self/maps range holding `addr`, and its path column.
fn vma_of(addr: usize) -> Option<(usize, String)> {
    let maps = read_file("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        let path = rest.splitn(5, ' ').nth(4).unwrap_or("").trim();
        (lo <= addr && addr < hi).then(|| (lo, String::from(path)))
    })
}

/// The numa_maps line of the mapping holding `addr` (as text, empty if none).
fn line_of(addr: usize) -> String {
    let Some((start, _)) = vma_of(addr) else {
        return String::new();
    };
    let text = read_file("/proc/self/numa_maps").unwrap_or_default();
    let head = format!("{:08x} ", start);
    text.lines()
        .find(|l| l.starts_with(&head))
        .map(String::from)
        .unwrap_or_default()
}

/// A path as numa_maps prints it after `file=` (Linux's `seq_path` escapes).
fn escaped(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            '\n' | '\t' | '=' | ' ' => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Checks the counts `want` (`None`: the field must be absent) and that the pages add
/// up to `pages`, besides the line's format; `active` is never compared.
fn expect(c: &mut Checks, name: &str, line: &str, pages: u64, want: &[(&str, Option<u64>)]) {
    let parsed = NumaLine::parse(line);
    let ok = parsed.as_ref().is_some_and(|l| {
        l.format_error().is_none() && l.pages() == pages && want.iter().all(|(f, v)| l.get(f) == *v)
    });
    let why = parsed
        .as_ref()
        .and_then(NumaLine::format_error)
        .unwrap_or("");
    c.check(name, ok, format_args!("{:?} {}", line, why));
}

/// Writes one byte into each of `pages` pages from `addr`.
fn touch(addr: usize, pages: usize, value: u8) {
    for i in 0..pages {
        // SAFETY: inside this test's own writable mapping.
        unsafe { ((addr + i * P) as *mut u8).write_volatile(value) };
    }
}

/// Reads one byte of each of `pages` pages from `addr`.
fn read_pages(addr: usize, pages: usize) -> u32 {
    // SAFETY: inside this test's own readable mapping.
    (0..pages)
        .map(|i| u32::from(unsafe { ((addr + i * P) as *const u8).read_volatile() }))
        .sum()
}

/// Every line of the file follows Linux's format.
fn every_line(c: &mut Checks, name: &str) {
    let text = read_file("/proc/self/numa_maps").unwrap_or_default();
    let bad: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| match NumaLine::parse(l) {
            None => Some((l, "unparsable")),
            Some(p) => p.format_error().map(|why| (l, why)),
        })
        .collect();
    c.check(
        name,
        !text.is_empty() && bad.is_empty(),
        format_args!("{} lines, bad: {:?}", text.lines().count(), bad),
    );
}

/// `pages` of private anonymous memory between two inaccessible pages, so that no
/// neighbouring mapping merges with it (its numa_maps line is its own); unmap
/// `pages + 2` pages from one page below.
fn isolated_anon(pages: usize) -> Option<usize> {
    let a = mmap_anon((pages + 2) * P, Prot::RW).ok()? as usize;
    for guard in [a, a + (pages + 1) * P] {
        // SAFETY: a page of the mapping just made, which nothing uses.
        unsafe { peios_rt::sys::mm::mprotect(guard as *mut u8, P, Prot::NONE) }.ok()?;
    }
    Some(a + P)
}

fn anonymous(c: &mut Checks) {
    let Some(a) = isolated_anon(8) else {
        c.check("maps.anon.mmap", false, format_args!("mmap"));
        return;
    };
    let line = line_of(a);
    let parsed = NumaLine::parse(&line);
    c.check(
        "maps.anon.untouched_header_only",
        parsed.as_ref().is_some_and(|l| {
            l.start == a && l.policy == "default" && l.fields.is_empty() && l.tags.is_empty()
        }),
        format_args!("{:?}", line),
    );
    touch(a, 5, 1);
    expect(
        c,
        "maps.anon.written",
        &line_of(a),
        5,
        &[
            ("anon", Some(5)),
            ("dirty", Some(5)),
            ("mapped", None),
            ("mapmax", None),
            ("swapcache", None),
            ("writeback", None),
            ("kernelpagesize_kB", Some(4)),
        ],
    );
    // A fork child maps the same five pages: each is mapped twice, on both sides.
    let ctl = shared_words();
    let (ready, go) = (&ctl[0], &ctl[1]);
    let child = match fork() {
        Ok(Fork::Child) => {
            let line = line_of(a);
            put_line(&ctl[2..], &line);
            ready.store(1, Ordering::Release);
            wait_for(go, 1);
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            c.check("maps.fork", false, format_args!("{}", e));
            return;
        }
    };
    wait_for(ready, 1);
    let shared = [
        ("anon", Some(5)),
        ("dirty", Some(5)),
        ("mapped", None),
        ("mapmax", Some(2)),
    ];
    expect(c, "maps.fork.parent_mapmax_2", &line_of(a), 5, &shared);
    expect(
        c,
        "maps.fork.child_mapmax_2",
        &get_line(&ctl[2..]),
        5,
        &shared,
    );
    go.store(1, Ordering::Release);
    let _ = wait_pid(child);
    // SAFETY: unmapping this test's mappings.
    unsafe {
        let _ = munmap((a - P) as *mut u8, 10 * P);
        let _ = munmap(ctl.as_ptr() as *mut u8, P);
    }
}

/// A page of shared memory as 512 words a parent and its fork child both see.
fn shared_words() -> &'static [AtomicU64] {
    // SAFETY: a fresh shared anonymous mapping where the kernel chooses.
    let m = unsafe {
        mmap(
            0,
            P,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    }
    .expect("mmap");
    // SAFETY: a page of zeroes, aligned, this test's until it unmaps it.
    unsafe { core::slice::from_raw_parts(m as *const AtomicU64, P / 8) }
}

/// Stores `line` (length first) in `words`.
fn put_line(words: &[AtomicU64], line: &str) {
    let bytes = line.as_bytes();
    let n = bytes.len().min((words.len() - 1) * 8);
    words[0].store(n as u64, Ordering::Relaxed);
    for (i, chunk) in bytes[..n].chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        words[1 + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
    }
}

/// The line [`put_line`] stored.
fn get_line(words: &[AtomicU64]) -> String {
    let n = (words[0].load(Ordering::Relaxed) as usize).min((words.len() - 1) * 8);
    let mut bytes = Vec::with_capacity(n);
    for w in &words[1..] {
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        if bytes.len() >= n {
            break;
        }
    }
    bytes.truncate(n);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn wait_for(word: &AtomicU64, at_least: u64) {
    for _ in 0..20_000 {
        if word.load(Ordering::Acquire) >= at_least {
            return;
        }
        peios_rt::time::sleep_ms(1);
    }
}

/// A memfd written through a shared mapping, then mapped by a fork child too.
fn memfd(c: &mut Checks) {
    let Ok(fd) = fs::memfd_create(c"numa_maps", fs::MFD_CLOEXEC) else {
        c.check("maps.memfd.create", false, format_args!("memfd_create"));
        return;
    };
    let size = fs::ftruncate(fd, 4 * P as u64);
    // SAFETY: a fresh shared mapping of this test's memfd.
    let m = unsafe { mmap(0, 4 * P, Prot::RW, MapFlags::SHARED, fd, 0) };
    let (Ok(()), Ok(a)) = (size, m) else {
        c.check("maps.memfd.map", false, format_args!("{:?} {:?}", size, m));
        return;
    };
    let a = a as usize;
    touch(a, 3, 7);
    let ctl = shared_words();
    let (ready, go) = (&ctl[0], &ctl[1]);
    let child = match fork() {
        Ok(Fork::Child) => {
            // Linux copies no entry of a shared file mapping at fork: map them here.
            let _ = read_pages(a, 3);
            put_line(&ctl[2..], &line_of(a));
            ready.store(1, Ordering::Release);
            wait_for(go, 1);
            exit_group(0);
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            c.check("maps.memfd.fork", false, format_args!("{}", e));
            return;
        }
    };
    wait_for(ready, 1);
    let file = escaped("/memfd:numa_maps (deleted)");
    for (name, line) in [
        ("maps.memfd.parent", line_of(a)),
        ("maps.memfd.child", get_line(&ctl[2..])),
    ] {
        let named = NumaLine::parse(&line).is_some_and(|l| l.file() == Some(file.as_str()));
        c.check(
            &format!("{}_file_name", name),
            named,
            format_args!("{:?}, want file={}", line, file),
        );
        expect(
            c,
            &format!("{}_dirty_mapmax_2", name),
            &line,
            3,
            &[
                ("anon", None),
                ("dirty", Some(3)),
                ("mapped", None),
                ("mapmax", Some(2)),
                ("kernelpagesize_kB", Some(4)),
            ],
        );
    }
    go.store(1, Ordering::Release);
    let _ = wait_pid(child);
    // SAFETY: unmapping this test's mappings.
    unsafe {
        let _ = munmap(a as *mut u8, 4 * P);
        let _ = munmap(ctl.as_ptr() as *mut u8, P);
    }
    let _ = fs::close(fd);
}

/// A tmpfs file written with write(2), mapped privately: pages read are the file's
/// (dirty: shared memory written), a page then written is an anonymous copy.
fn tmpfs_file(c: &mut Checks) {
    const PATH: &str = "/tmp/numa_maps.file";
    let fd = open(PATH, fs::O_RDWR | fs::O_CREAT | fs::O_TRUNC);
    let written = fd.and_then(|fd| fs::write_all(fd, &[0x42u8; 3 * P]));
    // SAFETY: a fresh private mapping of this test's file.
    let m = fd.and_then(|fd| unsafe { mmap(0, 3 * P, Prot::RW, MapFlags::PRIVATE, fd, 0) });
    let (Ok(()), Ok(a)) = (written, m) else {
        c.check(
            "maps.tmpfs.map",
            false,
            format_args!("{:?} {:?}", written, m),
        );
        return;
    };
    let a = a as usize;
    // Every page is read: Linux's fault-around maps cached neighbours of a page read.
    let _ = read_pages(a, 3);
    let line = line_of(a);
    let named = NumaLine::parse(&line).is_some_and(|l| l.file() == Some(PATH));
    c.check("maps.tmpfs.file_name", named, format_args!("{:?}", line));
    expect(
        c,
        "maps.tmpfs.read_pages_dirty",
        &line,
        3,
        &[
            ("anon", None),
            ("dirty", Some(3)),
            ("mapped", None),
            ("mapmax", None),
        ],
    );
    touch(a + 2 * P, 1, 9);
    expect(
        c,
        "maps.tmpfs.copy_is_anon",
        &line_of(a),
        3,
        &[("anon", Some(1)), ("dirty", Some(3)), ("mapped", None)],
    );
    // SAFETY: unmapping this test's mapping.
    let _ = unsafe { munmap(a as *mut u8, 3 * P) };
    if let Ok(fd) = fd {
        let _ = fs::close(fd);
    }
    let _ = fs::unlinkat(fs::AT_FDCWD, c"/tmp/numa_maps.file", 0);
}

/// The heap (grown with brk) and the stack. (The program's text is not checked:
/// Linux maps it from the file, `file=/prog`, while Peios loads a program into
/// anonymous memory.)
fn heap_stack(c: &mut Checks) {
    // SAFETY: brk(0) only asks; growing maps fresh memory nothing else uses.
    let base = unsafe { peios_rt::sys::mm::brk(0) };
    // SAFETY: as above.
    let grown = unsafe { peios_rt::sys::mm::brk(base + 4 * P) };
    if grown < base + 4 * P {
        c.check(
            "maps.heap.brk",
            false,
            format_args!("{:#x} -> {:#x}", base, grown),
        );
    } else {
        let first = base.next_multiple_of(P);
        touch(first, 3, 5);
        let line = line_of(first);
        let l = NumaLine::parse(&line).unwrap_or_default();
        // Alone (Linux randomises the break's start), the heap holds the three pages;
        // joined to the data segment's anonymous memory (a break right after it),
        // what that holds too.
        let counts_ok = if l.start == first {
            l.pages() == 3 && l.get("dirty") == Some(3)
        } else {
            l.pages() >= 3 && l.get("dirty").is_some_and(|d| d >= 3)
        };
        c.check(
            "maps.heap",
            l.has_tag("heap")
                && l.format_error().is_none()
                && counts_ok
                && l.get("anon") == Some(l.pages()),
            format_args!("{:?}", line),
        );
        // SAFETY: nothing uses the memory given back.
        unsafe { peios_rt::sys::mm::brk(base) };
    }
    let local = 0u64;
    let line = line_of(core::ptr::addr_of!(local) as usize);
    let l = NumaLine::parse(&line).unwrap_or_default();
    c.check(
        "maps.stack",
        l.has_tag("stack")
            && l.format_error().is_none()
            && l.pages() > 0
            && l.get("anon") == Some(l.pages())
            && l.get("dirty").is_some()
            && l.get("mapped").is_none(),
        format_args!("{:?}", line),
    );
}

/// Private and shared MAP_HUGETLB memory, from a pool of two pages on node 0 (skipped,
/// with a line saying so, when the pool cannot be filled).
fn hugetlb(c: &mut Checks) {
    const HUGE: usize = 2 << 20;
    const POOL: &str = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
    let old = read_file(POOL).unwrap_or_default();
    let filled = write_file(POOL, "2").is_ok()
        && read_file(POOL).is_ok_and(|s| s.trim().parse::<u32>().is_ok_and(|n| n >= 2));
    if !filled {
        println!("numa: maps.hugetlb skipped: no pool of two 2 MiB pages on node 0");
        return;
    }
    let anon_file = escaped("/anon_hugepage (deleted)");
    for (name, flags, want_anon) in [
        ("maps.hugetlb.private", MapFlags::PRIVATE, Some(1)),
        ("maps.hugetlb.shared", MapFlags::SHARED, None),
    ] {
        // SAFETY: a fresh mapping of this test's own.
        let m = unsafe {
            mmap(
                0,
                HUGE,
                Prot::RW,
                flags | MapFlags::ANONYMOUS | MapFlags::HUGETLB,
                -1,
                0,
            )
        };
        let Ok(a) = m else {
            c.check(name, false, format_args!("mmap {:?}", m));
            continue;
        };
        let a = a as usize;
        touch(a, 1, 3);
        let line = line_of(a);
        let l = NumaLine::parse(&line).unwrap_or_default();
        c.check(
            &format!("{}_tags", name),
            l.file() == Some(anon_file.as_str()) && l.has_tag("huge"),
            format_args!("{:?}", line),
        );
        expect(
            c,
            &format!("{}_counts", name),
            &line,
            1,
            &[
                ("anon", want_anon),
                ("dirty", Some(1)),
                ("mapped", None),
                ("mapmax", None),
                ("active", None),
                ("kernelpagesize_kB", Some(2048)),
            ],
        );
        // SAFETY: unmapping the mapping made above.
        let _ = unsafe { munmap(a as *mut u8, HUGE) };
    }
    let _ = write_file(POOL, old.trim());
}

/// Every numa_maps check.
pub fn run(c: &mut Checks) {
    every_line(c, "maps.every_line_at_start");
    anonymous(c);
    memfd(c);
    tmpfs_file(c);
    heap_stack(c);
    hugetlb(c);
    every_line(c, "maps.every_line_at_end");
}
