//! Per-frame reference counts for frames with more than one owner (after fork, or a
//! page-cache page that is also mapped).
//!
//! Frames below the table's dense limit (all of RAM, in the kernel) keep their count in
//! an array of atomics indexed by frame number, holding references minus one: zero for
//! an unshared frame, so the array starts zeroed and taking or dropping a reference is
//! one atomic operation, with no lock and no allocation (fork takes one per mapped
//! page). Frames above the limit (the sparse frame numbers of host tests) use the
//! striped map below.
//!
//! In the map, a frame with no entry has exactly one owner,
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

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

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
    /// References minus one, for frames below `dense.len()`.
    dense: Box<[AtomicU32]>,
    stripes: [Stripe; STRIPES],
}

impl Default for FrameRefs {
    fn default() -> Self {
        FrameRefs::new()
    }
}

impl FrameRefs {
    /// An empty table (every frame at one reference), every count in the striped map.
    pub fn new() -> FrameRefs {
        FrameRefs {
            dense: Box::new([]),
            stripes: core::array::from_fn(|_| Stripe::default()),
        }
    }

    /// An empty table whose frames below `pfn_limit` keep their counts in a dense
    /// array (4 bytes a frame); `None` if that array cannot be allocated.
    pub fn try_with_dense_limit(pfn_limit: u64) -> Option<FrameRefs> {
        let len = usize::try_from(pfn_limit).ok()?;
        let mut dense = Vec::new();
        dense.try_reserve_exact(len).ok()?;
        dense.resize_with(len, || AtomicU32::new(0));
        Some(FrameRefs {
            dense: dense.into_boxed_slice(),
            stripes: core::array::from_fn(|_| Stripe::default()),
        })
    }

    fn dense(&self, pfn: Pfn) -> Option<&AtomicU32> {
        usize::try_from(pfn.0).ok().and_then(|i| self.dense.get(i))
    }

    fn stripe(&self, pfn: Pfn) -> &Stripe {
        &self.stripes[(pfn.0 as usize) & (STRIPES - 1)]
    }

    /// Adds a reference to `pfn` (the caller holds one already).
    pub fn get(&self, pfn: Pfn) {
        if let Some(extra) = self.dense(pfn) {
            extra.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let stripe = self.stripe(pfn);
        let mut map = stripe.map.lock();
        *map.entry(pfn.0).or_insert(1) += 1;
        stripe.publish(&map);
    }

    /// Drops a reference to `pfn`; true when that was the last one (the caller frees).
    pub fn put(&self, pfn: Pfn) -> bool {
        if let Some(extra) = self.dense(pfn) {
            // Zero extra references: this was the last one. Otherwise one fewer; two
            // racing puts on two references cannot both see zero (the compare-and-swap
            // lets only one of them take the count from one to zero).
            let mut n = extra.load(Ordering::Acquire);
            loop {
                if n == 0 {
                    return true;
                }
                match extra.compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return false,
                    Err(now) => n = now,
                }
            }
        }
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
        if let Some(extra) = self.dense(pfn) {
            return extra.load(Ordering::Acquire) + 1;
        }
        let stripe = self.stripe(pfn);
        if stripe.is_empty() {
            return 1;
        }
        stripe.map.lock().get(&pfn.0).copied().unwrap_or(1)
    }

    /// Frames with more than one reference.
    pub fn shared_frames(&self) -> usize {
        let dense = self
            .dense
            .iter()
            .filter(|extra| extra.load(Ordering::Relaxed) != 0)
            .count();
        dense
            + self
                .stripes
                .iter()
                .map(|s| s.map.lock().len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down() {
        for r in [
            FrameRefs::new(),
            FrameRefs::try_with_dense_limit(16).unwrap(),
        ] {
            counts_up_and_down_in(r);
        }
    }

    #[test]
    fn frames_above_the_dense_limit_use_the_map() {
        let r = FrameRefs::try_with_dense_limit(4).unwrap();
        r.get(Pfn(3));
        r.get(Pfn(9));
        assert_eq!((r.count(Pfn(3)), r.count(Pfn(9))), (2, 2));
        assert_eq!(r.shared_frames(), 2);
        assert!(!r.put(Pfn(3)) && !r.put(Pfn(9)));
        assert!(r.put(Pfn(3)) && r.put(Pfn(9)));
        assert_eq!(r.shared_frames(), 0);
    }

    #[test]
    fn racing_puts_free_exactly_once() {
        extern crate std;
        let r = alloc::sync::Arc::new(FrameRefs::try_with_dense_limit(64).unwrap());
        for round in 0..200u64 {
            let p = Pfn(round % 64);
            for _ in 0..3 {
                r.get(p);
            }
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let r = r.clone();
                    std::thread::spawn(move || r.put(p))
                })
                .collect();
            let lasts = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&last| last)
                .count();
            assert_eq!(lasts, 1, "four references, four puts: exactly one last");
        }
    }

    fn counts_up_and_down_in(r: FrameRefs) {
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
