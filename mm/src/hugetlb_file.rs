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
