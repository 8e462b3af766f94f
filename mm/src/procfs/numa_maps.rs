//! `/proc/<pid>/numa_maps`, as Linux 6.12's `show_numa_map` prints it: per VMA
//! `<start> <policy>`, then `file=<path>` (escaped as `seq_path` escapes it), or `heap`
//! or `stack` for the initial ones, `huge` for hugetlb memory; then, only when a page
//! is resident, `anon=`, `dirty=`, `mapped=`, `mapmax=`, `swapcache=`, `active=`,
//! `writeback=` (each where Linux prints it), `N<node>=` per node and
//! `kernelpagesize_kB=`.
//!
//! The counts, per resident page as Linux's `gather_stats` takes them:
//! - pages: present entries whose frame is on a known node; a hugetlb page counts
//!   once (Linux counts one per huge entry), a transparent huge page as its 512 pages.
//!   Printed as `mapped=` only when it differs from both `anon` and `dirty`.
//! - `anon`: anonymous pages: private anonymous memory, the private copies a write
//!   made in a file mapping, KSM pages, a private hugetlb mapping's own pages.
//! - `dirty`: the entry's dirty bit, or the page is in the page cache of shared
//!   memory (tmpfs, memfd, shared anonymous memory, a hugetlb file or shared hugetlb
//!   mapping). Approximated: no per-frame dirty flag is kept, so a shared-memory page
//!   counts dirty once it is in the cache, where Linux's folio is dirty once written
//!   (write(2), a write fault, fallocate); a shmem page only read from a hole is
//!   clean on Linux and dirty here. (smaps' `*_Dirty` uses the same rule.)
//! - `mapmax`: the most mappings of one page: its frame's reference count less the
//!   references that are not mappings (the page cache's, KSM's on a stable frame,
//!   the swap cache's, a shared hugetlb page's table reference). Approximated: a
//!   transient pin (a migration, a KSM scan, a kernel copy in flight) counts as one
//!   more mapping while it lasts; Linux's map count has no such pins.
//! - `swapcache`, `writeback`: anonymous pages the swap cache holds while mapped
//!   (read back for one entry while others still name the slot, or mapped again
//!   during their write-out), and those whose write-out is in flight. Unlike Linux, a
//!   swap-in by the last entry naming a slot drops it from the cache at once, so a
//!   page read back by its only mapper is not in the swap cache here.
//! - `active`: Linux counts folios on the active LRU list, or unevictable. There is
//!   no LRU list here: reclaim is a clock over the entries' accessed bits. Approximated
//!   as the pages whose entry was used since the hand last passed (the accessed bit:
//!   reclaim would give them a second chance) plus every page of a locked VMA (never
//!   reclaimed, as Linux's unevictable ones). Never printed for hugetlb, as on Linux.
//!   Linux's own figure depends on LRU batching (with MGLRU a folio is active only
//!   until its per-CPU batch is drained), so the two kernels' `active` are not
//!   comparable page for page.
//!
//! One difference in what counts: Linux maps a read of untouched private anonymous
//! memory to the shared zero page, which numa_maps leaves out; here such a read maps a
//! zeroed frame of its own, which counts (`anon`, not `dirty`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{classify, is_initial_heap, is_initial_stack, PageClass};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::errno::MmError;
use crate::frame::Pfn;
use crate::hugetlb_map::HugetlbMap;
use crate::pagetable::{PageTable, PteFlags};
use crate::vma::{VmFlags, Vma};

/// Most nodes counted (a page on a higher node counts as node `n % MAX_NODES`).
const MAX_NODES: usize = 64;
/// Room reserved before each line (a long file path may grow it further).
const LINE_BYTES: usize = 256;
use crate::hugetlb_file::ANON_HUGETLB_PATH;
/// The bytes `seq_path` writes as `\ooo` in numa_maps' `file=`.
const PATH_ESCAPES: &[u8] = b"\n\t= ";

/// What one resident page adds (Linux's `gather_stats` arguments).
struct PageFacts {
    anon: bool,
    dirty: bool,
    mapcount: u32,
    swapcache: bool,
    writeback: bool,
    active: bool,
}

/// The counts of one VMA (Linux's `struct numa_maps`).
struct NumaStats {
    pages: u64,
    anon: u64,
    dirty: u64,
    mapcount_max: u64,
    swapcache: u64,
    active: u64,
    writeback: u64,
    node: [u64; MAX_NODES],
}

impl NumaStats {
    fn new() -> NumaStats {
        NumaStats {
            pages: 0,
            anon: 0,
            dirty: 0,
            mapcount_max: 0,
            swapcache: 0,
            active: 0,
            writeback: 0,
            node: [0; MAX_NODES],
        }
    }

    /// Counts one resident page on `node`.
    fn add(&mut self, node: u32, page: &PageFacts) {
        self.pages += 1;
        self.anon += u64::from(page.anon);
        self.dirty += u64::from(page.dirty);
        self.swapcache += u64::from(page.swapcache);
        self.writeback += u64::from(page.writeback);
        self.active += u64::from(page.active);
        self.mapcount_max = self.mapcount_max.max(u64::from(page.mapcount));
        self.node[node as usize % MAX_NODES] += 1;
    }
}

/// Like [`maps_batch`](super::maps_batch), for numa_maps lines; `node_of` says which
/// node a frame is on (a frame on none is not counted, as Linux leaves out pages
/// outside `N_MEMORY` nodes).
pub fn numa_maps_batch<P: PageTable>(
    aspace: &AddressSpace<P>,
    from: u64,
    max_vmas: usize,
    out: &mut String,
    node_of: &dyn Fn(Pfn) -> Option<u32>,
) -> Result<Option<u64>, MmError> {
    let st = aspace.state().read();
    super::batch(&st, from, max_vmas, |v| {
        out.try_reserve(LINE_BYTES).map_err(|_| MmError::NoMemory)?;
        // `[vdso]` and `[vvar]`: Linux's special mappings have no file, and their
        // pages are the kernel's (reserved there), never counted.
        let special = v.file().is_some_and(|f| f.info().path.starts_with('['));
        let md = match &v.hugetlb {
            _ if special => NumaStats::new(),
            Some(map) => gather_hugetlb(aspace, v, map, node_of),
            None => gather_pages(aspace, v, node_of)?,
        };
        let _ = write!(out, "{:08x} ", v.start);
        policy_text(out, aspace.policy_for(v));
        match v.file() {
            Some(_) if special => {}
            Some(f) => {
                let path = &f.info().path;
                out.try_reserve(path.len() * 4)
                    .map_err(|_| MmError::NoMemory)?;
                out.push_str(" file=");
                push_escaped_path(out, path);
            }
            None if v.hugetlb.is_some() => {
                out.push_str(" file=");
                push_escaped_path(out, ANON_HUGETLB_PATH);
            }
            None if is_initial_heap(&st, v) => out.push_str(" heap"),
            None if is_initial_stack(&st, v) => out.push_str(" stack"),
            None => {}
        }
        if v.hugetlb.is_some() {
            out.push_str(" huge");
        }
        if md.pages > 0 {
            counts_text(out, &md, v);
        }
        out.push('\n');
        Ok(())
    })
}

/// The counts after the header, in Linux's order and with its conditions.
fn counts_text(out: &mut String, md: &NumaStats, v: &Vma) {
    if md.anon > 0 {
        let _ = write!(out, " anon={}", md.anon);
    }
    if md.dirty > 0 {
        let _ = write!(out, " dirty={}", md.dirty);
    }
    if md.pages != md.anon && md.pages != md.dirty {
        let _ = write!(out, " mapped={}", md.pages);
    }
    if md.mapcount_max > 1 {
        let _ = write!(out, " mapmax={}", md.mapcount_max);
    }
    if md.swapcache > 0 {
        let _ = write!(out, " swapcache={}", md.swapcache);
    }
    if md.active < md.pages && v.hugetlb.is_none() {
        let _ = write!(out, " active={}", md.active);
    }
    if md.writeback > 0 {
        let _ = write!(out, " writeback={}", md.writeback);
    }
    for (node, n) in md.node.iter().enumerate().filter(|(_, n)| **n > 0) {
        let _ = write!(out, " N{node}={n}");
    }
    let page_kib = v.hugetlb.as_ref().map_or(4, |m| m.page_bytes() >> 10);
    let _ = write!(out, " kernelpagesize_kB={page_kib}");
}

/// `path` with the bytes of [`PATH_ESCAPES`] written as `\ooo` (Linux's
/// `mangle_path`: `/memfd:x (deleted)` reads `/memfd:x\040(deleted)`).
fn push_escaped_path(out: &mut String, path: &str) {
    for c in path.chars() {
        match u8::try_from(c) {
            Ok(b) if PATH_ESCAPES.contains(&b) => {
                let _ = write!(out, "\\{:03o}", b);
            }
            _ => out.push(c),
        }
    }
}

/// The counts of a VMA of 4 KiB pages (transparent huge pages as their 4 KiB pages).
fn gather_pages<P: PageTable>(
    aspace: &AddressSpace<P>,
    v: &Vma,
    node_of: &dyn Fn(Pfn) -> Option<u32>,
) -> Result<NumaStats, MmError> {
    let frames = aspace.frames();
    let swap = aspace.tunables().swap();
    // Only a mergeable VMA maps KSM's stable frames, each with KSM's own reference.
    let stable: Vec<Pfn> = if v.flags.contains(VmFlags::MERGEABLE) {
        aspace
            .tunables()
            .ksm()
            .stable_frames()
            .ok_or(MmError::NoMemory)?
    } else {
        Vec::new()
    };
    let locked = v.flags.contains(VmFlags::LOCKED);
    let mut md = NumaStats::new();
    aspace.page_table().scan(
        VirtAddr::new(v.start),
        VirtAddr::new(v.end),
        &mut |va, pte| {
            let Some(node) = node_of(pte.pfn) else {
                return;
            };
            let (class, refs) = classify(frames, v, va.as_u64(), pte);
            let anon = class == PageClass::Anon;
            let cached = if anon {
                swap.cache_state_of(pte.pfn)
            } else {
                None
            };
            let ksm_ref = anon && stable.binary_search(&pte.pfn).is_ok();
            let not_mappings = u32::from(cached.is_some()) + u32::from(ksm_ref);
            md.add(
                node,
                &PageFacts {
                    anon,
                    dirty: pte.flags.contains(PteFlags::DIRTY) || class == PageClass::Shmem,
                    mapcount: refs.saturating_sub(not_mappings).max(1),
                    swapcache: cached.is_some(),
                    writeback: cached == Some(true),
                    active: pte.flags.contains(PteFlags::ACCESSED) || locked,
                },
            );
        },
    );
    Ok(md)
}

/// The counts of a hugetlb VMA: one per huge page mapped (its first leaf).
fn gather_hugetlb<P: PageTable>(
    aspace: &AddressSpace<P>,
    v: &Vma,
    map: &HugetlbMap,
    node_of: &dyn Fn(Pfn) -> Option<u32>,
) -> NumaStats {
    let frames = aspace.frames();
    let mut md = NumaStats::new();
    aspace.page_table().scan_leaves(
        VirtAddr::new(v.start),
        VirtAddr::new(v.end),
        &mut |va, pte, huge| {
            let va = va.as_u64();
            if !huge || va < v.start || map.page_start(va) != va {
                return;
            }
            let Some(node) = node_of(pte.pfn) else {
                return;
            };
            // A shared mapping's page (its table holds a reference) or a file's page a
            // private mapping reads (the file holds one) is in a page cache: not
            // anonymous, and dirty as Linux keeps hugetlb page-cache folios.
            let file_page = map.is_shared()
                || map
                    .file()
                    .is_some_and(|f| f.page_at(map.index_of(va)) == Some(pte.pfn));
            let refs = frames.count(pte.pfn);
            let mapcount = if file_page {
                refs.saturating_sub(1)
            } else {
                refs
            };
            md.add(
                node,
                &PageFacts {
                    anon: !file_page,
                    dirty: pte.flags.contains(PteFlags::DIRTY) || file_page,
                    mapcount: mapcount.max(1),
                    swapcache: false,
                    writeback: false,
                    active: false,
                },
            );
        },
    );
    md
}

/// Linux's `mpol_to_str`: `default`, `local`, or the mode, `=static`/`=relative`, and
/// `:` with the node list (`0-1`, `0,2`).
fn policy_text(out: &mut String, policy: Option<crate::aspace::MemPolicy>) {
    use crate::aspace::mempolicy::{MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES};
    let Some(p) = policy else {
        out.push_str("default");
        return;
    };
    out.push_str(p.mode.name());
    if p.flags & MPOL_F_STATIC_NODES != 0 {
        out.push_str("=static");
    } else if p.flags & MPOL_F_RELATIVE_NODES != 0 {
        out.push_str("=relative");
    }
    if p.nodes.is_empty() {
        return;
    }
    out.push(':');
    let nodes: alloc::vec::Vec<u32> = p.nodes.iter().map(|n| n.0).collect();
    let mut i = 0;
    let mut first = true;
    while i < nodes.len() {
        let mut j = i;
        while j + 1 < nodes.len() && nodes[j + 1] == nodes[j] + 1 {
            j += 1;
        }
        if !first {
            out.push(',');
        }
        first = false;
        if j > i {
            let _ = write!(out, "{}-{}", nodes[i], nodes[j]);
        } else {
            let _ = write!(out, "{}", nodes[i]);
        }
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, fork, harness};

    #[test]
    fn counts_resident_pages_by_node() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace.write_bytes(a, &[1u8; 3 * 4096]).unwrap();
        let mut out = String::new();
        let next =
            numa_maps_batch(&h.aspace, 0, 8, &mut out, &|pfn| Some((pfn.0 % 2) as u32)).unwrap();
        assert_eq!(next, None);
        assert!(
            out.starts_with(&std::format!("{a:08x} default anon=3 dirty=3 N")),
            "{out}"
        );
        assert!(out.ends_with(" kernelpagesize_kB=4\n"), "{out}");
        let il = crate::aspace::MemPolicy::decode(
            3,
            crate::frame::NodeMask::from_bits(0b111),
            crate::frame::NodeMask::from_bits(0b1011),
        )
        .unwrap();
        h.aspace.set_range_policy(a, 4096, il).unwrap();
        let mut out = String::new();
        numa_maps_batch(&h.aspace, 0, 8, &mut out, &|_| Some(1)).unwrap();
        assert!(
            out.starts_with(&std::format!(
                "{a:08x} interleave:0-1 anon=1 dirty=1 N1=1 kernelpagesize_kB=4\n"
            )),
            "{out}"
        );
        let mut s = String::new();
        policy_text(
            &mut s,
            crate::aspace::MemPolicy::decode(
                2,
                crate::frame::NodeMask::from_bits(0b1101),
                crate::frame::NodeMask::from_bits(0b1111),
            )
            .unwrap(),
        );
        assert_eq!(s, "bind:0,2-3");
    }

    /// The numa_maps text of `space` with every frame on node 0.
    fn text<P: PageTable>(space: &AddressSpace<P>) -> String {
        let mut out = String::new();
        numa_maps_batch(space, 0, usize::MAX, &mut out, &|_| Some(0)).unwrap();
        out
    }

    /// The line of the VMA starting at `start`, without its newline.
    fn line_at(text: &str, start: u64) -> &str {
        let head = std::format!("{start:08x} ");
        text.lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no line for {start:x} in {text}"))
    }

    #[test]
    fn nothing_resident_prints_the_header_alone() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        assert_eq!(
            line_at(&text(&h.aspace), a),
            std::format!("{a:08x} default")
        );
        // A page only read is resident but clean: anon, no dirty, no mapped.
        let mut b = [0u8; 1];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(
            line_at(&text(&h.aspace), a),
            std::format!("{a:08x} default anon=1 N0=1 kernelpagesize_kB=4")
        );
    }

    #[test]
    fn fork_shares_pages_mapmax_two() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace.write_bytes(a, &[1u8; 2 * 4096]).unwrap();
        let child = fork(&h);
        let want = std::format!("{a:08x} default anon=2 dirty=2 mapmax=2 N0=2 kernelpagesize_kB=4");
        assert_eq!(line_at(&text(&h.aspace), a), want);
        assert_eq!(line_at(&text(&child), a), want);
        // A write gives the writer its own copy: one page shared is left.
        child.write_bytes(a, &[2u8]).unwrap();
        drop(child);
        assert_eq!(
            line_at(&text(&h.aspace), a),
            std::format!("{a:08x} default anon=2 dirty=2 N0=2 kernelpagesize_kB=4")
        );
    }

    #[test]
    fn a_memfd_shared_with_a_fork_child_is_dirty_and_mapped_twice() {
        use crate::aspace::tests::map_file;
        use crate::pagecache::FileObject;
        use crate::vma::{MapFlags, Prot};
        let h = harness();
        let f = FileObject::new_memfd("nm", h.frames.clone());
        f.write_at(0, &[7u8; 4 * 4096]).unwrap();
        let a = map_file(
            &h.aspace,
            &f,
            4,
            Prot::READ | Prot::WRITE,
            MapFlags::SHARED,
            0,
        );
        h.aspace.write_bytes(a, &[1u8; 3 * 4096]).unwrap();
        let child = fork(&h);
        let mut b = [0u8; 4096];
        for p in 0..3 {
            child.read_bytes(a + p * 4096, &mut b).unwrap();
        }
        let want = std::format!(
            "{a:08x} default file=/memfd:nm\\040(deleted) dirty=3 mapmax=2 N0=3 kernelpagesize_kB=4"
        );
        assert_eq!(line_at(&text(&h.aspace), a), want);
        assert_eq!(line_at(&text(&child), a), want);
    }

    #[test]
    fn a_private_file_mapping_counts_its_copies_as_anon_and_all_as_mapped() {
        use crate::aspace::tests::map_file;
        use crate::vma::{MapFlags, Prot};
        let h = harness();
        let f = h.file(&[3u8; 2 * 4096]);
        let a = map_file(
            &h.aspace,
            &f,
            2,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE,
            0,
        );
        let mut b = [0u8; 1];
        h.aspace.read_bytes(a, &mut b).unwrap();
        h.aspace.write_bytes(a + 4096, &[9u8]).unwrap();
        assert_eq!(
            line_at(&text(&h.aspace), a),
            std::format!(
                "{a:08x} default file=/test/file anon=1 dirty=1 mapped=2 N0=2 kernelpagesize_kB=4"
            )
        );
    }

    #[test]
    fn heap_and_stack_are_named_and_active_counts_accessed_pages() {
        let h = harness();
        let base = 0x5000_0000;
        h.aspace.set_brk_start(base);
        assert_eq!(h.aspace.brk(base + 4 * 4096), base + 4 * 4096);
        h.aspace.write_bytes(base, &[1u8; 2 * 4096]).unwrap();
        let s = anon_rw(&h.aspace, 4);
        h.aspace.set_stack_start(s + 3 * 4096);
        h.aspace.write_bytes(s + 3 * 4096, &[1u8; 8]).unwrap();
        let out = text(&h.aspace);
        assert_eq!(
            line_at(&out, base),
            std::format!("{base:08x} default heap anon=2 dirty=2 N0=2 kernelpagesize_kB=4")
        );
        assert_eq!(
            line_at(&out, s),
            std::format!("{s:08x} default stack anon=1 dirty=1 N0=1 kernelpagesize_kB=4")
        );
        // The clock hand clears an accessed bit: that page is inactive now.
        let pt = h.aspace.page_table();
        let va = VirtAddr::new(base);
        let pte = pt.query(va).unwrap();
        pt.replace(va, pte, pte.with_flags(pte.flags - PteFlags::ACCESSED))
            .unwrap();
        assert_eq!(
            line_at(&text(&h.aspace), base),
            std::format!(
                "{base:08x} default heap anon=2 dirty=2 active=1 N0=2 kernelpagesize_kB=4"
            )
        );
    }

    #[test]
    fn ksm_pages_are_anon_and_mapmax_leaves_out_ksms_reference() {
        use crate::aspace::Advice;
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        h.aspace.write_bytes(a, &[5u8; 3 * 4096]).unwrap();
        h.aspace.madvise(a, 3 * 4096, Advice::Mergeable).unwrap();
        let ksm = h.aspace.tunables().ksm().clone();
        for _ in 0..2 {
            ksm.begin_pass();
            h.aspace.ksm_scan();
            ksm.end_pass(&h.frames);
        }
        assert_eq!(ksm.stats(&h.frames).pages_sharing, 2, "merged");
        assert_eq!(
            line_at(&text(&h.aspace), a),
            std::format!("{a:08x} default anon=3 dirty=3 mapmax=3 N0=3 kernelpagesize_kB=4")
        );
    }

    #[test]
    fn file_paths_are_escaped_as_seq_path_does() {
        let mut s = String::new();
        push_escaped_path(&mut s, "/tmp/a b\tc=d\ne\\f");
        assert_eq!(s, "/tmp/a\\040b\\011c\\075d\\012e\\f");
    }
}
