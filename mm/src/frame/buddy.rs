//! The per-node buddy allocator: per-order free lists over a node's physical ranges,
//! with splitting and coalescing. Its metadata (one state byte and one list link per
//! frame) lives on the heap, so it never touches the frames it manages.

use alloc::vec;
use alloc::vec::Vec;

use super::error::FreeError;
use super::types::{Order, Pfn, MAX_ORDER, NR_ORDERS};

/// End of a free list.
const NIL: u32 = u32::MAX;
/// Frame state: no memory here (a hole, or before the node's first range).
const HOLE: u8 = 0xff;
/// Frame state: inside a block (free or allocated) whose head is elsewhere.
const TAIL: u8 = 0x80;
/// Frame state flag: head of an allocated block; the low bits hold the order.
const ALLOCATED: u8 = 0x40;
// Any other value `o <= MAX_ORDER` means: head of a free block of order `o`.

/// Doubly linked free-list link, indexed by frame.
#[derive(Clone, Copy)]
struct Link {
    next: u32,
    prev: u32,
}

/// The largest number of frames one node's metadata can index.
pub(crate) const MAX_NODE_SPAN: u64 = NIL as u64;

/// One node's buddy allocator.
pub(crate) struct Buddy {
    /// PFN of metadata index 0, aligned to a [`MAX_ORDER`] block so that index
    /// alignment equals physical alignment.
    base: u64,
    /// Per-frame state: [`HOLE`], [`TAIL`], `ALLOCATED | order` or a free order.
    state: Vec<u8>,
    /// Free-list links, meaningful only at free block heads.
    links: Vec<Link>,
    /// Head of each order's free list.
    heads: [u32; NR_ORDERS],
    /// Free blocks per order.
    nr_free: [u64; NR_ORDERS],
    /// Free frames in all lists.
    free_pages: u64,
    /// Frames in the node's ranges (Linux's `present_pages`; all are managed).
    present_pages: u64,
    /// First frame of the lowest range.
    start_pfn: u64,
    /// One past the last frame of the highest range.
    end_pfn: u64,
}

impl Buddy {
    /// A buddy allocator whose free lists hold exactly the frames of `ranges`,
    /// which must be sorted, disjoint and non-empty half-open PFN ranges, spanning
    /// fewer than [`MAX_NODE_SPAN`] frames from the aligned base. Each range is
    /// inserted as maximal aligned blocks, so building costs one pass over the
    /// metadata plus `O(ranges * MAX_ORDER)` list operations.
    pub(crate) fn new(ranges: &[(Pfn, Pfn)]) -> Buddy {
        let start_pfn = ranges.first().map_or(0, |r| r.0 .0);
        let end_pfn = ranges.last().map_or(0, |r| r.1 .0);
        let base = start_pfn & !(Order::HUGE_1G.pages() - 1);
        let len = (end_pfn - base) as usize;
        let mut buddy = Buddy {
            base,
            state: vec![HOLE; len],
            links: vec![
                Link {
                    next: NIL,
                    prev: NIL
                };
                len
            ],
            heads: [NIL; NR_ORDERS],
            nr_free: [0; NR_ORDERS],
            free_pages: 0,
            present_pages: 0,
            start_pfn,
            end_pfn,
        };
        // Adjacent ranges are inserted as one, so that their blocks are maximal.
        let mut pending: Option<(u64, u64)> = None;
        for &(start, end) in ranges {
            match pending {
                Some((s, e)) if e == start.0 => pending = Some((s, end.0)),
                Some((s, e)) => {
                    buddy.add_range(s, e);
                    pending = Some((start.0, end.0));
                }
                None => pending = Some((start.0, end.0)),
            }
        }
        if let Some((s, e)) = pending {
            buddy.add_range(s, e);
        }
        buddy
    }

    /// Hands `[start, end)` to the free lists as maximal aligned blocks.
    fn add_range(&mut self, start: u64, end: u64) {
        let (lo, hi) = ((start - self.base) as usize, (end - self.base) as usize);
        self.state[lo..hi].fill(TAIL);
        let mut pfn = start;
        while pfn < end {
            let align = if pfn == 0 {
                MAX_ORDER as u32
            } else {
                pfn.trailing_zeros()
            };
            let fit = 63 - (end - pfn).leading_zeros();
            let order = align.min(fit).min(MAX_ORDER as u32) as u8;
            self.push(order, (pfn - self.base) as u32);
            pfn += 1 << order;
        }
        self.present_pages += end - start;
        self.free_pages += end - start;
    }

    fn push(&mut self, order: u8, idx: u32) {
        let head = self.heads[order as usize];
        self.links[idx as usize] = Link {
            next: head,
            prev: NIL,
        };
        if head != NIL {
            self.links[head as usize].prev = idx;
        }
        self.heads[order as usize] = idx;
        self.state[idx as usize] = order;
        self.nr_free[order as usize] += 1;
    }

    fn unlink(&mut self, order: u8, idx: u32) {
        let Link { next, prev } = self.links[idx as usize];
        if prev == NIL {
            self.heads[order as usize] = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.nr_free[order as usize] -= 1;
    }

    /// Takes a block of `order`, splitting a larger one if needed; the block is
    /// aligned to its size. `None` if no free block is large enough.
    pub(crate) fn alloc(&mut self, order: Order) -> Option<Pfn> {
        let want = order.get();
        let mut have = (want..=MAX_ORDER).find(|&o| self.heads[o as usize] != NIL)?;
        let idx = self.heads[have as usize];
        self.unlink(have, idx);
        while have > want {
            have -= 1;
            self.push(have, idx + (1u32 << have));
        }
        self.state[idx as usize] = ALLOCATED | want;
        self.free_pages -= order.pages();
        Some(Pfn(self.base + idx as u64))
    }

    /// Takes up to `out.len()` single frames; returns how many were taken.
    pub(crate) fn alloc_frames(&mut self, out: &mut [Pfn]) -> usize {
        for (taken, slot) in out.iter_mut().enumerate() {
            match self.alloc(Order::FRAME_4K) {
                Some(pfn) => *slot = pfn,
                None => return taken,
            }
        }
        out.len()
    }

    /// Returns a block to the free lists, merging it with free buddies.
    pub(crate) fn free(&mut self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let idx = self.index_of(pfn).ok_or(FreeError::NotManaged(pfn))?;
        if !pfn.is_aligned(order) {
            return Err(FreeError::Misaligned(pfn, order));
        }
        match self.state[idx as usize] {
            HOLE => return Err(FreeError::NotManaged(pfn)),
            s if s == ALLOCATED | order.get() => {}
            _ => return Err(FreeError::NotAllocated(pfn, order)),
        }
        self.free_pages += order.pages();
        let mut idx = idx;
        let mut o = order.get();
        self.state[idx as usize] = TAIL;
        while o < MAX_ORDER {
            let buddy = idx ^ (1u32 << o);
            if self.state.get(buddy as usize) != Some(&o) {
                break;
            }
            self.unlink(o, buddy);
            self.state[buddy as usize] = TAIL;
            idx = idx.min(buddy);
            o += 1;
        }
        self.push(o, idx);
        Ok(())
    }

    /// Turns the allocated block of `order` at `pfn` into as many allocated single
    /// frames, each freed on its own (a huge page that may be split and released
    /// page by page); they merge back as they are freed.
    pub(crate) fn split_allocated(&mut self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let idx = self.index_of(pfn).ok_or(FreeError::NotManaged(pfn))?;
        if !pfn.is_aligned(order) {
            return Err(FreeError::Misaligned(pfn, order));
        }
        if self.state[idx as usize] != ALLOCATED | order.get() {
            return Err(FreeError::NotAllocated(pfn, order));
        }
        let pages = order.pages() as usize;
        self.state[idx as usize..idx as usize + pages].fill(ALLOCATED);
        Ok(())
    }

    /// Frees the `order` block at `pfn` whose frames were
    /// [split](Self::split_allocated) into single allocated frames and are all still
    /// allocated: joined again and freed as one block (one merge walk, not one per
    /// frame). `NotAllocated` (nothing changed) if any frame of it is not an
    /// allocated single frame.
    pub(crate) fn free_split_block(&mut self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        let idx = self.index_of(pfn).ok_or(FreeError::NotManaged(pfn))? as usize;
        if !pfn.is_aligned(order) {
            return Err(FreeError::Misaligned(pfn, order));
        }
        let pages = order.pages() as usize;
        let frames = self
            .state
            .get(idx..idx + pages)
            .ok_or(FreeError::NotManaged(pfn))?;
        if frames.iter().any(|&s| s != ALLOCATED) {
            return Err(FreeError::NotAllocated(pfn, order));
        }
        self.state[idx + 1..idx + pages].fill(TAIL);
        self.state[idx] = ALLOCATED | order.get();
        self.free(pfn, order)
    }

    fn index_of(&self, pfn: Pfn) -> Option<u32> {
        if pfn.0 < self.start_pfn || pfn.0 >= self.end_pfn {
            return None;
        }
        Some((pfn.0 - self.base) as u32)
    }

    /// Frames on the free lists.
    pub(crate) fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Free blocks of each order (the columns of `/proc/buddyinfo`).
    pub(crate) fn nr_free(&self) -> [u64; NR_ORDERS] {
        self.nr_free
    }

    /// Frames in the node's ranges.
    pub(crate) fn present_pages(&self) -> u64 {
        self.present_pages
    }

    /// First frame of the node (0 for a node without memory).
    pub(crate) fn start_pfn(&self) -> Pfn {
        Pfn(self.start_pfn)
    }

    /// Frames from the first to the last frame of the node, holes included.
    pub(crate) fn spanned_pages(&self) -> u64 {
        self.end_pfn - self.start_pfn
    }

    /// Every free block as `(pfn, order)`, sorted by pfn (for tests and debugging).
    #[cfg(test)]
    pub(crate) fn free_blocks(&self) -> Vec<(Pfn, Order)> {
        let mut out = Vec::new();
        for o in 0..=MAX_ORDER {
            let mut idx = self.heads[o as usize];
            while idx != NIL {
                out.push((
                    Pfn(self.base + idx as u64),
                    Order::new(o).expect("order in range"),
                ));
                idx = self.links[idx as usize].next;
            }
        }
        out.sort();
        out
    }

    /// Checks the free lists against the state bytes and counters; panics on a mismatch.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let blocks = self.free_blocks();
        let mut pages = 0;
        for &(pfn, order) in &blocks {
            assert!(pfn.is_aligned(order), "{pfn} misaligned for {order}");
            let idx = (pfn.0 - self.base) as usize;
            assert_eq!(self.state[idx], order.get());
            for s in &self.state[idx + 1..idx + order.pages() as usize] {
                assert_eq!(*s, TAIL);
            }
            if order.get() < MAX_ORDER {
                let buddy = idx ^ (1 << order.get());
                assert_ne!(
                    self.state.get(buddy),
                    Some(&order.get()),
                    "uncoalesced buddies"
                );
            }
            pages += order.pages();
        }
        assert_eq!(pages, self.free_pages);
        for o in 0..NR_ORDERS {
            assert_eq!(
                self.nr_free[o],
                blocks.iter().filter(|b| b.1.index() == o).count() as u64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn o(n: u8) -> Order {
        Order::new(n).unwrap()
    }

    #[test]
    fn a_split_block_goes_back_whole_only_while_every_frame_is_allocated() {
        let mut b = Buddy::new(&[(Pfn(0), Pfn(64))]);
        let pfn = b.alloc(o(4)).unwrap();
        b.split_allocated(pfn, o(4)).unwrap();
        // One frame already back: the block is not whole, nothing changes.
        b.free(Pfn(pfn.0 + 3), o(0)).unwrap();
        let free = b.free_pages();
        assert!(matches!(
            b.free_split_block(pfn, o(4)),
            Err(FreeError::NotAllocated(..))
        ));
        assert_eq!(b.free_pages(), free);
        b.check();
        // The other fifteen one by one, then a second block whole.
        for i in (0..16).filter(|&i| i != 3) {
            b.free(Pfn(pfn.0 + i), o(0)).unwrap();
        }
        assert_eq!(b.free_pages(), 64);
        let pfn = b.alloc(o(4)).unwrap();
        b.split_allocated(pfn, o(4)).unwrap();
        b.free_split_block(pfn, o(4)).unwrap();
        assert_eq!(b.free_pages(), 64);
        assert_eq!(b.free_blocks(), [(Pfn(0), o(6))]);
        b.check();
        // A block not split is refused.
        let pfn = b.alloc(o(2)).unwrap();
        assert!(b.free_split_block(pfn, o(2)).is_err());
        b.free(pfn, o(2)).unwrap();
        b.check();
    }

    #[test]
    fn bulk_insert_uses_maximal_aligned_blocks() {
        // [3, 21): 3 (o0), 4..8 (o2), 8..16 (o3), 16..20 (o2), 20 (o0).
        let b = Buddy::new(&[(Pfn(3), Pfn(21))]);
        b.check();
        assert_eq!(
            b.free_blocks(),
            [
                (Pfn(3), o(0)),
                (Pfn(4), o(2)),
                (Pfn(8), o(3)),
                (Pfn(16), o(2)),
                (Pfn(20), o(0))
            ]
        );
        assert_eq!(b.present_pages(), 18);
        assert_eq!(b.spanned_pages(), 18);
    }

    #[test]
    fn a_million_frames_build_fast_into_gib_blocks() {
        let start = 1 << 18;
        let b = Buddy::new(&[(Pfn(start), Pfn(start + (1 << 20)))]);
        assert_eq!(b.nr_free()[MAX_ORDER as usize], 4);
        assert_eq!(b.free_pages(), 1 << 20);
    }

    #[test]
    fn holes_are_not_managed() {
        let mut b = Buddy::new(&[(Pfn(0), Pfn(8)), (Pfn(16), Pfn(24))]);
        b.check();
        assert_eq!(b.present_pages(), 16);
        assert_eq!(b.spanned_pages(), 24);
        assert_eq!(b.free(Pfn(9), o(0)), Err(FreeError::NotManaged(Pfn(9))));
        assert_eq!(b.free(Pfn(99), o(0)), Err(FreeError::NotManaged(Pfn(99))));
        // The two order-3 blocks are not buddies of a usable order-4 block.
        assert_eq!(b.alloc(o(4)), None);
        assert!(b.alloc(o(3)).is_some());
    }

    #[test]
    fn split_and_coalesce() {
        let mut b = Buddy::new(&[(Pfn(0), Pfn(16))]);
        let a = b.alloc(o(0)).unwrap();
        assert_eq!(a, Pfn(0));
        b.check();
        assert_eq!(b.nr_free()[..4], [1, 1, 1, 1]);
        let c = b.alloc(o(2)).unwrap();
        assert!(c.is_aligned(o(2)));
        b.free(a, o(0)).unwrap();
        b.free(c, o(2)).unwrap();
        b.check();
        assert_eq!(b.free_blocks(), [(Pfn(0), o(4))]);
    }

    #[test]
    fn double_and_wrong_order_free_are_refused() {
        let mut b = Buddy::new(&[(Pfn(0), Pfn(16))]);
        let a = b.alloc(o(1)).unwrap();
        assert_eq!(b.free(a, o(0)), Err(FreeError::NotAllocated(a, o(0))));
        assert_eq!(
            b.free(a.add(1), o(0)),
            Err(FreeError::NotAllocated(a.add(1), o(0)))
        );
        assert_eq!(
            b.free(Pfn(1), o(1)),
            Err(FreeError::Misaligned(Pfn(1), o(1)))
        );
        b.free(a, o(1)).unwrap();
        assert_eq!(b.free(a, o(1)), Err(FreeError::NotAllocated(a, o(1))));
        b.check();
    }

    #[test]
    fn bulk_frame_alloc_stops_when_empty() {
        let mut b = Buddy::new(&[(Pfn(0), Pfn(5))]);
        let mut out = [Pfn(0); 8];
        assert_eq!(b.alloc_frames(&mut out), 5);
        assert_eq!(b.free_pages(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any sequence of allocations and frees conserves frames, never hands out a
        /// frame twice, returns aligned blocks, and freeing everything restores the
        /// exact initial free lists.
        #[test]
        fn conserves_and_coalesces(
            ranges in proptest::collection::vec((0u64..64, 1u64..300), 1..4),
            ops in proptest::collection::vec((any::<bool>(), 0u8..=10, any::<prop::sample::Index>()), 1..200),
        ) {
            let mut pfn_ranges = Vec::new();
            let mut at = 1000u64;
            for (gap, len) in ranges {
                at += gap;
                pfn_ranges.push((Pfn(at), Pfn(at + len)));
                at += len;
            }
            let mut b = Buddy::new(&pfn_ranges);
            let initial = b.free_blocks();
            let total = b.present_pages();
            let mut held: Vec<(Pfn, Order)> = Vec::new();
            let mut frames: BTreeSet<u64> = BTreeSet::new();
            for (is_alloc, order, pick) in ops {
                if is_alloc || held.is_empty() {
                    let order = o(order);
                    if let Some(pfn) = b.alloc(order) {
                        prop_assert!(pfn.is_aligned(order));
                        for f in pfn.0..pfn.0 + order.pages() {
                            prop_assert!(pfn_ranges.iter().any(|r| r.0 .0 <= f && f < r.1 .0));
                            prop_assert!(frames.insert(f), "frame {} handed out twice", f);
                        }
                        held.push((pfn, order));
                    }
                } else {
                    let (pfn, order) = held.swap_remove(pick.index(held.len()));
                    b.free(pfn, order).unwrap();
                    for f in pfn.0..pfn.0 + order.pages() {
                        frames.remove(&f);
                    }
                }
                prop_assert_eq!(b.free_pages() + frames.len() as u64, total);
            }
            b.check();
            for (pfn, order) in held {
                b.free(pfn, order).unwrap();
            }
            b.check();
            prop_assert_eq!(b.free_blocks(), initial);
        }
    }
}
