//! A swap entry: where a swapped-out page lives (an area and a slot), packed small
//! enough for a page-table entry to hold. Page tables store it; the rest of
//! `swap` gives it meaning.

/// Bits of the slot number in a [`SwapEntry`].
const SLOT_BITS: u32 = 40;

/// Where a swapped-out page lives: an area and a slot (page) in it. Fits in 45 bits,
/// so a page-table entry can hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwapEntry(u64);

impl SwapEntry {
    /// Slot `slot` of area `area`.
    pub fn new(area: u8, slot: u64) -> SwapEntry {
        SwapEntry((u64::from(area) << SLOT_BITS) | (slot & ((1 << SLOT_BITS) - 1)))
    }

    /// The area's number.
    pub fn area(self) -> u8 {
        (self.0 >> SLOT_BITS) as u8
    }

    /// The slot in the area.
    pub fn slot(self) -> u64 {
        self.0 & ((1 << SLOT_BITS) - 1)
    }

    /// The packed value (what a page-table entry stores).
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The entry a packed value names.
    pub fn from_raw(raw: u64) -> SwapEntry {
        SwapEntry(raw & ((1 << (SLOT_BITS + 5)) - 1))
    }
}
