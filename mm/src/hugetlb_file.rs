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
//! The size is the file's: it moves only in whole huge pages (`ftruncate` to anything
//! else is `EINVAL`, checked by the caller), and a fault at or beyond it is `SIGBUS`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::frame::{Pfn, Policy};
use crate::hugetlb::{HugeSize, HugetlbSource, NoHugePage};
use crate::phys::{Frames, PAGE_BYTES};

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

    /// Sets the size (a multiple of the page size): pages and reservations at or past
    /// the new end go back to the pool (a page still mapped somewhere goes back when
    /// its last mapping does).
    pub fn set_size(&self, bytes: u64) {
        debug_assert!(bytes.is_multiple_of(self.page_bytes()));
        let first_gone = bytes / self.page_bytes();
        let mut st = self.state.lock();
        self.size_bytes.store(bytes, Ordering::Release);
        let gone_pages = st.pages.split_off(&first_gone);
        let gone_reserved = st.reserved.split_off(&first_gone);
        drop(st);
        self.source.unreserve(self.size, gone_reserved.len() as u64);
        for (_, pfn) in gone_pages {
            self.release(pfn);
        }
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
        let huge = crate::pagetable::HUGE_PAGES;
        for chunk in 0..self.size.order().pages() / huge {
            self.frames.source().zero_huge(Pfn(pfn.0 + chunk * huge));
        }
        st.pages.insert(index, pfn);
        self.frames.get(pfn);
        Ok(pfn)
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
    use crate::aspace::tests::{fork, harness, map_file};
    use crate::fault::hugetlb::tests::with_pool;
    use crate::frame::PAGE_SIZE;
    use crate::pagecache::FileObject;
    use crate::pagetable::HUGE_SIZE;
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
}
