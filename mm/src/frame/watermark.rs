//! Per-node min/low/high watermarks computed the way Linux does, and the hooks that
//! memory pressure calls: waking reclaim below `low`, OOM escalation for waiters.

use super::nodemask::NodeMask;
use super::types::{NodeId, Order, PageCount};

/// Linux's default `vm.watermark_scale_factor` (in 1/10000 of a node's memory).
pub const DEFAULT_WATERMARK_SCALE_FACTOR: u32 = 10;
/// Bounds Linux puts on the computed `vm.min_free_kbytes`.
const MIN_FREE_KBYTES_RANGE: (u64, u64) = (128, 262_144);

/// A node's watermarks. Normal allocations never take the node under `min`;
/// falling under `low` wakes reclaim, which runs until free memory reaches `high`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Watermarks {
    /// Allocations fail (or wait) rather than go under this.
    pub min: PageCount,
    /// Reclaim is woken under this.
    pub low: PageCount,
    /// Reclaim stops once free memory is back at this.
    pub high: PageCount,
}

/// Linux's default `vm.min_free_kbytes` for `total` managed memory:
/// `sqrt(total_kib * 16)`, clamped to `[128, 262144]`.
pub fn default_min_free_kbytes(total: PageCount) -> u64 {
    (total.kib() * 16)
        .isqrt()
        .clamp(MIN_FREE_KBYTES_RANGE.0, MIN_FREE_KBYTES_RANGE.1)
}

impl Watermarks {
    /// Watermarks of a node managing `node_pages` out of `total_pages` in the
    /// system (Linux's `__setup_per_zone_wmarks`): `min` is the node's share of
    /// `min_free_kbytes`; the `min`-to-`low` and `low`-to-`high` gaps are the
    /// larger of `min / 4` and `node_pages * scale_factor / 10000`.
    pub fn compute(
        min_free_kbytes: u64,
        node_pages: PageCount,
        total_pages: PageCount,
        scale_factor: u32,
    ) -> Watermarks {
        if total_pages.0 == 0 {
            return Watermarks::default();
        }
        let pages_min = PageCount::from_kib(min_free_kbytes).0 as u128;
        let min = (pages_min * node_pages.0 as u128 / total_pages.0 as u128) as u64;
        let scaled = (node_pages.0 as u128 * scale_factor as u128 / 10_000) as u64;
        let gap = (min / 4).max(scaled);
        Watermarks {
            min: PageCount(min),
            low: PageCount(min + gap),
            high: PageCount(min + 2 * gap),
        }
    }
}

/// The reclaim side of memory pressure; the kernel wakes its per-node reclaim task
/// (kswapd's analogue) here. Called outside the allocator's locks.
pub trait Reclaimer: Send + Sync {
    /// `node`'s free memory fell under its `low` watermark, or an allocation is
    /// waiting for it: start reclaiming until it is back at `high`.
    fn wake_reclaim(&self, node: NodeId);
}

/// A [`Reclaimer`] that does nothing, until swap and the page cache exist.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReclaim;

impl Reclaimer for NoReclaim {
    fn wake_reclaim(&self, _node: NodeId) {}
}

/// What a waiting allocation asked for, handed to [`OomHandler::out_of_memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomRequest {
    /// The order of the block being waited for.
    pub order: Order,
    /// The nodes the allocation may use.
    pub nodes: NodeMask,
    /// How many reclaim rounds the waiter has been through without success.
    pub rounds: u32,
}

/// The seam for OOM escalation: called when a waiter has waited through
/// `oom_after_rounds` reclaim rounds (and every that many rounds after).
pub trait OomHandler: Send + Sync {
    /// Reclaim is not freeing memory for `request`; pick a victim.
    fn out_of_memory(&self, request: &OomRequest);
}

/// An [`OomHandler`] that does nothing, until the OOM killer exists.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOom;

impl OomHandler for NoOom {
    fn out_of_memory(&self, _request: &OomRequest) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_min_free_kbytes_matches_linux() {
        // 16 GiB: sqrt(16 GiB in KiB * 16) = 16384 KiB.
        assert_eq!(default_min_free_kbytes(PageCount(4 << 20)), 16384);
        assert_eq!(default_min_free_kbytes(PageCount(16)), 128);
        assert_eq!(default_min_free_kbytes(PageCount(1 << 40)), 262_144);
    }

    #[test]
    fn watermarks_split_by_node_share() {
        // 2 nodes of 4 GiB; min_free_kbytes 11585 (sqrt(8 GiB in KiB * 16)).
        let total = PageCount(2 << 20);
        let mfk = default_min_free_kbytes(total);
        assert_eq!(mfk, 11585);
        let w = Watermarks::compute(
            mfk,
            PageCount(1 << 20),
            total,
            DEFAULT_WATERMARK_SCALE_FACTOR,
        );
        assert_eq!(w.min, PageCount(1448));
        // max(1448 / 4, 2^20 * 10 / 10000) = max(362, 1048) = 1048.
        assert_eq!(w.low, PageCount(1448 + 1048));
        assert_eq!(w.high, PageCount(1448 + 2 * 1048));
        assert_eq!(
            Watermarks::compute(0, PageCount(0), PageCount(0), 10),
            Watermarks::default()
        );
    }
}
