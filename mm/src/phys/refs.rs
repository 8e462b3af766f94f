//! Per-frame reference counts for frames with more than one owner (after fork, or a
//! page-cache page that is also mapped). A frame with no entry has exactly one owner,
//! so the demand-zero fault path never touches this table; the table is lock-striped
//! by frame number so that operations on different frames almost never meet, and
//! each stripe publishes whether it holds any entry, so that releasing or checking an
//! unshared frame (every munmap of private memory) takes no lock at all.
//!
//! Why the lock-free check is sound: an entry for a frame exists only while it has
//! two or more references, and it is created by someone who already holds one. So a
//! holder of the only reference can see no entry appear for its frame, and a holder
//! of a shared frame learned of the sharing through the same synchronisation that
//! published the entry (the fork or page-cache lookup that handed it the frame).

use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::frame::Pfn;

/// Number of stripes (a power of two).
const STRIPES: usize = 64;

#[repr(align(64))]
#[derive(Default)]
struct Stripe {
    map: spin::Mutex<BTreeMap<u64, u32>>,
    /// Entries in `map`, written under its lock.
    entries: AtomicUsize,
}

impl Stripe {
    fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Acquire) == 0
    }

    fn publish(&self, map: &BTreeMap<u64, u32>) {
        self.entries.store(map.len(), Ordering::Release);
    }
}

/// Reference counts keyed by frame number; absent means one reference.
pub struct FrameRefs {
    stripes: [Stripe; STRIPES],
}

impl Default for FrameRefs {
    fn default() -> Self {
        FrameRefs::new()
    }
}

impl FrameRefs {
    /// An empty table (every frame at one reference).
    pub fn new() -> FrameRefs {
        FrameRefs {
            stripes: core::array::from_fn(|_| Stripe::default()),
        }
    }

    fn stripe(&self, pfn: Pfn) -> &Stripe {
        &self.stripes[(pfn.0 as usize) & (STRIPES - 1)]
    }

    /// Adds a reference to `pfn` (the caller holds one already).
    pub fn get(&self, pfn: Pfn) {
        let stripe = self.stripe(pfn);
        let mut map = stripe.map.lock();
        *map.entry(pfn.0).or_insert(1) += 1;
        stripe.publish(&map);
    }

    /// Drops a reference to `pfn`; true when that was the last one (the caller frees).
    pub fn put(&self, pfn: Pfn) -> bool {
        let stripe = self.stripe(pfn);
        if stripe.is_empty() {
            return true;
        }
        let mut map = stripe.map.lock();
        let last = match map.get_mut(&pfn.0) {
            None => true,
            Some(n) => {
                *n -= 1;
                if *n == 1 {
                    map.remove(&pfn.0);
                }
                false
            }
        };
        stripe.publish(&map);
        last
    }

    /// The references on `pfn`.
    pub fn count(&self, pfn: Pfn) -> u32 {
        let stripe = self.stripe(pfn);
        if stripe.is_empty() {
            return 1;
        }
        stripe.map.lock().get(&pfn.0).copied().unwrap_or(1)
    }

    /// Frames with more than one reference.
    pub fn shared_frames(&self) -> usize {
        self.stripes.iter().map(|s| s.map.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down() {
        let r = FrameRefs::new();
        let p = Pfn(7);
        assert_eq!(r.count(p), 1);
        r.get(p);
        r.get(p);
        assert_eq!(r.count(p), 3);
        assert!(!r.put(p));
        assert!(!r.put(p));
        assert_eq!(r.shared_frames(), 0);
        assert!(r.put(p));
    }
}
