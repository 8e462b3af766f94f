//! Typed addresses for the page-table seam: [`VirtAddr`], a user virtual address, so
//! that an address cannot be mistaken for a length, a page count or a frame number
//! where the address-space code and a [`PageTable`](crate::pagetable::PageTable) meet.
//! Frames stay [`Pfn`](crate::frame::Pfn)s.
//!
//! Arithmetic that can leave the `u64` range is checked (`None`, never a wrap), so a
//! range end computed from userland's numbers cannot come back as a small address.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

use crate::frame::{HUGE_PAGE_SIZE, PAGE_SHIFT, PAGE_SIZE};

/// A user virtual address (the lower half of an address space). It is a plain number
/// with address helpers: it need not be page-aligned (a fault address is not), and it
/// is not checked to be canonical (callers validate userland's ranges first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// Address 0.
    pub const ZERO: VirtAddr = VirtAddr(0);

    /// The address `addr`.
    pub const fn new(addr: u64) -> VirtAddr {
        VirtAddr(addr)
    }

    /// The address as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the address is a multiple of `align` (a power of two).
    pub const fn is_aligned(self, align: u64) -> bool {
        debug_assert!(align.is_power_of_two());
        self.0 & (align - 1) == 0
    }

    /// Whether the address starts a 4 KiB page.
    pub const fn is_page_aligned(self) -> bool {
        self.is_aligned(PAGE_SIZE)
    }

    /// Whether the address starts a 2 MiB (huge-leaf) slot.
    pub const fn is_huge_aligned(self) -> bool {
        self.is_aligned(HUGE_PAGE_SIZE)
    }

    /// The address rounded down to a multiple of `align` (a power of two).
    pub const fn align_down(self, align: u64) -> VirtAddr {
        debug_assert!(align.is_power_of_two());
        VirtAddr(self.0 & !(align - 1))
    }

    /// The address rounded up to a multiple of `align` (a power of two); `None` if
    /// that is past `u64::MAX`.
    pub const fn align_up(self, align: u64) -> Option<VirtAddr> {
        debug_assert!(align.is_power_of_two());
        match self.0.checked_add(align - 1) {
            Some(sum) => Some(VirtAddr(sum & !(align - 1))),
            None => None,
        }
    }

    /// The first address of the 4 KiB page holding this one.
    pub const fn page_base(self) -> VirtAddr {
        self.align_down(PAGE_SIZE)
    }

    /// The address rounded up to a 4 KiB boundary; `None` past `u64::MAX`.
    pub const fn page_align_up(self) -> Option<VirtAddr> {
        self.align_up(PAGE_SIZE)
    }

    /// The first address of the 2 MiB slot holding this one.
    pub const fn huge_base(self) -> VirtAddr {
        self.align_down(HUGE_PAGE_SIZE)
    }

    /// The address rounded up to a 2 MiB boundary; `None` past `u64::MAX`.
    pub const fn huge_align_up(self) -> Option<VirtAddr> {
        self.align_up(HUGE_PAGE_SIZE)
    }

    /// The address `bytes` further on; `None` past `u64::MAX`.
    pub const fn checked_add(self, bytes: u64) -> Option<VirtAddr> {
        match self.0.checked_add(bytes) {
            Some(addr) => Some(VirtAddr(addr)),
            None => None,
        }
    }

    /// The address `bytes` before this one; `None` below 0.
    pub const fn checked_sub(self, bytes: u64) -> Option<VirtAddr> {
        match self.0.checked_sub(bytes) {
            Some(addr) => Some(VirtAddr(addr)),
            None => None,
        }
    }

    /// Bytes from `base` up to this address; `None` if `base` is above it.
    pub const fn offset_from(self, base: VirtAddr) -> Option<u64> {
        self.0.checked_sub(base.0)
    }

    /// The number of the 4 KiB page holding the address (the address shifted right by
    /// [`PAGE_SHIFT`]).
    pub const fn page_index(self) -> u64 {
        self.0 >> PAGE_SHIFT
    }

    /// The byte offset of the address within its 4 KiB page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }

    /// Which 4 KiB page of its 2 MiB slot the address is in (0..512).
    pub const fn page_in_huge(self) -> u64 {
        (self.0 & (HUGE_PAGE_SIZE - 1)) >> PAGE_SHIFT
    }
}

/// The 4 KiB steps from `start` up to `end` (exclusive): `start`, `start + 4096`, ...
pub fn pages(start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = VirtAddr> + Clone {
    (start.0..end.0).step_by(PAGE_SIZE as usize).map(VirtAddr)
}

/// Stepping through a range the caller already validated (the next page, the end of
/// a huge leaf): plain `u64` addition, so an overflow is a bug (a panic in debug
/// builds). Numbers userland chose go through [`VirtAddr::checked_add`].
impl Add<u64> for VirtAddr {
    type Output = VirtAddr;

    fn add(self, bytes: u64) -> VirtAddr {
        VirtAddr(self.0 + bytes)
    }
}

impl AddAssign<u64> for VirtAddr {
    fn add_assign(&mut self, bytes: u64) {
        self.0 += bytes;
    }
}

/// Stepping back within a validated range; see the `Add` impl.
impl Sub<u64> for VirtAddr {
    type Output = VirtAddr;

    fn sub(self, bytes: u64) -> VirtAddr {
        VirtAddr(self.0 - bytes)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn alignment_checks() {
        assert!(VirtAddr::ZERO.is_page_aligned());
        assert!(VirtAddr::ZERO.is_huge_aligned());
        assert!(VirtAddr::new(0x7000).is_page_aligned());
        assert!(!VirtAddr::new(0x7001).is_page_aligned());
        assert!(!VirtAddr::new(0x7000).is_huge_aligned());
        assert!(VirtAddr::new(0x40_0000).is_huge_aligned());
        assert!(VirtAddr::new(0x40_1000).is_aligned(0x1000));
        assert!(!VirtAddr::new(0x40_1000).is_aligned(0x2000));
    }

    #[test]
    fn align_down_and_up() {
        let va = VirtAddr::new(0x20_1234);
        assert_eq!(va.page_base(), VirtAddr::new(0x20_1000));
        assert_eq!(va.page_align_up(), Some(VirtAddr::new(0x20_2000)));
        assert_eq!(va.huge_base(), VirtAddr::new(0x20_0000));
        assert_eq!(va.huge_align_up(), Some(VirtAddr::new(0x40_0000)));
        // Already aligned: unchanged both ways.
        let aligned = VirtAddr::new(0x40_0000);
        assert_eq!(aligned.page_base(), aligned);
        assert_eq!(aligned.page_align_up(), Some(aligned));
        assert_eq!(aligned.huge_base(), aligned);
        assert_eq!(aligned.huge_align_up(), Some(aligned));
        assert_eq!(
            VirtAddr::new(0x1fff).align_down(0x1000),
            VirtAddr::new(0x1000)
        );
        assert_eq!(
            VirtAddr::new(0x1001).align_up(0x1000),
            Some(VirtAddr::new(0x2000))
        );
    }

    #[test]
    fn align_up_near_the_top_is_none_not_a_wrap() {
        assert_eq!(VirtAddr::new(u64::MAX).page_align_up(), None);
        assert_eq!(VirtAddr::new(u64::MAX - 0xffe).page_align_up(), None);
        assert_eq!(VirtAddr::new(u64::MAX - 0x1000).huge_align_up(), None);
        assert_eq!(VirtAddr::new(u64::MAX).align_up(2), None);
        // The last page boundary below the top is still reachable.
        let last_page = VirtAddr::new(!0xfff);
        assert_eq!(last_page.page_align_up(), Some(last_page));
        assert_eq!(
            VirtAddr::new(last_page.as_u64() - 1).page_align_up(),
            Some(last_page)
        );
        // Rounding down never fails, even at the top.
        assert_eq!(VirtAddr::new(u64::MAX).page_base(), last_page);
        assert_eq!(
            VirtAddr::new(u64::MAX).huge_base(),
            VirtAddr::new(!0x1f_ffff)
        );
    }

    #[test]
    fn checked_offsets() {
        let va = VirtAddr::new(0x1000);
        assert_eq!(va.checked_add(0x2000), Some(VirtAddr::new(0x3000)));
        assert_eq!(va.checked_sub(0x1000), Some(VirtAddr::ZERO));
        assert_eq!(va.checked_sub(0x1001), None);
        assert_eq!(VirtAddr::new(u64::MAX).checked_add(1), None);
        assert_eq!(
            VirtAddr::new(u64::MAX - 5).checked_add(5),
            Some(VirtAddr::new(u64::MAX))
        );
        assert_eq!(VirtAddr::new(0x5000).offset_from(va), Some(0x4000));
        assert_eq!(va.offset_from(VirtAddr::new(0x5000)), None);
        assert_eq!(va.offset_from(va), Some(0));
    }

    #[test]
    fn stepping_operators() {
        let mut va = VirtAddr::new(0x40_0000);
        assert_eq!(va + HUGE_PAGE_SIZE, VirtAddr::new(0x60_0000));
        assert_eq!(va - PAGE_SIZE, VirtAddr::new(0x3f_f000));
        va += PAGE_SIZE;
        assert_eq!(va, VirtAddr::new(0x40_1000));
    }

    #[test]
    fn pages_steps_by_4k_up_to_the_end() {
        let got: alloc::vec::Vec<_> = pages(VirtAddr::new(0x1000), VirtAddr::new(0x4000)).collect();
        assert_eq!(
            got,
            [
                VirtAddr::new(0x1000),
                VirtAddr::new(0x2000),
                VirtAddr::new(0x3000)
            ]
        );
        assert_eq!(
            pages(VirtAddr::new(0x4000), VirtAddr::new(0x4000)).count(),
            0
        );
        assert_eq!(
            pages(VirtAddr::new(0x5000), VirtAddr::new(0x4000)).count(),
            0
        );
        assert_eq!(
            pages(VirtAddr::new(0x1000), VirtAddr::new(0x1001)).count(),
            1
        );
    }

    #[test]
    fn page_numbers() {
        let va = VirtAddr::new(0x20_3abc);
        assert_eq!(va.page_index(), 0x203);
        assert_eq!(va.page_offset(), 0xabc);
        assert_eq!(va.page_in_huge(), 3);
        assert_eq!(VirtAddr::new(0x3f_f000).page_in_huge(), 511);
        assert_eq!(VirtAddr::new(0x40_0000).page_in_huge(), 0);
        assert_eq!(VirtAddr::new(u64::MAX).page_index(), u64::MAX >> 12);
    }

    #[test]
    fn order_and_formatting() {
        assert!(VirtAddr::new(0x1000) < VirtAddr::new(0x2000));
        assert_eq!(VirtAddr::new(7).as_u64(), 7);
        assert_eq!(VirtAddr::default(), VirtAddr::ZERO);
        assert_eq!(
            format!("{:?}", VirtAddr::new(0x7f00_1000)),
            "VirtAddr(0x7f001000)"
        );
        assert_eq!(format!("{:x}", VirtAddr::new(0xabc)), "abc");
        assert_eq!(format!("{:#x}", VirtAddr::new(0xabc)), "0xabc");
    }

    proptest::proptest! {
        /// Rounding up gives the nearest multiple at or above the address, or
        /// `None` exactly when that multiple is past `u64::MAX`.
        #[test]
        fn align_up_is_the_nearest_multiple_or_none(addr in proptest::num::u64::ANY, shift in 0u32..40) {
            let align = 1u64 << shift;
            let va = VirtAddr::new(addr);
            let exact = (addr as u128).div_ceil(align as u128) * align as u128;
            match va.align_up(align) {
                Some(up) => {
                    proptest::prop_assert_eq!(up.as_u64() as u128, exact);
                    proptest::prop_assert!(up.is_aligned(align));
                    proptest::prop_assert_eq!(up.align_down(align), up);
                }
                None => proptest::prop_assert!(exact > u64::MAX as u128),
            }
            proptest::prop_assert!(va.align_down(align) <= va);
            proptest::prop_assert!(va.offset_from(va.align_down(align)).is_some_and(|off| off < align));
        }
    }
}
