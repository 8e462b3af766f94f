//! Pre-zeroed huge pages: a few 2 MiB pages per node, zeroed by CPUs with nothing
//! else to do (the executor's idle hook calls [`idle_work`] until the pools are full
//! or work arrives; a CPU fills its own node's pool first, then any other's), so a
//! huge-page fault often maps a page that is already clean instead of zeroing 512
//! frames itself.
//!
//! A CPU zeroes one page in 64 KiB steps and stops as soon as work arrives; the page
//! it was filling stays its own (a per-CPU slot only that CPU's idle loop touches) and
//! the next idle period carries on where it stopped. Pages in the pool are split in
//! the buddy already (each frame frees on its own). The pool holds at most
//! [`POOL_PAGES`] per node and is refilled only while the node has plenty free, and
//! only while huge pages are in demand (a huge fault in the last [`DEMAND_NS`]); after
//! [`DRAIN_AFTER_NS`] without one, an idle CPU gives the pool back, so memory figures
//! of a system not using THP never move under it.

use super::frames::{self, allocator, DirectMapZeroer};
use super::thp_ready::{self, POOL_PAGES};
use crate::arch::percpu;
use core::sync::atomic::{AtomicU64, Ordering};
use mm::frame::{FrameZeroer, NodeId, Order, PageCount, Pfn};
use sched::MAX_CPUS;

pub use super::thp_ready::stats;

/// Frames zeroed between checks for work.
const STEP_FRAMES: u64 = 16;
/// A node refills its pool only while it has this many times the pool's size free
/// (beyond its high watermark).
const HEADROOM: u64 = 8;
/// Pools are refilled while a huge fault happened this recently.
pub const DEMAND_NS: u64 = 2_000_000_000;
/// Pools are given back after this long without a huge fault.
pub const DRAIN_AFTER_NS: u64 = 10_000_000_000;
/// Each CPU's page being zeroed: `pfn << 10 | frames done` (0: none).
static FILLING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Whether `node` should get another pre-zeroed page.
fn wants_page(node: NodeId) -> bool {
    if !thp_ready::has_room(node) {
        return false;
    }
    let Some(stats) = allocator().node_stats(node) else {
        return false;
    };
    let huge = Order::HUGE_2M.pages();
    stats.free_buddy.0 > stats.watermarks.high.0 + HEADROOM * POOL_PAGES as u64 * huge
        && stats.nr_free[Order::HUGE_2M.index()..]
            .iter()
            .any(|&n| n > 0)
}

/// Zeroes part of a huge page while `still_idle()`, for this CPU's node or else the
/// first other node whose pool is short; called by the executor's idle loop before
/// it halts. True if it did any work (call again while still idle).
pub fn idle_work(still_idle: &dyn Fn() -> bool) -> bool {
    let Some(alloc) = frames::try_allocator() else {
        return false;
    };
    let cpu = percpu::current_cpu();
    let Some(slot) = FILLING.get(cpu.0 as usize) else {
        return false;
    };
    let mut state = slot.load(Ordering::Relaxed);
    if state == 0 {
        let last = thp_ready::last_demand_ns();
        let since = crate::time::now_ns().saturating_sub(last);
        if last == 0 || since > DEMAND_NS {
            // Once after the demand ends (the first idle CPU past the delay).
            if last != 0 && since > DRAIN_AFTER_NS && thp_ready::end_demand(last) {
                drain();
            }
            return false;
        }
        // This CPU's node first, then any other that is short.
        let own = percpu::current().node;
        let nodes = alloc.nr_nodes() as u32;
        let Some(node) = (0..nodes)
            .map(|i| NodeId((own + i) % nodes))
            .find(|&n| wants_page(n))
        else {
            return false;
        };
        let Ok(pfn) = alloc.alloc_on_node(node, Order::HUGE_2M) else {
            return false;
        };
        if alloc.split_block(pfn, Order::HUGE_2M).is_err() {
            let _ = alloc.free(pfn, Order::HUGE_2M);
            return false;
        }
        state = pfn.0 << 10;
    }
    let pfn = Pfn(state >> 10);
    let mut done = state & 0x3ff;
    let pages = Order::HUGE_2M.pages();
    while done < pages {
        let n = STEP_FRAMES.min(pages - done);
        DirectMapZeroer.zero_frames(Pfn(pfn.0 + done), PageCount(n));
        done += n;
        if done < pages && !still_idle() {
            slot.store(pfn.0 << 10 | done, Ordering::Relaxed);
            return true;
        }
    }
    slot.store(0, Ordering::Relaxed);
    let Some(node) = alloc.node_of(pfn) else {
        return true;
    };
    if let Err(pfn) = thp_ready::put(node, pfn) {
        let _ = alloc.free_run(pfn, pages);
    }
    true
}

/// Gives every pooled page back to the buddy (memory is short).
pub fn drain() -> u64 {
    let mut pages = 0;
    thp_ready::take_all(|pfn| {
        let _ = allocator().free_run(pfn, Order::HUGE_2M.pages());
        pages += Order::HUGE_2M.pages();
    });
    pages
}
