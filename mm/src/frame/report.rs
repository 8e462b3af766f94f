//! Linux-format text for `/proc/meminfo`, `/proc/zoneinfo`, `/proc/buddyinfo`,
//! `/sys/devices/system/node/nodeN/{meminfo,numastat}`, built from allocator
//! snapshots plus the figures other subsystems own ([`MeminfoExtra`]).
//!
//! Every node has one zone, `Normal`. Free memory counts frames in CPU caches and
//! remote-free queues too (Linux leaves per-CPU lists out of `MemFree`), so that
//! free + used always equals total. `/proc/zoneinfo` carries Peios counters after
//! Linux's `numa_*` lines: `pgalloc`, `pgfree`, `remote_free`, `zeroed_pages`,
//! `zero_ns`, `alloc_waits`, `reclaim_wakeups`, `oom_calls`.

use alloc::string::String;
use core::fmt::Write;

use super::allocator::FrameAllocator;
use super::stats::NodeStats;
use super::types::{NodeId, PageCount};

/// Writes to a `String`, which cannot fail.
macro_rules! out {
    ($dst:expr, $($arg:tt)*) => {{
        let _ = write!($dst, $($arg)*);
    }};
}

/// Figures of `/proc/meminfo` that subsystems other than the frame allocator own;
/// zero until they exist. Page counts unless the name says KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MeminfoExtra {
    pub buffers: PageCount,
    pub cached: PageCount,
    pub swap_cached: PageCount,
    pub active_anon: PageCount,
    pub inactive_anon: PageCount,
    pub active_file: PageCount,
    pub inactive_file: PageCount,
    pub unevictable: PageCount,
    pub mlocked: PageCount,
    pub swap_total: PageCount,
    pub swap_free: PageCount,
    pub dirty: PageCount,
    pub writeback: PageCount,
    pub anon_pages: PageCount,
    pub mapped: PageCount,
    pub shmem: PageCount,
    /// Reclaimable kernel memory other than slab.
    pub kreclaimable_other: PageCount,
    pub slab_reclaimable: PageCount,
    pub slab_unreclaimable: PageCount,
    pub kernel_stack_kib: u64,
    pub page_tables: PageCount,
    pub commit_limit: PageCount,
    pub committed_as: PageCount,
    pub vmalloc_total_kib: u64,
    pub vmalloc_used_kib: u64,
    pub percpu: PageCount,
    pub anon_huge_pages: PageCount,
    pub shmem_huge_pages: PageCount,
    pub file_huge_pages: PageCount,
    /// Huge pages of the default size in the hugetlb pool.
    pub hugepages_total: u64,
    pub hugepages_free: u64,
    pub hugepages_rsvd: u64,
    pub hugepages_surp: u64,
    /// The default huge page size (Linux shows 2048 kB on x86_64).
    pub hugepage_size_kib: u64,
    pub hugetlb_kib: u64,
    pub direct_map_4k_kib: u64,
    pub direct_map_2m_kib: u64,
    pub direct_map_1g_kib: u64,
}

/// Writes `label` and `value` padded to Linux's 24-column layout, then ` kB` if asked.
fn field(out: &mut String, prefix: &str, name: &str, value: u64, kb: bool) {
    let width = 23usize.saturating_sub(name.len()).max(1);
    out!(
        out,
        "{prefix}{name}:{value:>width$}{}\n",
        if kb { " kB" } else { "" }
    );
}

fn pages(out: &mut String, prefix: &str, name: &str, p: PageCount) {
    field(out, prefix, name, p.kib(), true);
}

/// Totals over all nodes.
/// `(present, free, low watermark, high watermark)` summed over the nodes: MemTotal and
/// MemFree, and what sysinfo(2) reports.
pub fn totals(alloc: &FrameAllocator) -> (PageCount, PageCount, PageCount, PageCount) {
    let (mut total, mut free, mut low, mut high) =
        (PageCount(0), PageCount(0), PageCount(0), PageCount(0));
    for n in 0..alloc.nr_nodes() {
        if let Some(s) = alloc.node_stats(NodeId(n as u32)) {
            total += s.present;
            free += s.free();
            low += s.watermarks.low;
            high += s.watermarks.high;
        }
    }
    (total, free, low, high)
}

/// Linux's `si_mem_available`: free memory minus reserves, plus the part of page
/// cache and reclaimable kernel memory that can be freed without swapping.
fn mem_available(
    free: PageCount,
    low: PageCount,
    reserve: PageCount,
    x: &MeminfoExtra,
) -> PageCount {
    let mut avail = free.0 as i64 - reserve.0 as i64;
    let pagecache = x.active_file.0 + x.inactive_file.0;
    avail += (pagecache - (pagecache / 2).min(low.0)) as i64;
    let reclaimable = x.slab_reclaimable.0 + x.kreclaimable_other.0;
    avail += (reclaimable - (reclaimable / 2).min(low.0)) as i64;
    PageCount(avail.max(0) as u64)
}

/// `/proc/meminfo`.
pub fn meminfo(alloc: &FrameAllocator, x: &MeminfoExtra) -> String {
    let (total, free, low, high) = totals(alloc);
    let mut s = String::new();
    let o = &mut s;
    pages(o, "", "MemTotal", total);
    pages(o, "", "MemFree", free);
    pages(o, "", "MemAvailable", mem_available(free, low, high, x));
    pages(o, "", "Buffers", x.buffers);
    pages(o, "", "Cached", x.cached);
    pages(o, "", "SwapCached", x.swap_cached);
    pages(o, "", "Active", x.active_anon + x.active_file);
    pages(o, "", "Inactive", x.inactive_anon + x.inactive_file);
    pages(o, "", "Active(anon)", x.active_anon);
    pages(o, "", "Inactive(anon)", x.inactive_anon);
    pages(o, "", "Active(file)", x.active_file);
    pages(o, "", "Inactive(file)", x.inactive_file);
    pages(o, "", "Unevictable", x.unevictable);
    pages(o, "", "Mlocked", x.mlocked);
    pages(o, "", "SwapTotal", x.swap_total);
    pages(o, "", "SwapFree", x.swap_free);
    pages(o, "", "Dirty", x.dirty);
    pages(o, "", "Writeback", x.writeback);
    pages(o, "", "AnonPages", x.anon_pages);
    pages(o, "", "Mapped", x.mapped);
    pages(o, "", "Shmem", x.shmem);
    pages(
        o,
        "",
        "KReclaimable",
        x.slab_reclaimable + x.kreclaimable_other,
    );
    pages(o, "", "Slab", x.slab_reclaimable + x.slab_unreclaimable);
    pages(o, "", "SReclaimable", x.slab_reclaimable);
    pages(o, "", "SUnreclaim", x.slab_unreclaimable);
    field(o, "", "KernelStack", x.kernel_stack_kib, true);
    pages(o, "", "PageTables", x.page_tables);
    pages(o, "", "NFS_Unstable", PageCount(0));
    pages(o, "", "Bounce", PageCount(0));
    pages(o, "", "WritebackTmp", PageCount(0));
    pages(o, "", "CommitLimit", x.commit_limit);
    pages(o, "", "Committed_AS", x.committed_as);
    field(o, "", "VmallocTotal", x.vmalloc_total_kib, true);
    field(o, "", "VmallocUsed", x.vmalloc_used_kib, true);
    field(o, "", "VmallocChunk", 0, true);
    pages(o, "", "Percpu", x.percpu);
    field(o, "", "HardwareCorrupted", 0, true);
    pages(o, "", "AnonHugePages", x.anon_huge_pages);
    pages(o, "", "ShmemHugePages", x.shmem_huge_pages);
    pages(o, "", "ShmemPmdMapped", PageCount(0));
    pages(o, "", "FileHugePages", x.file_huge_pages);
    pages(o, "", "FilePmdMapped", PageCount(0));
    field(o, "", "HugePages_Total", x.hugepages_total, false);
    field(o, "", "HugePages_Free", x.hugepages_free, false);
    field(o, "", "HugePages_Rsvd", x.hugepages_rsvd, false);
    field(o, "", "HugePages_Surp", x.hugepages_surp, false);
    field(o, "", "Hugepagesize", x.hugepage_size_kib, true);
    field(o, "", "Hugetlb", x.hugetlb_kib, true);
    field(o, "", "DirectMap4k", x.direct_map_4k_kib, true);
    field(o, "", "DirectMap2M", x.direct_map_2m_kib, true);
    field(o, "", "DirectMap1G", x.direct_map_1g_kib, true);
    s
}

/// `/sys/devices/system/node/nodeN/meminfo` (`None` for an unknown node); `x`
/// holds the node's share of the other subsystems' figures.
pub fn node_meminfo(alloc: &FrameAllocator, node: NodeId, x: &MeminfoExtra) -> Option<String> {
    let st = alloc.node_stats(node)?;
    let prefix = alloc::format!("Node {} ", node.0);
    let p = prefix.as_str();
    let mut s = String::new();
    let o = &mut s;
    pages(o, p, "MemTotal", st.present);
    pages(o, p, "MemFree", st.free());
    pages(o, p, "MemUsed", st.used());
    pages(o, p, "SwapCached", x.swap_cached);
    pages(o, p, "Active", x.active_anon + x.active_file);
    pages(o, p, "Inactive", x.inactive_anon + x.inactive_file);
    pages(o, p, "Active(anon)", x.active_anon);
    pages(o, p, "Inactive(anon)", x.inactive_anon);
    pages(o, p, "Active(file)", x.active_file);
    pages(o, p, "Inactive(file)", x.inactive_file);
    pages(o, p, "Unevictable", x.unevictable);
    pages(o, p, "Mlocked", x.mlocked);
    pages(o, p, "Dirty", x.dirty);
    pages(o, p, "Writeback", x.writeback);
    pages(o, p, "FilePages", x.cached + x.buffers);
    pages(o, p, "Mapped", x.mapped);
    pages(o, p, "AnonPages", x.anon_pages);
    pages(o, p, "Shmem", x.shmem);
    field(o, p, "KernelStack", x.kernel_stack_kib, true);
    pages(o, p, "PageTables", x.page_tables);
    pages(o, p, "NFS_Unstable", PageCount(0));
    pages(o, p, "Bounce", PageCount(0));
    pages(o, p, "WritebackTmp", PageCount(0));
    pages(
        o,
        p,
        "KReclaimable",
        x.slab_reclaimable + x.kreclaimable_other,
    );
    pages(o, p, "Slab", x.slab_reclaimable + x.slab_unreclaimable);
    pages(o, p, "SReclaimable", x.slab_reclaimable);
    pages(o, p, "SUnreclaim", x.slab_unreclaimable);
    pages(o, p, "AnonHugePages", x.anon_huge_pages);
    pages(o, p, "ShmemHugePages", x.shmem_huge_pages);
    pages(o, p, "ShmemPmdMapped", PageCount(0));
    pages(o, p, "FileHugePages", x.file_huge_pages);
    pages(o, p, "FilePmdMapped", PageCount(0));
    // Linux prints the per-node huge page counts as "%5u" after one space.
    out!(o, "{p}HugePages_Total: {:>5}\n", x.hugepages_total);
    out!(o, "{p}HugePages_Free:  {:>5}\n", x.hugepages_free);
    out!(o, "{p}HugePages_Surp:  {:>5}\n", x.hugepages_surp);
    Some(s)
}

/// `/sys/devices/system/node/nodeN/numastat` (`None` for an unknown node).
pub fn node_numastat(alloc: &FrameAllocator, node: NodeId) -> Option<String> {
    let st = alloc.node_stats(node)?;
    let mut s = String::new();
    out!(
        s,
        "numa_hit {}\nnuma_miss {}\nnuma_foreign {}\n",
        st.numa_hit,
        st.numa_miss,
        st.numa_foreign
    );
    out!(
        s,
        "interleave_hit {}\nlocal_node {}\nother_node {}\n",
        st.interleave_hit,
        st.local_node,
        st.other_node
    );
    Some(s)
}

/// `/proc/buddyinfo`: free blocks per order, orders 0 to 18.
pub fn buddyinfo(alloc: &FrameAllocator) -> String {
    let mut s = String::new();
    for n in 0..alloc.nr_nodes() {
        let Some(st) = alloc.node_stats(NodeId(n as u32)) else {
            continue;
        };
        if st.present.0 == 0 {
            continue;
        }
        out!(s, "Node {}, zone {:>8} ", n, "Normal");
        for count in st.nr_free {
            out!(s, "{count:>6} ");
        }
        s.push('\n');
    }
    s
}

fn zone_stat(s: &mut String, name: &str, value: u64) {
    out!(s, "\n      {name:<12} {value}");
}

fn zone(alloc: &FrameAllocator, s: &mut String, st: &NodeStats) {
    let w = st.watermarks;
    out!(s, "Node {}, zone {:>8}", st.node.0, "Normal");
    out!(s, "\n  pages free     {}", st.free().0);
    out!(s, "\n        boost    0");
    out!(s, "\n        min      {}", w.min.0);
    out!(s, "\n        low      {}", w.low.0);
    out!(s, "\n        high     {}", w.high.0);
    out!(s, "\n        spanned  {}", st.spanned.0);
    out!(s, "\n        present  {}", st.present.0);
    out!(s, "\n        managed  {}", st.present.0);
    out!(s, "\n        cma      0");
    out!(s, "\n        protection: (0, 0, 0, 0)");
    zone_stat(s, "nr_free_pages", st.free().0);
    zone_stat(s, "nr_free_cma", 0);
    zone_stat(s, "numa_hit", st.numa_hit);
    zone_stat(s, "numa_miss", st.numa_miss);
    zone_stat(s, "numa_foreign", st.numa_foreign);
    zone_stat(s, "numa_interleave", st.interleave_hit);
    zone_stat(s, "numa_local", st.local_node);
    zone_stat(s, "numa_other", st.other_node);
    zone_stat(s, "pgalloc", st.pgalloc);
    zone_stat(s, "pgfree", st.pgfree);
    zone_stat(s, "remote_free", st.remote_frees);
    zone_stat(s, "zeroed_pages", st.zeroed_pages);
    zone_stat(s, "zero_ns", st.zero_ns);
    zone_stat(s, "alloc_waits", st.alloc_waits);
    zone_stat(s, "reclaim_wakeups", st.reclaim_wakeups);
    zone_stat(s, "oom_calls", st.oom_calls);
    out!(s, "\n  pagesets");
    for pc in alloc
        .cpu_cache_stats()
        .iter()
        .filter(|pc| pc.node == st.node)
    {
        out!(s, "\n    cpu: {}", pc.cpu.0);
        out!(s, "\n              count: {}", pc.count);
        out!(s, "\n              high:  {}", pc.high);
        out!(s, "\n              batch: {}", pc.batch);
    }
    out!(s, "\n  vm stats threshold: 0");
    out!(s, "\n  node_unreclaimable:  0");
    out!(s, "\n  start_pfn:           {}\n", st.start_pfn.0);
}

/// `/proc/zoneinfo`: one `Normal` zone per node with memory.
pub fn zoneinfo(alloc: &FrameAllocator) -> String {
    let mut s = String::new();
    for n in 0..alloc.nr_nodes() {
        if let Some(st) = alloc.node_stats(NodeId(n as u32)) {
            if st.present.0 != 0 {
                zone(alloc, &mut s, &st);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{DistanceMatrix, FrameConfig, NodeRange, Order, Policy};
    use sched::CpuId;

    fn two_nodes() -> FrameAllocator {
        let ranges = [
            NodeRange {
                node: NodeId(0),
                phys_start: 0x10_0000,
                phys_end: 0x110_0000,
            },
            NodeRange {
                node: NodeId(1),
                phys_start: 0x200_0000,
                phys_end: 0x300_0000,
            },
        ];
        let config = FrameConfig {
            min_free_kbytes: Some(256),
            ..FrameConfig::default()
        };
        FrameAllocator::new(
            &ranges,
            DistanceMatrix::uniform(2).unwrap(),
            &[NodeId(0), NodeId(1)],
            config,
        )
        .unwrap()
    }

    fn value(text: &str, label: &str) -> u64 {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in\n{text}"))
    }

    #[test]
    fn meminfo_has_linux_layout_and_totals() {
        let alloc = two_nodes();
        let mut cpu = alloc.try_cpu(CpuId(0)).unwrap();
        let held: alloc::vec::Vec<_> = (0..10).map(|_| cpu.alloc_frame().unwrap()).collect();
        let text = meminfo(
            &alloc,
            &MeminfoExtra {
                hugepage_size_kib: 2048,
                ..MeminfoExtra::default()
            },
        );
        let first = text.lines().next().unwrap();
        assert_eq!(first, "MemTotal:          32768 kB");
        assert_eq!(value(&text, "MemFree:"), 32768 - 40);
        assert!(text.contains("\nHugePages_Total:       0\n"));
        assert!(text.contains("\nHugepagesize:       2048 kB\n"));
        assert!(text.contains("\nHardwareCorrupted:     0 kB\n"));
        assert!(value(&text, "MemAvailable:") < 32768 - 40);
        for pfn in held {
            cpu.free_frame(pfn).unwrap();
        }
    }

    #[test]
    fn node_meminfo_and_numastat() {
        let alloc = two_nodes();
        let mut cpu = alloc.try_cpu(CpuId(1)).unwrap();
        cpu.alloc(Order::new(2).unwrap(), Policy::Preferred(NodeId(0)))
            .unwrap();
        let text = node_meminfo(&alloc, NodeId(0), &MeminfoExtra::default()).unwrap();
        assert!(text.starts_with(
            "Node 0 MemTotal:          16384 kB\nNode 0 MemFree:           16368 kB\n"
        ));
        assert!(text.contains("Node 0 MemUsed:              16 kB\n"));
        assert!(text.ends_with("Node 0 HugePages_Surp:      0\n"));
        assert!(node_meminfo(&alloc, NodeId(2), &MeminfoExtra::default()).is_none());
        let stat = node_numastat(&alloc, NodeId(0)).unwrap();
        assert_eq!(stat, "numa_hit 1\nnuma_miss 0\nnuma_foreign 0\ninterleave_hit 0\nlocal_node 0\nother_node 1\n");
    }

    #[test]
    fn buddyinfo_and_zoneinfo() {
        let alloc = two_nodes();
        let text = buddyinfo(&alloc);
        let line = text.lines().next().unwrap();
        assert!(line.starts_with("Node 0, zone   Normal      0 "));
        // 16 MiB at 1 MiB: 256 frames of order 8, then 3 * 2 MiB ... as maximal blocks.
        assert_eq!(line.split_whitespace().count(), 4 + 19);
        let z = zoneinfo(&alloc);
        assert!(z.starts_with(
            "Node 0, zone   Normal\n  pages free     4096\n        boost    0\n        min      "
        ));
        assert_eq!(value(&z, "present"), 4096);
        assert_eq!(value(&z, "start_pfn:"), 0x100);
        assert!(z.contains("\n      nr_free_pages 4096\n"));
        assert!(z.contains("\n      numa_hit     0\n"));
        assert!(z.contains("\n    cpu: 1\n              count: 0\n              high:  128\n              batch: 32\n"));
        assert_eq!(z.matches("Node ").count(), 2);
    }
}
