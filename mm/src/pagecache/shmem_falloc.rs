//! `fallocate(2)` on shared memory (tmpfs files and memfds), as Linux's
//! `shmem_fallocate`:
//!
//! * allocation ([`Fallocation`], [`FileObject::falloc_step`]): every missing page of
//!   the range gets a zeroed frame in the page cache (resident and swapped pages are
//!   already allocated). An allocation that must wait for reclaim hands the caller
//!   the wait and resumes where it stopped; one that finds no memory at all is undone
//!   ([`FileObject::falloc_undo`]: the pages it added go again, those already there
//!   stay), so a failed call changes neither the size nor the pages. Pages may lie
//!   past the end of the file (`FALLOC_FL_KEEP_SIZE`): they stay until a truncation
//!   to the end or below.
//! * hole punching ([`FileObject::zero_partial`], [`FileObject::punch_range`]): the
//!   bytes of the pages the range covers only in part are zeroed in place (so every
//!   mapping of them reads zeros), the whole pages leave the cache (the swap slots of
//!   swapped ones are freed), and the kernel's hook ([`set_hole_unmap_hook`]) unmaps
//!   them from every address space: a shared mapping's entries there go, and a
//!   private mapping's entries that map the page-cache pages themselves; the private
//!   copies its writes made stay, as Linux's `unmap_mapping_range(.., even_cows = 0)`
//!   keeps them; a file no VMA maps ([`FileObject::mapped_vmas`] zero) needs no
//!   walk at all. Nothing of the cache's is freed until every walk is over (the
//!   punched frames' references are held by [`PunchedPages`]), so a frame number
//!   the walk looks for cannot have been reused meanwhile.

use alloc::vec::Vec;

use super::cache::Lookup;
use super::{FileObject, PageError};
use crate::addr::VirtAddr;
use crate::fault::wait::{FaultFuture, WaitReason};
use crate::frame::{Pfn, PAGE_SIZE};
use crate::phys::{AllocFailure, PAGE_BYTES};

/// Unmaps the pages a hole punch took out of a shmem object from every address
/// space (there is no reverse map: the kernel walks its processes).
pub type HoleUnmapHook = fn(&FileObject, &PunchedPages);

static HOLE_UNMAP_HOOK: spin::Once<HoleUnmapHook> = spin::Once::new();

/// Hole punches whose unmapping walk has ended (see [`hole_punches`]).
static HOLE_PUNCHES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many hole punches have finished their walk over the address spaces since boot:
/// a fork reads it before it copies and again once its child is listed where the
/// [`HoleUnmapHook`] looks, and runs
/// [`AddressSpace::unmap_stale_shmem`](crate::aspace::AddressSpace::unmap_stale_shmem)
/// on the child if it moved (a walk that began before the child was listed may have
/// unmapped its parent's pages after the copy). Counted once the walk is over: a fork
/// that reads it later copied a parent the walk had already passed.
pub fn hole_punches() -> u64 {
    HOLE_PUNCHES.load(core::sync::atomic::Ordering::SeqCst)
}

/// Installs the kernel's [`HoleUnmapHook`] (once, at boot; later calls are ignored).
pub fn set_hole_unmap_hook(hook: HoleUnmapHook) {
    HOLE_UNMAP_HOOK.call_once(|| hook);
}

/// The kernel's [`HoleUnmapHook`], once installed.
pub fn hole_unmap_hook() -> Option<HoleUnmapHook> {
    HOLE_UNMAP_HOOK.get().copied()
}

/// Why [`FileObject::punch_hole_bytes`] punched nothing.
#[derive(Debug)]
pub enum PunchError {
    /// The object's writes are sealed (`EPERM`).
    Sealed,
    /// A page at an edge must be read back first (a wait: wait, then call again), or
    /// could not be (out of memory, an I/O error).
    Page(PageError),
}

impl From<PageError> for PunchError {
    fn from(e: PageError) -> PunchError {
        PunchError::Page(e)
    }
}

/// An allocation over a range of page indexes in progress (see the module).
#[derive(Debug)]
pub struct Fallocation {
    /// The next index to look at.
    next: u64,
    /// One past the last index.
    end: u64,
    /// Runs `[first, end)` of indexes whose pages this allocation added.
    added: Vec<(u64, u64)>,
}

impl Fallocation {
    /// An allocation of pages `[first, end)`.
    pub fn new(first: u64, end: u64) -> Fallocation {
        Fallocation {
            next: first,
            end,
            added: Vec::new(),
        }
    }

    /// The next index it looks at (its progress).
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Pages this allocation added so far.
    pub fn added_pages(&self) -> u64 {
        self.added.iter().map(|(a, b)| b - a).sum()
    }

    fn note_added(&mut self, index: u64) {
        match self.added.last_mut() {
            Some((_, end)) if *end == index => *end += 1,
            _ => self.added.push((index, index + 1)),
        }
    }
}

/// What one [`FileObject::falloc_step`] came to.
pub enum FallocStep {
    /// Every page of the range is allocated.
    Done,
    /// A frame must be waited for (reclaim): wait, then step again.
    Wait(FaultFuture),
    /// No frame can be had: undo ([`FileObject::falloc_undo`]) and fail.
    NoMemory,
}

/// The whole pages a hole punch took out of the cache, their references held until
/// this is dropped.
pub struct PunchedPages<'a> {
    /// First index of the hole.
    pub first: u64,
    /// One past the last index of the hole.
    pub end: u64,
    /// A truncation, not a punch: private mappings lose their copies past the new
    /// end as well (Linux's `even_cows`), so every access there is SIGBUS.
    pub even_cows: bool,
    /// The frames that were the cache's pages there, sorted.
    frames: Vec<Pfn>,
    owner: &'a FileObject,
}

impl PunchedPages<'_> {
    /// Whether `pfn` was one of the file's pages in the hole (not a private copy).
    pub fn was_file_page(&self, pfn: Pfn) -> bool {
        self.frames.binary_search(&pfn).is_ok()
    }

    /// The resident pages punched out.
    pub fn resident(&self) -> u64 {
        self.frames.len() as u64
    }
}

impl Drop for PunchedPages<'_> {
    fn drop(&mut self) {
        let frames = self.owner.cache.frames();
        for pfn in self.frames.drain(..) {
            frames.put(pfn);
        }
    }
}

impl FileObject {
    /// Runs `decide` (the memfd's `F_ADD_SEALS`) with every hole punch shut out, and
    /// seals the object's writes for good if it answers `Ok(true)` (`F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE` added): a punch in flight has finished before `decide`
    /// runs, and none starts once the seal is set ([`punch_unless_sealed`]), so
    /// `MADV_REMOVE` and `fallocate(PUNCH_HOLE)` are `EPERM` from the moment the
    /// seal returns, as under Linux's inode lock.
    ///
    /// [`punch_unless_sealed`]: Self::punch_unless_sealed
    pub fn seal_writes_with<E>(&self, decide: impl FnOnce() -> Result<bool, E>) -> Result<(), E> {
        // Upgradeable first: new readers (writes, punches) are held off from here, so a
        // stream of them cannot starve the seal (a plain `write` waits for a moment
        // with no reader at all, which back-to-back pwrites may never leave).
        let _gate = self.seal_gate.upgradeable_read().upgrade();
        if decide()? {
            self.writes_sealed
                .store(true, core::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// Whether the object's writes are sealed (see
    /// [`seal_writes_with`](Self::seal_writes_with)).
    pub fn writes_sealed(&self) -> bool {
        self.writes_sealed
            .load(core::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `write` (a `write(2)` to the object, which checks the seals itself) with
    /// sealing held off until it returns: a seal added meanwhile waits for it, and one
    /// added before is seen by its check, as Linux's shmem writes run under the inode
    /// lock that `memfd_add_seals` takes. `write` must not wait (spin lock).
    pub fn write_under_seal_gate<T>(&self, write: impl FnOnce() -> T) -> T {
        let _gate = self.seal_gate.read();
        write()
    }

    /// Runs `punch` unless the object's writes are sealed (`None` then), the seal
    /// held off until it returns: the check and the punch are one step against
    /// [`seal_writes_with`](Self::seal_writes_with). Punches do not exclude each
    /// other. `punch` must not wait (it runs under a spin lock).
    pub fn punch_unless_sealed<T>(&self, punch: impl FnOnce() -> T) -> Option<T> {
        let _gate = self.seal_gate.read();
        (!self.writes_sealed()).then(punch)
    }

    /// Punches a hole over the bytes `[offset, end)` as `fallocate(PUNCH_HOLE |
    /// KEEP_SIZE)` does on shared memory, unless the object's writes are sealed,
    /// atomically with respect to the sealing ([`punch_unless_sealed`]): the bytes of
    /// the pages the range covers in part are zeroed ([`zero_partial`]), the whole
    /// pages leave the cache and every mapping ([`punch_range`]). A page at an edge
    /// that is in swap is read back first: the wait is returned
    /// ([`PunchError::Page`]) with nothing punched yet, and the caller waits and
    /// calls again (the seal is checked again then). Returns the resident pages taken.
    ///
    /// [`punch_unless_sealed`]: Self::punch_unless_sealed
    /// [`zero_partial`]: Self::zero_partial
    /// [`punch_range`]: Self::punch_range
    pub fn punch_hole_bytes(&self, offset: u64, end: u64) -> Result<u64, PunchError> {
        let hook = HOLE_UNMAP_HOOK.get().copied();
        self.punch_hole_bytes_with(offset, end, &|file, punched| {
            if let Some(hook) = hook {
                hook(file, punched);
            }
        })
    }

    /// [`punch_hole_bytes`](Self::punch_hole_bytes) with `unmap` in place of the
    /// kernel's hook.
    pub fn punch_hole_bytes_with(
        &self,
        offset: u64,
        end: u64,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> Result<u64, PunchError> {
        let hole_start = offset.next_multiple_of(PAGE_SIZE);
        let hole_end = end - end % PAGE_SIZE;
        let edges = if hole_start > hole_end {
            [Some((offset, end - offset)), None]
        } else {
            [
                (offset < hole_start).then(|| (offset, hole_start - offset)),
                (end > hole_end).then(|| (hole_end, end - hole_end)),
            ]
        };
        let edges = edges.into_iter().flatten();
        self.punch_unless_sealed(|| {
            // Both edges resident first, so a wait leaves nothing half done.
            for (at, _) in edges.clone() {
                self.make_resident(at / PAGE_SIZE)?;
            }
            for (at, len) in edges {
                self.zero_partial(at, len)?;
            }
            Ok(if hole_end > hole_start {
                self.punch_range_with(hole_start / PAGE_SIZE, hole_end / PAGE_SIZE, unmap)
            } else {
                0
            })
        })
        .unwrap_or(Err(PunchError::Sealed))
    }

    /// Ok if page `index` is resident or missing (nothing to read back); the wait for
    /// a page being filled or read back from swap otherwise.
    fn make_resident(&self, index: u64) -> Result<(), PageError> {
        if let Some(pfn) = self.resident_page(index)? {
            self.cache.frames().put(pfn);
        }
        Ok(())
    }

    /// Page `index` held (the caller puts it), `None` if it is missing; a page in swap
    /// is read back first, and a page being filled or read back is the wait returned.
    fn resident_page(&self, index: u64) -> Result<Option<Pfn>, PageError> {
        loop {
            match self.cache.get(index) {
                Lookup::Hit(pfn) => return Ok(Some(pfn)),
                Lookup::Miss => return Ok(None),
                Lookup::Filling(done) => {
                    let reason = WaitReason::PageLocked {
                        file: self.id,
                        index,
                    };
                    return Err(PageError::Wait(FaultFuture::new(reason, done)));
                }
                Lookup::Swapped(entry) => self.swap_in(index, entry)?,
            }
        }
    }

    /// Allocates the missing pages of `alloc`'s range from where it stopped: a
    /// zeroed frame each, put in the cache. See [`FallocStep`].
    pub fn falloc_step(&self, alloc: &mut Fallocation) -> FallocStep {
        while alloc.next < alloc.end {
            let index = alloc.next;
            match self.cache.get(index) {
                Lookup::Hit(pfn) => {
                    self.cache.frames().put(pfn);
                }
                // Being filled by a fault or a swap-in, or in swap: allocated already.
                Lookup::Filling(_) | Lookup::Swapped(_) => {}
                Lookup::Miss => {
                    let Some(guard) = self.cache.begin_fill(index) else {
                        continue; // someone else just took the slot: look again
                    };
                    match self
                        .cache
                        .frames()
                        .alloc_zeroed(VirtAddr::new(index * PAGE_SIZE))
                    {
                        Ok(pfn) => {
                            guard.finish(pfn);
                            alloc.note_added(index);
                        }
                        Err(AllocFailure::Wait(wait)) => return FallocStep::Wait(wait),
                        Err(AllocFailure::OutOfMemory) => return FallocStep::NoMemory,
                    }
                }
            }
            alloc.next += 1;
        }
        FallocStep::Done
    }

    /// Takes back the pages `alloc` added that nothing but the cache holds (a page a
    /// mapping or a `write` took up meanwhile is in use and stays); returns how many
    /// went.
    pub fn falloc_undo(&self, alloc: &Fallocation) -> u64 {
        alloc
            .added
            .iter()
            .map(|&(first, end)| self.cache.remove_unshared_range(first, end - 1))
            .sum()
    }

    /// Zeroes `len` bytes at `offset`, which lie within one page, if that page is
    /// allocated (resident, or read back from swap first: the wait is returned); a
    /// missing page reads as zeros already. Pages past the end of the file too (those
    /// `FALLOC_FL_KEEP_SIZE` put there).
    pub fn zero_partial(&self, offset: u64, len: u64) -> Result<(), PageError> {
        let index = offset / PAGE_SIZE;
        let in_page = (offset % PAGE_SIZE) as usize;
        let len = (len as usize).min(PAGE_BYTES - in_page);
        if let Some(pfn) = self.resident_page(index)? {
            let zeros = [0u8; PAGE_BYTES];
            self.cache.frames().write(pfn, in_page, &zeros[..len]);
            self.cache.frames().put(pfn);
        }
        Ok(())
    }

    /// Takes the pages `[first, end)` out of the cache (freeing the swap slots of
    /// swapped ones) and, through the kernel's hook, out of every mapping (see the
    /// module); returns the resident pages taken.
    pub fn punch_range(&self, first: u64, end: u64) -> u64 {
        let hook = HOLE_UNMAP_HOOK.get().copied();
        self.punch_range_with(first, end, &|file, punched| {
            if let Some(hook) = hook {
                hook(file, punched);
            }
        })
    }

    /// Takes every page from index `first` on out of the cache and out of every
    /// mapping, private copies included (a truncation: Linux's
    /// `unmap_mapping_range(.., even_cows = 1)`), so an access past the new end is
    /// SIGBUS everywhere. Returns the resident pages taken.
    pub fn truncate_pages(&self, first: u64) -> u64 {
        let hook = HOLE_UNMAP_HOOK.get().copied();
        self.take_and_unmap(first, u64::MAX, true, &|file, punched| {
            if let Some(hook) = hook {
                hook(file, punched);
            }
        })
    }

    /// [`punch_range`](Self::punch_range) with `unmap` in place of the kernel's hook.
    pub fn punch_range_with(
        &self,
        first: u64,
        end: u64,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> u64 {
        self.take_and_unmap(first, end, false, unmap)
    }

    /// [`truncate_pages`](Self::truncate_pages) with `unmap` in place of the kernel's
    /// hook.
    pub fn truncate_pages_with(
        &self,
        first: u64,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> u64 {
        self.take_and_unmap(first, u64::MAX, true, unmap)
    }

    fn take_and_unmap(
        &self,
        first: u64,
        end: u64,
        even_cows: bool,
        unmap: &dyn Fn(&FileObject, &PunchedPages),
    ) -> u64 {
        if first >= end {
            return 0;
        }
        let mut frames = self.cache.take_range(first, end - 1);
        frames.sort_unstable();
        let punched = PunchedPages {
            first,
            end,
            even_cows,
            frames,
            owner: self,
        };
        // The pages left the cache before the count is read: a VMA counted later can
        // only fault in what the cache holds now. At zero no page table maps the
        // file, a fork child's copy neither (its tree was counted before it was
        // listed), so there is no walk to make and none for a fork to redo.
        if self.mapped_vmas() > 0 {
            unmap(self, &punched);
            HOLE_PUNCHES.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        }
        punched.resident()
    }
}

#[cfg(test)]
#[path = "shmem_falloc_tests.rs"]
mod tests;
