//! The machine's huge-page pools (`mm::hugetlb`), one per node and size, and the
//! source hugetlb mappings take their pages from: the nodes the mapping's NUMA policy
//! allows, the one it picks first (the faulting CPU's by default), then the others
//! nearest to it.

use alloc::vec::Vec;
use conquer_once::spin::OnceCell;
use mm::frame::{NodeId, Pfn, Policy};
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

    fn take(&self, size: HugeSize, reserved: bool, policy: Policy) -> Option<Pfn> {
        pools().take(size, &node_order(policy), reserved)
    }

    fn give_back(&self, size: HugeSize, head: Pfn) {
        match super::frames::allocator().node_of(head) {
            Some(node) => pools().give_back(size, node, head),
            None => log::error!("hugetlb: page {head} belongs to no node"),
        }
    }
}

/// The nodes a policy lets a huge page come from, in the order to try them: the one
/// it picks first, then the others it allows by distance from that one.
fn node_order(policy: Policy) -> Vec<NodeId> {
    let alloc = super::frames::allocator();
    let local = NodeId(crate::arch::percpu::current().node);
    let all = (0..alloc.nr_nodes() as u32).map(NodeId);
    let (first, allowed): (NodeId, Vec<NodeId>) = match policy {
        Policy::Local => (local, all.collect()),
        Policy::Preferred(node) => (node, all.collect()),
        Policy::PreferredMany(mask) => {
            // The mask's pools nearest to this CPU first, then every other pool.
            let mut order: Vec<NodeId> = all.collect();
            order.sort_by_key(|&n| (!mask.contains(n), alloc.distance(local, n), n.0));
            return order;
        }
        Policy::Bind(mask) | Policy::Interleave(mask) => {
            let allowed: Vec<NodeId> = all.filter(|n| mask.contains(*n)).collect();
            let first = if mask.contains(local) {
                local
            } else {
                allowed.first().copied().unwrap_or(local)
            };
            (first, allowed)
        }
    };
    let mut order = allowed;
    order.sort_by_key(|&n| (n != first, alloc.distance(first, n), n.0));
    order
}
