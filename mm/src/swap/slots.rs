//! The slot map of one swap area (Linux's `swap_map`): one count per page of the
//! device, the number of page-table entries that name the slot, plus a flag while
//! the swap cache holds a page for it. A slot is free when both are zero. Page 0
//! (the header) and the header's bad pages are never handed out.
//!
//! Allocation is next-fit from a cursor (sequential swap-outs land on consecutive
//! slots, so the device sees sequential writes), wrapping once.

use alloc::vec;
use alloc::vec::Vec;

/// The cache flag in a slot's count.
const HAS_CACHE: u16 = 0x8000;
/// A slot that is never used (the header, a bad page).
const UNUSABLE: u16 = 0x7fff;
/// The most entries that may name one slot (forks beyond this fail the copy).
pub const MAX_SLOT_REFS: u16 = 0x7ffe;

/// The counts of one area.
pub struct SlotMap {
    counts: Vec<u16>,
    cursor: usize,
    /// Slots in use (references or cache).
    used: u64,
    /// Slots that may ever be used.
    usable: u64,
}

impl SlotMap {
    /// A map of `pages` slots, page 0 and `bad` unusable.
    pub fn new(pages: u64, bad: &[u64]) -> SlotMap {
        let mut counts = vec![0u16; pages as usize];
        if let Some(first) = counts.first_mut() {
            *first = UNUSABLE;
        }
        for &b in bad {
            if let Some(c) = counts.get_mut(b as usize) {
                *c = UNUSABLE;
            }
        }
        let usable = counts.iter().filter(|&&c| c == 0).count() as u64;
        SlotMap {
            counts,
            cursor: 1,
            used: 0,
            usable,
        }
    }

    /// Slots that may hold pages.
    pub fn usable(&self) -> u64 {
        self.usable
    }

    /// Slots in use.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// A free slot, now named by one entry and held by the cache; `None` when full.
    pub fn alloc(&mut self) -> Option<u64> {
        let n = self.counts.len();
        if self.used >= self.usable || n == 0 {
            return None;
        }
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if self.counts[i] == 0 {
                self.counts[i] = 1 | HAS_CACHE;
                self.cursor = i + 1;
                self.used += 1;
                return Some(i as u64);
            }
        }
        None
    }

    fn get_mut(&mut self, slot: u64) -> Option<&mut u16> {
        self.counts
            .get_mut(slot as usize)
            .filter(|c| **c != 0 && **c != UNUSABLE)
    }

    /// Entries naming `slot`.
    pub fn refs(&self, slot: u64) -> u16 {
        self.counts
            .get(slot as usize)
            .filter(|&&c| c != UNUSABLE)
            .map_or(0, |c| c & !HAS_CACHE)
    }

    /// Whether the cache holds a page for `slot`.
    pub fn cached(&self, slot: u64) -> bool {
        self.counts
            .get(slot as usize)
            .is_some_and(|&c| c != UNUSABLE && c & HAS_CACHE != 0)
    }

    /// One more entry names `slot` (fork); false if the slot is not in use or full.
    pub fn dup(&mut self, slot: u64) -> bool {
        match self.get_mut(slot) {
            Some(c) if *c & !HAS_CACHE < MAX_SLOT_REFS && *c & !HAS_CACHE != 0 => {
                *c += 1;
                true
            }
            _ => false,
        }
    }

    /// One entry naming `slot` went away; returns the entries left.
    pub fn put(&mut self, slot: u64) -> u16 {
        let Some(c) = self.get_mut(slot) else {
            return 0;
        };
        if *c & !HAS_CACHE == 0 {
            return 0;
        }
        *c -= 1;
        let (now, left) = (*c, *c & !HAS_CACHE);
        if now == 0 {
            self.used -= 1;
        }
        left
    }

    /// Marks `slot` as held by the cache.
    pub fn set_cached(&mut self, slot: u64) {
        if let Some(c) = self.get_mut(slot) {
            *c |= HAS_CACHE;
        }
    }

    /// The cache let go of `slot`; frees it if no entry names it.
    pub fn clear_cached(&mut self, slot: u64) {
        if let Some(c) = self.get_mut(slot) {
            *c &= !HAS_CACHE;
            if *c == 0 {
                self.used -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_skips_header_and_bad_pages_and_fills_up() {
        let mut m = SlotMap::new(8, &[3]);
        assert_eq!(m.usable(), 6);
        let got: Vec<u64> = core::iter::from_fn(|| m.alloc()).collect();
        assert_eq!(got, [1, 2, 4, 5, 6, 7]);
        assert_eq!(m.used(), 6);
        assert_eq!(m.alloc(), None);
    }

    #[test]
    fn a_slot_is_free_once_entries_and_cache_let_go() {
        let mut m = SlotMap::new(4, &[]);
        let s = m.alloc().unwrap();
        assert!(m.cached(s) && m.refs(s) == 1);
        assert!(m.dup(s));
        assert_eq!(m.put(s), 1);
        m.clear_cached(s);
        assert_eq!(m.used(), 1, "one entry still names it");
        assert_eq!(m.put(s), 0);
        assert_eq!(m.used(), 0);
        assert!(!m.dup(s), "a free slot cannot be duplicated");
        assert_eq!(m.put(s), 0, "nor released twice");
        assert_eq!(m.used(), 0);
        // Cache released after the last entry: freed then.
        let t = m.alloc().unwrap();
        assert_eq!(m.put(t), 0);
        assert_eq!(m.used(), 1);
        m.clear_cached(t);
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn next_fit_wraps_around() {
        let mut m = SlotMap::new(4, &[]);
        let a = m.alloc().unwrap();
        let b = m.alloc().unwrap();
        assert_eq!((a, b), (1, 2));
        m.put(a);
        m.clear_cached(a);
        assert_eq!(m.alloc(), Some(3));
        assert_eq!(m.alloc(), Some(1), "wrapped to the freed slot");
        assert_eq!(m.alloc(), None);
    }
}
