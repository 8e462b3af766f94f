//! Huge-page pools: hugetlbfs's per-node pools of 2 MiB and 1 GiB pages, sized through
//! `vm.nr_hugepages` and `/sys/devices/system/node/nodeN/hugepages/*/nr_hugepages`.
//!
//! Growing a pool takes whole, aligned blocks from that node's buddy allocator (never
//! another node's, and never below its `min` watermark); shrinking returns them. As on
//! Linux, a pool that cannot grow as far as asked stops where it got, and the knob
//! reads back what it holds.
//!
//! Pages leave the pools for hugetlb mappings (`MAP_HUGETLB`): an mmap reserves as
//! many pages as it maps (`HugePages_Rsvd`; `ENOMEM` when the free pages not yet
//! reserved cannot cover it), a fault takes one (the local node's first, then the
//! others'), consuming a reservation, and an unmap gives it back. A pool shrinks
//! only by its free, unreserved pages. `hugetlb_map.rs` is one mapping's side of it.

use alloc::vec::Vec;

use spin::Mutex;

use crate::frame::{FrameAllocator, NodeId, Order, Pfn, Policy};

/// A huge page size with a pool per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugeSize {
    /// 2 MiB (a PMD mapping), the default size (`vm.nr_hugepages`, `Hugepagesize`).
    Mib2,
    /// 1 GiB (a PUD mapping).
    Gib1,
}

impl HugeSize {
    /// Both sizes, smallest first.
    pub const ALL: [HugeSize; 2] = [HugeSize::Mib2, HugeSize::Gib1];

    /// The buddy order of one page.
    pub fn order(self) -> Order {
        match self {
            HugeSize::Mib2 => Order::HUGE_2M,
            HugeSize::Gib1 => Order::HUGE_1G,
        }
    }

    /// Size in KiB (as in `hugepages-2048kB`).
    pub fn kib(self) -> u64 {
        self.order().bytes() / 1024
    }

    /// The size for a KiB figure.
    pub fn from_kib(kib: u64) -> Option<HugeSize> {
        HugeSize::ALL.into_iter().find(|s| s.kib() == kib)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The pools of every node.
pub struct HugePools {
    /// Per node, per size: the free huge pages.
    free: Mutex<Vec<[Vec<Pfn>; 2]>>,
    /// Per node, per size: pages handed to mappings.
    in_use: Mutex<Vec<[u64; 2]>>,
    /// Per size: pages reserved by mappings and not yet faulted.
    reserved: Mutex<[u64; 2]>,
}

impl HugePools {
    /// Empty pools for `nr_nodes` nodes.
    pub fn new(nr_nodes: usize) -> HugePools {
        HugePools {
            free: Mutex::new((0..nr_nodes).map(|_| [Vec::new(), Vec::new()]).collect()),
            in_use: Mutex::new(alloc::vec![[0; 2]; nr_nodes]),
            reserved: Mutex::new([0; 2]),
        }
    }

    /// Pages in `node`'s pool of `size`, free and in use (0 for an unknown node).
    pub fn count(&self, node: NodeId, size: HugeSize) -> u64 {
        self.free_count(node, size) + self.in_use_count(node, size)
    }

    fn in_use_count(&self, node: NodeId, size: HugeSize) -> u64 {
        self.in_use
            .lock()
            .get(node.index())
            .map_or(0, |c| c[size.index()])
    }

    /// Free pages in `node`'s pool of `size`.
    pub fn free_count(&self, node: NodeId, size: HugeSize) -> u64 {
        self.free
            .lock()
            .get(node.index())
            .map_or(0, |p| p[size.index()].len() as u64)
    }

    /// Free pages of `size` over all nodes (`HugePages_Free`; reserved ones included).
    pub fn free_total(&self, size: HugeSize) -> u64 {
        self.free
            .lock()
            .iter()
            .map(|p| p[size.index()].len() as u64)
            .sum()
    }

    /// Pages of `size` over all nodes, free and in use (`HugePages_Total`).
    pub fn total(&self, size: HugeSize) -> u64 {
        let in_use: u64 = self.in_use.lock().iter().map(|c| c[size.index()]).sum();
        self.free_total(size) + in_use
    }

    /// Pages of `size` reserved and not yet faulted (`HugePages_Rsvd`).
    pub fn reserved(&self, size: HugeSize) -> u64 {
        self.reserved.lock()[size.index()]
    }

    /// Reserves `pages` of `size` for a new mapping: false (nothing reserved) if the
    /// free pages not yet reserved cannot cover them.
    pub fn reserve(&self, size: HugeSize, pages: u64) -> bool {
        let mut reserved = self.reserved.lock();
        let free = self.free_total(size);
        if free.saturating_sub(reserved[size.index()]) < pages {
            return false;
        }
        reserved[size.index()] += pages;
        true
    }

    /// Gives up `pages` reservations of `size`.
    pub fn unreserve(&self, size: HugeSize, pages: u64) {
        let mut reserved = self.reserved.lock();
        reserved[size.index()] = reserved[size.index()].saturating_sub(pages);
    }

    /// Takes a free page of `size` from the first of `nodes` (in order) whose pool
    /// has one; `reserved`: it uses up one of the caller's reservations
    /// (else it may not take a page another mapping has reserved). `None`: no page.
    pub fn take(&self, size: HugeSize, nodes: &[NodeId], reserved: bool) -> Option<Pfn> {
        let mut rsv = self.reserved.lock();
        let mut free = self.free.lock();
        let total: u64 = free.iter().map(|p| p[size.index()].len() as u64).sum();
        if !reserved && total <= rsv[size.index()] {
            return None;
        }
        let (node, pfn) = nodes.iter().find_map(|n| {
            let pool = free.get_mut(n.index())?;
            pool[size.index()].pop().map(|pfn| (n.index(), pfn))
        })?;
        if reserved {
            rsv[size.index()] = rsv[size.index()].saturating_sub(1);
        }
        self.in_use.lock()[node][size.index()] += 1;
        Some(pfn)
    }

    /// Returns a page from [`take`](Self::take) to `node`'s pool.
    pub fn give_back(&self, size: HugeSize, node: NodeId, pfn: Pfn) {
        let mut free = self.free.lock();
        let Some(pool) = free.get_mut(node.index()) else {
            return;
        };
        pool[size.index()].push(pfn);
        let mut in_use = self.in_use.lock();
        in_use[node.index()][size.index()] = in_use[node.index()][size.index()].saturating_sub(1);
    }

    /// 4 KiB frames held by all pools (left out of the overcommit ratio's share).
    pub fn frames_held(&self) -> u64 {
        HugeSize::ALL
            .into_iter()
            .map(|s| self.total(s) * s.order().pages())
            .sum()
    }

    /// Grows or shrinks `node`'s pool of `size` towards `target` pages; returns the
    /// pool's size after (below `target` when the node has no more aligned blocks).
    pub fn resize_node(
        &self,
        alloc: &FrameAllocator,
        node: NodeId,
        size: HugeSize,
        target: u64,
    ) -> u64 {
        // Lock order everywhere: reserved, free, in_use.
        let reserved = self.reserved.lock();
        let keep = reserved[size.index()];
        let mut pools = self.free.lock();
        let in_use = self.in_use_count(node, size);
        let Some(pool) = pools.get_mut(node.index()).map(|p| &mut p[size.index()]) else {
            return 0;
        };
        let target = target.saturating_sub(in_use);
        while (pool.len() as u64) < target {
            match alloc.alloc_on_node(node, size.order()) {
                Ok(pfn) => pool.push(pfn),
                Err(_) => break,
            }
        }
        // Free pages mappings have reserved stay.
        let others: u64 = pools
            .iter()
            .enumerate()
            .filter(|&(n, _)| n != node.index())
            .map(|(_, p)| p[size.index()].len() as u64)
            .sum();
        let pool = &mut pools[node.index()][size.index()];
        while pool.len() as u64 > target && others + pool.len() as u64 > keep {
            release(alloc, pool.pop(), size);
        }
        pool.len() as u64 + in_use
    }

    /// Grows or shrinks the pools of `size` towards `target` pages over all nodes,
    /// spreading them round-robin (Linux's `vm.nr_hugepages`); returns the total after.
    pub fn resize_total(&self, alloc: &FrameAllocator, size: HugeSize, target: u64) -> u64 {
        let reserved = self.reserved.lock();
        let keep = reserved[size.index()];
        let mut pools = self.free.lock();
        let in_use: u64 = self.in_use.lock().iter().map(|c| c[size.index()]).sum();
        let nodes = pools.len();
        let mut total: u64 = in_use
            + pools
                .iter()
                .map(|p| p[size.index()].len() as u64)
                .sum::<u64>();
        // Grow: one page per node per round, until a whole round finds nothing.
        while total < target {
            let mut grew = false;
            for n in 0..nodes {
                if total == target {
                    break;
                }
                if let Ok(pfn) = alloc.alloc_on_node(NodeId(n as u32), size.order()) {
                    pools[n][size.index()].push(pfn);
                    total += 1;
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        // Shrink: from the fullest pool first, so the nodes stay balanced.
        while total > target && total - in_use > keep {
            let fullest = (0..nodes)
                .filter(|&n| !pools[n][size.index()].is_empty())
                .max_by_key(|&n| pools[n][size.index()].len());
            let Some(n) = fullest else { break };
            release(alloc, pools[n][size.index()].pop(), size);
            total -= 1;
        }
        total
    }
}

/// Where a hugetlb mapping's pages come from: the kernel's pools (taking from the
/// calling CPU's node first), or a software pool in host tests.
pub trait HugetlbSource: Send + Sync {
    /// Reserves `pages` pages of `size`; false (nothing reserved) if not available.
    fn reserve(&self, size: HugeSize, pages: u64) -> bool;
    /// Gives up `pages` reservations.
    fn unreserve(&self, size: HugeSize, pages: u64);
    /// A free page's first frame (contents undefined) from a node `policy` allows
    /// (the node it picks first), consuming a reservation when `reserved`; `None` if
    /// there is none.
    fn take(&self, size: HugeSize, reserved: bool, policy: Policy) -> Option<Pfn>;
    /// Returns a page from `take`.
    fn give_back(&self, size: HugeSize, head: Pfn);
}

/// The page a hugetlb fault maps (first frame, holding a reference for the leaf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugeFaultPage {
    /// A page other mappings may map too (a shared mapping's): mapped with the
    /// VMA's permissions.
    Shared(Pfn),
    /// A private mapping's own new page: mapped writable if the VMA is.
    Private(Pfn),
    /// A hugetlb file's page that a private mapping reads: mapped read-only, its
    /// first write copies it.
    FilePage(Pfn),
}

impl HugeFaultPage {
    /// The page's first frame.
    pub fn head(self) -> Pfn {
        match self {
            HugeFaultPage::Shared(p) | HugeFaultPage::Private(p) | HugeFaultPage::FilePage(p) => p,
        }
    }

    /// Whether a private mapping may map it writable at once.
    pub fn exclusive(self) -> bool {
        matches!(self, HugeFaultPage::Private(_))
    }
}

/// Why a hugetlb page could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoHugePage;

/// Returns one pool page to its node's buddy.
fn release(alloc: &FrameAllocator, page: Option<Pfn>, size: HugeSize) {
    if let Some(pfn) = page {
        if let Err(e) = alloc.free(pfn, size.order()) {
            log::error!("hugetlb: pool page {pfn} refused by the allocator: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{DistanceMatrix, FrameConfig, NodeRange, Watermarks, PAGE_SIZE};

    const MIB: u64 = 1 << 20;

    /// Two nodes of 64 MiB each, 2 MiB-aligned, no watermarks.
    fn two_nodes() -> FrameAllocator {
        let ranges = [
            NodeRange {
                node: NodeId(0),
                phys_start: 64 * MIB,
                phys_end: 128 * MIB,
            },
            NodeRange {
                node: NodeId(1),
                phys_start: 4096 * MIB,
                phys_end: 4160 * MIB,
            },
        ];
        let cpus = [NodeId(0), NodeId(1)];
        let alloc = FrameAllocator::new(
            &ranges,
            DistanceMatrix::uniform(2).unwrap(),
            &cpus,
            FrameConfig::default(),
        )
        .unwrap();
        for n in 0..2 {
            alloc.set_node_watermarks(NodeId(n), Watermarks::default());
        }
        alloc
    }

    fn free_pages(alloc: &FrameAllocator, node: u32) -> u64 {
        alloc.node_stats(NodeId(node)).unwrap().free().0
    }

    #[test]
    fn node_pool_takes_frames_from_its_node_only_and_gives_them_back() {
        let alloc = two_nodes();
        let pools = HugePools::new(2);
        let (f0, f1) = (free_pages(&alloc, 0), free_pages(&alloc, 1));
        assert_eq!(pools.resize_node(&alloc, NodeId(1), HugeSize::Mib2, 5), 5);
        assert_eq!(free_pages(&alloc, 1), f1 - 5 * 512);
        assert_eq!(free_pages(&alloc, 0), f0);
        assert_eq!(pools.count(NodeId(1), HugeSize::Mib2), 5);
        assert_eq!(pools.total(HugeSize::Mib2), 5);
        assert_eq!(pools.frames_held(), 5 * 512);
        assert_eq!(pools.resize_node(&alloc, NodeId(1), HugeSize::Mib2, 2), 2);
        alloc.drain_all();
        assert_eq!(free_pages(&alloc, 1), f1 - 2 * 512);
        assert_eq!(pools.resize_node(&alloc, NodeId(1), HugeSize::Mib2, 0), 0);
        alloc.drain_all();
        assert_eq!(free_pages(&alloc, 1), f1);
    }

    #[test]
    fn a_pool_stops_where_the_node_runs_out() {
        let alloc = two_nodes();
        let pools = HugePools::new(2);
        assert_eq!(
            pools.resize_node(&alloc, NodeId(0), HugeSize::Mib2, 1000),
            32
        );
        assert_eq!(free_pages(&alloc, 0), 0);
        assert_eq!(
            pools.resize_node(&alloc, NodeId(0), HugeSize::Gib1, 1),
            0,
            "no 1 GiB block in a 64 MiB node"
        );
        assert_eq!(pools.resize_node(&alloc, NodeId(7), HugeSize::Mib2, 1), 0);
    }

    #[test]
    fn total_spreads_over_nodes_and_shrinks_the_fullest_first() {
        let alloc = two_nodes();
        let pools = HugePools::new(2);
        assert_eq!(pools.resize_total(&alloc, HugeSize::Mib2, 7), 7);
        assert_eq!(pools.count(NodeId(0), HugeSize::Mib2), 4);
        assert_eq!(pools.count(NodeId(1), HugeSize::Mib2), 3);
        pools.resize_node(&alloc, NodeId(1), HugeSize::Mib2, 10);
        assert_eq!(pools.resize_total(&alloc, HugeSize::Mib2, 8), 8);
        assert_eq!(pools.count(NodeId(0), HugeSize::Mib2), 4);
        assert_eq!(pools.count(NodeId(1), HugeSize::Mib2), 4);
        assert_eq!(
            pools.resize_total(&alloc, HugeSize::Mib2, 100),
            64,
            "both nodes full"
        );
        assert_eq!(pools.resize_total(&alloc, HugeSize::Mib2, 0), 0);
        alloc.drain_all();
        assert_eq!(
            free_pages(&alloc, 0) + free_pages(&alloc, 1),
            2 * 64 * MIB / PAGE_SIZE
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(HugeSize::Mib2.kib(), 2048);
        assert_eq!(HugeSize::from_kib(1048576), Some(HugeSize::Gib1));
        assert_eq!(HugeSize::from_kib(4), None);
    }
}
