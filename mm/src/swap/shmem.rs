//! Shared memory in swap: tmpfs files, memfds and `MAP_SHARED | MAP_ANONYMOUS`
//! memory are shmem [`FileObject`]s whose pages live in their page cache, and a page
//! of one can go to swap as a private anonymous page does, in two steps (there is no
//! reverse map):
//!
//! 1. The page-table walk of reclaim ([`AddressSpace::reclaim_scan`]) also passes over
//!    shared mappings of shmem objects: an entry not accessed since the hand last
//!    passed is unmapped (the page stays in the page cache; the next access is a
//!    minor fault), dropping the mapping's reference once the TLB is flushed.
//! 2. A scan of the shmem objects ([`FileObject::swap_out`]) takes pages that only the
//!    page cache holds (a count of one: no mapping, no `read`/`write` copying, no
//!    pin) and moves them to swap: the frame goes into the swap cache as being
//!    written, and the page-cache slot names the swap entry instead (Linux keeps the
//!    entry in the mapping's xarray the same way). Nobody can write the frame once
//!    its count is one (every path to it goes through the cache's slot, which now
//!    leads to the swap cache), so no write is lost. A page `read(2)`/`write(2)` went
//!    through since the scan last passed (no mapping shows that access) is marked
//!    referenced, as Linux's `folio_mark_accessed`: the scan clears the mark and
//!    leaves the page for its next pass (a second chance), so cold pages go first.
//!
//! A lookup that finds a swap entry ([`FileObject::get_page`]: a fault on a shared or
//! private mapping, `read`, `write`) reads the page back through the swap cache: the
//! caller parks on the read (two lookups of one slot share one device read), and
//! the first to find it read puts the frame back in the slot and frees the swap slot,
//! as Linux's shmem swap-in does. Truncation, hole punching and the object's end free
//! the slots of swapped pages; swapoff reads them all back
//! ([`FileObject::swapoff_step`]). Hugetlb files never go to swap.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::reclaim::{PageOut, Unmapped};
use super::{CacheState, Cached, Swap, SwapArea, SwapEntry};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::fault::wait::Completion;
use crate::frame::{Pfn, PAGE_SIZE};
use crate::pagecache::{FileKind, FileObject};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::phys::{AllocFailure, Frames};
use crate::tlb::TlbBatch;

/// Page indices one [`FileObject::swap_out`] looks at per page it may take.
const SCAN_WINDOW_FACTOR: u64 = 16;
/// Page indices one [`FileObject::swap_out`] looks at, at least.
const MIN_SCAN_WINDOW: u64 = 4096;

/// What the swap cache answered a shmem lookup of a swap entry.
pub(crate) enum ShmemRead {
    /// The page is in this frame (one reference taken for the caller).
    Ready(Pfn),
    /// Its read is in flight: wait, then look again.
    Wait(Arc<Completion>),
    /// The entry changed under the caller (the slot was freed): look again.
    Retry,
    /// The page could not be read (device error): `SIGBUS`/`EIO`.
    Failed,
    /// No frame to read it into.
    NoFrame(AllocFailure),
}

impl Swap {
    /// Gives a shmem page going out a slot in `target` (or the next area with room):
    /// the swap cache takes over the page cache's reference on `pfn` and holds it,
    /// as being written, until the write ends. `None` when no area has room.
    pub(crate) fn shmem_place(
        &self,
        target: &mut Option<Arc<SwapArea>>,
        pfn: Pfn,
    ) -> Option<PageOut> {
        for _ in 0..2 {
            if target.is_none() {
                *target = self.alloc_slot();
            }
            let area = target.clone()?;
            let mut inner = area.inner.lock();
            let Some(slot) = inner.slots.alloc() else {
                drop(inner);
                *target = None;
                continue;
            };
            inner.cache.insert(
                slot,
                Cached {
                    pfn: Some(pfn),
                    state: CacheState::Writeback,
                    dropped: false,
                    read_ahead: false,
                },
            );
            inner.by_pfn.insert(pfn.0, slot);
            drop(inner);
            return Some(PageOut { area, slot, pfn });
        }
        None
    }

    /// Looks `entry` up for a page-cache reader: the cached frame (a reference taken),
    /// or the read to wait for, started now into a frame from `frames` if none is in
    /// flight (one device read however many readers race on the slot).
    pub(crate) fn shmem_read(&self, entry: SwapEntry, frames: &Arc<Frames>) -> ShmemRead {
        let Some(area) = self.area(entry.area()) else {
            return ShmemRead::Failed;
        };
        let slot = entry.slot();
        if let Some(found) = self.shmem_cached(&area, slot, frames) {
            return found;
        }
        let pfn = match frames.alloc(VirtAddr::new(slot * PAGE_SIZE)) {
            Ok(pfn) => pfn,
            Err(e) => return ShmemRead::NoFrame(e),
        };
        let done = {
            let mut inner = area.inner.lock();
            if inner.cache.contains_key(&slot) || inner.slots.refs(slot) == 0 {
                drop(inner);
                frames.put(pfn);
                return ShmemRead::Retry;
            }
            let done = Completion::new();
            inner.cache.insert(
                slot,
                Cached {
                    pfn: Some(pfn),
                    state: CacheState::Reading(done.clone()),
                    dropped: false,
                    read_ahead: false,
                },
            );
            inner.slots.set_cached(slot);
            inner.by_pfn.insert(pfn.0, slot);
            done
        };
        self.start_read(area, slot, pfn, frames.clone());
        ShmemRead::Wait(done)
    }

    /// The swap cache's answer for `slot`, or `None` when it does not hold it.
    fn shmem_cached(&self, area: &SwapArea, slot: u64, frames: &Frames) -> Option<ShmemRead> {
        let mut inner = area.inner.lock();
        let Some(c) = inner.cache.get_mut(&slot) else {
            return (inner.slots.refs(slot) == 0).then_some(ShmemRead::Retry);
        };
        if core::mem::take(&mut c.read_ahead) {
            self.stats.readahead_hits.fetch_add(1, Ordering::Relaxed);
        }
        Some(match (&c.state, c.pfn) {
            (CacheState::Reading(done), _) => ShmemRead::Wait(done.clone()),
            (CacheState::Failed, _) | (_, None) => ShmemRead::Failed,
            (_, Some(pfn)) => {
                frames.get(pfn);
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                ShmemRead::Ready(pfn)
            }
        })
    }

    /// Starts the read of `entry` into the swap cache ahead of any lookup (shmem
    /// swap readahead), unless it is cached or memory is short.
    pub(crate) fn shmem_prefetch(&self, entry: SwapEntry, frames: &Arc<Frames>) {
        if frames.memory_tight() {
            return;
        }
        let Some(area) = self.area(entry.area()) else {
            return;
        };
        let slot = entry.slot();
        {
            let inner = area.inner.lock();
            if inner.slots.refs(slot) == 0 || inner.cache.contains_key(&slot) {
                return;
            }
        }
        let Ok(pfn) = frames.alloc(VirtAddr::new(slot * PAGE_SIZE)) else {
            return;
        };
        self.read_ahead_into(&area, slot, pfn, frames);
    }

    /// Most slots one shmem swap-in reads ahead (`vm.page-cluster`).
    pub(crate) fn shmem_readahead_pages(&self) -> u64 {
        (1u64 << self.page_cluster.load(Ordering::Relaxed)).saturating_sub(1)
    }
}

/// Every shmem object alive (weakly held), for the reclaim scan and swapoff.
static SHMEM_OBJECTS: spin::Mutex<Vec<Weak<FileObject>>> = spin::Mutex::new(Vec::new());

/// Records a new shmem object (every one is made through this).
pub(crate) fn register_shmem(object: &Arc<FileObject>) {
    let mut list = SHMEM_OBJECTS.lock();
    // Forget the dead ones whenever the list doubles, so it stays proportional to
    // the live objects.
    if list.len() >= 64 && list.len().is_power_of_two() {
        list.retain(|w| w.strong_count() > 0);
    }
    list.push(Arc::downgrade(object));
}

/// The shmem objects alive now whose pages may go to swap (hugetlb files never do).
pub fn shmem_objects() -> Vec<Arc<FileObject>> {
    let mut list = SHMEM_OBJECTS.lock();
    list.retain(|w| w.strong_count() > 0);
    list.iter()
        .filter_map(Weak::upgrade)
        .filter(|o| o.hugetlb().is_none())
        .collect()
}

/// Pages held resident by shmem objects (`Shmem` in `/proc/meminfo`) and pages of
/// theirs in swap.
pub fn shmem_totals() -> (u64, u64) {
    shmem_objects()
        .iter()
        .map(|o| (o.cache().len(), o.cache().swapped()))
        .fold((0, 0), |(r, s), (a, b)| (r + a, s + b))
}

impl<P: PageTable> AddressSpace<P> {
    /// The page-table walk's step for an entry mapping file page `index` of `file`
    /// from the page cache (a shared shmem mapping's, or a page a private file
    /// mapping has not written): clears the accessed bit of a page in use; unmaps a
    /// page not used since the hand last passed (the page stays in the page cache),
    /// its frame reference dropped after the flush (in `unmapped`). An entry mapping
    /// another frame is left alone. True if it was unmapped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_unmap_cached(
        &self,
        file: &FileObject,
        index: u64,
        va: u64,
        pte: Pte,
        on_node: &dyn Fn(Pfn) -> bool,
        batch: &mut TlbBatch,
        unmapped: &mut Vec<Unmapped>,
    ) -> bool {
        let pt = self.page_table();
        if pte.flags.contains(PteFlags::BUSY) {
            return false;
        }
        if pte.flags.contains(PteFlags::ACCESSED) {
            pt.update_flags(VirtAddr::new(va), &mut |f| f - PteFlags::ACCESSED);
            return false;
        }
        if !on_node(pte.pfn) || file.cache().peek(index) != Some(pte.pfn) {
            return false;
        }
        // Locked (BUSY) from the entry seen, so nothing replaces it meanwhile, then
        // taken: the hardware may still set its dirty bit, which changes nothing (the
        // page cache's frame is the page).
        let locked = pte.with_flags(pte.flags | PteFlags::BUSY);
        if pt.replace(VirtAddr::new(va), pte, locked).is_err() {
            return false;
        }
        let Some(old) = pt.unmap(VirtAddr::new(va)) else {
            return false;
        };
        batch.add_page(VirtAddr::new(va));
        unmapped.push(Unmapped::Written(old.pfn));
        true
    }
}

impl FileObject {
    /// Reclaim of shared memory: moves up to `max` pages that only the page cache
    /// holds, on frames `take` accepts, to `swap`, pushing their writes on `out` (the
    /// caller writes them with [`Swap::write_out`]). Goes round the object from where
    /// the last call stopped. Returns the pages taken; none for a file that is not
    /// shmem, a hugetlb file, or with no swap room.
    pub fn swap_out(
        &self,
        swap: &Arc<Swap>,
        max: usize,
        take: &dyn Fn(Pfn) -> bool,
        out: &mut Vec<PageOut>,
    ) -> usize {
        if self.kind() != FileKind::Shmem || self.hugetlb().is_some() || max == 0 {
            return 0;
        }
        if !swap.has_room() {
            return 0;
        }
        self.cache().set_swap(swap);
        if !self.cache().swap().is_some_and(|s| Arc::ptr_eq(s, swap)) {
            return 0;
        }
        let mut target = None;
        let mut cursor = self.swap_cursor().lock();
        let mut place = |_, pfn| {
            let page = swap.shmem_place(&mut target, pfn)?;
            let entry = page.entry();
            out.push(page);
            Some(entry)
        };
        // A call looks at a window of indices from the cursor (going round to the
        // start once past the last page), so objects whose pages are all mapped cost
        // a bounded scan per round.
        let window = (max as u64)
            .saturating_mul(SCAN_WINDOW_FACTOR)
            .max(MIN_SCAN_WINDOW);
        let started_at = *cursor;
        let mut taken = self
            .cache()
            .swap_out_some(&mut cursor, max, window, take, &mut place);
        if taken < max && *cursor == 0 && started_at != 0 {
            taken += self
                .cache()
                .swap_out_some(&mut cursor, max - taken, window, take, &mut place);
        }
        taken
    }
}

#[cfg(test)]
#[path = "shmem_tests.rs"]
mod tests;
