//! The machine's huge-page pools (`mm::hugetlb`), one per node and size, and the
//! source hugetlb mappings take their pages from (the faulting CPU's node first).

use conquer_once::spin::OnceCell;
use mm::frame::{NodeId, Pfn};
use mm::hugetlb::{HugePools, HugeSize, HugetlbSource};

static POOLS: OnceCell<HugePools> = OnceCell::uninit();

/// The pools, sized for every node of the frame allocator (empty until a knob fills them).
pub fn pools() -> &'static HugePools {
    POOLS.get_or_init(|| HugePools::new(super::frames::allocator().nr_nodes()))
}

/// Hugetlb mappings' pages: the pools above.
pub struct KernelHugetlb;

impl HugetlbSource for KernelHugetlb {
    fn reserve(&self, size: HugeSize, pages: u64) -> bool {
        pools().reserve(size, pages)
    }

    fn unreserve(&self, size: HugeSize, pages: u64) {
        pools().unreserve(size, pages);
    }

    fn take(&self, size: HugeSize, reserved: bool) -> Option<Pfn> {
        let node = NodeId(crate::arch::percpu::current().node);
        pools().take(size, node, reserved)
    }

    fn give_back(&self, size: HugeSize, head: Pfn) {
        match super::frames::allocator().node_of(head) {
            Some(node) => pools().give_back(size, node, head),
            None => log::error!("hugetlb: page {head} belongs to no node"),
        }
    }
}
