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
//! only by its free, unreserved pages. [`HugetlbMap`] is one mapping's side of it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::frame::{FrameAllocator, NodeId, Order, Pfn, Policy};
use crate::phys::Frames;

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

/// One hugetlb mapping (what `mmap(MAP_HUGETLB)` made; its VMAs, split or forked
/// for a shared mapping, point at it): its page size, the page indexes it still holds
/// reservations for, and for a shared mapping the pages themselves (every process
/// maps the same ones). Each mapped huge leaf holds a reference on its page's first
/// frame, and a shared mapping's page table holds one more; the last one gives the
/// page back to the pool.
pub struct HugetlbMap {
    size: HugeSize,
    source: Arc<dyn HugetlbSource>,
    frames: Arc<Frames>,
    /// The address of page index 0 (hugetlb mappings never move).
    base: u64,
    shared: bool,
    /// A private mapping that reserved its range at mmap (not `MAP_NORESERVE`, not a
    /// fork child's copy): a private page of it that a file's truncation or hole
    /// punch unmaps gets its reservation back, as Linux 6.12 restores it.
    owns_reservations: bool,
    state: Mutex<HugetlbState>,
    /// For a shared mapping of a hugetlb file: the file, which holds the pages and
    /// the reservations (`state` then stays empty).
    file: Option<Arc<crate::hugetlb_file::HugetlbFile>>,
    /// Serialises the faults of a 1 GiB mapping, whose pages are mapped by 512
    /// leaves each (installed, copied or changed all together).
    pub(crate) fault_lock: Mutex<()>,
}

#[derive(Default)]
struct HugetlbState {
    /// Page indexes whose reservation is still held.
    reserved: BTreeSet<u64>,
    /// A shared mapping's pages by index.
    pages: BTreeMap<u64, Pfn>,
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

impl HugetlbMap {
    /// A mapping of `pages` pages of `size` at `base`; reserves them all unless
    /// `noreserve`. `None` if the reservation fails (mmap's `ENOMEM`).
    pub fn new(
        size: HugeSize,
        source: Arc<dyn HugetlbSource>,
        frames: Arc<Frames>,
        base: u64,
        pages: u64,
        shared: bool,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        let mut state = HugetlbState::default();
        if !noreserve {
            if !source.reserve(size, pages) {
                return None;
            }
            state.reserved = (0..pages).collect();
        }
        Some(Arc::new(HugetlbMap {
            size,
            source,
            frames,
            base,
            shared,
            owns_reservations: !shared && !noreserve,
            state: Mutex::new(state),
            file: None,
            fault_lock: Mutex::new(()),
        }))
    }

    /// A shared mapping of the hugetlb file `file` whose page index 0 would sit at
    /// `base` (the VMA's start less its file offset), covering `pages` pages from
    /// index `first`; reserves those the file has not yet covered unless
    /// `noreserve`. `None` if the reservation fails (mmap's `ENOMEM`).
    pub fn for_file(
        file: Arc<crate::hugetlb_file::HugetlbFile>,
        base: u64,
        first: u64,
        pages: u64,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        if !noreserve && !file.reserve(first, pages) {
            return None;
        }
        Some(Arc::new(HugetlbMap {
            size: file.huge_size(),
            source: file.source.clone(),
            frames: file.frames.clone(),
            base,
            shared: true,
            owns_reservations: false,
            state: Mutex::new(HugetlbState::default()),
            file: Some(file),
            fault_lock: Mutex::new(()),
        }))
    }

    /// A private (`MAP_PRIVATE`) mapping of the hugetlb file `file` whose page index 0
    /// would sit at `base`, covering `pages` pages from index `first`. As on Linux,
    /// it reserves every page of its range unless `noreserve` (whatever the file
    /// holds: a page it only reads costs nothing, but its first write copies it), and
    /// each page it allocates, a hole's zeroed page or a copy of the file's, uses up
    /// the reservation of its index. `None` if the reservation fails (mmap's `ENOMEM`).
    pub fn for_file_private(
        file: Arc<crate::hugetlb_file::HugetlbFile>,
        base: u64,
        first: u64,
        pages: u64,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        let end = first.checked_add(pages)?;
        let mut state = HugetlbState::default();
        if !noreserve {
            if !file.source.reserve(file.huge_size(), pages) {
                return None;
            }
            state.reserved = (first..end).collect();
        }
        Some(Arc::new(HugetlbMap {
            size: file.huge_size(),
            source: file.source.clone(),
            frames: file.frames.clone(),
            base,
            shared: false,
            owns_reservations: !noreserve,
            state: Mutex::new(state),
            file: Some(file),
            fault_lock: Mutex::new(()),
        }))
    }

    /// Page reservations this mapping still holds (for a shared file mapping, none:
    /// the file holds them).
    pub fn reservations_held(&self) -> u64 {
        self.state.lock().reserved.len() as u64
    }

    /// The hugetlb file this mapping maps, if any.
    pub fn file(&self) -> Option<&Arc<crate::hugetlb_file::HugetlbFile>> {
        self.file.as_ref()
    }

    /// The page size.
    pub fn size(&self) -> HugeSize {
        self.size
    }

    /// Page size in bytes.
    pub fn page_bytes(&self) -> u64 {
        self.size.order().bytes()
    }

    /// The first address of the page holding `va`.
    pub fn page_start(&self, va: u64) -> u64 {
        va & !(self.page_bytes() - 1)
    }

    /// Whether the pages are shared (`MAP_SHARED`).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// A private mapping's copy for a fork child: no reservations (as on Linux, a
    /// child's faults on pages it does not share may find the pool empty: SIGBUS),
    /// still reading the file of a private file mapping.
    ///
    /// Unlike Linux, a parent whose copy-on-write copy finds the pool empty is not
    /// given the page by unmapping it from its children: the copy uses the
    /// reservation of its index if the parent still holds it (a file page it only
    /// read), else it takes an unreserved free page or gets `SIGBUS`.
    pub fn for_fork_child(self: &Arc<Self>) -> Arc<HugetlbMap> {
        if self.shared {
            return self.clone();
        }
        Arc::new(HugetlbMap {
            size: self.size,
            source: self.source.clone(),
            frames: self.frames.clone(),
            base: self.base,
            shared: false,
            owns_reservations: false,
            state: Mutex::new(HugetlbState::default()),
            file: self.file.clone(),
            fault_lock: Mutex::new(()),
        })
    }

    /// The addresses in `[vma_start, vma_end)` (a VMA of this mapping) that map file
    /// indexes `[first, end)`, if any.
    pub fn span_of(
        &self,
        first: u64,
        end: u64,
        vma_start: u64,
        vma_end: u64,
    ) -> Option<(u64, u64)> {
        let (v_first, v_end) = (self.index(vma_start), self.index(vma_end));
        let (lo, hi) = (first.max(v_first), end.min(v_end));
        if lo >= hi {
            return None;
        }
        let at = |i: u64| vma_start + (i - v_first) * self.page_bytes();
        Some((at(lo), at(hi)))
    }

    /// Whether the leaf mapping page `head` at `va` (a page's first address) maps
    /// what the file no longer has: an index past its end, or for a shared mapping
    /// a page the file no longer holds there. False for a mapping of no file.
    pub fn leaf_is_stale(&self, va: u64, head: Pfn) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let idx = self.index(va);
        if idx >= file.size_bytes() / file.page_bytes() {
            return true;
        }
        self.shared && file.page_at(idx) != Some(head)
    }

    fn index(&self, va: u64) -> u64 {
        // `base` wraps below 0 for a mapping at a low address of a far file offset.
        va.wrapping_sub(self.base) / self.page_bytes()
    }

    /// The page for a fault at `va`, with a reference for the leaf that will map it:
    /// a shared mapping's existing page, a file page a private mapping reads, or a new
    /// zeroed one (a private mapping's own, taken with the reservation of its index if
    /// still held). `NoHugePage` when the pool has none or the page lies past the end
    /// of the file (SIGBUS). The new page comes from a node `policy` allows.
    pub fn page_for_fault(&self, va: u64, policy: Policy) -> Result<HugeFaultPage, NoHugePage> {
        let idx = self.index(va);
        if let Some(file) = &self.file {
            if self.shared {
                return file.page_for_fault(idx, policy).map(HugeFaultPage::Shared);
            }
            if let Some(head) = file.existing_page(idx)? {
                return Ok(HugeFaultPage::FilePage(head));
            }
        }
        let mut st = self.state.lock();
        if let Some(&pfn) = st.pages.get(&idx) {
            self.frames.get(pfn);
            return Ok(HugeFaultPage::Shared(pfn));
        }
        let reserved = st.reserved.remove(&idx);
        let Some(pfn) = self.source.take(self.size, reserved, policy) else {
            if reserved {
                st.reserved.insert(idx);
            }
            return Err(NoHugePage);
        };
        self.zero(pfn);
        if self.shared {
            st.pages.insert(idx, pfn);
            self.frames.get(pfn);
            return Ok(HugeFaultPage::Shared(pfn));
        }
        Ok(HugeFaultPage::Private(pfn))
    }

    /// A page for a private copy-on-write copy of the page at `va`, contents
    /// undefined: it uses up the reservation of that index if the mapping still holds
    /// it (the first write to a file page), else takes an unreserved free page.
    /// (Its 2 MiB pieces are copied over by the caller.)
    pub fn page_for_copy(&self, va: u64, policy: Policy) -> Result<Pfn, NoHugePage> {
        let idx = self.index(va);
        let mut st = self.state.lock();
        let reserved = !self.shared && st.reserved.remove(&idx);
        match self.source.take(self.size, reserved, policy) {
            Some(pfn) => Ok(pfn),
            None => {
                if reserved {
                    st.reserved.insert(idx);
                }
                Err(NoHugePage)
            }
        }
    }

    fn zero(&self, head: Pfn) {
        let huge = crate::pagetable::HUGE_PAGES;
        for chunk in 0..self.size.order().pages() / huge {
            self.frames.source().zero_huge(Pfn(head.0 + chunk * huge));
        }
    }

    /// Drops a leaf's reference on page `head`; the last goes back to the pool.
    pub fn release(&self, head: Pfn) {
        if self.frames.put_ref(head) {
            self.source.give_back(self.size, head);
        }
    }

    /// The file index of the page at `va`.
    pub fn index_of(&self, va: u64) -> u64 {
        self.index(va)
    }

    /// A private page of this mapping at file index `idx` was unmapped by its file's
    /// truncation or hole punch: a mapping that reserved its range gets the index's
    /// reservation back (if the pool still has an unreserved free page for it), so a
    /// later fault there does not find the pool taken, as Linux 6.12 restores it.
    pub fn restore_reservation(&self, idx: u64) {
        if !self.owns_reservations {
            return;
        }
        let mut st = self.state.lock();
        if !st.reserved.contains(&idx) && self.source.reserve(self.size, 1) {
            st.reserved.insert(idx);
        }
    }

    /// `[start, end)` is unmapped for good: a private mapping gives up the
    /// reservations of its pages there.
    pub fn unmapped(&self, start: u64, end: u64) {
        if self.shared {
            return;
        }
        let (lo, hi) = (self.index(start), self.index(end));
        let mut st = self.state.lock();
        let gone: Vec<u64> = st.reserved.range(lo..hi).copied().collect();
        for idx in &gone {
            st.reserved.remove(idx);
        }
        self.source.unreserve(self.size, gone.len() as u64);
    }
}

impl Drop for HugetlbMap {
    fn drop(&mut self) {
        let st = core::mem::take(&mut *self.state.lock());
        self.source.unreserve(self.size, st.reserved.len() as u64);
        for (_, pfn) in st.pages {
            self.release(pfn);
        }
    }
}

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
