//! The page-cache side of shared memory in swap (see `crate::swap::shmem`): reading
//! a swapped page back into its slot, and swapoff's walk over an object.

use super::{FileObject, PageError};
use crate::errno::MmError;
use crate::fault::wait::{FaultFuture, WaitReason};
use crate::phys::{AllocFailure, PAGE_BYTES};
use crate::swap::shmem::ShmemRead;
use crate::swap::{SwapEntry, SwapoffStep};

/// Most swapped pages one [`FileObject::swapoff_step`] looks at.
const SWAPOFF_STEP_PAGES: usize = 4096;
/// Most reads one swapoff step starts before it waits.
const SWAPOFF_READS: usize = 64;

impl FileObject {
    /// Page `index` was found in swap under `entry`: `Ok` once the page is back in its
    /// slot (or the slot changed: the caller looks again), else the read to wait for
    /// (started now, with the swapped pages after it in the file read ahead, or
    /// another lookup's), `Io` for a page whose read failed, or the frame shortage.
    pub(super) fn swap_in(&self, index: u64, entry: SwapEntry) -> Result<(), PageError> {
        let Some(swap) = self.cache.swap() else {
            return Err(PageError::Io);
        };
        let frames = self.cache.frames();
        match swap.shmem_read(entry, frames) {
            ShmemRead::Ready(pfn) => {
                // A shrink that found the page swapped could not cut it: the bytes
                // it cut read as zero.
                if let Some(keep) = self.cut_tails.lock().remove(&index) {
                    let zeros = [0u8; PAGE_BYTES];
                    frames.write(pfn, keep, &zeros[keep..]);
                }
                if !self.cache.swapped_in(index, entry, pfn) {
                    frames.put(pfn);
                }
                Ok(())
            }
            ShmemRead::Retry => Ok(()),
            ShmemRead::Wait(done) => {
                let ahead = swap.shmem_readahead_pages();
                if ahead != 0 {
                    let area = entry.area();
                    for (_, next) in
                        self.cache
                            .swapped_entries(index + 1, index + ahead, ahead as usize, &|e| {
                                e.area() == area
                            })
                    {
                        swap.shmem_prefetch(next, frames);
                    }
                }
                let reason = WaitReason::PageLocked {
                    file: self.id,
                    index,
                };
                Err(PageError::Wait(FaultFuture::new(reason, done)))
            }
            ShmemRead::Failed => Err(PageError::Io),
            ShmemRead::NoFrame(AllocFailure::Wait(wait)) => Err(PageError::Wait(wait)),
            ShmemRead::NoFrame(AllocFailure::OutOfMemory) => Err(PageError::OutOfMemory),
        }
    }

    /// One step of swapoff for area `area`: reads back this object's pages that live
    /// there, with up to [`SWAPOFF_READS`] reads in flight before it waits. `ENOMEM`
    /// when no frame can be had, `EIO` for a page whose read failed.
    pub fn swapoff_step(&self, area: u8) -> Result<SwapoffStep, MmError> {
        let pages = self
            .cache
            .swapped_entries(0, u64::MAX, SWAPOFF_STEP_PAGES, &|e| e.area() == area);
        if pages.is_empty() {
            return Ok(SwapoffStep::Done);
        }
        let mut reading: Option<FaultFuture> = None;
        let mut started = 0;
        for (index, entry) in pages {
            match self.swap_in(index, entry) {
                Ok(()) => {}
                Err(PageError::Wait(wait)) => {
                    let read = matches!(wait.reason(), WaitReason::PageLocked { .. });
                    if !read || started == SWAPOFF_READS {
                        return Ok(SwapoffStep::Wait(wait));
                    }
                    started += 1;
                    reading = Some(wait);
                }
                Err(PageError::OutOfMemory) => return Err(MmError::NoMemory),
                Err(_) => return Err(MmError::BadAddress),
            }
        }
        Ok(match reading {
            Some(wait) => SwapoffStep::Wait(wait),
            None => SwapoffStep::Again,
        })
    }

    /// A `read` or `write` went through page `index` (in `pfn`): for shared memory,
    /// a reference the swap-out scan honours with a second chance (see
    /// [`PageCache::mark_referenced`](super::PageCache::mark_referenced)). Mappings'
    /// accesses show in their entries' accessed bits instead.
    pub(super) fn note_referenced(&self, index: u64, pfn: crate::frame::Pfn) {
        if self.kind() == super::FileKind::Shmem {
            self.cache.mark_referenced(index, pfn);
        }
    }

    /// Where the shmem swap-out scan goes on.
    pub(crate) fn swap_cursor(&self) -> &spin::Mutex<u64> {
        &self.swap_cursor
    }
}
