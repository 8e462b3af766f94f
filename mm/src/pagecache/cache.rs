//! [`PageCache`]: one file's resident pages, page index to frame. A slot is either a
//! ready frame (the cache holds one reference on it) or a fill in progress that other
//! faults wait on instead of reading the page twice, or a page being moved to another
//! NUMA node ([`MigrationLock`]), which lookups wait on as they wait on a fill. Slots
//! are lock-striped by index, so faults on different pages of one file rarely meet.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::fault::wait::Completion;
use crate::frame::Pfn;
use crate::phys::Frames;
use crate::swap::{Swap, SwapEntry};

const STRIPES: usize = 16;

enum Slot {
    /// A resident page; `true` once `read`/`write` referenced it since the shmem
    /// swap scan last passed over it (Linux's `PG_referenced` set by
    /// `folio_mark_accessed`; see [`PageCache::mark_referenced`]).
    Ready(Pfn, bool),
    Filling(Arc<Completion>),
    /// The page was written to swap: the slot names it there (shared memory only;
    /// Linux keeps the swap entry in the shmem mapping's xarray the same way).
    Swapped(SwapEntry),
    /// The page is being moved to another frame ([`MigrationLock`]): it is resident
    /// in `pfn` (the cache still holds its reference), but a lookup waits on `done`
    /// and looks again, so nobody takes a new reference on the old frame. `cut`: a
    /// shrink meanwhile cut the page to these bytes (the copy is cut too).
    Migrating {
        pfn: Pfn,
        done: Arc<Completion>,
        cut: Option<usize>,
    },
}

#[repr(align(64))]
#[derive(Default)]
struct Stripe(spin::Mutex<BTreeMap<u64, Slot>>);

/// The result of [`PageCache::get`].
pub enum Lookup {
    /// The page is resident; the caller now holds one reference on the frame.
    Hit(Pfn),
    /// Another fault is filling the page; wait for this and look again.
    Filling(Arc<Completion>),
    /// The page is not cached and nobody is filling it.
    Miss,
    /// The page is in swap, under this entry: read it back
    /// ([`FileObject::get_page`](super::FileObject::get_page) does).
    Swapped(SwapEntry),
}

/// The resident pages of one file.
pub struct PageCache {
    frames: Arc<Frames>,
    stripes: [Stripe; STRIPES],
    /// The swap its swapped pages live in (set by the first swap-out).
    swap: spin::Once<Arc<Swap>>,
}

impl PageCache {
    /// An empty cache whose frames come from (and go back to) `frames`.
    pub fn new(frames: Arc<Frames>) -> PageCache {
        PageCache {
            frames,
            stripes: core::array::from_fn(|_| Stripe::default()),
            swap: spin::Once::new(),
        }
    }

    fn stripe(&self, index: u64) -> &spin::Mutex<BTreeMap<u64, Slot>> {
        &self.stripes[index as usize % STRIPES].0
    }

    /// The frame caching page `index`, without taking a reference (for reports).
    pub fn peek(&self, index: u64) -> Option<Pfn> {
        match self.stripe(index).lock().get(&index) {
            Some(Slot::Ready(pfn, _) | Slot::Migrating { pfn, .. }) => Some(*pfn),
            _ => None,
        }
    }

    /// Looks page `index` up, taking a reference for the caller on a hit.
    pub fn get(&self, index: u64) -> Lookup {
        match self.stripe(index).lock().get(&index) {
            Some(Slot::Ready(pfn, _)) => {
                self.frames.get(*pfn);
                Lookup::Hit(*pfn)
            }
            Some(Slot::Filling(c) | Slot::Migrating { done: c, .. }) => Lookup::Filling(c.clone()),
            Some(Slot::Swapped(entry)) => Lookup::Swapped(*entry),
            None => Lookup::Miss,
        }
    }

    /// Claims page `index` for filling: `None` if it is cached or being filled.
    pub fn begin_fill(&self, index: u64) -> Option<FillGuard<'_>> {
        let mut stripe = self.stripe(index).lock();
        if stripe.contains_key(&index) {
            return None;
        }
        let completion = Completion::new();
        stripe.insert(index, Slot::Filling(completion.clone()));
        Some(FillGuard {
            cache: self,
            index,
            completion,
            done: false,
        })
    }

    /// Whether page `index` is resident or being filled.
    pub fn contains(&self, index: u64) -> bool {
        matches!(
            self.stripe(index).lock().get(&index),
            Some(Slot::Ready(_, _) | Slot::Filling(_) | Slot::Migrating { .. })
        )
    }

    /// Whether page `index` is resident and free to take (not being filled or
    /// moved): what a reader that must not wait asks before reading.
    pub fn is_ready(&self, index: u64) -> bool {
        matches!(
            self.stripe(index).lock().get(&index),
            Some(Slot::Ready(_, _))
        )
    }

    /// Whether page `index` is in swap (its slot names a swap entry).
    pub fn is_swapped(&self, index: u64) -> bool {
        matches!(
            self.stripe(index).lock().get(&index),
            Some(Slot::Swapped(_))
        )
    }

    /// Claims page `index` for a fill that outlives the caller (an I/O task): `None`
    /// if it is cached or being filled; else the completion its waiters wait on.
    /// The task ends the claim with [`publish`](Self::publish) or
    /// [`abandon`](Self::abandon).
    pub fn claim(&self, index: u64) -> Option<Arc<Completion>> {
        let mut stripe = self.stripe(index).lock();
        if stripe.contains_key(&index) {
            return None;
        }
        let completion = Completion::new();
        stripe.insert(index, Slot::Filling(completion.clone()));
        Some(completion)
    }

    /// Ends a [`claim`](Self::claim) with the filled frame (its reference passes to
    /// the cache) and wakes the waiters.
    pub fn publish(&self, index: u64, pfn: Pfn, completion: &Completion) {
        let old = self
            .stripe(index)
            .lock()
            .insert(index, Slot::Ready(pfn, false));
        if let Some(Slot::Ready(stale, _)) = old {
            self.frames.put(stale);
        }
        completion.complete();
    }

    /// Ends a [`claim`](Self::claim) without a page (the read failed) and wakes the
    /// waiters, who look again.
    pub fn abandon(&self, index: u64, completion: &Completion) {
        {
            let mut stripe = self.stripe(index).lock();
            if matches!(stripe.get(&index), Some(Slot::Filling(_))) {
                stripe.remove(&index);
            }
        }
        completion.complete();
    }

    /// Inserts a ready frame for `index` (the cache takes over the caller's reference);
    /// if the slot is taken, the frame is handed back.
    pub fn insert(&self, index: u64, pfn: Pfn) -> Result<(), Pfn> {
        let mut stripe = self.stripe(index).lock();
        if stripe.contains_key(&index) {
            return Err(pfn);
        }
        stripe.insert(index, Slot::Ready(pfn, false));
        Ok(())
    }

    /// Drops page `index` from the cache (a fill in progress is left alone); returns
    /// whether a page was dropped.
    pub fn remove(&self, index: u64) -> bool {
        let pfn = {
            let mut stripe = self.stripe(index).lock();
            match stripe.get(&index) {
                Some(Slot::Ready(pfn, _)) => {
                    let pfn = *pfn;
                    stripe.remove(&index);
                    pfn
                }
                _ => return false,
            }
        };
        self.frames.put(pfn);
        true
    }

    /// Drops every cached page with an index in `[first, last]` (one being moved to
    /// another node too), and frees the swap
    /// slots of the swapped ones (truncate, hole punch, the file's end); returns how
    /// many resident pages were dropped.
    pub fn remove_range(&self, first: u64, last: u64) -> u64 {
        let victims = self.take_range(first, last);
        for pfn in &victims {
            self.frames.put(*pfn);
        }
        victims.len() as u64
    }

    /// Takes every cached page with an index in `[first, last]` out of the cache and
    /// frees the swap slots of the swapped ones (a hole punch); returns the frames,
    /// whose references pass to the caller.
    pub fn take_range(&self, first: u64, last: u64) -> Vec<Pfn> {
        let mut taken = Vec::new();
        let mut swapped = Vec::new();
        for stripe in &self.stripes {
            let mut map = stripe.0.lock();
            let keys: Vec<u64> = map
                .range(first..=last)
                .filter(|(_, s)| !matches!(s, Slot::Filling(_)))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                match map.remove(&k) {
                    // A page being moved goes too: the mover holds a reference of
                    // its own and finds the slot gone when it ends.
                    Some(Slot::Ready(pfn, _) | Slot::Migrating { pfn, .. }) => taken.push(pfn),
                    Some(Slot::Swapped(entry)) => swapped.push(entry),
                    _ => {}
                }
            }
        }
        if let Some(swap) = self.swap.get() {
            for entry in swapped {
                swap.release(entry, &self.frames);
            }
        }
        taken
    }

    /// Drops every ready page that nothing but the cache holds (no mapping, no read
    /// in progress); returns how many (`drop_caches`).
    pub fn remove_unshared(&self) -> u64 {
        self.remove_unshared_range(0, u64::MAX)
    }

    /// Like [`remove_unshared`](Self::remove_unshared) for the pages with an index in
    /// `[first, last]` (`POSIX_FADV_DONTNEED`).
    pub fn remove_unshared_range(&self, first: u64, last: u64) -> u64 {
        let mut victims = Vec::new();
        for stripe in &self.stripes {
            let mut map = stripe.0.lock();
            // References are taken only under this lock (`get`), so a count of one
            // stays one until the page is gone.
            map.retain(|index, slot| match slot {
                Slot::Ready(pfn, _)
                    if (first..=last).contains(index) && self.frames.count(*pfn) == 1 =>
                {
                    victims.push(*pfn);
                    false
                }
                _ => true,
            });
        }
        for pfn in &victims {
            self.frames.put(*pfn);
        }
        victims.len() as u64
    }

    /// Drops up to `max` ready pages nothing but the cache holds whose frames pass
    /// `keep_out` (reclaim on one node), from index `*cursor` on; moves the cursor past
    /// the last one dropped (back to 0 when none was found, so the next call starts
    /// over). Returns how many were dropped.
    pub fn remove_unshared_some(
        &self,
        cursor: &mut u64,
        max: usize,
        take: &dyn Fn(Pfn) -> bool,
    ) -> usize {
        let mut victims: Vec<(u64, Pfn)> = Vec::new();
        let per_stripe = max.div_ceil(STRIPES).max(1);
        for stripe in &self.stripes {
            let mut map = stripe.0.lock();
            let keys: Vec<u64> = map
                .range(*cursor..)
                .filter(|(_, s)| {
                    matches!(s, Slot::Ready(pfn, _) if self.frames.count(*pfn) == 1 && take(*pfn))
                })
                .map(|(k, _)| *k)
                .take(per_stripe)
                .collect();
            for k in keys {
                if let Some(Slot::Ready(pfn, _)) = map.remove(&k) {
                    victims.push((k, pfn));
                }
            }
            if victims.len() >= max {
                break;
            }
        }
        *cursor = victims.iter().map(|(k, _)| k + 1).max().unwrap_or(0);
        for (_, pfn) in &victims {
            self.frames.put(*pfn);
        }
        victims.len()
    }

    /// Resident pages.
    pub fn len(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| {
                s.0.lock()
                    .values()
                    .filter(|v| matches!(v, Slot::Ready(_, _) | Slot::Migrating { .. }))
                    .count() as u64
            })
            .sum()
    }

    /// Whether no page is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frames the cache owns.
    pub(crate) fn frames(&self) -> &Arc<Frames> {
        &self.frames
    }
}

/// Shared memory's swap (see `mm::swap::shmem`): a slot moves from a resident page
/// to a swap entry and back. Lock order: a stripe's lock, then a swap area's.
impl PageCache {
    /// Remembers the swap this cache's swapped pages go to (the first swap-out).
    pub(crate) fn set_swap(&self, swap: &Arc<Swap>) {
        self.swap.call_once(|| swap.clone());
    }

    /// The swap this cache's swapped pages are in, once one went there.
    pub(crate) fn swap(&self) -> Option<&Arc<Swap>> {
        self.swap.get()
    }

    /// Moves up to `max` resident pages nothing but the cache holds (no mapping, no
    /// read or write in progress: their count is one) whose frames `take` accepts to
    /// swap, looking at the indices `[*cursor, *cursor + window)`: `place(index, pfn)`
    /// gives the page a slot and takes over the cache's reference (the swap cache
    /// holds the frame until its write ends), or says `None` (no room: stop). The slot
    /// then names the entry. Moves the cursor past the last page taken when `max` were
    /// taken, else to the window's end (back to 0 past the last page), so a call costs
    /// at most a window however many pages are mapped. A page marked referenced
    /// ([`mark_referenced`](Self::mark_referenced)) loses its mark and stays; then the
    /// cursor stays too, so the next pass can take it. Returns the pages taken.
    pub(crate) fn swap_out_some(
        &self,
        cursor: &mut u64,
        max: usize,
        window: u64,
        take: &dyn Fn(Pfn) -> bool,
        place: &mut dyn FnMut(u64, Pfn) -> Option<SwapEntry>,
    ) -> usize {
        let mut taken = 0usize;
        let mut last = None;
        let mut more = false;
        let mut second_chances = 0usize;
        let end = cursor.saturating_add(window.max(1));
        let per_stripe = max.div_ceil(STRIPES).max(1);
        'stripes: for stripe in &self.stripes {
            let mut map = stripe.0.lock();
            more |= map.range(end..).next().is_some();
            // References are taken only under this lock (`get`), so a count of one
            // stays one while the slot changes.
            let keys: Vec<(u64, Pfn)> = map
                .range_mut(*cursor..end)
                .filter_map(|(k, s)| match s {
                    Slot::Ready(pfn, referenced) if self.frames.count(*pfn) == 1 && take(*pfn) => {
                        // Read or written since the last pass: a second chance.
                        if core::mem::take(referenced) {
                            second_chances += 1;
                            return None;
                        }
                        Some((*k, *pfn))
                    }
                    _ => None,
                })
                .take(per_stripe)
                .collect();
            for (index, pfn) in keys {
                let Some(entry) = place(index, pfn) else {
                    break 'stripes;
                };
                map.insert(index, Slot::Swapped(entry));
                taken += 1;
                last = Some(last.map_or(index, |l: u64| l.max(index)));
                if taken >= max {
                    break 'stripes;
                }
            }
        }
        *cursor = match last {
            Some(l) if taken >= max => l + 1,
            // The next pass looks at this window again, for the pages this one
            // passed over.
            _ if second_chances != 0 => *cursor,
            _ if more => end,
            _ => 0,
        };
        taken
    }

    /// Marks page `index` referenced if its slot still holds `pfn` (`read` or `write`
    /// went through the page, Linux's `folio_mark_accessed`): the next pass of
    /// [`swap_out_some`](Self::swap_out_some) clears the mark instead of taking the
    /// page, so a page read often is swapped after a cold one (a second chance).
    pub(crate) fn mark_referenced(&self, index: u64, pfn: Pfn) {
        if let Some(Slot::Ready(p, referenced)) = self.stripe(index).lock().get_mut(&index) {
            if *p == pfn {
                *referenced = true;
            }
        }
    }

    /// A swapped page was read back into `pfn` (the caller's reference passes to the
    /// cache): if slot `index` still names `entry`, it holds the page again and the
    /// entry is released (the slot is freed, as Linux's shmem frees it at swap-in).
    /// False, changing nothing, if the slot changed meanwhile (truncated, or another
    /// reader put the page back first).
    pub(crate) fn swapped_in(&self, index: u64, entry: SwapEntry, pfn: Pfn) -> bool {
        let mut map = self.stripe(index).lock();
        if !matches!(map.get(&index), Some(Slot::Swapped(e)) if *e == entry) {
            return false;
        }
        map.insert(index, Slot::Ready(pfn, false));
        // Under the stripe's lock, so nobody finds the page both here and in the
        // swap cache with a slot still named.
        if let Some(swap) = self.swap.get() {
            swap.release(entry, &self.frames);
        }
        true
    }

    /// The swapped pages with an index in `[first, last]` whose entries `which`
    /// accepts, at most `max`, in index order (swapoff, readahead).
    pub(crate) fn swapped_entries(
        &self,
        first: u64,
        last: u64,
        max: usize,
        which: &dyn Fn(SwapEntry) -> bool,
    ) -> Vec<(u64, SwapEntry)> {
        let mut out = Vec::new();
        for stripe in &self.stripes {
            let map = stripe.0.lock();
            for (k, s) in map.range(first..=last) {
                if out.len() >= max {
                    break;
                }
                if let Slot::Swapped(entry) = s {
                    if which(*entry) {
                        out.push((*k, *entry));
                    }
                }
            }
        }
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// Pages with an index in `[first, last]` in swap.
    pub fn swapped_range(&self, first: u64, last: u64) -> u64 {
        if first > last {
            return 0;
        }
        self.stripes
            .iter()
            .map(|s| {
                s.0.lock()
                    .range(first..=last)
                    .filter(|(_, v)| matches!(v, Slot::Swapped(_)))
                    .count() as u64
            })
            .sum()
    }

    /// Pages in swap.
    pub fn swapped(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| {
                s.0.lock()
                    .values()
                    .filter(|v| matches!(v, Slot::Swapped(_)))
                    .count() as u64
            })
            .sum()
    }
}

/// Page migration between NUMA nodes (`mm::aspace::migrate_cache`): a resident page's
/// slot is locked while its frame is copied, then names the copy.
impl PageCache {
    /// Locks resident page `index`, cached in `pfn`, for a move to another frame:
    /// from now on a lookup waits (as on a fill) instead of taking a reference, so the
    /// frame's count can only fall. The lock holds a reference of its own. `None` if
    /// the slot does not hold `pfn` ready (being filled, moved, swapped or gone).
    pub(crate) fn lock_for_migration(&self, index: u64, pfn: Pfn) -> Option<MigrationLock<'_>> {
        let mut stripe = self.stripe(index).lock();
        if !matches!(stripe.get(&index), Some(Slot::Ready(p, _)) if *p == pfn) {
            return None;
        }
        let done = Completion::new();
        self.frames.get(pfn);
        stripe.insert(
            index,
            Slot::Migrating {
                pfn,
                done: done.clone(),
                cut: None,
            },
        );
        Some(MigrationLock {
            cache: self,
            index,
            pfn,
            done,
            ended: false,
        })
    }

    /// A shrink's cut of page `index` to its first `keep` bytes: a resident page is
    /// zeroed past them (one being moved is, and its copy will be); a swapped page is
    /// left to the caller, who cuts it when it is read back.
    pub(crate) fn cut_tail(&self, index: u64, keep: usize) -> TailCut {
        let keep = keep.min(ZEROS.len());
        let mut map = self.stripe(index).lock();
        match map.get_mut(&index) {
            Some(Slot::Ready(pfn, _)) => {
                self.frames.write(*pfn, keep, &ZEROS[keep..]);
                TailCut::Done
            }
            Some(Slot::Migrating { pfn, cut, .. }) => {
                self.frames.write(*pfn, keep, &ZEROS[keep..]);
                *cut = Some(cut.map_or(keep, |k| k.min(keep)));
                TailCut::Done
            }
            Some(Slot::Swapped(_)) => TailCut::Swapped,
            Some(Slot::Filling(_)) | None => TailCut::Absent,
        }
    }

    /// Whether slot `index` is still the migration `done` locked.
    fn is_locked_by(map: &BTreeMap<u64, Slot>, index: u64, done: &Arc<Completion>) -> bool {
        matches!(map.get(&index), Some(Slot::Migrating { done: d, .. }) if Arc::ptr_eq(d, done))
    }
}

/// What [`PageCache::cut_tail`] found.
pub(crate) enum TailCut {
    /// The page was resident and is cut.
    Done,
    /// The page is in swap: cut it when it is read back.
    Swapped,
    /// No page there (or one being filled).
    Absent,
}

/// A page of zeros, for cutting tails.
static ZEROS: [u8; crate::phys::PAGE_BYTES] = [0; crate::phys::PAGE_BYTES];

/// A page-cache slot locked for a move ([`PageCache::lock_for_migration`]). It ends
/// with [`replace`](Self::replace) (the slot names the new frame) or, dropped, puts
/// the old frame back; either way the lookups waiting on it are woken. A truncation or
/// hole punch meanwhile drops the slot as it would a resident page.
pub(crate) struct MigrationLock<'a> {
    cache: &'a PageCache,
    index: u64,
    pfn: Pfn,
    done: Arc<Completion>,
    ended: bool,
}

impl MigrationLock<'_> {
    /// The references on the frame besides the cache's and this lock's (mappings,
    /// `read`/`write` copying, pins). Only falls while the lock is held, unless a
    /// holder clones its own (a fork copying a mapping's entry).
    pub(crate) fn other_refs(&self) -> u64 {
        u64::from(self.cache.frames.count(self.pfn)).saturating_sub(2)
    }

    /// Ends the move: the slot names `new` (its reference passes to the cache), the
    /// cache's and the lock's references on the old frame are dropped. `Err(new)`,
    /// changing nothing, if the page left the cache meanwhile (truncated).
    pub(crate) fn replace(mut self, new: Pfn) -> Result<(), Pfn> {
        {
            let mut map = self.cache.stripe(self.index).lock();
            let Some(Slot::Migrating { done, cut, .. }) = map.get(&self.index) else {
                return Err(new);
            };
            if !Arc::ptr_eq(done, &self.done) {
                return Err(new);
            }
            if let Some(keep) = *cut {
                // A shrink cut the old frame, perhaps after it was copied.
                self.cache.frames.write(new, keep, &ZEROS[keep..]);
            }
            map.insert(self.index, Slot::Ready(new, false));
        }
        self.ended = true;
        self.cache.frames.put(self.pfn);
        self.cache.frames.put(self.pfn);
        self.done.complete();
        Ok(())
    }
}

impl Drop for MigrationLock<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        {
            let mut map = self.cache.stripe(self.index).lock();
            if PageCache::is_locked_by(&map, self.index, &self.done) {
                map.insert(self.index, Slot::Ready(self.pfn, false));
            }
        }
        // The lock's own reference (the cache's stays with the slot, or went with it).
        self.cache.frames.put(self.pfn);
        self.done.complete();
    }
}

impl Drop for PageCache {
    fn drop(&mut self) {
        self.remove_range(0, u64::MAX);
    }
}

/// A claimed slot being filled. [`finish`](Self::finish) publishes the page; dropping
/// the guard unfinished frees the slot. Either way, waiters are woken.
pub struct FillGuard<'a> {
    cache: &'a PageCache,
    index: u64,
    completion: Arc<Completion>,
    done: bool,
}

impl FillGuard<'_> {
    /// Publishes `pfn` (its reference passes to the cache) and wakes the waiters.
    pub fn finish(mut self, pfn: Pfn) {
        self.cache
            .stripe(self.index)
            .lock()
            .insert(self.index, Slot::Ready(pfn, false));
        self.done = true;
        self.completion.complete();
    }
}

impl Drop for FillGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.stripe(self.index).lock().remove(&self.index);
            self.completion.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::soft::SoftFrames;

    #[test]
    fn fill_hit_remove() {
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let cache = PageCache::new(frames.clone());
        assert!(matches!(cache.get(3), Lookup::Miss));
        let guard = cache.begin_fill(3).unwrap();
        assert!(cache.begin_fill(3).is_none());
        let Lookup::Filling(c) = cache.get(3) else {
            panic!("expected a fill")
        };
        assert!(!c.is_complete());
        let pfn = frames.alloc_zeroed(crate::addr::VirtAddr::new(0)).unwrap();
        guard.finish(pfn);
        assert!(c.is_complete());
        let Lookup::Hit(p) = cache.get(3) else {
            panic!("expected a hit")
        };
        assert_eq!((p, frames.count(p)), (pfn, 2));
        frames.put(p);
        assert_eq!(cache.peek(3), Some(pfn));
        assert_eq!(cache.len(), 1);
        assert!(cache.remove(3));
        assert!(!cache.remove(3));
        assert_eq!(soft.live(), 0);
    }

    #[test]
    fn abandoned_fill_frees_slot_and_drop_releases_pages() {
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let cache = PageCache::new(frames.clone());
        let guard = cache.begin_fill(1).unwrap();
        drop(guard);
        assert!(matches!(cache.get(1), Lookup::Miss));
        for i in 0..5 {
            cache
                .insert(
                    i,
                    frames.alloc_zeroed(crate::addr::VirtAddr::new(0)).unwrap(),
                )
                .unwrap();
        }
        let extra = frames.alloc_zeroed(crate::addr::VirtAddr::new(0)).unwrap();
        assert_eq!(cache.insert(2, extra), Err(extra));
        frames.put(extra);
        assert_eq!(cache.remove_range(1, 2), 2);
        assert_eq!(cache.len(), 3);
        drop(cache);
        assert_eq!(soft.live(), 0);
    }
}
