//! Newtypes for frames, nodes, block orders and page counts, so that they cannot mix.

use core::fmt;

/// Bytes in one base page frame.
pub const PAGE_SIZE: u64 = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;
/// Bytes one huge (PMD-level, 2 MiB) page maps: what `pagetable::HUGE_SIZE` names.
pub const HUGE_PAGE_SIZE: u64 = 1 << 21;
/// The largest buddy order: an order-18 block is 2^18 frames, 1 GiB.
pub const MAX_ORDER: u8 = 18;
/// Number of buddy orders, 0 through [`MAX_ORDER`].
pub const NR_ORDERS: usize = MAX_ORDER as usize + 1;
/// The most NUMA nodes the allocator handles (Linux's `MAX_NUMNODES` on a
/// `NODES_SHIFT = 6` build); a [`NodeMask`](super::NodeMask) is one `u64`.
pub const MAX_NUMNODES: usize = 64;

/// A NUMA node number, as assigned by the kernel from the SRAT proximity domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node number as an index into per-node arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// A physical page frame number: the physical address shifted right by [`PAGE_SHIFT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The frame holding physical address `phys_addr` (rounded down).
    pub const fn containing(phys_addr: u64) -> Pfn {
        Pfn(phys_addr >> PAGE_SHIFT)
    }

    /// The physical address of the first byte of this frame.
    pub const fn phys_addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame `pages` frames after this one.
    pub const fn add(self, pages: u64) -> Pfn {
        Pfn(self.0 + pages)
    }

    /// Whether this frame can start a block of `order`.
    pub const fn is_aligned(self, order: Order) -> bool {
        self.0 & (order.pages() - 1) == 0
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

/// A buddy block order: a block of order `n` is `2^n` contiguous, `2^n`-aligned frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Order(u8);

impl Order {
    /// One 4 KiB frame.
    pub const FRAME_4K: Order = Order(0);
    /// A 2 MiB block (an x86_64 PMD-level huge page).
    pub const HUGE_2M: Order = Order(9);
    /// A 1 GiB block (an x86_64 PUD-level huge page), the largest order.
    pub const HUGE_1G: Order = Order(MAX_ORDER);

    /// The order `n`, or `None` if it exceeds [`MAX_ORDER`].
    pub const fn new(n: u8) -> Option<Order> {
        if n <= MAX_ORDER {
            Some(Order(n))
        } else {
            None
        }
    }

    /// The order as a number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The order as an index into per-order arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Frames in a block of this order.
    pub const fn pages(self) -> u64 {
        1u64 << self.0
    }

    /// Bytes in a block of this order.
    pub const fn bytes(self) -> u64 {
        PAGE_SIZE << self.0
    }

    /// Every order, smallest first.
    pub fn all() -> impl DoubleEndedIterator<Item = Order> + Clone {
        (0..=MAX_ORDER).map(Order)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order {}", self.0)
    }
}

/// A number of 4 KiB pages (never bytes; see [`PageCount::bytes`] and [`PageCount::kib`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PageCount(pub u64);

impl PageCount {
    /// The count in bytes.
    pub const fn bytes(self) -> u64 {
        self.0 * PAGE_SIZE
    }

    /// The count in KiB, the unit of `/proc/meminfo`.
    pub const fn kib(self) -> u64 {
        self.0 << (PAGE_SHIFT - 10)
    }

    /// Whole pages in `kib` KiB.
    pub const fn from_kib(kib: u64) -> PageCount {
        PageCount(kib >> (PAGE_SHIFT - 10))
    }

    /// `self - other`, or zero if `other` is larger.
    pub const fn saturating_sub(self, other: PageCount) -> PageCount {
        PageCount(self.0.saturating_sub(other.0))
    }
}

impl core::ops::Add for PageCount {
    type Output = PageCount;
    fn add(self, rhs: PageCount) -> PageCount {
        PageCount(self.0 + rhs.0)
    }
}

impl core::ops::AddAssign for PageCount {
    fn add_assign(&mut self, rhs: PageCount) {
        self.0 += rhs.0;
    }
}

impl fmt::Display for PageCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pages", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bounds_and_sizes() {
        assert_eq!(Order::new(19), None);
        assert_eq!(Order::HUGE_1G.bytes(), 1 << 30);
        assert_eq!(Order::HUGE_2M.bytes(), 2 << 20);
        assert_eq!(Order::all().count(), NR_ORDERS);
    }

    #[test]
    fn pfn_and_page_count_units() {
        assert_eq!(Pfn::containing(0x20_1fff), Pfn(0x201));
        assert_eq!(Pfn(0x201).phys_addr(), 0x20_1000);
        assert!(Pfn(512).is_aligned(Order::HUGE_2M));
        assert!(!Pfn(513).is_aligned(Order::HUGE_2M));
        assert_eq!(PageCount(3).kib(), 12);
        assert_eq!(PageCount::from_kib(13), PageCount(3));
        assert_eq!(PageCount(2).saturating_sub(PageCount(5)), PageCount(0));
    }
}
