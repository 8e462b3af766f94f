//! The shelves of the pre-zeroed huge-page pool: each node's ready pages, and when a
//! huge-page fault last asked for one. The frame source takes from them
//! ([`take`]); `thp_pool`, above the allocator, fills and drains them. Nothing here
//! allocates, zeroes or frees a frame.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::frame::{NodeId, Pfn};
use spin::Mutex;

/// Pre-zeroed huge pages kept per node at most.
pub const POOL_PAGES: usize = 8;
/// Most nodes.
const MAX_NODES: usize = 64;

/// When a huge-page fault last asked for a page (0: never).
static LAST_DEMAND_NS: AtomicU64 = AtomicU64::new(0);
/// Ready pages of each node.
static READY: [Mutex<Vec<Pfn>>; MAX_NODES] = [const { Mutex::new(Vec::new()) }; MAX_NODES];
/// Pages taken from the pool by faults.
static HITS: AtomicU64 = AtomicU64::new(0);
/// Huge-page faults that zeroed their page themselves.
static MISSES: AtomicU64 = AtomicU64::new(0);

/// `(pages ready now, faults served from the pool, faults that zeroed)`.
pub fn stats() -> (u64, u64, u64) {
    let ready = READY.iter().map(|r| r.lock().len() as u64).sum();
    (
        ready,
        HITS.load(Ordering::Relaxed),
        MISSES.load(Ordering::Relaxed),
    )
}

/// A zeroed, split huge page from `node`'s pool; records the demand either way.
pub fn take(node: NodeId) -> Option<Pfn> {
    LAST_DEMAND_NS.store(crate::time::now_ns().max(1), Ordering::Relaxed);
    let pfn = READY.get(node.index())?.lock().pop();
    match pfn {
        Some(_) => HITS.fetch_add(1, Ordering::Relaxed),
        None => MISSES.fetch_add(1, Ordering::Relaxed),
    };
    pfn
}

/// When a huge-page fault last asked for a page (0: never, or the demand ended).
pub fn last_demand_ns() -> u64 {
    LAST_DEMAND_NS.load(Ordering::Relaxed)
}

/// Ends the demand seen at `last` (the value [`last_demand_ns`] gave); false if a
/// fault asked again since, or another CPU ended it first.
pub fn end_demand(last: u64) -> bool {
    LAST_DEMAND_NS
        .compare_exchange(last, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// Whether `node` has room for another ready page (false for a node out of range).
pub fn has_room(node: NodeId) -> bool {
    READY
        .get(node.index())
        .is_some_and(|ready| ready.lock().len() < POOL_PAGES)
}

/// Shelves `pfn` (zeroed and split) on `node`; gives it back when the shelf is full
/// or the node out of range.
pub fn put(node: NodeId, pfn: Pfn) -> Result<(), Pfn> {
    let Some(ready) = READY.get(node.index()) else {
        return Err(pfn);
    };
    let mut ready = ready.lock();
    if ready.len() < POOL_PAGES {
        ready.push(pfn);
        Ok(())
    } else {
        Err(pfn)
    }
}

/// Empties every shelf, handing each page to `give_back` with no lock held.
pub fn take_all(mut give_back: impl FnMut(Pfn)) {
    for ready in &READY {
        let taken: Vec<Pfn> = core::mem::take(&mut *ready.lock());
        taken.into_iter().for_each(&mut give_back);
    }
}
