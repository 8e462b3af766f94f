//! Read-only `/proc` and `/sys` text files, generated at open in Linux's formats (the
//! per-VMA ones, `maps`, `smaps` and `numa_maps`, a bounded batch of VMAs per read). Files
//! about another process are gated by its security descriptor: PROCESS_QUERY_INFORMATION
//! (and PIP dominance) for maps, smaps, status, numa_maps, pagemap, oom_score and damon; physical
//! frame numbers in pagemap only for SeTcbPrivilege holders.

#![deny(unsafe_code)]

use crate::{
    mem::{aspace::AddressSpace, frames},
    proc::{self, Process},
};
use alloc::{format, string::String, sync::Arc, vec::Vec};
use core::fmt::Write;
use errno::{Errno, SysResult};
use mm::frame::{
    report::{self, MeminfoExtra},
    NodeId,
};
use mm::hugetlb::HugeSize;
use security::{AccessMask, Privilege};

/// `/proc/interrupts`: Linux's layout, with the per-CPU lines this kernel counts
/// (local timer and wake IPIs).
fn interrupts() -> String {
    let cpus = crate::smp::online_cpus() as u32;
    let blocks = || (0..cpus).filter_map(|c| crate::arch::percpu::get(sched::CpuId(c)));
    let mut out = String::new();
    let _ = write!(out, "    ");
    for cpu in 0..cpus {
        let _ = write!(out, " {:>10}", format!("CPU{cpu}"));
    }
    let _ = writeln!(out);
    let mut line = |name: &str, what: &str, count: &dyn Fn(&crate::arch::percpu::PerCpu) -> u64| {
        let _ = write!(out, "{name:>4}:");
        for block in blocks() {
            let _ = write!(out, " {:>10}", count(block));
        }
        let _ = writeln!(out, "   {what}");
    };
    line("LOC", "Local timer interrupts", &|b| {
        b.timer_interrupts
            .load(core::sync::atomic::Ordering::Relaxed)
    });
    line("RES", "Rescheduling interrupts", &|b| {
        b.wake_interrupts
            .load(core::sync::atomic::Ordering::Relaxed)
    });
    out
}

/// `/proc/mounts`: one line per mount (`device point type options 0 0`).
fn mounts() -> String {
    let mut out = String::new();
    for (at, fs) in crate::vfs::mount::mounts() {
        let mode = if crate::vfs::mount::is_read_only(&at) {
            "ro"
        } else {
            "rw"
        };
        let _ = writeln!(out, "{fs} {at} {fs} {mode} 0 0");
    }
    out
}

/// System-wide files (no access check).
pub fn read(path: &str) -> Option<String> {
    let alloc = frames::allocator();
    let commitment = crate::mem::aspace::tunables().commitment();
    let pools = crate::mem::hugetlb::pools();
    let swap = crate::memd::swap::swap();
    let (swap_total, swap_free) = swap.totals();
    let extra = MeminfoExtra {
        hugepages_total: pools.total(HugeSize::Mib2),
        hugepages_free: pools.free_total(HugeSize::Mib2),
        hugepages_rsvd: pools.reserved(HugeSize::Mib2),
        hugepage_size_kib: HugeSize::Mib2.kib(),
        hugetlb_kib: pools.frames_held() * 4,
        cached: mm::frame::PageCount(
            crate::initramfs::page_cache_pages() + crate::memd::reclaim::file_cache_pages(),
        ),
        commit_limit: mm::frame::PageCount(commitment.limit_pages()),
        committed_as: mm::frame::PageCount(commitment.committed_pages()),
        slab_unreclaimable: mm::frame::PageCount(
            crate::mem::heap::stats().allocated_bytes as u64 / 4096,
        ),
        page_tables: mm::frame::PageCount(crate::mem::pagetable::table_pages()),
        swap_total: mm::frame::PageCount(swap_total),
        swap_free: mm::frame::PageCount(swap_free),
        swap_cached: mm::frame::PageCount(swap.cached_pages()),
        shmem: mm::frame::PageCount(mm::swap::shmem::shmem_totals().0),
        ..MeminfoExtra::default()
    };
    let anon_huge = || anon_huge_heads();
    match path {
        "/proc/meminfo" => {
            let heads = anon_huge();
            let extra = MeminfoExtra {
                anon_huge_pages: mm::frame::PageCount(heads.len() as u64 * 512),
                ..extra
            };
            Some(report::meminfo(alloc, &extra))
        }
        // Linux's one file: the page and THP counters, then swap and reclaim's.
        "/proc/vmstat" => Some(
            vmstat(alloc, anon_huge().len() as u64)
                + &crate::memd::vmstat::proc_vmstat()
                + &format!("damos_pageout {}\n", crate::memd::damon::paged_out()),
        ),
        "/proc/swaps" => Some(crate::memd::swap::proc_swaps()),
        "/proc/diskstats" => Some(crate::memd::swap::proc_diskstats()),
        "/proc/stat" => Some(system_stat()),
        "/proc/zoneinfo" => Some(report::zoneinfo(alloc)),
        "/proc/buddyinfo" => Some(report::buddyinfo(alloc)),
        "/proc/sys/peios/registry" => Some(crate::registry::listing()),
        "/proc/interrupts" => Some(interrupts()),
        "/proc/mounts" => Some(mounts()),
        "/proc/loadavg" => {
            let (tasks, last_pid) = crate::proc::limits::nr_tasks_and_last_pid();
            Some(format!("0.00 0.00 0.00 1/{tasks} {last_pid}\n"))
        }
        "/proc/sys/peios/heap" => {
            let h = crate::mem::heap::stats();
            Some(format!(
                "arena_kB {}\ngrown_kB {}\nlimit_kB {}\nallocated_kB {}\nfailed_grows {}\n",
                h.arena_bytes >> 10,
                h.grown_bytes >> 10,
                h.limit_bytes >> 10,
                h.allocated_bytes >> 10,
                h.failed_grows
            ))
        }
        _ => {
            if let Some(name) = path.strip_prefix("/sys/devices/system/cpu/") {
                return cpu_file(name);
            }
            if let Some(name) = path.strip_prefix("/sys/kernel/mm/ksm/") {
                let s = crate::memd::ksmd::stats();
                let value = match name {
                    "pages_shared" => s.pages_shared,
                    "pages_sharing" => s.pages_sharing,
                    "full_scans" => s.full_scans,
                    _ => return None,
                };
                return Some(format!("{value}\n"));
            }
            if let Some(name) = path.strip_prefix("/sys/kernel/mm/transparent_hugepage/") {
                let thp = crate::mem::aspace::tunables().thp();
                let c = &thp.counters;
                let value = match name {
                    "khugepaged/full_scans" => {
                        c.full_scans.load(core::sync::atomic::Ordering::Relaxed)
                    }
                    "khugepaged/pages_collapsed" => c
                        .pages_collapsed
                        .load(core::sync::atomic::Ordering::Relaxed),
                    "hpage_pmd_size" => 2 << 20,
                    _ => return None,
                };
                return Some(format!("{value}\n"));
            }
            if let Some(rest) = path.strip_prefix("/sys/kernel/mm/hugepages/") {
                if let Some(dir) = rest.strip_suffix("/resv_hugepages") {
                    return Some(format!("{}\n", pools.reserved(pool_size(dir)?)));
                }
                let size = pool_size(rest.strip_suffix("/free_hugepages")?)?;
                return Some(format!("{}\n", pools.free_total(size)));
            }
            let rest = path.strip_prefix("/sys/devices/system/node/node")?;
            let (node, file) = rest.split_once('/')?;
            let node = NodeId(node.parse().ok()?);
            alloc.node_stats(node)?;
            match file {
                "meminfo" => {
                    let on_node = anon_huge()
                        .into_iter()
                        .filter(|&pfn| alloc.node_of(pfn) == Some(node))
                        .count() as u64;
                    let extra = MeminfoExtra {
                        anon_huge_pages: mm::frame::PageCount(on_node * 512),
                        hugepages_total: pools.count(node, HugeSize::Mib2),
                        hugepages_free: pools.free_count(node, HugeSize::Mib2),
                        ..extra
                    };
                    report::node_meminfo(alloc, node, &extra)
                }
                "numastat" => report::node_numastat(alloc, node),
                _ => {
                    let dir = file
                        .strip_prefix("hugepages/")?
                        .strip_suffix("/free_hugepages")?;
                    Some(format!("{}\n", pools.free_count(node, pool_size(dir)?)))
                }
            }
        }
    }
}

/// The files of `/sys/devices/system/cpu/` (`name` relative to it): the lists of
/// possible, present and online CPUs (Linux's range format, `0-3`) and each online
/// CPU's `cpuN/online`.
fn cpu_file(name: &str) -> Option<String> {
    let count = crate::smp::online_cpus();
    match name {
        "online" | "possible" | "present" => Some(match count {
            0 | 1 => String::from("0\n"),
            n => format!("0-{}\n", n - 1),
        }),
        _ => {
            let cpu: u32 = name
                .strip_prefix("cpu")?
                .strip_suffix("/online")?
                .parse()
                .ok()?;
            (cpu < count).then(|| String::from("1\n"))
        }
    }
}

/// The first frames of every anonymous huge page mapped anywhere, each once (a page
/// a fork shares is mapped in two processes).
fn anon_huge_heads() -> alloc::collections::BTreeSet<mm::frame::Pfn> {
    let mut heads = alloc::collections::BTreeSet::new();
    let mut seen_spaces = alloc::collections::BTreeSet::new();
    for process in proc::all() {
        let space = process.address_space();
        if seen_spaces.insert(space.id()) {
            space.mm().anon_huge_pages(&mut |pfn| {
                heads.insert(pfn);
            });
        }
    }
    heads
}

/// `/proc/vmstat`: the counters this kernel keeps, in Linux's `name value` lines.
fn vmstat(alloc: &mm::frame::FrameAllocator, anon_thps: u64) -> String {
    use core::sync::atomic::Ordering::Relaxed;
    let free: u64 = (0..alloc.nr_nodes() as u32)
        .filter_map(|n| alloc.node_stats(NodeId(n)))
        .map(|s| s.free_buddy.0 + s.free_cached.0 + s.free_queued.0)
        .sum();
    let c = &crate::mem::aspace::tunables().thp().counters;
    let (pool_ready, pool_hits, pool_misses) = crate::mem::thp_pool::stats();
    let mut out = String::new();
    let mut line = |name: &str, v: u64| {
        let _ = writeln!(out, "{name} {v}");
    };
    line("nr_free_pages", free);
    line("nr_anon_transparent_hugepages", anon_thps);
    line("nr_page_table_pages", crate::mem::pagetable::table_pages());
    line("thp_fault_alloc", c.fault_alloc.load(Relaxed));
    line("thp_fault_fallback", c.fault_fallback.load(Relaxed));
    line("thp_collapse_alloc", c.collapse_alloc.load(Relaxed));
    line(
        "thp_collapse_alloc_failed",
        c.collapse_alloc_failed.load(Relaxed),
    );
    line("thp_split_pmd", crate::mem::pagetable::huge_splits());
    // This kernel's own: the idle-time pre-zeroed huge pages.
    line("thp_prezeroed_ready", pool_ready);
    line("thp_prezeroed_used", pool_hits);
    line("thp_prezeroed_missed", pool_misses);
    out
}

/// The pool size a `hugepages-<K>kB` directory names.
fn pool_size(dir: &str) -> Option<HugeSize> {
    HugeSize::from_kib(
        dir.strip_prefix("hugepages-")?
            .strip_suffix("kB")?
            .parse()
            .ok()?,
    )
}

/// Resolves `/proc/<pid|tid|self>/<file>` to the target process and file name.
pub fn process_file<'a>(
    caller: &Arc<Process>,
    path: &'a str,
) -> SysResult<Option<(Arc<Process>, &'a str)>> {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return Ok(None);
    };
    let Some((who, file)) = rest.split_once('/') else {
        return Ok(None);
    };
    let target = if who == "self" {
        caller.clone()
    } else {
        let Ok(pid) = who.parse() else {
            return Ok(None);
        };
        // A thread's tid names its process here too (Linux's hidden /proc/<tid>).
        proc::process_by_id(pid).map_err(|_| Errno::ENOENT)?
    };
    Ok(Some((target, file)))
}

/// Checks that `caller` may open `target`'s introspection files with `desired`; EACCES.
pub fn check_introspection(
    caller: &Process,
    target: &Process,
    desired: AccessMask,
) -> SysResult<()> {
    proc::check_access(caller, target, desired).map_err(|_| Errno::EACCES)
}

/// Opens a generated file: system-wide ones, or another process's (access-checked).
pub fn open(caller: &Arc<Process>, path: &str) -> SysResult<Option<Vec<u8>>> {
    if let Some(text) = read(path) {
        return Ok(Some(text.into_bytes()));
    }
    if path == "/proc/kallsyms" {
        return Ok(Some(kallsyms(may_see_pfns(caller)).into_bytes()));
    }
    let Some((target, file)) = process_file(caller, path)? else {
        return Ok(None);
    };
    let text = match file {
        "status" | "oom_score" | "damon" => {
            check_introspection(caller, &target, AccessMask::PROCESS_QUERY_INFORMATION)?;
            let space = target.address_space();
            match file {
                "oom_score" => format!("{}\n", crate::memd::oom::score(&target)),
                "damon" => crate::memd::damon::report(target.pid),
                _ => status(&target, &space),
            }
        }
        "stat" => {
            check_introspection(
                caller,
                &target,
                AccessMask::PROCESS_QUERY_LIMITED_INFORMATION,
            )?;
            process_stat(&target)
        }
        "cmdline" => {
            check_introspection(
                caller,
                &target,
                AccessMask::PROCESS_QUERY_LIMITED_INFORMATION,
            )?;
            return Ok(Some(cmdline(&target)?));
        }
        "comm" => {
            check_introspection(
                caller,
                &target,
                AccessMask::PROCESS_QUERY_LIMITED_INFORMATION,
            )?;
            // TASK_COMM_LEN: 15 bytes and the NUL.
            let name = target.name.lock();
            let cut = name
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .take_while(|&e| e <= 15)
                .last()
                .unwrap_or(0);
            format!("{}\n", &name[..cut])
        }
        "oom_score_adj" => {
            check_introspection(
                caller,
                &target,
                AccessMask::PROCESS_QUERY_LIMITED_INFORMATION,
            )?;
            format!(
                "{}\n",
                target
                    .oom_score_adj
                    .load(core::sync::atomic::Ordering::Relaxed)
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(text.into_bytes()))
}

/// Longest `/proc/<pid>/cmdline` shown (Linux shows the whole argument area; ours is
/// bounded by exec's argument limit anyway).
const CMDLINE_MAX: u64 = 256 << 10;

/// `/proc/<pid>/cmdline`: the argument strings, NUL after each, read from the
/// process's memory where exec put them; empty for a process without (a zombie, or
/// memory no longer mapped there); ENOMEM when the heap cannot hold the copy.
fn cmdline(target: &Process) -> SysResult<Vec<u8>> {
    let space = target.address_space();
    let (start, end) = space.mm().arg_range();
    let len = end.saturating_sub(start).min(CMDLINE_MAX) as usize;
    let mut bytes = crate::mem::kbuf::zeroed(len)?;
    if space.mm().read_bytes(start, &mut bytes).is_err() {
        bytes.clear();
    }
    Ok(bytes)
}

/// A per-VMA file of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaFile {
    /// `maps`.
    Maps,
    /// `smaps`.
    Smaps,
    /// `numa_maps`.
    NumaMaps,
}

impl VmaFile {
    /// The file `name` names in `/proc/<pid>/`.
    pub fn from_name(name: &str) -> Option<VmaFile> {
        match name {
            "maps" => Some(VmaFile::Maps),
            "smaps" => Some(VmaFile::Smaps),
            "numa_maps" => Some(VmaFile::NumaMaps),
            _ => None,
        }
    }

    /// VMAs rendered per batch (a few KiB of text: an smaps block is about 1 KiB).
    fn batch_vmas(self) -> usize {
        match self {
            VmaFile::Maps | VmaFile::NumaMaps => 64,
            VmaFile::Smaps => 8,
        }
    }
}

/// An open per-VMA file: where the next batch starts and the rendered text not yet read.
#[derive(Clone)]
pub struct VmaText {
    target: Arc<Process>,
    file: VmaFile,
    /// Text rendered and not yet read (from `pending_pos`).
    pending: String,
    pending_pos: usize,
    /// The address the next batch starts from; `None` once the last VMA was rendered.
    next: Option<u64>,
    /// Bytes read so far (the file offset).
    offset: u64,
}

impl VmaText {
    /// `target`'s `file`, positioned at its start (the caller checked access).
    pub fn new(target: Arc<Process>, file: VmaFile) -> VmaText {
        VmaText {
            target,
            file,
            pending: String::new(),
            pending_pos: 0,
            next: Some(0),
            offset: 0,
        }
    }

    /// The file offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Renders the next batch into `pending` (empty at the end).
    fn refill(&mut self) -> SysResult<()> {
        self.pending.clear();
        self.pending_pos = 0;
        let Some(from) = self.next else {
            return Ok(());
        };
        let space = self.target.address_space();
        let mm = space.mm();
        let n = self.file.batch_vmas();
        let out = &mut self.pending;
        let next = match self.file {
            VmaFile::Maps => mm::procfs::maps_batch(mm, from, n, out),
            VmaFile::Smaps => mm::procfs::smaps_batch(mm, from, n, out),
            VmaFile::NumaMaps => {
                mm::procfs::numa_maps_batch(mm, from, n, out, &|pfn| frames::node_of(pfn.0 * 4096))
            }
        };
        match next {
            Ok(next) => {
                self.next = next;
                Ok(())
            }
            // The lines that fit are kept; the rest is ENOMEM for this read.
            Err(_) if !self.pending.is_empty() => Ok(()),
            Err(e) => Err(Errno::from(e)),
        }
    }

    /// Moves up to `count` bytes on, handing each piece to `sink` (which copies it to
    /// the reader); returns the bytes moved. A piece the sink refuses ends the read
    /// with its error if nothing was moved yet.
    ///
    /// One read gives the text of one view of the address space, as Linux's seq_file
    /// does: what is left of the last batch, or else one new batch (rendered under one
    /// hold of the VMA-tree lock), never the two joined; so a read may be short. (Joined
    /// batches let one read show lines from two states of a changing address space:
    /// the mm fuzzer saw overlapping lines inside one read.)
    pub fn consume(
        &mut self,
        count: u64,
        mut sink: impl FnMut(u64, &[u8]) -> SysResult<()>,
    ) -> SysResult<u64> {
        if self.pending_pos == self.pending.len() && self.next.is_some() && count > 0 {
            self.refill()?;
        }
        let left = &self.pending.as_bytes()[self.pending_pos..];
        let n = left.len().min(usize::try_from(count).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        sink(0, &left[..n])?;
        self.pending_pos += n;
        self.offset += n as u64;
        Ok(n as u64)
    }

    /// `lseek` to byte `to`: back to the start and forward again if it lies behind
    /// (rendering and dropping what is skipped, a batch at a time).
    pub fn seek(&mut self, to: u64) -> SysResult<u64> {
        if to < self.offset {
            *self = VmaText::new(self.target.clone(), self.file);
        }
        while self.offset < to {
            if self.consume(to - self.offset, |_, _| Ok(()))? == 0 {
                break; // the end of the text
            }
        }
        Ok(self.offset)
    }
}

/// `/proc/<pid>/stat`: Linux's 52 fields. What the kernel does not count (faults, CPU
/// times, start time, signal masks) reads 0, and the address fields are 0 as Linux
/// shows them to a reader that may not ptrace the process.
fn process_stat(p: &Process) -> String {
    use core::sync::atomic::Ordering::Relaxed;
    let space = p.address_space();
    let mem = mm::procfs::status(space.mm());
    let state = if p.zombie.load(Relaxed) { 'Z' } else { 'R' };
    let cpu = p
        .threads
        .lock()
        .first()
        .map_or(0, |t| t.last_cpu.load(Relaxed));
    let name = p.name.lock().clone();
    format!(
        "{pid} ({name}) {state} {ppid} {pgrp} {sid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 {threads} 0 0 \
         {vsize} {rss} {rsslim} 0 0 0 0 0 0 0 0 0 0 0 0 17 {cpu} 0 0 0 0 0 0 0 0 0 0 0 0\n",
        pid = p.pid,
        ppid = p.ppid.load(Relaxed),
        pgrp = p.pgid.load(Relaxed),
        sid = p.sid.load(Relaxed),
        threads = p.live_threads.load(Relaxed),
        vsize = mem.vm_size << 10,
        rss = mem.vm_rss >> 2,
        rsslim = u64::MAX,
    )
}

/// `/proc/stat`: one line per CPU (no CPU time is accounted yet: zeros), the boot
/// time, and the process counters.
fn system_stat() -> String {
    let mut out = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
    for cpu in 0..crate::smp::online_cpus() {
        let _ = writeln!(out, "cpu{cpu} 0 0 0 0 0 0 0 0 0 0");
    }
    let boot = (crate::time::realtime_ns() - crate::time::now_ns()) / 1_000_000_000;
    let (tasks, last_pid) = crate::proc::limits::nr_tasks_and_last_pid();
    let _ = write!(
        out,
        "intr 0\nctxt 0\nbtime {boot}\nprocesses {last_pid}\nprocs_running {tasks}\nprocs_blocked 0\nsoftirq 0\n"
    );
    out
}

fn status(p: &Process, space: &AddressSpace) -> String {
    use core::sync::atomic::Ordering::Relaxed;
    let token = p.token.read();
    let ran = p
        .threads
        .lock()
        .iter()
        .fold(p.cpus_used.load(Relaxed), |m, t| {
            m | t.cpus_used.load(Relaxed)
        });
    format!(
        "Name:\t{}\nState:\tR (running)\nTgid:\t{}\nPid:\t{}\nPPid:\t{}\nUid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{g}\t{g}\t{g}\t{g}\n{}Threads:\t{}\nCpus_ran_list:\t{}\n",
        p.name.lock(),
        p.pid,
        p.pid,
        p.ppid.load(Relaxed),
        mm::procfs::status(space.mm()).format(),
        p.live_threads.load(Relaxed),
        cpu_list(ran),
        u = token.uid(),
        g = token.gid(),
    )
}

/// A CPU mask in Linux's list form (`0-2,5`).
fn cpu_list(mask: u64) -> String {
    let mut out = String::new();
    let mut cpu = 0;
    while cpu < 64 {
        if mask & (1 << cpu) == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu < 64 && mask & (1 << cpu) != 0 {
            cpu += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match cpu - 1 - first {
            0 => out.push_str(&format!("{first}")),
            _ => out.push_str(&format!("{first}-{}", cpu - 1)),
        }
    }
    out
}

/// `/proc/<pid>/pagemap` entry for user page `vaddr`: bit 63 present, bits 0-54 the PFN
/// (zero unless the reader holds SeTcbPrivilege).
pub fn pagemap_entry(space: &AddressSpace, vaddr: u64, show_pfn: bool) -> u64 {
    match space.frame_of(vaddr) {
        Some(phys) => {
            (1 << 63)
                | if show_pfn {
                    (phys >> 12) & ((1 << 55) - 1)
                } else {
                    0
                }
        }
        None => 0,
    }
}

/// Whether `caller` may see physical frame numbers.
pub fn may_see_pfns(caller: &Process) -> bool {
    caller.token.read().has_privilege(Privilege::SeTcbPrivilege)
}

/// `/proc/kallsyms`: a few kernel symbols; their addresses only for SeTcbPrivilege holders
/// (others see zeros, as Linux shows with `kptr_restrict`), so KASLR does not leak.
fn kallsyms(show: bool) -> String {
    let symbols = crate::arch::boot::kernel_symbols();
    let mut s = String::new();
    for (addr, kind, name) in symbols {
        let _ = writeln!(s, "{:016x} {} {}", if show { addr } else { 0 }, kind, name);
    }
    s
}
