//! Hugetlb files: the pages of a hugetlbfs file or a `memfd_create(MFD_HUGETLB)`
//! memfd, drawn from the huge-page pools ([`crate::hugetlb`]).
//!
//! Unlike an anonymous `MAP_HUGETLB` mapping, the pages belong to the file: every
//! shared mapping of it, in any process and at any address, maps the same page for
//! the same file index, and the pages stay (holding the data) after the last mapping
//! goes, until the file shrinks or is gone. Reservations follow Linux's for shared
//! hugetlb mappings: an `mmap` reserves the pages of its range that the file has
//! neither reserved nor allocated yet (`HugePages_Rsvd`; all or nothing, `ENOMEM`),
//! a fault consumes the reservation of its index, and the reservations stay with the
//! file after `munmap` (a later mapping of the range needs none) until a truncation
//! below them or the file's end gives them back.
//!
//! The size is the file's: `ftruncate` moves it only in whole huge pages (anything
//! else is `EINVAL`, checked by the caller; `fallocate` may grow it to any byte), and a
//! fault in a page not wholly below it is `SIGBUS`. A shrink or a hole punch drops the
//! pages and reservations there and unmaps the pages from every mapping, shared or
//! private ([`set_unmap_hook`], `crate::aspace::AddressSpace::unmap_hugetlb_file_range`).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::frame::{Pfn, Policy};
use crate::hugetlb::{HugeSize, HugetlbSource, NoHugePage};
use crate::phys::{Frames, PAGE_BYTES};

/// How the pages a file drops leave every address space's mappings (the kernel walks
/// its processes: there is no reverse map): called with the file and what it dropped,
/// after they left the file and before the file's references on them go.
pub type UnmapHook = fn(&HugetlbFile, &DroppedPages);

/// The file indexes `[first, end)` a file dropped, and the pages it held there.
pub struct DroppedPages {
    /// The first index dropped.
    pub first: u64,
    /// One past the last index dropped (`u64::MAX`: to the end).
    pub end: u64,
    /// The file's pages that were there, by first frame, sorted.
    pages: Vec<Pfn>,
}

impl DroppedPages {
    /// Whether `head` was one of the file's pages (not a private mapping's own copy).
    pub fn was_file_page(&self, head: Pfn) -> bool {
        self.pages.binary_search(&head).is_ok()
    }
}

static UNMAP_HOOK: spin::Once<UnmapHook> = spin::Once::new();

/// Times any hugetlb file dropped pages (see [`changes`]).
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// Installs the kernel's [`UnmapHook`] (once, at boot; later calls are ignored).
pub fn set_unmap_hook(hook: UnmapHook) {
    UNMAP_HOOK.call_once(|| hook);
}

/// How many times a hugetlb file has dropped pages since boot: a fork reads it before
/// it copies and again once its child is listed where the [`UnmapHook`] looks, and
/// runs [`AddressSpace::unmap_stale_hugetlb`](crate::aspace::AddressSpace::unmap_stale_hugetlb)
/// on the child if it moved (the child may hold a page a walk did not reach).
pub fn changes() -> u64 {
    CHANGES.load(Ordering::SeqCst)
}

/// The huge pages of one file.
pub struct HugetlbFile {
    size: HugeSize,
    pub(crate) source: Arc<dyn HugetlbSource>,
    pub(crate) frames: Arc<Frames>,
    /// Bytes; always a multiple of the page size.
    size_bytes: AtomicU64,
    /// Pages the file may hold at most (a hugetlbfs mount's `size=`), if limited.
    max_pages: Option<u64>,
    state: Mutex<FileState>,
}

#[derive(Default)]
struct FileState {
    /// Allocated pages by file index; each holds one reference for the file.
    pages: BTreeMap<u64, Pfn>,
    /// Indexes reserved by a mapping and not yet allocated.
    reserved: BTreeSet<u64>,
}

impl FileState {
    /// Indexes the file has neither allocated nor reserved in `[first, end)`.
    fn uncovered(&self, first: u64, end: u64) -> Vec<u64> {
        (first..end)
            .filter(|i| !self.pages.contains_key(i) && !self.reserved.contains(i))
            .collect()
    }

    fn covered(&self) -> u64 {
        (self.pages.len() + self.reserved.len()) as u64
    }
}

/// The name Linux gives the file behind anonymous hugetlb memory (`MAP_HUGETLB`).
pub const ANON_HUGETLB_PATH: &str = "/anon_hugepage (deleted)";

impl HugetlbFile {
    /// An empty file of `size` pages from `source`; with `max_pages`, it never holds
    /// or reserves more than that many.
    pub fn new(
        size: HugeSize,
        source: Arc<dyn HugetlbSource>,
        frames: Arc<Frames>,
        max_pages: Option<u64>,
    ) -> Arc<HugetlbFile> {
        Arc::new(HugetlbFile {
            size,
            source,
            frames,
            size_bytes: AtomicU64::new(0),
            max_pages,
            state: Mutex::new(FileState::default()),
        })
    }

    /// The page size.
    pub fn huge_size(&self) -> HugeSize {
        self.size
    }

    /// Page size in bytes.
    pub fn page_bytes(&self) -> u64 {
        self.size.order().bytes()
    }

    /// The size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Allocated pages.
    pub fn pages_held(&self) -> u64 {
        self.state.lock().pages.len() as u64
    }

    /// Sets the size (`ftruncate` allows only multiples of the page size; `fallocate`
    /// may grow it to any byte): pages and reservations at or past
    /// the new end go back to the pool, and every mapping loses its pages there (see
    /// [`set_unmap_hook`]; a page goes back with its last mapping).
    pub fn set_size(&self, bytes: u64) {
        // Only `fallocate` makes a size off a page boundary (as on Linux); a fault
        // in the last partial page is past the end.
        let first_gone = bytes.div_ceil(self.page_bytes());
        let old = self.size_bytes.swap(bytes, Ordering::AcqRel);
        // Pages `fallocate(KEEP_SIZE)` put past the end go even when the size stays,
        // as Linux's `hugetlb_vmtruncate`; no mapping can map those.
        self.remove_pages(first_gone, u64::MAX, bytes < old);
    }

    /// Grows the size to `bytes` if it is smaller (a writable mapping or `fallocate`
    /// past the end): unlike [`set_size`](Self::set_size), pages past the new end
    /// (`fallocate(KEEP_SIZE)`'s) stay, as Linux's `i_size_write` there.
    pub fn grow_to(&self, bytes: u64) {
        self.size_bytes.fetch_max(bytes, Ordering::AcqRel);
    }

    /// Punches a hole over indexes `[first, end)` (`fallocate(PUNCH_HOLE)`): their
    /// pages and reservations go back to the pool and every mapping loses its pages
    /// there; the size stays.
    pub fn punch_hole(&self, first: u64, end: u64) {
        if first < end {
            self.remove_pages(first, end, true);
        }
    }

    /// Punches a hole over the bytes `[offset, end)`, as Linux's
    /// `hugetlbfs_punch_hole` (`fallocate(PUNCH_HOLE)`, and `MADV_REMOVE` over a range
    /// of a hugetlb mapping, aligned or not): the huge pages it covers whole go
    /// ([`punch_hole`](Self::punch_hole)), and the bytes of those it covers in part
    /// are zeroed in place.
    pub fn punch_bytes(&self, offset: u64, end: u64) {
        if offset >= end {
            return;
        }
        let page = self.page_bytes();
        let hole_start = offset.next_multiple_of(page);
        let hole_end = end - end % page;
        if offset < hole_start {
            self.zero_range(offset, end.min(hole_start) - offset);
        }
        if end > hole_end && end > hole_start {
            self.zero_range(hole_end, end - hole_end);
        }
        if hole_end > hole_start {
            self.punch_hole(hole_start / page, hole_end / page);
        }
    }

    /// Drops the pages and reservations of indexes `[first, end)`, then, with
    /// `unmap`, unmaps them everywhere before the file's references on them go (so a
    /// page cannot be reused while mappings are told which pages were the file's).
    fn remove_pages(&self, first: u64, end: u64, unmap: bool) {
        let mut st = self.state.lock();
        let mut gone_pages = st.pages.split_off(&first);
        let mut kept = gone_pages.split_off(&end);
        st.pages.append(&mut kept);
        let mut gone_reserved = st.reserved.split_off(&first);
        let mut kept = gone_reserved.split_off(&end);
        st.reserved.append(&mut kept);
        drop(st);
        self.source.unreserve(self.size, gone_reserved.len() as u64);
        let mut pages: Vec<Pfn> = gone_pages.into_values().collect();
        if unmap {
            pages.sort_unstable();
            CHANGES.fetch_add(1, Ordering::SeqCst);
            if let Some(hook) = UNMAP_HOOK.get() {
                let dropped = DroppedPages { first, end, pages };
                hook(self, &dropped);
                pages = dropped.pages;
            }
        }
        for pfn in pages {
            self.release(pfn);
        }
    }

    /// What dropping `[first, end)` would tell the mappings, with the pages the file
    /// holds there now (host tests drive the unmapping themselves).
    #[cfg(test)]
    pub(crate) fn dropped_now(&self, first: u64, end: u64) -> DroppedPages {
        let st = self.state.lock();
        DroppedPages {
            first,
            end,
            pages: st.pages.range(first..end).map(|(_, &p)| p).collect(),
        }
    }

    /// Zeroes `len` bytes from `offset` inside one page of the file, if it holds that
    /// page (the partial pages at the edges of a punched hole).
    pub fn zero_range(&self, offset: u64, len: u64) {
        let index = offset / self.page_bytes();
        debug_assert!((offset % self.page_bytes()) + len <= self.page_bytes());
        let st = self.state.lock();
        let Some(&head) = st.pages.get(&index) else {
            return;
        };
        let zeros = [0u8; PAGE_BYTES];
        let (mut at, end) = (offset % self.page_bytes(), offset % self.page_bytes() + len);
        while at < end {
            let frame = Pfn(head.0 + at / PAGE_BYTES as u64);
            let in_frame = (at % PAGE_BYTES as u64) as usize;
            let n = (PAGE_BYTES - in_frame).min((end - at) as usize);
            self.frames.write(frame, in_frame, &zeros[..n]);
            at += n as u64;
        }
    }

    /// Allocates the pages of indexes `[first, end)` the file does not hold
    /// (`fallocate` without `PUNCH_HOLE`), zeroed, whatever the size: an index's
    /// reservation is used up, else an unreserved free page taken from a node
    /// `policy` allows. `NoHugePage` (the pages allocated so far stay) when the pool
    /// or the file's page limit has no more.
    pub fn allocate(&self, first: u64, end: u64, policy: Policy) -> Result<(), NoHugePage> {
        for index in first..end {
            let mut st = self.state.lock();
            if st.pages.contains_key(&index) {
                continue;
            }
            let reserved = st.reserved.remove(&index);
            if !reserved && self.max_pages.is_some_and(|max| st.covered() >= max) {
                return Err(NoHugePage);
            }
            let Some(pfn) = self.source.take(self.size, reserved, policy) else {
                if reserved {
                    st.reserved.insert(index);
                }
                return Err(NoHugePage);
            };
            self.zero(pfn);
            st.pages.insert(index, pfn);
        }
        Ok(())
    }

    fn zero(&self, head: Pfn) {
        let huge = crate::pagetable::HUGE_PAGES;
        for chunk in 0..self.size.order().pages() / huge {
            self.frames.source().zero_huge(Pfn(head.0 + chunk * huge));
        }
    }

    /// The page the file holds at `index`, if any (no reference taken: to compare).
    pub fn page_at(&self, index: u64) -> Option<Pfn> {
        self.state.lock().pages.get(&index).copied()
    }

    /// Reserves the pages of indexes `[first, first + count)` that the file has
    /// neither allocated nor reserved: false (nothing reserved) when the pool's free
    /// unreserved pages, or the file's page limit, cannot cover them.
    pub fn reserve(&self, first: u64, count: u64) -> bool {
        let Some(end) = first.checked_add(count) else {
            return false;
        };
        let mut st = self.state.lock();
        let need = st.uncovered(first, end);
        if need.is_empty() {
            return true;
        }
        if let Some(max) = self.max_pages {
            if st.covered() + need.len() as u64 > max {
                return false;
            }
        }
        if !self.source.reserve(self.size, need.len() as u64) {
            return false;
        }
        st.reserved.extend(need);
        true
    }

    /// The page at file index `index`, with a reference for the leaf that will map
    /// it: the file's page, or a new zeroed one (consuming the index's reservation,
    /// else taking an unreserved free page from a node `policy` allows). `NoHugePage`
    /// past the end of the file, past its page limit, or when the pool has no page
    /// (SIGBUS).
    pub fn page_for_fault(&self, index: u64, policy: Policy) -> Result<Pfn, NoHugePage> {
        let mut st = self.state.lock();
        if index >= self.size_bytes() / self.page_bytes() {
            return Err(NoHugePage);
        }
        if let Some(&pfn) = st.pages.get(&index) {
            self.frames.get(pfn);
            return Ok(pfn);
        }
        let reserved = st.reserved.remove(&index);
        if !reserved && self.max_pages.is_some_and(|max| st.covered() >= max) {
            return Err(NoHugePage);
        }
        let Some(pfn) = self.source.take(self.size, reserved, policy) else {
            if reserved {
                st.reserved.insert(index);
            }
            return Err(NoHugePage);
        };
        self.zero(pfn);
        st.pages.insert(index, pfn);
        self.frames.get(pfn);
        Ok(pfn)
    }

    /// The page the file holds at `index`, with a reference for the leaf that will
    /// map it (a private mapping reading it), or `None` for a hole. `NoHugePage` past
    /// the end of the file (SIGBUS).
    pub fn existing_page(&self, index: u64) -> Result<Option<Pfn>, NoHugePage> {
        let st = self.state.lock();
        if index >= self.size_bytes() / self.page_bytes() {
            return Err(NoHugePage);
        }
        Ok(st.pages.get(&index).map(|&pfn| {
            self.frames.get(pfn);
            pfn
        }))
    }

    /// Drops a leaf's reference on page `head`; the last goes back to the pool.
    pub fn release(&self, head: Pfn) {
        if self.frames.put_ref(head) {
            self.source.give_back(self.size, head);
        }
    }

    /// Copies bytes from `offset` into `buf` (a `read(2)`): as many as lie before the
    /// end of the file; holes read as zeros.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let size = self.size_bytes();
        if offset >= size {
            return 0;
        }
        let n = buf.len().min((size - offset) as usize);
        let st = self.state.lock();
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let index = at / self.page_bytes();
            let in_page = at % self.page_bytes();
            let frame_in_page = in_page / PAGE_BYTES as u64;
            let in_frame = (in_page % PAGE_BYTES as u64) as usize;
            let chunk = (PAGE_BYTES - in_frame).min(n - done);
            let out = &mut buf[done..done + chunk];
            match st.pages.get(&index) {
                Some(head) => self.frames.read(Pfn(head.0 + frame_in_page), in_frame, out),
                None => out.fill(0),
            }
            done += chunk;
        }
        n
    }
}

impl Drop for HugetlbFile {
    fn drop(&mut self) {
        let st = core::mem::take(&mut *self.state.lock());
        self.source.unreserve(self.size, st.reserved.len() as u64);
        for (_, pfn) in st.pages {
            self.release(pfn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{fork, harness, map_file};
    use crate::fault::hugetlb::tests::with_pool;
    use crate::frame::PAGE_SIZE;
    use crate::pagecache::FileObject;
    use crate::pagetable::{PageTable, HUGE_SIZE};
    use crate::vma::{MapFlags, Prot};

    const HUGE_4K_PAGES: u64 = HUGE_SIZE / PAGE_SIZE;

    #[test]
    fn mappings_share_the_files_pages_which_outlive_them() {
        let h = harness();
        let pool = with_pool(&h, 4);
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), None);
        let file = FileObject::new_hugetlb("/memfd:t (deleted)", pages.clone(), h.frames.clone());
        file.set_size(2 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let a = map_file(&h.aspace, &file, 2 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        assert!(a.is_multiple_of(HUGE_SIZE));
        assert_eq!(pool.counts(), (4, 0, 2), "both pages reserved at mmap");
        h.aspace.write_bytes(a + HUGE_SIZE + 7, b"file").unwrap();
        assert_eq!(pool.counts(), (4, 1, 1));
        // A second mapping of the second page only, in a fork child: same page.
        let child = fork(&h);
        let b = map_file(
            &child,
            &file,
            HUGE_4K_PAGES,
            rw,
            MapFlags::SHARED,
            HUGE_SIZE,
        );
        let mut got = [0u8; 4];
        child.read_bytes(b + 7, &mut got).unwrap();
        assert_eq!(&got, b"file");
        assert_eq!(
            pool.counts(),
            (4, 1, 1),
            "no new reservation for a held page"
        );
        let mut out = [0u8; 4];
        assert_eq!(pages.read_at(HUGE_SIZE + 7, &mut out), 4);
        assert_eq!(&out, b"file");
        // Unmapping everywhere leaves the page and the reservation with the file.
        child.teardown();
        h.aspace.munmap(a, 2 * HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (4, 1, 1));
        assert_eq!(pages.pages_held(), 1);
        // Shrinking gives back what lies past the end: the page (index 1), then the
        // reservation (index 0).
        file.set_size(HUGE_SIZE);
        assert_eq!(pool.counts(), (4, 0, 1));
        file.set_size(0);
        assert_eq!(pool.counts(), (4, 0, 0));
        drop((file, pages));
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn faults_past_the_end_or_the_limit_are_refused() {
        let h = harness();
        let pool = with_pool(&h, 4);
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), Some(1));
        assert!(!pages.reserve(0, 2), "two pages past a one-page limit");
        assert_eq!(pool.counts(), (4, 0, 0));
        pages.set_size(2 * HUGE_SIZE);
        assert_eq!(
            pages.page_for_fault(2, crate::frame::Policy::Local),
            Err(NoHugePage)
        );
        let head = pages
            .page_for_fault(0, crate::frame::Policy::Local)
            .unwrap();
        pages.release(head);
        assert_eq!(
            pages.page_for_fault(1, crate::frame::Policy::Local),
            Err(NoHugePage),
            "the limit is reached"
        );
        assert!(pages.reserve(0, 1), "a held page needs no reservation");
        drop(pages);
        assert_eq!(pool.counts(), (4, 0, 0));
    }

    /// `fallocate`: allocation takes zeroed pages (reservations first), keeps what it
    /// took when the pool runs out; a hole punch gives pages and reservations back
    /// and leaves the rest; zeroing touches only the bytes asked for.
    #[test]
    fn allocate_punch_and_zero() {
        let h = harness();
        let pool = with_pool(&h, 3);
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), None);
        pages.set_size(2 * HUGE_SIZE);
        assert!(pages.reserve(1, 1));
        assert_eq!(pool.counts(), (3, 0, 1));
        let local = crate::frame::Policy::Local;
        assert_eq!(pages.allocate(0, 2, local), Ok(()));
        assert_eq!(pool.counts(), (3, 2, 0), "index 1 used its reservation");
        assert_eq!(
            pages.allocate(0, 2, local),
            Ok(()),
            "held pages are skipped"
        );
        assert_eq!(pool.counts(), (3, 2, 0));
        // Past the end and past the pool: the third page is had, the fourth is not.
        assert_eq!(pages.allocate(2, 4, local), Err(NoHugePage));
        assert_eq!(pool.counts(), (3, 3, 0));
        assert_eq!(pages.pages_held(), 3);
        let head = pages.page_at(1).unwrap();
        h.frames.write(Pfn(head.0 + 1), 0, &[7u8; 16]);
        pages.zero_range(HUGE_SIZE + PAGE_SIZE + 4, 8);
        let mut got = [0u8; 16];
        assert_eq!(pages.read_at(HUGE_SIZE + PAGE_SIZE, &mut got), 16);
        assert_eq!(got, [7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 7, 7]);
        // Zeroing across a frame edge, and in a hole (nothing to do).
        h.frames
            .write(Pfn(head.0), PAGE_SIZE as usize - 4, &[9u8; 4]);
        pages.zero_range(HUGE_SIZE + PAGE_SIZE - 2, 4);
        assert_eq!(pages.read_at(HUGE_SIZE + PAGE_SIZE - 4, &mut got[..6]), 6);
        assert_eq!(&got[..6], &[9, 9, 0, 0, 0, 0]);
        pages.punch_hole(1, 2);
        assert_eq!(pool.counts(), (3, 2, 0));
        assert_eq!(pages.page_at(1), None);
        pages.zero_range(HUGE_SIZE, 4);
        assert!(pages.page_at(0).is_some() && pages.page_at(2).is_some());
        // Growing (a mapping, fallocate) keeps the page allocated past the end;
        // setting a size (ftruncate), even the same one, drops it.
        pages.grow_to(HUGE_SIZE);
        assert_eq!(pages.size_bytes(), 2 * HUGE_SIZE, "never shrinks");
        pages.grow_to(2 * HUGE_SIZE + 1);
        assert_eq!(pool.counts(), (3, 2, 0));
        pages.set_size(2 * HUGE_SIZE);
        assert_eq!(pool.counts(), (3, 1, 0));
        drop(pages);
        assert_eq!(pool.counts(), (3, 0, 0));
        assert_eq!(h.soft.live(), 0);
    }

    /// A private mapping of a hugetlb file, in Linux's order: it reserves its whole
    /// range at mmap, reads the file's pages without using a reservation, and uses
    /// one up for each page it allocates (a copy on the first write to a file page,
    /// a zeroed page for a hole); its unused reservations go back at munmap, and the
    /// file never sees its writes.
    #[test]
    fn private_mapping_reserves_its_range_and_copies_file_pages_on_write() {
        let h = harness();
        let pool = with_pool(&h, 5);
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), None);
        let file = FileObject::new_hugetlb("/dev/hugepages/p", pages.clone(), h.frames.clone());
        file.set_size(2 * HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let s = map_file(&h.aspace, &file, 2 * HUGE_4K_PAGES, rw, MapFlags::SHARED, 0);
        h.aspace.write_bytes(s + 3, b"file").unwrap();
        h.aspace.munmap(s, 2 * HUGE_SIZE).unwrap();
        // (capacity, in use, reserved): the file holds page 0 and index 1's reservation.
        assert_eq!(pool.counts(), (5, 1, 1));
        let p = map_file(
            &h.aspace,
            &file,
            2 * HUGE_4K_PAGES,
            rw,
            MapFlags::PRIVATE,
            0,
        );
        assert_eq!(pool.counts(), (5, 1, 3), "the whole range reserved");
        let map = h.aspace.vma_at(p).unwrap().hugetlb.clone().unwrap();
        assert_eq!(map.reservations_held(), 2);
        let mut got = [0u8; 4];
        h.aspace.read_bytes(p + 3, &mut got).unwrap();
        assert_eq!(&got, b"file");
        assert_eq!(
            pool.counts(),
            (5, 1, 3),
            "reading the file's page takes none"
        );
        let leaf = h.aspace.page_table().query_huge(VirtAddr::new(p)).unwrap();
        assert!(!leaf.flags.contains(crate::pagetable::PteFlags::WRITE));
        h.aspace.write_bytes(p + 3, b"mine").unwrap();
        assert_eq!(
            pool.counts(),
            (5, 2, 2),
            "the copy used index 0's reservation"
        );
        let mut out = [0u8; 4];
        pages.read_at(3, &mut out);
        assert_eq!(&out, b"file", "the file never sees a private write");
        h.aspace.read_bytes(p + 3, &mut got).unwrap();
        assert_eq!(&got, b"mine");
        // A hole: a private zeroed page (the file's reservation of index 1 stays).
        h.aspace.read_bytes(p + HUGE_SIZE, &mut got).unwrap();
        assert_eq!(got, [0; 4]);
        assert_eq!(pool.counts(), (5, 3, 1));
        assert_eq!(map.reservations_held(), 0);
        h.aspace.write_bytes(p + HUGE_SIZE, b"hole").unwrap();
        assert_eq!(pool.counts(), (5, 3, 1), "its own page is written in place");
        assert_eq!(pages.pages_held(), 1);
        // A fork child shares both private pages copy-on-write and reads the file
        // through its own copy of the mapping.
        let child = fork(&h);
        child.read_bytes(p + 3, &mut got).unwrap();
        assert_eq!(&got, b"mine");
        child.write_bytes(p + 3, b"kid!").unwrap();
        assert_eq!(pool.counts(), (5, 4, 1), "the child's copy is unreserved");
        h.aspace.read_bytes(p + 3, &mut got).unwrap();
        assert_eq!(&got, b"mine");
        child.teardown();
        h.aspace.munmap(p, 2 * HUGE_SIZE).unwrap();
        assert_eq!(
            pool.counts(),
            (5, 1, 1),
            "private pages back, the file's stay"
        );
        drop(map);
        file.set_size(0);
        assert_eq!(pool.counts(), (5, 0, 0));
        drop((file, pages));
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn private_mapping_refusals_and_unused_reservations() {
        let h = harness();
        let pool = with_pool(&h, 2);
        let pages = HugetlbFile::new(HugeSize::Mib2, pool.clone(), h.frames.clone(), None);
        let file = FileObject::new_hugetlb("/dev/hugepages/q", pages.clone(), h.frames.clone());
        file.set_size(HUGE_SIZE);
        let rw = Prot::READ | Prot::WRITE;
        let fm = crate::aspace::FileMapping {
            file: file.clone(),
            readable: true,
            writable: true,
        };
        let req = |len: u64, flags: MapFlags| crate::aspace::MmapRequest {
            addr: 0,
            len,
            prot: rw,
            flags,
            file: Some(fm.clone()),
            offset: 0,
        };
        assert_eq!(
            h.aspace.mmap(&req(3 * HUGE_SIZE, MapFlags::PRIVATE), false),
            Err(crate::errno::MmError::NoMemory),
            "three pages from a pool of two"
        );
        assert_eq!(pool.counts(), (2, 0, 0));
        assert_eq!(
            file.size_bytes(),
            HUGE_SIZE,
            "a refused mmap does not grow it"
        );
        // Unreserved, past the pool: the third page is SIGBUS.
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
        let a = h.aspace.mmap(&req(3 * HUGE_SIZE, flags), false).unwrap();
        assert_eq!(pool.counts(), (2, 0, 0));
        assert_eq!(
            file.size_bytes(),
            3 * HUGE_SIZE,
            "a writable mapping grows it"
        );
        h.aspace.write_bytes(a, b"a").unwrap();
        h.aspace.write_bytes(a + HUGE_SIZE, b"b").unwrap();
        assert!(matches!(
            h.aspace
                .fault(a + 2 * HUGE_SIZE, crate::fault::Access::Write, true),
            Err(crate::fault::FaultError::SigBus)
        ));
        h.aspace.munmap(a, 3 * HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (2, 0, 0));
        // Past the end of a read-only mapping's file: SIGBUS.
        file.set_size(HUGE_SIZE);
        let ro = map_file(
            &h.aspace,
            &file,
            2 * HUGE_4K_PAGES,
            Prot::READ,
            MapFlags::PRIVATE,
            0,
        );
        assert_eq!(pool.counts(), (2, 0, 2));
        assert!(matches!(
            h.aspace
                .fault(ro + HUGE_SIZE, crate::fault::Access::Read, true),
            Err(crate::fault::FaultError::SigBus)
        ));
        // Unmapping one unfaulted page gives its reservation back at once.
        h.aspace.munmap(ro + HUGE_SIZE, HUGE_SIZE).unwrap();
        assert_eq!(pool.counts(), (2, 0, 1));
        h.aspace.teardown();
        assert_eq!(pool.counts(), (2, 0, 0));
        drop((file, pages));
        assert_eq!(h.soft.live(), 0);
    }
}
