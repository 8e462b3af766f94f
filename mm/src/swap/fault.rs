//! The address-space side of swap: the fault on a swap entry (map the cached page,
//! or start the read and park), and what munmap, exit, fork, mremap and swapoff do
//! with swap entries.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{CacheState, Cached, SwapArea, SwapEntry};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::errno::MmError;
use crate::fault::{
    fresh_hw_bits, vma_pte_perms, Access, Completion, FaultError, FaultFuture, FaultResolved,
    WaitReason,
};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::vma::Vma;

impl<P: PageTable> AddressSpace<P> {
    /// A fault on `page`, whose entry is the swap entry `entry` (tree read lock held).
    pub(crate) fn swap_fault(
        &self,
        vma: &Vma,
        page: u64,
        entry: SwapEntry,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        let swap = self.tunables().swap();
        let Some(area) = swap.area(entry.area()) else {
            // swapoff brings every page back before the area goes: not reachable.
            return Err(FaultError::SigBus);
        };
        if let Some(done) = self.map_cached(&area, vma, page, entry, access) {
            return done;
        }
        // Not cached: read it into a new frame (allocated outside the area lock).
        let pfn = self.frames().alloc(VirtAddr::new(page))?;
        let done = {
            let mut inner = area.inner.lock();
            let slot = entry.slot();
            if inner.cache.contains_key(&slot)
                || inner.slots.refs(slot) == 0
                || self.page_table().query_swap(VirtAddr::new(page)) != Some(entry)
            {
                // Another fault started the read, or the entry changed: retry.
                drop(inner);
                self.frames().put(pfn);
                return Ok(FaultResolved::Spurious);
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
        swap.start_read(area.clone(), entry.slot(), pfn, self.frames().clone());
        self.read_ahead(swap, &area, entry.slot(), page);
        Err(FaultError::NeedsWait(FaultFuture::new(
            WaitReason::SwapIn { addr: page },
            done,
        )))
    }

    /// Starts reads of the slots around `slot` (which a fault at `page` is reading)
    /// that hold pages and are not cached, into frames the cache holds until a fault
    /// maps them or the cache is shrunk. Reclaim writes neighbouring pages to
    /// neighbouring slots, so they are likely next; the window follows how many
    /// read-ahead pages were used ([`super::readahead_window`]). None while memory is
    /// short (reclaim at work); a frame that cannot be had at once ends it.
    fn read_ahead(&self, swap: &super::Swap, area: &Arc<SwapArea>, slot: u64, page: u64) {
        if self.frames().memory_tight() {
            return;
        }
        for other in swap.readahead_range(slot) {
            if other == slot {
                continue;
            }
            let Ok(pfn) = self.frames().alloc(VirtAddr::new(page)) else {
                return;
            };
            swap.read_ahead_into(area, other, pfn, self.frames());
        }
    }

    /// Maps the cached page of `entry` at `page`, or says why not yet; `None` when
    /// the cache does not hold the slot.
    fn map_cached(
        &self,
        area: &Arc<SwapArea>,
        vma: &Vma,
        page: u64,
        entry: SwapEntry,
        access: Access,
    ) -> Option<Result<FaultResolved, FaultError>> {
        let slot = entry.slot();
        let frames = self.frames();
        let mut inner = area.inner.lock();
        let c = inner.cache.get_mut(&slot)?;
        if core::mem::take(&mut c.read_ahead) {
            let swap = self.tunables().swap();
            swap.stats.readahead_hits.fetch_add(1, Ordering::Relaxed);
            swap.ra_hits.fetch_add(1, Ordering::Relaxed);
        }
        let pfn = match (&c.state, c.pfn) {
            (CacheState::Reading(done), _) => {
                return Some(Err(FaultError::NeedsWait(FaultFuture::new(
                    WaitReason::SwapIn { addr: page },
                    done.clone(),
                ))));
            }
            (CacheState::Failed, _) | (_, None) => return Some(Err(FaultError::SigBus)),
            (_, Some(pfn)) => pfn,
        };
        let writeback = matches!(c.state, CacheState::Writeback);
        let last = inner.slots.refs(slot) <= 1;
        frames.get(pfn);
        // Writable only if the frame is this entry's alone once the cache lets go:
        // the last entry naming the slot, no write-out holding it, nobody else mapping it.
        let sole = last && !writeback && frames.count(pfn) == 2;
        let mut flags = vma_pte_perms(vma.flags) | fresh_hw_bits(access);
        if !sole {
            flags -= PteFlags::WRITE | PteFlags::DIRTY;
        }
        if !self
            .page_table()
            .restore_swap(VirtAddr::new(page), entry, Pte::new(pfn, flags))
        {
            drop(inner);
            frames.put(pfn);
            return Some(Ok(FaultResolved::Spurious));
        }
        self.tunables()
            .swap()
            .stats
            .cache_hits
            .fetch_add(1, Ordering::Relaxed);
        if inner.slots.put(slot) == 0 {
            SwapArea::uncache(&mut inner, slot, frames);
        }
        Some(Ok(FaultResolved::SwapIn))
    }

    /// Removes every swap entry in `[start, end)` and releases its slot (munmap,
    /// `MADV_DONTNEED`, exit).
    pub(crate) fn release_swap_range(&self, start: u64, end: u64) {
        let swap = self.tunables().swap();
        let pt = self.page_table();
        pt.scan_swap(VirtAddr::new(start), VirtAddr::new(end), &mut |va, _| {
            if let Some(entry) = pt.take_swap(va) {
                swap.release(entry, self.frames());
            }
        });
    }

    /// Gives `child` (being forked) the swap entries of `[start, end)`: each entry
    /// in the child names its slot once more. False if a slot could not take another
    /// reference or a child table could not be allocated (the fork fails; what the
    /// child holds is consistent and its teardown releases it).
    pub(crate) fn fork_swap(&self, child: &P, start: u64, end: u64) -> bool {
        let swap = self.tunables().swap();
        let mut ok = true;
        self.page_table().scan_swap(
            VirtAddr::new(start),
            VirtAddr::new(end),
            &mut |va, entry| {
                // A hardware table's fork may have copied the entry already.
                let present =
                    child.query_swap(va) == Some(entry) || child.place_swap(va, entry).is_ok();
                if !present {
                    ok = false;
                } else if !swap.dup(entry) {
                    child.take_swap(va);
                    ok = false;
                }
            },
        );
        ok
    }

    /// Moves the swap entries of `[old, old + len)` to `dest` (mremap).
    pub(crate) fn move_swap(&self, old: u64, len: u64, dest: u64) {
        let pt = self.page_table();
        let scan = |lo: u64, hi: u64, emit: &mut dyn FnMut(u64)| {
            pt.scan_swap(VirtAddr::new(lo), VirtAddr::new(hi), &mut |va, _| {
                emit(va.as_u64())
            })
        };
        crate::aspace::mremap::for_each_in_slots(old, old + len, &scan, &mut |va| {
            let Some(entry) = pt.take_swap(VirtAddr::new(va)) else {
                return;
            };
            // The tables were made by `prepare_move`; this is a kernel bug if it fails.
            if pt
                .place_swap(VirtAddr::new(dest + (va - old)), entry)
                .is_err()
            {
                log::error!("mremap: no page-table memory at {dest:#x}; swapped page dropped");
                self.tunables().swap().release(entry, self.frames());
            }
        });
    }

    /// Swap entries in the address space (`VmSwap`).
    pub fn swapped_pages(&self) -> u64 {
        let mut n = 0;
        self.page_table().scan_swap(
            VirtAddr::ZERO,
            VirtAddr::new(self.layout().task_size),
            &mut |_, _| n += 1,
        );
        n
    }

    /// One step of swapoff for area `area`: brings back the pages of this address
    /// space that live there, up to [`SWAPOFF_STEP_PAGES`] of them, with up to
    /// [`SWAPOFF_READS`] reads in flight together (a step that waited for each read
    /// in turn, rescanning the whole range after each, took minutes for 150 MiB under
    /// TCG). `ENOMEM` when no frame can be had, `EFAULT` for a page whose read failed.
    pub fn swapoff_step(&self, area: u8) -> Result<SwapoffStep, MmError> {
        let st = self.state().read();
        let mut any = false;
        let mut reading: Option<FaultFuture> = None;
        let mut started = 0;
        for vma in st.tree.iter() {
            if !may_hold_swap_entries(vma) {
                continue;
            }
            let mut pages = Vec::new();
            self.page_table().scan_swap(
                VirtAddr::new(vma.start),
                VirtAddr::new(vma.end),
                &mut |va, e| {
                    if e.area() == area && pages.len() < SWAPOFF_STEP_PAGES {
                        pages.push((va, e));
                    }
                },
            );
            any |= !pages.is_empty();
            for (va, entry) in pages {
                match self.swap_fault(vma, va.as_u64(), entry, Access::Read) {
                    Ok(_) => {}
                    Err(FaultError::NeedsWait(wait)) => {
                        let read = matches!(wait.reason(), WaitReason::SwapIn { .. });
                        if !read || started == SWAPOFF_READS {
                            return Ok(SwapoffStep::Wait(wait));
                        }
                        // Its read is started: start more before waiting.
                        started += 1;
                        reading = Some(wait);
                    }
                    Err(FaultError::Oom) => return Err(MmError::NoMemory),
                    Err(_) => return Err(MmError::BadAddress),
                }
            }
        }
        // Entries outside any VMA cannot be faulted; there are none (munmap releases).
        Ok(match reading {
            Some(wait) => SwapoffStep::Wait(wait),
            None if any => SwapoffStep::Again,
            None => SwapoffStep::Done,
        })
    }
}

/// Whether `vma`'s page-table entries may be swap entries: a private mapping, of
/// anonymous memory or of a file (whose private copies reclaim swaps like anonymous
/// pages), that is not hugetlb memory (never swapped). Shared shmem mappings hold no
/// swap entries: their swapped pages are recorded in the object's page cache.
pub(crate) fn may_hold_swap_entries(vma: &Vma) -> bool {
    vma.is_private() && vma.hugetlb.is_none()
}

/// Most pages one [`AddressSpace::swapoff_step`] handles per VMA (its list of entries
/// stays a small allocation; the rest come in later steps).
const SWAPOFF_STEP_PAGES: usize = 4096;
/// Most reads one swapoff step starts before it waits (a virtio disk has 85 request
/// chains: more would only wait for a chain).
pub(super) const SWAPOFF_READS: usize = 64;

/// What [`AddressSpace::swapoff_step`] left to do.
#[derive(Debug)]
pub enum SwapoffStep {
    /// No page of the area is left in this address space.
    Done,
    /// Pages were brought back; call again to check for more.
    Again,
    /// A read is in flight: await it, then call again.
    Wait(FaultFuture),
}
