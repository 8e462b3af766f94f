//! The machine's huge-page pools (`mm::hugetlb`), one per node and size.

use mm::hugetlb::HugePools;
use spin::Once;

static POOLS: Once<HugePools> = Once::new();

/// The pools, sized for every node of the frame allocator (empty until a knob fills them).
pub fn pools() -> &'static HugePools {
    POOLS.call_once(|| HugePools::new(super::frames::allocator().nr_nodes()))
}
