//! Swap: anonymous pages written to block devices when memory runs short and read
//! back when touched.
//!
//! * A swap **area** is a block device with Linux's swap header ([`header`]); its
//!   [`SlotMap`] counts, per page of the device, the page-table entries naming it.
//! * A **swap entry** ([`SwapEntry`]: area and slot) replaces a present entry in the
//!   page table when its page is written out (the [`PageTable`] swap methods; the
//!   hardware sees a not-present entry).
//! * The **swap cache** of each area maps a slot to the frame holding its page while
//!   the page is being read or written, or while it is still shared: a fault that
//!   finds the slot there maps that frame (two faults on one slot read the device
//!   once), and a page whose write-out is in flight is never lost.
//! * Reading is a task handed to the kernel's [`Spawner`]: the faulting thread parks on
//!   a [`FaultFuture`](crate::fault::FaultFuture) with [`WaitReason::SwapIn`], other
//!   threads keep running, and the device's completion (its interrupt) wakes the
//!   task, which fills the frame and completes the wait.
//! * Reclaim ([`reclaim`]) walks address spaces with a clock over the entries'
//!   accessed bits and turns cold private anonymous pages into swap entries;
//!   [`Swap::write_out`] writes them with many requests in flight.
//!
//! Locking: each area has one spin lock over its slot map and its cache; it is taken
//! for a handful of operations per page and never held across I/O.
//!
//! [`PageTable`]: crate::pagetable::PageTable
//! [`WaitReason::SwapIn`]: crate::fault::WaitReason::SwapIn

pub mod balance;
pub mod entry;
mod fault;
pub mod file;
pub mod header;
pub mod reclaim;
pub mod shmem;
mod slots;

pub use entry::SwapEntry;
pub use fault::SwapoffStep;
pub use reclaim::{PageOut, ScanBudget, WriteOutcome};
pub use slots::{SlotMap, MAX_SLOT_REFS};

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::block::{BlockDevice, IoBuf, SECTOR_SIZE};
use crate::errno::MmError;
use crate::fault::wait::Completion;
use crate::frame::Pfn;
use crate::phys::{Frames, PAGE_BYTES};
use header::SwapHeader;

/// The most areas active at once (Linux's `MAX_SWAPFILES` is 32 less a few types).
pub const MAX_AREAS: usize = 32;
/// Sectors in a page.
const SECTORS_PER_PAGE: u64 = (PAGE_BYTES / SECTOR_SIZE) as u64;
/// I/O buffers each area keeps for itself, so that swapping never depends on the
/// kernel heap growing while memory is short.
const POOL_BUFFERS: usize = 64;

/// Runs the swap layer's I/O tasks: the kernel puts them on its executor; host tests
/// run them to completion at once.
pub trait Spawner: Send + Sync {
    /// Starts `task`.
    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>);
}

/// What the cache knows of a slot's page.
enum CacheState {
    /// Being read from the device; the faults waiting for it wait on this.
    Reading(Arc<Completion>),
    /// The frame and the slot hold the same data.
    Clean,
    /// Being written to the device.
    Writeback,
    /// The write failed: the frame is the only copy and stays until mapped again.
    Unwritten,
    /// The read failed: faults on the slot get `SIGBUS`.
    Failed,
}

struct Cached {
    /// The frame (the cache holds one reference on it); none after a failed read.
    pfn: Option<Pfn>,
    state: CacheState,
    /// No entry names the slot any more: drop the page when the I/O in flight ends.
    dropped: bool,
    /// Read ahead of any fault on it, and not mapped since (a fault that finds it
    /// counts a readahead hit).
    read_ahead: bool,
}

struct AreaInner {
    slots: SlotMap,
    cache: BTreeMap<u64, Cached>,
    /// The slot of every cached frame, by frame number: reclaim finds a page mapped
    /// from the cache here and turns its entry back into that slot's swap entry.
    by_pfn: BTreeMap<u64, u64>,
}

/// What a swap area is on (`/proc/swaps`' Type column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaKind {
    /// A whole block device.
    Partition,
    /// A regular file, its blocks mapped at swapon ([`file::SwapFile`]).
    File,
}

impl AreaKind {
    /// Linux's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AreaKind::Partition => "partition",
            AreaKind::File => "file",
        }
    }
}

/// One active swap area.
pub struct SwapArea {
    id: u8,
    name: String,
    kind: AreaKind,
    device: Arc<dyn BlockDevice>,
    priority: i32,
    draining: AtomicBool,
    /// Where [`Swap::shrink_cache`] goes on in this area's cache.
    shrink_cursor: AtomicU64,
    inner: spin::Mutex<AreaInner>,
    pool: spin::Mutex<Vec<IoBuf>>,
}

/// Counters of the swap layer (`/proc/vmstat`).
#[derive(Default)]
pub struct SwapStats {
    /// Pages read from swap (`pswpin`).
    pub pswpin: AtomicU64,
    /// Pages written to swap (`pswpout`).
    pub pswpout: AtomicU64,
    /// Faults served from the swap cache without a read of their own.
    pub cache_hits: AtomicU64,
    /// Device reads issued.
    pub reads: AtomicU64,
    /// Device writes issued.
    pub writes: AtomicU64,
    /// Reads that failed (the faults got `SIGBUS`).
    pub read_errors: AtomicU64,
    /// Writes that failed (the page stayed in memory).
    pub write_errors: AtomicU64,
    /// Pages read ahead of a fault (`swap_ra`).
    pub readahead: AtomicU64,
    /// Read-ahead pages a fault then used (`swap_ra_hit`).
    pub readahead_hits: AtomicU64,
}

/// One line of `/proc/swaps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AreaInfo {
    /// The area's number (the `area` of its entries).
    pub id: u8,
    /// The path it was activated by.
    pub name: String,
    /// A partition or a file.
    pub kind: AreaKind,
    /// Usable pages.
    pub pages: u64,
    /// Pages in use.
    pub used: u64,
    /// Its priority.
    pub priority: i32,
}

/// Every active area, the I/O spawner and the counters: one per system, shared by
/// every address space through [`Tunables`](crate::aspace::Tunables).
pub struct Swap {
    areas: spin::RwLock<Vec<Option<Arc<SwapArea>>>>,
    spawner: spin::Once<Arc<dyn Spawner>>,
    stats: Arc<SwapStats>,
    /// The priority the next area without one gets (-2, -3, ... as in Linux).
    next_default_priority: spin::Mutex<i32>,
    /// `vm.page-cluster`: swap readahead reads at most 2^this slots.
    page_cluster: AtomicU32,
    /// Read-ahead pages used since the last read a fault had to start.
    ra_hits: AtomicU64,
    /// The slot of that read, and the window it read ahead.
    ra_prev_slot: AtomicU64,
    ra_prev_window: AtomicU64,
}

impl Default for Swap {
    fn default() -> Self {
        Swap {
            areas: spin::RwLock::new((0..MAX_AREAS).map(|_| None).collect()),
            spawner: spin::Once::new(),
            stats: Arc::new(SwapStats::default()),
            next_default_priority: spin::Mutex::new(-2),
            page_cluster: AtomicU32::new(DEFAULT_PAGE_CLUSTER),
            ra_hits: AtomicU64::new(0),
            ra_prev_slot: AtomicU64::new(u64::MAX),
            ra_prev_window: AtomicU64::new(0),
        }
    }
}

/// A page-sized buffer from the heap, or `None` if the heap cannot give one.
fn heap_page_buf() -> Option<IoBuf> {
    let mut v = Vec::new();
    v.try_reserve_exact(PAGE_BYTES).ok()?;
    v.resize(PAGE_BYTES, 0u8);
    Some(v.into_boxed_slice())
}

impl SwapArea {
    /// The area's number.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The path it was activated by.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn sector(slot: u64) -> u64 {
        slot * SECTORS_PER_PAGE
    }

    /// An I/O buffer: the area's own first, the heap's after.
    fn take_buf(&self) -> Option<IoBuf> {
        self.pool.lock().pop().or_else(heap_page_buf)
    }

    fn return_buf(&self, buf: IoBuf) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL_BUFFERS && buf.len() == PAGE_BYTES {
            pool.push(buf);
        }
    }

    /// Pages in use and usable.
    pub fn usage(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.slots.used(), inner.slots.usable())
    }

    /// The page of slot `slot` is gone from every entry: let the cache drop it (now,
    /// or when its I/O ends).
    fn uncache(inner: &mut AreaInner, slot: u64, frames: &Frames) {
        let Some(c) = inner.cache.get_mut(&slot) else {
            return;
        };
        match c.state {
            CacheState::Reading(_) | CacheState::Writeback => c.dropped = true,
            _ => {
                if let Some(pfn) = c.pfn {
                    inner.by_pfn.remove(&pfn.0);
                    frames.put(pfn);
                }
                inner.cache.remove(&slot);
                inner.slots.clear_cached(slot);
            }
        }
    }

    /// A read ended: the page is in its frame (`ok`), or the slot is marked failed.
    fn finish_read(&self, slot: u64, ok: bool, frames: &Frames, stats: &SwapStats) {
        let done = {
            let mut inner = self.inner.lock();
            let Some(c) = inner.cache.get_mut(&slot) else {
                return;
            };
            let mut failed_pfn = None;
            let done = match core::mem::replace(&mut c.state, CacheState::Clean) {
                CacheState::Reading(done) => done,
                other => {
                    c.state = other;
                    return;
                }
            };
            if ok {
                stats.pswpin.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                c.state = CacheState::Failed;
                if let Some(pfn) = c.pfn.take() {
                    frames.put(pfn);
                    failed_pfn = Some(pfn);
                }
            }
            let dropped = c.dropped;
            if let Some(pfn) = failed_pfn {
                inner.by_pfn.remove(&pfn.0);
            }
            let c = inner.cache.get_mut(&slot).expect("still cached");
            if dropped {
                let pfn = c.pfn;
                inner.cache.remove(&slot);
                inner.slots.clear_cached(slot);
                if let Some(pfn) = pfn {
                    inner.by_pfn.remove(&pfn.0);
                    frames.put(pfn);
                }
            } else if let Some(pfn) = c.pfn {
                inner.by_pfn.insert(pfn.0, slot);
            }
            done
        };
        done.complete();
    }

    /// A write ended; true if the page's frame was freed.
    fn finish_write(&self, slot: u64, ok: bool, frames: &Frames, stats: &SwapStats) -> bool {
        let mut inner = self.inner.lock();
        let Some(c) = inner.cache.get_mut(&slot) else {
            return false;
        };
        if ok {
            stats.pswpout.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        let Some(pfn) = c.pfn else {
            return false;
        };
        // Nobody needs the page any more, or it is on the device and no entry maps
        // the frame: free it. Otherwise the cache keeps it (mapped again meanwhile,
        // or the only copy after a failed write).
        let unneeded = c.dropped || (ok && frames.count(pfn) == 1);
        if unneeded {
            inner.by_pfn.remove(&pfn.0);
            inner.cache.remove(&slot);
            inner.slots.clear_cached(slot);
            return frames.put(pfn);
        }
        c.state = if ok {
            CacheState::Clean
        } else {
            CacheState::Unwritten
        };
        if ok {
            inner.by_pfn.insert(pfn.0, slot);
        }
        false
    }

    /// If `pfn` is cached here: `Some(slot)` when its page is clean and one more
    /// entry now names the slot (the caller is about to turn a present entry mapping
    /// `pfn` into it), `Some(None)` while its I/O is in flight; `None` if not cached.
    fn claim_cached(&self, pfn: Pfn) -> Option<Option<u64>> {
        let mut inner = self.inner.lock();
        let slot = *inner.by_pfn.get(&pfn.0)?;
        let clean = inner
            .cache
            .get(&slot)
            .is_some_and(|c| matches!(c.state, CacheState::Clean) && c.pfn == Some(pfn));
        Some((clean && inner.slots.dup(slot)).then_some(slot))
    }

    /// Undoes [`claim_clean`](Self::claim_clean) when the entry could not be changed.
    fn unclaim(&self, slot: u64) {
        self.inner.lock().slots.put(slot);
    }

    /// An entry mapping the cached page of `slot` became a swap entry and its
    /// translation is flushed: drops that entry's frame reference, and the page
    /// itself once only the cache holds it (the device has it). True if freed.
    fn unmapped_clean(&self, slot: u64, pfn: Pfn, frames: &Frames) -> bool {
        let mut inner = self.inner.lock();
        frames.put(pfn);
        let only_cache = inner
            .cache
            .get(&slot)
            .is_some_and(|c| matches!(c.state, CacheState::Clean) && c.pfn == Some(pfn))
            && frames.count(pfn) == 1;
        if !only_cache {
            return false;
        }
        inner.cache.remove(&slot);
        inner.by_pfn.remove(&pfn.0);
        inner.slots.clear_cached(slot);
        frames.put(pfn)
    }
}

/// `vm.page-cluster`'s default (Linux's): read ahead up to 8 slots.
pub const DEFAULT_PAGE_CLUSTER: u32 = 3;

/// How many slots a swap-in reads (the faulting one included), as Linux's
/// `__swapin_nr_pages`: two more than the read-ahead pages used since the last read,
/// rounded up to a power of two, one when nothing was used and the fault is not next
/// to the last one, at most `max`, and never below half the previous window (it
/// shrinks slowly, so a workload that uses read-ahead pages now and then keeps some).
pub(crate) fn readahead_window(hits: u64, sequential: bool, max: u64, prev_window: u64) -> u64 {
    let mut pages = hits + 2;
    if pages == 2 {
        if !sequential {
            pages = 1;
        }
    } else {
        pages = pages.next_power_of_two();
    }
    pages = pages.min(max.max(1));
    pages.max((prev_window / 2).min(max.max(1))).max(1)
}

impl Swap {
    /// No areas.
    pub fn new() -> Arc<Swap> {
        Arc::new(Swap::default())
    }

    /// Sets `vm.page-cluster` (log2 of the most slots one swap-in reads; 0: none ahead).
    pub fn set_page_cluster(&self, log2: u32) {
        self.page_cluster.store(log2.min(10), Ordering::Relaxed);
    }

    /// The slots a fault's read of `slot` should bring in: the aligned window of
    /// [`readahead_window`] slots around it. Updates the readahead state.
    fn readahead_range(&self, slot: u64) -> core::ops::Range<u64> {
        let max = 1u64 << self.page_cluster.load(Ordering::Relaxed);
        let hits = self.ra_hits.swap(0, Ordering::Relaxed);
        let prev = self.ra_prev_slot.swap(slot, Ordering::Relaxed);
        let sequential =
            prev != u64::MAX && (slot == prev.wrapping_add(1) || slot == prev.wrapping_sub(1));
        let window = readahead_window(
            hits,
            sequential,
            max,
            self.ra_prev_window.load(Ordering::Relaxed),
        );
        self.ra_prev_window.store(window, Ordering::Relaxed);
        let start = slot & !(window - 1);
        start..start + window
    }

    /// Sets the task spawner (once, at boot).
    pub fn set_spawner(&self, spawner: Arc<dyn Spawner>) {
        self.spawner.call_once(|| spawner);
    }

    /// The counters.
    pub fn stats(&self) -> &SwapStats {
        &self.stats
    }

    /// The active area numbered `id`.
    pub fn area(&self, id: u8) -> Option<Arc<SwapArea>> {
        self.areas.read().get(usize::from(id))?.clone()
    }

    /// Every active area, highest priority first.
    fn by_priority(&self) -> Vec<Arc<SwapArea>> {
        let mut list: Vec<Arc<SwapArea>> = self.areas.read().iter().flatten().cloned().collect();
        list.sort_by_key(|a| core::cmp::Reverse(a.priority));
        list
    }

    /// The areas, for `/proc/swaps`.
    pub fn areas(&self) -> Vec<AreaInfo> {
        let mut list: Vec<AreaInfo> = self
            .areas
            .read()
            .iter()
            .flatten()
            .map(|a| {
                let (used, pages) = a.usage();
                AreaInfo {
                    id: a.id,
                    name: a.name.clone(),
                    kind: a.kind,
                    pages,
                    used,
                    priority: a.priority,
                }
            })
            .collect();
        list.sort_by_key(|a| a.id);
        list
    }

    /// Total and free swap pages (`SwapTotal`, `SwapFree`).
    pub fn totals(&self) -> (u64, u64) {
        self.areas
            .read()
            .iter()
            .flatten()
            .map(|a| a.usage())
            .fold((0, 0), |(t, f), (used, pages)| {
                (t + pages, f + pages - used)
            })
    }

    /// Pages held by the swap caches (`SwapCached`).
    pub fn cached_pages(&self) -> u64 {
        self.areas
            .read()
            .iter()
            .flatten()
            .map(|a| {
                a.inner
                    .lock()
                    .cache
                    .values()
                    .filter(|c| c.pfn.is_some())
                    .count() as u64
            })
            .sum()
    }

    /// Whether some area could take a page now.
    pub fn has_room(&self) -> bool {
        self.areas.read().iter().flatten().any(|a| {
            let (used, pages) = a.usage();
            !a.draining.load(Ordering::Relaxed) && used < pages
        })
    }

    /// Activates `device` as a swap area named `name` (its path), reading its
    /// header. `EINVAL` for a bad header, `EBUSY` if `name` is already active,
    /// `EPERM` when every area number is taken (Linux's answer), `EIO` folded into
    /// `EINVAL` when the header cannot be read. Returns the area's number.
    pub async fn activate(
        &self,
        name: &str,
        device: Arc<dyn BlockDevice>,
        priority: Option<i32>,
    ) -> Result<u8, MmError> {
        self.activate_as(name, device, priority, AreaKind::Partition)
            .await
    }

    /// [`activate`](Self::activate) for an area of `kind` (a swap file's device is
    /// its [`file::SwapFile`]).
    pub async fn activate_as(
        &self,
        name: &str,
        device: Arc<dyn BlockDevice>,
        priority: Option<i32>,
        kind: AreaKind,
    ) -> Result<u8, MmError> {
        if self.areas.read().iter().flatten().any(|a| a.name == name) {
            return Err(MmError::Busy);
        }
        let device_pages = device.capacity_sectors() / SECTORS_PER_PAGE;
        if device_pages < 2 {
            return Err(MmError::InvalidArgument);
        }
        let buf = heap_page_buf().ok_or(MmError::NoMemory)?;
        let page = device
            .read(0, buf)
            .await
            .map_err(|_| MmError::InvalidArgument)?;
        let header = SwapHeader::parse(&page, device_pages)?;
        let mut pool = Vec::new();
        for _ in 0..POOL_BUFFERS {
            pool.push(heap_page_buf().ok_or(MmError::NoMemory)?);
        }
        let priority = priority.unwrap_or_else(|| {
            let mut next = self.next_default_priority.lock();
            let p = *next;
            *next -= 1;
            p
        });
        let mut areas = self.areas.write();
        if areas.iter().flatten().any(|a| a.name == name) {
            return Err(MmError::Busy);
        }
        let id = areas
            .iter()
            .position(Option::is_none)
            .ok_or(MmError::PermissionDenied)?;
        areas[id] = Some(Arc::new(SwapArea {
            id: id as u8,
            name: String::from(name),
            kind,
            device,
            priority,
            draining: AtomicBool::new(false),
            shrink_cursor: AtomicU64::new(0),
            inner: spin::Mutex::new(AreaInner {
                slots: SlotMap::new(header.last_page + 1, &header.bad_pages),
                cache: BTreeMap::new(),
                by_pfn: BTreeMap::new(),
            }),
            pool: spin::Mutex::new(pool),
        }));
        Ok(id as u8)
    }

    /// The number of the active area named `name`.
    pub fn find(&self, name: &str) -> Option<u8> {
        self.areas
            .read()
            .iter()
            .flatten()
            .find(|a| a.name == name)
            .map(|a| a.id)
    }

    /// Stops (or, with `false`, resumes) handing out slots of area `id` (swapoff).
    pub fn set_draining(&self, id: u8, draining: bool) {
        if let Some(a) = self.area(id) {
            a.draining.store(draining, Ordering::Relaxed);
        }
    }

    /// Removes area `id` once nothing uses it; `EBUSY` while slots are in use.
    pub fn deactivate(&self, id: u8) -> Result<(), MmError> {
        let mut areas = self.areas.write();
        let slot = areas
            .get_mut(usize::from(id))
            .ok_or(MmError::InvalidArgument)?;
        let area = slot.as_ref().ok_or(MmError::InvalidArgument)?;
        if area.usage().0 != 0 {
            return Err(MmError::Busy);
        }
        *slot = None;
        Ok(())
    }

    /// A free slot in the highest-priority area with room, named by one entry and held
    /// by the cache (the caller inserts the page with [`Swap::cache_for_writeback`]).
    fn alloc_slot(&self) -> Option<Arc<SwapArea>> {
        self.by_priority().into_iter().find(|a| {
            let (used, pages) = a.usage();
            !a.draining.load(Ordering::Relaxed) && used < pages
        })
    }

    /// Whether `pfn` is in a swap cache: with the area and slot (one more entry
    /// counted on it) when its page is clean, `Some(None)` while its I/O is in flight.
    fn claim_cached(&self, pfn: Pfn) -> Option<Option<(Arc<SwapArea>, u64)>> {
        self.areas.read().iter().flatten().find_map(|a| {
            let claim = a.claim_cached(pfn)?;
            // A draining area (swapoff) takes no new entries: leave the page.
            if a.draining.load(Ordering::Relaxed) {
                if let Some(slot) = claim {
                    a.unclaim(slot);
                }
                return Some(None);
            }
            Some(claim.map(|slot| (a.clone(), slot)))
        })
    }

    /// Frees clean cached pages that no entry maps any more (the cache holds the only
    /// reference: a copy-on-write replaced the mapping, or the page was read for an
    /// entry since turned back into a swap entry), looking at up to `budget` cache
    /// entries from where the last call stopped. The slots keep their data. Returns
    /// the frames freed.
    pub fn shrink_cache(&self, budget: usize, frames: &Frames) -> usize {
        let mut freed = 0;
        for area in self.areas.read().iter().flatten() {
            let mut inner = area.inner.lock();
            let start = area.shrink_cursor.load(Ordering::Relaxed);
            let mut next = 0;
            let mut unmapped = Vec::new();
            for (i, (&slot, c)) in inner.cache.range(start..).enumerate() {
                if i == budget {
                    next = slot;
                    break;
                }
                if let (CacheState::Clean, Some(pfn)) = (&c.state, c.pfn) {
                    if frames.count(pfn) == 1 {
                        unmapped.push((slot, pfn));
                    }
                }
            }
            area.shrink_cursor.store(next, Ordering::Relaxed);
            for (slot, pfn) in unmapped {
                inner.cache.remove(&slot);
                inner.by_pfn.remove(&pfn.0);
                inner.slots.clear_cached(slot);
                if frames.put(pfn) {
                    freed += 1;
                }
            }
        }
        freed
    }

    /// One more entry names `entry` (fork); false if it cannot (the copy fails).
    pub fn dup(&self, entry: SwapEntry) -> bool {
        self.area(entry.area())
            .is_some_and(|a| a.inner.lock().slots.dup(entry.slot()))
    }

    /// An entry naming `entry` was removed (munmap, exit): the slot is freed with
    /// its last entry, and its cached page with it.
    pub fn release(&self, entry: SwapEntry, frames: &Frames) {
        let Some(area) = self.area(entry.area()) else {
            return;
        };
        let mut inner = area.inner.lock();
        if inner.slots.put(entry.slot()) == 0 && inner.slots.cached(entry.slot()) {
            SwapArea::uncache(&mut inner, entry.slot(), frames);
        }
    }

    /// Whether the swap cache holds `entry`'s page up to date in memory (`mincore` of
    /// a swapped page, as Linux's `mincore_page` of the swap cache): cached clean,
    /// being written or left unwritten; not while its read is in flight.
    pub fn holds_page(&self, entry: SwapEntry) -> bool {
        self.area(entry.area()).is_some_and(|a| {
            a.inner.lock().cache.get(&entry.slot()).is_some_and(|c| {
                c.pfn.is_some()
                    && matches!(
                        c.state,
                        CacheState::Clean | CacheState::Writeback | CacheState::Unwritten
                    )
            })
        })
    }

    /// Whether the swap cache holds frame `pfn` (a page read back or being written
    /// out that an entry maps), and if so whether its write to the device is in
    /// flight: `Some(true)` while written, `Some(false)` otherwise, `None` when no
    /// area's cache holds it (`/proc/<pid>/numa_maps`' `swapcache` and `writeback`).
    pub fn cache_state_of(&self, pfn: Pfn) -> Option<bool> {
        self.areas.read().iter().flatten().find_map(|a| {
            let inner = a.inner.lock();
            let slot = inner.by_pfn.get(&pfn.0)?;
            let c = inner.cache.get(slot).filter(|c| c.pfn == Some(pfn))?;
            Some(matches!(c.state, CacheState::Writeback))
        })
    }

    /// Entries naming `entry`'s slot (tests and `/proc` figures).
    pub fn refs(&self, entry: SwapEntry) -> u16 {
        self.area(entry.area())
            .map_or(0, |a| a.inner.lock().slots.refs(entry.slot()))
    }

    /// Starts reading `entry`'s page into `pfn` (already in the cache as reading).
    /// Starts a read-ahead of `slot` into the free frame `pfn`, which the swap cache
    /// then holds until a fault or lookup takes it or the cache is shrunk; when the
    /// slot was freed or is cached already, `pfn` goes back instead. The anonymous and
    /// the shmem swap-in both read ahead through here.
    pub(crate) fn read_ahead_into(
        &self,
        area: &Arc<SwapArea>,
        slot: u64,
        pfn: Pfn,
        frames: &Arc<Frames>,
    ) {
        {
            let mut inner = area.inner.lock();
            if inner.slots.refs(slot) == 0 || inner.cache.contains_key(&slot) {
                drop(inner);
                frames.put(pfn);
                return;
            }
            inner.cache.insert(
                slot,
                Cached {
                    pfn: Some(pfn),
                    state: CacheState::Reading(Completion::new()),
                    dropped: false,
                    read_ahead: true,
                },
            );
            inner.slots.set_cached(slot);
            inner.by_pfn.insert(pfn.0, slot);
        }
        self.stats.readahead.fetch_add(1, Ordering::Relaxed);
        self.start_read(area.clone(), slot, pfn, frames.clone());
    }

    fn start_read(&self, area: Arc<SwapArea>, slot: u64, pfn: Pfn, frames: Arc<Frames>) {
        let Some(spawner) = self.spawner.get() else {
            // No executor to run the read: the faults fail rather than hang.
            log::error!("swap: no spawner; slot {slot} cannot be read");
            area.finish_read(slot, false, &frames, &self.stats);
            return;
        };
        let stats = self.stats.clone();
        stats.reads.fetch_add(1, Ordering::Relaxed);
        spawner.spawn(Box::pin(async move {
            let ok = match area.take_buf() {
                Some(buf) => match area.device.read(SwapArea::sector(slot), buf).await {
                    Ok(buf) => {
                        frames.write(pfn, 0, &buf);
                        area.return_buf(buf);
                        true
                    }
                    Err(_) => false,
                },
                None => false,
            };
            area.finish_read(slot, ok, &frames, &stats);
        }));
    }
}

#[cfg(test)]
pub(crate) mod tests;
