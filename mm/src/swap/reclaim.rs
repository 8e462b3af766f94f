//! Reclaim of anonymous memory: a clock over page-table entries.
//!
//! There is no reverse map from frames to the entries mapping them, so reclaim works
//! the way Linux's multi-generational LRU does its page-table walks: it walks each
//! address space's private anonymous VMAs from a cursor (the clock hand), reading the
//! hardware accessed bit of every present entry. A page touched since the hand last
//! passed has its bit cleared and stays (second chance); a page not touched, mapped
//! by this entry alone, and on the node being reclaimed becomes a swap entry, its
//! frame held by the swap cache until [`Swap::write_out`] has written it.
//!
//! Transparent huge pages age whole (the huge entry's accessed bit) and are split
//! when the hand finds one untouched; their 4 KiB pages then go like any other.
//!
//! Private mappings of files (a disk file, a tmpfs file or memfd, a program's data
//! segment mapped `MAP_PRIVATE`) hold two kinds of page: the page-cache page, mapped
//! read-only until written, which belongs to the page cache's own reclaim; and the
//! private copy a write made, which is anonymous memory (Linux's `PageAnon` in the
//! VMA's `anon_vma`). The hand takes the private copies to swap like any anonymous
//! page, and tells them apart by asking the page cache which frame it holds for the
//! page's file index ([`FileRange::is_private_copy`]); the fault path maps a swap
//! entry back from swap whatever the VMA's backing, so the written bytes come back,
//! never the file's. A cold page-cache page such a mapping maps is unmapped (as a
//! shared shmem mapping's are), so the page cache's reclaim can drop it and a later
//! fault maps it again from the file.
//!
//! Shared mappings of files on a disk hold page-cache pages only. The hand ages their
//! entries too and unmaps a cold one, so the page cache's reclaim can drop the page
//! once no mapping holds it (Linux reclaims a mapped file folio after unmapping it
//! through the reverse map); a later fault finds it in the cache, or reads it from
//! the disk again. Such mappings cannot write their file (the disk filesystems are
//! read-only, so the descriptor behind a `MAP_SHARED` mapping is too, and the VMA has
//! no `VM_SHARED`): no page of theirs is dirty. A shared writable mapping of a regular
//! file is left alone (with no writeback, its page could hold the only copy of a
//! write), and so is a shared mapping of a file in memory (an initramfs file), whose
//! cache nothing drops.
//!
//! With no swap room the hand passes over the mappings of disk files only, unmapping
//! their cold page-cache pages (anonymous memory and shmem have nowhere to go), so
//! memory full of mapped file pages is reclaimed without swap as on Linux.
//!
//! Never reclaimed: `VM_LOCKED` VMAs (mlock), frames with other owners (copy-on-write
//! shares, KSM stable pages, page-cache pages: their count is above one), entries
//! being copied (`BUSY`), shared writable mappings of regular files, shared mappings
//! of files in memory, and hugetlb memory (never swapped, private or shared).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::Poll;

use super::{CacheState, Cached, Swap, SwapArea, SwapEntry, SwapStats};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::block::{BlockError, BlockFuture, IoBuf};
use crate::frame::{Pfn, PAGE_SIZE};
use crate::pagecache::{FileKind, FileObject};
use crate::pagetable::{PageTable, PteFlags};
use crate::phys::{Frames, PAGE_BYTES};
use crate::tlb::TlbBatch;
use crate::vma::{Backing, VmFlags};

/// Entries looked at per page-table scan call.
const SCAN_CHUNK_PAGES: u64 = 64;

/// A page taken out of an address space: its entry is now `slot` of `area`, and the
/// swap cache holds `pfn` until the write ends.
pub struct PageOut {
    pub(super) area: Arc<SwapArea>,
    pub(super) slot: u64,
    pub(super) pfn: Pfn,
}

impl PageOut {
    /// The entry the page is now under.
    pub fn entry(&self) -> SwapEntry {
        SwapEntry::new(self.area.id, self.slot)
    }

    /// Its frame.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }
}

/// How much a scan may do, and what it freed at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanBudget {
    /// Present entries it may look at.
    pub scan: usize,
    /// Pages it may take.
    pub take: usize,
    /// Frames freed without a write: pages mapped from the swap cache whose entries
    /// went back to swap entries (the device already holds them).
    pub freed: usize,
}

/// What [`Swap::write_out`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Pages written.
    pub written: usize,
    /// Frames freed by it.
    pub freed: usize,
    /// Writes that failed (their pages stay in memory).
    pub failed: usize,
}

impl<P: PageTable> AddressSpace<P> {
    /// Moves the clock hand `cursor` over this address space's private anonymous
    /// pages (with the private copies in private file mappings), its shared shmem
    /// mappings and the page-cache pages its file mappings map: clears the accessed
    /// bit of pages in use, and takes pages not used since the last pass whose frame
    /// `on_node` accepts, pushing them on `out` (the caller writes them with
    /// [`Swap::write_out`]); cold page-cache pages are unmapped instead. With no swap
    /// room it passes over the mappings of disk files only. Returns true when the hand
    /// went past the last VMA (it restarts at 0). Runs under the tree's read lock,
    /// beside faults.
    pub fn reclaim_scan(
        &self,
        cursor: &mut u64,
        budget: &mut ScanBudget,
        on_node: &dyn Fn(Pfn) -> bool,
        out: &mut Vec<PageOut>,
    ) -> bool {
        let swap = self.tunables().swap().clone();
        let st = self.state().read();
        let mut batch = TlbBatch::new();
        let mut unmapped = Vec::new();
        let mut target = None;
        // Private anonymous VMAs, private copies in private file VMAs, shared
        // mappings of shmem objects (whose cold entries are unmapped, for the shmem
        // scan to take the pages: `super::shmem`) and the page-cache pages of file
        // mappings (unmapped, for the file cache's reclaim). Without swap room only
        // the last can free anything.
        let swap_room = swap.has_room();
        let ranges: Vec<(u64, u64, ScanKind)> = st
            .tree
            .iter()
            .filter(|v| {
                v.end > *cursor && !v.flags.contains(VmFlags::LOCKED) && v.interceptor.is_none()
            })
            .filter_map(|v| Some((v.start.max(*cursor), v.end, ScanKind::of(v)?)))
            .filter(|(_, _, kind)| swap_room || kind.frees_without_swap())
            .collect();
        let mut wrapped = true;
        'vmas: for (start, end, kind) in ranges {
            let mut at = start;
            while at < end {
                if budget.scan == 0 || budget.take == 0 {
                    *cursor = at;
                    wrapped = false;
                    break 'vmas;
                }
                let chunk_end = end.min(at + SCAN_CHUNK_PAGES * PAGE_SIZE);
                let mut present = Vec::new();
                let mut huge_leaves = Vec::new();
                self.page_table().scan_leaves(
                    VirtAddr::new(at),
                    VirtAddr::new(chunk_end),
                    &mut |va, pte, huge| {
                        if !huge {
                            present.push((va, pte));
                        } else if va >= VirtAddr::new(at) {
                            // Each leaf once per pass: in the chunk holding its start.
                            huge_leaves.push((va, pte));
                        }
                    },
                );
                // A transparent huge page ages as one: touched since the hand last
                // passed, it loses its accessed bit and stays whole; untouched, it is
                // split (Linux splits a large folio it cannot swap whole) and its 4 KiB
                // pages go the way of the others, this pass.
                for (va, pte) in huge_leaves {
                    budget.scan = budget.scan.saturating_sub(1);
                    if self.age_huge(va.as_u64(), pte, on_node) {
                        self.page_table().scan_leaves(
                            va.max(VirtAddr::new(at)),
                            VirtAddr::new(chunk_end),
                            &mut |va, pte, huge| {
                                if !huge && va < VirtAddr::new(chunk_end) {
                                    present.push((va, pte));
                                }
                            },
                        );
                    }
                }
                for (va, pte) in present {
                    budget.scan = budget.scan.saturating_sub(1);
                    match &kind {
                        ScanKind::Anon => {}
                        ScanKind::PrivateFile(r) if r.is_private_copy(va.as_u64(), pte.pfn) => {
                            if !swap_room {
                                continue;
                            }
                        }
                        // The page cache's own page (a shared shmem mapping's, one a
                        // private mapping read and never wrote, or a shared disk file
                        // mapping's): unmapped when cold, for the shmem scan or the file
                        // cache's reclaim to take (a fault maps it again from the cache
                        // or reads it from the file, as on Linux).
                        ScanKind::Shmem(r) | ScanKind::PrivateFile(r) | ScanKind::SharedFile(r) => {
                            self.try_unmap_cached(
                                &r.file,
                                r.index(va.as_u64()),
                                va.as_u64(),
                                pte,
                                on_node,
                                &mut batch,
                                &mut unmapped,
                            );
                            continue;
                        }
                    }
                    if self.try_page_out(
                        &swap,
                        va.as_u64(),
                        pte,
                        on_node,
                        &mut batch,
                        out,
                        &mut unmapped,
                        &mut target,
                    ) {
                        budget.take -= 1;
                        if budget.take == 0 {
                            break;
                        }
                    }
                }
                at = chunk_end;
            }
        }
        if wrapped {
            *cursor = 0;
        }
        drop(st);
        budget.freed += self.settle_unmapped(batch, unmapped);
        wrapped
    }

    /// The clock hand at the huge leaf `pte` at `va`: clears its accessed bit if set
    /// (it stays whole), else splits it into 4 KiB entries for reclaim to take; true
    /// if it split. Leaves on another node, `BUSY` or hugetlb leaves are left alone.
    fn age_huge(&self, va: u64, pte: crate::pagetable::Pte, on_node: &dyn Fn(Pfn) -> bool) -> bool {
        let pt = self.page_table();
        if pte.flags.intersects(PteFlags::BUSY | PteFlags::HUGETLB) || !on_node(pte.pfn) {
            return false;
        }
        if pte.flags.contains(PteFlags::ACCESSED) {
            let young = pte.with_flags(pte.flags - PteFlags::ACCESSED);
            let _ = pt.replace_huge(VirtAddr::new(va), pte, young);
            return false;
        }
        pt.split_huge(VirtAddr::new(va))
    }

    /// After a scan: flushes the TLB for the entries it turned into swap entries (once
    /// no CPU can write through a stale translation, the frames are stable for the
    /// write), then drops their frame references. Returns the frames freed at once.
    fn settle_unmapped(&self, mut batch: TlbBatch, unmapped: Vec<Unmapped>) -> usize {
        batch.flush(&**self.tlb());
        let mut freed = 0;
        for u in unmapped {
            match u {
                Unmapped::Written(pfn) => {
                    self.frames().put(pfn);
                }
                Unmapped::Cached(area, slot, pfn) => {
                    if area.unmapped_clean(slot, pfn, self.frames()) {
                        freed += 1;
                    }
                }
            }
        }
        freed
    }

    /// The parts within `[start, end)` of the unlocked VMAs holding anonymous memory
    /// that reclaim could take: private anonymous VMAs, and private file VMAs (whose
    /// private copies only are taken; the [`FileRange`] tells them apart).
    fn reclaimable_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64, Option<FileRange>)> {
        self.state()
            .read()
            .tree
            .iter()
            .filter(|v| {
                v.end > start
                    && v.start < end
                    && !v.flags.contains(VmFlags::LOCKED)
                    && v.interceptor.is_none()
            })
            .filter_map(|v| {
                let file = match ScanKind::of(v)? {
                    ScanKind::Anon => None,
                    ScanKind::PrivateFile(f) => Some(f),
                    ScanKind::Shmem(_) | ScanKind::SharedFile(_) => return None,
                };
                Some((v.start.max(start), v.end.min(end), file))
            })
            .collect()
    }

    /// `MADV_COLD`: clears the accessed bit of the pages in `[start, end)` that
    /// reclaim could take, so its next pass takes them without a second chance.
    /// Returns the pages made cold.
    pub fn make_cold(&self, start: u64, end: u64) -> usize {
        let mut n = 0;
        for (s, e, file) in self.reclaimable_ranges(start, end) {
            let mut present = Vec::new();
            let mut huge_leaves = Vec::new();
            self.page_table().scan_leaves(
                VirtAddr::new(s),
                VirtAddr::new(e),
                &mut |va, pte, huge| {
                    if pte.flags.contains(PteFlags::ACCESSED) {
                        if huge {
                            huge_leaves.push((va, pte));
                        } else {
                            present.push((va, pte.pfn));
                        }
                    }
                },
            );
            // The page cache is asked outside the page-table walk.
            if let Some(f) = &file {
                present.retain(|&(va, pfn)| f.is_private_copy(va.as_u64(), pfn));
            }
            // A huge page goes cold whole (reclaim splits it when it comes by).
            for (va, pte) in huge_leaves {
                if !pte.flags.contains(PteFlags::HUGETLB) {
                    let cold = pte.with_flags(pte.flags - PteFlags::ACCESSED);
                    n += usize::from(self.page_table().replace_huge(va, pte, cold).is_ok());
                }
            }
            for (va, _) in present {
                self.page_table()
                    .update_flags(va, &mut |f| f - PteFlags::ACCESSED);
                n += 1;
            }
        }
        n
    }

    /// `MADV_PAGEOUT`: takes the pages of `[start, end)` that reclaim could take, now
    /// and without a second chance, pushing them on `out` for [`Swap::write_out`] (the
    /// caller writes them). Returns the frames freed at once (pages already cached
    /// clean go back to their slots without a write). With no swap room, nothing goes.
    pub fn page_out(&self, start: u64, end: u64, out: &mut Vec<PageOut>) -> usize {
        let swap = self.tunables().swap().clone();
        let ranges = self.reclaimable_ranges(start, end);
        let st = self.state().read();
        let mut batch = TlbBatch::new();
        let mut unmapped = Vec::new();
        let mut target = None;
        for (s, e, file) in ranges {
            // Huge pages in the range are split first (Linux splits a large folio it
            // cannot swap whole); only their pages inside the range then go.
            let mut huge_leaves = Vec::new();
            self.page_table().scan_leaves(
                VirtAddr::new(s),
                VirtAddr::new(e),
                &mut |va, pte, huge| {
                    if huge && !pte.flags.intersects(PteFlags::HUGETLB | PteFlags::BUSY) {
                        huge_leaves.push(va);
                    }
                },
            );
            for va in huge_leaves {
                self.page_table().split_huge(va);
            }
            let mut present = Vec::new();
            self.page_table().scan_leaves(
                VirtAddr::new(s),
                VirtAddr::new(e),
                &mut |va, pte, huge| {
                    if !huge {
                        present.push((va, pte));
                    }
                },
            );
            if let Some(f) = &file {
                present.retain(|&(va, pte)| f.is_private_copy(va.as_u64(), pte.pfn));
            }
            for (va, mut pte) in present {
                if pte.flags.contains(PteFlags::ACCESSED) {
                    self.page_table()
                        .update_flags(va, &mut |f| f - PteFlags::ACCESSED);
                    pte.flags -= PteFlags::ACCESSED;
                }
                self.try_page_out(
                    &swap,
                    va.as_u64(),
                    pte,
                    &|_| true,
                    &mut batch,
                    out,
                    &mut unmapped,
                    &mut target,
                );
            }
        }
        drop(st);
        self.settle_unmapped(batch, unmapped)
    }

    /// One entry under the clock hand; true if its page was taken for writing.
    /// A frame mapped elsewhere too (shared since a fork) goes as well: the swap
    /// cache keeps it while other entries map it, and the next pass over those turns
    /// them into the same swap entry; a page already cached clean goes back to its
    /// slot without a write. Every entry changed here has its frame reference in
    /// `unmapped`, dropped once the batch is flushed.
    #[allow(clippy::too_many_arguments)]
    fn try_page_out(
        &self,
        swap: &Swap,
        va: u64,
        pte: crate::pagetable::Pte,
        on_node: &dyn Fn(Pfn) -> bool,
        batch: &mut TlbBatch,
        out: &mut Vec<PageOut>,
        unmapped: &mut Vec<Unmapped>,
        target: &mut Option<Arc<SwapArea>>,
    ) -> bool {
        let pt = self.page_table();
        if pte.flags.contains(PteFlags::BUSY) || !pte.flags.contains(PteFlags::READ) {
            return false;
        }
        if pte.flags.contains(PteFlags::ACCESSED) {
            pt.update_flags(VirtAddr::new(va), &mut |f| f - PteFlags::ACCESSED);
            return false;
        }
        let frames = self.frames();
        if !on_node(pte.pfn) {
            return false;
        }
        match swap.claim_cached(pte.pfn) {
            Some(Some((area, slot))) => {
                if pt
                    .install_swap(VirtAddr::new(va), pte, SwapEntry::new(area.id, slot))
                    .is_ok()
                {
                    batch.add_page(VirtAddr::new(va));
                    unmapped.push(Unmapped::Cached(area, slot, pte.pfn));
                } else {
                    area.unclaim(slot);
                }
                return false;
            }
            Some(None) => return false,
            None => {}
        }
        if frames.count(pte.pfn) != 1 && self.tunables().ksm().is_stable(pte.pfn) {
            return false;
        }
        // The area the last page went to, while it has room.
        let mut tries = 0;
        let (area, slot) = loop {
            let area = match target {
                Some(a) => a.clone(),
                None => {
                    *target = swap.alloc_slot();
                    match target {
                        Some(a) => a.clone(),
                        None => return false,
                    }
                }
            };
            let mut inner = area.inner.lock();
            let Some(slot) = inner.slots.alloc() else {
                drop(inner);
                *target = None;
                tries += 1;
                if tries == 2 {
                    return false;
                }
                continue;
            };
            // In the cache before the entry names the slot, so a fault that finds the
            // entry always finds the page. The cache holds its own reference.
            frames.get(pte.pfn);
            inner.cache.insert(
                slot,
                Cached {
                    pfn: Some(pte.pfn),
                    state: CacheState::Writeback,
                    dropped: false,
                    read_ahead: false,
                },
            );
            inner.by_pfn.insert(pte.pfn.0, slot);
            drop(inner);
            break (area, slot);
        };
        let entry = SwapEntry::new(area.id, slot);
        if pt.install_swap(VirtAddr::new(va), pte, entry).is_err() {
            // The entry changed (touched, written, unmapped): leave it.
            let mut inner = area.inner.lock();
            inner.cache.remove(&slot);
            inner.by_pfn.remove(&pte.pfn.0);
            inner.slots.put(slot);
            inner.slots.clear_cached(slot);
            drop(inner);
            frames.put(pte.pfn);
            return false;
        }
        batch.add_page(VirtAddr::new(va));
        unmapped.push(Unmapped::Written(pte.pfn));
        out.push(PageOut {
            area,
            slot,
            pfn: pte.pfn,
        });
        true
    }
}

/// What the clock hand does in a VMA.
enum ScanKind {
    /// Private anonymous memory: every page may go to swap.
    Anon,
    /// A private mapping of a file: its private copies may go to swap, its cold
    /// page-cache pages are unmapped (the page cache's reclaim drops them then).
    PrivateFile(FileRange),
    /// A shared mapping of a shmem object: cold entries are unmapped for the shmem
    /// scan to take the pages.
    Shmem(FileRange),
    /// A shared mapping of a file on a disk that cannot write it: cold entries are
    /// unmapped, for the page cache's reclaim to drop the pages (clean: nothing
    /// wrote them).
    SharedFile(FileRange),
}

impl ScanKind {
    /// How reclaim treats `vma`, `None` if it leaves it alone: hugetlb memory (never
    /// swapped), shared writable mappings of regular files (no writeback keeps a
    /// write), and shared mappings of files in memory (their cache drops nothing).
    fn of(vma: &crate::vma::Vma) -> Option<ScanKind> {
        if vma.hugetlb.is_some() {
            return None;
        }
        let range = |file: &Arc<FileObject>| FileRange {
            file: file.clone(),
            vma_start: vma.start,
            pgoff: vma.pgoff,
        };
        match &vma.backing {
            Backing::Anon if vma.is_private() => Some(ScanKind::Anon),
            Backing::File(f) if vma.is_private() && f.hugetlb().is_none() => {
                Some(ScanKind::PrivateFile(range(f)))
            }
            Backing::File(f) if shmem_swappable(vma) => Some(ScanKind::Shmem(range(f))),
            Backing::File(f) if shared_file_droppable(vma, f) => {
                Some(ScanKind::SharedFile(range(f)))
            }
            _ => None,
        }
    }

    /// Whether unmapping this VMA's cold pages can free memory without swap: the
    /// page-cache pages of a disk file's mappings, which its cache's reclaim drops
    /// once unmapped (and reads again from the disk when needed).
    fn frees_without_swap(&self) -> bool {
        match self {
            ScanKind::PrivateFile(r) | ScanKind::SharedFile(r) => r.file.is_async(),
            ScanKind::Anon | ScanKind::Shmem(_) => false,
        }
    }
}

/// A file-backed VMA under the clock hand: the file and where the VMA maps it.
struct FileRange {
    file: Arc<FileObject>,
    vma_start: u64,
    pgoff: u64,
}

impl FileRange {
    /// The file page mapped at `va`.
    fn index(&self, va: u64) -> u64 {
        self.pgoff + (va - self.vma_start) / PAGE_SIZE
    }

    /// Whether the frame `pfn` mapped at `va` of a private mapping is a private copy
    /// (anonymous memory, written since it was mapped) rather than the page cache's
    /// page of the file. The cache never takes a private copy in, so a frame that is
    /// not the cache's page for this index is private (a page the cache let go while
    /// it stayed mapped is the process's alone as well).
    fn is_private_copy(&self, va: u64, pfn: Pfn) -> bool {
        self.file.cache().peek(self.index(va)) != Some(pfn)
    }
}

/// Whether reclaim ages and unmaps `vma`'s entries for shmem swap: a shared mapping
/// of a shmem object that is not a hugetlb file.
fn shmem_swappable(vma: &crate::vma::Vma) -> bool {
    !vma.is_private()
        && vma
            .file()
            .is_some_and(|f| f.kind() == FileKind::Shmem && f.hugetlb().is_none())
}

/// Whether reclaim ages and unmaps `vma`'s entries for the page cache's reclaim: a
/// shared mapping of a regular file on a disk (its pages read back from the disk by
/// I/O tasks) that cannot write the file (no `VM_SHARED`, so no page of it is dirty).
fn shared_file_droppable(vma: &crate::vma::Vma, file: &FileObject) -> bool {
    !vma.is_private()
        && !vma.flags.contains(VmFlags::SHARED)
        && file.kind() == FileKind::Regular
        && file.hugetlb().is_none()
        && file.is_async()
}

/// An entry `reclaim_scan` turned into a swap entry, whose frame reference is dropped
/// after the flush.
pub(super) enum Unmapped {
    /// Its page is being written (the cache holds the frame meanwhile), or it was a
    /// shmem page left in its page cache.
    Written(Pfn),
    /// Its page was already cached clean in `slot` of the area.
    Cached(Arc<SwapArea>, u64, Pfn),
}

/// The most pages one write request carries.
pub(super) const MAX_RUN_PAGES: usize = 32;

/// Most write requests one [`Swap::write_out`] keeps in flight: their buffers come
/// from the kernel heap (32 pages each, so 8 MiB at most), and the rest of the runs
/// wait their turn. With every run in flight at once, paging out a large range
/// (MADV_PAGEOUT of 150 MiB) took as much heap as it was freeing memory.
pub(super) const MAX_WRITES_IN_FLIGHT: usize = 64;

/// One request in flight: the pages it carries (consecutive slots of one area).
type Write = (Vec<PageOut>, BlockFuture);

/// A buffer for `pages` pages: one of the area's own for a single page, else from the
/// heap (`None` if the heap cannot give it).
fn run_buf(area: &SwapArea, pages: usize) -> Option<IoBuf> {
    if pages == 1 {
        return area.take_buf();
    }
    let mut v = Vec::new();
    v.try_reserve_exact(pages * PAGE_BYTES).ok()?;
    v.resize(pages * PAGE_BYTES, 0u8);
    Some(v.into_boxed_slice())
}

impl Swap {
    /// Writes the pages `reclaim_scan` took, up to [`MAX_WRITES_IN_FLIGHT`] requests
    /// in flight at once, and frees each frame whose page nobody mapped again
    /// meanwhile. Pages on
    /// consecutive slots go in one request (up to [`MAX_RUN_PAGES`]), as the block
    /// layer merges them on Linux. A page whose write fails stays in memory (in the
    /// swap cache, mapped again by its next fault).
    pub fn write_out(
        &self,
        mut pages: Vec<PageOut>,
        frames: Arc<Frames>,
    ) -> impl Future<Output = WriteOutcome> + Send + 'static {
        let stats = self.stats.clone();
        let mut outcome = WriteOutcome::default();
        pages.sort_by_key(|p| (p.area.id, p.slot));
        // Runs of consecutive slots.
        let mut runs: Vec<Vec<PageOut>> = Vec::new();
        for page in pages {
            match runs.last_mut() {
                Some(run)
                    if run.len() < MAX_RUN_PAGES
                        && run.last().is_some_and(|l| {
                            l.area.id == page.area.id && l.slot + 1 == page.slot
                        }) =>
                {
                    run.push(page)
                }
                _ => runs.push(alloc::vec![page]),
            }
        }
        let mut queued = runs.into_iter();
        let mut writes: Vec<Write> = Vec::new();
        core::future::poll_fn(move |cx| loop {
            while writes.len() < MAX_WRITES_IN_FLIGHT {
                let Some(run) = queued.next() else { break };
                submit_run(run, &frames, &stats, &mut writes, &mut outcome);
            }
            let before = writes.len();
            writes.retain_mut(|(run, fut)| {
                let result: Result<IoBuf, BlockError> = match Pin::new(fut).poll(cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => return true,
                };
                let area = &run[0].area;
                let ok = match result {
                    Ok(buf) => {
                        area.return_buf(buf);
                        outcome.written += run.len();
                        true
                    }
                    Err(_) => {
                        outcome.failed += run.len();
                        false
                    }
                };
                for page in run.iter() {
                    if area.finish_write(page.slot, ok, &frames, &stats) {
                        outcome.freed += 1;
                    }
                }
                false
            });
            if writes.is_empty() && queued.len() == 0 {
                return Poll::Ready(outcome);
            }
            if writes.len() == before {
                return Poll::Pending;
            }
            // Some finished: their places go to the runs still queued.
        })
    }
}

/// Starts the write of one run of consecutive slots (a request per page when the
/// heap has no room for the run's buffer; the pages stay in memory when not even a
/// page buffer is left).
fn submit_run(
    run: Vec<PageOut>,
    frames: &Frames,
    stats: &SwapStats,
    writes: &mut Vec<Write>,
    outcome: &mut WriteOutcome,
) {
    let area = run[0].area.clone();
    match run_buf(&area, run.len()) {
        Some(mut buf) => {
            for (i, page) in run.iter().enumerate() {
                frames.read(page.pfn, 0, &mut buf[i * PAGE_BYTES..(i + 1) * PAGE_BYTES]);
            }
            stats.writes.fetch_add(1, Ordering::Relaxed);
            let fut = area.device.write(SwapArea::sector(run[0].slot), buf);
            writes.push((run, fut));
        }
        None if run.len() > 1 => {
            for page in run {
                match area.take_buf() {
                    Some(mut buf) => {
                        frames.read(page.pfn, 0, &mut buf);
                        stats.writes.fetch_add(1, Ordering::Relaxed);
                        let fut = area.device.write(SwapArea::sector(page.slot), buf);
                        writes.push((alloc::vec![page], fut));
                    }
                    None => {
                        area.finish_write(page.slot, false, frames, stats);
                        outcome.failed += 1;
                    }
                }
            }
        }
        None => {
            for page in run {
                area.finish_write(page.slot, false, frames, stats);
                outcome.failed += 1;
            }
        }
    }
}

#[cfg(test)]
#[path = "private_file_tests.rs"]
mod private_file_tests;

#[cfg(test)]
#[path = "shared_file_tests.rs"]
mod shared_file_tests;
