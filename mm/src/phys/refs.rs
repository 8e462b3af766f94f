//! Per-frame reference counts for frames with more than one owner (after fork, or a
//! page-cache page that is also mapped). A frame with no entry has exactly one owner,
//! so the demand-zero fault path never touches this table; the table is lock-striped
//! by frame number so that operations on different frames almost never meet.

use alloc::collections::BTreeMap;

use crate::frame::Pfn;

/// Number of stripes (a power of two).
const STRIPES: usize = 64;

#[repr(align(64))]
#[derive(Default)]
struct Stripe(spin::Mutex<BTreeMap<u64, u32>>);

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

    fn stripe(&self, pfn: Pfn) -> &spin::Mutex<BTreeMap<u64, u32>> {
        &self.stripes[(pfn.0 as usize) & (STRIPES - 1)].0
    }

    /// Adds a reference to `pfn`.
    pub fn get(&self, pfn: Pfn) {
        let mut map = self.stripe(pfn).lock();
        *map.entry(pfn.0).or_insert(1) += 1;
    }

    /// Drops a reference to `pfn`; true when that was the last one (the caller frees).
    pub fn put(&self, pfn: Pfn) -> bool {
        let mut map = self.stripe(pfn).lock();
        match map.get_mut(&pfn.0) {
            None => true,
            Some(n) => {
                *n -= 1;
                if *n == 1 {
                    map.remove(&pfn.0);
                }
                false
            }
        }
    }

    /// The references on `pfn`.
    pub fn count(&self, pfn: Pfn) -> u32 {
        self.stripe(pfn).lock().get(&pfn.0).copied().unwrap_or(1)
    }

    /// Frames with more than one reference.
    pub fn shared_frames(&self) -> usize {
        self.stripes.iter().map(|s| s.0.lock().len()).sum()
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
